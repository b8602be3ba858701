"""Each agent with Faust's `agent.test_context()`: decode, apply, publish, dead-letter.

The table and the output topics are replaced by in-memory fakes (the real ones are exercised by
tests/integration); the solver is a fake that returns orders for whatever it is given.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from schemas import Household, Order, RebalanceResult, parse_household
from schemas.events import CashFlow
from streams.settings import Settings
from streams.worker.app import EPOCH, UmhApp, create_app
from streams.worker.state import HouseholdState, decode_state, encode_state

SNAPSHOT: dict[str, Any] = {
    "household_id": "hh-1",
    "as_of": "2026-11-24",
    "target": {"us_equity": 0.6, "fixed_income": 0.4},
    "buy_list": {"us_equity": ["VTI"], "fixed_income": ["BND"]},
    "accounts": [
        {
            "account_id": "hh-1-IRA",
            "type": "tax_deferred",
            "cash": 0.0,
            "lots": [
                {
                    "lot_id": "L-1",
                    "symbol": "VTI",
                    "quantity": 80,
                    "cost_basis": 5000.0,
                    "acquired": "2020-01-02",
                },
                {
                    "lot_id": "L-2",
                    "symbol": "BND",
                    "quantity": 20,
                    "cost_basis": 2000.0,
                    "acquired": "2020-01-02",
                },
            ],
        }
    ],
    "securities": {
        "VTI": {"price": 100.0, "asset_class": "us_equity"},
        "BND": {"price": 100.0, "asset_class": "fixed_income"},
    },
}


class DictStore:
    def __init__(self) -> None:
        self.data: dict[str, HouseholdState] = {}

    def get(self, household_id: str) -> HouseholdState | None:
        return self.data.get(household_id)

    def put(self, state: HouseholdState) -> None:
        self.data[state.household_id] = state

    def delete(self, household_id: str) -> None:
        self.data.pop(household_id, None)

    def ids(self) -> Iterable[str]:
        return list(self.data)


def fake_solve(h: Household, *, sequence: int = 1, time_limit_s: float = 2.0) -> RebalanceResult:
    rid = f"{h.household_id}:{h.as_of}:{sequence}"
    orders = (
        Order(f"{rid}:0", "hh-1-IRA", "VTI", "sell", 20, 100, 2000, "rebalance", ()),
        Order(f"{rid}:1", "hh-1-IRA", "BND", "buy", 20, 100, 2000, "rebalance"),
    )
    return RebalanceResult(h.household_id, h.as_of, rid, "rebalanced", orders)


@pytest.fixture
def persisted() -> list[tuple[int, HouseholdState]]:
    """(messages published so far, state) for every `persist` call, in order."""
    return []


@pytest.fixture
async def umh(
    persisted: list[tuple[int, HouseholdState]],
) -> AsyncIterator[tuple[UmhApp, list[tuple[str, str | None, dict[str, Any]]]]]:
    u = create_app(Settings(web_port=0, topic_prefix="agent."), solve=fake_solve)
    u.app.finalize()
    u.app.flow_control.resume()
    sent: list[tuple[str, str | None, dict[str, Any]]] = []

    async def publish(topic: str, key: str | None, value: bytes) -> None:
        sent.append((topic, key, orjson.loads(value)))

    store = DictStore()
    u.rebalancer.store = store
    u.rebalancer.publish = publish

    async def persist(state: HouseholdState) -> None:
        # what is durable when the orders go out: the store's value at this moment
        current = u.rebalancer.store.get(state.household_id)  # the store a test put in
        assert current is state, "persist must follow the table write of that very state"
        persisted.append((len(sent), current))

    u.rebalancer.persist = persist
    u.rebalancer.unknown_grace_s = 0.0  # dead-letter unknown households at once
    u.rebalancer.prices_ready = True  # no price feed here: the snapshots carry the prices
    yield u, sent
    u.rebalancer.close()


async def put(u: UmhApp, agent: Any, value: bytes, key: bytes) -> None:
    """Hand the agent one message and wait until the solves it queued are published."""
    await agent.put(value, key=key)
    await u.rebalancer.idle()


def fill_of(order: dict[str, Any], fill_id: str) -> dict[str, Any]:
    """A fill of the whole order at 100 (fill/v1)."""
    return {
        "fill_id": fill_id,
        "order_id": order["order_id"],
        "household_id": "hh-1",
        "account_id": order["account_id"],
        "symbol": order["symbol"],
        "side": order["side"],
        "quantity": order["quantity"],
        "price": 100.0,
        "ts": "2026-11-25T15:00:00Z",
    }


def topics(sent: list[tuple[str, str | None, dict[str, Any]]]) -> list[str]:
    return [t for t, _k, _v in sent]


async def test_snapshot_out_of_band_publishes_orders_and_alert(umh: Any) -> None:
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]
    rb = sent[0][2]
    assert rb["rebalance_id"] == "hh-1:2026-11-24:1" and sent[0][1] == "hh-1"
    assert sent[1][2]["action"] == "rebalance_submitted"
    state = u.rebalancer.store.get("hh-1")
    assert state.open_rebalance is not None and state.sequence == 1


async def test_fills_close_the_rebalance_and_replays_change_nothing(umh: Any) -> None:
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    rb = sent[0][2]
    async with u.agents["fills"].test_context() as agent:
        for _ in range(2):
            for i, o in enumerate(rb["orders"]):
                await put(u, agent, orjson.dumps(fill_of(o, f"f{i}")), key=b"hh-1")
    state = u.rebalancer.store.get("hh-1")
    assert state.open_rebalance is None and state.last_rebalance.rebalance_id == rb["rebalance_id"]
    assert set(state.applied_fills) == {"f0", "f1"}
    assert topics(sent)[:2] == ["agent.orders", "agent.drift-alerts"]
    assert "agent.orders" not in topics(sent)[2:], sent[2:]  # back in band: no new orders


async def test_the_sweep_expires_an_unfilled_rebalance_after_its_ttl_and_solves_again(
    umh: Any,
) -> None:
    u, sent = umh
    now = [1_000.0]
    u.rebalancer.clock = lambda: now[0]
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    first = sent[0][2]["rebalance_id"]
    ttl_s = u.rebalancer.settings.order_ttl_s
    now[0] += ttl_s - 1.0
    await u.rebalancer.sweep()
    await u.rebalancer.idle()
    assert u.rebalancer.store.get("hh-1").open_rebalance.result.rebalance_id == first
    # past the TTL while partitions move: nothing is expired then, nor forgotten
    now[0] += 2.0
    u.rebalancer.pause()
    await u.rebalancer.sweep()
    assert u.rebalancer.store.get("hh-1").open_rebalance.result.rebalance_id == first
    u.rebalancer.resume()
    sent.clear()
    await u.rebalancer.sweep()
    await u.rebalancer.idle()
    # expired, still out of band: solved again under the next sequence number
    orders = [v for t, _k, v in sent if t == "agent.orders"]
    assert [o["rebalance_id"] for o in orders] == ["hh-1:2026-11-24:2"]
    assert u.rebalancer.store.get("hh-1").open_rebalance.result.rebalance_id != first


def held(u: UmhApp, hid: str = "hh-1") -> dict[str, float]:
    state = u.rebalancer.store.get(hid)
    out: dict[str, float] = {}
    for lot in (lot for a in state.household.accounts for lot in a.lots):
        out[lot.symbol] = out.get(lot.symbol, 0.0) + lot.quantity
    return out


async def test_a_snapshot_record_read_again_keeps_the_fills_applied_since(umh: Any) -> None:
    # Kafka re-delivers a record unchanged at its offset (after a rebalance, a broker
    # failover): the same snapshot read again must not undo the fills applied after it
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")  # offset 0
    rb = sent[0][2]
    async with u.agents["fills"].test_context() as agent:
        for i, o in enumerate(rb["orders"]):
            await put(u, agent, orjson.dumps(fill_of(o, f"f{i}")), key=b"hh-1")
    assert held(u) == {"VTI": 60, "BND": 40}
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")  # offset 0 again
        assert held(u) == {"VTI": 60, "BND": 40}
        assert b"umh_snapshots_read_again_total 1.0" in u.metrics.render()
        # the same snapshot sent again on purpose (a later offset) replaces the holdings
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")  # offset 1
        assert held(u) == {"VTI": 80, "BND": 20}


async def test_a_households_partition_read_again_from_an_older_offset_changes_nothing(
    umh: Any,
) -> None:
    # the stall watch reads a partition again from its committed offset (a record skipped
    # while partitions moved): older snapshots and tombstones of the household come back too
    u, sent = umh
    older = {**SNAPSHOT, "accounts": [{**SNAPSHOT["accounts"][0], "cash": 500.0}]}
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(older), key=b"hh-1")  # offset 0
        await put(u, agent, None, key=b"hh-1")  # offset 1: deleted
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")  # offset 2
    rb = [v for t, _k, v in sent if t.endswith("orders")][-1]
    async with u.agents["fills"].test_context() as agent:
        for i, o in enumerate(rb["orders"]):
            await put(u, agent, orjson.dumps(fill_of(o, f"f{i}")), key=b"hh-1")
    assert held(u) == {"VTI": 60, "BND": 40}
    async with u.agents["households"].test_context() as agent:  # from offset 0 again
        await put(u, agent, orjson.dumps(older), key=b"hh-1")
        await put(u, agent, None, key=b"hh-1")
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    assert held(u) == {"VTI": 60, "BND": 40}
    assert b"umh_snapshots_read_again_total 3.0" in u.metrics.render()


async def test_cash_flow_agent_and_dead_letters(umh: Any) -> None:
    u, sent = umh
    async with u.agents["cash-flows"].test_context() as agent:
        await put(u, agent, b"{oops", key=b"hh-1")
        await put(
            u,
            agent,
            orjson.dumps(
                {
                    "flow_id": "c",
                    "household_id": "hh-1",
                    "account_id": "hh-1-IRA",
                    "kind": "deposit",
                    "amount": 10.0,
                    "ts": "2026-11-25T15:00:00Z",
                }
            ),
            key=b"hh-1",
        )
    assert topics(sent) == ["agent.dead-letters", "agent.dead-letters"]
    assert sent[0][2]["value"] == "{oops" and "JSON" in sent[0][2]["error"]
    assert "unknown household" in sent[1][2]["error"]
    balanced = {
        **SNAPSHOT,
        "accounts": [
            {
                **SNAPSHOT["accounts"][0],
                "lots": [
                    {**SNAPSHOT["accounts"][0]["lots"][0], "quantity": 60},
                    {**SNAPSHOT["accounts"][0]["lots"][1], "quantity": 40},
                ],
            }
        ],
    }
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(balanced), key=b"hh-1")
    async with u.agents["cash-flows"].test_context() as agent:
        await put(
            u,
            agent,
            orjson.dumps(
                {
                    "flow_id": "w",
                    "household_id": "hh-1",
                    "account_id": "hh-1-IRA",
                    "kind": "withdrawal_request",
                    "amount": 500.0,
                    "ts": "2026-11-25T15:00:00Z",
                }
            ),
            key=b"hh-1",
        )
    state = u.rebalancer.store.get("hh-1")
    assert state.household.accounts[0].cash_needed == 500.0
    assert topics(sent)[2:] == ["agent.orders", "agent.drift-alerts"]  # cash needed: a solve
    assert state.open_rebalance is not None and state.event_day == date(2026, 11, 25)


def through_changelog(state: HouseholdState) -> HouseholdState:
    return decode_state(encode_state(state))


def recovered(u: UmhApp) -> DictStore:
    """A survivor's view of the table: every state through the changelog's JSON."""
    store = DictStore()
    for hid in u.rebalancer.store.ids():
        state = u.rebalancer.store.get(hid)
        assert state is not None
        store.put(through_changelog(state))
    return store


async def test_open_rebalance_is_durable_before_its_orders_are_visible(
    umh: Any, persisted: list[tuple[int, HouseholdState]]
) -> None:
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]
    ((published_before, state),) = persisted
    assert published_before == 0  # written and acknowledged before any order went out
    assert state.open_rebalance is not None and not state.open_rebalance.published
    assert state.open_rebalance.result.rebalance_id == sent[0][2]["rebalance_id"]
    # once the orders are acknowledged the table says so: a restart does not publish again
    after = u.rebalancer.store.get("hh-1")
    assert after.open_rebalance is not None and after.open_rebalance.published
    u.rebalancer.store = recovered(u)
    u.rebalancer.rebuild()
    assert await u.rebalancer.republish_open(u.rebalancer.household_ids()) == 0


async def test_orders_wait_for_a_durable_write_that_failed_and_go_out_once_it_succeeds(
    umh: Any, persisted: list[tuple[int, HouseholdState]]
) -> None:
    """A changelog write refused during a broker failover is tried again; the orders go out
    only once it is acknowledged (published with the record lost, the next owner would solve
    the household again under the same rebalance id, with other orders)."""
    u, sent = umh
    acknowledge = u.rebalancer.persist
    failures = 2

    async def flaky(state: HouseholdState) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            assert not topics(sent), "an order went out before its record was durable"
            raise ConnectionError("broker gone")
        await acknowledge(state)

    u.rebalancer.persist = flaky
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    assert failures == 0
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]
    ((published_before, _state),) = persisted
    assert published_before == 0


async def test_a_durable_write_that_fails_while_partitions_move_publishes_nothing(
    umh: Any,
) -> None:
    """Partitions moving while the open rebalance's write fails: nothing is published (the
    recovery re-publishes the rebalance if its record made it, else solves afresh)."""
    u, sent = umh

    async def refused(state: HouseholdState) -> None:
        u.rebalancer.pause()  # the revocation comes while the write is under way
        raise ConnectionError("broker gone")

    u.rebalancer.persist = refused
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    assert "agent.orders" not in topics(sent)


async def test_a_recovery_that_completes_after_a_newer_revocation_does_not_resume(
    umh: Any,
) -> None:
    """Faust runs a recovery's callbacks even when the next rebalance has begun (its
    revocation came after this recovery's assignment): resuming then would let writes race
    the next replay of the changelog (an older record overwriting a newer write in memory).
    The worker stays paused until the recovery of the latest assignment completes."""
    u, _sent = umh
    table = next(iter(u.app.tables.values()))
    await u.app.on_partitions_revoked.send(set())
    await u.app.on_partitions_assigned.send(set())
    await u.app.on_partitions_revoked.send(set())  # the next rebalance begins
    await table.call_recover_callbacks()  # the first assignment's recovery completes
    assert u.rebalancer.moving
    await u.app.on_partitions_assigned.send(set())
    await table.call_recover_callbacks()
    assert not u.rebalancer.moving


async def test_a_recovery_cut_short_by_the_next_assignment_does_not_resume(
    umh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the next assignment comes while a recovery replays the changelog, Faust ends that
    replay where it stands and runs its callbacks as if it had read to the end (seen in a
    fault test: the worker then wrote a household's state from two rebalances before). The
    worker resumes only when the recovery started for the latest generation completes."""
    u, _sent = umh
    recovery = u.app.tables.recovery
    monkeypatch.setattr(u.app.consumer, "assignment", set)  # no consumer thread here
    await u.app.on_partitions_revoked.send(set())
    await u.app.on_partitions_assigned.send(set())
    first = u.app.consumer_generation_id
    await u.app.on_partitions_revoked.send(set())  # the next rebalance begins
    u.app.consumer_generation_id = first + 1  # as Faust's consumer sets it at an assignment
    await u.app.on_partitions_assigned.send(set())
    await recovery.on_recovery_completed(first)  # the first pass, cut short, "completes"
    assert u.rebalancer.moving
    await recovery.on_recovery_completed(first + 1)
    assert not u.rebalancer.moving


