"""``lagrax rollout``: ground truths and trained models from initial states, compared with the
truth: what it writes, the physics of what it writes, and its errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from tests.helpers import assert_clean_error

import lagrax
from lagrax.models.io import save_model
from lagrax.analysis.prediction import parse_initial_states, predict
from lagrax.core.errors import ShapeError

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


def _load(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("metadata")))


@pytest.mark.slow
def test_a_ground_truth_rollout_conserves_its_energy_and_writes_every_output(cli, tmp_path):
    out = tmp_path / "dp.npz"
    code, text, err = cli(
        "rollout", "--system", "double_pendulum", "--random", "3", "--duration", "4", "--dt", "0.05",
        "--out", out, "--gif",
    )  # fmt: skip
    assert code == 0, err
    arrays, meta = _load(out)
    assert arrays["double_pendulum_q"].shape == (3, 81, 2) and arrays["t"][-1] == pytest.approx(4.0)
    energy = arrays["double_pendulum_energy"]
    assert np.max(np.abs(energy - energy[:, :1])) < 1e-6 * np.max(np.abs(energy))
    for suffix in (".json", "-energy.png", "-positions.png", ".gif"):
        assert (tmp_path / f"dp{suffix}").stat().st_size > 0, suffix
    assert meta["names"] == ["double_pendulum"] and not meta["failures"]


def test_given_initial_states_are_used_as_given(cli, tmp_path):
    out = tmp_path / "p.npz"
    code, _, err = cli(
        "rollout", "--system", "pendulum", "--initial-states", "0.5,0; -0.2,1", "--duration", "1",
        "--dt", "0.5", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    q = _load(out)[0]["pendulum_q"]
    np.testing.assert_allclose(q[:, 0, 0], [0.5, -0.2])


@pytest.mark.slow
def test_the_truth_replays_recorded_driven_data(cli, tmp_path):
    """From a dataset: its first states, driven by its torques; the generating system
    reproduces the recorded motion."""
    from lagrax.data.dataset import save_dataset
    from lagrax.data.generators import generate

    system = lagrax.system("two_link_arm")
    ds = generate(system, kind="excitation", trajectories=2, duration=1.0, dt=0.01, seed=3)
    save_dataset(ds, tmp_path / "arm.npz")
    errors = []
    for g in ("3.0", "4.0"):  # the generating gravity, then a wrong one
        out = tmp_path / f"r{g}.npz"
        code, _, err = cli(
            "rollout",
            "--system",
            "two_link_arm",
            "-p",
            f"g={g}",
            "--data",
            tmp_path / "arm.npz",
            "--out",
            out,
        )
        assert code == 0, err
        metrics = json.loads(out.with_suffix(".json").read_text())["two_link_arm"]
        assert "energy_error" not in metrics  # driven motion: energy is not conserved
        errors.append(metrics["rollout_error"])
    # (the torques are interpolated linearly between samples: small errors, not zero)
    assert errors[0] < 1e-2 and errors[1] > 5 * errors[0]


@pytest.mark.slow
def test_a_trained_model_is_compared_with_the_truth_of_its_data(cli, tiny_run, tmp_path):
    """The shared trained run (a DeLaN on double-pendulum data) against the double pendulum
    (the states and times of the ground-truth rollout above: its compiled rollout serves)."""
    out = tmp_path / "r.npz"
    argv = ["--random", "3", "--duration", "4", "--dt", "0.05", "--out", out]
    code, text, err = cli("rollout", tiny_run[1], *argv)
    assert code == 0, err
    arrays, meta = _load(out)
    assert meta["names"] == ["truth", "delan"]
    metrics = meta["metrics"]["delan"]
    assert set(metrics) == {"rollout_error", "valid_prediction_time", "energy_error"}
    assert metrics["rollout_error"] > 0 and metrics["energy_error"] > 0
    np.testing.assert_allclose(arrays["truth_q"][:, 0], arrays["delan_q"][:, 0])  # same starts


@pytest.mark.slow
def test_a_failing_rollout_keeps_the_part_computed_so_far(cli, tmp_path):
    """An untrained LNN whose Hessian is indefinite: exit 2 naming the time and state, and
    the .npz still holds the states up to the stop (NaN after it)."""
    info = lagrax.system("double_pendulum").info  # the paper's plain network: no free-particle start
    model = lagrax.make_model("lnn", info, key=jax.random.PRNGKey(0), free_particle=0.0)
    model = model.with_data_statistics(np.zeros((4, 2)), np.full((4, 2), 30.0))
    save_model(model, tmp_path / "run")
    out = tmp_path / "r.npz"
    code, _, err = cli(
        "rollout", tmp_path / "run", "--system", "double_pendulum", "--initial-states", "3,3,8,-8",
        "--duration", "20", "--dt", "0.1", "--out", out,
    )  # fmt: skip
    pred = predict(model, np.array([[3.0, 3.0]]), np.array([[8.0, -8.0]]), np.linspace(0, 20, 201))
    if pred.failure is None:
        pytest.skip("this untrained network happens not to fail; the rollout tests cover the stop")
    assert_clean_error(code, err, "stopped early", "at t =", "the part computed so far is in")
    arrays, meta = _load(out)
    q = arrays["lnn_q"][0, :, 0]
    assert np.isfinite(q[0]) and np.isnan(q[-1]) and meta["failures"]["lnn"]


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--random", "2"], ["give a run directory", "--system"]),
        (["--system", "pendulum", "--initial-states", "1,2,3"], ["needs 2 numbers"]),
        (["--system", "pendulum", "--initial-states", "a,b"], ["must be numbers"]),
        (["--system", "pendulum", "--dt", "0"], ["dt"]),
        (["--system", "two_link_arm", "--gif"], ["--gif draws pendulums"]),
        (["--system", "nope"], ["unknown system"]),
        (["--system", "pendulum", "--solver", "rk4"], ["no error estimate"]),
    ],
)
def test_bad_requests_get_one_clean_error(cli, tmp_path, argv, fragments):
    code, _, err = cli("rollout", *argv, "--duration", "0.5", "--out", tmp_path / "r.npz")
    assert_clean_error(code, err, *fragments)
    assert not (tmp_path / "r.npz").exists()


def test_an_existing_output_is_not_overwritten(cli, tmp_path):
    out = tmp_path / "r.npz"
    out.write_bytes(b"mine")
    code, _, err = cli("rollout", "--system", "pendulum", "--duration", "0.5", "--out", out)
    assert_clean_error(code, err, "exists")
    assert out.read_bytes() == b"mine"


def test_initial_states_from_a_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("0.1,0.2,0.3,0.4\n0.5,0.6,0.7,0.8\n")
    q0, qd0 = parse_initial_states(str(path), 2)
    np.testing.assert_allclose(q0, [[0.1, 0.2], [0.5, 0.6]])
    np.testing.assert_allclose(qd0, [[0.3, 0.4], [0.7, 0.8]])
    with pytest.raises(ShapeError):
        parse_initial_states(str(path), 1)
