"""HouseholdProblem -> one HiGHS model of the whole household; the only module importing highspy.

The optimisation, in weight units (dollars / V, V the investable value before trading). For
lots l, permitted buys j, classes c, accounts a; E are exposures, k the transaction-cost rate,
T = sum_l s_l + sum_j b_j the traded value:

  weights after trading, costs included (exact: V' = V (1 - k T) is linear in the trades):
    n_c  = w0_c + sum_j E_jc b_j - sum_l E_lc s_l + [c = cash] (sum_l s_l (1-k) - sum_j b_j (1+k))
    w_c  = n_c / (1 - k T)

  minimise (one weighting; every term is per unit of V, so the scale is the household's):
      P_BAND sum_c u_c                           bands, hard when feasible       (1000)
    + P_SWAP sum sigma                           cross-account swaps (soft)        (50)
    + P_DEFER sum_{deferred l} s_l               defer_short_term_days (soft)      (10)
    + P_TAX sum_l rate_l gain_l s_l              tax; harvestable losses earn it   (1)
    + LAMBDA_TARGET sum_c d_c                    toward target, phase 2 only       (0.25)
    + sum (k + P_TURNOVER)(s + b) + P_TAXABLE [taxable] (s + b)                    (1e-4..1e-3)
    + P_LOCATION location rank_j b_j + P_LIST buy-list rank_j b_j - P_SCREEN [screened] s_l
  In rebalance mode it is solved in two phases on one HiGHS instance: phase 1 without the
  target term (d costs 0): bands, then tax, then trading; phase 2 adds LAMBDA_TARGET d with
  sum_c u_c <= U1 and the tax on realized gains sum_{l: gain_l > 0} rate_l gain_l s_l <= G1 +
  target_tax_budget_bps / 1e4 (less one share's tax for rounding): toward target only as far as
  it costs no more tax than the bands need (CONTRACT.md section 3's soft order). Guardrail mode
  has no target term; a harvest alone (mode "harvest") only penalises moving away from it, and
  sells only the harvestable loss lots and buys only their classes (the harvest and its
  replacement, nothing else).

  subject to
    bands (rule 7): n_c - (t_c + tol'_c)(1 - k T) <= u_c,  n_c - (t_c - tol'_c)(1 - k T) >= -u_c,
        tol'_c = tol_c - min(band_margin, BAND_MARGIN tol_c)  (1 bp inside the edge by default)
    target: |n_c - t_c (1 - k T)| <= d_c + held_c  (held_c = |t_c - w0_c| in harvest mode, else 0)
    cash (rule 1): free_a + sum_{l in a} s_l (1 - k) - sum_{j in a} b_j (1 + k) >= margin_a
    0 <= s_l <= value_l; 0 for a lot that is locked, or a taxable loss lot a recent buy blocks
        (rule 4b, solver/wash.py); b_j >= 0 only for buys rules 3 and 4a allow (rules 2, 3)
    tax budget (rule 6): sum_l gain_l s_l <= (min(max_realized_gain, max_realized_gain_year -
        realized_this_year) - margin - shrink) / V
    allow_sells false: s_l = 0 outside screened lots and accounts that must raise cash; there
        sum_{l in a, not screened} s_l <= raise_room_a (the need plus the smallest order)
    max_turnover: T <= max_turnover - margin - shrink + sum_a min(raise_room_a, sum_{l in a} s_l)
    wash group g (rule 4a within the rebalance), binary z_g:
        sum_{taxable loss lots of g} s_l <= cap_g z_g,  sum_{j in g} b_j <= M (1 - z_g)
    (for rule 4 a loss lot is one whose proceeds net of costs fall below its basis, gain per
    dollar g_l < k: HouseholdProblem.lot_wash_loss; rule 4b's blocked lots likewise)
    no cross-account swap of class c (soft), binary y_c; harvests, screens and raised cash are
        exempt: sells_c - exempt_c <= M y_c + sigma_c,  buys_c <= M (1 - y_c) + sigma'_c
        (where only a swap reaches the bands, the ladder caps sum_c u_c at what the model
        without the ban reaches, so that the bands come first: Restrictions.max_band_slack)
    exact rung only (Restrictions.integer_shares): s_l = n_l price_l / V, b_j = m_j price_j / V
        with n, m integer for whole-share securities; each position's sell and each buy is 0 or
        at least min_trade_value (semi-continuous; a smaller position: all or nothing)
Binaries are added lazily (solver/solve.py): only for the groups and classes whose solution
breaks the rule, the MIP re-run on each new conflict until none is left. Whole shares and
minimum trades are otherwise handled by rounding and re-solving with the rounded amounts fixed
(solver/rounding.py), and the fallback ladder of solver/solve.py when that fails.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from .costs import gross_up
from .problem import FloatArray, HouseholdProblem
from .tolerances import (
    GAIN_MARGIN_USD,
    MIN_TRADE_MARGIN_USD,
    RAISE_MARGIN_USD,
    RAISE_SLACK_USD,
    SOLVER_FEAS_TOL,
    TURNOVER_MARGIN_USD,
)

# Objective weights (per unit of household value traded or drifted); their order is the
# contract's order of soft goals: bands >> swaps >> deferral >> tax >> target >> trading >>
# preferences (target after tax through the two phases, see the header).
P_BAND = 1000.0
P_TAX = 1.0
P_DEFER = 10.0
# Phase 2 may exceed phase 1's band slack and gain tax by this (weight units): solver noise.
PHASE_SLACK = 1e-9
P_SWAP = 50.0
LAMBDA_TARGET = 0.25
P_TURNOVER = 1e-4
P_TAXABLE = 5e-4
P_LOCATION = 2e-4
P_LIST = 5e-5
P_SCREEN = 0.02
# The model aims inside each band's edge by Restrictions.band_margin (weight units; 1 bp of V
# by default) but never by more than this share of the band, so that rounding does not land
# outside it; when whole shares still do, the fallback ladder re-solves with this whole share.
BAND_MARGIN = 0.1

INF = highspy.kHighsInf
MAX_INT = 2**31 - 1
# Statuses that stop early with a usable (feasible, not proven optimal) solution.
_LIMITS = (
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kIterationLimit,
)


@dataclass(frozen=True, slots=True)
class Restrictions:
    """What the lazy loop and the rounding step add to the base model."""

    wash_groups: frozenset[str] = frozenset()  # a binary each (rule 4a within the rebalance)
    swap_classes: frozenset[int] = frozenset()  # a binary each (no cross-account swaps)
    # The greedy way to the same rules: one side of each conflict is forbidden by bounds.
    no_buy_groups: frozenset[str] = frozenset()
    no_loss_sale_groups: frozenset[str] = frozenset()
    no_buy_classes: frozenset[int] = frozenset()
    no_sell_classes: frozenset[int] = frozenset()
    fixed_sells: dict[int, float] = field(default_factory=dict)  # lot index -> weight units
    fixed_buys: dict[int, float] = field(default_factory=dict)  # buy index -> cap, weight units
    # The fallback ladder's tightening after a rounding broke a cap: dollars of gain cap and
    # weight units of turnover cap held back; the band margin aimed inside each band's edge.
    gain_shrink_usd: float = 0.0
    turnover_shrink: float = 0.0
    band_margin: float = 1e-4
    # The ladder's exact rung: whole-share trades as integer share counts (a MIP) instead of
    # rounding afterwards.
    integer_shares: bool = False
    # Rule 7 before the swap ban (the ban gives way where the hard rules leave no other way):
    # `swaps_free` drops the ban (no swap binaries); `max_band_slack` caps sum_c u_c (weight
    # units), so that the swap binaries minimise swaps among answers that reach the bands.
    swaps_free: bool = False
    max_band_slack: float | None = None


@dataclass(frozen=True, slots=True)
class Solution:
    status: str  # "optimal", "infeasible", "time_limit" (any limit, with a solution), "error"
    sells: FloatArray  # (L,) weight units
    buys: FloatArray  # (B,)
    band_slack: FloatArray  # (C,)
    mip_gap: float
    detail: str = ""
    objective: float = float("inf")


class _Builder:
    """Columns as arrays and rows as (columns, values) arrays, handed to HiGHS once, row-wise.
    Rows are kept in blocks (one row, or many built at once), in the order they were added."""

    def __init__(self) -> None:
        self.n_cols = 0
        self.cost: list[FloatArray] = []
        self.lower: list[FloatArray] = []
        self.upper: list[FloatArray] = []
        self.integer: list[NDArray[np.int64]] = []
        self.semi: list[NDArray[np.int64]] = []
        self.n_rows = 0
        self.row_lower: list[FloatArray] = []
        self.row_upper: list[FloatArray] = []
        self.lengths: list[NDArray[np.int64]] = []  # entries per row
        self.index: list[NDArray[np.int64]] = []  # their columns, row after row
        self.value: list[FloatArray] = []

    def add_cols(
        self,
        cost: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
        integer: bool = False,
        semi: bool = False,
    ) -> NDArray[np.int64]:
        """Columns; `semi`: semi-continuous (0, or between lower and upper)."""
        idx = np.arange(self.n_cols, self.n_cols + len(cost), dtype=np.int64)
        self.n_cols += len(cost)
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        if integer:
            self.integer.append(idx)
        if semi:
            self.semi.append(idx)
        return idx

    def add_row(
        self, cols: NDArray[np.int64], vals: FloatArray, lower: float, upper: float
    ) -> None:
        """One row: lower <= sum vals * x[cols] <= upper (zero coefficients left out)."""
        keep = vals != 0
        self._add_block(
            np.array([np.count_nonzero(keep)]),
            cols[keep],
            vals[keep],
            np.array([lower], dtype=np.float64),
            np.array([upper], dtype=np.float64),
        )

    def add_rows(
        self, cols: NDArray[np.int64], vals: FloatArray, lower: FloatArray, upper: FloatArray
    ) -> None:
        """Rows i = 0, 1, ...: lower_i <= sum_j vals[i, j] x[cols[i, j]] <= upper_i, the same
        rows `add_row` adds one by one (zero coefficients left out)."""
        n_rows, width = vals.shape
        self.add_sparse_rows(np.full(n_rows, width), cols.ravel(), vals.ravel(), lower, upper)

    def add_sparse_rows(
        self,
        lengths: NDArray[np.int64],
        cols: NDArray[np.int64],
        vals: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
    ) -> None:
        """Rows given row-wise: row i has the next lengths[i] (cols, vals) entries."""
        keep = vals != 0
        if not keep.all():
            row = np.repeat(np.arange(len(lengths)), lengths)
            lengths = np.bincount(row[keep], minlength=len(lengths))
        self._add_block(lengths, cols[keep], vals[keep], lower, upper)

    def _add_block(
        self,
        lengths: NDArray[np.int64],
        cols: NDArray[np.int64],
        vals: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
    ) -> None:
        self.n_rows += len(lengths)
        self.lengths.append(lengths)
        self.index.append(cols)
        self.value.append(vals)
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def pass_to(self, highs: highspy._core._Highs) -> None:
        """Hand the model to HiGHS in one call from arrays (row-wise matrix, int32 indices)."""
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int64)
        start = np.zeros(len(lengths) + 1, dtype=np.int32)
        np.cumsum(lengths, out=start[1:])
        index = (np.concatenate(self.index) if self.index else np.zeros(0)).astype(np.int32)
        value = np.concatenate(self.value) if self.value else np.zeros(0)
        integrality = np.zeros(self.n_cols, dtype=np.int32)  # HiGHS reads one per column
        if self.integer:
            integrality[np.concatenate(self.integer)] = 1  # kInteger
        if self.semi:
            integrality[np.concatenate(self.semi)] = 2  # kSemiContinuous
        highs.passModel(
            self.n_cols,
            self.n_rows,
            len(index),
            int(highspy.MatrixFormat.kRowwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            np.concatenate(self.cost),
            np.concatenate(self.lower),
            np.concatenate(self.upper),
            np.concatenate(self.row_lower) if self.row_lower else np.zeros(0),
            np.concatenate(self.row_upper) if self.row_upper else np.zeros(0),
            start[:-1],  # HiGHS takes the row starts without the final end
            index,
            value,
            integrality,
        )

    @property
    def has_integers(self) -> bool:
        return bool(self.integer or self.semi)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints a banner on stdout when the first instance is made; keep stdout for JSON."""
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_BANNER_LOCK = threading.Lock()
_BANNER_SHOWN = False


