"""`umh backtest` end to end on a tiny book: the outputs exist and the summary is complete."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np

from streams.cli import main
from streams.tools.backtest.prices import business_days, simulate_paths
from streams.tools.backtest.report import FIELDS
from streams.tools.backtest.strategies import STRATEGIES
from streams.tools.synthetic import make_universe


def _check_outputs(out: Path) -> dict:  # type: ignore[type-arg]
    for name in ("summary.json", "report.md", "taxes.png", "wealth.png", "drift.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["strategies"]) == {s.name for s in STRATEGIES}
    for name, fields in summary["strategies"].items():
        missing = [f for f in FIELDS if f not in fields]
        assert not missing, (name, missing)
    assert summary["strategies"]["per_account"]["tax_alpha_bps_per_year"] == 0.0
    for name, s in summary["strategies"].items():
        if name.startswith(("household", "guardrail")):
            assert s["hard_rule_violations"] == 0, name
            assert s["wash_sale_violations"] == 0, name
    assert set(summary["attribution"]["liquidation"]) == {
        "harvesting",
        "location",
        "deferral",
        "lot_relief",
        "total",
    }
    report = (out / "report.md").read_text()
    assert "| household |" in report and "drift.png" in report
    return summary  # type: ignore[no-any-return]


def test_backtest_command_writes_a_complete_summary(tmp_path: Path) -> None:
    out = tmp_path / "bt"
    code = main(
        [
            "backtest",
            "--households",
            "3",
            "--years",
            "1",
            "--seed",
            "3",
            "--out",
            str(out),
            "--jobs",
            "1",
        ]
    )
    assert code == 0
    summary = _check_outputs(out)
    assert summary["parameters"]["households"] == 3


def test_backtest_reads_prices_from_a_csv(tmp_path: Path) -> None:
    # the universe the command builds for --symbols 12 and its seed's first draw does not
    # matter here: every catalogue symbol a small universe can hold gets a price
    rng = np.random.default_rng(0)
    universe = make_universe(12, rng)
    days = business_days(date(2025, 1, 2), 1)[:80]
    paths = simulate_paths(universe, days, rng)
    path = tmp_path / "prices.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "symbol", "price"])
        for t, d in enumerate(paths.days):
            for j, s in enumerate(paths.symbols):
                w.writerow([d.isoformat(), s, f"{paths.price[t, j]:.4f}"])
    out = tmp_path / "bt-csv"
    code = main(
        [
            "backtest",
            "--households",
            "2",
            "--years",
            "1",
            "--symbols",
            "12",
            "--prices",
            str(path),
            "--out",
            str(out),
            "--jobs",
            "1",
        ]
    )
    assert code == 0
    summary = _check_outputs(out)
    assert summary["period"]["first_day"] == "2025-01-02"
    assert summary["period"]["business_days"] == 80