async def test_nothing_is_written_or_republished_while_partitions_move(umh: Any) -> None:
    """While the table is replayed its states may be older than the changelog's last word:
    a re-publication or a decision written from them would put that older state back."""
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    hid = "hh-1"
    opened = u.rebalancer.store.get(hid)
    replayed = through_changelog(
        replace(opened, open_rebalance=replace(opened.open_rebalance, published=False))
    )
    u.rebalancer.store.put(replayed)  # an older record of the replay, not yet the last one
    u.rebalancer.pause()
    sent.clear()
    assert await u.rebalancer.republish_open([hid], every=True) == 0
    assert sent == [] and u.rebalancer.store.get(hid) is replayed


async def test_recovery_republishes_the_open_rebalance_unchanged(
    umh: Any, persisted: list[tuple[int, HouseholdState]]
) -> None:
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    first = sent[0][2]
    # killed after the durable write, before the orders' ack: the survivor recovers exactly
    # what was persisted (an open rebalance not known to be published)
    ((_, durable),) = persisted
    survivor = DictStore()
    survivor.put(through_changelog(durable))
    u.rebalancer.store = survivor
    u.rebalancer.rebuild()
    sent.clear()
    assert await u.rebalancer.republish_open(u.rebalancer.household_ids()) == 1
    assert sent == [("agent.orders", "hh-1", first)]  # same rebalance/v1, same ids
    # published now: a second assignment does not publish it again
    assert await u.rebalancer.republish_open(u.rebalancer.household_ids()) == 0
    sent.clear()
    # and nothing new is solved while it is open: a re-check only reports pending orders
    sent.clear()
    await u.rebalancer.on_ticks({"VTI": (150.0, EPOCH, 0.0)})
    await u.rebalancer.idle()
    assert "agent.orders" not in topics(sent)
    # an expired one is not re-published (the sweep expires it and may solve again)
    u.rebalancer.clock = lambda: 1e12
    assert await u.rebalancer.republish_open(["hh-1"], every=True) == 0


