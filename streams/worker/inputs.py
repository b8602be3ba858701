"""Decoding of every input topic in one place: (key bytes, value bytes) -> a record, or a
`ValidationError` whose issues name the field (contract section 4).

Pure functions, no I/O. A key stays bytes until it is validated here: a key that is not UTF-8,
an empty or missing key, or a key that disagrees with the body is invalid (a message keyed by
one household or symbol must not change another). A null value deletes on `households` (a
compaction tombstone) and is invalid on every other topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas import Household, Issue, Security, ValidationError, loads
from schemas.events import (
    CashFlow,
    Fill,
    Price,
    parse_cash_flow,
    parse_fill,
    parse_price,
    parse_security_event,
)
from schemas.typed import decode_household
from streams.worker.state import SnapshotMark


@dataclass(frozen=True, slots=True)
class Delete:
    """A tombstone on `households`: forget this household."""

    household_id: str


def _invalid(path: str, message: str) -> ValidationError:
    return ValidationError([Issue(path, message)])


def decode_key(key: bytes | str | None, names: str) -> str:
    """The message key as text; `names` says what the key must be (for the message)."""
    if key is None:
        raise _invalid("key", f"missing: the message key must be the {names}")
    if isinstance(key, str):
        text = key
    else:
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid("key", f"not valid UTF-8 at byte {exc.start}") from None
    if not text:
        raise _invalid("key", f"empty: the message key must be the {names}")
    return text


def _value(value: bytes | None) -> bytes:
    if value is None:
        raise _invalid("", "null value (only `households` takes a tombstone)")
    return value


def _same(key: str, path: str, body: str) -> None:
    if key != body:
        raise _invalid(path, f"{body!r} does not match the message key {key!r}")


def household_message(key: bytes | None, value: bytes | None) -> Household | Delete:
    """A `households` message: a snapshot keyed by its household_id, or a tombstone."""
    hid = decode_key(key, "household_id")
    if value is None:
        return Delete(hid)
    household = decode_household(value, prices_required=False)
    _same(hid, "household_id", household.household_id)
    return household


def fill_message(key: bytes | None, value: bytes | None) -> Fill:
    hid = decode_key(key, "household_id")
    fill = parse_fill(loads(_value(value)))
    _same(hid, "household_id", fill.household_id)
    return fill


def cash_flow_message(key: bytes | None, value: bytes | None) -> CashFlow:
    hid = decode_key(key, "household_id")
    flow = parse_cash_flow(loads(_value(value)))
    _same(hid, "household_id", flow.household_id)
    return flow


def price_message(key: bytes | None, value: bytes | None) -> Price:
    symbol = decode_key(key, "symbol")
    price = parse_price(loads(_value(value)))
    _same(symbol, "symbol", price.symbol)
    return price


def security_message(key: bytes | None, value: bytes | None) -> Security:
    symbol = decode_key(key, "symbol")
    security = parse_security_event(loads(_value(value)))
    _same(symbol, "symbol", security.symbol)
    return security


def snapshot_mark(offset: int, value: bytes | None) -> SnapshotMark:
    """Where a snapshot was read: its offset and a digest of its value (16 bytes of BLAKE2b:
    a record read again has both; a snapshot sent again has a new offset)."""
    return SnapshotMark(offset, hashlib.blake2b(value or b"", digest_size=16).hexdigest())
