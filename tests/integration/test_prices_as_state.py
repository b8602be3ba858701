"""Prices are state: a worker knows every price published before it started or while it was down.

Driven through the topics only, the outside world on librdkafka (confluent-kafka, murmur2_random
so keys land where the Java and aiokafka clients put them), on both brokers. Every wait is for
an event (an order, an alert, an answer of the API), never a sleep before asserting an absence.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import orjson
import pytest

from .conftest import Cluster, price, snapshot

ck = pytest.importorskip("confluent_kafka")


def produce(c: Cluster, topic: str, messages: list[tuple[str, dict[str, Any]]]) -> None:
    producer = ck.Producer(
        {"bootstrap.servers": c.bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    for key, value in messages:
        producer.produce(c.topic(topic), key=key.encode(), value=orjson.dumps(value))
    assert producer.flush(30) == 0


def security(symbol: str, asset_class: str) -> dict[str, Any]:
    return {"schema": "security/v1", "symbol": symbol, "asset_class": asset_class}


def unpriced(household_id: str, eq: str, fi: str, **overrides: Any) -> dict[str, Any]:
    """The conftest household without its `securities` map (the master and the feed know it)."""
    raw = snapshot(household_id, eq=eq, fi=fi, **overrides)
    raw.pop("securities")
    return raw


def orders_for(household_id: str) -> Any:
    return lambda msgs: any(m["household_id"] == household_id for m in msgs)


def workaround(worker: Any, name: str) -> bool:
    """The worker's /metrics says the named client work-around is installed."""
    return f'umh_kafka_workaround{{name="{name}"}} 1.0' in worker.get("/metrics").decode()


async def wait_api(c: Cluster, path: str, ok: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            body = orjson.loads(c.workers[-1].get(path))
            if ok(body):
                return body
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path}: {body}")


async def test_prices_and_master_published_before_the_worker_starts(cluster: Cluster) -> None:
    c = cluster
    produce(c, "securities", [("EQA", security("EQA", "us_equity"))])
    produce(c, "securities", [("FIA", security("FIA", "fixed_income"))])
    # many records per batch (the embedded broker's ListOffsets answers short after those)
    produce(c, "prices", [(s, price(s, 100.0 + i * 0.01)) for i in range(50) for s in ("FIA",)])
    produce(c, "prices", [("EQA", price("EQA", 150.0)), ("FIA", price("FIA", 100.0))])
    w = c.worker()
    w.start()
    produce(c, "households", [("hh-pre", unpriced("hh-pre", "EQA", "FIA"))])
    orders = await c.read("orders", orders_for("hh-pre"), timeout_s=30)
    (rb,) = [m for m in orders if m["household_id"] == "hh-pre"]
    prices = {o["symbol"]: o["est_price"] for o in rb["orders"]}
    assert prices == {"EQA": 150.0, "FIA": 100.0}, rb
    detail = await wait_api(c, "/api/households/hh-pre", lambda b: b.get("value", 0) > 0)
    assert detail["value"] == pytest.approx(60 * 150.0 + 40 * 100.0)
    assert workaround(w, "uncommitted_seek")  # every broker: a first record is never skipped
    if c.kind == "embedded":
        assert workaround(w, "embedded_end_offsets")


async def test_a_symbol_without_a_price_is_awaited_then_rebalanced(cluster: Cluster) -> None:
    c = cluster
    produce(c, "securities", [("EQB", security("EQB", "us_equity"))])
    produce(c, "securities", [("FIB", security("FIB", "fixed_income"))])
    produce(c, "prices", [("FIB", price("FIB", 100.0))])
    c.worker().start()
    produce(c, "households", [("hh-wait", unpriced("hh-wait", "EQB", "FIB"))])
    alerts = await c.read(
        "drift-alerts", lambda ms: any(m["household_id"] == "hh-wait" for m in ms), timeout_s=30
    )
    (alert,) = [m for m in alerts if m["household_id"] == "hh-wait"]
    assert alert["action"] == "awaiting_prices" and alert["missing_prices"] == ["EQB"]
    detail = await wait_api(c, "/api/households/hh-wait", lambda b: "missing_prices" in b)
    assert detail["missing_prices"] == ["EQB"]
    produce(c, "prices", [("EQB", price("EQB", 150.0))])
    orders = await c.read("orders", orders_for("hh-wait"), timeout_s=30)
    (rb,) = [m for m in orders if m["household_id"] == "hh-wait"]
    assert {o["symbol"]: o["est_price"] for o in rb["orders"]}["EQB"] == 150.0
    alerts = await c.read(
        "drift-alerts",
        lambda ms: sum(m["household_id"] == "hh-wait" for m in ms) >= 2,
        timeout_s=30,
    )
    actions = [m["action"] for m in alerts if m["household_id"] == "hh-wait"]
    assert actions == ["awaiting_prices", "rebalance_submitted"]  # one awaiting alert


