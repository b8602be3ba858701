"""Market data into every worker: prices as state, read by a consumer outside the consumer group.

Each worker needs the latest price of every symbol its households hold, whichever partitions it
owns and whenever the price was published (mutual funds price once a day). FINDINGS: a Faust
GlobalTable did not get live updates across workers, so this plain aiokafka consumer is
*assigned* every partition of `prices` and of `securities`.

Prices as state, the choice and why: `prices` is keyed by symbol and, on Apache Kafka, created
compacted (`cleanup.policy=compact`, streams/kafka/topics.py, deploy/): the log then holds about
one record per symbol plus the head not yet compacted, so reading it from its start is the
latest price of every symbol, however old, at a cost bounded by the universe rather than by
time. The embedded broker has neither compaction nor retention, so its log grows with every
tick: the read is bounded there (and everywhere) to the last `UMH_PRICES_READBACK` records of
each partition (default 200,000; ~1-2 s at the embedded broker's consume rate). A symbol not
ticked within that tail is unknown until its next tick, and the household holding it says so
(an `awaiting_prices` alert). Measured alternatives: a changelog of last prices per worker is
one more topic with the same bounded read; seeking to the end (before) lost every earlier price.

Start-up: the feed takes the end offset of every assigned partition (on the embedded broker only
with the ListOffsets work-around, streams/kafka/offsets_workaround.py, else it stops short), reads
the securities from their start and the price tails up to those ends, hands the last price per
symbol to `on_caught_up` and only then sets `ready` (and /healthz): the worker evaluates no
household before it knows every price. After that, ticks are coalesced over a short window, the
last price per symbol wins, and handed to `on_ticks`.
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
#: Records read back per partition of `prices` at start (UMH_PRICES_READBACK overrides it).
PRICES_READBACK = 200_000


class PriceFeed:
    def __init__(
        self,
        settings: Settings,
        on_ticks: OnTicks,
        on_security: OnSecurity,
        on_bad: OnBad,
        on_event: OnEvent | None = None,
        on_caught_up: OnTicks | None = None,
    ) -> None:
        self.settings = settings
        self.on_ticks = on_ticks
        self.on_security = on_security
        self.on_bad = on_bad
        self.on_event = on_event or (lambda topic: None)
        self.on_caught_up = on_caught_up or on_ticks
        self.ready = asyncio.Event()
        self.consumer: Any = None
        self.readback = settings.prices_readback
        self.catch_up_s: float | None = None  # how long the start-up read took
        self.caught_up_records = 0
        self._ends: dict[Any, int] = {}

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
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            first = starts.get(tp, 0)
            if tp.topic == s.topic("prices"):
                first = max(first, ends.get(tp, 0) - self.readback)
            consumer.seek(tp, first)
        self._ends = {tp: end for tp, end in ends.items() if end > starts.get(tp, 0)}
        log.info(
            "price feed assigned %d partitions of %s; reading back %d records",
            len(tps),
            ", ".join(wanted),
            sum(max(0, e - max(starts.get(tp, 0), e - self.readback)) for tp, e in ends.items()),
        )

    async def _catch_up(self) -> None:
        """Read securities and the price tails up to the end offsets taken at start."""
        started = time.monotonic()
        prices_topic = self.settings.topic("prices")
        ticks: Ticks = {}
        pending = dict(self._ends)
        while pending:
            batch = await self.consumer.getmany(*pending, timeout_ms=500, max_records=50_000)
            for tp, records in batch.items():
                for record in records:
                    self.on_event(tp.topic)
                    self.caught_up_records += 1
                    if tp.topic == prices_topic:
                        await self._price(record, ticks)
                    else:
                        await self._security(record)
            for tp in list(pending):
                if await self.consumer.position(tp) >= pending[tp]:
                    pending.pop(tp)
        self.catch_up_s = time.monotonic() - started
        await self.on_caught_up(ticks)
        self.ready.set()
        log.info(
            "price feed caught up: %d records, %d symbols priced in %.2f s",
            self.caught_up_records,
            len(ticks),
            self.catch_up_s,
        )

    async def run(self) -> None:
        try:
            await self._start()
            await self._catch_up()
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
