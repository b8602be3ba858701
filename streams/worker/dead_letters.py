"""The dead-letter policy: a message that cannot be decoded or applied becomes a `dead_letter/v1`.

A small swappable function (like quix-streams' error callbacks): the agents call it and publish
what it returns; the household state is never touched by such a message.

A dead letter always fits what the producer and the broker accept (`max_request_size`, about
1,000,000 bytes): the original value is cut to its first `MAX_VALUE_BYTES` bytes, and then the
body says `value_truncated: true` with the original size in `value_size`. Bytes that are not
UTF-8 are carried faithfully, never with replacement characters: the field then holds base64 and
`key_encoding` / `value_encoding` says `base64`. The dead letter's Kafka key is the original key
bytes, as they were.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from schemas import dumps
from schemas.events import DeadLetter, dead_letter_to_json

# At most this many bytes of the original value (and key) go into a dead letter: JSON escaping
# can grow text six-fold (\u00XX), base64 by a third, so the body stays far below 1,000,000.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 16 * 1024


def _raw(data: bytes | str | None) -> bytes | None:
    return data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data


def _text(data: bytes, limit: int) -> tuple[str, str | None, bool]:
    """(text, encoding or None for UTF-8, truncated) of at most `limit` bytes of `data`."""
    cut = data[:limit]
    truncated = len(cut) < len(data)
    try:
        return cut.decode("utf-8"), None, truncated
    except UnicodeDecodeError as exc:
        # a cut inside a multi-byte character is still UTF-8 text up to that character
        if truncated and exc.start >= len(cut) - 3 and exc.reason == "unexpected end of data":
            return cut[: exc.start].decode("utf-8"), None, truncated
    return base64.b64encode(cut).decode("ascii"), "base64", truncated


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | str | None,
    error: str,
    now: datetime,
) -> tuple[bytes | None, bytes]:
    """(Kafka key, value) for the dead-letters topic: the original key bytes, the value as text
    (base64 when it is not UTF-8), cut to `MAX_VALUE_BYTES` and marked when cut."""
    raw_key = _raw(key)
    raw_value = _raw(value)
    extra: dict[str, Any] = {}
    key_text: str | None = None
    if raw_key is not None:
        key_text, key_encoding, key_cut = _text(raw_key, MAX_KEY_BYTES)
        if key_encoding:
            extra["key_encoding"] = key_encoding
        if key_cut:
            extra["key_truncated"] = True
            extra["key_size"] = len(raw_key)
            raw_key = raw_key[:MAX_KEY_BYTES]
    value_text = ""
    if raw_value is None:
        extra["value_null"] = True
    else:
        value_text, value_encoding, value_cut = _text(raw_value, MAX_VALUE_BYTES)
        if value_encoding:
            extra["value_encoding"] = value_encoding
        if value_cut:
            extra["value_truncated"] = True
            extra["value_size"] = len(raw_value)
    record = DeadLetter(topic, partition, offset, key_text, value_text, error[:4096], now)
    return raw_key, dumps({**dead_letter_to_json(record), **extra})
