"""The Kafka plumbing the simulators share: topic names, producers, consumers, topic creation.

The simulators stand in for the outside world (market data feed, OMS, custodian), so they speak
only the contract's topics (section 4) with plain aiokafka clients, exactly as an outside system
would. Consumers are assigned every partition of their topics (no consumer group): a simulator is
a single reader that never needs to share, and assignment avoids a group join on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka.topics import ALL, COMPACTED

log = logging.getLogger(__name__)

#: Every topic of the contract (section 4), without prefix: the worker's own list.
TOPICS = ALL


def topic(prefix: str, name: str) -> str:
    """The real topic name: `UMH_TOPIC_PREFIX` + the contract's name."""
    return f"{prefix}{name}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def event_clock(day_seconds: float | None) -> Callable[[], datetime]:
    """The simulators' event time: the wall clock, moved one event day ahead every
    `day_seconds` of wall time (None: the wall clock itself). A soak of minutes then spans
    the worker's day-bound memories (fill and flow ids, recent trades, wash windows), which
    only prune as event days pass."""
    if day_seconds is None:
        return utc_now
    if day_seconds <= 0:
        raise ValueError(f"day_seconds must be positive, got {day_seconds}")
    started = time.monotonic()

    def now() -> datetime:
        return utc_now() + timedelta(days=int((time.monotonic() - started) / day_seconds))

    return now


@dataclass(slots=True)
class Counters:
    """What a simulator sent and received, by kind; the demo prints these once a second."""

    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)

    def add_sent(self, kind: str, n: int = 1) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + n

    def add_received(self, kind: str, n: int = 1) -> None:
        self.received[kind] = self.received.get(kind, 0) + n


def make_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """A producer the embedded broker accepts: no idempotence (Tansu rejects InitProducerId).

    Values are JSON bytes from `schemas.dumps`; keys are UTF-8 strings encoded here.
    """
    options: dict[str, object] = dict(
        bootstrap_servers=bootstrap,
        acks=1,
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        key_serializer=lambda k: k.encode() if isinstance(k, str) else k,
        request_timeout_ms=30_000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def ensure_topics(
    bootstrap: str, prefix: str, names: Iterable[str] = TOPICS, partitions: int = 4
) -> list[str]:
    """Create the named contract topics that do not exist yet; returns the ones created.

    The worker creates its topics too; whoever comes first wins, so both must use the same
    partition count (`UMH_PARTITIONS`, default 4). Compaction is asked for on `securities` and
    `households` and dropped when the broker refuses the config (the embedded broker has none).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for name in names:
            real = topic(prefix, name)
            if real in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name in COMPACTED else {}
            try:
                await admin.create_topics([NewTopic(real, partitions, 1, topic_configs=configs)])
            except Exception as exc:  # a broker without that config, or a race with the worker
                log.debug("create topic=%s with configs failed (%s); retrying plainly", real, exc)
                with contextlib.suppress(Exception):
                    await admin.create_topics([NewTopic(real, partitions, 1)])
            created.append(real)
    finally:
        await admin.close()
    return created


async def assigned_consumer(
    bootstrap: str, topics: Iterable[str], *, from_end: bool = True, timeout_s: float = 15.0
) -> AIOKafkaConsumer:
    """A started consumer assigned every partition of `topics` (no group), at the end or start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_end else "earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts: list[TopicPartition] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for name in topics:
            while True:
                found = consumer.partitions_for_topic(name)
                if found:
                    parts.extend(TopicPartition(name, p) for p in sorted(found))
                    break
                if loop.time() > deadline:
                    raise TimeoutError(f"topic {name} has no partitions after {timeout_s}s")
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
        consumer.assign(parts)
        if from_end:
            await consumer.seek_to_end(*parts)
        else:
            await consumer.seek_to_beginning(*parts)
    except BaseException:
        await consumer.stop()
        raise
    return consumer
