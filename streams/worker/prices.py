"""Market data into every worker: a plain aiokafka consumer outside the consumer group.

Each worker needs the price of every symbol its households hold, whichever partitions it owns.
FINDINGS: a Faust GlobalTable did not get live updates across workers, so this consumer is
*assigned* all partitions of `prices` (from the end: only live ticks matter; the household state
remembers the last prices it saw) and of `securities` (from the beginning: the master is small
and compacted). Ticks are coalesced over a short window, the last price per symbol wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from schemas import Security, ValidationError
from streams.kafka.topics import client_options
from streams.settings import Settings
from streams.worker.inputs import price_message, security_message

log = logging.getLogger(__name__)

Ticks = dict[str, tuple[float, datetime, float]]  # symbol -> (price, event ts, record time s)
OnTicks = Callable[[Ticks], Awaitable[Any]]
OnSecurity = Callable[[Security], None]
OnBad = Callable[[str, int, int, bytes | None, bytes | None, str], Awaitable[None]]
OnEvent = Callable[[str], None]


class PriceFeed:
    def __init__(
        self,
        settings: Settings,
        on_ticks: OnTicks,
        on_security: OnSecurity,
        on_bad: OnBad,
        on_event: OnEvent | None = None,
    ) -> None:
        self.settings = settings
        self.on_ticks = on_ticks
        self.on_security = on_security
        self.on_bad = on_bad
        self.on_event = on_event or (lambda topic: None)
        self.ready = asyncio.Event()
        self.consumer: Any = None

    async def _start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        s = self.settings
        consumer = AIOKafkaConsumer(
            **client_options(s),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        self.consumer = consumer
        wanted = (s.topic("prices"), s.topic("securities"))
        partitions: dict[str, set[int]] = {}
        for _ in range(120):
            # A metadata answer for every topic, read directly: `consumer.topics()` does not
            # feed `consumer.partitions_for_topic` on Apache Kafka (only on the embedded broker).
            cluster = await consumer._client.fetch_all_metadata()
            partitions = {t: cluster.partitions_for_topic(t) or set() for t in wanted}
            if all(partitions.values()):
                break
            await asyncio.sleep(0.5)
        tps = [TopicPartition(t, p) for t in wanted for p in sorted(partitions[t])]
        consumer.assign(tps)
        await consumer.seek_to_end(*[tp for tp in tps if tp.topic == s.topic("prices")])
        await consumer.seek_to_beginning(*[tp for tp in tps if tp.topic == s.topic("securities")])
        # Resolve the positions now, so a tick produced after `ready` is never skipped.
        for tp in tps:
            await consumer.position(tp)
        self.ready.set()
        log.info("price feed assigned %d partitions of %s", len(tps), ", ".join(wanted))

    async def run(self) -> None:
        try:
            await self._start()
            window_s = self.settings.coalesce_ms / 1000.0
            prices_topic = self.settings.topic("prices")
            while True:
                batch = await self.consumer.getmany(timeout_ms=500)
                if not batch:
                    continue
                deadline = time.monotonic() + window_s
                ticks: Ticks = {}
                while True:
                    for tp, records in batch.items():
                        for record in records:
                            self.on_event(tp.topic)
                            if tp.topic == prices_topic:
                                await self._price(record, ticks)
                            else:
                                await self._security(record)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    batch = await self.consumer.getmany(timeout_ms=max(1, int(remaining * 1000)))
                if ticks:
                    try:
                        await self.on_ticks(ticks)
                    except Exception:
                        log.exception("tick batch of %d symbols failed", len(ticks))
        finally:
            if self.consumer is not None:
                with contextlib.suppress(Exception):
                    await self.consumer.stop()

    async def _price(self, record: Any, ticks: Ticks) -> None:
        try:
            price = price_message(record.key, record.value)
        except Exception as exc:  # invalid (or a decoder defect): dead-lettered, the feed goes on
            await self._bad(record, exc)
            return
        ticks[price.symbol] = (price.price, price.ts, record.timestamp / 1000.0)

    async def _security(self, record: Any) -> None:
        try:
            self.on_security(security_message(record.key, record.value))
        except Exception as exc:
            await self._bad(record, exc)

    async def _bad(self, record: Any, exc: Exception) -> None:
        if isinstance(exc, ValidationError):
            error = str(exc)
        else:
            log.exception("failed topic=%s offset=%d", record.topic, record.offset)
            error = f"internal error: {exc!r}"
        await self.on_bad(
            record.topic, record.partition, record.offset, record.key, record.value, error
        )

    async def lag(self) -> dict[str, int]:
        """Messages behind the end per topic (best effort; the embedded broker's marks vary)."""
        out: dict[str, int] = {}
        if self.consumer is None:
            return out
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            position = await self.consumer.position(tp)
            out[tp.topic] = out.get(tp.topic, 0) + max(0, high - position)
        return out
