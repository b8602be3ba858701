"""The contract's JSON Schema documents (draft 2020-12), shipped as package data in `json/`."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson

_PACKAGE = __name__.rpartition(".")[0]

SCHEMA_NAMES = (
    "household",
    "rebalance",
    "security",
    "price",
    "fill",
    "cash_flow",
    "drift_alert",
    "dead_letter",
)


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of message `name` (`household` or `household/v1`), a fresh dict each call."""
    base = name.removesuffix("/v1")
    if base not in SCHEMA_NAMES:
        raise KeyError(f"no JSON Schema for {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    schema: dict[str, Any] = orjson.loads(_schema_text(base))
    return schema


@cache
def _schema_text(base: str) -> bytes:
    return files(_PACKAGE).joinpath("json", f"{base}.v1.schema.json").read_bytes()
