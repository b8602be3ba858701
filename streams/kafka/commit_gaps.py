"""A commit never passes a record no agent acknowledged.

Faust commits, per partition, the first run of consecutive acknowledged offsets plus the gaps
its fetcher saw (offsets without a record: compacted away, transaction markers). It takes a
gap to start one past its read offset, the last offset read. A seek breaks that: it sets the
read offset to the offset sought, the next one to read, so the first gap after a seek starts
one too late. Faust makes up for it with slack, which lets real records through:

- `_new_offset` refuses to commit only when the lowest acknowledged offset is more than one
  above the committed offset (the next record to read): one missing record right at it is
  committed over. Acknowledged 54 and 55 with 53 committed commits 56, and record 53 is never
  applied, nor read again after a restart. With nothing committed (or a commit of 0) it does
  not check at all. `_add_gap` likewise starts a gap no lower than the committed offset + 1.
- A record goes missing like that when Faust's stream drops it: one delivered while the flow is
  stopped, or from an older consumer generation, is skipped (faust-streaming PR #223) after
  the consumer has counted it as read, and the stream then acknowledges it like a record it
  handled (`Stream._py_aiter` and the Cython iterator ack a skipped value), so its offset is
  committed as if an agent had applied it. Records the fetcher returned for a partition paused
  meanwhile are skipped without being counted, and the next record read turns them into a
  "gap" that is committed over.

Measured in the fault tests (3-node Apache Kafka, a worker killed while fills stream): the
survivor applied `fills/2@52`, never `@53`, acknowledged the records after it and committed
past it; the household kept its open rebalance for good.

Measured in `make test` (embedded broker, two workers starting): the first snapshot of a
`households` partition, read around the rebalance as the second worker joined, was never
applied while the records after it were; its household was never valued.

Here: a record the stream skipped is not acknowledged (the stream marks a record it hands to an
agent as tracked first; a skipped one never is), so it holds the commit like any dropped record;
a seek leaves the read offset one below the offset sought (so a gap starts where it does), a gap
starts no lower than the committed offset, and a commit waits while the lowest acknowledged or
gap offset is above the committed offset (without a commit: above the partition's first offset,
recorded where it is sought to its beginning). On the topics given as `verify` a gap counts only
when it is seen a second time, after the partition was read again: records that exist are read
then. A dropped record or an unconfirmed gap holds its partition's commit, and the worker's
stall watch (`streams.worker.stall`) reads the partition again from its committed offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["first_unacknowledged_missing", "handed_to_an_agent", "install"]

#: Gaps seen once and waiting for their second sighting, at most (then forgotten: seen again).
UNCONFIRMED_MAX = 10_000


def first_unacknowledged_missing(
    committed: int | None, acked: list[int], gap_starts: list[int]
) -> bool:
    """True when the record at the committed offset (`committed`: the next to read, None when
    unknown) has been neither acknowledged nor seen to be a gap, while later ones have."""
    if committed is None or not acked:
        return False
    return min([*acked, *gap_starts]) > committed


def read_before(offset: int | None) -> int | None:
    """The read offset after a seek to `offset`: the one before it (None: nothing read, which
    Faust also uses for offset 0 and never counts gaps from)."""
    return offset - 1 if offset else None


def handed_to_an_agent(message: Any) -> bool:
    """The stream gave `message` to an agent: it tracks a record before it yields it and skips
    the record untracked (Faust's `Message.tracked`, True from the start where no tracking is
    wanted)."""
    return bool(getattr(message, "tracked", True))


def install(
    consumer: Any,
    heads: MutableMapping[Any, int],
    verify: Collection[str] = (),
    on_skipped: Callable[[Any], None] | None = None,
) -> None:
    """Make Faust's consumer commit exactly (above). `heads`: partition -> its first offset,
    for partitions without a commit (filled where they are sought to their beginning);
    `verify`: topics whose gaps count only when seen twice; `on_skipped`: called with each
    record the stream skipped (left unacknowledged). Idempotent."""
    if getattr(consumer, "_umh_commit_gaps", False):
        return
    ack: Callable[[Any], bool] = consumer.ack
    new_offset: Callable[[Any], int | None] = consumer._new_offset
    seek: Callable[[Any, int], Awaitable[None]] = consumer.seek
    perform_seek: Callable[[], Awaitable[None]] = consumer.perform_seek
    unconfirmed: set[tuple[Any, int, int]] = set()

    def exact_new_offset(tp: Any) -> int | None:
        committed = consumer._committed_offset[tp]
        if committed is None:
            committed = heads.get(tp)
        gaps = consumer._gap[tp]
        starts = [gaps.begin()] if gaps else []
        if first_unacknowledged_missing(committed, consumer._acked[tp], starts):
            return None
        return new_offset(tp)

    def confirmed(tp: Any, offset_from: int, offset_to: int) -> bool:
        if tp.topic not in verify:
            return True
        seen = (tp, offset_from, offset_to)
        if seen in unconfirmed:
            unconfirmed.discard(seen)
            return True
        if len(unconfirmed) >= UNCONFIRMED_MAX:
            unconfirmed.clear()
        unconfirmed.add(seen)
        log.info(
            "%s/%d: offsets %d-%d skipped; the commit waits until they are read again",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to - 1,
        )
        return False

    async def exact_add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        committed = consumer._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        # `offset_to` is the record just read, acknowledged on its own (Faust's gap included
        # it: acknowledged twice, it broke the run of offsets for a commit round)
        if offset_from >= offset_to or not confirmed(tp, offset_from, offset_to):
            return
        gaps = consumer._gap[tp]
        gaps.addi(offset_from, offset_to)  # an interval excludes its end
        await asyncio.sleep(0)  # as Faust does: health checks answer meanwhile
        gaps.merge_overlaps()

    async def exact_seek(tp: Any, offset: int) -> None:
        await seek(tp, offset)
        consumer._read_offset[tp] = read_before(offset)

    async def exact_perform_seek() -> None:
        await perform_seek()  # every assigned partition to its committed offset
        for tp, offset in list(consumer._committed_offset.items()):
            if offset is not None and consumer._read_offset.get(tp) == offset:
                consumer._read_offset[tp] = read_before(offset)

    def exact_ack(message: Any) -> bool:
        # on a topic without acknowledgements nothing is tracked, and nothing committed
        if handed_to_an_agent(message) or not consumer.app.topics.acks_enabled_for(message.topic):
            return ack(message)
        log.info(
            "%s/%d@%d skipped by the stream while partitions moved: not acknowledged, "
            "it holds the commit until read again",
            message.topic,
            message.partition,
            message.offset,
        )
        if on_skipped is not None:
            on_skipped(message)
        return False

    consumer.ack = exact_ack
    consumer._new_offset = exact_new_offset
    consumer._add_gap = exact_add_gap
    consumer.seek = exact_seek
    consumer.perform_seek = exact_perform_seek
    consumer._umh_commit_gaps = True
