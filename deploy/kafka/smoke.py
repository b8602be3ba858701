"""Smoke test of a cluster started by kafka-up.sh: produce and consume one message with aiokafka.

Usage: .venv/bin/python deploy/kafka/smoke.py [BOOTSTRAP] [--security]

BOOTSTRAP defaults to the one in .cache/kafka/run/bootstrap. With --security it also checks the
SASL_PLAINTEXT listener (SCRAM-SHA-512 and PLAIN) and the SSL listener (server auth and mutual
TLS) described in .cache/kafka/run/cluster.env. Exit status 0 when every check passed.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context

RUN = Path(__file__).resolve().parents[2] / ".cache" / "kafka" / "run"


def cluster_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (RUN / "cluster.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


async def roundtrip(label: str, bootstrap: str, rf: int, **kw: Any) -> None:
    t0 = time.monotonic()
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kw)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=rf)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kw)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b'{"schema":"smoke/v1"}', key=b"hh-0001")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"smoke-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        **kw,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert msg.key == b"hh-0001" and msg.value == b'{"schema":"smoke/v1"}', msg
    ms = (time.monotonic() - t0) * 1000
    print(f"ok {label}: {bootstrap} topic={topic} rf={rf} p={meta.partition} ({ms:.0f} ms)")


async def main(argv: list[str]) -> int:
    security = "--security" in argv
    args = [a for a in argv if not a.startswith("--")]
    bootstrap = args[0] if args else (RUN / "bootstrap").read_text().strip()
    bootstrap = bootstrap.removeprefix("kafka://")
    rf = min(3, len(bootstrap.split(",")))
    await roundtrip("PLAINTEXT", bootstrap, rf)
    if security:
        env = cluster_env()
        user, password = env["sasl_user"], env["sasl_password"]
        for mech in ("SCRAM-SHA-512", "PLAIN"):
            await roundtrip(
                f"SASL_PLAINTEXT/{mech}",
                env["sasl_bootstrap"],
                rf,
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mech,
                sasl_plain_username=user,
                sasl_plain_password=password,
            )
        ctx = create_ssl_context(cafile=env["ssl_cafile"])
        await roundtrip("SSL", env["ssl_bootstrap"], rf, security_protocol="SSL", ssl_context=ctx)
        mctx = create_ssl_context(
            cafile=env["ssl_cafile"], certfile=env["ssl_certfile"], keyfile=env["ssl_keyfile"]
        )
        await roundtrip(
            "SSL/mTLS", env["ssl_bootstrap"], rf, security_protocol="SSL", ssl_context=mctx
        )
        # A wrong password must be refused.
        try:
            await roundtrip(
                "SASL_PLAINTEXT/SCRAM-SHA-512 wrong password",
                env["sasl_bootstrap"],
                rf,
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=user,
                sasl_plain_password="wrong",
            )
        except Exception as exc:
            print(f"ok wrong password refused: {type(exc).__name__}")
        else:
            print("FAIL: wrong SCRAM password accepted")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
