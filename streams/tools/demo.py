"""`umh demo`: the whole product on one machine, with a simulated outside world, for N seconds.

It starts the embedded broker, one `umh worker` as a subprocess (its console on
http://127.0.0.1:6066/), and in-process the three simulators (market feed, OMS, custodian) with a
synthetic book; prints live progress once a second (ticks/s, households out of band, alerts,
orders, fills, dead letters) and a summary at the end. Ctrl-C or `--seconds` ends it; the worker
and the broker are always stopped (their process groups), also on errors.

The helpers for the worker subprocess and its `/metrics` are shared with `umh bench stream`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas import Household, Security, ValidationError, loads
from schemas.events import parse_drift_alert
from streams.kafka.offsets_workaround import install_if_embedded
from streams.tools.simulators import (
    CustodianSimulator,
    MarketSimulator,
    OmsSimulator,
    assigned_consumer,
    ensure_topics,
    topic,
)
from streams.tools.synthetic import make_book, make_universe

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- worker process


def worker_env(port: int, web_port: int, data_dir: str, **extra: str) -> dict[str, str]:
    """The environment of a worker subprocess: ours plus the broker, web port and a fresh data dir.

    The data dir is per run: the embedded broker keeps nothing, so a table state left by an
    earlier run must not be recovered against it.
    """
    env = dict(os.environ)
    env.update(
        UMH_BROKER=f"kafka://{HOST}:{port}",
        UMH_WEB_PORT=str(web_port),
        UMH_WEB_HOST=HOST,
        UMH_DATA_DIR=data_dir,
        UMH_STORE="memory",  # a fresh broker every run: nothing on disk to come back to
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_worker(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m streams.cli worker` in its own session (process group), output to `log_path`."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int | None:
    """SIGTERM the process group of `proc` (it leads its own session), then SIGKILL if needed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # children that outlived the leader (none expected) go too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a logger below CRITICAL for the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (so that a broker we start is the one we talk to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


def metric(metrics: Mapping[str, float], name: str, **labels: str) -> float | None:
    """Sum of the samples of `name` whose labels include `labels`; None when there is none."""
    total: float | None = None
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if any(f'{k}="{v}"' not in rest for k, v in labels.items()):
            continue
        total = (total or 0.0) + value
    return total


def labelled(metrics: Mapping[str, float], name: str, label: str) -> dict[str, float]:
    """{label value: sample} of `name` (e.g. solves by status)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        for part in rest.rstrip("}").split(","):
            k, _, v = part.partition("=")
            if k == label:
                out[v.strip('"')] = out.get(v.strip('"'), 0.0) + value
    return out


async def fetch_metrics(web_port: int) -> dict[str, float]:
    status, body = await asyncio.to_thread(http_get, f"http://{HOST}:{web_port}/metrics")
    return parse_metrics(body.decode(errors="replace")) if status == 200 else {}


async def wait_for_worker(proc: subprocess.Popen[bytes], web_port: int, timeout_s: float) -> bool:
    """True once `/healthz` answers 200; False when the worker exits or the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if proc.poll() is not None:
            return False
        status, _ = await asyncio.to_thread(http_get, f"http://{HOST}:{web_port}/healthz", 1.0)
        if status == 200:
            return True
        await asyncio.sleep(0.5)
    return False


async def wait_for_book(web_port: int, n: int, stop: asyncio.Event, timeout_s: float) -> int:
    """Wait until the worker's `umh_households` gauge reaches `n`; returns the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen = 0
    while loop.time() < deadline and not stop.is_set():
        value = metric(await fetch_metrics(web_port), "umh_households")
        seen = int(value or 0)
        if value is None or seen >= n:  # no such gauge: nothing better to wait for
            break
        await asyncio.sleep(0.25)
    return seen


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- the watcher


@dataclass(slots=True)
class Watch:
    """What the demo reads back from the rebalancer's output topics."""

    alerts: Counter[str] = field(default_factory=Counter)
    alerted: dict[str, bool] = field(default_factory=dict)  # household -> last alert had breaches
    orders_messages: int = 0
    dead_letters: int = 0
    invalid: int = 0

    def on_alert(self, raw: bytes) -> None:
        try:
            alert = parse_drift_alert(loads(raw))
        except ValidationError:
            self.invalid += 1
            return
        self.alerts[alert.action] += 1
        self.alerted[alert.household_id] = bool(alert.breaches)

    async def run(self, bootstrap: str, prefix: str, stop: asyncio.Event) -> None:
        names = {topic(prefix, n): n for n in ("drift-alerts", "orders", "dead-letters")}
        consumer = await assigned_consumer(bootstrap, list(names), from_end=False)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    kind = names[tp.topic]
                    for record in records:
                        if kind == "drift-alerts" and record.value is not None:
                            self.on_alert(record.value)
                        elif kind == "orders":
                            self.orders_messages += 1
                        elif kind == "dead-letters":
                            self.dead_letters += 1
        finally:
            await consumer.stop()