async def test_a_killed_worker_restarts_knowing_the_prices_that_ticked(cluster: Cluster) -> None:
    c = cluster
    produce(c, "securities", [("EQC", security("EQC", "us_equity"))])
    produce(c, "securities", [("FIC", security("FIC", "fixed_income"))])
    produce(c, "prices", [("EQC", price("EQC", 100.0)), ("FIC", price("FIC", 100.0))])
    w = c.worker()
    w.start()
    produce(c, "households", [("hh-kill", unpriced("hh-kill", "EQC", "FIC"))])
    heavy = unpriced("hh-open", "EQC", "FIC")
    heavy["accounts"][0]["lots"][0]["quantity"] = 80  # out of band at once: orders, then open
    heavy["accounts"][0]["lots"][1]["quantity"] = 20
    produce(c, "households", [("hh-open", heavy)])
    await wait_api(c, "/api/households/hh-kill", lambda b: b.get("value", 0) > 0)
    first = await c.read("orders", orders_for("hh-open"), timeout_s=30)
    (opened,) = [m for m in first if m["household_id"] == "hh-open"]
    assert w.proc is not None
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(10)
    # prices tick while no worker runs: the last one moves the household out of band
    produce(c, "prices", [("EQC", price("EQC", 100.0 + i)) for i in range(1, 40)])
    produce(c, "prices", [("EQC", price("EQC", 150.0))])
    again = c.worker(UMH_APP_ID=w.env["UMH_APP_ID"])
    again.start(timeout_s=60)
    orders = await c.read("orders", orders_for("hh-kill"), timeout_s=40)
    (rb,) = [m for m in orders if m["household_id"] == "hh-kill"]
    assert {o["symbol"]: o["est_price"] for o in rb["orders"]}["EQC"] == 150.0
    detail = await wait_api(c, "/api/households/hh-kill", lambda b: b.get("value", 0) > 0)
    assert detail["value"] == pytest.approx(60 * 150.0 + 40 * 100.0)
    # the table came back from the changelog (on the embedded broker through the end-offset
    # work-around): the open rebalance is the one published before the kill, not a new solve
    detail = await wait_api(c, "/api/households/hh-open", lambda b: b.get("open_rebalance"))
    assert detail["open_rebalance"]["rebalance_id"] == opened["rebalance_id"]
    orders = await c.read("orders", orders_for("hh-kill"), timeout_s=10)
    # delivery is at least once: a worker killed before its "published" mark was durable
    # publishes the same rebalance again after recovery (identical, the OMS de-duplicates by
    # order_id); never a second rebalance for the same episode
    seen = [m for m in orders if m["household_id"] == "hh-open"]
    assert seen and all(_same_orders(m, opened) for m in seen), seen
    if c.kind == "embedded":
        assert workaround(again, "embedded_end_offsets")


def _same_orders(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["rebalance_id"] == b["rebalance_id"] and a["orders"] == b["orders"]


async def test_a_market_wide_fall_serves_every_household_furthest_first(cluster: Cluster) -> None:
    c = cluster
    n = 240
    produce(c, "securities", [("EQD", security("EQD", "us_equity"))])
    produce(c, "securities", [("FID", security("FID", "fixed_income"))])
    produce(c, "prices", [("EQD", price("EQD", 100.0)), ("FID", price("FID", 100.0))])
    c.worker(UMH_SOLVER_PROCESSES="2").start()
    households = []
    for i in range(n):
        hid = f"hh-fall-{i:03d}"
        raw = unpriced(hid, "EQD", "FID")
        # 56% .. 59.84% in equities against a 60% target (inside the band): after a 25% fall
        # the ones that started lighter are further outside it (drift -0.112 .. -0.072)
        eq = 56 + (i % 25) * 0.16
        raw["accounts"][0]["lots"][0]["quantity"] = eq
        raw["accounts"][0]["lots"][1]["quantity"] = 100 - eq
        households.append((hid, raw))
    produce(c, "households", households)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = c.workers[-1].get("/metrics").decode()
        held = [ln for ln in text.splitlines() if ln.startswith("umh_households ")]
        if held and float(held[0].split()[1]) >= n:
            break
        await asyncio.sleep(0.3)
    produce(c, "prices", [("EQD", price("EQD", 75.0, "2026-11-25T16:00:00Z"))])
    orders = await c.read(
        "orders", lambda ms: len({m["household_id"] for m in ms}) >= n, timeout_s=90
    )
    served = [m["household_id"] for m in orders]
    assert len(set(served)) == n and len(served) == n  # every household, once
    share = {hid: 56 + (int(hid[-3:]) % 25) * 0.16 for hid, _ in households}
    first = [share[h] for h in served[: n // 4]]
    last = [share[h] for h in served[-n // 4 :]]
    # furthest outside its bands first (a few solves run at once, so not strictly sorted)
    assert sum(first) / len(first) < sum(last) / len(last) - 1.5, (first, last)