async def test_solve_date_does_not_depend_on_the_worker(umh: Any) -> None:
    """The re-check after a takeover solves for the household's latest event date: the tick
    date the dead worker saw, not the older snapshot date."""
    u, sent = umh
    balanced = {
        **SNAPSHOT,
        "accounts": [
            {
                **SNAPSHOT["accounts"][0],
                "lots": [
                    {**SNAPSHOT["accounts"][0]["lots"][0], "quantity": 60},
                    {**SNAPSHOT["accounts"][0]["lots"][1], "quantity": 40},
                ],
            }
        ],
    }
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(balanced), key=b"hh-1")
    assert "agent.orders" not in topics(sent)
    table = recovered(u)
    # this worker sees the breach tick (dated the 25th) while it does not own the household
    u.rebalancer.store = DictStore()
    u.rebalancer.rebuild()
    tick_ts = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    await u.rebalancer.on_ticks({"VTI": (150.0, tick_ts, 0.0)})
    await u.rebalancer.idle()
    assert "agent.orders" not in topics(sent)
    # then takes the partition over and re-checks at the latest prices (EPOCH tick date)
    u.rebalancer.store = table
    u.rebalancer.rebuild()
    await u.rebalancer.on_ticks({"VTI": (150.0, EPOCH, 0.0)})
    await u.rebalancer.idle()
    orders = [v for t, _k, v in sent if t == "agent.orders"]
    assert [o["rebalance_id"] for o in orders] == ["hh-1:2026-11-25:1"]
    assert orders[0]["as_of"] == "2026-11-25"
    assert u.rebalancer.store.get("hh-1").event_day == date(2026, 11, 25)