def _new_highs(limits: Limits, presolve: bool = False) -> highspy._core._Highs:
    """A fresh HiGHS instance set up for one solve. Presolve is off (it costs more than it saves
    on these small LPs) except for the exact rung's integer shares, where it cuts the
    branch-and-bound work about tenfold; without presolve the MIP root heuristics named in
    LEAN_MIP_HEURISTICS are off too.

    Fresh on purpose: an instance reused through clearModel() carried state from one household
    into the next and gave wrong answers (seen in the backtest); construction costs ~0.05 ms.
    """
    h = _construct_highs()
    for name, value in (
        ("output_flag", False),
        ("presolve", "on" if presolve else "off"),
        ("threads", 1),
        ("solver", "simplex"),
        ("mip_rel_gap", 1e-4),
        ("mip_abs_gap", 1e-7),
        ("primal_feasibility_tolerance", SOLVER_FEAS_TOL),
        ("time_limit", float(limits.time_limit_s)),
        ("mip_max_nodes", int(limits.max_nodes)),
        ("simplex_iteration_limit", int(limits.max_iterations)),
    ):
        h.setOptionValue(name, value)
    if not presolve:
        for name in LEAN_MIP_HEURISTICS:
            h.setOptionValue(name, False)
    return h


# The wash-sale and swap MIPs (an LP with a binary per conflicting group or class) are solved
# at or near the root, and the greedy answer is always there to fall back on: these root
# heuristics took ~60% of their time and found no better answer (83 MIPs of the rules bench:
# 1,244 -> 469 ms, the p99 40 -> 13 ms, every objective equal within 2e-10; BENCHMARKS.md).
# The exact rung (whole shares as integers) has no such fallback and keeps them: without
# them its 200 nodes can end with no solution (tests/data/quality/q-03297.json).
LEAN_MIP_HEURISTICS = (
    "mip_heuristic_run_feasibility_jump",
    "mip_heuristic_run_root_reduced_cost",
    "mip_heuristic_run_rins",
    "mip_heuristic_run_rens",
)


