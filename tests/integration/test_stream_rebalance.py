"""The worker end to end through its topics: ticks, fills, cash flows and bad messages."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Cluster, price, snapshot

pytestmark = pytest.mark.integration


def of(hid: str) -> Any:
    return lambda msgs: [m for m in msgs if m.get("household_id") == hid]


def fill_for(order: dict[str, Any], hid: str, fill_id: str) -> dict[str, Any]:
    return {
        "schema": "fill/v1",
        "fill_id": fill_id,
        "order_id": order["order_id"],
        "household_id": hid,
        "account_id": order["account_id"],
        "symbol": order["symbol"],
        "side": order["side"],
        "quantity": order["quantity"],
        "price": order["est_price"],
        "ts": "2026-11-25T16:00:00Z",
    }


async def test_tick_past_band_then_fills_twice(shared: Cluster) -> None:
    hid = "hh-tick"
    await shared.send("households", hid, snapshot(hid, eq="EQT", fi="FIT"))
    await shared.processed("households", hid)
    await shared.send("prices", "EQT", price("EQT", 150.0))
    orders = of(hid)(await shared.read("orders", lambda m: bool(of(hid)(m))))
    assert len(orders) == 1
    rb = orders[0]
    assert rb["schema"] == "rebalance/v1" and rb["status"] == "rebalanced"
    assert rb["key"] == hid
    # as_of is the triggering event's date: the tick's, or the snapshot's when the tick reached
    # the worker's price feed before the snapshot reached its agent (independent topics)
    assert rb["rebalance_id"] == f"{hid}:{rb['as_of']}:1"
    assert rb["as_of"] in ("2026-11-24", "2026-11-25")
    sells = [o for o in rb["orders"] if o["side"] == "sell"]
    buys = [o for o in rb["orders"] if o["side"] == "buy"]
    assert sells and all(o["symbol"] == "EQT" for o in sells)
    assert buys and all(o["symbol"] == "FIT" for o in buys)
    for o in sells:
        assert sum(x["quantity"] for x in o["lots"]) == pytest.approx(o["quantity"])
    for o in rb["orders"]:
        assert o["order_id"].startswith(rb["rebalance_id"] + ":")
    alerts = of(hid)(await shared.read("drift-alerts", lambda m: bool(of(hid)(m))))
    assert alerts[0]["action"] == "rebalance_submitted"
    assert alerts[0]["breaches"][0]["asset_class"] in ("us_equity", "fixed_income")

    for _ in range(2):  # at least once delivery: the same fills twice
        for i, o in enumerate(rb["orders"]):
            await shared.send("fills", hid, fill_for(o, hid, f"{hid}-f{i}"))
    await shared.processed("fills", hid)  # every fill handled
    await shared.send("prices", "EQT", price("EQT", 150.5))
    await shared.processed("prices", "EQT")  # the tick evaluated
    orders = of(hid)(await shared.read_to_end("orders"))
    assert len(orders) == 1, "no second rebalance after the fills brought it back in band"
    dead = await shared.read_to_end("dead-letters")
    assert not [d for d in dead if d.get("key") == hid and d.get("topic", "").endswith("fills")]


async def test_withdrawal_request_raises_cash(shared: Cluster) -> None:
    hid = "hh-wd"
    await shared.send("households", hid, snapshot(hid, eq="EQW", fi="FIW"))
    await shared.processed("households", hid)
    await shared.send(
        "cash-flows",
        hid,
        {
            "schema": "cash_flow/v1",
            "flow_id": "wr-1",
            "household_id": hid,
            "account_id": f"{hid}-IRA",
            "kind": "withdrawal_request",
            "amount": 1000.0,
            "ts": "2026-11-25T10:00:00Z",
        },
    )
    orders = of(hid)(await shared.read("orders", lambda m: bool(of(hid)(m))))
    assert len(orders) == 1
    sells = [o for o in orders[0]["orders"] if o["side"] == "sell"]
    assert sells and {o["reason"] for o in sells} <= {"raise_cash", "rebalance"}
    assert any(o["reason"] == "raise_cash" for o in sells)
    assert sum(o["est_value"] for o in sells) >= 1000.0 - 1e-6


async def test_deposit_is_invested(shared: Cluster) -> None:
    hid = "hh-dep"
    await shared.send("households", hid, snapshot(hid, eq="EQD", fi="FID"))
    await shared.processed("households", hid)
    await shared.send(
        "cash-flows",
        hid,
        {
            "schema": "cash_flow/v1",
            "flow_id": "dep-1",
            "household_id": hid,
            "account_id": f"{hid}-TAX",
            "kind": "deposit",
            "amount": 5000.0,
            "ts": "2026-11-25T10:00:00Z",
        },
    )
    orders = of(hid)(await shared.read("orders", lambda m: bool(of(hid)(m))))
    assert len(orders) == 1
    buys = [o for o in orders[0]["orders"] if o["side"] == "buy"]
    assert buys and any(o["reason"] == "invest_cash" for o in buys)
    assert {o["account_id"] for o in buys} == {f"{hid}-TAX"}


def dead_letters_total(c: Cluster) -> float:
    text = c.workers[0].get("/metrics").decode()
    line = next((ln for ln in text.splitlines() if ln.startswith("umh_dead_letters_total ")), "")
    return float(line.split()[1]) if line else 0.0


async def test_bad_messages_go_to_dead_letters(shared: Cluster) -> None:
    hid = "hh-bad"
    before = dead_letters_total(shared)  # other tests' markers are dead letters too
    await shared.send("fills", hid, b"{not json")
    await shared.send("fills", hid, {"fill_id": "x", "household_id": hid})  # invalid
    await shared.send(
        "cash-flows",
        "hh-nobody",
        {
            "flow_id": "c1",
            "household_id": "hh-nobody",
            "account_id": "a",
            "kind": "deposit",
            "amount": 5.0,
            "ts": "2026-11-25T10:00:00Z",
        },
    )  # unknown household
    await shared.send("households", hid, {"household_id": hid})  # invalid snapshot
    await shared.send("prices", "EQX", {"symbol": "EQX", "price": -3})

    def mine(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in msgs if m.get("key") in (hid, "hh-nobody", "EQX")]

    dead = mine(await shared.read("dead-letters", lambda m: len(mine(m)) >= 5))
    assert len(dead) == 5
    for d in dead:
        assert d["schema"] == "dead_letter/v1" and d["error"]
        assert isinstance(d["partition"], int) and isinstance(d["offset"], int)
    assert any(d["value"] == "{not json" and "JSON" in d["error"] for d in dead)
    assert any("unknown household" in d["error"] for d in dead)
    assert any(d["topic"].endswith("prices") and "price" in d["error"] for d in dead)
    # the stream goes on: a good snapshot afterwards is still processed
    hid2 = "hh-after-bad"
    await shared.send("households", hid2, snapshot(hid2, eq="EQY", fi="FIY"))
    await shared.send("prices", "EQY", price("EQY", 200.0))
    assert of(hid2)(await shared.read("orders", lambda m: bool(of(hid2)(m))))
    metrics = shared.workers[0].get("/metrics").decode()
    assert dead_letters_total(shared) == pytest.approx(before + 5)
    assert 'umh_solves_total{status="rebalanced"}' in metrics
