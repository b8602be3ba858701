"""`umh bench soak --minutes N`: the demo's world for N minutes, watched for slow leaks.

The embedded broker, one worker and the demo's simulators (streams/tools/demo.py): the market
ticks, the custodian sends deposits and withdrawals, the OMS fills orders, except a share of
rebalances it never fills, which expire on the worker after `--ttl` seconds and are solved again.
Event time runs faster than the wall clock (one event day per `--day-seconds`): what the worker
remembers per household is bound by event days (fill and flow ids for 40 days, recent trades
for the wash window), so only a run that spans them can show memory settling; a run at one
event day shows those memories filling by design. The order TTL stays in wall seconds.
Every `--sample` seconds: the worker's RSS (/proc VmRSS), its consumer lag (the
`umh_consumer_lag` gauges: the topics it reads, its table's changelog not among them),
open rebalances (households with an `open_rebalance_id` in `/api/households`) and dead letters
(`umh_dead_letters_total`). At the end: the least-squares slope of each over the run after the
warm-up, per hour for memory and per minute for lag. The warm-up is the longest of one minute, a
fifth of the run and the worker's longest day-bound memory (`ID_MEMORY_DAYS` event days): before
it ends those memories fill by design. The lots held by the whole book are counted at the end of
the warm-up and of the run (every household's console detail), so that memory growth can be set
against the book's own. Flat is what a months-long run needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from streams.tools.bench_recovery import rss_mib
from streams.tools.demo import (
    HOST,
    Watch,
    fetch_metrics,
    http_get,
    labelled,
    metric,
    quiet_logger,
    start_worker,
    stop_process_group,
    wait_for_book,
    wait_for_worker,
    worker_env,
)
from streams.tools.simulators import (
    CustodianSimulator,
    MarketSimulator,
    OmsSimulator,
    ensure_topics,
    event_clock,
)
from streams.tools.synthetic import make_book, make_universe
from streams.worker.state import ID_MEMORY_DAYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=5.0, help="run time (default 5)")
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--lots", type=int, default=20)
    parser.add_argument("--ticks", type=float, default=100.0, help="price ticks/s (default 100)")
    parser.add_argument("--flows", type=float, default=2.0, help="cash flows/s (default 2)")
    parser.add_argument("--ttl", type=float, default=60.0, help="UMH_ORDER_TTL_S (default 60)")
    parser.add_argument(
        "--unfilled", type=float, default=0.2, help="share of rebalances never filled (0.2)"
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=20.0,
        help="wall seconds per event day of the simulators' clock (default 20: 30 minutes are"
        " 90 event days, past every day-bound memory of the worker)",
    )
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_mib: float
    lag: float
    open_rebalances: int
    dead_letters: float
    orders: int


@dataclass(frozen=True)
class BookCount:
    t_s: float
    rss_mib: float
    lots: int


def warm_up_s(run_s: float, day_seconds: float) -> float:
    """Seconds left out of the fits: the book loading, the first solves and the day-bound
    memories filling; never more than half the run, so that a short run still fits a slope."""
    return min(max(60.0, run_s / 5, ID_MEMORY_DAYS * day_seconds), run_s / 2)


def input_lag(metrics: dict[str, float]) -> float:
    """Consumer lag summed over the topics the worker reads (it reports no other)."""
    return sum(labelled(metrics, "umh_consumer_lag", "topic").values())


def slope(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope dy/dt (per second); 0 for fewer than two points."""
    if len(ts) < 2:
        return 0.0
    a, _ = np.polyfit(np.asarray(ts), np.asarray(ys), 1)
    return float(a)