def _construct_highs() -> highspy._core._Highs:
    global _BANNER_SHOWN
    with _BANNER_LOCK:
        if _BANNER_SHOWN:
            return highspy._core._Highs()
        with _quiet_stdout():
            h = highspy._core._Highs()
        _BANNER_SHOWN = True
        return h


@dataclass(frozen=True, slots=True)
class Limits:
    """The work one HiGHS call may do. A small household is bounded by work alone (simplex
    iterations, branch-and-bound nodes), so that its answer never depends on machine speed; a
    large one also by the seconds left of the solve's one deadline."""

    time_limit_s: float = INF
    max_nodes: int = MAX_INT
    max_iterations: int = MAX_INT


def solve_model(p: HouseholdProblem, mode: str, r: Restrictions, limits: Limits) -> Solution:
    """Build the household model with the given restrictions and solve it with HiGHS.

    HiGHS is deterministic: the same model with the same limits has the same solution, so a
    model this problem has already solved is not solved again (its Solution's arrays are
    read-only, shared by both callers)."""
    key = (mode, limits, _restrictions_key(r))
    known = p.solved.get(key)
    if isinstance(known, Solution):
        return known
    solution = _solve_model(p, mode, r, limits)
    for array in (solution.sells, solution.buys, solution.band_slack):
        array.flags.writeable = False
    p.solved[key] = solution
    return solution


