"""`umh bench stream`: a market-wide fall on one worker, next to `umh solve --batch` on it.

On the embedded broker with one `umh worker` subprocess (`UMH_SOLVER_PROCESSES`: its default,
the machine's cores, unless `--processes`):

1. the security master and one price per symbol are published BEFORE the worker starts; the
   worker's start-up (process start to /healthz 200) includes reading those prices back;
2. the book (synthetic, the contract's mode mix, inside its bands) is published; memory per
   household is the worker's RSS growth over it (the solver processes are separate);
3. every equity falls 25% in one burst: the orders that follow are timed from the burst (drain
   rate, tick-to-order p50/p99); each is checked against the contract's hard rules, and every
   household the batch solver rebalances at the new prices must get orders from the stream;
4. isolated breaches: households holding a symbol of their own, ticked one at a time in a quiet
   market, tick -> order p50/p99;
5. the worker is killed (SIGKILL) and restarted: time until it is healthy again (table recovery
   from the changelog and the price read-back);
6. the same breached households, at the new prices, through `umh solve --batch` (one process):
   the single-process reference, side by side.

Changelog bytes per change come from the worker's `umh_changelog_bytes`/`umh_changelog_writes`;
where a rebalance's time goes in the fall (main process by step, solver processes) from its
`umh_stage_seconds`, `process_cpu_seconds_total` and `umh_solver_seconds`.
It prints a table; BENCHMARKS.md keeps the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from schemas import (
    Household,
    Security,
    dumps,
    household_to_json,
    loads,
    parse_household,
    parse_result,
)
from schemas.events import security_event_to_json
from solver import hard_rule_violations, household_drift, missing_prices, triggers
from streams.tools.demo import (
    HOST,
    fetch_metrics,
    metric,
    quiet_logger,
    start_worker,
    stop_process_group,
    wait_for_worker,
    worker_env,
)
from streams.tools.simulators import assigned_consumer, ensure_topics, make_producer, topic
from streams.tools.synthetic import make_book, make_universe
from streams.worker.metrics import STAGES

FALL = 0.25
TICK_DAY = date(2026, 11, 25)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--households", type=int, default=10_000, help="book size (10000)")
    parser.add_argument("--symbols", type=int, default=500, help="universe size (500)")
    parser.add_argument("--lots", type=int, default=60, help="lots per household (60)")
    parser.add_argument("--isolated", type=int, default=30, help="isolated breaches (30)")
    parser.add_argument(
        "--processes", type=int, default=None, help="UMH_SOLVER_PROCESSES (default: cores)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for each phase")


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS of /proc/PID/status); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(slots=True)
class Row:
    name: str
    value: str
    note: str = ""


class BenchError(RuntimeError):
    pass


def isolated_households(n: int, as_of: date) -> tuple[list[Household], dict[str, Security]]:
    """n households at target 60/40, each holding an equity of its own (ISO-k) and ISO-FI."""
    securities: dict[str, Security] = {}
    out: list[Household] = []
    for k in range(n):
        sym = f"ISO-{k:03d}"
        raw = {
            "household_id": f"iso-{k:03d}",
            "as_of": as_of.isoformat(),
            "target": {"us_equity": 0.6, "fixed_income": 0.4},
            "buy_list": {"us_equity": [sym], "fixed_income": ["ISO-FI"]},
            "options": {"min_trade_value": 0.0, "harvest_losses": False},
            "accounts": [
                {
                    "account_id": f"iso-{k:03d}-IRA",
                    "type": "tax_deferred",
                    "cash": 0.0,
                    "lots": [
                        {
                            "lot_id": "L-1",
                            "symbol": sym,
                            "quantity": 600,
                            "cost_basis": 50_000.0,
                            "acquired": "2020-01-02",
                        },
                        {
                            "lot_id": "L-2",
                            "symbol": "ISO-FI",
                            "quantity": 400,
                            "cost_basis": 40_000.0,
                            "acquired": "2020-01-02",
                        },
                    ],
                }
            ],
            "securities": {
                sym: {"price": 100.0, "asset_class": "us_equity"},
                "ISO-FI": {"price": 100.0, "asset_class": "fixed_income"},
            },
        }
        h = parse_household(raw)
        securities.update(h.securities)
        out.append(h)
    return out, securities


def fallen(universe: dict[str, Security]) -> dict[str, float]:
    """Every equity (any us_/intl_ equity exposure) down FALL, the rest unchanged."""
    out: dict[str, float] = {}
    for sym, sec in universe.items():
        price = sec.price or 0.0
        if any("equity" in c for c in sec.exposures):
            price = round(price * (1.0 - FALL), 4)
        out[sym] = price
    return out


def at_prices(h: Household, prices: dict[str, float], universe: dict[str, Security]) -> Household:
    referenced = {lot.symbol for a in h.accounts for lot in a.lots}
    for lists in (h.buy_list, *(a.buy_list for a in h.accounts)):
        for symbols in lists.values():
            referenced.update(symbols)
    referenced.update(t.symbol for t in h.recent_trades)
    secs = {s: replace(universe[s], price=prices[s]) for s in referenced if s in universe}
    return replace(h, as_of=max(h.as_of, TICK_DAY), securities=secs)


def run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import free_port, start_broker, stop_broker, wait_until_serving

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    universe = make_universe(args.symbols, rng)
    book = make_book(args.households, universe, rng, n_lots=args.lots, drifted=False)
    iso, iso_secs = isolated_households(args.isolated, book[0].as_of if book else TICK_DAY)
    print(
        f"bench stream: {len(book)} households x {args.lots} lots, {len(universe)} symbols, "
        f"{len(iso)} isolated ({time.perf_counter() - t0:.1f}s to generate)",
        flush=True,
    )
    port, web_port = free_port(HOST), free_port(HOST)
    workdir = Path(tempfile.mkdtemp(prefix="umh-bench-"))
    broker = start_broker(HOST, port, log_path=workdir / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    rows: list[Row] = []
    try:
        with quiet_logger("aiokafka"):
            wait_until_serving(HOST, port, 20.0, proc=broker)
        # no fills come (no OMS): the orders of the load must not expire during the run
        extra = {"UMH_ORDER_TTL_S": "86400"}
        if args.processes is not None:
            extra["UMH_SOLVER_PROCESSES"] = str(args.processes)
        env = worker_env(port, web_port, str(workdir / "data"), **extra)
        from streams.settings import load_settings

        settings = load_settings(env)
        rows += [Row("solver processes", str(settings.solver_processes))]
        holder: list[subprocess.Popen[bytes]] = []
        rows += asyncio.run(
            _bench(
                args,
                settings.topic_prefix,
                port,
                web_port,
                universe,
                book,
                iso,
                iso_secs,
                env,
                workdir,
                holder,
                settings.partitions,
            )
        )
        worker = holder[-1] if holder else None
        if worker is not None:
            stop_process_group(worker)
            worker = None
        rows += _batch_reference(args, universe, book, workdir, rows)
    except KeyboardInterrupt:
        print("bench stream: interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench stream: {exc} (worker log: {workdir / 'worker.log'})", file=sys.stderr)
        return 1
    finally:
        if worker is not None:
            stop_process_group(worker)
        stop_broker(broker)
    _print_table(rows, args)
    return 0


async def _publish_reference_data(
    producer: object, prefix: str, universe: dict[str, Security], iso_secs: dict[str, Security]
) -> None:
    from aiokafka import AIOKafkaProducer

    assert isinstance(producer, AIOKafkaProducer)
    futures = []
    ts = f"{date(2026, 11, 24).isoformat()}T21:00:00Z"
    for sym, sec in {**universe, **iso_secs}.items():
        futures.append(
            await producer.send(
                topic(prefix, "securities"), dumps(security_event_to_json(sec)), key=sym.encode()
            )
        )
        price = {"schema": "price/v1", "symbol": sym, "price": sec.price, "ts": ts}
        futures.append(await producer.send(topic(prefix, "prices"), dumps(price), key=sym.encode()))
    await asyncio.gather(*futures)


async def _publish_book(producer: object, prefix: str, book: list[Household]) -> None:
    futures = []
    for h in book:
        body = household_to_json(h)
        body.pop("securities", None)  # the master and the price feed know them
        futures.append(
            await producer.send(  # type: ignore[attr-defined]
                topic(prefix, "households"), dumps(body), key=h.household_id.encode()
            )
        )
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures = []
    await asyncio.gather(*futures)


class Orders:
    """Every `orders` message with its arrival time, read from the topic's start."""

    def __init__(self) -> None:
        self.got: list[tuple[float, bytes]] = []

    async def run(self, bootstrap: str, prefix: str, stop: asyncio.Event) -> None:
        consumer = await assigned_consumer(bootstrap, [topic(prefix, "orders")], from_end=False)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=20, max_records=5000)
                now = time.time()
                for records in batches.values():
                    self.got.extend((now, r.value) for r in records)
        finally:
            await consumer.stop()


