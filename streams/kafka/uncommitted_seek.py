"""Seeking back to the committed offset must also go back where nothing was committed yet.

Faust drops the records it fetched while its flow was stopped (a rebalance, a table's
recovery) and "seeks back to committed offsets" so that they are read again
(`Consumer.perform_seek`, after every recovery and from `getmany`). aiokafka's
`seek_to_committed` seeks only partitions whose committed offset is above 0: a partition with
no commit yet (or a commit of 0) keeps the fetcher's position, past the dropped records. They
are never read again, and the next commit on that partition covers them.

Measured in the fault tests (3-node Apache Kafka, a broker killed during a market-wide move):
the first deposit to each `cash-flows` partition arrived while the group rebalanced after the
broker's death, before any commit on that partition; six households lost it for good.

The fix: after aiokafka's seek, partitions of the given topics whose committed offset is None
or 0 are sought to their beginning, which is what `auto_offset_reset="earliest"` means for a
partition without a commit. Applies to every broker (the gap is in the clients).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

from aiokafka.errors import IllegalStateError

log = logging.getLogger(__name__)

__all__ = ["install", "seek_to_committed"]


async def seek_to_committed(
    consumer: Any, topics: Collection[str], heads: MutableMapping[Any, int] | None = None
) -> Mapping[Any, int | None]:
    """aiokafka's `seek_to_committed` on every assigned partition, then the partitions of
    `topics` with no commit (None, or 0: nothing consumed) to offset 0. Their first offsets go
    into `heads` when given (what `commit_gaps` counts from while nothing is committed).

    Offset 0 is the beginning of a partition nothing has been deleted from; where retention
    has deleted the start, the fetch answers "out of range" and aiokafka applies the reset
    policy (`earliest`): the beginning either way. A plain seek sets the position without a
    request, so it cannot wait on a rebalance; a partition revoked meanwhile is left alone.
    Returns the committed offsets, as aiokafka's does. `consumer` is an `AIOKafkaConsumer`.
    """
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    log.info(
        "resuming at committed offsets %s",
        " ".join(
            f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}@{offset}"
            for tp, offset in sorted(committed.items())
            if tp.topic in topics
        ),
    )
    fresh = [tp for tp, offset in committed.items() if tp.topic in topics and not offset]
    moved = 0
    for tp in fresh:
        try:
            consumer.seek(tp, 0)
        except IllegalStateError:  # revoked since: its next owner seeks it
            continue
        moved += 1
    if moved:
        log.info("seeking %d partitions without a commit to their beginning", moved)
    if heads is not None and fresh:
        try:
            heads.update(await consumer.beginning_offsets(fresh))
        except Exception:  # not known then: Faust commits those partitions unchecked
            log.warning("first offsets of %d partitions not known", len(fresh), exc_info=True)
    return committed


def install(
    consumer: Any, topics: Collection[str], heads: MutableMapping[Any, int] | None = None
) -> None:
    """Make Faust's consumer (`app.consumer`, the aiokafka driver's thread-delegating one) use
    `seek_to_committed` above for the input `topics`. Idempotent; a consumer without a
    Kafka client thread (Faust's in-memory test transport) is left as it is."""
    thread = getattr(consumer, "_thread", None)
    if thread is None or getattr(consumer, "_umh_uncommitted_seek", False):
        return
    wanted = frozenset(topics)

    async def run() -> Mapping[Any, int | None]:
        return await seek_to_committed(thread._ensure_consumer(), wanted, heads)

    async def patched() -> Mapping[Any, int | None]:
        return await thread.call_thread(run)  # type: ignore[no-any-return]

    consumer.seek_to_committed = patched
    consumer._umh_uncommitted_seek = True