def _restrictions_key(r: Restrictions) -> tuple[Any, ...]:
    """Every field of the restrictions as a hashable value (a dict as its sorted items)."""
    values = (getattr(r, f.name) for f in fields(r))
    return tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in values)


def _solve_model(p: HouseholdProblem, mode: str, r: Restrictions, limits: Limits) -> Solution:
    b = _Builder()
    n_lots, n_buys, n_cls = len(p.lot_ids), len(p.buy_symbols), len(p.classes)
    k = p.cost_rate
    opts = p.household.options

    # Sells: the tax cost (or harvest credit) per unit, trading costs, screens.
    tax = p.lot_tax_rate * p.lot_gain_frac
    harvest_credit = p.lot_harvestable & (mode in ("rebalance", "harvest"))
    tax = np.where((tax < 0) & ~harvest_credit, 0.0, tax)
    sell_cost = (
        P_TAX * tax
        + k
        + P_TURNOVER
        + P_TAXABLE * p.account_taxable[p.lot_account]
        + P_DEFER * p.lot_defer
        - P_SCREEN * p.lot_screened
    )
    sell_upper = np.where(p.lot_sell_blocked | p.lot_locked, 0.0, p.lot_value)
    sell_upper[_forbidden_sells(p, r)] = 0.0
    if not opts.allow_sells:
        # Only screened lots, and lots of accounts that must raise cash (capped below).
        shortfall = cash_to_raise(p) > 0
        sell_upper[~p.lot_screened & ~shortfall[p.lot_account]] = 0.0
    if mode == "harvest":
        # A harvest alone (the only trigger): the harvest and its replacement, nothing else.
        sell_upper[~(p.lot_harvestable & p.lot_is_loss)] = 0.0
    sell_lower = np.zeros(n_lots)
    fixed, amount = _indexed(r.fixed_sells)
    sell_upper[fixed] = amount
    sell_lower[fixed] = amount
    s = b.add_cols(sell_cost, sell_lower, sell_upper)

    buy_cost = (
        k
        + P_TURNOVER
        + P_TAXABLE * p.account_taxable[p.buy_account]
        + P_LOCATION * p.buy_location_rank
        + P_LIST * p.buy_rank
    )
    # A rounded buy becomes a cap, not a fixed amount: if a sell it relied on was dropped, the
    # re-solve may buy less (and the next rounding rounds down again) instead of failing.
    buy_lower, buy_upper = np.zeros(n_buys), np.full(n_buys, INF)
    fixed, amount = _indexed(r.fixed_buys)
    buy_upper[fixed] = amount
    buy_upper[_forbidden_buys(p, r)] = 0.0
    if mode == "harvest":
        harvested = np.unique(p.lot_class[p.lot_harvestable & p.lot_is_loss])
        buy_upper[~np.isin(p.buy_class, harvested)] = 0.0
    bcols = b.add_cols(buy_cost, buy_lower, buy_upper)

    u = b.add_cols(np.full(n_cls, P_BAND), np.zeros(n_cls), np.full(n_cls, INF))
    # Two phases only when some sell could still realize a taxed gain: otherwise phase 1's tax
    # bound cannot bind and one solve is the same optimisation (bands dominate the target).
    free_gain = (p.lot_tax_rate * p.lot_gain_frac > 0) & (sell_upper - sell_lower > 0)
    two_phase = mode == "rebalance" and bool(free_gain.any())
    d = (
        b.add_cols(np.full(n_cls, LAMBDA_TARGET), np.zeros(n_cls), np.full(n_cls, INF))
        if mode in ("rebalance", "harvest")
        else None
    )
    trade_cols = np.concatenate((s, bcols))
    _add_band_rows(b, p, mode, r, trade_cols, u, d)
    _add_cash_rows(b, p, s, bcols)

    # Rule 6: the tax budget on net realized gains (a few cents of headroom, and whatever a
    # rounding step found it needs, so that rounding sells up cannot tip it over).
    if p.gain_cap_usd is not None:
        taxable = np.flatnonzero(p.lot_gain_frac != 0)
        cap = p.gain_cap_usd - r.gain_shrink_usd
        cap = cap - GAIN_MARGIN_USD if cap >= GAIN_MARGIN_USD else min(cap, 0.0)
        b.add_row(s[taxable], p.lot_gain_frac[taxable], -INF, cap / p.value_usd)
    if not opts.allow_sells:
        _add_raise_only_rows(b, p, s)
    if opts.max_turnover is not None:
        _add_turnover_row(b, p, r, s, trade_cols, opts.max_turnover)

    big_m = float(p.lot_value.sum() + max(p.account_free_cash.clip(min=0).sum(), 0.0) + 1.0)
    _add_wash_binaries(b, p, r, s, bcols, big_m)
    if r.integer_shares:
        _add_integer_shares(b, p, r, s, bcols)
        _add_minimum_trades(b, p, s, bcols, big_m)
    if not (opts.allow_cross_account_swaps or r.swaps_free):
        _add_swap_binaries(b, p, r, s, bcols, big_m)
    if r.max_band_slack is not None:
        b.add_row(u, np.ones(n_cls), -INF, r.max_band_slack)
    tax_row = None
    if two_phase and d is not None:
        # Phase 2's row: the tax on realized gains stays at phase 1's plus the target budget.
        gains = np.flatnonzero((p.lot_gain_frac > 0) & (p.lot_tax_rate > 0))
        b.add_row(s[gains], (p.lot_tax_rate * p.lot_gain_frac)[gains], -INF, INF)
        tax_row = b.n_rows - 1
        b.add_row(u, np.ones(n_cls), -INF, INF)
    return _run(b, p, s, bcols, u, d, tax_row, limits, presolve=r.integer_shares)