async def test_a_household_changed_during_its_solve_is_solved_again_not_published_stale(
    umh: Any,
) -> None:
    u, sent = umh
    gate = threading.Event()
    seen: list[Household] = []

    def slow_solve(
        h: Household, *, sequence: int = 1, time_limit_s: float = 2.0
    ) -> RebalanceResult:
        seen.append(h)
        assert gate.wait(10)
        return fake_solve(h, sequence=sequence, time_limit_s=time_limit_s)

    u.rebalancer.close()
    u.rebalancer.solve = slow_solve
    async with u.agents["households"].test_context() as agent:
        await agent.put(orjson.dumps(SNAPSHOT), key=b"hh-1")
    while not seen:  # the first solve is running
        await asyncio.sleep(0.01)
    deposit = {
        "flow_id": "d",
        "household_id": "hh-1",
        "account_id": "hh-1-IRA",
        "kind": "deposit",
        "amount": 1000.0,
        "ts": "2026-11-24T15:00:00Z",
    }
    async with u.agents["cash-flows"].test_context() as agent:
        await agent.put(orjson.dumps(deposit), key=b"hh-1")
    gate.set()
    await u.rebalancer.idle()
    orders = [v for t, _k, v in sent if t == "agent.orders"]
    assert len(orders) == 1, sent  # the stale answer was dropped
    assert len(seen) >= 2 and seen[-1].accounts[0].cash == 1000.0
    assert (
        u.rebalancer.store.get("hh-1").open_rebalance.result.rebalance_id
        == (orders[0]["rebalance_id"])
    )


