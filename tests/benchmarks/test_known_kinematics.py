"""The known-kinematics benchmark (benchmarks.known_kinematics) runs end to end at --quick
size on the two-link arm: it identifies the exact class and a wrong file back to rounding,
and writes its tables, numbers and figure with no NaN. (The cases outside the class,
``--outside``, train hybrid and DeLaN models: tests/models/test_hybrid_and_identification.py
covers them, and they are left out here to keep the suite's time.)"""

from __future__ import annotations

import json

import pytest

from benchmarks import known_kinematics

pytest.importorskip("pinocchio")


def test_the_quick_run_identifies_and_writes_every_output(tmp_path, capsys):
    out = tmp_path / "kk.md"
    assert (
        known_kinematics.main(
            ["--quick", "--outside", "", "--out", str(out), "--figures", str(tmp_path / "fig")]
        )
        == 0
    )
    text = out.with_suffix(".json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    result = json.loads(text)["rows"][0]
    (exact,), (wrong,) = result["exact"], result["wrong"]
    assert exact["arm"] == "twodof" and max(exact["tau_held"], exact["tau_fast"]) <= 1e-8
    assert exact["base_error"] <= 1e-4
    assert wrong["nominal"] > 1e-4 and wrong["wrong_tau_held"] <= 1e-8  # the file was wrong, and fixed
    assert result["outside"] == []
    assert (tmp_path / "fig" / "known_kinematics.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| twodof | 2 |" in printed and "Missed targets:" in printed
