"""``kind="states"``: independent random states with analytic accelerations (the LNN paper's data)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tests.helpers import assert_clean_error

import lagrax
from lagrax.systems.batching import batched
from lagrax.data.dataset import has_motion, load_dataset
from lagrax.core.errors import LagraxError
from lagrax.analysis.metrics import evaluate
from lagrax.data.generators import generate

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def truth():
    return lagrax.system("double_pendulum")


def test_states_hold_the_systems_accelerations_within_the_ranges(truth):
    ds = generate(truth, kind="states", samples=500, q_range=[(0, 6.28), (-1, 1)], qd_range=(-10, 10), seed=2)
    assert len(ds) == 500 and np.all(ds.tau == 0) and not has_motion(ds)
    assert np.all((ds.q[:, 0] >= 0) & (ds.q[:, 0] <= 6.28) & (ds.q[:, 1] >= -1) & (ds.q[:, 1] <= 1))
    assert np.all(np.abs(ds.qd) <= 10) and np.max(np.abs(ds.qd)) > 9  # the whole range is used
    qdd = batched(truth).forward_dynamics(ds.q, ds.qd, np.zeros_like(ds.q))
    np.testing.assert_allclose(ds.qdd, qdd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.energy, batched(truth).energy(ds.q, ds.qd), rtol=1e-12)
    again = generate(
        truth, kind="states", samples=500, q_range=[(0, 6.28), (-1, 1)], qd_range=(-10, 10), seed=2
    )
    np.testing.assert_array_equal(ds.q, again.q)


def test_states_split_by_group_and_evaluate_without_rollouts(truth):
    ds = generate(truth, kind="states", samples=300, trajectories=10)
    train, test = ds.split(test_fraction=0.2)
    assert len(train) + len(test) == 300 and test.n_trajectories == 2
    metrics = evaluate(truth, test, throughput=False)
    assert set(metrics) == {"qdd_mse"} and metrics["qdd_mse"] < 1e-20  # no motion: no rollout metrics


@pytest.mark.parametrize(
    "options, fragment",
    [
        (dict(q_range=(1, 0)), "low < high"),
        (dict(qd_range=[(0, 1)] * 3), "one per joint"),
        (dict(q_range=(0, np.inf)), "finite"),
        (dict(samples=0), "samples"),
        (dict(measured="q,tau"), "every signal must be measured"),
    ],
)
def test_bad_state_settings_are_refused(truth, options, fragment):
    with pytest.raises(LagraxError, match=fragment):
        generate(truth, kind="states", **options)


def test_the_cli_writes_states_and_refuses_options_of_other_kinds(cli, tmp_path):
    out = tmp_path / "s.npz"
    code, _, err = cli(
        "generate", "--system", "double_pendulum", "--kind", "states", "--samples", "200",
        "--q-range", "0,6.2832", "--qd-range", "-10,10", "--qd-range", "-5,5", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    ds = load_dataset(out)
    assert ds.metadata["kind"] == "states" and np.max(np.abs(ds.qd[:, 1])) <= 5
    code, _, err = cli(
        "generate", "--system", "pendulum", "--kind", "passive", "--samples", "3", "--out", tmp_path / "p.npz"
    )
    assert_clean_error(code, err, "--samples is an option of --kind states")
    code, _, err = cli(
        "generate", "--system", "pendulum", "--kind", "states", "--q-range", "0", "--out", tmp_path / "p.npz"
    )
    assert_clean_error(code, err, "--q-range takes LO,HI")


@pytest.fixture(scope="module")
def states_run(tmp_path_factory):
    """Pendulum states and an LNN trained on them by ``lagrax train`` (its recipe, shortened):
    ``(the data, the run directory, what train printed)``."""
    import contextlib
    import io

    from lagrax.cli.app import main

    root = tmp_path_factory.mktemp("states")
    data, run = root / "s.npz", root / "run"
    generate = ["generate", "-s", "pendulum", "--kind", "states", "--samples", "400", "--out", str(data)]
    assert main(generate) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([
            "train", "--model", "lnn", "--data", str(data), "--out", str(run), "--epochs", "2",
            "--lbfgs-epochs", "1", "--lbfgs-steps", "3", "--test-fraction", "0.2", "--no-progress",
        ])  # fmt: skip
    assert code == 0
    return data, run, printed.getvalue()


@pytest.mark.slow
def test_an_lnn_trains_on_states(states_run):
    _, run, text = states_run
    assert "completed" in text and (run / "metrics.json").exists()
    assert json.loads((run / "config.json").read_text())["model"] == "lnn"


@pytest.mark.slow
def test_states_refuse_the_rollout_loss_and_report_without_rollouts(cli, states_run, tmp_path):
    data, trained, _ = states_run
    code, _, err = cli(
        "train", "--model", "delan", "--data", data, "--out", tmp_path / "bad",
        "--loss", "forward=1,rollout=1",
        "--epochs", "1", "--no-progress",
    )  # fmt: skip
    assert_clean_error(code, err, "rollout", "independent states")
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    code, _, err = cli("report", run)
    assert code == 0, err
    assert "No rollouts: the data are independent states" in (run / "report.md").read_text()


def test_states_plot_as_points_without_warnings(cli, tmp_path):
    import warnings

    out = tmp_path / "s.npz"
    argv = ["generate", "-s", "double_pendulum", "--kind", "states", "--samples", "300", "--out", out]
    assert cli(*argv)[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, _, err = cli("plot", out, "--out", tmp_path / "s.png")
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0
