"""Input decoding (streams/worker/inputs.py) and dead letters that always fit the broker."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from schemas import ValidationError
from schemas.events import parse_dead_letter
from streams.worker import inputs
from streams.worker.dead_letters import MAX_VALUE_BYTES, dead_letter

EXAMPLES = Path(__file__).parent.parent / "data" / "contract_examples"
NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.v1.json").read_bytes()


def issue(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[str, str]:
    (first, *_) = exc.value.issues
    return first.path, first.message


def test_valid_messages_decode() -> None:
    assert inputs.price_message(b"VTI", example("price")).price == pytest.approx(241.1)
    assert inputs.security_message(b"VTI", example("security")).symbol == "VTI"
    assert inputs.fill_message(b"hh-0001", example("fill")).fill_id == "F-1"
    assert inputs.cash_flow_message(b"hh-0001", example("cash_flow")).flow_id == "CF-2"
    household = inputs.household_message(b"hh-0001", example("household"))
    assert not isinstance(household, inputs.Delete) and household.household_id == "hh-0001"
    assert inputs.household_message(b"hh-0001", None) == inputs.Delete("hh-0001")


@pytest.mark.parametrize(
    ("decode", "name"),
    [
        (inputs.price_message, "price"),
        (inputs.security_message, "security"),
        (inputs.fill_message, "fill"),
        (inputs.cash_flow_message, "cash_flow"),
        (inputs.household_message, "household"),
    ],
)
@pytest.mark.parametrize("key", [None, b"", b"VTI\xff", b"hh-0001\xff", b"ZZFUZZ"])
def test_a_bad_or_disagreeing_key_is_invalid(decode: object, name: str, key: bytes | None) -> None:
    with pytest.raises(ValidationError) as exc:
        decode(key, example(name))  # type: ignore[operator]
    path, message = issue(exc)
    assert path in ("key", "symbol", "household_id")
    if key is not None and key.endswith(b"\xff"):
        assert path == "key" and "UTF-8" in message


@pytest.mark.parametrize(
    ("decode", "key"),
    [
        (inputs.price_message, b"VTI"),
        (inputs.security_message, b"VTI"),
        (inputs.fill_message, b"hh-0001"),
        (inputs.cash_flow_message, b"hh-0001"),
    ],
)
def test_a_null_value_is_invalid_except_on_households(decode: object, key: bytes) -> None:
    with pytest.raises(ValidationError, match="null value"):
        decode(key, None)  # type: ignore[operator]


def test_out_of_range_numbers_are_invalid() -> None:
    tick = orjson.loads(example("price"))
    for bad in ("1180591620717411303424", "1e13", "1e-9", "-1.0"):  # 2**70 as written
        text = orjson.dumps({**tick, "price": 0}).replace(b'"price":0', b'"price":' + bad.encode())
        with pytest.raises(ValidationError) as exc:
            inputs.price_message(b"VTI", text)
        assert issue(exc)[0] == "price"
    with pytest.raises(ValidationError):
        inputs.price_message(b"VTI", b'{"schema": "price/v1", "symbol": "VTI", "price": NaN}')


def test_dead_letter_of_an_oversized_value_fits_and_says_so() -> None:
    value = b'{"x": "' + b"\x01" * 1_200_000 + b'"}'  # escapes to six bytes each in JSON
    key, body = dead_letter("prices", 0, 7, b"VTI", value, "too big", NOW)
    assert key == b"VTI"
    assert len(body) < 1_000_000
    raw = orjson.loads(body)
    assert raw["value_truncated"] is True and raw["value_size"] == len(value)
    assert len(raw["value"].encode()) == MAX_VALUE_BYTES
    assert parse_dead_letter(raw).offset == 7


def test_dead_letter_keeps_bytes_that_are_not_utf8() -> None:
    key, body = dead_letter("prices", 1, 3, b"FZB41\xff", b"\xfe\xff", "key: not UTF-8", NOW)
    assert key == b"FZB41\xff"
    raw = orjson.loads(body)
    assert raw["key_encoding"] == "base64" and base64.b64decode(raw["key"]) == b"FZB41\xff"
    assert raw["value_encoding"] == "base64" and base64.b64decode(raw["value"]) == b"\xfe\xff"
    assert "value_truncated" not in raw


def test_dead_letter_cut_inside_a_character_stays_text() -> None:
    value = "é".encode() * MAX_VALUE_BYTES  # two bytes each: the cut may split one
    _, body = dead_letter("fills", 0, 0, None, b"x" + value, "bad", NOW)
    raw = orjson.loads(body)
    assert "value_encoding" not in raw and raw["value_truncated"] is True
    assert raw["key"] is None