def run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import free_port, start_broker, stop_broker, wait_until_serving

    if not args.day_seconds > 0:
        print(
            f"bench soak: --day-seconds must be positive, got {args.day_seconds:g}", file=sys.stderr
        )
        return 2
    rng = np.random.default_rng(args.seed)
    universe = make_universe(args.symbols, rng)
    book = make_book(args.households, universe, rng, n_lots=args.lots)
    port, web_port = free_port(HOST), free_port(HOST)
    workdir = Path(tempfile.mkdtemp(prefix="umh-soak-"))
    broker = start_broker(HOST, port, log_path=workdir / "broker.log")
    worker = None
    try:
        with quiet_logger("aiokafka"):
            wait_until_serving(HOST, port, 20.0, proc=broker)
        env = worker_env(port, web_port, str(workdir / "data"), UMH_ORDER_TTL_S=str(args.ttl))
        worker = start_worker(env, workdir / "worker.log")
        samples, counts = asyncio.run(_soak(args, port, web_port, universe, book, worker, workdir))
    except KeyboardInterrupt:
        return 130
    finally:
        if worker is not None:
            stop_process_group(worker)
        stop_broker(broker)
    if not samples:
        print(f"bench soak: no samples (worker log: {workdir / 'worker.log'})", file=sys.stderr)
        return 1
    _report(args, samples, counts)
    return 0 if worker is not None and worker.returncode in (0, -15, None) else 1


async def _open_rebalances(web_port: int) -> int:
    status, body = await asyncio.to_thread(
        http_get, f"http://{HOST}:{web_port}/api/households", 10.0
    )
    if status != 200:
        return -1
    return sum(1 for r in orjson.loads(body)["households"] if r.get("open_rebalance_id"))


async def _lots_held(web_port: int, household_ids: list[str]) -> int:
    """Lots held over the book, from each household's console detail (-1 if one is missing)."""
    total = 0
    for household_id in household_ids:
        status, body = await asyncio.to_thread(
            http_get, f"http://{HOST}:{web_port}/api/households/{household_id}", 10.0
        )
        if status != 200:
            return -1
        detail = orjson.loads(body)
        total += sum(len(holding["lots"]) for a in detail["accounts"] for holding in a["holdings"])
    return total


async def _soak(
    args: argparse.Namespace,
    port: int,
    web_port: int,
    universe: dict,  # type: ignore[type-arg]
    book: list,  # type: ignore[type-arg]
    worker: object,
    workdir: Path,
) -> tuple[list[Sample], list[BookCount]]:
    import subprocess

    assert isinstance(worker, subprocess.Popen)
    bootstrap = f"{HOST}:{port}"
    prefix = ""
    await ensure_topics(bootstrap, prefix)
    if not await wait_for_worker(worker, web_port, 120.0):
        print("bench soak: the worker did not become ready", file=sys.stderr)
        return [], []
    stop = asyncio.Event()
    clock = event_clock(args.day_seconds)
    market = MarketSimulator(bootstrap, prefix, universe, seed=args.seed, clock=clock)
    oms = OmsSimulator(
        bootstrap, prefix, market.prices, seed=args.seed, unfilled_share=args.unfilled, clock=clock
    )
    custodian = CustodianSimulator(
        bootstrap, prefix, book, universe, seed=args.seed, flows_per_s=args.flows, clock=clock
    )
    watch = Watch()
    flows_start = asyncio.Event()
    tasks = [
        asyncio.create_task(custodian.run(stop, flows_start=flows_start)),
        asyncio.create_task(oms.run(stop)),
        asyncio.create_task(watch.run(bootstrap, prefix, stop)),
    ]
    samples: list[Sample] = []
    counts: list[BookCount] = []
    household_ids = [h.household_id for h in book]
    try:
        while custodian.counters.sent.get("households", 0) < len(book):
            await asyncio.sleep(0.2)
        await wait_for_book(web_port, len(book), stop, 300.0)
        flows_start.set()
        tasks.append(asyncio.create_task(market.run(args.ticks, stop)))
        start = time.monotonic()
        end = start + args.minutes * 60.0
        count_at = start + warm_up_s(args.minutes * 60.0, args.day_seconds)
        print(
            f"bench soak: {len(book)} households, {args.ticks:g} ticks/s, {args.flows:g} flows/s, "
            f"TTL {args.ttl:g} s, {args.unfilled:.0%} of rebalances left unfilled, "
            f"{args.minutes:g} min, one event day per {args.day_seconds:g} s "
            f"({args.minutes * 60 / args.day_seconds:.0f} event days)",
            flush=True,
        )
        print("    t  RSS MiB    lag  open rb  dead letters  order msgs", flush=True)
        while time.monotonic() < end:
            if worker.poll() is not None:
                print(f"bench soak: the worker exited ({worker.returncode})", file=sys.stderr)
                break
            metrics = await fetch_metrics(web_port)
            s = Sample(
                t_s=time.monotonic() - start,
                rss_mib=rss_mib(worker.pid),
                lag=input_lag(metrics),
                open_rebalances=await _open_rebalances(web_port),
                dead_letters=metric(metrics, "umh_dead_letters_total") or 0.0,
                orders=watch.orders_messages,
            )
            samples.append(s)
            print(
                f"{s.t_s:5.0f}  {s.rss_mib:7.1f}  {s.lag:5.0f}  {s.open_rebalances:7d}  "
                f"{s.dead_letters:12.0f}  {s.orders:10d}",
                flush=True,
            )
            if not counts and time.monotonic() >= count_at:
                counts.append(await _count(worker.pid, web_port, household_ids, start))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=args.sample)
        if worker.poll() is None:
            counts.append(await _count(worker.pid, web_port, household_ids, start))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return samples, counts


