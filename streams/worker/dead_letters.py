"""The dead-letter policy: a message that cannot be decoded or applied becomes a `dead_letter/v1`.

A small swappable function (like quix-streams' error callbacks): the agents call it and publish
what it returns; the household state is never touched by such a message.
"""

from __future__ import annotations

from datetime import datetime

from schemas import dumps
from schemas.events import DeadLetter, dead_letter_to_json


def _text(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | str | None,
    error: str,
    now: datetime,
) -> tuple[bytes | None, bytes]:
    """(key, value) for the dead-letters topic: the original key, the original value as text."""
    record = DeadLetter(topic, partition, offset, _text(key), _text(value) or "", error, now)
    raw_key = key.encode() if isinstance(key, str) else key
    return raw_key, dumps(dead_letter_to_json(record))
