"""The solver pool and its queue: furthest first, one entry per household, real processes."""

from __future__ import annotations

import asyncio
from dataclasses import fields

import numpy as np
import orjson

from schemas import Lot
from solver import household_drift, solve
from streams.tools.synthetic import make_book, make_universe
from streams.worker.solving import SolveJob, SolveQueue, SolverPool, job_payload_bytes
from streams.worker.state import (
    _LOT_FIELDS,
    decode_state,
    encode_state,
    from_snapshot,
    state_to_json,
    to_household,
    with_band_state,
)


def _book(n: int = 6) -> list:
    rng = np.random.default_rng(3)
    universe = make_universe(60, rng)
    return [
        to_household(from_snapshot(h, None), securities=universe)
        for h in make_book(n, universe, rng, n_lots=60, drifted=True)
    ], universe


def _job(h, priority: float, version: int = 0) -> SolveJob:
    state = from_snapshot(h, None)
    return SolveJob(
        h.household_id, priority, h, household_drift(h), ("band_breach",), version, None, state
    )


async def test_queue_gives_the_furthest_first_and_keeps_one_entry_per_household() -> None:
    (a, b, c, *_), _ = _book()
    q = SolveQueue()
    q.put(_job(a, 0.01))
    q.put(_job(b, 0.09))
    q.put(_job(c, 0.05))
    q.put(_job(a, 0.20, version=1))  # a newer decision replaces the older one
    assert len(q) == 3
    got = [await q.get() for _ in range(3)]
    assert [(j.household_id, j.version) for j in got] == [
        (a.household_id, 1),
        (b.household_id, 0),
        (c.household_id, 0),
    ]


async def test_pool_processes_answer_what_the_solver_answers_in_process() -> None:
    book, _ = _book(4)
    pool = SolverPool(2)
    try:
        results = await asyncio.gather(*(pool.solve(h, 3) for h in book))
    finally:
        pool.close()
    for h, r in zip(book, results, strict=True):
        here = solve(h, sequence=3)
        assert r.rebalance_id == here.rebalance_id and r.status == here.status
        assert [(o.order_id, o.quantity) for o in r.orders] == [
            (o.order_id, o.quantity) for o in here.orders
        ]


def test_a_solve_sends_a_compact_household() -> None:
    book, _ = _book(3)
    assert all(job_payload_bytes(h) < 12_000 for h in book)


def test_table_encoding_round_trips_and_is_compact() -> None:
    book, _ = _book(5)
    for h in book:
        state = from_snapshot(h, None)
        value = encode_state(state)
        assert decode_state(value) == state
        assert decode_state(orjson.dumps(state_to_json(state))) == state  # older values
        assert len(value) * 3 < len(str(state_to_json(state)))
    # the positional lot rows follow Lot's fields: a new field there must be encoded too
    assert tuple(f.name for f in fields(Lot)) == _LOT_FIELDS


def test_a_decoded_state_is_written_back_as_it_was_read() -> None:
    """The table value of a state read from the table is the value read (the household part
    is not encoded again), and a change of the stream's memory alone keeps that part."""
    book, _ = _book(3)
    for h in book:
        value = encode_state(from_snapshot(h, None))
        read = decode_state(value)
        assert encode_state(read) == value
        changed = with_band_state(read, "breached")
        assert decode_state(encode_state(changed)) == changed


def test_solver_processes_end_when_their_worker_is_killed() -> None:
    """A worker killed with SIGKILL cannot shut its pool down: its solver processes notice
    and exit instead of living on as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import asyncio, multiprocessing, sys, time\n"
        "from streams.worker.solving import SolverPool\n"
        "pool = SolverPool(1)\n"
        "pool.warm()\n"
        "time.sleep(2.0)\n"
        "print(*(p.pid for p in multiprocessing.active_children()), flush=True)\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    children = [int(x) for x in worker.stdout.readline().split()]
    assert children, "the pool started no solver process"
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 15.0
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in children), f"orphaned solver processes {children}"
