"""Hostile input: thousands of malformed messages over every input topic, with valid traffic.

What an outsider would send (not JSON, wrong types, missing fields, NaN and 2**70, unknown schema
versions and kinds, keys that are not UTF-8, empty or disagree with the body, null values, fills
for unknown orders, accounts and households, sells of more than is held, 1.2 MB values), with a
valid tick every 100 messages. Asserted: every bad message reaches `dead-letters` with a reason
(counted by its topic, partition and offset), no valid message does, no household's state changes
(the worker's own view, `/api/households/{id}`, before and after), the valid ticks go on to the
expected rebalance, and the worker stays up and healthy. Deterministic: the test waits for the
dead letters themselves (one per bad message, so when all are in, every bad message has been
handled), then for the order of a breaching tick sent after all of them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .conftest import Cluster, price, snapshot

pytestmark = pytest.mark.integration

BAD_MESSAGES = 3000
VICTIMS = [f"hh-victim-{i}" for i in range(4)]
GHOSTS = [f"hh-ghost-{i}" for i in range(3)]  # never had a snapshot
LIVE = "hh-live"
TS = "2026-11-25T15:30:00Z"

Message = tuple[str, bytes | None, bytes | None]  # topic, key, value


def victim_symbols(hid: str) -> tuple[str, str]:
    n = hid.rsplit("-", 1)[-1]
    return f"VEQ{n}", f"VFI{n}"


def valid_fill(hid: str, **changes: Any) -> dict[str, Any]:
    eq, _ = victim_symbols(hid) if hid.startswith("hh-victim") else ("VEQ0", "")
    return {
        "schema": "fill/v1",
        "fill_id": f"fz-{random.random()}",
        "order_id": "manual-1",
        "household_id": hid,
        "account_id": f"{hid}-IRA",
        "symbol": eq,
        "side": "sell",
        "quantity": 1.0,
        "price": 100.0,
        "ts": TS,
        **changes,
    }


def valid_flow(hid: str, **changes: Any) -> dict[str, Any]:
    return {
        "schema": "cash_flow/v1",
        "flow_id": f"fz-{random.random()}",
        "household_id": hid,
        "account_id": f"{hid}-TAX",
        "kind": "deposit",
        "amount": 100.0,
        "ts": TS,
        **changes,
    }


def raw_number(doc: dict[str, Any], field: str, text: str) -> bytes:
    """`doc` as JSON with `field` written as `text` (NaN, 1e400, 2**70: not JSON numbers)."""
    marker = "__RAW__"
    return json.dumps({**doc, field: marker}).replace(f'"{marker}"', text).encode()


class Hostile:
    """A deterministic stream of bad messages, each invalid or inapplicable by the contract."""

    def __init__(self, seed: int, kafka: bool) -> None:
        self.rng = random.Random(seed)
        # Apache Kafka itself refuses values over message.max.bytes (1 MB) and records without
        # a key on compacted topics: only the embedded broker lets those reach the worker
        self.oversized = not kafka
        self.keyless_compacted = not kafka
        random.seed(seed)  # the ids of valid_fill / valid_flow

    def pick(self, items: list[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def doc(self, topic: str, hid: str) -> tuple[bytes, dict[str, Any]]:
        """(the right key, a valid body) for `topic` about victim `hid`."""
        eq, _ = victim_symbols(hid)
        if topic == "prices":
            return eq.encode(), price(eq, 150.0, TS)
        if topic == "securities":
            return eq.encode(), {
                "schema": "security/v1",
                "symbol": eq,
                "asset_class": "fixed_income",
                "fractional": True,
            }
        if topic == "fills":
            return hid.encode(), valid_fill(hid)
        if topic == "cash-flows":
            return hid.encode(), valid_flow(hid)
        return hid.encode(), snapshot(hid, eq=eq, fi=victim_symbols(hid)[1])

    def message(self) -> Message:
        topic = self.pick(["prices", "securities", "fills", "cash-flows", "households"])
        hid = self.pick(VICTIMS)
        key, body = self.doc(topic, hid)
        kinds: list[Callable[[], Message]] = [
            lambda: (topic, key, self.rng.randbytes(self.rng.randrange(1, 200))),
            lambda: (topic, key, b"{not json " + key),
            lambda: (topic, key, orjson.dumps(body)[:-3]),
            lambda: (topic, key, b"\xff\xfe" + orjson.dumps(body)),  # not UTF-8
            lambda: (topic, key, orjson.dumps(body).replace(b'"schema":"', b'"schema":"\xc3(')),
            lambda: (topic, key, orjson.dumps([body])),
            lambda: (topic, key, b"[" * 5000 + b"]" * 5000),
            lambda: (topic, key, b"null" if topic != "households" else b"42"),
            # a null value: a tombstone only on households, where it needs a valid key
            lambda: (topic, key, None) if topic != "households" else (topic, b"", None),
            lambda: (topic, key + b"\xff", orjson.dumps(body)),  # key not UTF-8
            lambda: (topic, b"", orjson.dumps(body)),  # empty key
            lambda: (topic, None, orjson.dumps(body)),  # no key
            lambda: (topic, b"ZZFUZZ", orjson.dumps(body)),  # key disagrees with the body
            lambda: (topic, key, orjson.dumps({**body, "schema": body["schema"][:-1] + "9"})),
            lambda: (topic, key, orjson.dumps({**body, "schema": "trade/v1"})),
            *self.field_attacks(topic, key, body),
        ]
        if self.oversized and self.rng.random() < 0.01:
            pad = b"x" * 1_200_000
            return topic, key, b'{"schema": "' + pad + b'"}'
        topic, key_out, value = self.pick(kinds)()
        if key_out is None and topic in ("households", "securities") and not self.keyless_compacted:
            key_out = b""
        return topic, key_out, value

    def field_attacks(
        self, topic: str, key: bytes, body: dict[str, Any]
    ) -> list[Callable[[], Message]]:
        def without(field: str) -> Message:
            return topic, key, orjson.dumps({k: v for k, v in body.items() if k != field})

        def typed(field: str, value: Any) -> Message:
            return topic, key, orjson.dumps({**body, field: value})

        def raw(field: str, text: str) -> Message:
            return topic, key, raw_number(body, field, text)

        hid = key.decode()
        if topic == "prices":
            return [
                lambda: without("price"),
                lambda: without("ts"),
                lambda: typed("price", "150"),
                lambda: typed("price", -1.0),
                lambda: typed("price", 0.0),
                lambda: typed("price", 1e-9),
                lambda: typed("price", 1e13),
                lambda: raw("price", str(2**70)),
                lambda: raw("price", self.pick(["NaN", "Infinity", "-Infinity", "1e400"])),
                lambda: typed("ts", "yesterday"),
            ]
        if topic == "securities":
            return [
                lambda: typed("asset_class", 7),
                lambda: typed("exposures", {"us_equity": 2.0, "fixed_income": -1.0}),
                lambda: typed("fractional", "yes"),
                lambda: without("symbol"),
            ]
        if topic == "fills":
            return [
                lambda: without("fill_id"),
                lambda: without("price"),
                lambda: typed("side", "short"),
                lambda: typed("quantity", -5.0),
                lambda: typed("quantity", 1e13),
                lambda: raw("quantity", self.pick(["NaN", str(2**70), "1e400"])),
                lambda: typed("price", 2**40 * 1.0e3),
                lambda: typed("account_id", "no-such-account"),  # unknown account
                lambda: typed("order_id", f"{hid}:2026-11-24:7:0"),  # unknown order
                lambda: typed("quantity", 1_000_000.0),  # sells more than is held
                lambda: typed("lots", [{"lot_id": "L-404", "quantity": 1.0}]),
                lambda: typed("symbol", ""),
                lambda: (  # a household with no snapshot, after its grace period
                    topic,
                    (g := self.pick(GHOSTS)).encode(),
                    orjson.dumps({**body, "household_id": g, "account_id": f"{g}-IRA"}),
                ),
            ]
        if topic == "cash-flows":
            return [
                lambda: without("flow_id"),
                lambda: without("amount"),
                lambda: typed("kind", "teleport"),
                lambda: typed("amount", -100.0),
                lambda: typed("amount", 0.0),
                lambda: typed("amount", 1.5e12),
                lambda: raw("amount", self.pick(["1e308", "NaN", str(2**70)])),
                lambda: typed("settles", "x"),  # a deposit settles nothing
                lambda: typed("account_id", "no-such-account"),
                lambda: (
                    topic,
                    (g := self.pick(GHOSTS)).encode(),
                    orjson.dumps({**body, "household_id": g, "account_id": f"{g}-TAX"}),
                ),
            ]

        def security_price(value: Any) -> Message:
            eq = victim_symbols(hid)[0]
            securities = {**body["securities"], eq: {**body["securities"][eq], "price": value}}
            return typed("securities", securities)

        def cash(value: float) -> Message:
            accounts = [dict(a) for a in body["accounts"]]
            accounts[1]["cash"] = value
            return typed("accounts", accounts)

        return [
            lambda: without("accounts"),
            lambda: without("target"),
            lambda: typed("target", {"us_equity": 0.9, "fixed_income": 0.9}),
            lambda: typed("mode", "yolo"),
            lambda: security_price(1e13),
            lambda: security_price(1e-9),
            lambda: security_price(-5.0),
            lambda: cash(-1e13),
            lambda: typed("household_id", "hh-someone-else"),
            lambda: typed("as_of", "2026-13-45"),
        ]


def coordinates(meta: Any) -> tuple[str, int, int]:
    return meta.topic, meta.partition, meta.offset


async def read_dead_letters(
    c: Cluster, wanted: set[tuple[str, int, int]], timeout_s: float
) -> dict[tuple[str, int, int], tuple[bytes | None, dict[str, Any]]]:
    """Dead letters by original (topic, partition, offset), until every one wanted is in."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=c.bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    out: dict[tuple[str, int, int], tuple[bytes | None, dict[str, Any]]] = {}
    try:
        name = c.topic("dead-letters")
        parts: set[int] = set()
        for _ in range(80):
            parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(
                name
            ) or set()
            if parts:
                break
            await asyncio.sleep(0.25)
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not wanted <= out.keys():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    body = orjson.loads(r.value)
                    out[(body["topic"], body["partition"], body["offset"])] = (r.key, body)
    finally:
        await consumer.stop()
    return out


