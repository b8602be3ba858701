"""Input partitions that stop moving: seen, said, and started again.

Measured in the fault tests (3-node Apache Kafka, a worker killed while fills stream): after the
group rebalance the survivor processed `fills/2` up to offset 60 and never saw 61-63; its
committed offset stayed at 61 for four minutes and two households kept an open rebalance for
good, while the other `fills` partitions moved on. Faust's stream drops a record delivered while
its flow control is stopped or whose consumer generation is stale (faust-streaming PR #223)
and acknowledges it anyway, after the consumer has already counted it read: when that happens
after the seek to the committed offsets that ends a rebalance, nothing reads the record again.
`streams.kafka.commit_gaps` makes such a record hold its partition's commit (Faust alone could
commit over it); the position watched here is therefore the committed offset, not the read
offset (which had moved past the dropped records).

This watch is the guard: a partition whose committed offset (without a commit: its first
offset) stays below its end for `STALL_S`, judged only while its agent is not handling an event
(a busy agent may hold the record), is resumed and fetched again from its committed offset.
The worker watches every input topic, `households` included: fills and flows are applied once
by id, and a snapshot record read again, or an earlier one of its partition, is kept out by the
offset its household's state came from (`streams.worker.state.SnapshotMark`), so what is read
twice changes nothing. One case is left: a household deleted (a tombstone) has no state to
remember its offset, so an older snapshot of it in the range read again brings it back until
the tombstone, read again right after it, deletes it again.

`StallWatch` is the pure part (positions in, stalled partitions out); the worker's timer feeds
it and acts (`streams.worker.app`).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # a partition: Faust's TP in the worker

#: How long a partition with records waiting may keep its committed offset, its agent idle,
#: before it counts as stalled (seconds): well above the worker's commit interval (1 s). A false
#: alarm costs one re-read of records applied once by id.
STALL_S = 8.0


@dataclass
class StallWatch(Generic[K]):
    """Remembers, per partition, its committed offset and since when it has not moved."""

    stall_s: float = STALL_S
    _since: dict[K, tuple[int, float]] = field(default_factory=dict)

    def observe(
        self,
        positions: Mapping[K, int],
        ends: Mapping[K, int],
        now: float,
        busy: Collection[K] = (),
    ) -> list[K]:
        """The partitions stalled as of `now`.

        `positions`: each partition's committed offset (partitions with none are left out);
        `ends`: each partition's end offset; `busy`: partitions whose agent is handling an
        event now, not judged this time (their clock runs on). A stalled partition is reported
        once per `stall_s` while it stays stalled.
        """
        stalled: list[K] = []
        for tp, end in ends.items():
            pos = positions.get(tp)
            if pos is None or end <= pos:
                self._since.pop(tp, None)  # unknown, or nothing waiting
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != pos:
                self._since[tp] = (pos, now)
                continue
            if tp in busy:
                continue
            if now - seen[1] >= self.stall_s:
                stalled.append(tp)
                self._since[tp] = (pos, now)
        for tp in set(self._since) - set(ends):
            del self._since[tp]
        return stalled

    def clear(self) -> None:
        """Forget every partition (partitions moved: positions start again)."""
        self._since.clear()
