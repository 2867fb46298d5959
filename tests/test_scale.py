"""benchmarks/scale.py --quick runs end to end from a checkout (its own process, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_scale_benchmark_quick(tmp_path):
    out = tmp_path / "scale.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--quick", "--only", "ensemble,stream"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "2 seeds as one ensemble" in text and "peak memory [MB]" in text
    record = json.loads(out.with_suffix(".json").read_text())
    ens = record["ensemble"]
    alone, members = ens["test_torque_mse_alone"], ens["test_torque_mse_members"]
    assert len(members) == 2
    for a, m in zip(alone, members):  # float32 members equal their seeds alone up to rounding
        assert abs(a - m) <= 0.05 * a
    stream = record["stream"]
    assert stream["samples"] == 20_000 and stream["steps"] > 0 and stream["peak_mb"] < 2000
    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites without --force
