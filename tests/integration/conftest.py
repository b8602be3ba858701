"""Integration fixtures: one embedded broker per session, `umh worker` subprocesses, Kafka I/O.

Tests drive the worker only through its topics (aiokafka clients) and its HTTP port, as an
order-management system and a monitoring stack would. Each worker gets its own topic prefix
and app id, so tests sharing the broker never see each other's messages.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.broker import embedded_broker, free_port

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bootstrap = os.environ.get("UMH_TEST_BOOTSTRAP")
    if bootstrap:  # an Apache Kafka (or any broker) given from outside
        yield bootstrap
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with embedded_broker(log_path=log) as address:
        yield address


@dataclass
class Worker:
    env: dict[str, str]
    log_path: Path
    web_port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 40.0) -> None:
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], cwd=REPO, env=self.env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if self.health() == 200:
                return
            time.sleep(0.25)
        raise RuntimeError(f"worker not healthy after {timeout_s}s:\n{self.log()}")

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz",
                                        timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}",
                                    timeout=2) as response:
            return bytes(response.read())

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@dataclass
class Cluster:
    """One isolated deployment: a topic prefix, an app id, and the workers running it."""

    bootstrap: str
    prefix: str
    tmp: Path
    env_overrides: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def worker(self, **env: str) -> Worker:
        port = free_port()
        full = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "UMH_BROKER": f"kafka://{self.bootstrap}",
            "UMH_TOPIC_PREFIX": self.prefix,
            "UMH_APP_ID": f"{self.prefix}app",
            "UMH_WEB_PORT": str(port),
            "UMH_PARTITIONS": "4",
            **self.env_overrides,
            **env,
        }
        w = Worker(full, self.tmp / f"worker-{len(self.workers)}.log", port)
        self.workers.append(w)
        return w

    async def send(self, topic: str, key: str | None, value: Any) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            data = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(self.topic(topic), data,
                                         key=key.encode() if key is not None else None)
        finally:
            await producer.stop()

    async def read(self, topic: str, until: Callable[[list[dict[str, Any]]], bool],
                   timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Every message of `topic` from the beginning, until `until(messages)` or timeout."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            name = self.topic(topic)
            parts: set[int] = set()
            for _ in range(40):
                await consumer.topics()
                parts = consumer.partitions_for_topic(name) or set()
                if parts:
                    break
                await asyncio.sleep(0.25)
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not until(out):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        out.append({"key": r.key.decode() if r.key else None,
                                    **orjson.loads(r.value)})
        finally:
            await consumer.stop()
        return out


@pytest.fixture
async def cluster(broker: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(broker, f"t{os.getpid()}x{next(_counter)}.", tmp_path, {})
    yield c
    for w in c.workers:
        w.stop()


@pytest.fixture(scope="module")
def shared(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One worker for the tests of a module that can share it (different households)."""
    c = Cluster(broker, f"s{os.getpid()}x{next(_counter)}.", tmp_path_factory.mktemp("shared"),
                {})
    c.worker().start()
    yield c
    for w in c.workers:
        w.stop()


def snapshot(household_id: str, eq: str = "VTI", fi: str = "BND", **overrides: Any
             ) -> dict[str, Any]:
    """A two-account household at target (60/40) with prices 100; `eq` at 150 breaches."""
    raw: dict[str, Any] = {
        "schema": "household/v1",
        "household_id": household_id,
        "as_of": "2026-11-24",
        "target": {"us_equity": 0.6, "fixed_income": 0.4},
        "buy_list": {"us_equity": [eq], "fixed_income": [fi]},
        "options": {"min_trade_value": 0.0, "transaction_cost_bps": 0.0},
        "accounts": [
            {"account_id": f"{household_id}-IRA", "type": "tax_deferred", "cash": 0.0,
             "lots": [
                 {"lot_id": "L-1", "symbol": eq, "quantity": 60, "cost_basis": 5000.0,
                  "acquired": "2020-01-02"},
                 {"lot_id": "L-2", "symbol": fi, "quantity": 40, "cost_basis": 4000.0,
                  "acquired": "2020-01-02"},
             ]},
            {"account_id": f"{household_id}-TAX", "type": "taxable", "cash": 0.0, "lots": []},
        ],
        "securities": {
            eq: {"price": 100.0, "asset_class": "us_equity", "fractional": True},
            fi: {"price": 100.0, "asset_class": "fixed_income", "fractional": True},
        },
    }
    raw.update(overrides)
    return raw


def price(symbol: str, value: float, ts: str = "2026-11-25T15:30:00Z") -> dict[str, Any]:
    return {"schema": "price/v1", "symbol": symbol, "price": value, "ts": ts}
