"""`umh bench stream`: streaming throughput, drift-check time, tick-to-order latency, memory.

On the embedded broker with one worker subprocess (the same helpers as `umh demo`):

1. load: the custodian publishes the synthetic book; the time until the worker's
   `umh_households` gauge holds all of it, and the worker's RSS (`/proc/PID/status` VmRSS) before
   and after, give households/s loaded and memory per household;
2. drift check after a market-wide tick: every symbol gets a new price in one burst; reported
   from the worker's metrics when it exposes a drift-check histogram (`umh_drift_check_seconds`
   or `umh_revalue_seconds`), else measured directly on the worker's vectorised drift
   (`worker.book.batch_drift` over the whole book) and said so; the end-to-end time until the
   worker has consumed the burst (`umh_events{topic="prices"}`) is reported as well;
3. tick-to-order latency: a few market-wide shocks (equities +/-8%) push households out of band;
   the latency of each order message is its arrival at our consumer minus the tick's `ts`
   (p50/p99 over all orders), next to the worker's own `umh_tick_to_order_seconds` histogram;
4. sustained events/s: price ticks at increasing rates for `--seconds` in all; for each rate the
   ticks the worker consumed per second and its lag (published - consumed) at the end.

It prints a table; BENCHMARKS.md keeps the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from schemas import Household, Security
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
from streams.tools.simulators import (
    CustodianSimulator,
    MarketSimulator,
    OmsSimulator,
    assigned_consumer,
    ensure_topics,
    make_producer,
    topic,
)
from streams.tools.synthetic import make_book, make_universe

DRIFT_METRICS = ("umh_drift_check_seconds", "umh_revalue_seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--households", type=int, default=10_000, help="book size (10000)")
    parser.add_argument("--symbols", type=int, default=500, help="universe size (500)")
    parser.add_argument("--lots", type=int, default=60, help="lots per household (60)")
    parser.add_argument("--seconds", type=float, default=30.0, help="sustained phase, in all (30)")
    parser.add_argument(
        "--rates",
        default="1000,2000,5000,10000,20000",
        help="price ticks/s to try, comma-separated (1000,...,20000)",
    )
    parser.add_argument("--shocks", type=int, default=4, help="market-wide shocks for latency (4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--load-timeout", type=float, default=600.0, help="seconds for the book")


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


def histogram_quantile(metrics: Mapping[str, float], name: str, q: float) -> float:
    """The q-quantile of a Prometheus histogram (upper bound of the bucket holding it)."""
    buckets: list[tuple[float, float]] = []
    for key, value in metrics.items():
        if key.startswith(f"{name}_bucket{{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return math.nan


@dataclass(slots=True)
class OrderClock:
    """Arrival times (time.time()) of `orders` messages, read from the topic's start."""

    arrivals: list[float] = field(default_factory=list)

    async def run(self, bootstrap: str, prefix: str, stop: asyncio.Event) -> None:
        consumer = await assigned_consumer(bootstrap, [topic(prefix, "orders")], from_end=False)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=5000)
                now = time.time()
                for records in batches.values():
                    self.arrivals.extend(now for _ in records)
        finally:
            await consumer.stop()


@dataclass(slots=True)
class Row:
    name: str
    value: str
    note: str = ""


