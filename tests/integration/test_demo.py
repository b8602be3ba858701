"""`umh demo` end to end: broker, worker and simulators; clean exit, no stray processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.kafka.broker import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _demo(*extra: str) -> tuple[list[str], int, int]:
    port, web_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "streams.cli", "demo", "--households", "50",
        "--port", str(port), "--web-port", str(web_port), *extra,
    ]  # fmt: skip
    return cmd, port, web_port


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (the broker's listener names its port)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _alive(int(proc.name)):
            out.append(int(proc.name))
    return out


def _assert_no_strays(output: str, port: int) -> None:
    match = re.search(r"worker pid (\d+)", output)
    assert match, output
    worker_pid = int(match.group(1))
    deadline = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker_pid), "the worker outlived the demo"
    assert _processes_mentioning(f"tcp://127.0.0.1:{port}") == [], "the broker outlived the demo"


def _assert_summary(output: str) -> None:
    assert "umh demo summary" in output, output
    for line in ("orders", "fills", "rebalances", "alerts by action", "dead letters"):
        assert re.search(rf"^\s+{line}\s", output, re.M), (line, output)
    assert "operations console at http://127.0.0.1:" in output


def test_demo_runs_and_cleans_up():
    cmd, port, _ = _demo("--seconds", "20")
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    _assert_summary(output)
    assert re.search(r"\[\s+\d+s\] ticks/s", output), output  # live progress lines
    assert "price ticks" in output
    _assert_no_strays(output, port)


def test_demo_stops_cleanly_on_ctrl_c():
    cmd, port, _ = _demo("--seconds", "300")
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if re.search(r"\[\s+3s\] ticks/s", line):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    _assert_summary(output)
    _assert_no_strays(output, port)
