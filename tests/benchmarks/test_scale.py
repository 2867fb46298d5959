"""benchmarks/scale.py --quick runs end to end from a checkout (its own process, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.helpers import ROOT


@pytest.mark.slow
def test_scale_benchmark_quick(tmp_path):
    out = tmp_path / "scale.md"
    # (the ensemble, devices and sweep paths have their own tests; this is the script around them)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--quick", "--only", "stream"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "## stream" in text and "peak memory [MB]" in text
    record = json.loads(out.with_suffix(".json").read_text())
    stream = record["stream"]
    assert stream["samples"] == 20_000 and stream["steps"] > 0 and stream["peak_mb"] < 2000
    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites without --force
