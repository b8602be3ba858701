"""The console's live side: this worker's household summaries and the server-sent event hub.

The worker tells `ConsoleFeed` that something happened (a household state was written, a batch of
price ticks was applied, orders or a drift alert were published); nobody polls. Alerts and orders
go to every subscriber at once; state changes and ticks mark the summaries dirty, and at most once
per `FLUSH_INTERVAL_S` (only while someone is subscribed) the feed recomputes this worker's
summaries in one vectorised pass and sends the rows that changed, and the ids that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import Security
from streams.console.view import Summary, select, summarize
from streams.worker.book import BookRow, book_row
from streams.worker.rebalancer import Store
from streams.worker.state import HouseholdState, to_household

log = logging.getLogger(__name__)

#: Summaries are recomputed and sent at most this often (ticks arrive every ~75 ms in bursts).
FLUSH_INTERVAL_S = 0.5
#: A comment line keeps idle connections (and proxies) open.
KEEPALIVE_S = 15.0
#: A subscriber this far behind is dropped; its EventSource reconnects and reloads the list.
QUEUE_MAX = 500


def sse(event: str, data: Any) -> bytes:
    """One server-sent event: `event:` and one `data:` line of JSON (orjson escapes newlines)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class Hub:
    """Fan-out of encoded events to subscriber queues; `None` in a queue means "close"."""

    queues: set[asyncio.Queue[bytes | None]] = field(default_factory=set)
    closed: bool = False

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.queues.discard(queue)

    def send(self, message: bytes) -> None:
        for queue in list(self.queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: drop it; the page reconnects and reloads
                self.queues.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        for queue in list(self.queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.queues.clear()


class ConsoleFeed:
    """Summaries of the households this worker owns, and their live events."""

    def __init__(
        self,
        store: Store,
        securities: dict[str, Security],
        prices: dict[str, float],
        worker_url: str,
    ) -> None:
        self.store = store
        self.securities = securities  # the rebalancer's security master (live dict)
        self.prices = prices  # the rebalancer's live prices (live dict)
        self.worker_url = worker_url
        self.hub = Hub()
        # household id -> (the state object the row was built from, its row); the table store
        # hands out the same object until the state changes, so identity says "still valid"
        self._rows: dict[str, tuple[HouseholdState, BookRow | None]] = {}
        self._sent: dict[str, Summary] = {}
        self._dirty = asyncio.Event()
        self._ticked: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()

    # ------------------------------------------------------------------ summaries

    def _entry(self, hid: str) -> tuple[HouseholdState, BookRow | None] | None:
        state = self.store.get(hid)
        if state is None:
            self._rows.pop(hid, None)
            return None
        cached = self._rows.get(hid)
        if cached is not None and cached[0] is state:
            return cached
        entry = (state, book_row(to_household(state, securities=self.securities)))
        self._rows[hid] = entry
        return entry

    def summaries(self) -> list[Summary]:
        """Every household this worker owns now, unsorted."""
        ids = set(self.store.ids())
        for gone in set(self._rows) - ids:
            del self._rows[gone]
        entries = [e for hid in sorted(ids) if (e := self._entry(hid)) is not None]
        return summarize(entries, self.prices)

    def listing(self, *, out_of_band: bool, limit: int | None) -> list[Summary]:
        return select(self.summaries(), out_of_band=out_of_band, limit=limit)

    # ------------------------------------------------------------------ what the worker tells us

    def changed(self, household_id: str) -> None:
        """A household's state was written or deleted."""
        self._rows.pop(household_id, None)
        self._poke()

    def ticked(self, symbols: Iterable[str]) -> None:
        """A batch of price ticks was applied (every worker sees every tick: the page hears of
        price moves of other workers' households through this event, sent once per flush)."""
        if self.hub.queues:
            self._ticked.update(symbols)
        self._poke()

    def securities_changed(self) -> None:
        self._rows.clear()
        self._poke()

    def published(self, kind: str, value: bytes) -> None:
        """Orders or a drift alert this worker just published (the topic's JSON value)."""
        if self.hub.queues:
            self.hub.send(b"event: " + kind.encode() + b"\ndata: " + value.strip() + b"\n\n")

    def _poke(self) -> None:
        if self.hub.queues:
            self._dirty.set()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue = self.hub.subscribe()
        if self._task is None or self._task.done():
            self._sent = {s.household_id: s for s in self.summaries()}
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.hub.unsubscribe(queue)

    def close(self) -> None:
        self.hub.close()
        if self._task is not None:
            self._task.cancel()

    def flush(self) -> None:
        """Send the summaries that changed since the last flush, and the ids that left."""
        now = {s.household_id: s for s in self.summaries()}
        changed = [s.to_json() for hid, s in now.items() if self._sent.get(hid) != s]
        removed = sorted(set(self._sent) - set(now))
        self._sent = now
        if self._ticked:
            symbols, self._ticked = sorted(self._ticked), set()
            self.hub.send(sse("prices", {"worker": self.worker_url, "symbols": symbols[:100]}))
        if changed or removed:
            changed.sort(key=lambda r: (-r["max_abs_drift"], r["household_id"]))
            self.hub.send(
                sse(
                    "households",
                    {"worker": self.worker_url, "households": changed, "removed": removed},
                )
            )

    async def _flush_loop(self) -> None:
        while self.hub.queues and not self.hub.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), KEEPALIVE_S)
            self._dirty.clear()
            try:
                self.flush()
            except Exception:  # the console must never take the worker down
                log.exception("console summaries failed")
            await asyncio.sleep(FLUSH_INTERVAL_S)