# --------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="run time (default 60)")
    parser.add_argument("--households", type=int, default=1000, help="book size (default 1000)")
    parser.add_argument("--symbols", type=int, default=100, help="universe size (default 100)")
    parser.add_argument("--lots", type=int, default=60, help="lots per household (default 60)")
    parser.add_argument("--port", type=int, default=9092, help="embedded broker port (9092)")
    parser.add_argument("--web-port", type=int, default=6066, help="worker console port (6066)")
    parser.add_argument("--ticks", type=float, default=200.0, help="price ticks/s (default 200)")
    parser.add_argument("--flows", type=float, default=2.0, help="cash flows/s (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the book and market")
    parser.add_argument(
        "--no-worker", action="store_true", help="broker and simulators only (no rebalancer)"
    )
    parser.add_argument(
        "--worker-timeout", type=float, default=90.0, help="seconds to wait for /healthz"
    )


def run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import BrokerNotServing, start_broker, stop_broker, wait_until_serving

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    universe = make_universe(args.symbols, rng)
    book = make_book(args.households, universe, rng, n_lots=args.lots)
    print(
        f"umh demo: book of {len(book)} households x {args.lots} lots on {len(universe)} symbols "
        f"({time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    for name, port in (("--port", args.port), ("--web-port", args.web_port)):
        if not port_free(HOST, port) and not (name == "--web-port" and args.no_worker):
            print(f"umh demo: port {port} is taken; choose another with {name}", file=sys.stderr)
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="umh-demo-"))
    broker = start_broker(HOST, args.port, log_path=workdir / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        try:
            with quiet_logger("aiokafka"):  # "connect failed" while the broker starts is normal
                wait_until_serving(HOST, args.port, 20.0, proc=broker)
        except BrokerNotServing as exc:
            print(f"umh demo: {exc} (is port {args.port} taken? try --port)", file=sys.stderr)
            return 1
        print(f"umh demo: embedded broker on {HOST}:{args.port}", flush=True)
        env = worker_env(args.port, args.web_port, str(workdir / "data"))
        from streams.settings import load_settings

        settings = load_settings(env)
        if not args.no_worker:
            worker = start_worker(env, workdir / "worker.log")
            print(
                f"umh demo: worker pid {worker.pid}, log {workdir / 'worker.log'}\n"
                f"umh demo: operations console at http://{HOST}:{args.web_port}/",
                flush=True,
            )
        code = asyncio.run(
            _run_async(
                args, settings.topic_prefix, settings.partitions, universe, book, worker, workdir
            )
        )
        return code
    except KeyboardInterrupt:
        print("\numh demo: interrupted", file=sys.stderr)
        return 130
    finally:
        if worker is not None:
            status = stop_process_group(worker)
            print(f"umh demo: worker stopped (status {status})", flush=True)
        stop_broker(broker)
        shutil.rmtree(workdir / "data", ignore_errors=True)  # logs stay for a post-mortem
        print("umh demo: broker stopped", flush=True)


async def _run_async(
    args: argparse.Namespace,
    prefix: str,
    partitions: int,
    universe: dict[str, Security],
    book: list[Household],
    worker: subprocess.Popen[bytes] | None,
    workdir: Path,
) -> int:
    bootstrap = f"{HOST}:{args.port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ensure_topics(bootstrap, prefix, partitions=partitions)
    await install_if_embedded(bootstrap)  # the demo's own consumers (the worker does its own)
    worker_ok = False
    if worker is not None:
        print("umh demo: waiting for the worker to be ready ...", flush=True)
        worker_ok = await wait_for_worker(worker, args.web_port, args.worker_timeout)
        if not worker_ok:
            state = "exited" if worker.poll() is not None else "not ready"
            print(
                f"umh demo: the worker {state} (see {workdir / 'worker.log'}); the simulators run "
                f"without it\n{log_tail(workdir / 'worker.log')}",
                file=sys.stderr,
                flush=True,
            )
    market = MarketSimulator(bootstrap, prefix, universe, seed=args.seed)
    oms = OmsSimulator(bootstrap, prefix, market.prices, seed=args.seed)
    custodian = CustodianSimulator(
        bootstrap, prefix, book, universe, seed=args.seed, flows_per_s=args.flows
    )
    watch = Watch()
    flows_start = asyncio.Event()
    tasks = [
        asyncio.create_task(custodian.run(stop, flows_start=flows_start), name="custodian"),
        asyncio.create_task(oms.run(stop), name="oms"),
        asyncio.create_task(watch.run(bootstrap, prefix, stop), name="watch"),
    ]
    # prices only after the book is out, so that the first ticks find households to revalue
    while custodian.counters.sent.get("households", 0) < len(book) and not stop.is_set():
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.1)
    if worker is not None and worker_ok:
        loaded = await wait_for_book(args.web_port, len(book), stop, args.worker_timeout)
        print(f"umh demo: the worker holds {loaded} households", flush=True)
    flows_start.set()
    tasks.append(asyncio.create_task(market.run(args.ticks, stop), name="market"))
    start = loop.time()
    last_ticks = 0
    metrics: dict[str, float] = {}
    failed = ""
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            elapsed = loop.time() - start
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    failed = f"{t.get_name()}: {t.exception()!r}"
                    stop.set()
            ticks = market.counters.sent.get("prices", 0)
            if worker is not None and worker_ok:
                metrics = await fetch_metrics(args.web_port) or metrics
                if worker.poll() is not None:
                    failed = f"worker exited with status {worker.returncode}"
                    stop.set()
            out_of_band = metric(metrics, "umh_households_out_of_band")
            if out_of_band is None:
                out_of_band = float(sum(watch.alerted.values()))
            orders = oms.counters.received.get("orders", 0)
            flows = sum(v for k, v in custodian.counters.sent.items() if k in _FLOW_KINDS)
            print(
                f"[{elapsed:5.0f}s] ticks/s {ticks - last_ticks:5d}  households {len(book)}"
                f" out-of-band {int(out_of_band):5d}  alerts {sum(watch.alerts.values()):6d}"
                f"  orders {orders:6d}  fills {oms.counters.sent.get('fills', 0):6d}"
                f"  flows {flows:5d}  dead letters {watch.dead_letters:4d}",
                flush=True,
            )
            last_ticks = ticks
            if elapsed >= args.seconds:
                stop.set()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for t, r in zip(tasks, results, strict=True):
        if isinstance(r, BaseException) and not failed:
            failed = f"{t.get_name()}: {r!r}"
    _summary(market, oms, custodian, watch, metrics, loop.time() - start)
    if failed:
        print(f"umh demo: failed: {failed}", file=sys.stderr)
        return 1
    if worker is not None and not worker_ok:
        return 1
    return 0


