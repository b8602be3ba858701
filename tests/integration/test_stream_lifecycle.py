"""Worker life cycle: order expiry by TTL, restart with state intact, two workers sharing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Cluster, price, snapshot

pytestmark = pytest.mark.integration


def of(hid: str) -> Any:
    return lambda msgs: [m for m in msgs if m.get("household_id") == hid]


async def test_unfilled_orders_expire_and_a_new_rebalance_follows(cluster: Cluster) -> None:
    cluster.worker(UMH_ORDER_TTL_S="3").start()
    hid = "hh-ttl"
    await cluster.send("households", hid, snapshot(hid))
    await asyncio.sleep(0.3)
    await cluster.send("prices", "VTI", price("VTI", 150.0))
    first = of(hid)(await cluster.read("orders", lambda m: bool(of(hid)(m))))
    # as_of is the triggering event's date: the tick's, or the snapshot's when the tick's price
    # reached the worker before the snapshot did
    assert [o["rebalance_id"] for o in first] == [f"{hid}:{first[0]['as_of']}:1"]
    # still out of band, nothing filled: after the TTL the next solve publishes again
    later = of(hid)(await cluster.read("orders", lambda m: len(of(hid)(m)) >= 2, timeout_s=12))
    assert [o["rebalance_id"].rsplit(":", 1)[1] for o in later][:2] == ["1", "2"]
    alerts = of(hid)(await cluster.read("drift-alerts", lambda m: False, timeout_s=1))
    assert len(alerts) == 1, "one alert per band state change, not one per solve"


async def test_restart_keeps_state_and_open_rebalance(cluster: Cluster) -> None:
    worker = cluster.worker()
    worker.start()
    hid = "hh-restart"
    await cluster.send("households", hid, snapshot(hid))
    await asyncio.sleep(0.3)
    await cluster.send("prices", "VTI", price("VTI", 150.0))
    assert of(hid)(await cluster.read("orders", lambda m: bool(of(hid)(m))))
    await asyncio.sleep(1.5)  # let the changelog write and the offsets commit
    assert worker.stop() == 0
    again = cluster.worker()
    again.start()
    await cluster.send("prices", "VTI", price("VTI", 155.0))
    await asyncio.sleep(3.0)
    orders = of(hid)(await cluster.read("orders", lambda m: False, timeout_s=1.5))
    assert len(orders) == 1, "the open rebalance survived the restart: no second one"
    assert "status=rebalanced" not in again.log()
    metrics = again.get("/metrics").decode()
    assert "umh_households 1.0" in metrics, "the household's state was recovered"
    alerts = of(hid)(await cluster.read("drift-alerts", lambda m: False, timeout_s=1))
    assert [a["action"] for a in alerts] == ["rebalance_submitted"]


async def test_two_workers_share_the_partitions(cluster: Cluster) -> None:
    a, b = cluster.worker(), cluster.worker()
    a.start()
    b.start()
    hids = [f"hh-pair-{i}" for i in range(8)]
    for hid in hids:
        await cluster.send("households", hid, snapshot(hid))
    await asyncio.sleep(1.0)
    await cluster.send("prices", "VTI", price("VTI", 150.0))

    def all_in(msgs: list[dict[str, Any]]) -> bool:
        return {m["household_id"] for m in msgs} >= set(hids)

    orders = await cluster.read("orders", all_in, timeout_s=20)
    by_hh: dict[str, int] = {}
    for m in orders:
        by_hh[m["household_id"]] = by_hh.get(m["household_id"], 0) + 1
    assert set(by_hh) == set(hids) and set(by_hh.values()) == {1}
    logs = a.log() + b.log()
    assert logs.count("status=rebalanced") == len(hids)
    assert "status=rebalanced" in a.log() and "status=rebalanced" in b.log()
