"""Commits never pass a record no agent acknowledged (streams/kafka/commit_gaps.py), on Faust's
own commit bookkeeping (`Consumer._new_offset` and `_add_gap`, bound to a bare object)."""

from __future__ import annotations

import asyncio
import types
from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP as FaustTP
from faust.types.tuples import ConsumerMessage
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.kafka import commit_gaps

TP = FaustTP("fills", 2)
SNAPSHOTS = FaustTP("households", 2)


def faust_consumer(committed: int | None) -> Any:
    """The state Faust's commit arithmetic reads, with Faust's own methods bound to it."""
    c = types.SimpleNamespace(
        _committed_offset=defaultdict(lambda: None),
        _read_offset=defaultdict(lambda: None),
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
    )
    c._committed_offset[TP] = committed
    c._committed_offset[SNAPSHOTS] = committed
    c._unacked_messages = set()
    c._n_acked = 0
    c._waiting_for_ack = None
    c.app = types.SimpleNamespace(
        topics=types.SimpleNamespace(acks_enabled_for=lambda topic: topic != "untracked")
    )
    c.ack = types.MethodType(Consumer.ack, c)
    c._new_offset = types.MethodType(Consumer._new_offset, c)
    c._add_gap = types.MethodType(Consumer._add_gap, c)

    async def seek(tp: Any, offset: int) -> None:  # Faust's: the read offset is the one sought
        c._read_offset[tp] = offset if offset else None

    async def perform_seek() -> None:
        for tp, offset in c._committed_offset.items():
            c._read_offset[tp] = offset if offset else None

    c.seek = seek
    c.perform_seek = perform_seek
    return c


async def read(c: Any, tp: Any, offsets: list[int], dropped: tuple[int, ...] = ()) -> None:
    """Faust's fetch loop (`Consumer._drain_messages`) on these offsets: a gap from the read
    offset is recorded; a record is acknowledged unless the stream drops it."""
    for offset in offsets:
        r = c._read_offset[tp]
        if r is None or offset >= r:
            if offset - (r or 0) > 1 and r:
                await c._add_gap(tp, r + 1, offset)
            committed = c._committed_offset[tp]
            fresh = committed is None or offset >= committed  # Faust's `ack` ignores the rest
            if offset not in dropped and fresh and offset not in c._acked_index[tp]:
                c._acked[tp].append(offset)
                c._acked_index[tp].add(offset)
            c._read_offset[tp] = offset


def ack(c: Any, *offsets: int) -> None:
    for offset in offsets:
        c._acked[TP].append(offset)
        c._acked_index[TP].add(offset)


def test_faust_alone_commits_over_a_missing_record_at_the_committed_offset() -> None:
    # why the work-around exists: 53 was dropped by the stream, 54 and 55 acknowledged
    c = faust_consumer(committed=53)
    ack(c, 54, 55)
    assert c._new_offset(TP) == 56


def test_a_missing_record_at_the_committed_offset_holds_the_commit() -> None:
    c = faust_consumer(committed=53)
    commit_gaps.install(c, {})
    ack(c, 54, 55)
    assert c._new_offset(TP) is None
    ack(c, 53)  # read again (the stall watch) and applied
    assert c._new_offset(TP) == 56


def test_a_gap_after_a_seek_starts_at_the_committed_offset_and_is_committed_over() -> None:
    # 53 and 54 hold no record (compacted away); after the seek to 53, 55 is read first
    c = faust_consumer(committed=53)
    commit_gaps.install(c, {})
    asyncio.run(c.perform_seek())
    asyncio.run(read(c, SNAPSHOTS, [55, 56]))
    assert c._new_offset(SNAPSHOTS) == 57


def test_a_gap_in_a_verified_topic_counts_once_read_twice() -> None:
    # fills 53-54 skipped by the fetcher (their partition paused), 55 read
    c = faust_consumer(committed=53)
    commit_gaps.install(c, {}, verify=("fills",))
    asyncio.run(read(c, TP, [50, 51, 52]))  # the records before, already committed
    asyncio.run(read(c, TP, [55, 56]))
    assert c._new_offset(TP) is None  # held
    # read again from the committed offset (the stall watch): they exist this time
    asyncio.run(c.seek(TP, 53))
    asyncio.run(read(c, TP, [53, 54, 55, 56]))
    assert c._new_offset(TP) == 57


