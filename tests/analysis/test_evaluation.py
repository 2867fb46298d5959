"""Evaluation metrics, rollouts, the report and the evaluate/report commands.

A ground-truth system evaluated on data it generated must score (numerically) zero
error and a full valid prediction time; the same system with a wrong mass must not.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.data.dataset import Dataset
from lagrax.core.errors import DatasetError, LagraxError, ShapeError
from lagrax.analysis.metrics import (
    METRIC_KEYS,
    evaluate,
    geometric_mean,
    rollout_relative_error,
    normalised_position_error,
    sum_squared_error,
    valid_prediction_time,
)
from lagrax.training.rundir import RUN_FILES, Run, RunDir
from lagrax.systems.rollout import rk4_rollout, simulate
from lagrax.data.generators import generate
from lagrax.systems.batching import batched

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

DT = 0.02
LENGTHS = (60, 45)  # different lengths exercise the padding of the batched rollout


def generated_dataset(system, lengths=LENGTHS, dt=DT, seed=0) -> Dataset:
    """Driven trajectories of ``system`` integrated to 1e-11, with every ground-truth field."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, T in enumerate(lengths):
        t = np.arange(T) * dt
        amp, freq = rng.normal(size=2), rng.uniform(1.0, 3.0, size=2)
        tau = amp * np.sin(freq * t[:, None])
        r = simulate(
            system,
            0.5 * rng.normal(size=2),
            0.5 * rng.normal(size=2),
            t,
            tau,
            solver="dopri8",
            rtol=1e-11,
            atol=1e-11,
        )
        q, qd = np.asarray(r.q), np.asarray(r.qd)
        qdd = np.asarray(batched(system).forward_dynamics(q, qd, tau))
        terms = batched(system).decomposition(q, qd, qdd)
        parts.append(
            dict(
                t=t,
                q=q,
                qd=qd,
                qdd=qdd,
                tau=tau,
                trajectory=np.full(T, i),
                **{k: np.asarray(terms[k]) for k in ("inertial", "coriolis", "gravity")},
            )
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return Dataset(
        **cols,
        labels=[f"traj{i}" for i in range(len(lengths))],
        metadata={"system": system.info.to_json(), "dt": dt},
    )


@pytest.fixture(scope="module")
def truth():
    return lagrax.system("double_pendulum")


@pytest.fixture(scope="module")
def dataset(truth):
    return generated_dataset(truth)


@pytest.fixture(scope="module")
def true_metrics(truth, dataset):
    return evaluate(truth, dataset, training={"train_seconds": 1.5, "steps": 10})


def test_ground_truth_scores_zero_error_and_full_valid_time(true_metrics, dataset):
    for key in (
        "torque_mse",
        "torque_nmse",
        "inertial_mse",
        "coriolis_mse",
        "gravity_mse",
        "power_mse",
        "qdd_mse",
    ):
        assert true_metrics[key] < 1e-20, key
    durations = [(len(np.flatnonzero(dataset.trajectory == i)) - 1) * DT for i in range(len(LENGTHS))]
    assert true_metrics["valid_prediction_time"] == pytest.approx(np.mean(durations))


def test_metric_keys_are_exactly_the_contract(true_metrics):
    # driven data: every key but the energy drift, which needs unforced motion
    assert set(true_metrics) == set(METRIC_KEYS) - {"energy_error"}
    assert set(METRIC_KEYS) == {
        "torque_mse",
        "torque_nmse",
        "inertial_mse",
        "coriolis_mse",
        "gravity_mse",
        "power_mse",
        "qdd_mse",
        "valid_prediction_time",
        "rollout_error",
        "energy_error",
        "train_seconds",
        "steps",
        "eval_samples_per_second",
    }
    assert true_metrics["steps"] == 10 and true_metrics["eval_samples_per_second"] > 0
    assert all(np.isfinite(v) for v in true_metrics.values())


def test_wrong_mass_gives_larger_errors_and_shorter_valid_time(truth, dataset, true_metrics):
    wrong = lagrax.system("double_pendulum", m2=1.3)
    got = evaluate(wrong, dataset, throughput=False)
    for key in ("torque_mse", "inertial_mse", "coriolis_mse", "gravity_mse", "power_mse", "qdd_mse"):
        assert got[key] > 1e-3, key
    assert got["valid_prediction_time"] < 0.5 * true_metrics["valid_prediction_time"]
    # V = -(m1 + m2) g l1 cos q1 - m2 g l2 cos q2: gravity off by 0.3 g sin q_i on each joint
    expected = np.mean(np.sum((0.3 * 9.8 * np.sin(dataset.q)) ** 2, axis=-1))
    assert got["gravity_mse"] == pytest.approx(expected, rel=1e-9)


def test_torque_mse_is_sum_over_joints_mean_over_samples():
    tau = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    pred = tau + np.array([[0.1, -0.2], [0.0, 0.3], [-0.4, 0.0]])
    assert sum_squared_error(pred, tau) == pytest.approx((0.01 + 0.04 + 0.09 + 0.16) / 3)

    # the same through evaluate(), with a "model" whose inverse dynamics is M qdd + g
    pend = lagrax.system("pendulum", m=2.0, l=0.5, g=10.0)
    q = np.array([[0.0], [0.3], [-1.0]])
    qd = np.zeros_like(q)
    qdd = np.array([[1.0], [-2.0], [0.5]])
    true_tau = 0.5 * qdd + 10.0 * np.sin(q)  # m l^2 qdd + m g l sin q
    tau = true_tau + np.array([[0.1], [0.0], [-0.2]])
    ds = Dataset(
        t=np.arange(3) * 0.1,
        q=q,
        qd=qd,
        qdd=qdd,
        trajectory=np.zeros(3, int),
        tau=tau,
        metadata={"system": pend.info.to_json()},
    )
    got = evaluate(pend, ds, rollout=False, throughput=False)
    assert got["torque_mse"] == pytest.approx((0.01 + 0.04) / 3)
    assert got["torque_nmse"] == pytest.approx(((0.01 + 0.04) / 3) / np.var(tau))
    assert "inertial_mse" not in got  # the dataset has no ground-truth decomposition
    assert "valid_prediction_time" not in got


def test_metrics_a_model_cannot_provide_are_omitted(dataset):
    class InverseOnly(lagrax.System):
        """A black box with inverse dynamics only (the true one, so errors are ~0)."""

        truth: lagrax.System
        PROVIDES = frozenset({"inverse_dynamics"})

        def inverse_dynamics(self, q, qd, qdd):
            return self.truth.inverse_dynamics(q, qd, qdd)

    model = InverseOnly(info=dataset.info, truth=lagrax.system("double_pendulum"))
    got = evaluate(model, dataset, throughput=False)
    assert set(got) == {"torque_mse", "torque_nmse"}
    assert got["torque_mse"] < 1e-20


def test_scan_rollout_agrees_with_diffrax_rk4(truth, dataset):
    idx = np.flatnonzero(dataset.trajectory == 0)
    q, qd, t, tau = dataset.q[idx], dataset.qd[idx], dataset.t[idx], dataset.tau[idx]
    q_scan, qd_scan = rk4_rollout(truth, jnp.asarray(q[0]), jnp.asarray(qd[0]), jnp.asarray(tau), DT, 20)
    ref = simulate(truth, q[0], qd[0], t, tau, solver="rk4", dt=DT / 20)
    np.testing.assert_allclose(q_scan, ref.q, atol=1e-9)
    np.testing.assert_allclose(qd_scan, ref.qd, atol=1e-9)
    # and both follow the recorded motion closely (RK4 at dt/20 vs a 1e-11 reference)
    np.testing.assert_allclose(q_scan, q, atol=1e-6)


def test_valid_prediction_time_returns_rollouts_and_first_exceedance(truth, dataset):
    wrong = lagrax.system("double_pendulum", m1=1.5)
    result = valid_prediction_time(wrong, dataset, threshold=1e-2)
    assert len(result.rollouts) == len(LENGTHS)
    for r, n in zip(result.rollouts, LENGTHS):
        assert r.q_pred.shape == r.q.shape == (n, 2) and r.error.shape == (n,)
        k = np.argmax(r.error > 1e-2)
        assert r.error[k] > 1e-2 and np.all(r.error[:k] <= 1e-2)
        assert r.valid_time == pytest.approx(r.t[k] - r.t[0])
        assert r.label == f"traj{r.trajectory}"
    assert result.mean == pytest.approx(np.mean(result.valid_times))


def test_normalised_position_error_definition():
    q = np.array([[0.0, 0.0], [3.0, 4.0]])  # per-joint ranges (3, 4): scale 5
    pred = q + np.array([[0.0, 0.0], [0.3, 0.4]])
    np.testing.assert_allclose(normalised_position_error(pred, q), [0.0, 0.1])
    pred[1, 0] = np.nan  # a diverged rollout is never "valid"
    assert normalised_position_error(pred, q)[1] == np.inf


def test_bad_inputs_raise_clear_errors(dataset):
    with pytest.raises(ShapeError, match="2 joints"):
        evaluate(lagrax.system("pendulum"), dataset)
    bad = Dataset(
        t=np.array([0.0, 0.1, 0.3]),
        q=np.zeros((3, 2)),
        qd=np.zeros((3, 2)),
        qdd=np.zeros((3, 2)),
        trajectory=np.zeros(3, int),
        tau=np.zeros((3, 2)),
        metadata=dataset.metadata,
    )
    with pytest.raises(DatasetError, match="uniformly"):
        valid_prediction_time(lagrax.system("double_pendulum"), bad)


def test_write_metrics(tmp_path, true_metrics):
    path = RunDir(tmp_path / "run").write_metrics(true_metrics)
    assert path.name == "metrics.json"
    assert json.loads(path.read_text()) == pytest.approx(true_metrics)
    assert RunDir(tmp_path / "run").read_metrics() == pytest.approx(true_metrics)


def test_a_run_directory_reads_back_what_it_wrote(tmp_path):
    run_dir = RunDir(str(tmp_path / "run"))  # a str path is a Path
    assert run_dir.path == tmp_path / "run"
    assert (run_dir.read_config(), run_dir.read_split(), run_dir.read_summary()) == ({}, {}, {})
    assert run_dir.read_history() == [] and run_dir.read_metrics() == {}
    split = {"train": {"ids": [0], "labels": ["a"]}, "test": {"ids": [1], "labels": ["b"]}}
    run_dir.write_config({"model": "delan", "data": "/x/data.npz", "split": split})
    assert run_dir.read_config()["model"] == "delan" and run_dir.read_split() == split
    run_dir.split_path.unlink()  # an older run: the split from config.json
    assert run_dir.read_split() == split
    run_dir.write_summary({"steps": 3})
    with run_dir.open_history([{"epoch": 1, "loss": 2.0}]) as f:
        f.write(json.dumps({"epoch": 2, "loss": 1.0}) + "\n")
    assert run_dir.read_summary() == {"steps": 3} and [r["epoch"] for r in run_dir.read_history()] == [1, 2]
    with run_dir.open_history([{"epoch": 1, "loss": 2.0}]):  # resuming rewrites it
        pass
    assert run_dir.read_history() == [{"epoch": 1, "loss": 2.0}]
    assert run_dir.evaluation_path(None, "train") == run_dir.path / "evaluations" / "data-train.json"
    run_dir.summary_path.write_text("{")
    with pytest.raises(DatasetError, match="summary.json is not valid JSON"):
        run_dir.read_summary()
    with pytest.raises(LagraxError, match="not a report figure"):
        run_dir.figure_path("other.png")
    written = [run_dir.config_path, run_dir.history_path, run_dir.summary_path, run_dir.metrics_path]
    written += [run_dir.model_path, run_dir.model_meta_path, run_dir.checkpoints_path, run_dir.report_path]
    assert {p.name for p in written} <= set(RUN_FILES)


# --------------------------------------------------------------------------------------
# Report, run directories and the command line
# --------------------------------------------------------------------------------------


def _history(epochs=12):
    return [
        dict(
            epoch=e,
            step=5 * e,
            lr=1e-3,
            inverse=1.0 / e,
            loss=1.0 / e,
            seconds=0.1 * e,
            **({"val_loss": 1.3 / e, "val_inverse": 1.3 / e} if e % 3 == 0 else {}),
        )
        for e in range(1, epochs + 1)
    ]


def test_report_writes_figures_and_a_page_with_the_metrics(tmp_path, dataset):
    from lagrax.analysis.report import write_report

    wrong = lagrax.system("double_pendulum", m2=1.3)
    metrics = evaluate(wrong, dataset, throughput=False)
    rollouts = valid_prediction_time(wrong, dataset).rollouts
    path = write_report(
        tmp_path,
        wrong,
        dataset,
        metrics,
        rollouts=rollouts,
        history=_history(),
        config={"epochs": 12, "lr": 1e-3},
        data_path="data.npz",
    )
    for name in ("torque_decomposition.png", "learning_curves.png", "rollouts.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert f"({name})" in path.read_text()
    text = path.read_text()
    assert "| torque_mse | " in text and "| valid_prediction_time | " in text
    assert f"{metrics['torque_mse']:.3g}" in text
    assert "traj0, traj1" in text and "data.npz" in text and "epochs=12" in text


@pytest.fixture(scope="module")
def run_dataset(truth):
    """Three trajectories for the run directories below, of the lengths of ``dataset``'s
    (whose rollouts are compiled already)."""
    return generated_dataset(truth, lengths=(*LENGTHS, LENGTHS[0]), seed=1)


def _run_dir(tmp_path, ds):
    """A run directory on ``ds`` as lagrax.training.run_training writes it (tiny untrained DeLaN)."""
    import jax

    from lagrax.data.dataset import save_dataset
    from lagrax.models import make_model
    from lagrax.models.io import save_model

    truth = lagrax.system("double_pendulum")
    data = save_dataset(ds, tmp_path / "data.npz")
    run = tmp_path / "run"
    model = make_model("delan", truth.info, key=jax.random.PRNGKey(0), width=8, depth=1)
    save_model(model, run)
    split = {
        "train": {"ids": [0, 2], "labels": ["traj0", "traj2"]},
        "validation": {"ids": [], "labels": []},
        "test": {"ids": [1], "labels": ["traj1"]},
    }
    run_dir = RunDir(run)
    run_dir.write_config(
        {"model": "delan", "data": str(data), "split": split, "train": {"epochs": 12, "lr": 1e-3}}
    )
    run_dir.write_summary({"train_seconds": 2.5, "steps": 60})
    run_dir.open_history(_history()).close()
    return run, data


@pytest.mark.slow
def test_a_run_loads_as_one_record(tmp_path, run_dataset):
    run, _ = _run_dir(tmp_path, run_dataset)
    RunDir(run).write_metrics({"torque_mse": 1.0})
    loaded = RunDir(run).load()
    assert isinstance(loaded, Run) and loaded.path == run and loaded.model.dof == 2
    assert loaded.split["test"]["ids"] == [1] and loaded.config["train"]["epochs"] == 12
    assert loaded.training == {"train_seconds": 2.5, "steps": 60} and loaded.history == _history()
    assert loaded.metrics == {"torque_mse": 1.0}
    with pytest.raises(LagraxError, match="does not exist"):
        RunDir(tmp_path / "none").load()
    with pytest.raises(LagraxError, match="holds no trained model"):
        RunDir(tmp_path).load()


def _cli(capsys, *argv):
    from lagrax.cli.app import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_report_and_evaluate_a_run_directory(tmp_path, capsys, run_dataset):
    run, data = _run_dir(tmp_path, run_dataset)
    code, out, err = _cli(capsys, "report", run)
    assert code == 0, err
    metrics = json.loads((run / "report.json").read_text())
    # an untrained DeLaN provides every metric but the energy drift (the data is driven)
    assert set(metrics) == set(METRIC_KEYS) - {"energy_error"}
    assert metrics["steps"] == 60 and "torque_mse" in out
    text = (run / "report.md").read_text()
    assert "delan" in text and "traj1" in text and "learning_curves.png" in text
    assert (run / "rollouts.png").stat().st_size > 0

    code, out, err = _cli(capsys, "evaluate", run, "--data", data)
    assert code == 0, err
    assert not (run / "metrics.json").exists()  # (training's file: evaluate never writes it)
    assert json.loads((run / "evaluations" / "data-test.json").read_text())["torque_mse"] == pytest.approx(
        metrics["torque_mse"]
    )
    assert "valid_prediction_time" in out


def test_cli_evaluate_and_report_bad_input(tmp_path, capsys, run_dataset):
    code, _, err = _cli(capsys, "evaluate", tmp_path / "nowhere")
    assert code == 2 and err.startswith("error: ") and "does not exist" in err
    code, _, err = _cli(capsys, "report", tmp_path)
    assert code == 2 and "holds no trained model" in err

    run, _ = _run_dir(tmp_path, run_dataset)
    pend = lagrax.system("pendulum")
    one_joint = Dataset(
        t=np.arange(3) * 0.1,
        q=np.zeros((3, 1)),
        qd=np.zeros((3, 1)),
        qdd=np.zeros((3, 1)),
        trajectory=np.zeros(3, int),
        tau=np.zeros((3, 1)),
        metadata={"system": pend.info.to_json()},
    )
    from lagrax.data.dataset import save_dataset

    other = save_dataset(one_joint, tmp_path / "pendulum.npz")
    for command in ("evaluate", "report"):
        code, _, err = _cli(capsys, command, run, "--data", other)
        assert code == 2 and "1 joints" in err and "2" in err, err
    code, _, err = _cli(capsys, "evaluate", run, "--split", "validation")
    assert code == 2 and "split" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_rollout_relative_error_is_scale_free_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 7, 4))
    e = rollout_relative_error(a, b)
    assert e.shape == (7,) and np.all((e >= 0) & (e <= 1))
    np.testing.assert_allclose(e, rollout_relative_error(b, a))
    np.testing.assert_allclose(e, rollout_relative_error(3.0 * a, 3.0 * b))
    assert np.all(rollout_relative_error(a, a) == 0) and np.all(rollout_relative_error(-a, a) == 1)
    assert rollout_relative_error(np.full(4, np.nan), b[0]) == 1.0
    assert geometric_mean([[0.5, 1e-2, 1e-4]]) == pytest.approx(1e-3)


def test_passive_data_reports_rollout_and_energy_errors_but_no_torque_terms():
    """Unforced double pendulum: the truth drifts by nothing, a wrong model by much more;
    no torque, decomposition or power metric is reported (passive data)."""
    truth = lagrax.system("double_pendulum")
    ds = generate(truth, kind="passive", trajectories=3, duration=2.0, dt=0.05, seed=1)
    exact = evaluate(truth, ds, truth=truth, throughput=False)
    assert set(exact) == {"qdd_mse", "valid_prediction_time", "rollout_error", "energy_error"}
    assert exact["energy_error"] < 1e-5 and exact["rollout_error"] < 1e-4
    wrong = evaluate(lagrax.system("double_pendulum", l2=1.2), ds, truth=truth, throughput=False)
    assert wrong["energy_error"] > 100 * exact["energy_error"]
    assert wrong["rollout_error"] > 100 * exact["rollout_error"]
    assert "energy_error" not in evaluate(truth, ds, throughput=False)  # no truth, no energy error
    damped = lagrax.system("double_pendulum", damping=0.1)
    assert "energy_error" not in evaluate(truth, ds, truth=damped, throughput=False)