def _add_turnover_row(
    b: _Builder,
    p: HouseholdProblem,
    r: Restrictions,
    s: NDArray[np.int64],
    trade_cols: NDArray[np.int64],
    max_turnover: float,
) -> None:
    """max_turnover, raising cash_needed always allowed on top of it: T - sum_a e_a <= cap,
    with e_a <= raise_room_a and e_a <= sum_{l in a} s_l for each account that must raise cash
    (what it raises is what it sells, up to its room: the self-check's reading)."""
    cap = max(max_turnover - TURNOVER_MARGIN_USD / p.value_usd - r.turnover_shrink, 0.0)
    room = raise_room(p)
    short = np.flatnonzero(room > 0)
    e = b.add_cols(np.zeros(len(short)), np.zeros(len(short)), room[short])
    for a, col in zip(short, e, strict=True):
        ls = np.flatnonzero(p.lot_account == a)
        b.add_row(np.append(s[ls], col), np.append(-np.ones(len(ls)), 1.0), -INF, 0.0)
    b.add_row(
        np.concatenate((trade_cols, e)),
        np.concatenate((np.ones(len(trade_cols)), -np.ones(len(e)))),
        -INF,
        cap,
    )


def _indexed(amounts: dict[int, float]) -> tuple[NDArray[np.int64], FloatArray]:
    """A {index: amount} map as (indices, amounts) arrays."""
    n = len(amounts)
    return (
        np.fromiter(amounts.keys(), dtype=np.int64, count=n),
        np.fromiter(amounts.values(), dtype=np.float64, count=n),
    )


def _add_band_rows(
    b: _Builder,
    p: HouseholdProblem,
    mode: str,
    r: Restrictions,
    trade_cols: NDArray[np.int64],
    u: NDArray[np.int64],
    d: NDArray[np.int64] | None,
) -> None:
    """Rule 7 with the true weights after trading, costs included (see the module header):
    value_c(x) - (t_c +/- tol_c) V(x) <= / >= u_c V, with V(x) = V (1 - k T(x)) after costs."""
    n_cls = len(p.classes)
    ci = p.cash_index
    k = p.cost_rate
    sell_w = -p.lot_exposure.T.copy()
    sell_w[ci] += 1.0 - k
    buy_w = p.buy_exposure.T.copy()
    buy_w[ci] -= 1.0 + k
    margin = np.minimum(p.drift.tolerance * BAND_MARGIN, r.band_margin)
    tol = p.drift.tolerance - margin
    w0, t = p.drift.weight, p.drift.target
    # In "harvest" mode (a harvest is the only reason to trade) nothing rewards moving toward
    # target; only moving further away from it costs, so the harvest buys its replacement.
    held = np.abs(t - w0) if mode == "harvest" else np.zeros(n_cls)
    # Per class c, for each (limit, column) part (the band and u_c; the target and d_c), a row
    # for the top and one for the bottom: rows ordered (class, part, top/bottom).
    parts = [(tol, u)] if d is None else [(tol, u), (held, d)]
    lim = np.stack([x for x, _ in parts], axis=1)  # (C, P)
    extra = np.stack([col for _, col in parts], axis=1)  # (C, P)
    hi, lo = t[:, None] + lim, t[:, None] - lim
    coef = np.concatenate((sell_w, buy_w), axis=1)[:, None, :]  # (C, 1, n)
    n = len(trade_cols)
    vals = np.empty((n_cls, len(parts), 2, n + 1))
    vals[:, :, 0, :n] = coef + (hi * k)[:, :, None]
    vals[:, :, 0, n] = -1.0
    vals[:, :, 1, :n] = coef + (lo * k)[:, :, None]
    vals[:, :, 1, n] = 1.0
    cols = np.empty((n_cls, len(parts), 2, n + 1), dtype=np.int64)
    cols[..., :n] = trade_cols
    cols[..., n] = extra[:, :, None]
    lower = np.stack((np.full(hi.shape, -INF), lo - w0[:, None]), axis=2)
    upper = np.stack((hi - w0[:, None], np.full(hi.shape, INF)), axis=2)
    rows = n_cls * len(parts) * 2
    b.add_rows(cols.reshape(rows, n + 1), vals.reshape(rows, n + 1), lower.ravel(), upper.ravel())


