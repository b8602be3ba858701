"""An order-management system on librdkafka (confluent-kafka) reads `orders` and writes `fills`.

The OMS teams that consume umh mostly run librdkafka clients; this drives the worker with one,
on both brokers: its consumer (subscribe, a consumer group) reads the rebalance, its producer
(murmur2_random, so keys land where the Java and aiokafka clients put them) sends the fills, and
the worker applies them: no second rebalance, no dead letter.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from .conftest import Cluster, price, snapshot
from .test_stream_rebalance import fill_for, of

pytestmark = pytest.mark.integration
ck = pytest.importorskip("confluent_kafka")


def _read_orders(c: Cluster, hid: str, timeout_s: float) -> list[dict[str, Any]]:
    consumer = ck.Consumer(
        {
            "bootstrap.servers": c.bootstrap,
            "group.id": f"{c.prefix}oms",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([c.topic("orders")])
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not found and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = json.loads(msg.value())
            if value.get("household_id") == hid:
                found.append(value)
    finally:
        consumer.close()
    return found


def _send_fills(c: Cluster, hid: str, fills: list[dict[str, Any]]) -> None:
    producer = ck.Producer({"bootstrap.servers": c.bootstrap, "partitioner": "murmur2_random"})
    for f in fills:
        producer.produce(c.topic("fills"), key=hid.encode(), value=json.dumps(f).encode())
    assert producer.flush(15) == 0


async def test_a_librdkafka_oms_reads_orders_and_writes_fills(shared: Cluster) -> None:
    hid = "hh-librdkafka"
    await shared.send("households", hid, snapshot(hid, eq="EQL", fi="FIL"))
    await shared.processed("households", hid)
    await shared.send("prices", "EQL", price("EQL", 150.0))
    orders = await asyncio.to_thread(_read_orders, shared, hid, 40.0)
    assert len(orders) == 1 and orders[0]["status"] == "rebalanced"
    rb = orders[0]
    fills = [fill_for(o, hid, f"{hid}-f{i}") for i, o in enumerate(rb["orders"])]
    await asyncio.to_thread(_send_fills, shared, hid, fills)
    await shared.processed("fills", hid)  # every fill handled
    await shared.send("prices", "EQL", price("EQL", 150.5))
    await shared.processed("prices", "EQL")  # the tick evaluated
    again = of(hid)(await shared.read_to_end("orders"))
    assert len(again) == 1, "the fills were applied: no second rebalance"
    dead = [d for d in await shared.read_to_end("dead-letters") if d.get("key") == hid]
    assert not dead, dead