def run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import free_port, start_broker, stop_broker, wait_until_serving

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    universe = make_universe(args.symbols, rng)
    book = make_book(args.households, universe, rng, n_lots=args.lots)
    print(
        f"bench stream: book of {len(book)} households x {args.lots} lots, {len(universe)} "
        f"symbols ({time.perf_counter() - t0:.1f}s to generate)",
        flush=True,
    )
    port, web_port = free_port(HOST), free_port(HOST)
    workdir = Path(tempfile.mkdtemp(prefix="umh-bench-"))
    broker = start_broker(HOST, port, log_path=workdir / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        with quiet_logger("aiokafka"):
            wait_until_serving(HOST, port, 20.0, proc=broker)
        env = worker_env(port, web_port, str(workdir / "data"))
        from streams.settings import load_settings

        settings = load_settings(env)
        asyncio.run(
            ensure_topics(f"{HOST}:{port}", settings.topic_prefix, partitions=settings.partitions)
        )
        worker = start_worker(env, workdir / "worker.log")
        rows = asyncio.run(
            _bench(args, settings.topic_prefix, port, web_port, universe, book, worker)
        )
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


class BenchError(RuntimeError):
    pass


async def _bench(
    args: argparse.Namespace,
    prefix: str,
    port: int,
    web_port: int,
    universe: dict[str, Security],
    book: list[Household],
    worker: subprocess.Popen[bytes],
) -> list[Row]:
    bootstrap = f"{HOST}:{port}"
    rows: list[Row] = []
    if not await wait_for_worker(worker, web_port, 120.0):
        raise BenchError("the worker did not become ready")
    await asyncio.sleep(1.0)
    rss_before = rss_kib(worker.pid)

    # 1. load the book
    custodian = CustodianSimulator(bootstrap, prefix, book, universe)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        t = time.perf_counter()
        await custodian.publish_book(producer)
        published_s = time.perf_counter() - t
        loaded = 0
        deadline = time.perf_counter() + args.load_timeout
        while time.perf_counter() < deadline:
            loaded = int(metric(await fetch_metrics(web_port), "umh_households") or 0)
            if loaded >= len(book) or worker.poll() is not None:
                break
            await asyncio.sleep(0.2)
        load_s = time.perf_counter() - t
        await _settle(web_port, worker, quiet_s=2.0, timeout_s=120.0)
        rss_after = rss_kib(worker.pid)
        rows += [
            Row("book published", f"{published_s:.1f} s", f"{len(book) / published_s:,.0f} hh/s"),
            Row(
                "book loaded by worker",
                f"{load_s:.1f} s",
                f"{loaded}/{len(book)} hh, {loaded / load_s:,.0f} hh/s (incl. first solves)",
            ),
            Row("worker RSS before/after", f"{rss_before / 1024:.0f} / {rss_after / 1024:.0f} MiB"),
            Row(
                "memory per household",
                f"{(rss_after - rss_before) / max(loaded, 1):.1f} KiB",
                f"{args.lots} lots each",
            ),
        ]

        market = MarketSimulator(bootstrap, prefix, universe, seed=args.seed)
        stop = asyncio.Event()
        oms = OmsSimulator(bootstrap, prefix, market.prices, delay_s=0.2, jitter_s=0.2)
        clock = OrderClock()
        background = [
            asyncio.create_task(oms.run(stop)),
            asyncio.create_task(clock.run(bootstrap, prefix, stop)),
        ]
        try:
            rows += await _drift_check(web_port, market, producer, book)
            rows += await _latency(args, web_port, worker, market, producer, clock, oms)
            await _settle(web_port, worker, quiet_s=2.0, timeout_s=180.0)
            rows += await _sustained(args, web_port, worker, market)
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
    finally:
        await producer.stop()
    return rows


async def _settle(
    web_port: int, worker: subprocess.Popen[bytes], quiet_s: float, timeout_s: float
) -> None:
    """Wait until the worker's consumed-events counter stops moving for `quiet_s`."""
    last = -1.0
    still_since = time.perf_counter()
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and worker.poll() is None:
        m = await fetch_metrics(web_port)
        now_events = metric(m, "umh_events_total") or metric(m, "umh_events") or 0.0
        if now_events != last:
            last, still_since = now_events, time.perf_counter()
        elif time.perf_counter() - still_since >= quiet_s:
            return
        await asyncio.sleep(0.2)


async def _prices_consumed(web_port: int) -> float:
    m = await fetch_metrics(web_port)
    value = metric(m, "umh_events_total", topic="prices")
    if value is None:
        value = metric(m, "umh_events", topic="prices")
    return value or 0.0


async def _drift_check(
    web_port: int, market: MarketSimulator, producer: AIOKafkaProducer, book: list[Household]
) -> list[Row]:
    from streams.worker.book import batch_drift, book_row

    rows: list[Row] = []
    before = await _prices_consumed(web_port)
    t = time.perf_counter()
    n = await market.publish_all(producer)
    while await _prices_consumed(web_port) < before + n and time.perf_counter() - t < 60:
        await asyncio.sleep(0.01)
    rows.append(
        Row(
            "market-wide tick consumed",
            f"{(time.perf_counter() - t) * 1000:.0f} ms",
            f"{n} symbols published to consumed (metrics polled every 10 ms)",
        )
    )
    m = await fetch_metrics(web_port)
    for name in DRIFT_METRICS:
        count = metric(m, f"{name}_count")
        total = metric(m, f"{name}_sum")
        if count and total is not None:
            rows.append(
                Row(
                    "drift check (worker)",
                    f"{total / count * 1000:.1f} ms mean",
                    f"{name}: p99 <= {histogram_quantile(m, name, 0.99) * 1000:.0f} ms",
                )
            )
            return rows
    # not exposed: the worker's own vectorised drift over the whole book, timed here
    book_rows = [r for r in (book_row(h) for h in book) if r is not None]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        result = batch_drift(book_rows, market.prices)
        times.append(time.perf_counter() - t)
    rows.append(
        Row(
            "drift check, whole book",
            f"{statistics.median(times) * 1000:.1f} ms",
            f"batch_drift over {len(book_rows)} hh measured directly (not in worker "
            f"metrics); {int(result.breached.any(axis=1).sum())} out of band",
        )
    )
    return rows


async def _latency(
    args: argparse.Namespace,
    web_port: int,
    worker: subprocess.Popen[bytes],
    market: MarketSimulator,
    producer: AIOKafkaProducer,
    clock: OrderClock,
    oms: OmsSimulator,
) -> list[Row]:
    latencies: list[float] = []
    for i in range(args.shocks):
        await _settle(web_port, worker, quiet_s=1.5, timeout_s=60.0)
        while oms.pending():
            await asyncio.sleep(0.1)
        move = 0.08 if i % 2 == 0 else -0.08
        market.shock({"us_equity": move, "intl_equity": move})
        start = len(clock.arrivals)
        tick_s = time.time()
        await market.publish_all(producer)
        await asyncio.sleep(1.0)
        await _settle(web_port, worker, quiet_s=1.5, timeout_s=60.0)
        latencies += [a - tick_s for a in clock.arrivals[start:]]
    m = await fetch_metrics(web_port)
    worker_p50 = histogram_quantile(m, "umh_tick_to_order_seconds", 0.5)
    worker_p99 = histogram_quantile(m, "umh_tick_to_order_seconds", 0.99)
    return [
        Row(
            "tick-to-order p50 / p99",
            f"{percentile(latencies, 0.5) * 1000:.0f} / "
            f"{percentile(latencies, 0.99) * 1000:.0f} ms",
            f"{len(latencies)} order messages after {args.shocks} market-wide shocks of 8%",
        ),
        Row(
            "tick-to-order (worker histogram)",
            f"<= {worker_p50 * 1000:.0f} / <= {worker_p99 * 1000:.0f} ms",
            "p50 / p99 bucket bounds of umh_tick_to_order_seconds",
        ),
    ]


async def _sustained(
    args: argparse.Namespace,
    web_port: int,
    worker: subprocess.Popen[bytes],
    market: MarketSimulator,
) -> list[Row]:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    per_rate = max(3.0, args.seconds / max(len(rates), 1))
    rows: list[Row] = []
    for rate in rates:
        if worker.poll() is not None:
            break
        stop = asyncio.Event()
        before_sent = market.counters.sent.get("prices", 0)
        before = await _prices_consumed(web_port)
        t = time.perf_counter()
        task = asyncio.create_task(market.run(rate, stop))
        await asyncio.sleep(per_rate)
        stop.set()
        await task
        elapsed = time.perf_counter() - t
        sent = market.counters.sent.get("prices", 0) - before_sent
        consumed = await _prices_consumed(web_port) - before
        lag = sent - consumed
        t = time.perf_counter()
        while await _prices_consumed(web_port) - before < sent and time.perf_counter() - t < 60:
            await asyncio.sleep(0.1)
        drained = time.perf_counter() - t
        rows.append(
            Row(
                f"ticks at {rate:,.0f}/s",
                f"{consumed / elapsed:,.0f} consumed/s",
                f"published {sent / elapsed:,.0f}/s, lag at end {lag:,.0f}, "
                f"drained in {drained:.1f} s",
            )
        )
        await _settle(web_port, worker, quiet_s=1.0, timeout_s=60.0)
    return rows


def _print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\numh bench stream: {args.households} households, {args.symbols} symbols, "
        f"{args.lots} lots, 1 worker, embedded broker"
    )
    w1 = max(len(r.name) for r in rows) if rows else 10
    w2 = max(len(r.value) for r in rows) if rows else 10
    print(f"| {'measure':<{w1}} | {'value':<{w2}} | note")
    print(f"|{'-' * (w1 + 2)}|{'-' * (w2 + 2)}|------")
    for r in rows:
        print(f"| {r.name:<{w1}} | {r.value:<{w2}} | {r.note}")
