"""The number reader behind every field: the contract's range, whatever the value's type."""

from __future__ import annotations

import math
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.reader import MAX_ABS, Reader, show_number

VALUES = st.one_of(
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**63, 2**64, 10**400, -(10**400), 10**12, 10**12 + 1, 0, -0.0]),
    st.floats(),
    st.floats(-2e12, 2e12),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
BOUNDS = st.none() | st.sampled_from([0.0, 1e-6, 1.0, 1000.0, -5.0])


def in_range(value: Any, lo: float | None, lo_open: float | None, hi: float | None) -> bool:
    """The contract's rule, written out plainly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if abs(value) > MAX_ABS:
        return False
    number = float(value)
    return (
        (lo is None or number >= lo)
        and (lo_open is None or number > lo_open)
        and (hi is None or number <= hi)
    )


@given(value=VALUES, lo=BOUNDS, lo_open=BOUNDS, hi=BOUNDS)
def test_a_number_is_accepted_exactly_when_it_is_in_range(
    value: Any, lo: float | None, lo_open: float | None, hi: float | None
) -> None:
    r = Reader()
    out = r.check_number(value, "x", minimum=lo, exclusive_minimum=lo_open, maximum=hi)
    expected = in_range(value, lo, lo_open, hi)
    assert (not r.issues) == expected, (value, r.issues)
    assert all(i.path == "x" for i in r.issues)
    if expected:
        assert out == float(value) and type(out) is float


@given(value=VALUES)
def test_without_a_limit_only_finite_numbers_pass_and_nothing_raises(value: Any) -> None:
    r = Reader(limit=None)
    r.check_number(value, "y", "z")
    number_like = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, float):
        finite = math.isfinite(value)
    else:  # an int: as far as a double reaches
        finite = number_like and abs(value) <= sys.float_info.max
    assert (not r.issues) == finite
    assert all(i.path == "y.z" for i in r.issues)


def test_bounds_are_shown_as_people_write_them() -> None:
    assert [show_number(x) for x in (1e12, 1e-6, 0.5, 1000.0, 10_000.0)] == [
        "1e12",
        "1e-6",
        "0.5",
        "1000",
        "10000",
    ]
