"""The worker on secured Kafka listeners: SASL (SCRAM-SHA-512, PLAIN) and TLS, and what a
misconfiguration looks like.

The session's Apache Kafka node (conftest `kafka`, started with `security=True`) serves
SASL_PLAINTEXT and SSL listeners with certificates kafka-up.sh generates for the run (a test CA,
a broker certificate for 127.0.0.1 and a client certificate). The worker gets only the secured
address, so its every client (Faust's consumer and producers, the admin that creates topics,
the price feed) has to authenticate; the test itself reads and writes through PLAINTEXT.
A secret must never reach the worker's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from .conftest import REPO, Cluster, KafkaCluster, price, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SECRET = "umh-secret"  # kafka-up.sh's SASL password for user umh


def of(hid: str) -> Any:
    return lambda msgs: [m for m in msgs if m.get("household_id") == hid]


def secured(kafka: KafkaCluster, tmp_path: Any, name: str, env: dict[str, str]) -> Cluster:
    if not kafka.security:
        pytest.skip("the Kafka given by UMH_TEST_BOOTSTRAP has no test security listeners")
    return Cluster(kafka.bootstrap, f"sec{os.getpid()}{name}.", tmp_path, env, kind="kafka")


@pytest.mark.parametrize(
    "listener,mechanism",
    [
        ("sasl", "SCRAM-SHA-512"),
        ("sasl", "PLAIN"),
        ("ssl", None),
    ],
)
async def test_worker_on_secured_listener(
    kafka: KafkaCluster, tmp_path: Any, listener: str, mechanism: str | None
) -> None:
    env = kafka.env(listener, mechanism or "SCRAM-SHA-512") if kafka.security else {}
    c = secured(kafka, tmp_path, listener + (mechanism or "").replace("-", ""), env)
    worker = c.worker()
    try:
        worker.start(timeout_s=60)
        hid = f"hh-sec-{listener}-{mechanism or 'tls'}"
        await c.send("households", hid, snapshot(hid, eq="SEQ", fi="SFI"))
        await c.send("prices", "SEQ", price("SEQ", 150.0))
        orders = of(hid)(await c.read("orders", lambda m: bool(of(hid)(m)), timeout_s=30))
        assert len(orders) == 1 and orders[0]["status"] == "rebalanced"
    finally:
        assert worker.stop() == 0
    log = worker.log_path.read_text(errors="replace")
    assert SECRET not in log, "the SASL password leaked into the worker's output"
    if listener == "ssl":
        key = (kafka.run_dir / "tls" / "client.key").read_text()
        body = "".join(key.strip().splitlines()[1:-1])
        assert body[:40] not in log.replace("\n", ""), "private key material in the log"
    assert f"security_protocol={env['UMH_KAFKA_SECURITY_PROTOCOL']!r}" in log


def run_worker(env: dict[str, str], timeout_s: float = 90.0) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "UMH_WEB_PORT": "0",
        "UMH_TOPIC_PREFIX": f"bad{os.getpid()}.",
        "UMH_APP_ID": f"bad{os.getpid()}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def misconfigurations(kafka: KafkaCluster) -> list[tuple[str, dict[str, str], int, str]]:
    sasl = kafka.env("sasl", "SCRAM-SHA-512")
    ssl = kafka.env("ssl")
    return [
        (
            "wrong password",
            {**sasl, "UMH_KAFKA_SASL_PASSWORD": "not-the-password-42"},
            1,
            "SASL authentication failed",
        ),
        (
            "wrong password (PLAIN)",
            {
                **sasl,
                "UMH_KAFKA_SASL_MECHANISM": "PLAIN",
                "UMH_KAFKA_SASL_PASSWORD": "not-the-password-42",
            },
            1,
            "SASL authentication failed",
        ),
        (
            "missing CA file",
            {**ssl, "UMH_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            2,
            "UMH_KAFKA_SSL_CAFILE: no readable file",
        ),
        (
            "CA that did not sign the broker",
            {**ssl, "UMH_KAFKA_SSL_CAFILE": ssl["UMH_KAFKA_SSL_CERTFILE"]},
            1,
            "TLS handshake",
        ),
        (
            "SASL protocol without mechanism",
            {k: v for k, v in sasl.items() if k != "UMH_KAFKA_SASL_MECHANISM"},
            2,
            "UMH_KAFKA_SASL_MECHANISM: required with SASL_PLAINTEXT",
        ),
        (
            "SASL protocol without password",
            {k: v for k, v in sasl.items() if k != "UMH_KAFKA_SASL_PASSWORD"},
            2,
            "UMH_KAFKA_SASL_PASSWORD: required",
        ),
    ]


def test_misconfiguration_stops_the_worker_with_a_clear_message(kafka: KafkaCluster) -> None:
    if not kafka.security:
        pytest.skip("the Kafka given by UMH_TEST_BOOTSTRAP has no test security listeners")
    failures = []
    for name, env, status, message in misconfigurations(kafka):
        proc = run_worker(env)
        output = proc.stdout + proc.stderr
        if proc.returncode != status or message not in output:
            failures.append(
                f"{name}: exit {proc.returncode} (want {status}), want {message!r} "
                f"in:\n{output[-1500:]}"
            )
        for secret in (SECRET, "not-the-password-42"):
            if secret in output:
                failures.append(f"{name}: the password {secret!r} appears in the output")
    assert not failures, "\n\n".join(failures)
