"""`umh bench solve`: solver latency, throughput, status mix, and tax against per-account.

Generated households of a given shape (streams.tools.synthetic) are solved one by one; build and
total times are measured with a monotonic clock; the same book goes through the per-account
baseline (solver.per_account) so that tax, turnover and order counts can be compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from schemas import Household, Order, dumps, household_to_json, result_to_json
from solver import apply_orders, hard_rule_violations, household_drift, solve
from solver.documents import solve_bytes
from solver.per_account import per_account_orders
from solver.problem import build_problem, long_term_after
from streams.tools.synthetic import make_book, make_universe

SHAPES = {
    # name: (accounts, securities, lots, integer rules active)
    "lp": (4, 40, 200, False),
    "rules": (4, 40, 200, True),
    "large": (6, 120, 2400, True),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="rules",
        help="lp: no integer rules needed; rules: wash-sale, whole-share and "
        "minimum-trade rules active; large: 6 accounts, 120 securities, "
        "2,400 lots",
    )
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument(
        "--drifted-share",
        type=float,
        default=1.0,
        help="share of households out of band (1.0: every one needs a solve; a realistic book "
        "is ~0.3, with the contract's mode mix)",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="also time the JSON-in/JSON-out batch path (umh solve --batch)",
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="per household: the whole `umh solve --batch` line against HiGHS alone on the "
        "household's first model (the LP the solver builds), and this shape's p99 against the "
        "lp shape's p50 in the same run",
    )


def lp_only(h: Household) -> Household:
    """The household with every integer rule switched off: fractional shares, no minimum order,
    no harvesting, no recent trades, swaps allowed."""
    securities = {s: replace(sec, fractional=True) for s, sec in h.securities.items()}
    options = replace(
        h.options, min_trade_value=0.0, harvest_losses=False, allow_cross_account_swaps=True
    )
    return replace(h, securities=securities, options=options, recent_trades=())


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50, p90, p99 = np.percentile(np.array(values), [50, 90, 99])
    return f"p50 {p50:8.2f}  p90 {p90:8.2f}  p99 {p99:8.2f}  max {max(values):8.2f}"


def realized_tax(h: Household, orders: tuple[Order, ...]) -> float:
    """Tax on the gains of the taxable lots the orders relieve (same rule for both strategies)."""
    tax = 0.0
    for o in orders:
        account = h.account(o.account_id)
        if account is None or account.type != "taxable" or o.side != "sell":
            continue
        lots = {lot.lot_id: lot for lot in account.lots}
        for r in o.lots:
            lot = lots[r.lot_id]
            gain = r.quantity * o.est_price - lot.cost_basis * r.quantity / lot.quantity
            long_term = h.as_of > long_term_after(lot.acquired)
            tax += gain * (h.tax.long_term_rate if long_term else h.tax.short_term_rate)
    return tax


def run(args: argparse.Namespace) -> int:
    accounts, n_securities, lots, rules = SHAPES[args.shape]
    rng = np.random.default_rng(args.seed)
    universe = make_universe(n_securities, rng)
    book = make_book(
        args.households,
        universe,
        rng,
        n_accounts=accounts,
        n_lots=lots,
        mode="rebalance" if args.drifted_share >= 1.0 else None,
        drifted=True if args.drifted_share >= 1.0 else None,
        drifted_share=min(args.drifted_share, 1.0),
    )
    if not rules:
        book = [lp_only(h) for h in book]
    solve(book[0], time_limit_s=args.time_limit)  # warm-up: imports, first HiGHS instance
    build_ms: list[float] = []
    total_ms: list[float] = []
    statuses: Counter[str] = Counter()
    compare = {"household": [0.0, 0.0, 0, 0, 0], "per_account": [0.0, 0.0, 0, 0, 0]}
    started = time.perf_counter()
    for h in book:
        t0 = time.perf_counter()
        build_problem(h)
        build_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        res = solve(h, time_limit_s=args.time_limit)
        total_ms.append((time.perf_counter() - t0) * 1000)
        statuses[res.status] += 1
        k = h.options.transaction_cost_bps / 1e4
        value = household_drift(h).investable_usd
        for name, orders in (("household", res.orders), ("per_account", per_account_orders(h))):
            row = compare[name]
            row[0] += realized_tax(h, orders)
            row[1] += sum(o.est_value for o in orders) / value
            row[2] += len(orders)
            row[3] += int(not household_drift(apply_orders(h, orders, k)).out_of_band)
            row[4] += sum(
                1 for v in hard_rule_violations(h, orders) if "wash" in v or "30 days" in v
            )
    elapsed = time.perf_counter() - started
    n = len(book)
    print(
        f"umh bench solve --shape {args.shape} --households {n} --seed {args.seed} "
        f"--drifted-share {args.drifted_share}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(
        f"shape: {accounts} accounts, {n_securities} securities in the universe, {lots} lots; "
        f"integer rules {'on' if rules else 'off'}"
    )
    print(f"build ms : {percentiles(build_ms)}")
    print(f"solve ms : {percentiles(total_ms)}  (build included)")
    print(
        f"households/s (solve only, one core): {n / (sum(total_ms) / 1000):.0f}; "
        f"loop incl. baseline {n / elapsed:.0f}/s"
    )
    print("status mix: " + ", ".join(f"{s} {c}" for s, c in statuses.most_common()))
    print(
        f"{'strategy':12} {'tax USD':>14} {'turnover':>9} {'orders':>7} {'in band':>8} "
        f"{'wash sales':>10}"
    )
    for name, (tax, turnover, n_orders, in_band, wash) in compare.items():
        print(
            f"{name:12} {tax:14,.0f} {turnover / n:9.3f} {n_orders / n:7.1f} "
            f"{in_band / n:8.1%} {wash:10d}"
        )
    if args.batch:
        bench_batch(book)
    if args.overhead:
        bench_overhead(args, book, total_ms)
    return 0


@contextmanager
def first_models() -> Iterator[list[object]]:
    """Collect the first model the solver hands to HiGHS in each solve (read-only: the solver's
    own builder object, kept as it was passed; the wrapper is removed on exit)."""
    from solver import model

    captured: list[object] = []
    original = model._Builder.pass_to

    def pass_to(self: object, highs: object) -> None:
        captured.append(self)
        original(self, highs)  # type: ignore[arg-type]

    model._Builder.pass_to = pass_to  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        model._Builder.pass_to = original  # type: ignore[method-assign]


@contextmanager
def highs_in_solve() -> Iterator[list[float]]:
    """Seconds spent inside HiGHS (every passModel and run of every instance the solver makes)
    while the block runs; a timing wrapper around each instance, so only for a second pass."""
    from solver import model

    spent = [0.0]
    original = model._new_highs

    class Timed:
        def __init__(self, highs: Any) -> None:
            self._highs = highs

        def __getattr__(self, name: str) -> Any:
            return getattr(self._highs, name)

        def passModel(self, *args: Any) -> Any:  # HiGHS spells it so
            t0 = time.perf_counter()
            try:
                return self._highs.passModel(*args)
            finally:
                spent[0] += time.perf_counter() - t0

        def run(self) -> Any:
            t0 = time.perf_counter()
            try:
                return self._highs.run()
            finally:
                spent[0] += time.perf_counter() - t0

    model._new_highs = lambda *a, **k: Timed(original(*a, **k))  # type: ignore[assignment]
    try:
        yield spent
    finally:
        model._new_highs = original


def highs_alone_ms(builder: object) -> tuple[float, float]:
    """(passModel + run, run alone) in ms for the builder's model on a fresh HiGHS instance with
    the solver's own options (solver.model._new_highs with no work limit)."""
    from solver import model

    highs = model._new_highs(model.Limits())
    t0 = time.perf_counter()
    model._Builder.pass_to(builder, highs)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    highs.run()
    t2 = time.perf_counter()
    return (t2 - t0) * 1000, (t2 - t1) * 1000


