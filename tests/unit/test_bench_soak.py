"""The soak's report fits its slopes to the steady state, not to memories filling by design."""

from __future__ import annotations

import pytest

from streams.tools.bench_soak import warm_up_s
from streams.worker.state import ID_MEMORY_DAYS


def test_the_warm_up_covers_the_day_bound_memories() -> None:
    # 30 minutes at one event day per 20 s: the fill and flow ids fill for 40 days = 800 s.
    assert warm_up_s(1800.0, 20.0) == pytest.approx(ID_MEMORY_DAYS * 20.0)


def test_a_short_run_keeps_half_its_samples() -> None:
    assert warm_up_s(300.0, 20.0) == pytest.approx(150.0)


def test_a_fast_event_clock_keeps_a_fifth_of_the_run_out() -> None:
    assert warm_up_s(1800.0, 1.0) == pytest.approx(360.0)
