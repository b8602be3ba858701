"""A flush of the worker's producer hands over every queued table write, however slow the sends.

Faust's own `ProducerBuffer.flush()` returns after the first 0.1 s without a send; Faust calls it
before committing input offsets, so on a busy worker a commit could cover fills whose changelog
records were still queued (lost for good with a kill -9 that followed). The buffer here is
Faust's real one; only the Kafka client behind it is replaced by a slow sender.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
from faust.transport.producer import ProducerBuffer

from streams.worker.app import drain_buffer, drain_on_flush

SEND_S = 0.25  # one send: longer than the 0.1 s Faust's flush waits for


class SlowClient:
    """Where the buffer hands its records: takes SEND_S per record, remembers the order."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    async def publish_message(self, fut: SimpleNamespace, wait: bool = False) -> None:
        await asyncio.sleep(SEND_S)
        self.sent.append(fut.n)


async def buffer_with(records: int) -> tuple[ProducerBuffer, SlowClient]:
    buffer = ProducerBuffer()
    buffer.app = faust.App("drain-test", autodiscover=False)
    client = SlowClient()
    await buffer.start()
    for n in range(records):
        buffer.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=client)))
    return buffer, client


async def test_faust_flush_alone_gives_up_on_a_slow_buffer() -> None:
    buffer, _client = await buffer_with(4)
    try:
        await ProducerBuffer.flush(buffer)
        assert buffer.size > 0  # what the drain exists for
    finally:
        await drain_buffer(buffer, timeout_s=10.0)
        await buffer.stop()


async def test_drain_hands_over_every_queued_write_in_order() -> None:
    buffer, client = await buffer_with(4)
    try:
        await drain_buffer(buffer, timeout_s=10.0)
        assert buffer.size == 0
        assert client.sent[:3] == [0, 1, 2]
    finally:
        await buffer.stop()


async def test_the_flush_faust_calls_before_a_commit_drains() -> None:
    buffer, client = await buffer_with(4)
    try:
        drain_on_flush(SimpleNamespace(buffer=buffer))
        await buffer.flush()  # the call Faust's producer makes before committing offsets
        assert buffer.size == 0 and client.sent[:3] == [0, 1, 2]
    finally:
        await buffer.stop()
