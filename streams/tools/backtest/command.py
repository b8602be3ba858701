"""`umh backtest`: build the book, the paths and the flows, run every household, write reports.

Households are independent, so they run in worker processes (`--jobs`); the results do not
depend on the number of workers. A progress bar goes to standard error, the headline table to
standard output.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from schemas import Household, RebalanceResult, Security, household_to_json, result_to_json
from streams.tools.synthetic import make_household, make_universe

from .engine import Checker, HouseholdResult, Market, own_check, simulate_household
from .flows import ScheduledFlow, make_flows
from .prices import PricePaths, business_days, read_prices_csv, simulate_paths
from .report import aggregate, table, write
from .transition import BUDGET_USD, run_transition

START = date(2026, 1, 2)
ACCOUNT_MIX = {2: 0.30, 3: 0.35, 4: 0.20, 5: 0.15}
LOTS = (40, 120)
DRIFTED_SHARE = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--households", type=int, default=100)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("backtest-out"),
        help="directory for summary.json, report.md and the plots",
    )
    parser.add_argument(
        "--prices",
        type=Path,
        default=None,
        help="CSV of daily prices, long format: date,symbol,price "
        "(default: simulated correlated random walks)",
    )
    parser.add_argument("--symbols", type=int, default=60, help="securities in the universe")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (default: 2 or the number of cores if fewer)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=1.0, help="time limit of one solve, seconds"
    )
    parser.add_argument(
        "--transition-budget",
        type=float,
        default=BUDGET_USD,
        help="yearly budget (USD of net realized gains) of the legacy transition scenario; "
        "0 skips the scenario",
    )


def build_book(
    n: int, universe: dict[str, Security], as_of: date, rng: np.random.Generator
) -> list[Household]:
    width = max(5, len(str(n)))
    accounts, probs = list(ACCOUNT_MIX), list(ACCOUNT_MIX.values())
    book = []
    for i in range(1, n + 1):
        book.append(
            make_household(
                f"hh-{i:0{width}d}",
                universe,
                rng,
                n_accounts=int(rng.choice(accounts, p=probs)),
                n_lots=int(rng.integers(LOTS[0], LOTS[1] + 1)),
                mode="rebalance",
                as_of=as_of,
                drifted=bool(rng.random() < DRIFTED_SHARE),
            )
        )
    return book


def load_contract_checker() -> tuple[Checker, str]:
    """The checker the backtest judges umh results with, and its name for the report: the
    independent contract checker (`streams/tools/contract_check.py`, written from the contract
    alone, on the JSON of both). The one place that picks it."""
    from streams.tools.contract_check import violations

    def check(h: Household, r: RebalanceResult) -> list[str]:
        found: list[str] = violations(household_to_json(h), result_to_json(r))
        return found

    return check, "streams/tools/contract_check.py"


_MARKET: Market | None = None
_TIME_LIMIT = 1.0
_CHECKER: Checker = own_check


def _init(market: Market, time_limit_s: float) -> None:
    """Each worker process loads its own checker (a loaded module does not pickle)."""
    global _MARKET, _TIME_LIMIT, _CHECKER
    _MARKET, _TIME_LIMIT, _CHECKER = market, time_limit_s, load_contract_checker()[0]


def _work(job: tuple[Household, tuple[ScheduledFlow, ...]]) -> HouseholdResult:
    assert _MARKET is not None
    return simulate_household(job[0], job[1], _MARKET, time_limit_s=_TIME_LIMIT, checker=_CHECKER)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    started = time.perf_counter()
    book_seq, price_seq, flow_seq = np.random.SeedSequence(args.seed).spawn(3)
    book_rng = np.random.default_rng(book_seq)
    universe = make_universe(args.symbols, book_rng)
    paths: PricePaths
    if args.prices is not None:
        try:
            paths = read_prices_csv(args.prices, tuple(sorted(universe)), args.years)
        except (OSError, ValueError) as exc:
            print(f"umh backtest: {exc}", file=sys.stderr)
            return 2
        first = dict(zip(paths.symbols, paths.price[0].tolist(), strict=True))
        universe = {s: replace(sec, price=first[s]) for s, sec in universe.items()}
    else:
        days = business_days(START, args.years)
        paths = simulate_paths(universe, days, np.random.default_rng(price_seq))
    if len(paths.days) < 2:
        print("umh backtest: fewer than two days of prices", file=sys.stderr)
        return 2
    market = Market.of(paths)
    book = build_book(args.households, universe, paths.days[0], book_rng)
    flow_rng = np.random.default_rng(flow_seq)
    jobs = [(h, make_flows(h, paths.days, flow_rng)) for h in book]
    checker_label = load_contract_checker()[1]
    results: list[HouseholdResult] = []
    bar = tqdm(total=len(jobs), desc="backtest", unit="household", file=sys.stderr)
    if args.jobs <= 1:
        _init(market, args.time_limit)
        for job in jobs:
            results.append(_work(job))
            bar.update()
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        with ctx.Pool(args.jobs, initializer=_init, initargs=(market, args.time_limit)) as pool:
            for result in pool.imap_unordered(_work, jobs):
                results.append(result)
                bar.update()
    bar.close()
    totals = aggregate(results, market)
    transition = None
    if args.transition_budget > 0:
        try:
            transition = run_transition(
                universe, market, budget_usd=args.transition_budget, time_limit_s=args.time_limit
            )
        except ValueError as exc:  # a universe without one of the classes it needs
            print(f"umh backtest: transition scenario skipped: {exc}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    parameters = {
        "command": "umh backtest " + " ".join(shlex.quote(a) for a in _argv(args)),
        "households": args.households,
        "years": args.years,
        "seed": args.seed,
        "symbols": args.symbols,
        "prices": str(args.prices) if args.prices else "simulated",
        "jobs": args.jobs,
        "time_limit_s": args.time_limit,
        "transition_budget": args.transition_budget,
        "checker": checker_label,
        "elapsed_s": round(elapsed, 1),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    summary = write(args.out, totals, market, parameters, transition)
    print(table(summary))
    print(
        f"\n{args.households} households x {args.years} years in {elapsed:.1f} s "
        f"({args.jobs} processes); outputs in {args.out}"
    )
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    out = [
        "--households",
        str(args.households),
        "--years",
        str(args.years),
        "--seed",
        str(args.seed),
        "--out",
        str(args.out),
        "--symbols",
        str(args.symbols),
    ]
    if args.transition_budget != BUDGET_USD:
        out += ["--transition-budget", f"{args.transition_budget:g}"]
    if args.prices is not None:
        out += ["--prices", str(args.prices)]
    return out