def _add_cash_rows(
    b: _Builder, p: HouseholdProblem, s: NDArray[np.int64], bcols: NDArray[np.int64]
) -> None:
    """Rule 1: every account keeps its cash_needed (and a few cents more, so that the solver's
    feasibility tolerance, scaled by V, can never eat into it):
    free_a + sum_{l in a} s_l (1 - k) - sum_{j in a} b_j (1 + k) >= margin."""
    k = p.cost_rate
    margin = p.cash_margin_usd / p.value_usd
    n_accounts = len(p.accounts)
    # One row per account: its lots' sells, then its buys (each in index order).
    account = np.concatenate((p.lot_account, p.buy_account))
    order = np.argsort(account, kind="stable")
    vals = np.concatenate((np.full(len(s), 1.0 - k), np.full(len(bcols), -(1.0 + k))))
    b.add_sparse_rows(
        np.bincount(account, minlength=n_accounts),
        np.concatenate((s, bcols))[order],
        vals[order],
        np.array([_cash_row_lower(float(f), margin) for f in p.account_free_cash]),
        np.full(n_accounts, INF),
    )


def _add_raise_only_rows(b: _Builder, p: HouseholdProblem, s: NDArray[np.int64]) -> None:
    """allow_sells false: an account sells (screened lots aside) at most what its cash_needed
    forces and the smallest order allows: sum_{l in a, not screened} s_l <= raise_room_a, less
    RAISE_MARGIN_USD for the rounding of sells (the room exceeds the need by >= 1 USD)."""
    room = raise_room(p)
    margin = RAISE_MARGIN_USD / p.value_usd
    for a in np.flatnonzero(room > 0):
        ls = np.flatnonzero((p.lot_account == a) & ~p.lot_screened)
        if len(ls):
            b.add_row(s[ls], np.ones(len(ls)), -INF, float(room[a]) - margin)


def _forbidden_sells(p: HouseholdProblem, r: Restrictions) -> NDArray[np.bool_]:
    """Lots the greedy rule-fixing forbids: loss lots of a group, or a class's non-exempt lots
    (a shortfall account may still sell to raise its cash)."""
    out = np.zeros(len(p.lot_ids), dtype=bool)
    if r.no_loss_sale_groups:
        in_group = np.array([g in r.no_loss_sale_groups for g in p.lot_group], dtype=bool)
        out |= in_group & p.lot_wash_loss & p.account_taxable[p.lot_account]
    if r.no_sell_classes:
        shortfall = p.account_free_cash < 0
        in_class = np.isin(p.lot_class, list(r.no_sell_classes))
        out |= in_class & ~swap_exempt_lots(p) & ~shortfall[p.lot_account]
    return out


def _forbidden_buys(p: HouseholdProblem, r: Restrictions) -> NDArray[np.bool_]:
    out = np.zeros(len(p.buy_symbols), dtype=bool)
    if r.no_buy_groups:
        out |= np.array([g in r.no_buy_groups for g in p.buy_group], dtype=bool)
    if r.no_buy_classes:
        out |= np.isin(p.buy_class, list(r.no_buy_classes))
    return out


def cash_to_raise(p: HouseholdProblem) -> FloatArray:
    """Per account, the sells (weight units, before costs) its cash row forces: the shortfall
    plus the cash margin. Sells up to this are "raising cash", never a swap."""
    margin = p.cash_margin_usd / p.value_usd
    need = np.array([_cash_row_lower(float(f), margin) for f in p.account_free_cash])
    return np.array([gross_up(float(n), p.cost_rate) for n in need.clip(min=0.0)])


def _add_integer_shares(
    b: _Builder,
    p: HouseholdProblem,
    r: Restrictions,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
) -> None:
    """Whole shares exactly: s_l = n_l price_l / V with n_l integer, n_l <= floor(quantity);
    likewise for whole-share buys. A lot with a fractional remnant f = quantity - floor(quantity)
    may also be sold whole: s_l = (n_l + f w_l) price_l / V with w_l binary and
    n_l >= floor(quantity) w_l (the remnant goes only with every whole share of the lot)."""
    V = p.value_usd
    for i in np.flatnonzero(p.lot_whole_shares & (p.lot_value > 0)):
        if int(i) in r.fixed_sells:
            continue
        q = float(p.lot_quantity[i])
        whole = float(np.floor(q + 1e-9))
        unit = p.lot_price[i] / V
        n = b.add_cols(np.zeros(1), np.zeros(1), np.array([whole]), integer=True)[0]
        remnant = q - whole
        if remnant <= 1e-9:
            b.add_row(np.array([s[i], n]), np.array([1.0, -unit]), 0.0, 0.0)
            continue
        w = b.add_cols(np.zeros(1), np.zeros(1), np.ones(1), integer=True)[0]
        b.add_row(np.array([s[i], n, w]), np.array([1.0, -unit, -remnant * unit]), 0.0, 0.0)
        b.add_row(np.array([n, w]), np.array([1.0, -whole]), 0.0, INF)
    for j in np.flatnonzero(p.buy_whole_shares):
        n = b.add_cols(np.zeros(1), np.zeros(1), np.array([INF]), integer=True)
        b.add_row(np.array([bcols[j], n[0]]), np.array([1.0, -p.buy_price[j] / V]), 0.0, 0.0)


