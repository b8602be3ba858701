"""What the worker tells the world beside Kafka: household writes, ticks, the master, messages.

The console (or any other observer) subscribes to `WorkerEvents`; the worker calls it at the
points where something happened. Nothing outside the worker replaces the worker's attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)


class WorkerObserver(Protocol):
    def changed(self, household_id: str) -> None: ...
    def ticked(self, symbols: Iterable[str]) -> None: ...
    def securities_changed(self) -> None: ...
    def published(self, kind: str, value: bytes) -> None: ...


class WorkerEvents:
    """Fan-out of the worker's events to its observers; an observer's failure is logged only."""

    def __init__(self) -> None:
        self._observers: list[WorkerObserver] = []

    def subscribe(self, observer: WorkerObserver) -> None:
        self._observers.append(observer)

    def changed(self, household_id: str) -> None:
        for o in self._observers:
            self._call(o.changed, household_id)

    def ticked(self, symbols: Iterable[str]) -> None:
        symbols = tuple(symbols)
        for o in self._observers:
            self._call(o.ticked, symbols)

    def securities_changed(self) -> None:
        for o in self._observers:
            self._call(o.securities_changed)

    def published(self, kind: str, value: bytes) -> None:
        for o in self._observers:
            self._call(o.published, kind, value)

    @staticmethod
    def _call(fn: object, *args: object) -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except Exception:  # an observer never stops the worker
            log.exception("worker event observer failed")
