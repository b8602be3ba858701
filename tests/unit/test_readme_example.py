"""The README's `umh solve examples/household.json` output is what the command prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_example_runs_as_shown() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Solve one household") :]
    start = section.index("```json") + len("```json")
    shown = json.loads(section[start : section.index("```", start)])
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "solve", "examples/household.json"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0
    printed = json.loads(run.stdout)
    shown.pop("solve_ms")
    printed.pop("solve_ms")
    assert printed == shown