def _add_minimum_trades(
    b: _Builder,
    p: HouseholdProblem,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
    big_m: float,
) -> None:
    """min_trade_value exactly (rule 5): each position's sell, and each buy, is 0 or at least
    the minimum, semi-continuous; a position worth less than the minimum is sold whole or not."""
    if p.household.options.min_trade_value <= 0:
        return
    # A few cents above the minimum, so that fractional quantities rounded to
    # QUANTITY_DECIMALS (and the solver's tolerance) never take an order below it.
    minimum = (p.household.options.min_trade_value + MIN_TRADE_MARGIN_USD) / p.value_usd
    n_pos = int(p.lot_order.max()) + 1 if len(p.lot_order) else 0
    for pos in range(n_pos):
        ls = np.flatnonzero(p.lot_order == pos)
        total = float(p.lot_value[ls].sum())
        v = b.add_cols(np.zeros(1), np.array([min(minimum, total)]), np.array([total]), semi=True)
        b.add_row(np.append(s[ls], v[0]), np.append(np.ones(len(ls)), -1.0), 0.0, 0.0)
    for j in range(len(bcols)):
        v = b.add_cols(np.zeros(1), np.array([minimum]), np.array([big_m]), semi=True)
        b.add_row(np.array([bcols[j], v[0]]), np.array([1.0, -1.0]), 0.0, 0.0)


def raise_room(p: HouseholdProblem) -> FloatArray:
    """Per account that must raise cash, what "raising cash_needed" may sell (weight units): the
    shortfall with its margin, plus the larger of min_trade_value and the account's dearest
    whole share (the smallest order allowed may exceed the need by that). Zero elsewhere.
    Used by allow_sells false and by max_turnover."""
    # The same reading as the self-check (solver/check.py): the shortfall grossed up by costs
    # (its cash margin is inside the extra, which is at least RAISE_SLACK_USD).
    short = (-p.account_free_cash).clip(min=0.0)
    need = np.array([gross_up(float(x), p.cost_rate) for x in short])
    whole_price = np.zeros(len(p.accounts))
    for i in np.flatnonzero(p.lot_whole_shares):
        a = int(p.lot_account[i])
        whole_price[a] = max(whole_price[a], float(p.lot_price[i]))
    extra = (
        np.maximum(max(p.household.options.min_trade_value, RAISE_SLACK_USD), whole_price)
        / p.value_usd
    )
    return np.where(need > 0, need + extra, 0.0)


def _cash_row_lower(free: float, margin: float) -> float:
    """Net cash an account must raise: its shortfall plus the margin; an account with less spare
    cash than the margin just may not spend."""
    return 0.0 if 0.0 <= free < margin else margin - free


def _add_wash_binaries(
    b: _Builder,
    p: HouseholdProblem,
    r: Restrictions,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
    big_m: float,
) -> None:
    """Rule 4a within the rebalance: a group is either sold at a loss or bought, not both."""
    taxable_loss = p.account_taxable[p.lot_account] & p.lot_wash_loss
    for g in sorted(r.wash_groups):
        ls = np.flatnonzero(taxable_loss & (np.array(p.lot_group) == g))
        js = np.flatnonzero(np.array(p.buy_group) == g)
        z = b.add_cols(np.zeros(1), np.zeros(1), np.ones(1), integer=True)[0]
        cap = float(p.lot_value[ls].sum())
        b.add_row(np.append(s[ls], z), np.append(np.ones(len(ls)), -cap), -INF, 0.0)
        b.add_row(np.append(bcols[js], z), np.append(np.ones(len(js)), big_m), -INF, big_m)


def swap_exempt_lots(p: HouseholdProblem) -> NDArray[np.bool_]:
    """Sells that never count as a swap: harvested losses and screened lots."""
    return (p.lot_harvestable & p.lot_is_loss) | p.lot_screened