async def _quiet(web_port: int, quiet_s: float, timeout_s: float) -> None:
    """Until the worker's consumed events and solves stop moving and its queue is empty."""
    deadline = time.monotonic() + timeout_s
    last: tuple[float, float] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        m = await fetch_metrics(web_port)
        now = (metric(m, "umh_events_total") or 0.0, metric(m, "umh_solves_total") or 0.0)
        queued = metric(m, "umh_solve_queue") or 0.0
        if now != last or queued > 0:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        await asyncio.sleep(0.25)


async def _bench(
    args: argparse.Namespace,
    prefix: str,
    port: int,
    web_port: int,
    universe: dict[str, Security],
    book: list[Household],
    iso: list[Household],
    iso_secs: dict[str, Security],
    env: dict[str, str],
    workdir: Path,
    holder: list[subprocess.Popen[bytes]],
    partitions: int,
) -> list[Row]:
    bootstrap = f"{HOST}:{port}"
    rows: list[Row] = []
    await ensure_topics(bootstrap, prefix, partitions=partitions)
    producer = make_producer(bootstrap, linger_ms=5)
    await producer.start()
    stop = asyncio.Event()
    orders = Orders()
    reader: asyncio.Task[None] | None = None
    try:
        await _publish_reference_data(producer, prefix, universe, iso_secs)
        # 1. start-up with the prices already on the topic
        t = time.monotonic()
        worker = start_worker(env, workdir / "worker.log")
        holder.append(worker)
        if not await wait_for_worker(worker, web_port, args.timeout):
            raise BenchError("the worker did not become ready")
        startup_s = time.monotonic() - t
        m = await fetch_metrics(web_port)
        rows.append(
            Row(
                "start-up (process start -> healthy)",
                f"{startup_s:.1f} s",
                f"price read-back {metric(m, 'umh_price_catch_up_seconds') or 0:.2f} s, "
                f"{len(universe) + len(iso_secs)} prices published before the start",
            )
        )
        await asyncio.sleep(1.0)
        rss0 = rss_kib(worker.pid)
        # 2. the book
        reader = asyncio.create_task(orders.run(bootstrap, prefix, stop))
        t = time.monotonic()
        await _publish_book(producer, prefix, [*book, *iso])
        total = len(book) + len(iso)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            held = metric(await fetch_metrics(web_port), "umh_households") or 0
            if held >= total:
                break
            await asyncio.sleep(0.25)
        load_s = time.monotonic() - t
        await _quiet(web_port, 2.0, args.timeout)
        rss1 = rss_kib(worker.pid)
        m = await fetch_metrics(web_port)
        writes = metric(m, "umh_changelog_writes_total") or 0.0
        written = metric(m, "umh_changelog_bytes_total") or 0.0
        at_load = {loads(v)["household_id"] for _t, v in orders.got}
        rows += [
            Row("book loaded", f"{load_s:.1f} s", f"{total / load_s:,.0f} households/s"),
            Row(
                "memory per household (worker RSS growth / households)",
                f"{(rss1 - rss0) / total:.1f} KiB",
                f"{args.lots} lots each; RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB",
            ),
            Row(
                "changelog bytes per change",
                f"{written / max(writes, 1):,.0f} B",
                f"{writes:,.0f} writes while loading",
            ),
        ]
        print(f"bench stream: loaded; {len(at_load)} rebalanced at load", flush=True)
        # 3. the fall
        prices = fallen(universe)
        base_writes, base_bytes = writes, written
        at_rest = m
        before = len(orders.got)
        ts = f"{TICK_DAY.isoformat()}T15:30:00Z"
        burst = time.time()
        futures = [
            await producer.send(
                topic(prefix, "prices"),
                dumps({"schema": "price/v1", "symbol": s, "price": p, "ts": ts}),
                key=s.encode(),
            )
            for s, p in prices.items()
            if p != universe[s].price
        ]
        await asyncio.gather(*futures)
        await _quiet(web_port, 3.0, args.timeout)
        fall = orders.got[before:]
        m = await fetch_metrics(web_port)
        writes = (metric(m, "umh_changelog_writes_total") or 0.0) - base_writes
        written = (metric(m, "umh_changelog_bytes_total") or 0.0) - base_bytes
        latencies = [t - burst for t, _v in fall]
        span = max(latencies) if latencies else math.nan
        by_id = {h.household_id: h for h in book}
        served: set[str] = set()
        violations = 0
        for _t, value in fall:
            result = parse_result(loads(value))
            served.add(result.household_id)
            h = at_prices(by_id[result.household_id], prices, universe)
            violations += bool(hard_rule_violations(h, result.orders))
        drain = len(fall) / span if span and span > 0 else math.nan
        rows += [
            Row(
                "fall: households rebalanced",
                f"{len(served):,}",
                f"{len(fall):,} rebalance/v1 messages; {violations} break a hard rule",
            ),
            Row("fall: drain rate", f"{drain:,.0f} rebalances/s", f"last order {span:.1f} s after"),
            Row(
                "fall: tick -> order p50 / p99",
                f"{percentile(latencies, 0.5):.2f} / {percentile(latencies, 0.99):.2f} s",
            ),
            Row(
                "fall: changelog bytes per change",
                f"{written / max(writes, 1):,.0f} B",
                f"{writes:,.0f} writes, {written / 1e6:,.1f} MB",
            ),
        ]
        rows += breakdown(at_rest, m, len(fall), span)
        _served_fall.clear()
        _served_fall.update(served)
        _served_load.clear()
        _served_load.update(at_load)
        _fall_rate.append(drain)
        # 4. isolated breaches
        iso_lat: list[float] = []
        for h in iso:
            sym = next(lot.symbol for lot in h.accounts[0].lots if lot.symbol.startswith("ISO-0"))
            before = len(orders.got)
            sent = time.time()
            await producer.send_and_wait(
                topic(prefix, "prices"),
                dumps({"schema": "price/v1", "symbol": sym, "price": 150.0, "ts": ts}),
                key=sym.encode(),
            )
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                got = [
                    t for t, v in orders.got[before:] if loads(v)["household_id"] == h.household_id
                ]
                if got:
                    iso_lat.append(got[0] - sent)
                    break
                await asyncio.sleep(0.002)
        rows.append(
            Row(
                "isolated breach: tick -> order p50 / p99",
                f"{percentile(iso_lat, 0.5) * 1e3:.0f} / {percentile(iso_lat, 0.99) * 1e3:.0f} ms",
                f"{len(iso_lat)}/{len(iso)} served",
            )
        )
        # 5. kill and restart: recovery
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        t = time.monotonic()
        again = start_worker(env, workdir / "worker.log")
        holder.append(again)
        ok = await wait_for_worker(again, web_port, args.timeout)
        rows.append(
            Row(
                "recovery after SIGKILL (restart -> healthy)",
                f"{time.monotonic() - t:.1f} s" if ok else "not healthy",
                f"{total:,} households from the changelog, prices read back",
            )
        )
    finally:
        stop.set()
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
    return rows


