"""Key-order determinism (CONTRACT.md section 5): "Every answer is the same for the same snapshot
whatever the order of its JSON object keys."

Real snapshots (the saved scenarios, the README's example, the contract's example) have the keys
of every JSON object shuffled (the top level, `securities`, `target`, `buy_list`, `location`,
`options`, `bands` and its `overrides`, each account and lot, `exposures`); arrays keep their order,
since the order of accounts, lots and buy-list entries means something. The solver's answer must
come out byte for byte the same (its `solve_ms` aside, a measurement).
"""

from __future__ import annotations

import json
import random
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import dumps, parse_household, result_to_json
from solver import solve

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import REPRODUCIBLE, households

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = sorted(
    [
        *(ROOT / "tests" / "data" / "scenarios").glob("*.json"),
        ROOT / "examples" / "household.json",
        ROOT / "tests" / "data" / "contract_examples" / "household.v1.json",
    ]
)
#: Generous: these households solve in milliseconds, so the limit never decides an answer.
TIME_LIMIT_S = 30.0


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with the keys of every object in a random order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def answer(raw: Any) -> bytes:
    """The wire answer of `umh solve` for a decoded snapshot, without the timing."""
    body = result_to_json(solve(parse_household(raw), time_limit_s=TIME_LIMIT_S))
    body.pop("solve_ms")
    return dumps(body)


@cache
def reference(path: Path) -> tuple[dict[str, Any], bytes]:
    raw: dict[str, Any] = json.loads(path.read_text())
    return raw, answer(raw)


def test_the_snapshots_are_real_households() -> None:
    """The property below would prove nothing on snapshots that never get past validation."""
    assert len(SNAPSHOTS) >= 5
    several = 0
    for path in SNAPSHOTS:
        raw, encoded = reference(path)
        body = json.loads(encoded)
        assert body["status"] not in ("invalid_input", "solver_error"), path.name
        several += len(raw["securities"]) >= 2 and len(raw["target"]) >= 2
    assert several >= 5


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_key_order(path: Path, rng: random.Random) -> None:
    raw, expected = reference(path)
    reordered = shuffled(raw, rng)
    assert answer(reordered) == expected


@settings(REPRODUCIBLE, max_examples=40)
@given(raw=households(), rng=st.randoms(use_true_random=False))
def test_generated_households_answer_the_same_in_any_key_order(
    raw: dict[str, Any], rng: random.Random
) -> None:
    """The same on random households (2-12 securities, up to 5 classes, look-through funds)."""
    assert answer(shuffled(raw, rng)) == answer(raw)


def test_shuffling_really_reorders_keys() -> None:
    """A guard on the test itself: the shuffle changes the order of the maps that matter."""
    raw = reference(ROOT / "examples" / "household.json")[0]
    orders = {tuple(shuffled(raw, random.Random(seed))["securities"]) for seed in range(20)}
    assert len(orders) > 1
