"""Solves off the event loop, on every core: a pool of solver processes fed by a priority queue.

`SolverPool` runs `solve(household, sequence=..., time_limit_s=...)` in `UMH_SOLVER_PROCESSES`
processes (spawned, each imports the solver once; 0 runs them on one thread of the worker, as a
test's fake solver needs). The input is the `Household` dataclass as the solver sees it (only the
securities it references), pickled: ~5.5 KB and ~1 ms pickle+unpickle for a household of 60
lots (measured; the JSON of the same household parses in ~1.2 ms with validation it does not
need here). The answer comes back as the frozen `RebalanceResult`.

`SolveQueue` orders waiting households by how far they are outside their bands, furthest
first; a household is in it at most once (a newer entry replaces the older one).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from schemas import Household, RebalanceResult
from solver.drift import DriftReport
from streams.worker.state import HouseholdState

SolveFn = Callable[..., RebalanceResult]
#: Each household's whole solve is bounded by this (the contract's --time-limit default).
SOLVE_TIME_LIMIT_S = 2.0


#: How often a solver process checks that the worker that started it is still alive.
PARENT_CHECK_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """End this solver process once its worker is gone: a worker killed with SIGKILL cannot
    shut its pool down, and its solver processes would otherwise live on as orphans."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(0)


def _start_solver_process(parent_pid: int) -> None:
    """Process initializer: follow the worker's life, and import the solver (and HiGHS) once,
    not on the first solve."""
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    _warm()


def _warm() -> None:
    import solver  # noqa: F401


def _solve_in_process(h: Household, sequence: int, time_limit_s: float) -> RebalanceResult:
    from solver import solve

    return solve(h, sequence=sequence, time_limit_s=time_limit_s)


def _solve_many(
    solve: SolveFn | None, items: list[tuple[Household, int]], time_limit_s: float
) -> list[RebalanceResult | BaseException]:
    """Several solves in one hand-off (one pickle round trip for all); a failure is returned."""
    if solve is None:
        from solver import solve as default

        solve = default
    out: list[RebalanceResult | BaseException] = []
    for h, sequence in items:
        try:
            out.append(solve(h, sequence=sequence, time_limit_s=time_limit_s))
        except Exception as exc:  # one household's defect never fails the others
            out.append(exc)
    return out


class SolverPool:
    """`processes` > 0 and no custom `solve`: that many solver processes; else one thread."""

    def __init__(self, processes: int, solve: SolveFn | None = None) -> None:
        self.custom = solve
        self.processes = processes if solve is None else 0
        self.size = max(1, self.processes)
        self._executor: Executor | None = None

    def _start(self) -> Executor:
        if self._executor is None:
            if self.processes > 0:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_solver_process,
                    initargs=(os.getpid(),),
                )
            else:
                # one thread: HiGHS is used from a single thread only (FINDINGS)
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="umh-solve")
        return self._executor

    def warm(self) -> None:
        """Start the processes now (their start-up is not paid by the first breach)."""
        executor = self._start()
        if isinstance(executor, ProcessPoolExecutor):
            for _ in range(self.processes):
                executor.submit(_warm)

    async def solve(
        self, h: Household, sequence: int, time_limit_s: float = SOLVE_TIME_LIMIT_S
    ) -> RebalanceResult:
        loop = asyncio.get_running_loop()
        executor = self._start()
        if self.custom is not None:
            fn = self.custom
            return await loop.run_in_executor(
                executor, lambda: fn(h, sequence=sequence, time_limit_s=time_limit_s)
            )
        if self.processes == 0:
            return await loop.run_in_executor(
                executor, _solve_in_process, h, sequence, time_limit_s
            )
        return await loop.run_in_executor(executor, _solve_in_process, h, sequence, time_limit_s)

    async def solve_many(
        self, items: list[tuple[Household, int]], time_limit_s: float = SOLVE_TIME_LIMIT_S
    ) -> list[RebalanceResult | BaseException]:
        """Solve (household, sequence) pairs in one hand-off to one process, in order."""
        loop = asyncio.get_running_loop()
        executor = self._start()
        return await loop.run_in_executor(executor, _solve_many, self.custom, items, time_limit_s)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


@dataclass(frozen=True, slots=True)
class SolveJob:
    """A household waiting for a solve: the view and drift it was decided on, and why."""

    household_id: str
    priority: float  # how far outside its bands (larger first)
    household: Household  # the solver's view at the decision
    report: DriftReport  # its drift, computed once for the decision and handed on
    why: tuple[str, ...]
    version: int  # the household's state version at the decision (stale check)
    origin_s: float | None  # record time of the tick that caused it (tick-to-order)
    state: HouseholdState  # the state decided on: still current while `version` is
    market: int = 0  # the worker's count of tick batches and master changes at the decision


class SolveQueue:
    """Furthest outside its bands first; at most one entry per household."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._jobs: dict[str, tuple[int, SolveJob]] = {}
        self._count = itertools.count()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, household_id: object) -> bool:
        return household_id in self._jobs

    def put(self, job: SolveJob) -> None:
        old = self._jobs.get(job.household_id)
        if old is not None and job.origin_s is None:
            job = _keep_origin(job, old[1])
        n = next(self._count)
        self._jobs[job.household_id] = (n, job)
        heapq.heappush(self._heap, (-job.priority, n, job.household_id))
        self._ready.set()

    async def get(self) -> SolveJob:
        while True:
            while self._heap:
                _, n, hid = heapq.heappop(self._heap)
                entry = self._jobs.get(hid)
                if entry is not None and entry[0] == n:
                    del self._jobs[hid]
                    return entry[1]
            self._ready.clear()
            await self._ready.wait()

    def get_nowait(self) -> SolveJob | None:
        """The next job if one waits, else None."""
        while self._heap:
            _, n, hid = heapq.heappop(self._heap)
            entry = self._jobs.get(hid)
            if entry is not None and entry[0] == n:
                del self._jobs[hid]
                return entry[1]
        return None

    def discard(self, household_id: str) -> None:
        self._jobs.pop(household_id, None)

    def waiting(self, household_id: str) -> SolveJob | None:
        """The household's job if it waits (not yet handed to a solver process)."""
        entry = self._jobs.get(household_id)
        return None if entry is None else entry[1]

    def reprioritize(self, household_id: str, priority: float) -> None:
        """Move a waiting job to its household's new distance outside its bands."""
        entry = self._jobs.get(household_id)
        if entry is not None:
            self.put(replace(entry[1], priority=priority))


def _keep_origin(job: SolveJob, old: SolveJob) -> SolveJob:
    return replace(job, origin_s=old.origin_s)


def job_payload_bytes(h: Household) -> int:
    """Bytes one solve sends to its process (for `umh bench stream`)."""
    import pickle

    return len(pickle.dumps(h, protocol=pickle.HIGHEST_PROTOCOL))


__all__: list[Any] = ["SolveJob", "SolveQueue", "SolverPool", "job_payload_bytes"]
