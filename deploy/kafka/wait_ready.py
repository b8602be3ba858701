"""Readiness probe for the test cluster started by kafka-up.sh (stdlib + aiokafka only).

Usage: wait_ready.py NODES TIMEOUT_S HOST:PORT [HOST:PORT ...]

Succeeds (exit 0) once every address answers a Metadata request whose broker list holds
NODES brokers and a controller. Exit 1 on timeout, after printing the last error.
"""

from __future__ import annotations

import asyncio
import sys
import time


async def _probe(addr: str, nodes: int) -> str | None:
    from aiokafka import AIOKafkaClient  # imported lazily: the fallback path needs no aiokafka

    client = AIOKafkaClient(bootstrap_servers=addr, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), 5)
        brokers = client.cluster.brokers()
        if len(brokers) < nodes:
            return f"{addr}: {len(brokers)}/{nodes} brokers registered"
        if client.cluster.controller is None:
            return f"{addr}: no controller yet"
        return None
    except Exception as exc:  # any failure just means "not yet"
        return f"{addr}: {type(exc).__name__}: {exc}"
    finally:
        await client.close()


async def _main(nodes: int, timeout: float, addrs: list[str]) -> int:
    deadline = time.monotonic() + timeout
    pending = list(addrs)
    last = ""
    while True:
        errors = await asyncio.gather(*(_probe(a, nodes) for a in pending))
        pending = [a for a, e in zip(pending, errors, strict=True) if e is not None]
        last = "; ".join(e for e in errors if e)
        if not pending:
            return 0
        if time.monotonic() > deadline:
            print(f"kafka not ready after {timeout:.0f}s: {last}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.25)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # aiokafka logs connection refusals at ERROR
    sys.exit(asyncio.run(_main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:])))