async def test_awaiting_prices_alert_then_orders_when_the_price_arrives(umh: Any) -> None:
    u, sent = umh
    snapshot = {**SNAPSHOT, "securities": {**SNAPSHOT["securities"]}}
    snapshot["securities"]["VTI"] = {"asset_class": "us_equity"}  # classified, no price
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(snapshot), key=b"hh-1")
    assert [(t, v["action"], v["missing_prices"]) for t, _k, v in sent] == [
        ("agent.drift-alerts", "awaiting_prices", ["VTI"])
    ]
    tick_ts = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    await u.rebalancer.on_ticks({"VTI": (100.0, tick_ts, 0.0)})
    await u.rebalancer.idle()
    assert topics(sent)[1:] == ["agent.orders", "agent.drift-alerts"]
    assert sent[2][2]["action"] == "rebalance_submitted"


async def test_no_household_is_evaluated_before_the_prices_are_read_back(umh: Any) -> None:
    u, sent = umh
    u.rebalancer.prices_ready = False
    snapshot = {**SNAPSHOT, "securities": {**SNAPSHOT["securities"]}}
    snapshot["securities"]["VTI"] = {"asset_class": "us_equity"}
    arriving = asyncio.ensure_future(
        u.rebalancer.on_snapshot(parse_household(snapshot, prices_required=False))
    )
    for _ in range(10):  # let it run as far as it goes without the prices
        await asyncio.sleep(0)
    assert not arriving.done() and sent == []  # waits: the feed may still hold the price
    tick_ts = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    await u.rebalancer.prices_caught_up({"VTI": (100.0, tick_ts, 0.0)})
    await arriving
    await u.rebalancer.idle()
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]