def breakdown(
    before: Mapping[str, float], after: Mapping[str, float], rebalances: int, span_s: float
) -> list[Row]:
    """Where a rebalance's time went during the fall, per rebalance published: the worker's
    main process by step (`streams.worker.metrics.STAGES`; the rest of its CPU is Kafka's
    client, Faust, the event loop and the pool's feeder thread) and the solver processes."""

    def delta(name: str, **labels: str) -> float:
        return (metric(after, name, **labels) or 0.0) - (metric(before, name, **labels) or 0.0)

    n = max(rebalances, 1)
    cpu = delta("process_cpu_seconds_total")
    stages = {name: delta("umh_stage_seconds_total", stage=name) for name in STAGES}
    rest = cpu - sum(stages.values())
    parts = ", ".join(f"{name} {1e3 * v / n:.2f}" for name, v in stages.items())
    busy = cpu / span_s if span_s > 0 else math.nan
    return [
        Row(
            "fall: main process CPU per rebalance",
            f"{1e3 * cpu / n:.2f} ms",
            f"{parts}, rest {1e3 * rest / n:.2f} ms (Kafka client, Faust, event loop, pool "
            f"feeder); {busy:.0%} of a core over the fall",
        ),
        Row(
            "fall: solve per rebalance (solver processes)",
            f"{1e3 * delta('umh_solver_seconds_total') / n:.2f} ms",
            "the results' solve_ms",
        ),
    ]


