"""The worker's shell around the decision core: decode -> decide -> solve -> publish.

No Faust here: the Faust app hands it a `Store` (the table) and a `Publisher` (its topics), so
agent tests can give it fakes. An event changes a household with the pure functions of
`state.py`, under that household's asyncio lock; then `_evaluate` builds the solver's view,
computes the drift once (or takes it from the tick batch's vectorised drift), and asks
`solver.decide.decide` what to do. An alert is published at once; a solve goes to a priority
queue (furthest outside its bands first) that dispatchers drain into a pool of solver processes
(`streams/worker/solving.py`), so the event loop never waits for a solve and every core solves.

Rules the shell keeps: at most one solve in flight and one open rebalance per household; the
open rebalance is durable in the changelog (`persist`) before its orders are published; a
household whose state changed while its solve ran is evaluated again, its stale answer dropped
(price ticks alone do not count as a change: the next tick re-evaluates against the open orders);
no household is evaluated before the price feed has caught up (`prices_caught_up`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from schemas import Household, RebalanceResult, Security, dumps, result_to_json
from schemas.events import CashFlow, Fill, drift_alert_to_json
from solver.decide import Decision, Standing, after_solve, band_excess, decide
from solver.drift import DriftReport, household_drift, missing_prices
from streams.settings import Settings
from streams.worker.book import BookRow, batch_drift, book_row
from streams.worker.metrics import Metrics
from streams.worker.solving import SolveFn, SolveJob, SolveQueue, SolverPool
from streams.worker.state import (
    HouseholdState,
    SnapshotMark,
    apply_cash_flow,
    apply_fill,
    check_known_order,
    expire_open_rebalance,
    from_snapshot,
    household_day,
    mark_published,
    next_sequence,
    open_rebalance,
    open_rebalance_expired,
    read_again,
    to_household,
    with_band_state,
    with_event_day,
)

log = logging.getLogger(__name__)

#: After a solve that published nothing, a household is not re-solved on ticks for this long
#: (a fill, cash flow or snapshot lifts it): a band that cannot be reached is not retried per tick.
#: A household inside its bands at that solve and out of them now is solved at once.
QUIET_AFTER_NO_ORDERS_S = 30.0
#: A fill or cash flow for a household not seen yet waits this long for its snapshot: the topics
#: are consumed independently, so a snapshot sent just before a cash flow can arrive after it.
UNKNOWN_GRACE_S = 3.0
#: ... unless its band excess grew by more than this since (a market move re-opens it).
QUIET_DRIFT_STEP = 0.005
# Seconds between two harvest checks of one household on ticks (wall clock: a pacing timer).
HARVEST_RECHECK_S = 30.0
# Solves dispatched at once per solver process: one solving, one being persisted and published.
DISPATCH_PER_PROCESS = 2
# Solves handed to a solver process at once (one pickle round trip): the top of the queue.
SOLVES_PER_HANDOFF = 8
# Households evaluated on the loop between two yields (lets dispatchers feed the pool early).
EVALUATE_SLICE = 32
#: How long one attempt at the open rebalance's durable write may take (the drain of the
#: queued table writes included), and how long its attempts go on before the solve is given
#: up (a write the broker refuses for good: the household is solved again later).
PERSIST_ATTEMPT_S = 30.0
PERSIST_GIVE_UP_S = 120.0


class Store(Protocol):
    def get(self, household_id: str) -> HouseholdState | None: ...
    def put(self, state: HouseholdState) -> None: ...
    def delete(self, household_id: str) -> None: ...
    def ids(self) -> Iterable[str]: ...


class Publisher(Protocol):
    def __call__(self, topic: str, key: str | bytes | None, value: bytes) -> Awaitable[Any]: ...


#: Makes the store's latest write of a household durable (the table's changelog record
#: acknowledged); awaited before a rebalance's orders are published.
Persist = Callable[[HouseholdState], Awaitable[None]]


class UnknownHousehold(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Meta:
    """What a tick needs to know of a household beside its drift, without decoding its state."""

    band_state: str | None
    opened_at_s: float | None
    cash_short: bool
    harvests: bool
    published: bool  # its open rebalance's orders are known to be on `orders` (or none open)


@dataclass
class Rebalancer:
    settings: Settings
    store: Store
    publish: Publisher
    metrics: Metrics = field(default_factory=Metrics)
    solve: SolveFn | None = None
    persist: Persist | None = None
    clock: Callable[[], float] = time.time
    unknown_grace_s: float = UNKNOWN_GRACE_S
    #: False until the price feed has read every price back (`prices_caught_up`); events are
    #: applied meanwhile, evaluated once it is. Agent tests without a feed start True.
    prices_ready: bool = True
    #: True while partitions move (`pause` at a revocation, `resume` once the table's recovery
    #: completes): recovery replays the changelog into the table, so a state written meanwhile
    #: could be overwritten by an older one while its input's offset is committed (a deposit
    #: lost for good). Nothing is evaluated and no solve result is written then; an event
    #: still being handled waits, and applies to the recovered state; the recovery's re-check
    #: evaluates every owned household again.
    moving: bool = False
    #: Revocations so far, and their count when partitions were last assigned: a recovery that
    #: completes after a newer revocation must not resume (that rebalance's replay is next).
    pauses: int = 0
    assigned_at: int = 0
    _steady: asyncio.Event | None = None
    prices: dict[str, float] = field(default_factory=dict)  # latest price of every symbol
    price_days: dict[str, date] = field(default_factory=dict)  # symbol -> its price's date
    securities: dict[str, Security] = field(default_factory=dict)  # the security master
    _reclassify: set[str] = field(default_factory=set)  # symbols changed during the read-back
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _harvest_checked: dict[str, float] = field(default_factory=dict)  # hid -> clock() of the check
    _rows: dict[str, BookRow | None] = field(default_factory=dict)
    _meta: dict[str, Meta] = field(default_factory=dict)  # what a tick checks, not decoded
    # (opened_at_s, hid) of every open rebalance seen, earliest first: the sweep pops the ones
    # past their TTL instead of scanning (entries of rebalances closed since are skipped)
    _expiry: list[tuple[float, str]] = field(default_factory=list)
    _index: dict[str, set[str]] = field(default_factory=dict)  # symbol -> household ids
    # hid -> (until when, its band excess then): a solve that published nothing is not retried
    # on ticks until then, unless the household has moved further out since
    _quiet_until: dict[str, tuple[float, float]] = field(default_factory=dict)
    _out_of_band: set[str] = field(default_factory=set)
    _arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    _given_up: dict[str, float] = field(default_factory=dict)  # unknown id -> when (no re-wait)
    _version: dict[str, int] = field(default_factory=dict)  # hid -> state writes so far
    _inflight: set[str] = field(default_factory=set)
    _queue: SolveQueue | None = None
    _pool: SolverPool | None = None
    _dispatchers: list[asyncio.Task[None]] = field(default_factory=list)
    _busy: int = 0
    _prices_event: asyncio.Event | None = None
    _deferred: int = 0  # jobs waiting for their household's running solve
    # tick batches and security master changes so far: a queued job decided at the current
    # count is still at the latest prices when its solve starts
    _market_changes: int = 0
    _idle: asyncio.Event | None = None

    # ----------------------------------------------------------------- ownership and caches

    def lock(self, household_id: str) -> asyncio.Lock:
        lock = self._locks.get(household_id)
        if lock is None:
            lock = self._locks[household_id] = asyncio.Lock()
        return lock

    def household_ids(self) -> list[str]:
        return list(self._rows)

    def state(self, household_id: str) -> HouseholdState | None:
        return self.store.get(household_id)

    def rebuild(self) -> None:
        """Re-index the households this worker owns now (after an assignment or recovery)."""
        self._rows.clear()
        self._meta.clear()
        self._expiry.clear()
        self._index.clear()
        self._out_of_band.clear()
        for hid in list(self.store.ids()):
            state = self.store.get(hid)
            if state is not None:
                self._track(state, force=True)
        self.metrics.households.set(len(self._rows))
        self.metrics.out_of_band.set(len(self._out_of_band))
        log.info("owned households=%d symbols=%d", len(self._rows), len(self._index))

    def forget(self, household_ids: Iterable[str]) -> None:
        """Stop tracking these households (revoked, deleted). A solve of theirs still running
        is stale when it returns (another worker may have changed the household meanwhile):
        its version moves on, so the result is evaluated again, never published as it is."""
        for hid in household_ids:
            self._untrack(hid)
            self._version[hid] = self._version.get(hid, 0) + 1
            if self._queue is not None:
                self._queue.discard(hid)
        self.metrics.households.set(len(self._rows))
        self.metrics.out_of_band.set(len(self._out_of_band))

    def _untrack(self, hid: str) -> None:
        row = self._rows.pop(hid, None)
        self._meta.pop(hid, None)
        for symbol in row.symbols if row else ():
            self._index.get(symbol, set()).discard(hid)
        self._out_of_band.discard(hid)
        self._quiet_until.pop(hid, None)

    def _track(self, state: HouseholdState, *, force: bool = False) -> None:
        hid = state.household_id
        hh = state.household
        if force or hid not in self._rows:
            # holdings, cash or configuration changed (else the row is still right)
            old = self._rows.get(hid)
            for symbol in old.symbols if old else ():
                self._index.get(symbol, set()).discard(hid)
            h = to_household(state, securities=self.securities)
            self._rows[hid] = book_row(h)
            for symbol in state.held_symbols:
                self._index.setdefault(symbol, set()).add(hid)
        opened_at_s = None if state.open_rebalance is None else state.open_rebalance.opened_at_s
        known = self._meta.get(hid)
        if opened_at_s is not None and (known is None or known.opened_at_s is not opened_at_s):
            heapq.heappush(self._expiry, (opened_at_s, hid))  # a rebalance opened (or re-read)
        self._meta[hid] = Meta(
            state.band_state,
            opened_at_s,
            any(a.cash_needed > a.cash for a in hh.accounts),
            hh.options.harvest_losses and hh.mode == "rebalance",
            state.open_rebalance is None or state.open_rebalance.published,
        )
        if state.band_state and not state.band_state.startswith("awaiting:"):
            self._out_of_band.add(hid)
        else:
            self._out_of_band.discard(hid)

    def _save(self, before: HouseholdState | None, state: HouseholdState) -> HouseholdState:
        """Write the household's new state (when it is new).

        Not while partitions move: the recovery that follows replays the changelog into the
        table, and a replayed older record would overwrite this write in memory while the
        changelog's last word is this one; the worker's next write would then be made from the
        older state. The writes that can come then are decisions made before the revocation
        (a band state, an alert, a publication mark), derived again by the recovery's
        re-check; the inputs (snapshots, fills, flows) wait for the table (`_steady_table`).
        """
        if self.moving and state is not before:
            log.info("household=%s write left out: partitions moving", state.household_id)
            self.metrics.writes_left_out.inc()
            return before if before is not None else state
        if state is not before:
            with self.metrics.stage("persist"):
                self.store.put(state)
                self._version[state.household_id] = self._version.get(state.household_id, 0) + 1
                # the book row only when holdings, cash or configuration changed
                self._track(state, force=before is None or state.household is not before.household)
            self.metrics.households.set(len(self._rows))
            self.metrics.out_of_band.set(len(self._out_of_band))
        return state

    def pause(self) -> None:
        self.moving = True
        self.pauses += 1
        if self._steady is not None:
            self._steady.clear()

    def assigned(self) -> None:
        """Partitions were assigned: the recovery that completes next is this assignment's."""
        self.assigned_at = self.pauses

    def recovered(self, superseded: bool = False) -> bool:
        """The table's recovery completed: resume, unless it is not the latest assignment's.

        Two ways to tell: a revocation came after the assignment it recovered (the next
        rebalance has begun), or `superseded`: the recovery was started for an earlier
        generation than the consumer's latest. Faust ends a replay interrupted by the next
        assignment and runs its callbacks as if it had read to the end
        (`streams.kafka.recovery_generation`); resuming then writes states the replay had
        reached. The next recovery resumes. Returns whether it resumed."""
        if self.pauses != self.assigned_at:
            log.info("recovery completed after a newer revocation: still paused")
            return False
        if superseded:
            log.info("recovery of an earlier assignment completed: still paused")
            return False
        self.resume()
        return True

    def resume(self) -> None:
        self.moving = False
        if self._steady is not None:
            self._steady.set()

    async def _steady_table(self) -> None:
        """Wait while partitions move (an event's change lands on the recovered table)."""
        while self.moving:
            if self._steady is None:
                self._steady = asyncio.Event()
            await self._steady.wait()

    # ----------------------------------------------------------------- event handlers

    async def _prices_known(self) -> None:
        """Events wait until the price feed has read every price back: applying them earlier
        would only compete with that read for the loop (a restart replays its inputs)."""
        if self.prices_ready:
            return
        if self._prices_event is None:
            self._prices_event = asyncio.Event()
        await self._prices_event.wait()

    async def on_snapshot(
        self, household: Household, mark: SnapshotMark | None = None
    ) -> HouseholdState:
        """Replace the household's holdings and configuration (`from_snapshot`). The same
        `households` record read again (`mark`: a re-delivery after a rebalance or a broker
        failover) changes nothing: it would undo the fills applied since."""
        await self._prices_known()
        hid = household.household_id
        # A snapshot's own prices count as of its as_of until a later tick (contract, 4).
        for symbol, sec in household.securities.items():
            if sec.price is not None and self.price_days.get(symbol, date.min) < household.as_of:
                self.prices[symbol] = sec.price
                self.price_days[symbol] = household.as_of
        async with self.lock(hid):
            await self._steady_table()
            before = self.store.get(hid)
            if before is not None and mark is not None and read_again(before, mark):
                log.info("household=%s snapshot at offset %d read again: kept", hid, mark.offset)
                self.metrics.snapshots_read_again.inc()
                return before
            state = self._save(before, from_snapshot(household, before, mark))
            self._quiet_until.pop(hid, None)
            saved = await self._evaluate(hid, household.as_of)
        arrived = self._arrived.pop(hid, None)
        if arrived is not None:
            arrived.set()
        self._given_up.pop(hid, None)
        return saved or state

    async def on_delete(self, household_id: str, offset: int | None = None) -> None:
        """Forget the household. A tombstone at `offset` (its `households` partition) below
        the snapshot its state came from is an older record read again: the household stays."""
        async with self.lock(household_id):
            await self._steady_table()
            held = self.store.get(household_id)
            mark = None if held is None else held.snapshot_mark
            if offset is not None and mark is not None and offset < mark.offset:
                log.info("household=%s tombstone at %d read again: kept", household_id, offset)
                self.metrics.snapshots_read_again.inc()
                return
            self.store.delete(household_id)
            self.forget([household_id])  # moves its version on: a solve in flight is stale

    async def on_fill(self, fill: Fill) -> bool:
        def change(s: HouseholdState) -> tuple[HouseholdState, bool]:
            return apply_fill(check_known_order(s, fill), fill)

        return await self._apply(fill.household_id, fill.ts.date(), change)

    async def on_cash_flow(self, flow: CashFlow) -> bool:
        return await self._apply(
            flow.household_id, flow.ts.date(), lambda s: apply_cash_flow(s, flow)
        )

    async def _apply(
        self,
        hid: str,
        day: date,
        change: Callable[[HouseholdState], tuple[HouseholdState, bool]],
    ) -> bool:
        await self._prices_known()
        if self.store.get(hid) is None:
            await self._wait_for_snapshot(hid)
        async with self.lock(hid):
            await self._steady_table()
            before = self.store.get(hid)
            if before is None:
                raise UnknownHousehold(f"unknown household {hid!r} (no snapshot seen)")
            state, changed = change(before)  # ValidationError propagates: nothing changed
            if not changed:
                return False
            self._quiet_until.pop(hid, None)
            self._save(before, state)
            await self._evaluate(hid, day)
            return True

    async def _wait_for_snapshot(self, hid: str) -> None:
        now = self.clock()
        if self.unknown_grace_s <= 0 or now - self._given_up.get(hid, -1e18) < 60.0:
            return
        event = self._arrived.setdefault(hid, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), self.unknown_grace_s)
        except TimeoutError:
            self._given_up[hid] = now
            if len(self._given_up) > 10_000:
                self._given_up.clear()
        finally:
            self._arrived.pop(hid, None)

    def on_security(self, security: Security) -> None:
        known = self.securities.get(security.symbol)
        self.securities[security.symbol] = security
        if known == security:
            return  # the same record again (a re-published master): every row still holds
        self._market_changes += 1
        if not self.prices_ready:
            # The feed is reading the master back (a start, a restart): the holders are
            # re-indexed once when it has caught up, not once per record of each symbol they
            # hold (a household of 60 symbols was decoded 60 times).
            self._reclassify.add(security.symbol)
            return
        self._retrack(self._index.get(security.symbol, ()))

    def _retrack(self, household_ids: Iterable[str]) -> None:
        """Rebuild the rows of these households (a security they hold has changed)."""
        for hid in list(household_ids):
            state = self.store.get(hid)
            if state is not None:
                self._track(state, force=True)

    def _take_ticks(self, ticks: Mapping[str, tuple[float, datetime, float]]) -> None:
        self._market_changes += 1
        for symbol, (price, ts, _t) in ticks.items():
            day = ts.date()
            known = self.price_days.get(symbol)
            if known is not None and day < known:
                continue  # older than the price we hold (a snapshot's, or an earlier tick's)
            self.prices[symbol] = price
            self.price_days[symbol] = day

    async def prices_caught_up(self, ticks: Mapping[str, tuple[float, datetime, float]]) -> int:
        """The price feed has read every price back: take them, then evaluate every owned
        household once (none was evaluated before; each is solved for its own event date)."""
        self._take_ticks(ticks)
        symbols, self._reclassify = self._reclassify, set()
        self._retrack({hid for symbol in symbols for hid in self._index.get(symbol, ())})
        self.prices_ready = True
        if self._prices_event is not None:
            self._prices_event.set()
        return await self.recheck(self.household_ids())

    async def recheck(self, household_ids: Iterable[str]) -> int:
        """Evaluate these households at the latest prices (after recovery or catch-up): the
        vectorised drift picks those that may want something; each of them is decided."""
        return await self._evaluate_many(set(household_ids), {}, from_tick=False)

    async def on_ticks(self, ticks: Mapping[str, tuple[float, datetime, float]]) -> int:
        """A coalesced batch: symbol -> (price, event ts, record time s). Returns the households
        evaluated (whose solves, if any, are queued)."""
        self._take_ticks(ticks)
        if not self.prices_ready:
            return 0
        affected: set[str] = set()
        for symbol in ticks:
            affected.update(self._index.get(symbol, ()))
        return await self._evaluate_many(affected, ticks, from_tick=True)

    async def _evaluate_many(
        self,
        affected: set[str],
        ticks: Mapping[str, tuple[float, datetime, float]],
        *,
        from_tick: bool,
    ) -> int:
        if not affected:
            return 0
        # a household whose symbols are not all classified yet has no row: decide it directly
        # (it awaits prices or the security master)
        unrowed = sorted(h for h in affected if h in self._rows and self._rows[h] is None)
        ids = sorted(h for h in affected if self._rows.get(h) is not None)
        rows = [r for h in ids if (r := self._rows[h]) is not None]
        with self.metrics.stage("decide"):
            batch = batch_drift(rows, self.prices)
        now = self.clock()
        candidates: list[tuple[float, str, int, float | None]] = []
        ttl_s = self.settings.order_ttl_s
        for i, hid in enumerate(ids):
            meta = self._meta.get(hid)
            if meta is None:
                continue
            row = rows[i]
            candidate = (
                bool(batch.breached[i].any())
                or not batch.priced[i]
                or meta.band_state is not None
                or meta.cash_short
                or (meta.opened_at_s is not None and now - meta.opened_at_s >= ttl_s)
                or (meta.harvests and self._harvest_due(hid, now))
            )
            if not candidate:
                continue
            held = [ticks[s] for s in row.symbols if s in ticks]
            origin = min((t for _p, _ts, t in held), default=None)
            candidates.append((-float(batch.excess[i]), hid, i, origin))
        candidates.sort()  # furthest outside its bands first
        for n, (below, hid, i, origin) in enumerate(candidates):
            if batch.priced[i] and self._waiting(hid) is not None:
                # Still queued, unchanged but for prices: it moves to its new place in the
                # queue, and is decided again at the prices of its hand-off (`_refreshed`),
                # not decoded and decided once per tick batch of a market-wide move.
                assert self._queue is not None
                self._queue.reprioritize(hid, -below)
                continue
            report = batch.report(i) if batch.priced[i] else None
            if report is not None and self._nothing_new(hid, report, now):
                continue
            async with self.lock(hid):
                await self._evaluate(hid, date.min, origin, report=report, from_tick=from_tick)
            if n % EVALUATE_SLICE == EVALUATE_SLICE - 1:
                await asyncio.sleep(0)  # let the dispatchers start on the first solves
        for hid in unrowed:
            async with self.lock(hid):
                await self._evaluate(hid, date.min, from_tick=from_tick)
        return len(candidates) + len(unrowed)

    def _nothing_new(self, hid: str, report: DriftReport, now: float) -> bool:
        """Whether deciding would do nothing, known without decoding the state: its orders are
        open (not expired) and the alert for these very classes out of band was given (what
        `decide` answers then: solver.decide, the pending-orders branch). After a market-wide
        move these are the households rebalanced just before it, a third of a book."""
        meta = self._meta.get(hid)
        return (
            meta is not None
            and meta.opened_at_s is not None
            and now - meta.opened_at_s < self.settings.order_ttl_s
            and meta.band_state == (",".join(report.out_of_band) or None)
        )

    def _waiting(self, hid: str) -> SolveJob | None:
        """The household's queued job, if it waits and its state is the one it was decided on."""
        job = None if self._queue is None else self._queue.waiting(hid)
        if job is None or job.version != self._version.get(hid, 0):
            return None
        return job

    def _refreshed(self, job: SolveJob) -> SolveJob | None:
        """The job decided again at the latest prices (they may have moved since it was
        queued); None when the decision is no longer the same kind of solve (then the household
        is evaluated again in full)."""
        if job.market == self._market_changes:
            return job  # no tick or security change since it was decided
        state, h, _ = self._view(job.state, date.min)
        if state.open_rebalance is not job.state.open_rebalance or missing_prices(h):
            return None
        with self.metrics.stage("decide"):
            report = household_drift(h)
            standing = self._standing(state, from_tick=False, report=report)
            decision = decide(h, report, standing, self._now())
        if not decision.solve or decision.alert is not None or decision.alerted != state.band_state:
            return None
        return replace(
            job, household=h, report=report, why=decision.solve, priority=decision.priority
        )

    def _harvest_due(self, hid: str, now: float) -> bool:
        """A harvest is not urgent: re-check a household for one at most every
        HARVEST_RECHECK_S, so that half the book is not re-solved for it on every tick."""
        if now - self._harvest_checked.get(hid, -1e18) < HARVEST_RECHECK_S:
            return False
        self._harvest_checked[hid] = now
        return True

    def _opened_at(self, hid: str) -> float | None:
        meta = self._meta.get(hid)
        return None if meta is None else meta.opened_at_s

    async def sweep(self) -> None:
        """Expire open rebalances past their TTL (wall clock) and re-check those households."""
        now = self.clock()
        ttl_s = self.settings.order_ttl_s
        due: list[str] = []
        while self._expiry and now - self._expiry[0][0] >= ttl_s:
            due.append(heapq.heappop(self._expiry)[1])
        for hid in dict.fromkeys(due):
            opened_at_s = self._opened_at(hid)
            if opened_at_s is None or now - opened_at_s < ttl_s:
                continue  # closed, or a newer rebalance opened since (its own entry waits)
            async with self.lock(hid):
                await self._evaluate(hid, date.min)
            still = self._opened_at(hid)
            if still is not None and now - still >= ttl_s:
                # not expired by that evaluation (partitions moving, prices not read back
                # yet): the next sweep tries again
                heapq.heappush(self._expiry, (still, hid))

    # ----------------------------------------------------------------- decide

    def _view(
        self, state: HouseholdState, day: date
    ) -> tuple[HouseholdState, Household, DriftReport | None]:
        """The household at its latest event date, as the solver sees it, expired orders gone."""
        day = max(day, household_day(state, self.price_days))
        state = with_event_day(state, day)
        if open_rebalance_expired(state, self.clock(), self.settings.order_ttl_s):
            assert state.open_rebalance is not None
            log.info(
                "household=%s rebalance=%s expired after ttl_s=%g",
                state.household_id,
                state.open_rebalance.result.rebalance_id,
                self.settings.order_ttl_s,
            )
            state = expire_open_rebalance(state)
        h = to_household(state, day, securities=self.securities, prices=self.prices)
        return state, h, None

    def _standing(
        self, state: HouseholdState, *, from_tick: bool, report: DriftReport | None = None
    ) -> Standing:
        quiet = False
        paused = self._quiet_until.get(state.household_id)
        if from_tick and paused is not None and paused[0] > self.clock():
            excess = None if report is None else band_excess(report)
            # a household inside its bands at that solve (a harvest or cash check) and out of
            # them now is a new breach, however small: only a band already missed waits
            quiet = excess is None or (
                excess <= paused[1] + QUIET_DRIFT_STEP and not paused[1] <= 0.0 < excess
            )
        return Standing(state.open_rebalance is not None, state.band_state, quiet)

    async def _evaluate(
        self,
        hid: str,
        day: date,
        origin_s: float | None = None,
        *,
        report: DriftReport | None = None,
        from_tick: bool = False,
    ) -> HouseholdState | None:
        """Decide about one household now (its lock held) and act: alert, or queue a solve."""
        if not self.prices_ready or self.moving:
            return None
        with self.metrics.stage("decode"):
            before = self.store.get(hid)
        if before is None:
            return None
        with self.metrics.stage("decide"):
            state, h, _ = self._view(before, day)
            if report is None and not missing_prices(h):
                report = household_drift(h)
            standing = self._standing(state, from_tick=from_tick, report=report)
            decision = decide(h, report, standing, self._now())
        state = await self._act(state, decision)
        if (
            state.band_state != before.band_state
            or state.open_rebalance is not before.open_rebalance
            or state.last_rebalance is not before.last_rebalance
        ):
            state = self._save(before, state)
        # else only the event day moved (the ticks' date): derived again from the prices'
        # dates whenever needed, so not worth a changelog write of its own
        if decision.solve and report is not None and not self.moving:
            if hid in self._inflight:
                log.debug("household=%s re-evaluated after its solve in flight", hid)
            self._enqueue(
                SolveJob(
                    hid,
                    decision.priority,
                    h,
                    report,
                    decision.solve,
                    self._version.get(hid, 0),
                    origin_s,
                    state,
                    self._market_changes,
                )
            )
        return state

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _act(self, state: HouseholdState, decision: Decision) -> HouseholdState:
        if decision.alert is not None:
            await self.publish(
                self.settings.topic("drift-alerts"),
                state.household_id,
                dumps(drift_alert_to_json(decision.alert)),
            )
        return with_band_state(state, decision.alerted)

    # ----------------------------------------------------------------- solve

    def _enqueue(self, job: SolveJob) -> None:
        if self._queue is None:
            self._queue = SolveQueue()
        self._queue.put(job)
        self._start_dispatchers()

    def _requeue(self, job: SolveJob) -> None:
        self._deferred -= 1
        self._enqueue(job)

    def _start_dispatchers(self) -> None:
        if self._dispatchers:
            return
        if self._pool is None:
            self._pool = SolverPool(self.settings.solver_processes, self.solve)
        if self._idle is None:
            self._idle = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._dispatchers = [
            loop.create_task(self._dispatch())
            for _ in range(self._pool.size * DISPATCH_PER_PROCESS)
        ]

    def start(self) -> None:
        """Start the solver processes now, not on the first breach."""
        if self._pool is None:
            self._pool = SolverPool(self.settings.solver_processes, self.solve)
        self._pool.warm()

    async def idle(self) -> None:
        """Wait until no solve is queued or running (tests, benches)."""
        while (self._queue is not None and len(self._queue)) or self._busy or self._deferred:
            await asyncio.sleep(0.005)

    @property
    def queued(self) -> int:
        return 0 if self._queue is None else len(self._queue)

    @property
    def solving(self) -> int:
        return self._busy

    async def _dispatch(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < SOLVES_PER_HANDOFF and (job := self._queue.get_nowait()):
                jobs.append(job)
            self._busy += len(jobs)
            try:
                await self._run(jobs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("solve dispatch failed for %d households", len(jobs))
            finally:
                self._busy -= len(jobs)

    async def _run(self, jobs: list[SolveJob]) -> None:
        ready: list[tuple[SolveJob, int]] = []
        for job in jobs:
            hid = job.household_id
            if hid in self._inflight:
                # one solve per household at a time: this one after the running one
                self._deferred += 1
                asyncio.get_running_loop().call_later(0.01, self._requeue, job)
                continue
            fresh = self._refreshed(job) if self._version.get(hid, 0) == job.version else None
            if fresh is None:
                async with self.lock(hid):
                    await self._evaluate(hid, date.min, job.origin_s)  # changed since queued
            else:
                ready.append((fresh, next_sequence(job.state)))
                self._inflight.add(hid)
        if not ready:
            return
        started = time.perf_counter()
        assert self._pool is not None
        try:
            results = await self._pool.solve_many([(j.household, seq) for j, seq in ready])
        except Exception as exc:  # the pool itself failed (a process died): alerts, logs
            log.exception("solver pool failed: %s", exc)
            results = [exc] * len(ready)
        finally:
            for job, _ in ready:
                self._inflight.discard(job.household_id)
        elapsed = (time.perf_counter() - started) / len(ready)
        # The households of one hand-off are distinct: their results are published side by
        # side, so their changelog acknowledgements overlap instead of queueing one round trip
        # after another (each household's own steps stay in order under its lock).
        finished = await asyncio.gather(
            *(
                self._finish(job, outcome, elapsed)
                for (job, _), outcome in zip(ready, results, strict=True)
            ),
            return_exceptions=True,
        )
        for (job, _), failure in zip(ready, finished, strict=True):
            if isinstance(failure, Exception):
                log.error("household=%s result not handled", job.household_id, exc_info=failure)
            elif isinstance(failure, BaseException):
                raise failure  # cancelled: the worker is stopping

    async def _finish(
        self, job: SolveJob, outcome: RebalanceResult | BaseException, elapsed: float
    ) -> None:
        hid = job.household_id
        result: RebalanceResult | None = None
        if isinstance(outcome, BaseException):
            log.error("household=%s solve failed: %r", hid, outcome)
            self.metrics.solves.labels(status="exception").inc()
        else:
            result = outcome
        async with self.lock(hid):
            if self._version.get(hid, 0) != job.version:
                # the household changed while its solve ran: that answer is stale
                log.info("household=%s changed during its solve; evaluated again", hid)
                await self._evaluate(hid, date.min, job.origin_s)
                return
            await self._publish_result(job.state, job, result, elapsed)

    async def _publish_result(
        self,
        before: HouseholdState,
        job: SolveJob,
        result: RebalanceResult | None,
        elapsed: float,
    ) -> None:
        hid = job.household_id
        h = job.household
        if self.moving:
            # written now, the open rebalance could be overwritten by the table's recovery
            # and solved again under another id: dropped, nothing published (re-checked after)
            log.info("household=%s solve result dropped: partitions moving", hid)
            return
        state = with_event_day(before, h.as_of)
        standing = self._standing(state, from_tick=False)
        if result is None:
            self._quiet_until[hid] = (self.clock() + QUIET_AFTER_NO_ORDERS_S, job.priority)
            failed = RebalanceResult(hid, h.as_of, "", "solver_error")
            state = await self._act(
                state, after_solve(h, job.report, standing, failed, self._now())
            )
            self._save(before, state)
            return
        self.metrics.solves.labels(status=result.status).inc()
        self.metrics.solve_seconds.observe(elapsed)
        self.metrics.solver_seconds.inc((result.solve_ms or 0.0) / 1000.0)
        log.info(
            "household=%s status=%s orders=%d solve_ms=%.1f rebalance=%s",
            hid,
            result.status,
            len(result.orders),
            result.solve_ms or elapsed * 1000,
            result.rebalance_id,
        )
        if result.status == "rebalanced" and result.orders:
            # Durable before visible: the open rebalance (marked unpublished) is in the table's
            # changelog before a single order is on `orders`. A worker killed in between
            # leaves either nothing written (then nothing was published either, and the
            # survivor solves afresh) or an unpublished open rebalance, which the survivor
            # publishes, unchanged (`republish_open`). Never two rebalance ids.
            state = open_rebalance(state, result, self.clock())
            state = self._save(before, state)
            if not await self._persist(before, state, job.priority):
                return
            with self.metrics.stage("publish"):
                message = dumps(result_to_json(result))
            await self.publish(self.settings.topic("orders"), hid, message)
            opened = state
            state = mark_published(state)  # written with the rest (no wait): if lost, the
            # survivor publishes the same orders again, which the OMS de-duplicates
            if job.origin_s is not None:
                self.metrics.tick_to_order.observe(max(0.0, self.clock() - job.origin_s))
            self._quiet_until.pop(hid, None)
            decision = after_solve(h, job.report, standing, result, self._now())
            self._save(opened, await self._act(state, decision))
            return
        if result.status in ("infeasible", "solver_error", "invalid_input"):
            log.warning(
                "household=%s status=%s messages=%s errors=%s",
                hid,
                result.status,
                "; ".join(result.messages),
                "; ".join(str(e) for e in result.errors),
            )
        self._quiet_until[hid] = (self.clock() + QUIET_AFTER_NO_ORDERS_S, job.priority)
        decision = after_solve(h, job.report, standing, result, self._now())
        self._save(before, await self._act(state, decision))

    async def _persist(
        self, before: HouseholdState, state: HouseholdState, priority: float
    ) -> bool:
        """Make the open rebalance durable (its changelog record acknowledged); True once it
        is, and only then may its orders be published.

        A failed write is tried again: an order published with its record lost would be
        solved again under the same rebalance id by the next owner, with other orders. When
        partitions move meanwhile, nothing is published: the recovery re-publishes the open
        rebalance if its record made it, else the household is solved afresh. A write refused
        for longer than PERSIST_GIVE_UP_S gives the solve up (the open rebalance withdrawn).
        """
        if self.persist is None:
            return True
        hid = state.household_id
        started = self.clock()
        delay = 0.2
        while True:
            try:
                await asyncio.wait_for(self.persist(state), PERSIST_ATTEMPT_S)
                return True
            except Exception as exc:
                self.metrics.durable_write_retries.inc()
                failure = exc
            if self.moving:
                log.warning(
                    "household=%s open rebalance not confirmed durable (%r) and partitions "
                    "moving: not published",
                    hid,
                    failure,
                )
                return False
            if self.clock() - started > PERSIST_GIVE_UP_S:
                log.error(
                    "household=%s open rebalance not durable after %.0f s (%r): not published,"
                    " solved again later",
                    hid,
                    PERSIST_GIVE_UP_S,
                    failure,
                )
                self._save(state, before)
                self._quiet_until[hid] = (self.clock() + QUIET_AFTER_NO_ORDERS_S, priority)
                return False
            log.warning(
                "household=%s open rebalance not confirmed durable (%r): trying again in %.1f s",
                hid,
                failure,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)

    async def republish_open(self, household_ids: Iterable[str], *, every: bool = False) -> int:
        """Publish again, unchanged, each open rebalance not known to be published
        (`every`: each open rebalance).

        Called after partitions are assigned: a worker killed between writing an open
        rebalance and the acknowledgement of its orders left orders nobody may have seen.
        Same rebalance/v1, same ids: the OMS de-duplicates by order_id. Expired ones are left
        to the sweep. Returns how many were published.
        """
        count = 0
        now = self.clock()
        for hid in sorted(household_ids):
            meta = self._meta.get(hid)
            if meta is not None and (meta.opened_at_s is None or (meta.published and not every)):
                continue  # nothing to publish (known without decoding the state)
            async with self.lock(hid):
                if self.moving:
                    # the table is being replayed: its states may be older than the changelog's
                    # last word; the next recovery re-publishes
                    return count
                state = self.store.get(hid)
                if state is None or state.open_rebalance is None:
                    continue
                if state.open_rebalance.published and not every:
                    continue
                if open_rebalance_expired(state, now, self.settings.order_ttl_s):
                    continue
                result = state.open_rebalance.result
                await self.publish(
                    self.settings.topic("orders"), hid, dumps(result_to_json(result))
                )
                self._save(state, mark_published(state))
                log.info(
                    "household=%s rebalance=%s re-published after assignment",
                    hid,
                    result.rebalance_id,
                )
                count += 1
        return count

    def close(self) -> None:
        for task in self._dispatchers:
            task.cancel()
        self._dispatchers = []
        if self._pool is not None:
            self._pool.close()
            self._pool = None