async def test_a_restart_reads_the_security_master_back_without_decoding_per_record(
    umh: Any,
) -> None:
    """Households classified by the security master (no `securities` in their snapshots)
    are recovered before the feed has read the master back: each is re-indexed once when
    it has, not once per record of every symbol it holds, and then solved."""
    from schemas.household import parse_securities
    from schemas.reader import Reader
    from streams.worker.state import from_snapshot

    u, sent = umh
    snapshot = {k: v for k, v in SNAPSHOT.items() if k != "securities"}
    u.rebalancer.store.put(from_snapshot(parse_household(snapshot, prices_required=False), None))
    u.rebalancer.prices_ready = False  # a restart: the feed reads prices and master back
    u.rebalancer.rebuild()
    decoded: list[str] = []
    get = u.rebalancer.store.get
    u.rebalancer.store.get = lambda hid: decoded.append(hid) or get(hid)
    master = parse_securities(
        Reader(),
        {
            "VTI": {"asset_class": "us_equity"},
            "BND": {"asset_class": "fixed_income"},
            "VXUS": {"asset_class": "intl_equity"},
        },
        "securities",
        price_required=False,
    )
    for _ in range(3):  # records of the held symbols, read back several times
        for security in master.values():
            u.rebalancer.on_security(security)
    assert decoded == []  # nothing decoded per record (was: each holder, per record)
    tick_ts = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    await u.rebalancer.prices_caught_up(
        {"VTI": (100.0, tick_ts, 0.0), "BND": (100.0, tick_ts, 0.0)}
    )
    await u.rebalancer.idle()
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]  # 80/20 against 60/40


