"""The worker's decisions: apply an event, re-check drift, solve off the loop, publish, alert.

No Faust here: the Faust app hands it a `Store` (the table) and a `Publisher` (its topics), so
agent tests can give it fakes. Every household is changed under its own asyncio lock, so a tick
batch, a fill and a snapshot for one household never interleave across the solve's await.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from schemas import Household, RebalanceResult, Security, dumps, result_to_json
from schemas.events import Breach, CashFlow, DriftAlert, Fill, drift_alert_to_json
from solver.drift import DriftReport, household_drift, missing_prices, triggers
from streams.settings import Settings
from streams.worker.book import BookRow, batch_drift, book_row
from streams.worker.metrics import Metrics
from streams.worker.state import (
    HouseholdState,
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
    to_household,
    with_band_state,
    with_event_day,
    with_prices,
)

log = logging.getLogger(__name__)

SolveFn = Callable[..., RebalanceResult]
#: After a solve that published nothing, a household is not re-solved on ticks for this long
#: (a fill, cash flow or snapshot lifts it): a band that cannot be reached is not retried per tick.
QUIET_AFTER_NO_ORDERS_S = 30.0
#: A fill or cash flow for a household not seen yet waits this long for its snapshot: the topics
#: are consumed independently, so a snapshot sent just before a cash flow can arrive after it.
UNKNOWN_GRACE_S = 3.0
# Households evaluated at once after a tick batch (their solves still queue on one thread).
TICK_CONCURRENCY = 64
# Seconds between two harvest checks of one household on ticks (wall clock: a pacing timer).
HARVEST_RECHECK_S = 30.0


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


def default_solver() -> SolveFn:
    """`solver.solve`, imported when first needed (keeps `umh worker --help` fast)."""
    from solver import solve

    return solve


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
    prices: dict[str, float] = field(default_factory=dict)  # live ticks, every symbol
    price_days: dict[str, date] = field(default_factory=dict)  # symbol -> latest tick date
    securities: dict[str, Security] = field(default_factory=dict)  # the security master
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _harvest_checked: dict[str, float] = field(default_factory=dict)  # hid -> clock() of the check
    _rows: dict[str, BookRow | None] = field(default_factory=dict)
    _index: dict[str, set[str]] = field(default_factory=dict)  # symbol -> household ids
    _quiet_until: dict[str, float] = field(default_factory=dict)
    _out_of_band: set[str] = field(default_factory=set)
    _executor: ThreadPoolExecutor | None = None
    _arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    _given_up: dict[str, float] = field(default_factory=dict)  # unknown id -> when (no re-wait)

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
        self._index.clear()
        self._out_of_band.clear()
        for hid in list(self.store.ids()):
            state = self.store.get(hid)
            if state is not None:
                self._track(state)
        self.metrics.households.set(len(self._rows))
        self.metrics.out_of_band.set(len(self._out_of_band))
        log.info("owned households=%d symbols=%d", len(self._rows), len(self._index))

    def forget(self, household_ids: Iterable[str]) -> None:
        for hid in household_ids:
            self._untrack(hid)
        self.metrics.households.set(len(self._rows))
        self.metrics.out_of_band.set(len(self._out_of_band))

    def _untrack(self, hid: str) -> None:
        row = self._rows.pop(hid, None)
        for symbol in row.symbols if row else ():
            self._index.get(symbol, set()).discard(hid)
        for holders in self._index.values():
            holders.discard(hid)
        self._out_of_band.discard(hid)
        self._quiet_until.pop(hid, None)

    def _track(self, state: HouseholdState) -> None:
        hid = state.household_id
        old = self._rows.get(hid)
        for symbol in old.symbols if old else ():
            self._index.get(symbol, set()).discard(hid)
        for symbol, price in state.prices.items():
            self.prices.setdefault(symbol, price)
        h = to_household(state, securities=self.securities)
        row = book_row(h)
        self._rows[hid] = row
        for symbol in state.held_symbols:
            self._index.setdefault(symbol, set()).add(hid)
        if state.band_state:
            self._out_of_band.add(hid)
        else:
            self._out_of_band.discard(hid)

    def _save(self, before: HouseholdState | None, state: HouseholdState) -> HouseholdState:
        state = with_prices(state, self.prices)
        if state != before:
            self.store.put(state)
        self._track(state)
        self.metrics.households.set(len(self._rows))
        self.metrics.out_of_band.set(len(self._out_of_band))
        return state

    # ----------------------------------------------------------------- event handlers

    async def on_snapshot(self, household: Household) -> HouseholdState:
        hid = household.household_id
        async with self.lock(hid):
            before = self.store.get(hid)
            state = from_snapshot(household, before)
            self._quiet_until.pop(hid, None)
            state = await self._evaluate(state, household.as_of, None)
            saved = self._save(before, state)
        arrived = self._arrived.pop(hid, None)
        if arrived is not None:
            arrived.set()
        self._given_up.pop(hid, None)
        return saved

    async def on_delete(self, household_id: str) -> None:
        async with self.lock(household_id):
            self.store.delete(household_id)
            self.forget([household_id])

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
        if self.store.get(hid) is None:
            await self._wait_for_snapshot(hid)
        async with self.lock(hid):
            before = self.store.get(hid)
            if before is None:
                raise UnknownHousehold(f"unknown household {hid!r} (no snapshot seen)")
            state, changed = change(before)  # ValidationError propagates: nothing changed
            if not changed:
                return False
            self._quiet_until.pop(hid, None)
            state = await self._evaluate(state, day, None)
            self._save(before, state)
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
        self.securities[security.symbol] = security
        for hid in list(self._index.get(security.symbol, ())):
            state = self.store.get(hid)
            if state is not None:
                self._track(state)

    async def on_ticks(self, ticks: Mapping[str, tuple[float, datetime, float]]) -> int:
        """A coalesced batch: symbol -> (price, event ts, record time s). Returns solves started."""
        for symbol, (price, ts, _t) in ticks.items():
            self.prices[symbol] = price
            day = ts.date()
            if day > self.price_days.get(symbol, date.min):
                self.price_days[symbol] = day
        affected: set[str] = set()
        for symbol in ticks:
            affected.update(self._index.get(symbol, ()))
        if not affected:
            return 0
        ids = sorted(h for h in affected if self._rows.get(h) is not None)
        rows = [r for h in ids if (r := self._rows[h]) is not None]
        batch = batch_drift(rows, self.prices)
        now = self.clock()
        candidates: list[tuple[str, float | None]] = []
        for i, hid in enumerate(ids):
            state = self.store.get(hid)
            if state is None:
                continue
            breached = bool(batch.breached[i].any())
            h = state.household
            expired = open_rebalance_expired(state, now, self.settings.order_ttl_s)
            candidate = (
                breached
                or state.band_state is not None
                or any(a.cash_needed > a.cash for a in h.accounts)
                or expired
                or self._harvest_due(hid, h, now)
            )
            if not candidate:
                continue
            held = [ticks[s] for s in state.held_symbols if s in ticks]
            candidates.append((hid, min((t for _p, _ts, t in held), default=None)))
        # Households are independent: evaluate them concurrently, so that one rebalance waiting
        # for its broker acknowledgements does not hold up the next (solves still run one at a
        # time on the solver thread; each household keeps its own lock).
        gate = asyncio.Semaphore(TICK_CONCURRENCY)
        outcomes = await asyncio.gather(
            *(self._tick_one(hid, origin, gate) for hid, origin in candidates)
        )
        return sum(outcomes)

    def _harvest_due(self, hid: str, h: Household, now: float) -> bool:
        """A harvest is not urgent: re-check a household for one at most every
        HARVEST_RECHECK_S, so that half the book is not re-solved for it on every tick."""
        if not (h.options.harvest_losses and h.mode == "rebalance"):
            return False
        if now - self._harvest_checked.get(hid, -1e18) < HARVEST_RECHECK_S:
            return False
        self._harvest_checked[hid] = now
        return True

    async def _tick_one(self, hid: str, origin: float | None, gate: asyncio.Semaphore) -> int:
        async with gate, self.lock(hid):
            before = self.store.get(hid)
            if before is None:
                return 0
            # the day is the household's latest event date (_evaluate), whichever tick
            # woke it up: a re-check after a takeover solves for the same day
            after = await self._evaluate(before, date.min, origin, from_tick=True)
            self._save(before, after)
            return int(after.open_rebalance is not before.open_rebalance)

    async def sweep(self) -> None:
        """Expire open rebalances past their TTL (wall clock) and re-check those households."""
        now = self.clock()
        for hid in list(self._rows):
            state = self.store.get(hid)
            if state is None or not open_rebalance_expired(state, now, self.settings.order_ttl_s):
                continue
            async with self.lock(hid):
                before = self.store.get(hid)
                if before is None:
                    continue
                after = await self._evaluate(before, before.event_day, None)
                self._save(before, after)

    # ----------------------------------------------------------------- the decision

    async def _evaluate(
        self,
        state: HouseholdState,
        day: date,
        tick_time_s: float | None,
        *,
        from_tick: bool = False,
    ) -> HouseholdState:
        now = self.clock()
        hid = state.household_id
        # Event time, never an older date: the latest of the event that woke us, the
        # snapshot, the fills and flows, and the ticks of the symbols held. Two workers that
        # solve the same household state therefore publish the same rebalance_id.
        day = max(day, household_day(state, self.price_days))
        state = with_event_day(state, day)
        if open_rebalance_expired(state, now, self.settings.order_ttl_s):
            assert state.open_rebalance is not None
            log.info(
                "household=%s rebalance=%s expired after ttl_s=%g",
                hid,
                state.open_rebalance.result.rebalance_id,
                self.settings.order_ttl_s,
            )
            state = expire_open_rebalance(state)
        h = to_household(state, day, securities=self.securities, prices=self.prices)
        missing = missing_prices(h)
        if missing or any(lot.symbol not in h.securities for a in h.accounts for lot in a.lots):
            log.debug("household=%s waits for prices/securities of %s", hid, missing)
            return state
        report = household_drift(h)
        wants = triggers(h, report)
        action: str | None = None
        if state.open_rebalance is not None:
            action = "pending_orders"
        elif h.mode == "monitor":
            action = "monitor_only"
        elif wants and not (from_tick and self._quiet_until.get(hid, 0.0) > now):
            state, action = await self._rebalance(state, h, tick_time_s)
        elif wants:
            action = "band_unreachable"
        return await self._alert(state, h, report, action)

    async def _rebalance(
        self, state: HouseholdState, h: Household, tick_time_s: float | None
    ) -> tuple[HouseholdState, str]:
        hid = h.household_id
        started = time.perf_counter()
        try:
            result = await self._solve(h, next_sequence(state))
        except Exception as exc:  # a failed solve is an alert and a log line, never a crash
            log.exception("household=%s solve failed: %s", hid, exc)
            self.metrics.solves.labels(status="exception").inc()
            self._quiet_until[hid] = self.clock() + QUIET_AFTER_NO_ORDERS_S
            return state, "band_unreachable"
        elapsed = time.perf_counter() - started
        self.metrics.solves.labels(status=result.status).inc()
        self.metrics.solve_seconds.observe(elapsed)
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
            state = with_prices(open_rebalance(state, result, self.clock()), self.prices)
            self.store.put(state)
            await self._persist(state)
            await self.publish(self.settings.topic("orders"), hid, dumps(result_to_json(result)))
            state = mark_published(state)  # written with the rest (no wait): if lost, the
            # survivor publishes the same orders again, which the OMS de-duplicates
            if tick_time_s is not None:
                self.metrics.tick_to_order.observe(max(0.0, self.clock() - tick_time_s))
            self._quiet_until.pop(hid, None)
            return state, ("guardrail_breach" if h.mode == "guardrail" else "rebalance_submitted")
        if result.status in ("infeasible", "solver_error", "invalid_input"):
            log.warning(
                "household=%s status=%s messages=%s errors=%s",
                hid,
                result.status,
                "; ".join(result.messages),
                "; ".join(str(e) for e in result.errors),
            )
        self._quiet_until[hid] = self.clock() + QUIET_AFTER_NO_ORDERS_S
        return state, (
            "band_unreachable"
            if result.status != "no_action"
            else ("guardrail_breach" if h.mode == "guardrail" else "band_unreachable")
        )

    async def _persist(self, state: HouseholdState) -> None:
        if self.persist is None:
            return
        try:
            await self.persist(state)
        except Exception:
            # The write stays queued in the table's producer; publishing anyway keeps the
            # orders flowing (the OMS de-duplicates by order_id if the write is lost later).
            log.exception("household=%s open rebalance not confirmed durable", state.household_id)

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
            async with self.lock(hid):
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

    async def _solve(self, h: Household, sequence: int) -> RebalanceResult:
        solve = self.solve or default_solver()
        if self._executor is None:
            # One thread: HiGHS is used from a single thread only (FINDINGS: one Highs per thread).
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="umh-solve")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: solve(h, sequence=sequence, time_limit_s=2.0)
        )

    async def _alert(
        self, state: HouseholdState, h: Household, report: DriftReport, action: str | None
    ) -> HouseholdState:
        breached = report.out_of_band
        band = ",".join(breached) if breached else None
        if band == state.band_state:
            return state
        if band is not None and action is not None:
            alert = DriftAlert(
                household_id=h.household_id,
                ts=datetime.fromtimestamp(self.clock(), UTC),
                max_abs_drift=report.max_abs_drift,
                breaches=tuple(
                    Breach(c, float(w), float(t), float(tol))
                    for c, w, t, tol, b in zip(
                        report.classes,
                        report.weight,
                        report.target,
                        report.tolerance,
                        report.breached,
                        strict=True,
                    )
                    if b
                ),
                action=action,
            )
            await self.publish(
                self.settings.topic("drift-alerts"),
                h.household_id,
                dumps(drift_alert_to_json(alert)),
            )
        return with_band_state(state, band)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