async def _count(pid: int, web_port: int, household_ids: list[str], start: float) -> BookCount:
    lots = await _lots_held(web_port, household_ids)
    return BookCount(t_s=time.monotonic() - start, rss_mib=rss_mib(pid), lots=lots)


def _report(args: argparse.Namespace, samples: list[Sample], counts: list[BookCount]) -> None:
    warm = warm_up_s(args.minutes * 60.0, args.day_seconds)
    kept = [s for s in samples if s.t_s >= warm] or samples
    ts = [s.t_s for s in kept]
    rss = slope(ts, [s.rss_mib for s in kept]) * 3600
    lag = slope(ts, [s.lag for s in kept]) * 60
    opened = slope(ts, [float(s.open_rebalances) for s in kept]) * 60
    dead = samples[-1].dead_letters - samples[0].dead_letters
    print()
    print(f"after a {warm:.0f} s warm-up, {len(kept)} samples over {ts[-1] - ts[0]:.0f} s:")
    print("| measure | first | last | min | max | fitted slope |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values, fitted, digits in (
        ("worker RSS (MiB)", [s.rss_mib for s in kept], f"{rss:+.1f} MiB/h", 1),
        ("consumer lag (messages)", [s.lag for s in kept], f"{lag:+.2f} /min", 0),
        ("open rebalances", [float(s.open_rebalances) for s in kept], f"{opened:+.2f} /min", 0),
    ):
        shown = (f"{v:.{digits}f}" for v in (values[0], values[-1], min(values), max(values)))
        print(f"| {name} | {' | '.join(shown)} | {fitted} |")
    print(
        f"| dead letters (whole run) | {samples[0].dead_letters:.0f} | "
        f"{samples[-1].dead_letters:.0f} | | | +{dead:.0f} |"
    )
    print(f"| order messages (whole run) | {samples[0].orders} | {samples[-1].orders} | | | |")
    if len(counts) == 2 and min(c.lots for c in counts) >= 0:
        first, last = counts
        print(
            f"lots held by the book: {first.lots:,} at {first.t_s:.0f} s (RSS {first.rss_mib:.1f}"
            f" MiB), {last.lots:,} at {last.t_s:.0f} s (RSS {last.rss_mib:.1f} MiB): "
            f"{last.lots - first.lots:+,} lots, {last.rss_mib - first.rss_mib:+.1f} MiB"
        )
