"""Field readers that collect every validation issue with its JSON path instead of stopping."""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, date, datetime
from typing import Any, TypeGuard

from .errors import Issue, ValidationError

_MISSING = object()

#: The contract's range of every input number (section 1 "Ranges"): finite and at most this in
#: absolute value; integers count as numbers of that range (2**64 is out of it).
MAX_ABS = 1e12
#: The smallest price the contract accepts.
MIN_PRICE = 1e-6
_FLOAT_MAX = sys.float_info.max
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def join(path: str, key: str | int) -> str:
    """`accounts` + 1 -> `accounts[1]`; `accounts[1]` + `cash` -> `accounts[1].cash`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Reader:
    """Reads typed fields out of decoded JSON, recording an Issue for each bad one.

    Each getter returns a usable fallback after recording a problem, so that one pass over a
    message finds every problem; `raise_if_any` then fails with all of them at once.
    """

    def __init__(self, *, limit: float | None = MAX_ABS) -> None:
        """`limit`: the magnitude every number must stay within (None: finite is enough, for
        output messages such as rebalance/v1, whose values are products of input numbers)."""
        self.issues: list[Issue] = []
        self.limit = limit
        # Dates already read in this message (a household's lots share few distinct days).
        self._days: dict[str, date] = {}

    def fail(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def raise_if_any(self) -> None:
        if self.issues:
            raise ValidationError(self.issues)

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return {}
        return value

    def field(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> Any:
        value = obj.get(key, _MISSING)
        if value is _MISSING or (value is None and required):
            if required:
                self.fail(join(path, key), "is required")
            return _MISSING
        return value

    def string(self, obj: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = self.field(obj, key, path, required=default is None)
        if value is _MISSING or value is None:
            return default or ""
        if not isinstance(value, str) or not value:
            self.fail(join(path, key), "must be a non-empty string")
            return default or ""
        return value

    def choice(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        options: tuple[str, ...],
        default: str | None,
    ) -> str:
        value = self.string(obj, key, path, default)
        if value and value not in options:
            self.fail(join(path, key), f"must be one of {', '.join(options)} (got {value!r})")
            return default or options[0]
        return value or (default or options[0])

    def number(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
        maximum: float | None = None,
        nullable: bool = False,
    ) -> float | None:
        value = obj.get(key, _MISSING)
        if value is None and nullable:
            return None
        if value is _MISSING or value is None:
            if default is None and not nullable:
                self.fail(join(path, key), "is required")
                return 0.0
            return default
        return self.check_number(
            value,
            path,
            key,
            minimum=minimum,
            exclusive_minimum=exclusive_minimum,
            maximum=maximum,
        )

    def check_number(
        self,
        value: Any,
        path: str,
        key: str | int | None = None,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """`value` as a float within the bounds and the magnitude limit, else an issue at
        `path` (joined with `key` when given: the path is only built for a problem)."""
        if (  # the common case, checked without building the path
            self.plain_number(value)
            and (minimum is None or value >= minimum)
            and (exclusive_minimum is None or value > exclusive_minimum)
            and (maximum is None or value <= maximum)
        ):
            return float(value)
        return self._number_issues(
            value,
            path if key is None else join(path, key),
            minimum=minimum,
            exclusive_minimum=exclusive_minimum,
            maximum=maximum,
        )

    def _number_issues(
        self,
        value: Any,
        path: str,
        *,
        minimum: float | None,
        exclusive_minimum: float | None,
        maximum: float | None,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "must be a number")
            return 0.0
        # An int is compared as an int: float() of a huge one (10**400) would overflow.
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(path, "must be finite")
            return 0.0
        if self.limit is not None and abs(value) > self.limit:
            self.fail(path, f"must be at most {show_number(self.limit)} in absolute value")
            return 0.0
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.fail(path, "must be finite")
            return 0.0
        if minimum is not None and number < minimum:
            self.fail(path, f"must be >= {show_number(minimum)}")
        if exclusive_minimum is not None and number <= exclusive_minimum:
            self.fail(path, f"must be > {show_number(exclusive_minimum)}")
        if maximum is not None and number > maximum:
            self.fail(path, f"must be <= {show_number(maximum)}")
        return number

    def real(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        default: float | None = None,
        **bounds: float,
    ) -> float:
        value = self.number(obj, key, path, default, **bounds)  # type: ignore[arg-type]
        return 0.0 if value is None else value

    def integer(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        default: int,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> int:
        """A whole number (30 or 30.0), within the bounds and the common magnitude limit."""
        value = obj.get(key)
        if value is None:
            return default
        before = len(self.issues)
        number = self.check_number(value, path, key, minimum=minimum, maximum=maximum)
        if len(self.issues) > before:
            return default
        if not float(number).is_integer():
            self.fail(join(path, key), "must be a whole number")
            return default
        return int(number)

    def boolean(self, obj: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(join(path, key), "must be true or false")
            return default
        return value

    def day(self, obj: dict[str, Any], key: str, path: str) -> date:
        value = self.field(obj, key, path, required=True)
        if value is _MISSING:
            return date.min
        return self.check_day(value, path, key)

    def check_day(self, value: Any, path: str, key: str | None = None) -> date:
        day = self.valid_day(value)
        if day is None:
            self.fail(path if key is None else join(path, key), "must be a date YYYY-MM-DD")
            return date.min
        return day

    def valid_day(self, value: Any) -> date | None:
        """`value` as a date when it is exactly YYYY-MM-DD and a real day, else None (no issue
        recorded). fromisoformat alone also takes "20261124" and "2026-W48-1", and a prefix
        match took "2026-11-24junk"."""
        if not isinstance(value, str):
            return None
        day = self._days.get(value)
        if day is None and _DAY.fullmatch(value):
            try:
                day = self._days[value] = date.fromisoformat(value)
            except ValueError:
                return None
        return day

    def plain_number(self, value: Any) -> TypeGuard[float]:
        """Whether `value` is a number within the magnitude limit (a float or an int, not a
        bool), the test `check_number` passes before its bounds."""
        kind = type(value)
        if kind is not float and kind is not int:
            return False
        limit = _FLOAT_MAX if self.limit is None else self.limit
        # The range test also keeps float() of an int from overflowing; NaN and the infinities
        # fail `value - value == 0.0`.
        return -limit <= value <= limit and (kind is int or value - value == 0.0)

    def timestamp(self, obj: dict[str, Any], key: str, path: str) -> datetime:
        value = self.field(obj, key, path, required=True)
        if value is _MISSING:
            return datetime.min.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return parsed.astimezone(UTC)
            except ValueError:
                pass
        self.fail(join(path, key), "must be an ISO-8601 timestamp (2026-11-24T15:30:00Z)")
        return datetime.min.replace(tzinfo=UTC)

    def array(
        self, obj: dict[str, Any], key: str, path: str, *, required: bool = False
    ) -> list[Any]:
        value = self.field(obj, key, path, required=required)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.fail(join(path, key), "must be an array")
            return []
        return value

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(path, "must be an array of strings")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item:
                out.append(item)
            else:
                self.fail(join(path, i), "must be a non-empty string")
        return tuple(out)

    def schema(self, obj: dict[str, Any], name: str) -> None:
        value = obj.get("schema")
        if value is not None and value != f"{name}/v1":
            self.fail("schema", f"must be {name}/v1 (got {value!r})")


def show_number(value: float) -> str:
    """A bound as people write it: 1e12, 1e-6, 0.5, 1000."""
    text = f"{value:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def format_day(value: date) -> str:
    return value.isoformat()


def format_timestamp(value: datetime) -> str:
    """UTC with Z; milliseconds when the time has them, microseconds only when needed (lossless)."""
    micros = value.microsecond
    if not micros:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    # isoformat, not strftime: %Y does not pad years before 1000 on every platform.
    utc = value.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    return utc.isoformat() + fraction + "Z"