def household(c: Cluster, hid: str) -> dict[str, Any]:
    return dict(orjson.loads(c.workers[0].get(f"/api/households/{hid}")))


async def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_hostile_messages_are_dead_lettered_and_change_nothing(cluster: Cluster) -> None:
    worker = cluster.worker()
    worker.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap, max_request_size=4_000_000, linger_ms=5
    )
    await producer.start()
    try:

        async def send(topic: str, key: bytes | None, value: bytes | None) -> Any:
            return await producer.send(cluster.topic(topic), value, key=key)

        for hid in VICTIMS:
            eq, fi = victim_symbols(hid)
            await (await send("households", hid.encode(), orjson.dumps(snapshot(hid, eq, fi))))
        await (
            await send("households", LIVE.encode(), orjson.dumps(snapshot(LIVE, "LIVEQ", "LIVFI")))
        )

        def loaded() -> bool:
            return all(worker.get(f"/api/households/{h}") is not None for h in [*VICTIMS, LIVE])

        await wait_for(loaded, 60, "the snapshots")
        before = {hid: household(cluster, hid) for hid in VICTIMS}

        hostile = Hostile(seed=20261201, kafka=cluster.kind == "kafka")
        bad: dict[tuple[str, int, int], str] = {}
        good: set[tuple[str, int, int]] = set()
        pending: list[tuple[bool, Any]] = []
        for i in range(BAD_MESSAGES):
            if i % 100 == 0:  # valid traffic: an in-band tick of the live household's symbol
                tick = price("LIVEQ", 100.0 + (i % 7) * 0.1, TS)
                pending.append((True, await send("prices", b"LIVEQ", orjson.dumps(tick))))
            topic, key, value = hostile.message()
            pending.append((False, await send(topic, key, value)))
        for is_good, future in pending:
            meta = await future
            if is_good:
                good.add(coordinates(meta))
            else:
                bad[coordinates(meta)] = "sent"
        assert len(bad) == BAD_MESSAGES

        dead = await read_dead_letters(cluster, set(bad), timeout_s=240)
        missing = set(bad) - dead.keys()
        assert not missing, (
            f"{len(missing)} bad messages without a dead letter: {sorted(missing)[:5]}"
        )
        assert not good & dead.keys(), "a valid tick was dead-lettered"
        for _, body in dead.values():
            assert body["schema"] == "dead_letter/v1" and body["error"]
        sizes = [len(orjson.dumps(body)) for _, body in dead.values()]
        assert max(sizes) < 1_000_000
        if cluster.kind == "embedded":
            assert any(body.get("value_truncated") for _, body in dead.values())
        utf8_errors = [b for k, b in dead.values() if k is not None and k.endswith(b"\xff")]
        assert utf8_errors and all(b.get("key_encoding") == "base64" for b in utf8_errors)
        reasons = " ".join(body["error"] for _, body in dead.values())
        for reason in ("unknown household", "unknown order", "unknown account", "holds", "UTF-8"):
            assert reason in reasons, reason

        # every bad message was handled (its dead letter is out): the state is as it was
        assert {hid: household(cluster, hid) for hid in VICTIMS} == before

        # valid traffic goes on: a breaching tick sent after all of it rebalances the live one
        await (await send("prices", b"LIVEQ", orjson.dumps(price("LIVEQ", 150.0, TS))))
        orders = await cluster.read(
            "orders", lambda m: any(x.get("household_id") == LIVE for x in m), timeout_s=60
        )
        assert [o["status"] for o in orders if o.get("household_id") == LIVE] == ["rebalanced"]
        assert not [o for o in orders if o.get("household_id") in VICTIMS]
        assert worker.proc is not None and worker.proc.poll() is None
        assert worker.health() == 200
        metrics = worker.get("/metrics").decode()
        assert f"umh_dead_letters_total {float(BAD_MESSAGES)}" in metrics
    finally:
        await producer.stop()
