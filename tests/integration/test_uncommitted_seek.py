"""Records read but dropped before any commit are read again after the seek back (both brokers).

Faust drops what it fetched while partitions moved and seeks back to the committed offsets;
aiokafka's seek leaves a partition without a commit where the fetcher was, so the first
records of a fresh partition (a household's first deposit) were lost. The worker's consumer
uses `streams.kafka.uncommitted_seek`; this drives it with a plain aiokafka consumer.
"""

from __future__ import annotations

import os
import time
from itertools import count

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka.uncommitted_seek import seek_to_committed

from .conftest import Broker

_n = count()


async def _topic_with(bootstrap: str, values: list[bytes]) -> str:
    topic = f"seek{os.getpid()}x{next(_n)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for v in values:  # partition 0 gets every record; partition 1 stays empty
            await producer.send_and_wait(topic, v, partition=0)
    finally:
        await producer.stop()
    return topic


async def _read(consumer: AIOKafkaConsumer, want: int, timeout_s: float = 15.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=300)).values():
            got += [r.value for r in records if r.value is not None]
    return got


async def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-g",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    return consumer


async def test_records_read_before_any_commit_are_read_again(broker: Broker) -> None:
    values = [b"deposit-1", b"deposit-2", b"deposit-3"]
    topic = await _topic_with(broker.bootstrap, values)
    consumer = await _consumer(broker.bootstrap, topic)
    try:
        assert await _read(consumer, 3) == values  # fetched, then dropped: nothing committed
        committed = await seek_to_committed(consumer, {topic})
        assert all(not offset for offset in committed.values())
        assert await _read(consumer, 3) == values  # read again
    finally:
        await consumer.stop()


async def test_aiokafka_alone_skips_them_and_a_commit_is_still_honoured(broker: Broker) -> None:
    """The gap the work-around exists for (if aiokafka fixes it, this says so), and a
    partition with a commit still resumes at the commit, not at its beginning."""
    values = [b"a", b"b", b"c"]
    topic = await _topic_with(broker.bootstrap, values)
    consumer = await _consumer(broker.bootstrap, topic)
    tp = TopicPartition(topic, 0)
    try:
        assert await _read(consumer, 3) == values
        await consumer.seek_to_committed()
        assert await consumer.position(tp) == 3  # aiokafka alone: past the dropped records
        await consumer.commit({tp: 2})
        await seek_to_committed(consumer, {topic})
        assert await consumer.position(tp) == 2  # the commit, not the beginning
        assert await _read(consumer, 1) == [b"c"]
    finally:
        await consumer.stop()
