"""Input partitions that stop moving: seen, said, and started again.

Measured in the fault tests (3-node Apache Kafka, a worker killed while fills stream): after the
group rebalance the survivor kept a `fills` partition it had owned all along but never read it
again. Its committed offset stayed at 54 for four minutes while twenty fills waited behind it,
and four households kept an open rebalance for good, while the other `fills` partitions moved
on. The cause lies in Faust's flow control (a partition left out of the set it fetches); this
watch is the guard against it: a partition with records waiting whose read position has not
moved for `STALL_S` while the worker is steady is resumed and fetched again from its committed
offset. The worker watches `fills` and `cash-flows` only: they are applied once by id, so what
is read twice changes nothing (a snapshot read twice would replace its household again and undo
the fills applied after it).

`StallWatch` is the pure part (positions in, stalled partitions out); the worker's timer feeds
it and acts (`streams.worker.app`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # a partition: Faust's TP in the worker

#: How long a partition with records waiting may keep its read position before it counts as
#: stalled: well above a busy worker's pause between two reads of one partition (seconds).
STALL_S = 30.0


@dataclass
class StallWatch(Generic[K]):
    """Remembers, per partition, its next offset to read and since when it has not moved."""

    stall_s: float = STALL_S
    _since: dict[K, tuple[int, float]] = field(default_factory=dict)

    def observe(self, positions: Mapping[K, int], ends: Mapping[K, int], now: float) -> list[K]:
        """The partitions stalled as of `now`.

        `positions`: the next offset each partition will read (partitions with no known
        position are left out); `ends`: each partition's end offset. A stalled partition is
        reported once per `stall_s` while it stays stalled.
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
            if now - seen[1] >= self.stall_s:
                stalled.append(tp)
                self._since[tp] = (pos, now)
        for tp in set(self._since) - set(ends):
            del self._since[tp]
        return stalled

    def clear(self) -> None:
        """Forget every partition (partitions moved: positions start again)."""
        self._since.clear()