_served_fall: set[str] = set()
_served_load: set[str] = set()
_fall_rate: list[float] = []


def _batch_reference(
    args: argparse.Namespace,
    universe: dict[str, Security],
    book: list[Household],
    workdir: Path,
    rows: list[Row],
) -> list[Row]:
    """The households the fall breached, at the new prices, through `umh solve --batch`."""
    prices = fallen(universe)
    breached: list[Household] = []
    for h in book:
        if h.household_id in _served_load:
            continue  # its orders from the load are still open: the stream may not trade it
        v = at_prices(h, prices, universe)
        if missing_prices(v):
            continue
        if triggers(v, household_drift(v)):
            breached.append(v)
    path = workdir / "breached.jsonl"
    with open(path, "wb") as out:
        for v in breached:
            out.write(dumps(household_to_json(v)) + b"\n")
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "solve", "--batch", str(path)],
        capture_output=True,
        check=False,
    )
    batch_s = time.perf_counter() - t
    results = [loads(line) for line in done.stdout.splitlines() if line.strip()]
    rebalanced = {r["household_id"] for r in results if r["status"] == "rebalanced" and r["orders"]}
    missed = rebalanced - _served_fall
    rate = len(results) / batch_s if batch_s > 0 else math.nan
    stream_rate = _fall_rate[0] if _fall_rate else math.nan
    return [
        Row(
            "batch reference: umh solve --batch (1 process)",
            f"{rate:,.0f} households/s",
            f"{len(results):,} breached households in {batch_s:.1f} s, {len(rebalanced):,} "
            "rebalanced",
        ),
        Row(
            "stream drain / batch",
            f"{stream_rate / rate:.2f}x" if rate == rate and rate > 0 else "n/a",
        ),
        Row(
            "breached households the batch rebalances, without stream orders",
            f"{len(missed)}",
            ", ".join(sorted(missed)[:5]),
        ),
    ]


def _print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\numh bench stream --households {args.households} --symbols {args.symbols} "
        f"--lots {args.lots}  ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
    )
    width = max(len(r.name) for r in rows)
    vwidth = max(len(r.value) for r in rows)
    for r in rows:
        print(f"  {r.name:<{width}}  {r.value:>{vwidth}}  {r.note}")