def vti_and_bnd(hid: str, vti: int) -> dict[str, Any]:
    """SNAPSHOT's household as `hid`, holding `vti` VTI and 100 - vti BND (60/40 target)."""
    raw = {**SNAPSHOT, "household_id": hid}
    lots = SNAPSHOT["accounts"][0]["lots"]
    raw["accounts"] = [
        {
            **SNAPSHOT["accounts"][0],
            "account_id": "hh-1-IRA",
            "lots": [{**lots[0], "quantity": vti}, {**lots[1], "quantity": 100 - vti}],
        }
    ]
    return raw


async def test_a_market_wide_fall_is_solved_furthest_first(umh: Any) -> None:
    u, _sent = umh
    solved: list[str] = []

    def recording(h: Household, *, sequence: int = 1, time_limit_s: float = 2.0) -> RebalanceResult:
        solved.append(h.household_id)
        return fake_solve(h, sequence=sequence, time_limit_s=time_limit_s)

    u.rebalancer.close()
    u.rebalancer.solve = recording
    for i, vti in enumerate((60, 57, 59, 56, 58)):  # 60/40 target: fewer VTI, further out after
        hid = f"hh-{i}"
        async with u.agents["households"].test_context() as agent:
            await put(u, agent, orjson.dumps(vti_and_bnd(hid, vti)), key=hid.encode())
    assert solved == []  # all inside their bands at 100
    await u.rebalancer.on_ticks({"VTI": (75.0, datetime(2026, 11, 25, tzinfo=UTC), 0.0)})
    await u.rebalancer.idle()
    assert solved == ["hh-3", "hh-1", "hh-4", "hh-2", "hh-0"]


async def test_a_tick_leaves_a_household_with_open_orders_undecoded(umh: Any) -> None:
    """Orders open, their alert given: a tick that leaves the same classes out of band has
    nothing to decide, and the household's state is not read for it."""
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")  # 80/20 against 60/40
    assert topics(sent) == ["agent.orders", "agent.drift-alerts"]
    decoded: list[str] = []
    read = u.rebalancer.store.get
    u.rebalancer.store.get = lambda hid: decoded.append(hid) or read(hid)
    day = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    await u.rebalancer.on_ticks({"VTI": (101.0, day, 0.0)})
    await u.rebalancer.idle()
    assert decoded == [] and len(sent) == 2
    await u.rebalancer.on_ticks({"VTI": (40.0, day, 0.0)})  # 61.5/38.5: back inside the bands
    await u.rebalancer.idle()
    assert decoded == ["hh-1"] and u.rebalancer.store.get("hh-1").band_state is None


async def test_a_small_new_breach_is_solved_after_a_no_order_solve_inside_the_bands(
    umh: Any,
) -> None:
    """A solve that published nothing pauses a household's re-solves on ticks (a band it
    cannot reach is not retried per tick); a household that was inside its bands then (a
    harvest or cash check) and is out of them now is a new breach, however small."""
    u, sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(vti_and_bnd("hh-1", 60)), key=b"hh-1")
    assert sent == []  # 60/40 on target
    u.rebalancer._quiet_until["hh-1"] = (u.rebalancer.clock() + 30.0, 0.0)  # a no-order solve
    day = datetime(2026, 11, 25, tzinfo=UTC)
    await u.rebalancer.on_ticks({"VTI": (125.0, day, 0.0)})  # 65.2% against 60 +/- 5
    await u.rebalancer.idle()
    assert "agent.orders" in topics(sent)


