"""`umh bench recovery`: the time from a kill -9 of a worker to the first correct order after it.

On the embedded broker (a fresh one per mode), with N households in band (60/40 in an IRA, on a
few symbols) and one probe household on its own symbol `PRB`:

- `memory`: one worker with the memory store; kill -9; a new worker starts and rebuilds the
  table from the whole changelog;
- `rocksdb`: the same with the RocksDB store in the worker's data directory: the new worker
  (same directory) replays only what the changelog holds past the offsets RocksDB kept;
- `standby`: two workers (memory store, `UMH_STANDBY_REPLICAS=1`); the owner of the probe's
  partition is killed and the survivor, holding a warm standby copy, takes over.

After the kill the market ticks `PRB` out of band every half second (a price feed that is not
up yet misses a tick; the next one counts) until an order for the probe arrives that sells
`PRB`: the time from the kill to that order is the figure (target: <= 60 s for 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.tools.demo import (
    HOST,
    fetch_metrics,
    http_get,
    metric,
    quiet_logger,
    start_worker,
    stop_process_group,
    wait_for_worker,
    worker_env,
)
from streams.tools.simulators import assigned_consumer, ensure_topics, make_producer, topic

MODES = ("memory", "rocksdb", "standby")
PROBE = "hh-probe"
SYMBOLS = 50  # equities the in-band households hold (EQ000..), one bond fund for all
PARTITIONS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--households", type=int, nargs="+", default=[10_000], metavar="N")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--load-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--recovery-timeout", type=float, default=300.0, metavar="SECONDS")


def snapshot(hid: str, eq: str) -> dict[str, Any]:
    return {
        "schema": "household/v1",
        "household_id": hid,
        "as_of": "2026-11-24",
        "target": {"us_equity": 0.6, "fixed_income": 0.4},
        "buy_list": {"us_equity": [eq], "fixed_income": ["BND"]},
        "options": {"min_trade_value": 0.0, "transaction_cost_bps": 0.0, "harvest_losses": False},
        "accounts": [
            {
                "account_id": f"{hid}-IRA",
                "type": "tax_deferred",
                "cash": 0.0,
                "lots": [
                    {
                        "lot_id": "L-1",
                        "symbol": eq,
                        "quantity": 60,
                        "cost_basis": 5000.0,
                        "acquired": "2020-01-02",
                    },
                    {
                        "lot_id": "L-2",
                        "symbol": "BND",
                        "quantity": 40,
                        "cost_basis": 4000.0,
                        "acquired": "2020-01-02",
                    },
                ],
            }
        ],
        "securities": {
            eq: {"price": 100.0, "asset_class": "us_equity", "fractional": True},
            "BND": {"price": 100.0, "asset_class": "fixed_income", "fractional": True},
        },
    }


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Result:
    households: int
    mode: str
    load_s: float
    rss_mib: float
    healthy_s: float | None  # kill -> the restarted worker's /healthz 200 (None: standby)
    first_order_s: float | None
    ok: bool
    note: str = ""


class BenchError(RuntimeError):
    pass


def run(args: argparse.Namespace) -> int:
    results: list[Result] = []
    for n in args.households:
        for mode in args.modes:
            print(f"bench recovery: {n:,} households, {mode} ...", flush=True)
            try:
                result = _one(n, mode, args)
            except BenchError as exc:
                print(f"bench recovery: {mode} with {n:,}: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 130
            results.append(result)
            print(f"  {_row(result)}", flush=True)
    print()
    print("| households | store / takeover | load | worker RSS | kill -> healthy | kill -> order |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(_row(r))
    return 0 if all(r.ok for r in results) else 1


def _row(r: Result) -> str:
    healthy = "-" if r.healthy_s is None else f"{r.healthy_s:.1f} s"
    order = "none" if r.first_order_s is None else f"{r.first_order_s:.1f} s"
    label = {"memory": "memory, restart", "rocksdb": "RocksDB, restart"}.get(
        r.mode, "standby takeover (memory, 2 workers)"
    )
    note = f" ({r.note})" if r.note else ""
    return (
        f"| {r.households:,} | {label} | {r.load_s:.0f} s | {r.rss_mib:.0f} MiB | {healthy} "
        f"| {order}{note} |"
    )


def _one(n: int, mode: str, args: argparse.Namespace) -> Result:
    from streams.kafka.broker import free_port, start_broker, stop_broker, wait_until_serving

    port = free_port(HOST)
    workdir = Path(tempfile.mkdtemp(prefix=f"umh-recovery-{mode}-"))
    broker = start_broker(HOST, port, log_path=workdir / "broker.log")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with quiet_logger("aiokafka"):
            wait_until_serving(HOST, port, 20.0, proc=broker)
        return asyncio.run(_scenario(n, mode, args, port, workdir, workers))
    finally:
        for w in workers:
            stop_process_group(w)
        stop_broker(broker)


def _env(port: int, web_port: int, data_dir: Path, mode: str) -> dict[str, str]:
    return worker_env(
        port,
        web_port,
        str(data_dir),
        UMH_STORE="rocksdb" if mode == "rocksdb" else "memory",
        UMH_STANDBY_REPLICAS="1" if mode == "standby" else "0",
        UMH_PARTITIONS=str(PARTITIONS),
    )


async def _scenario(
    n: int,
    mode: str,
    args: argparse.Namespace,
    port: int,
    workdir: Path,
    workers: list[subprocess.Popen[bytes]],
) -> Result:
    from streams.kafka.broker import free_port

    bootstrap = f"{HOST}:{port}"
    await ensure_topics(bootstrap, "", partitions=PARTITIONS)
    web_ports = [free_port(HOST) for _ in range(2 if mode == "standby" else 1)]
    for i, web_port in enumerate(web_ports):
        env = _env(port, web_port, workdir / f"data-{i}", mode)
        workers.append(start_worker(env, workdir / f"worker-{i}.log"))
    for w, web_port in zip(workers, web_ports, strict=True):
        if not await wait_for_worker(w, web_port, 120.0):
            raise BenchError(f"a worker did not become ready (logs in {workdir})")

    # load the book and the probe
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        t = time.perf_counter()
        for i in range(n):
            hid = f"hh-{i:07d}"
            value = orjson.dumps(snapshot(hid, f"EQ{i % SYMBOLS:03d}"))
            await producer.send(topic("", "households"), value, key=hid)
        await producer.send(
            topic("", "households"), orjson.dumps(snapshot(PROBE, "PRB")), key=PROBE
        )
        await producer.flush()
        while sum([await _households(p) for p in web_ports]) < n + 1:
            if time.perf_counter() - t > args.load_timeout:
                raise BenchError(f"the book did not load in {args.load_timeout:.0f} s")
            if any(w.poll() is not None for w in workers):
                raise BenchError(f"a worker died while loading (logs in {workdir})")
            await asyncio.sleep(0.5)
        load_s = time.perf_counter() - t
        rss = sum(rss_mib(w.pid) for w in workers)
        await asyncio.sleep(3.0)  # the table's last changelog writes (1 s commit interval)

        # the victim: the only worker, or the owner of the probe's partition
        victim = 0
        if mode == "standby":
            owners = [i for i, p in enumerate(web_ports) if await _owns(p, PROBE)]
            if not owners:
                raise BenchError("no worker lists the probe household")
            victim = owners[0]
        orders = await _order_watch(bootstrap)
        killed_at = time.monotonic()
        os.killpg(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait()
        healthy_s: float | None = None
        if mode != "standby":  # a new worker in place of the dead one (same data directory)
            env = _env(port, web_ports[0], workdir / "data-0", mode)
            workers[0] = start_worker(env, workdir / "worker-0.restart.log")
        tick = 0
        deadline = killed_at + args.recovery_timeout
        first_order: float | None = None
        while time.monotonic() < deadline and first_order is None:
            tick += 1
            level = 150.0 + 0.01 * tick
            await producer.send_and_wait(
                topic("", "prices"),
                orjson.dumps({"schema": "price/v1", "symbol": "PRB", "price": level, "ts": _ts()}),
                key="PRB",
            )
            if healthy_s is None and mode != "standby":
                status, _ = await asyncio.to_thread(
                    http_get, f"http://{HOST}:{web_ports[0]}/healthz", 0.5
                )
                if status == 200:
                    healthy_s = time.monotonic() - killed_at
            first_order = await _probe_order(orders, 0.5)
        await orders.stop()
    finally:
        await producer.stop()
    took = None if first_order is None else first_order - killed_at
    return Result(n, mode, load_s, rss, healthy_s, took, took is not None)


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def _households(web_port: int) -> int:
    return int(metric(await fetch_metrics(web_port), "umh_households") or 0)


async def _owns(web_port: int, hid: str) -> bool:
    url = f"http://{HOST}:{web_port}/api/households?local=true"
    status, body = await asyncio.to_thread(http_get, url, 5.0)
    if status != 200:
        return False
    return any(r["household_id"] == hid for r in orjson.loads(body)["households"])


async def _order_watch(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer of `orders` from its end now (the probe has had no order yet)."""
    return await assigned_consumer(bootstrap, [topic("", "orders")], from_end=True)


async def _probe_order(consumer: AIOKafkaConsumer, wait_s: float) -> float | None:
    """The arrival time of an order for the probe that sells PRB, if one comes in `wait_s`."""
    batch = await consumer.getmany(timeout_ms=int(wait_s * 1000))
    for records in batch.values():
        for r in records:
            rb: Mapping[str, Any] = orjson.loads(r.value)
            if rb.get("household_id") != PROBE or rb.get("status") != "rebalanced":
                continue
            sells = [o for o in rb.get("orders", []) if o["side"] == "sell"]
            if sells and all(o["symbol"] == "PRB" for o in sells):
                return time.monotonic()
    return None
