"""The LNN showcase benchmarks (benchmarks.lnn_*) run end to end at --quick size, and the parts
with physics in them are right: the charged particle's circle, the chain's comparison."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import chain_pendulums, lnn_charged_particle, lnn_double_pendulum, lnn_relativistic
from tests.helpers import ROOT


def _rows(out: Path) -> list[dict]:
    return json.loads(out.with_suffix(".json").read_text())["rows"]


@pytest.mark.slow
def test_double_pendulum_quick(tmp_path, capsys):
    out = tmp_path / "dp.md"
    assert lnn_double_pendulum.main(["--quick", "--out", str(out), "--figures", str(tmp_path / "fig")]) == 0
    rows = _rows(out)
    assert [(r["label"], r["data"]) for r in rows] == [
        ("LNN", "states"), ("LNN", "trajectories"), ("MLP (qdd)", "states"), ("DeLaN", "states"),
        ("HNN (canonical p)", "states"),
    ]  # fmt: skip
    for r in rows:
        assert r["steps"] > 0
    for name in ("energy", "time_to_accuracy"):
        assert (tmp_path / "fig" / f"double_pendulum_{name}.png").stat().st_size > 0
    assert "energy error (mean)" in capsys.readouterr().out


@pytest.mark.slow
def test_relativistic_quick(tmp_path):
    out = tmp_path / "rel.md"
    assert lnn_relativistic.main(["--quick", "--out", str(out)]) == 0
    fed = [r["coordinates"] for r in _rows(out)]
    assert fed == ["(q, qd)", "(q, p = qd)", "(q, p canonical)"]


@pytest.mark.slow
def test_charged_particle_quick(tmp_path):
    out = tmp_path / "charged.md"
    assert lnn_charged_particle.main(["--quick", "--out", str(out)]) == 0
    assert [r["label"] for r in _rows(out)] == ["LNN", "DeLaN", "MLP (qdd)"]


@pytest.mark.slow
def test_chain_pendulums_quick(tmp_path, capsys):
    out = tmp_path / "chain.md"
    assert chain_pendulums.main(["--quick", "--links", "2", "--models", "DeLaN,CLNN", "--out", str(out)]) == 0
    rows = _rows(out)
    assert [(r["links"], r["label"]) for r in rows] == [(2, chain_pendulums.MOVED), (2, "DeLaN"), (2, "CLNN")]
    assert all(0 < r["finzi_error"] < 1 and 0 < r["finzi_error_long"] < 1 for r in rows)
    assert rows[0]["finzi_error"] < 1e-3 < min(r["finzi_error"] for r in rows[1:])  # 2 s of training
    assert "| 2 |" in capsys.readouterr().out


def test_the_chain_is_finzis_and_his_score_is_zero_for_the_truth_only():
    from lagrax.analysis.prediction import predict

    truth = chain_pendulums.chain(3)
    state = np.random.RandomState(0)
    draws = [0.6 + 0.8 * state.rand() for _ in range(6)]
    assert truth.masses == pytest.approx(draws[2::-1]) and truth.lengths == pytest.approx(draws[:2:-1])
    lengths = np.asarray(truth.lengths)
    q0, qd0 = chain_pendulums.finzi_states(lengths, 5, np.random.default_rng(0))
    z = chain_pendulums.cartesian(lengths, q0, qd0)  # (5, 2, 3, 2): the rods keep their lengths
    rods = np.linalg.norm(np.diff(z[:, 0], axis=1, prepend=0.0), axis=-1)
    np.testing.assert_allclose(rods, np.broadcast_to(lengths, rods.shape), rtol=1e-12)
    ts = np.arange(20) * 0.03
    ref = predict(truth, q0, qd0, ts, rtol=1e-10, atol=1e-10)
    assert chain_pendulums.finzi_error(lengths, ref, ref) < 1e-200
    off = predict(truth, q0 + 1e-3, qd0, ts, rtol=1e-10, atol=1e-10)
    assert 1e-5 < chain_pendulums.finzi_error(lengths, off, ref) < 1e-2
    # over fewer steps the growing error is smaller, and one step is the first error alone
    assert chain_pendulums.finzi_error(lengths, off, ref, 5) < chain_pendulums.finzi_error(lengths, off, ref)
    a, b = (chain_pendulums.cartesian(lengths, p.q[:, 1], p.qd[:, 1]) for p in (off, ref))
    first = np.linalg.norm((a - b).reshape(5, -1), axis=1) / np.linalg.norm((a + b).reshape(5, -1), axis=1)
    assert chain_pendulums.finzi_error(lengths, off, ref, 2) == pytest.approx(np.exp(np.mean(np.log(first))))


def test_the_chaos_reference_moves_states_by_finzis_amount_and_keeps_them_on_the_chain():
    truth = chain_pendulums.chain(2)
    lengths = np.asarray(truth.lengths)
    rng = np.random.default_rng(1)
    q0, qd0 = chain_pendulums.finzi_states(lengths, 50, rng)
    q1, qd1 = chain_pendulums.perturbed(lengths, q0, qd0, rng)
    a, b = chain_pendulums.cartesian(lengths, q0, qd0), chain_pendulums.cartesian(lengths, q1, qd1)
    moved = np.linalg.norm((a - b).reshape(50, -1), axis=1)
    assert 1e-4 < np.median(moved) < 2.8e-4  # 1e-4 in each of 8 coordinates, half projected away
    # back in angles, the states differ by no more than a few times the perturbation
    assert np.max(np.abs(np.angle(np.exp(1j * (q1 - q0))))) < 5e-3


def test_the_orbit_error_of_the_exact_circle_is_zero_and_of_a_drift_is_not():
    import lagrax
    from lagrax.systems.rollout import simulate

    q0, qd0 = np.array([[0.3, -0.2], [1.0, 0.5]]), np.array([[0.4, 0.1], [-0.3, 0.8]])
    r = simulate(lagrax.system("charged_particle"), q0, qd0, np.linspace(0, 7, 50), rtol=1e-10, atol=1e-10)
    assert lnn_charged_particle.orbit_error(np.asarray(r.q), q0, qd0) < 1e-7
    drift = np.asarray(r.q) + np.linspace(0, 0.1, 50)[None, :, None]
    assert lnn_charged_particle.orbit_error(drift, q0, qd0) > 0.05


def test_the_chain_table_compares_with_finzi():
    rows = [
        dict(links=1, label=chain_pendulums.MOVED, finzi_error=1e-5, finzi_error_long=1e-4),
        dict(links=1, label="DeLaN", finzi_error=1e-4, finzi_error_long=1e-3),
        dict(links=1, label="CLNN", finzi_error=4e-5, finzi_error_long=4e-4),
        dict(links=5, label="DeLaN", finzi_error=0.5, finzi_error_long=0.7),
        dict(links=5, label="CLNN", finzi_error=0.2, finzi_error_long=0.6),
    ]
    lines = chain_pendulums.table(rows).splitlines()
    assert lines[2].startswith("| 1 | 1.00e-05 | 3.60e-05 | 1.00e-04 | - | 4.00e-05 |")
    assert lines[2].endswith("| yes | yes |")  # 4e-5 < 5.2e-5 and 1e-4 < 2.5e-4
    assert lines[3].startswith("| 5 | - | 1.40e-04 |") and lines[3].endswith("| no | no |")  # 0.2 > 9.3e-4
    long = chain_pendulums.long_table(rows).splitlines()
    assert long[1] == "|---|---|---|---|---|"
    assert long[2] == "| 1 | 1.00e-04 | 1.00e-03 | - | 4.00e-04 |"


def test_an_existing_output_is_refused_before_any_work(tmp_path):
    from lagrax.core.errors import FileExistsLagraxError

    out = tmp_path / "x.md"
    out.write_text("mine")
    with pytest.raises(FileExistsLagraxError):
        lnn_charged_particle.main(["--quick", "--out", str(out)])
    assert out.read_text() == "mine"


@pytest.mark.slow
def test_robot_control_quick(tmp_path):
    """On a 2-DoF arm (the benchmark is the same for any arm), in its own process: XLA's
    compilation of a 7-DoF online loop recurses deeply, and in a pytest-xdist worker it
    crashed (a segfault) where the main thread of a plain process compiles it fine."""
    import subprocess

    out = tmp_path / "control.md"
    figures = tmp_path / "fig"
    args = ["--quick", "--robots", "twodof", "--out", str(out), "--figures", str(figures)]
    root = ROOT
    cmd = [sys.executable, "-m", "benchmarks.robot_control", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r.get("row") or r.get("run"): r for r in _rows(out)}
    assert rows["analytic"]["rmse"] < rows["pd"]["rmse"]
    assert {"new DeLaN, online", "offline DeLaN+friction, payload, online"} <= set(rows)
    assert (figures / "control_online_twodof.png").exists()
    assert (figures / "control_twodof-tracking.png").exists()
    assert "One online update" in done.stdout
