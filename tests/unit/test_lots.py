"""The holding period: one split day per sale date, agreeing with the anniversary rule."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from solver.lots import is_long_term, last_long_term_day

DAYS = st.dates(min_value=date(1, 1, 1), max_value=date(9998, 12, 31))


@given(sold=DAYS, back=st.integers(0, 800))
def test_a_lot_is_long_term_exactly_when_acquired_by_the_split_day(sold: date, back: int) -> None:
    acquired = sold - timedelta(days=back) if back < (sold - date.min).days else date.min
    split = last_long_term_day(sold)
    expected = is_long_term(acquired, sold)
    assert (split is not None and acquired <= split) == expected


def test_leap_days_split_where_the_anniversary_rule_says() -> None:
    # Bought 29 February 2024: the anniversary is 1 March 2025, long-term from 2 March.
    assert last_long_term_day(date(2025, 3, 1)) == date(2024, 2, 28)
    assert last_long_term_day(date(2025, 3, 2)) == date(2024, 3, 1)
    assert last_long_term_day(date(1, 6, 1)) is None
