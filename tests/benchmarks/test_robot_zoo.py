"""The robot zoo benchmark (benchmarks.robot_zoo) runs end to end at --quick size on one
URDF arm and writes its table, per-joint errors, verdicts and figure, with no NaN anywhere.
(The per-arm code is the same for every arm; MJCF plants in the tracking loop are covered
by tests/control/test_control.py, so the quick run keeps one arm to save the suite's time.)"""

from __future__ import annotations

import json

import pytest

from benchmarks import arms, robot_zoo


@pytest.mark.slow
def test_the_zoo_runs_on_two_arms_and_writes_every_output(tmp_path, capsys):
    out = tmp_path / "zoo.md"
    assert robot_zoo.main(["--quick", "--out", str(out), "--figures", str(tmp_path / "fig")]) == 0
    text = out.with_suffix(".json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rows = json.loads(text)["rows"]
    assert [r["arm"] for r in rows] == list(robot_zoo.QUICK_ZOO)
    for row in rows:
        assert len(row["delan"]["tau_held_joints"]) == row["dof"] == 2
        assert set(row["targets"]) == set(robot_zoo.verdicts(_tuple_keys(row)))
        rmse = row["tracking"]["rmse"]
        assert rmse["analytic | computed-torque"] < rmse["pd | computed-torque"]  # the truth beats PD
        windows = row["online"]["windows"]
        assert len(windows["delan (new) online"]) == 6
    assert (tmp_path / "fig" / "robot_zoo.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| twodof | 2 |" in printed and "Missed targets:" in printed
    assert "held-out torque nMSE per joint" in out.read_text()


def _tuple_keys(row: dict) -> dict:
    back = dict(row)
    back["tracking"] = dict(
        row["tracking"], rmse={tuple(k.split(" | ")): v for k, v in row["tracking"]["rmse"].items()}
    )
    return back


def test_every_arm_without_a_preset_gets_friction_and_armature_from_its_torque_limits():
    import numpy as np

    truth = arms.arm("twodof")
    limits = np.asarray(truth.info.torque_limits)
    params = dict(truth.info.params)
    np.testing.assert_allclose(params["coulomb"], 0.005 * limits)
    np.testing.assert_allclose(params["damping"], 0.001 * limits)
    np.testing.assert_allclose(params["armature"], 0.005 * limits)
    with pytest.raises(SystemExit, match="unknown arm 'nope'"):
        arms.arm("nope")