def test_a_real_gap_in_a_verified_topic_is_committed_over_on_its_second_sighting() -> None:
    c = faust_consumer(committed=53)
    commit_gaps.install(c, {}, verify=("fills",))
    asyncio.run(read(c, TP, [52]))
    asyncio.run(read(c, TP, [55]))  # 53, 54: transaction markers
    assert c._new_offset(TP) is None
    asyncio.run(c.seek(TP, 53))
    asyncio.run(read(c, TP, [55]))  # the same gap again: it is one
    assert c._new_offset(TP) == 56


def test_a_record_the_stream_drops_after_a_seek_holds_the_commit_until_read_again() -> None:
    c = faust_consumer(committed=50)
    commit_gaps.install(c, {}, verify=("fills",))
    asyncio.run(c.perform_seek())
    asyncio.run(read(c, TP, [50, 51, 52, 53, 54], dropped=(53,)))
    assert c._new_offset(TP) == 53  # up to the dropped record, not past it
    c._committed_offset[TP] = 53
    assert c._new_offset(TP) is None
    asyncio.run(c.seek(TP, 53))
    asyncio.run(read(c, TP, [53, 54]))
    assert c._new_offset(TP) == 55


def record(tp: Any, offset: int, *, handed_to_an_agent: bool) -> ConsumerMessage:
    """A record as Faust's fetcher makes it; the stream tracks it when it hands it over."""
    m = ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, [], b"k", b"v", None, tp=tp)
    m.tracked = handed_to_an_agent
    m.incref()  # one stream subscribes to the topic
    return m


def test_a_record_the_stream_skipped_holds_the_commit_until_read_again() -> None:
    # Faust's stream skips a record delivered while the flow is stopped or from an older
    # generation, then acknowledges it anyway: alone, its offset is committed unapplied
    c = faust_consumer(committed=None)
    plain = faust_consumer(committed=None)
    skipped: list[int] = []
    commit_gaps.install(c, {SNAPSHOTS: 0}, on_skipped=lambda m: skipped.append(m.offset))
    for consumer in (c, plain):
        record(SNAPSHOTS, 0, handed_to_an_agent=False).ack(consumer)
        for offset in (1, 2):
            assert record(SNAPSHOTS, offset, handed_to_an_agent=True).ack(consumer)
    assert plain._new_offset(SNAPSHOTS) == 3  # Faust: record 0 committed over
    assert c._new_offset(SNAPSHOTS) is None and skipped == [0]
    assert record(SNAPSHOTS, 0, handed_to_an_agent=True).ack(c)  # read again, applied
    assert c._new_offset(SNAPSHOTS) == 3


def test_records_of_topics_without_acknowledgements_are_left_to_faust() -> None:
    c = faust_consumer(committed=None)
    skipped: list[Any] = []
    commit_gaps.install(c, {}, on_skipped=skipped.append)
    m = record(FaustTP("untracked", 0), 0, handed_to_an_agent=False)
    m.ack(c)
    assert m.acked and not skipped


def test_without_a_commit_the_partition_counts_from_its_first_offset() -> None:
    c = faust_consumer(committed=None)
    commit_gaps.install(c, {TP: 1000})  # retention deleted offsets below 1000
    ack(c, 1001, 1002)
    assert c._new_offset(TP) is None
    ack(c, 1000)
    assert c._new_offset(TP) == 1003


def test_without_a_commit_or_a_known_first_offset_faust_decides() -> None:
    c = faust_consumer(committed=None)
    commit_gaps.install(c, {})
    ack(c, 5, 6)
    assert c._new_offset(TP) == 7


@given(
    st.integers(min_value=0, max_value=1000),
    st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_the_commit_never_passes_the_first_record_not_acknowledged(
    committed: int, acked_flags: list[bool]
) -> None:
    c = faust_consumer(committed=committed)
    commit_gaps.install(c, {})
    offsets = [committed + i for i, acked in enumerate(acked_flags) if acked]
    ack(c, *offsets)
    first_missing = next(
        (committed + i for i, acked in enumerate(acked_flags) if not acked),
        committed + len(acked_flags),
    )
    new = c._new_offset(TP)
    if offsets:
        assert new is None or new <= first_missing
        assert (new is None) == (first_missing == committed)
    else:
        assert new is None
