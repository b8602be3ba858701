"""Integration fixtures: the broker (embedded and Apache Kafka), `umh worker` subprocesses, I/O.

Tests drive the worker only through its topics (aiokafka clients) and its HTTP port, as an
order-management system and a monitoring stack would. Each worker gets its own topic prefix
and app id, so tests sharing a broker never see each other's messages.

The `broker` fixture is parametrised over the two tiers, so every test that uses it (through
`cluster` or `shared`) runs twice:

- `embedded`: the Tansu broker of `umh broker`, one per session;
- `kafka`: Apache Kafka 3.9.2 (KRaft, one node, jars from Maven) started once per session by
  `kafka_cluster.start_kafka` in a private run directory on free ports, stopped at the end.
  The same node serves SASL_PLAINTEXT and SSL listeners for `test_security.py`.
  `UMH_TEST_BOOTSTRAP=host:port` uses an Apache Kafka from outside instead of starting one.

Kafka-tier tests carry the `kafka` marker (`-m "not kafka"` leaves them out). When Java or
Maven is missing the Kafka tier is skipped with the reason, unless `UMH_REQUIRE_KAFKA=1` (CI):
then it fails.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
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

from streams.kafka.broker import embedded_broker, free_port

from . import kafka_cluster as kc

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()
MARKER = "umh_test_marker"  # a field of the marker messages of `Cluster.processed`
TIERS = ("embedded", "kafka")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the Kafka-tier instances, so `-m kafka` / `-m "not kafka"` select a tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("broker") == "kafka":
            item.add_marker(pytest.mark.kafka)


# ------------------------------------------------------------------------------ Apache Kafka


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(nodes: int = 3) -> int:
    """A client port base where every port kafka-up.sh would use is free (clients base..+2,
    SASL/SSL +3..+8, controllers +100..+102); random start, so parallel sessions differ."""
    env = os.environ.get("UMH_TEST_KAFKA_PORT_BASE")
    if env:
        return int(env)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20_000, 45_000)
        ports = [*range(base, base + 9), *range(base + 100, base + 100 + nodes)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range for a Kafka test cluster")


def private_root(tmp: Path) -> Path:
    """A directory that looks like the repository to kafka-up.sh (its scripts, jar cache and
    .venv linked in) but has its own `.cache/kafka/run`: clusters of different shapes (1-node
    with security, 3-node for fault tests) and concurrent sessions never share a run directory.
    """
    root = tmp / "kafka-root"
    (root / "deploy").mkdir(parents=True, exist_ok=True)
    (root / ".cache" / "kafka").mkdir(parents=True, exist_ok=True)
    jars = REPO / ".cache" / "kafka" / kc.KAFKA_VERSION
    jars.mkdir(parents=True, exist_ok=True)  # kafka-up.sh fills lib/ through the link once
    for link, target in (
        (root / "deploy" / "kafka", REPO / "deploy" / "kafka"),
        (root / ".cache" / "kafka" / kc.KAFKA_VERSION, jars),
        (root / ".venv", REPO / ".venv"),
    ):
        if not link.exists():
            link.symlink_to(target)
    return root


@dataclass
class KafkaCluster:
    """A running Apache Kafka test cluster started from a private root."""

    root: Path
    bootstrap: str
    nodes: int
    port_base: int
    security: bool

    @classmethod
    def start(cls, tmp: Path, nodes: int, *, security: bool = False) -> KafkaCluster:
        root = private_root(tmp)
        base = free_port_base(nodes)
        bootstrap = kc.start_kafka(nodes, root, security=security, port_base=base)
        return cls(root, bootstrap, nodes, base, security)

    def stop(self) -> None:
        kc.stop_kafka(self.root)

    def env(self, listener: str = "sasl", mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        return kc.security_env(self.root, listener, mechanism)

    @property
    def run_dir(self) -> Path:
        return self.root / ".cache" / "kafka" / "run"

    def pid(self, node: int) -> int | None:
        try:
            pid = int((self.run_dir / f"node-{node}" / "pid").read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def address(self, node: int) -> str:
        return f"127.0.0.1:{self.port_base + node - 1}"


def kafka_unavailable_or_fail() -> None:
    reason = kc.kafka_available(REPO)
    if reason is None:
        return
    if os.environ.get("UMH_REQUIRE_KAFKA") == "1":
        pytest.fail(f"Apache Kafka tier required (UMH_REQUIRE_KAFKA=1) but: {reason}")
    pytest.skip(f"Apache Kafka tier: {reason}")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Apache Kafka node for the session, with SASL_PLAINTEXT and SSL listeners too."""
    external = os.environ.get("UMH_TEST_BOOTSTRAP")
    if external:
        yield KafkaCluster(REPO, external.removeprefix("kafka://"), 1, 0, False)
        return
    kafka_unavailable_or_fail()
    cluster = KafkaCluster.start(tmp_path_factory.mktemp("kafka1"), 1, security=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Broker:
    kind: str  # "embedded" or "kafka"
    bootstrap: str

    @property
    def processing_guarantee(self) -> str:
        """What the worker picks by itself on this broker (`auto`), stated for the tests."""
        return "exactly_once" if self.kind == "kafka" else "at_least_once"


@pytest.fixture(scope="session", params=TIERS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    if request.param == "kafka":
        cluster: KafkaCluster = request.getfixturevalue("kafka")
        yield Broker("kafka", cluster.bootstrap)
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with embedded_broker(log_path=log) as address:
        yield Broker("embedded", address)


@dataclass
class Worker:
    env: dict[str, str]
    log_path: Path
    web_port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 40.0) -> None:
        """Start the worker and wait until it is healthy. Its web port was free when it was
        picked, but another test process (the fault tests run beside the suite) may bind it
        first: then the worker exits at once and is started again on another port."""
        for _attempt in range(3):
            if self._start(timeout_s):
                return
            port = free_port()
            self.env = {**self.env, "UMH_WEB_PORT": str(port)}
            self.web_port = port
        raise RuntimeError(f"worker could not bind a web port:\n{self.log()}")

    def _start(self, timeout_s: float) -> bool:
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                since = self.log_path.read_bytes()[logged:].decode(errors="replace")
                if "address already in use" in since:
                    return False
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if self.health() == 200:
                return True
            time.sleep(0.25)
        raise RuntimeError(f"worker not healthy after {timeout_s}s:\n{self.log()}")

    def health(self) -> int:
        """The worker's /healthz status; 0 when nothing, or another deployment, answers on
        its port (a server of another test bound it first)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}/healthz", timeout=1
            ) as response:
                status, body = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, body = int(exc.code), exc.read()
        except OSError:
            return 0
        try:
            app_id = orjson.loads(body).get("app_id")
        except (orjson.JSONDecodeError, AttributeError):
            return 0
        return status if app_id == self.env.get("UMH_APP_ID", "umh") else 0

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.web_port}{path}", timeout=2
        ) as response:
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
    kind: str = "embedded"

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
            await producer.send_and_wait(
                self.topic(topic), data, key=key.encode() if key is not None else None
            )
        finally:
            await producer.stop()

    async def processed(self, topic: str, key: str, timeout_s: float = 30.0) -> None:
        """Return once the worker has handled every message sent so far to `topic` with `key`.

        A marker (an invalid message with the same key, so on the same partition) is sent and
        its dead letter awaited: an agent handles a partition's messages in order, one at a
        time. The price feed evaluates a batch of ticks after reading it, so on `prices` a
        second marker follows the first one's dead letter: it is read only once the batch
        holding the earlier ticks has been evaluated. Markers are left out of `read`.
        """
        for _ in range(2 if topic == "prices" else 1):
            marker = f"{MARKER}-{next(_counter)}-{time.monotonic_ns()}"
            await self.send(topic, key, {MARKER: marker})

            def seen(msgs: list[dict[str, Any]], marker: str = marker) -> bool:
                return any(marker in m.get("value", "") for m in msgs)

            found = await self.read("dead-letters", seen, timeout_s=timeout_s, markers=True)
            assert seen(found), f"the worker did not get past {topic}/{key} in {timeout_s}s"

    async def read_to_end(self, topic: str) -> list[dict[str, Any]]:
        """Every message of `topic` up to its end now (after `processed`: nothing is due)."""
        return await self.read(topic, lambda m: False, timeout_s=30.0, to_end=True)

    async def read(
        self,
        topic: str,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout_s: float = 15.0,
        *,
        to_end: bool = False,
        markers: bool = False,
    ) -> list[dict[str, Any]]:
        """Every message of `topic` from the beginning, until `until(messages)` or timeout (or,
        `to_end`, until the end offsets of now). `_worker` names the producing worker."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            name = self.topic(topic)
            parts: set[int] = set()
            for _ in range(40):
                # read the metadata answer itself: on Apache Kafka `topics()` does not feed
                # `partitions_for_topic` of a consumer without subscriptions
                cluster = await consumer._client.fetch_all_metadata()
                parts = cluster.partitions_for_topic(name) or set()
                if parts:
                    break
                await asyncio.sleep(0.25)
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps) if to_end else {}

            async def at_end() -> bool:
                return to_end and all([await consumer.position(tp) >= end[tp] for tp in tps])

            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not until(out) and not await at_end():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        message = {
                            "key": r.key.decode(errors="replace") if r.key else None,
                            **orjson.loads(r.value),
                        }
                        if not markers and MARKER in str(message.get("value", "")):
                            continue
                        worker = dict(r.headers or ()).get("umh-worker")
                        if worker is not None:
                            message["_worker"] = bytes(worker).decode()
                        out.append(message)
        finally:
            await consumer.stop()
        return out


@pytest.fixture
async def cluster(broker: Broker, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(
        broker.bootstrap, f"t{os.getpid()}x{next(_counter)}.", tmp_path, {}, kind=broker.kind
    )
    yield c
    for w in c.workers:
        w.stop()


@pytest.fixture(scope="module")
def shared(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One worker for the tests of a module that can share it (different households)."""
    c = Cluster(
        broker.bootstrap,
        f"s{os.getpid()}x{next(_counter)}.",
        tmp_path_factory.mktemp("shared"),
        {},
        kind=broker.kind,
    )
    c.worker().start()
    yield c
    for w in c.workers:
        w.stop()


def snapshot(
    household_id: str, eq: str = "VTI", fi: str = "BND", **overrides: Any
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
            {
                "account_id": f"{household_id}-IRA",
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
                        "symbol": fi,
                        "quantity": 40,
                        "cost_basis": 4000.0,
                        "acquired": "2020-01-02",
                    },
                ],
            },
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
