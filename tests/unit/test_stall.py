"""The input-partition stall watch (streams/worker/stall.py): a partition with records waiting
whose read position does not move for STALL_S is reported, once per period; a moving or caught-up
partition never is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.worker.stall import StallWatch


def test_a_partition_that_stops_with_records_waiting_is_reported_once_a_period() -> None:
    w: StallWatch[str] = StallWatch(stall_s=30.0)
    assert w.observe({"fills/0": 54}, {"fills/0": 74}, now=0.0) == []
    assert w.observe({"fills/0": 54}, {"fills/0": 80}, now=20.0) == []
    assert w.observe({"fills/0": 54}, {"fills/0": 80}, now=30.0) == ["fills/0"]
    assert w.observe({"fills/0": 54}, {"fills/0": 80}, now=40.0) == []  # once a period
    assert w.observe({"fills/0": 54}, {"fills/0": 80}, now=60.0) == ["fills/0"]


def test_a_partition_that_moves_or_has_nothing_waiting_is_never_reported() -> None:
    w: StallWatch[str] = StallWatch(stall_s=30.0)
    for t in range(0, 300, 10):
        moving = {"fills/1": 100 + t}  # reads on
        idle = {"fills/2": 7}  # caught up: its end is its position
        assert w.observe({**moving, **idle}, {"fills/1": 500, "fills/2": 7}, now=float(t)) == []


def test_unknown_positions_and_cleared_state_start_again() -> None:
    w: StallWatch[str] = StallWatch(stall_s=30.0)
    w.observe({"p": 1}, {"p": 9}, now=0.0)
    w.clear()  # partitions moved
    assert w.observe({"p": 1}, {"p": 9}, now=31.0) == []
    assert w.observe({}, {"p": 9}, now=70.0) == []  # position unknown: not judged
    assert w.observe({"p": 1}, {"p": 9}, now=71.0) == []  # a fresh start


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60))
def test_a_position_that_keeps_moving_is_never_stalled(steps: list[int]) -> None:
    w: StallWatch[str] = StallWatch(stall_s=30.0)
    pos = 0
    for i, step in enumerate(steps):
        pos += step
        assert w.observe({"p": pos}, {"p": pos + 10}, now=10.0 * i) == []


def test_a_partition_whose_agent_is_busy_is_not_judged_but_its_clock_runs_on() -> None:
    w: StallWatch[str] = StallWatch(stall_s=8.0)
    assert w.observe({"fills/2": 61}, {"fills/2": 64}, now=0.0) == []
    # the agent is handling an event (it may hold offset 61): not reported, however long
    assert w.observe({"fills/2": 61}, {"fills/2": 64}, now=9.0, busy={"fills/2"}) == []
    assert w.observe({"fills/2": 61}, {"fills/2": 64}, now=20.0, busy={"fills/2"}) == []
    # idle again with 61 still not acknowledged: stalled since 0, reported at once
    assert w.observe({"fills/2": 61}, {"fills/2": 64}, now=22.0) == ["fills/2"]
