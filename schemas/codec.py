"""Bytes <-> JSON values with orjson; the one place that turns wire bytes into Python objects."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import Issue, ValidationError


def loads(data: bytes | str) -> Any:
    """Parse JSON text; a decode failure is a ValidationError, never a bare exception."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError([Issue("", f"not valid JSON: {exc}")]) from None


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; numpy scalars and arrays are accepted."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
