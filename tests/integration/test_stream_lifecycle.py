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
    await cluster.processed("households", hid)
    await cluster.send("prices", "VTI", price("VTI", 150.0))
    first = of(hid)(await cluster.read("orders", lambda m: bool(of(hid)(m))))
    # as_of is the triggering event's date: the tick's, or the snapshot's when the tick's price
    # reached the worker before the snapshot did
    assert [o["rebalance_id"] for o in first] == [f"{hid}:{first[0]['as_of']}:1"]
    # still out of band, nothing filled: after the TTL the next solve publishes again
    # (and again after the next TTL: by then the second solve's alert, had there been one, is
    # out, since a solve publishes its alert right after its orders)
    later = of(hid)(await cluster.read("orders", lambda m: len(of(hid)(m)) >= 3, timeout_s=20))
    assert [o["rebalance_id"].rsplit(":", 1)[1] for o in later][:3] == ["1", "2", "3"]
    alerts = of(hid)(await cluster.read_to_end("drift-alerts"))
    assert len(alerts) == 1, "one alert per band state change, not one per solve"


async def test_restart_keeps_state_and_open_rebalance(cluster: Cluster) -> None:
    worker = cluster.worker()
    worker.start()
    hid = "hh-restart"
    await cluster.send("households", hid, snapshot(hid))
    await cluster.processed("households", hid)
    await cluster.send("prices", "VTI", price("VTI", 150.0))
    assert of(hid)(await cluster.read("orders", lambda m: bool(of(hid)(m))))
    await asyncio.sleep(1.5)  # let the changelog write and the offsets commit
    assert worker.stop() == 0
    again = cluster.worker()
    again.start()
    await cluster.send("prices", "VTI", price("VTI", 155.0))
    await cluster.processed("prices", "VTI")  # the tick evaluated by the restarted worker
    orders = of(hid)(await cluster.read_to_end("orders"))
    assert len(orders) == 1, "the open rebalance survived the restart: no second one"
    metrics = again.get("/metrics").decode()
    assert 'umh_solves_total{status="rebalanced"}' not in metrics, "solved again"
    assert "umh_households 1.0" in metrics, "the household's state was recovered"
    alerts = of(hid)(await cluster.read_to_end("drift-alerts"))
    assert [a["action"] for a in alerts] == ["rebalance_submitted"]


async def test_two_workers_share_the_partitions(cluster: Cluster) -> None:
    a, b = cluster.worker(), cluster.worker()
    a.start()
    b.start()
    hids = [f"hh-pair-{i}" for i in range(8)]
    for hid in hids:
        await cluster.send("households", hid, snapshot(hid))
    for hid in hids:
        await cluster.processed("households", hid)
    await cluster.send("prices", "VTI", price("VTI", 150.0))

    def all_in(msgs: list[dict[str, Any]]) -> bool:
        return {m["household_id"] for m in msgs} >= set(hids)

    orders = await cluster.read("orders", all_in, timeout_s=20)
    by_hh: dict[str, int] = {}
    for m in orders:
        by_hh[m["household_id"]] = by_hh.get(m["household_id"], 0) + 1
    assert set(by_hh) == set(hids) and set(by_hh.values()) == {1}
    # both workers solved some (the umh-worker header names the producer of each message)
    producers = {m["_worker"] for m in orders if m["household_id"] in hids}
    assert producers == {f"http://127.0.0.1:{w.web_port}" for w in (a, b)}