async def test_queued_households_are_solved_at_the_latest_prices_decoded_once(umh: Any) -> None:
    """A market-wide move arrives as several tick batches: a household still waiting in the
    queue is not decoded and decided again for each batch; it moves to its new place in the
    queue and is solved at the prices of the moment its solve starts."""
    u, _sent = umh
    seen: list[tuple[str, float | None]] = []

    def recording(h: Household, *, sequence: int = 1, time_limit_s: float = 2.0) -> RebalanceResult:
        seen.append((h.household_id, h.securities["VTI"].price))
        return fake_solve(h, sequence=sequence, time_limit_s=time_limit_s)

    u.rebalancer.close()
    u.rebalancer.solve = recording
    for i, vti in enumerate((60, 57, 59)):
        hid = f"hh-{i}"
        async with u.agents["households"].test_context() as agent:
            await put(u, agent, orjson.dumps(vti_and_bnd(hid, vti)), key=hid.encode())
    decoded: list[str] = []
    read = u.rebalancer.store.get
    u.rebalancer.store.get = lambda hid: decoded.append(hid) or read(hid)
    u.rebalancer.persist = None  # the fixture's durable write reads the store too
    day = datetime(2026, 11, 25, tzinfo=UTC)
    for price in (75.0, 72.0, 70.0):  # three batches before a solve starts
        await u.rebalancer.on_ticks({"VTI": (price, day, 0.0)})
    await u.rebalancer.idle()
    assert seen == [("hh-1", 70.0), ("hh-2", 70.0), ("hh-0", 70.0)]  # furthest first, at 70
    assert sorted(decoded) == ["hh-0", "hh-1", "hh-2"]  # once each, at the first batch


async def test_a_solve_finishing_while_partitions_move_is_dropped_then_solved_after_recovery(
    umh: Any,
) -> None:
    """Between a revocation and the recovery of the new assignment the table is replayed from
    its changelog: an open rebalance written then could be overwritten by the older state and
    solved again under the same id with other orders. A result that arrives then is neither
    written nor published; the recovery's re-check solves the household once."""
    u, sent = umh
    gate = threading.Event()
    seen: list[Household] = []

    def slow_solve(
        h: Household, *, sequence: int = 1, time_limit_s: float = 2.0
    ) -> RebalanceResult:
        seen.append(h)
        assert gate.wait(10)
        return fake_solve(h, sequence=sequence, time_limit_s=time_limit_s)

    u.rebalancer.close()
    u.rebalancer.solve = slow_solve
    async with u.agents["households"].test_context() as agent:
        await agent.put(orjson.dumps(SNAPSHOT), key=b"hh-1")
    while not seen:  # the solve is running
        await asyncio.sleep(0.01)
    await u.app.on_partitions_revoked.send(set())  # the worker's own revocation handler
    assert u.rebalancer.moving
    gate.set()
    await u.rebalancer.idle()
    assert "agent.orders" not in topics(sent)
    assert u.rebalancer.store.get("hh-1").open_rebalance is None  # nothing written
    # what the table's recovery callback does once the new assignment is recovered
    u.rebalancer.rebuild()
    u.rebalancer.resume()
    await u.rebalancer.recheck(u.rebalancer.household_ids())
    await u.rebalancer.idle()
    orders = [v for t, _k, v in sent if t == "agent.orders"]
    assert [o["rebalance_id"] for o in orders] == ["hh-1:2026-11-24:1"]
    assert u.rebalancer.store.get("hh-1").open_rebalance.result.rebalance_id == (
        "hh-1:2026-11-24:1"
    )


async def test_an_event_handled_while_partitions_move_applies_to_the_recovered_table(
    umh: Any,
) -> None:
    """A deposit whose handling straddles a revocation (Faust stops waiting for the agents after
    a while) must not change the table before recovery replays it: the change would be
    overwritten with the older state while the deposit's offset is committed (lost for good).
    It waits, and applies to the recovered state."""
    u, _sent = umh
    async with u.agents["households"].test_context() as agent:
        await put(u, agent, orjson.dumps(SNAPSHOT), key=b"hh-1")
    hid = "hh-1"
    before = u.rebalancer.store.get(hid)
    u.rebalancer.pause()
    deposit = CashFlow(
        "d-1", hid, "hh-1-IRA", "deposit", 500.0, datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    )
    arriving = asyncio.ensure_future(u.rebalancer.on_cash_flow(deposit))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not arriving.done() and u.rebalancer.store.get(hid) is before
    # the recovery replays the changelog: the table holds what it says (here: that state)
    u.rebalancer.store = recovered(u)
    u.rebalancer.rebuild()
    u.rebalancer.resume()
    assert await arriving
    cash = u.rebalancer.store.get(hid).household.accounts[0].cash
    assert abs(cash - (before.household.accounts[0].cash + 500.0)) < 1e-9
