"""`household/v1` from bytes in one typed pass (msgspec), when the document is valid.

`parse_household` (the Reader) stays the one definition of what is valid and of every message;
this is its fast path for the part that costs: a household's lots. msgspec decodes the text
with every lot typed as `Lot` under its annotated constraints (the tests of `plain_lot`) and
every other field as plain JSON, which the Reader then checks as always. When msgspec refuses
the text, or the Reader refuses what it decoded, the document is read again the slow way
(`loads`, then the Reader on the whole), so a bad document's issues are exactly the Reader's.

The structs' fields are the JSON Schema's properties (`json/household.v1.schema.json`), so a
field the schema gains is never dropped here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .codec import loads
from .errors import ValidationError
from .household import Household, Lot, parse_household
from .json_schemas import load_schema


def _structs() -> type[msgspec.Struct]:
    schema = load_schema("household")
    account = msgspec.defstruct(
        "_Account",
        [
            (name, list[Lot] if name == "lots" else Any, msgspec.UNSET)
            for name in schema["$defs"]["account"]["properties"]
        ],
    )
    return msgspec.defstruct(
        "_Household",
        [
            (name, list[account] if name == "accounts" else Any, msgspec.UNSET)  # type: ignore[valid-type]
            for name in schema["properties"]
        ],
    )


_DECODER = msgspec.json.Decoder(_structs())


def _fields(record: msgspec.Struct) -> dict[str, Any]:
    """The fields the text had, as the plain JSON object the Reader reads."""
    out = {}
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if value is not msgspec.UNSET:
            out[name] = value
    return out


def decode_household(data: bytes | str, *, prices_required: bool = True) -> Household:
    """The Household of a `household/v1` text; raises ValidationError listing every problem."""
    try:
        raw = _fields(_DECODER.decode(data))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return parse_household(loads(data), prices_required=prices_required)
    if "accounts" in raw:
        raw["accounts"] = [_fields(account) for account in raw["accounts"]]
    try:
        return parse_household(raw, prices_required=prices_required)
    except ValidationError:
        return parse_household(loads(data), prices_required=prices_required)