_FLOW_KINDS = ("deposit", "withdrawal_request", "withdrawal")


def _summary(
    market: MarketSimulator,
    oms: OmsSimulator,
    custodian: CustodianSimulator,
    watch: Watch,
    metrics: Mapping[str, float],
    seconds: float,
) -> None:
    ticks = market.counters.sent.get("prices", 0)
    solves = labelled(metrics, "umh_solves_total", "status") or labelled(
        metrics, "umh_solves", "status"
    )
    flows = {k: v for k, v in custodian.counters.sent.items() if k in _FLOW_KINDS}
    lines = [
        "",
        f"umh demo summary ({seconds:.0f}s)",
        f"  price ticks        {ticks} ({ticks / max(seconds, 1e-9):.0f}/s)",
        f"  households         {custodian.counters.sent.get('households', 0)} published",
        f"  rebalances         {sum(oms.statuses.values())} with orders"
        f" (by status: {_fmt(oms.statuses)})",
        f"  solves (worker)    {_fmt({k: int(v) for k, v in solves.items()}) or 'n/a'}",
        f"  orders             {oms.counters.received.get('orders', 0)}",
        f"  fills              {oms.counters.sent.get('fills', 0)} ({oms.pending()} still pending)",
        f"  cash flows         {_fmt(flows)}"
        f" ({len(custodian.pending)} withdrawal requests open,"
        f" {custodian.counters.sent.get('expired', 0)} expired)",
        f"  alerts by action   {_fmt(dict(watch.alerts)) or 'none'}",
        f"  dead letters       {watch.dead_letters}",
    ]
    print("\n".join(lines), flush=True)


def _fmt(counts: Mapping[str, int | float]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