def _add_swap_binaries(
    b: _Builder,
    p: HouseholdProblem,
    r: Restrictions,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
    big_m: float,
) -> None:
    """No class sold (outside harvests, screens and raised cash) while it is bought elsewhere."""
    exempt = swap_exempt_lots(p)
    shortfall = cash_to_raise(p)
    for c in sorted(r.swap_classes):
        ls = np.flatnonzero((p.lot_class == c) & ~exempt)
        js = np.flatnonzero(p.buy_class == c)
        y = b.add_cols(np.zeros(1), np.zeros(1), np.ones(1), integer=True)[0]
        sig_s, sig_b = b.add_cols(np.array([P_SWAP, P_SWAP]), np.zeros(2), np.array([INF, INF]))
        y_col = np.array([y, sig_s])
        # Raised cash: up to an account's shortfall, its sells of this class are exempt.
        exempt_cols: list[int] = []
        for a in np.flatnonzero(shortfall > 0):
            own = ls[p.lot_account[ls] == a]
            if len(own) == 0:
                continue
            e = b.add_cols(np.zeros(1), np.zeros(1), np.array([shortfall[a]]))[0]
            b.add_row(np.append(s[own], e), np.append(-np.ones(len(own)), 1.0), -INF, 0.0)
            exempt_cols.append(int(e))
        cols = np.concatenate((s[ls], np.array(exempt_cols, dtype=np.int64), y_col))
        vals = np.concatenate((np.ones(len(ls)), -np.ones(len(exempt_cols)), [-big_m, -1.0]))
        b.add_row(cols, vals, -INF, 0.0)
        b.add_row(
            np.concatenate((bcols[js], [y, sig_b])),
            np.concatenate((np.ones(len(js)), [big_m, -1.0])),
            -INF,
            big_m,
        )


def _run(
    b: _Builder,
    p: HouseholdProblem,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
    u: NDArray[np.int64],
    d: NDArray[np.int64] | None,
    tax_row: int | None,
    limits: Limits,
    presolve: bool = False,
) -> Solution:
    highs = _new_highs(limits, presolve)
    b.pass_to(highs)
    if tax_row is not None and d is not None:
        # Phase 1: bands, then tax (and trading); the target weighs nothing yet.
        highs.changeColsCost(len(d), d.astype(np.int32), np.zeros(len(d)))
        highs.run()
        first = _read(highs, b, s, bcols, u)
        if first.status != "optimal":
            return first
        x = np.array(highs.getSolution().col_value)
        rows = tax_row
        taxes = float(
            np.dot(
                (p.lot_tax_rate * p.lot_gain_frac).clip(min=0.0),
                x[s],
            )
        )
        budget = p.household.options.target_tax_budget_bps / 1e4
        if budget > 0:
            # Rounding a whole-share sell up adds at most one share's tax: keep that in hand.
            per_share = p.lot_tax_rate * p.lot_gain_frac.clip(min=0.0) * p.lot_price / p.value_usd
            budget = max(budget - float(per_share[p.lot_whole_shares].max(initial=0.0)), 0.0)
        highs.changeRowBounds(rows, -INF, taxes + budget + PHASE_SLACK)
        slack = float(x[u].sum())
        highs.changeRowBounds(rows + 1, -INF, slack * (1.0 + 1e-6) + PHASE_SLACK)
        highs.changeColsCost(len(d), d.astype(np.int32), np.full(len(d), LAMBDA_TARGET))
        # Phase 2: toward target within that tax. Phase 1's integer choices (which side of
        # each wash group and swap, the share counts of the exact rung) stay fixed: phase 2 is
        # an LP that only moves the continuous trades.
        if b.has_integers:
            ints = np.concatenate(b.integer + b.semi).astype(np.int32)
            fixed = np.round(x[ints]) if not b.semi else x[ints]
            if b.semi:
                fixed[: sum(len(i) for i in b.integer)] = np.round(
                    x[ints[: sum(len(i) for i in b.integer)]]
                )
            highs.changeColsIntegrality(len(ints), ints, np.zeros(len(ints), dtype=np.uint8))
            highs.changeColsBounds(len(ints), ints, fixed, fixed)
        highs.run()
        second = _read(highs, b, s, bcols, u)
        return second if second.status in ("optimal", "time_limit") else first
    highs.run()
    return _read(highs, b, s, bcols, u)


def _read(
    highs: highspy._core._Highs,
    b: _Builder,
    s: NDArray[np.int64],
    bcols: NDArray[np.int64],
    u: NDArray[np.int64],
) -> Solution:
    status = highs.getModelStatus()
    empty = Solution("error", np.zeros(len(s)), np.zeros(len(bcols)), np.zeros(len(u)), 0.0)
    if status == highspy.HighsModelStatus.kInfeasible:
        return Solution("infeasible", empty.sells, empty.buys, empty.band_slack, 0.0)
    info = highs.getInfo()
    x = np.array(highs.getSolution().col_value) if info.primal_solution_status == 2 else None
    if x is None:
        return Solution(
            "error",
            empty.sells,
            empty.buys,
            empty.band_slack,
            0.0,
            detail=highs.modelStatusToString(status),
        )
    gap = float(info.mip_gap) if b.has_integers else 0.0
    label = "optimal" if status == highspy.HighsModelStatus.kOptimal else "time_limit"
    if label == "time_limit" and status not in _LIMITS:
        label = "error"
    return Solution(
        label,
        x[s].clip(min=0),
        x[bcols].clip(min=0),
        x[u].clip(min=0),
        gap if np.isfinite(gap) else 0.0,
        detail=highs.modelStatusToString(status),
        objective=float(info.objective_function_value),
    )