def bench_overhead(args: argparse.Namespace, book: list[Household], solve_ms: list[float]) -> None:
    """Whole batch line per household against HiGHS alone on its first LP; shape p99 vs lp p50."""
    from streams.cli.solve import answer

    lines = [dumps(household_to_json(h)) for h in book]
    batch_ms: list[float] = []
    alone_ms: list[float] = []
    run_ms: list[float] = []
    ratios: list[float] = []
    built: list[float] = []  # whole line ms of the households that built a model
    in_solve_ms: list[float] = []  # HiGHS's time in the whole line (every call), second pass
    for line in lines:
        with first_models() as models:
            t0 = time.perf_counter()
            answer(line, args.time_limit)
            whole = (time.perf_counter() - t0) * 1000
        batch_ms.append(whole)
        with highs_in_solve() as spent:
            answer(line, args.time_limit)
        in_solve_ms.append(spent[0] * 1000)
        if models:
            with_pass, run_only = highs_alone_ms(models[0])
            alone_ms.append(with_pass)
            run_ms.append(run_only)
            ratios.append(whole / with_pass)
            built.append(whole)
    print(f"overhead ({len(lines)} households, {len(alone_ms)} built a model):")
    print(f"  whole `umh solve --batch` line ms : {percentiles(batch_ms)}")
    print(f"  HiGHS alone, passModel+run ms     : {percentiles(alone_ms)}")
    print(f"  HiGHS alone, run only ms          : {percentiles(run_ms)}")
    print(f"  HiGHS in the whole line, every call: {percentiles(in_solve_ms)}")
    if alone_ms:
        print(
            f"  ratio whole/HiGHS-alone: p50 per household {float(np.median(ratios)):.1f}x; "
            f"mean whole {float(np.mean(built)):.2f} ms / mean HiGHS {float(np.mean(alone_ms)):.2f}"
            f" ms = {float(np.mean(built)) / float(np.mean(alone_ms)):.1f}x (target <= 5x)"
        )
        inside = float(np.mean(in_solve_ms))
        print(
            f"  the line's Python beside HiGHS: mean whole {float(np.mean(batch_ms)):.2f} ms / "
            f"HiGHS's calls in it {inside:.2f} ms = {float(np.mean(batch_ms)) / inside:.1f}x"
        )
    if args.shape != "lp" and args.drifted_share >= 1.0:  # else the lp p50 is a no-op
        accounts, n_securities, lots, _rules = SHAPES["lp"]
        rng = np.random.default_rng(args.seed)
        universe = make_universe(n_securities, rng)
        lp_book = [
            lp_only(h)
            for h in make_book(
                len(book),
                universe,
                rng,
                n_accounts=accounts,
                n_lots=lots,
                mode="rebalance" if args.drifted_share >= 1.0 else None,
                drifted=True if args.drifted_share >= 1.0 else None,
                drifted_share=min(args.drifted_share, 1.0),
            )
        ]
        lp_ms = []
        for h in lp_book:
            t0 = time.perf_counter()
            solve(h, time_limit_s=args.time_limit)
            lp_ms.append((time.perf_counter() - t0) * 1000)
        p99 = float(np.percentile(np.array(solve_ms), 99))
        p50 = float(np.percentile(np.array(lp_ms), 50))
        print(
            f"  {args.shape} shape solve p99 {p99:.2f} ms / lp shape solve p50 {p50:.2f} ms "
            f"(same run) = {p99 / p50:.1f}x (target <= 10x)"
        )


def bench_batch(book: list[Household]) -> None:
    """Households/s through the JSON path of `umh solve --batch` (decode, solve, encode)."""
    lines = [dumps(household_to_json(h)) for h in book]
    t0 = time.perf_counter()
    for line in lines:
        dumps(result_to_json(solve_bytes(line)))
    elapsed = time.perf_counter() - t0
    print(f"batch (JSON in and out): {len(lines) / elapsed:.0f} households/s")
