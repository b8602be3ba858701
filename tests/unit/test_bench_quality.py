"""`umh bench quality` runs end to end on a few tiny households and reports every answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.cli import main


def test_bench_quality_reports_every_household(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "quality", "--households", "6", "--size", "tiny", "--processes", "1"]
    code = main([*args, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    mix = re.search(r"status mix: (.*)", out)
    assert mix is not None
    assert sum(int(n) for n in re.findall(r" (\d+)", " " + mix.group(1))) == 6
    assert "false band_unreachable (reference MIP reaches the bands): 0" in out
    assert "solver_error: 0" in out
