"""Bytes <-> JSON values with orjson; the one place that turns wire bytes into Python objects."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from .errors import Issue, ValidationError
from .reader import MAX_ABS, join, show_number

#: How much of a rejected number's text an issue quotes.
_QUOTE_CHARS = 24


def loads(data: bytes | str) -> Any:
    """Parse JSON text; a decode failure is a ValidationError, never a bare exception.

    orjson rejects `NaN`, `Infinity` and numbers that overflow a double (`1e400`) with a message
    that names no field; those are then located (with the lenient standard parser) and each is
    reported at its JSON path, so that `accounts[0].cash: NaN` says where the problem is.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        issues = _non_finite_numbers(data)
        raise ValidationError(issues or [Issue("", f"not valid JSON: {exc}")]) from None


def dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; numpy scalars and arrays are accepted."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


class _Rejected:
    """A number the contract cannot carry, as it was written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _Rejected:
    value = float(text)
    return value if math.isfinite(value) else _Rejected(text)


def _int(text: str) -> int | _Rejected:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return _Rejected(text)


def _non_finite_numbers(data: bytes | str) -> list[Issue]:
    """Issues for the numbers orjson refused, when that is the only thing wrong with the text."""
    try:
        tree = json.loads(data, parse_float=_float, parse_int=_int, parse_constant=_Rejected)
    except (ValueError, RecursionError):  # not JSON even to the lenient parser
        return []
    issues: list[Issue] = []
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Rejected):
            text = node.text if len(node.text) <= _QUOTE_CHARS else node.text[:_QUOTE_CHARS] + "..."
            limit = show_number(MAX_ABS)
            issues.append(Issue(path, f"must be a finite number of at most {limit} (got {text})"))
        elif isinstance(node, dict):
            stack.extend((join(path, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((join(path, i), v) for i, v in reversed(list(enumerate(node))))
    return issues
