"""Which assignment a completing table recovery belongs to.

Faust's table recovery runs one pass per assignment: it replays the changelog of the table's
active partitions, then calls `Recovery.on_recovery_completed(generation_id)`, which runs the
tables' recover callbacks and only afterwards compares `generation_id` with the consumer's
generation ("Recovery rebalancing again"). A pass interrupted by the next assignment can reach
those callbacks: the assignment's `Recovery.on_rebalance` drops the revoked partitions'
offsets and high-water marks, so the pass finds nothing left to read and reports "Done
reading from changelog topics" with its replay cut short.

Measured in a fault test (3-node Apache Kafka, a worker killed, then restarted): the survivor
was replaying `households-changelog/2` from offset 378 towards 1481 (its own writes of the
previous generation) when the restarted worker's departure brought generation 5. "Recovery
complete" followed 1 ms after the assignment, the worker resumed, and it wrote a household's
state as the replay had left it: two rebalances old, now the changelog's last word.

Here: the generation each completion was called with is recorded before the callbacks run
(`completing_generation`), so a callback can tell a pass of an earlier generation from the
latest one's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["completing_generation", "install"]

_ATTR = "_umh_completing_generation"


def install(recovery: Any) -> None:
    """Record, on `recovery` (Faust's `Recovery`), the generation of each completion before
    its callbacks run. Idempotent."""
    if getattr(recovery, "_umh_generation_recorded", False):
        return
    original = recovery.on_recovery_completed

    async def on_recovery_completed(generation_id: int = 0) -> None:
        setattr(recovery, _ATTR, generation_id)
        try:
            await original(generation_id)
        finally:
            setattr(recovery, _ATTR, None)

    recovery.on_recovery_completed = on_recovery_completed
    recovery._umh_generation_recorded = True


def completing_generation(recovery: Any) -> int | None:
    """The generation of the recovery pass whose completion is running now (None outside
    one, or when `install` was not called)."""
    value = getattr(recovery, _ATTR, None)
    return value if isinstance(value, int) else None
