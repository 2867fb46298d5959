"""Ensembles: K members trained as one vmapped program equal K runs alone, and keep every
guarantee of one run (NaN-skipping per member, L-BFGS, bit-identical resume, saving);
as a system an ensemble is its members' mean, with their spread on request."""

from __future__ import annotations

import json
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tests.helpers import assert_clean_error
from tests.helpers import leaves, pendulum_data, pendulum_model

import lagrax
from lagrax.core.errors import LagraxError, ShapeError
from lagrax.models import make_model
from lagrax.models.ensemble import Ensemble
from lagrax.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

jax.config.update("jax_enable_x64", True)

CFG = dict(batch_size=32, lr=1e-2, weight_decay=0.0, clip_norm=None, dtype="float64", val_every=1)


@pytest.fixture(scope="module")
def data():
    return pendulum_data(n_traj=6)


@pytest.fixture(scope="module")
def split(data):
    return data.split(test_labels=["t0"])


def delan(info, seed, ds):
    model = make_model("delan", info, key=jax.random.PRNGKey(seed), width=8, depth=1, dtype="float64")
    return model.with_data_statistics(ds.q, ds.qd, ds.qdd, ds.tau)


@pytest.mark.slow
def test_members_equal_their_seeds_trained_alone(split):
    """AdamW (vmapped) then L-BFGS (member by member): member k is the run of seed 5 + k."""
    train_ds, val_ds = split
    cfg = TrainConfig(epochs=4, lbfgs_epochs=2, lbfgs_steps=4, seed=5, **CFG)
    model = delan(train_ds.info, 5, train_ds)
    together = train(model, train_ds, val_ds, cfg, progress=False, ensemble=2)
    assert isinstance(together.model, Ensemble) and together.model.size == 2
    assert together.epoch_traces == 1
    for k in range(2):
        alone_cfg = TrainConfig(epochs=4, lbfgs_epochs=2, lbfgs_steps=4, seed=5 + k, **CFG)
        alone = train(delan(train_ds.info, 5 + k, train_ds), train_ds, val_ds, alone_cfg, progress=False)
        for x, y in zip(leaves(alone.model), leaves(together.model.member(k))):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
        assert together.members["best_val_loss"][k] == pytest.approx(alone.best_val_loss, rel=1e-9)
    # the members differ (their own initialisation and shuffles)
    a, b = leaves(together.model.member(0)), leaves(together.model.member(1))
    assert any(not np.allclose(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_a_member_with_nan_parameters_is_skipped_alone(split):
    train_ds, _ = split
    cfg = TrainConfig(epochs=3, seed=0, **{**CFG, "val_every": 1})
    bad = eqx.tree_at(lambda m: m.log_a, pendulum_model(), jnp.array(jnp.nan))
    ens = Ensemble.of([pendulum_model(2.0, 3.0), bad, pendulum_model(1.5, 2.0)])
    with pytest.warns(RuntimeWarning, match=r"per member: 0, \d+, 0"):
        result = train(ens, train_ds, None, cfg, progress=False)
    assert result.members["skipped_steps"][0] == 0 and result.members["skipped_steps"][2] == 0
    assert result.members["skipped_steps"][1] == 3 * result.history[0]["members"]["skipped"][1] > 0
    assert np.isnan(float(result.model.member(1).log_a))  # left exactly as it was
    alone = train(
        pendulum_model(1.5, 2.0), train_ds, None, TrainConfig(epochs=3, seed=2, **CFG), progress=False
    )
    for x, y in zip(leaves(alone.model), leaves(result.model.member(2))):
        np.testing.assert_allclose(x, y, rtol=1e-12)
    assert np.isfinite(result.history[-1]["loss"])  # the mean over the finite members


RESUMED = dict(epochs=4, lbfgs_epochs=2, lbfgs_steps=3, checkpoint_every=1, seed=1, **CFG)


def two_pendulums():
    return Ensemble.of([pendulum_model(2.0, 3.0), pendulum_model(1.2, 6.0)])


@pytest.fixture(scope="module")
def straight(split, tmp_path_factory):
    """An ensemble of two pendulums trained without interruption (AdamW, then L-BFGS)."""
    train_ds, val_ds = split
    run_dir = tmp_path_factory.mktemp("ensemble") / "a"
    return train(two_pendulums(), train_ds, val_ds, TrainConfig(**RESUMED), run_dir=run_dir, progress=False)


@pytest.mark.slow
def test_resumed_ensemble_equals_the_uninterrupted_one(split, straight, tmp_path):
    train_ds, val_ds = split
    cfg, ens = TrainConfig(**RESUMED), two_pendulums()

    class Killed(Exception):
        pass

    def kill(epoch, _model, _record):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train(ens, train_ds, val_ds, cfg, run_dir=tmp_path / "b", progress=False, callback=kill)
    resumed = train(ens, train_ds, val_ds, cfg, run_dir=tmp_path / "b", resume=True, progress=False)
    for x, y in zip(leaves(straight.model), leaves(resumed.model)):
        np.testing.assert_array_equal(x, y)
    assert resumed.members == straight.members
    assert [h["members"]["loss"] for h in resumed.history] == [h["members"]["loss"] for h in straight.history]


def test_each_member_keeps_its_own_best_parameters(straight):
    """Validation picks the best epoch per member (of the AdamW and the L-BFGS epochs)."""
    for k in range(2):
        val = [h["members"]["val_loss"][k] for h in straight.history]
        assert straight.members["best_val_loss"][k] == pytest.approx(min(val))
        assert straight.members["best_epoch"][k] == 1 + int(np.argmin(val))


@pytest.mark.slow
def test_the_ensemble_is_a_system_whose_predictions_are_the_members_mean(split):
    train_ds, _ = split
    models = [delan(train_ds.info, s, train_ds) for s in range(3)]
    ens = Ensemble.of(models)
    q, qd, qdd, tau = (jnp.asarray(getattr(train_ds, f)[:5]) for f in ("q", "qd", "qdd", "tau"))
    # (jitted: the members share one structure, so each function compiles once for all three)
    inverse_dynamics = eqx.filter_jit(lambda m: jax.vmap(m.inverse_dynamics)(q, qd, qdd))
    mass_matrix = eqx.filter_jit(lambda m: m.mass_matrix(q[0]))
    mean_tau = np.mean([inverse_dynamics(m) for m in models], axis=0)
    np.testing.assert_allclose(lagrax.batched(ens).inverse_dynamics(q, qd, qdd), mean_tau, rtol=1e-12)
    mean_m = np.mean([mass_matrix(m) for m in models], axis=0)
    np.testing.assert_allclose(mass_matrix(ens), mean_m, rtol=1e-12)
    predict = eqx.filter_jit(lambda e, **given: e.predict_with_uncertainty(q, qd, **given))
    out = predict(ens, qdd=qdd, tau=tau)
    assert out["tau_members"].shape == (5, 3, 1) and out["qdd_std"].shape == (5, 1)
    np.testing.assert_allclose(out["tau_mean"], mean_tau, rtol=1e-12)
    assert np.all(out["tau_std"] > 0)
    same = predict(Ensemble.of([models[0], models[0]]), qdd=qdd)
    assert np.all(same["tau_std"] == 0)


def test_ensembles_save_and_load(split, tmp_path):
    train_ds, _ = split
    ens = Ensemble.of([delan(train_ds.info, s, train_ds) for s in range(2)])
    lagrax.save_model(ens, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["ensemble"] == 2
    back = lagrax.load_model(tmp_path / "m")
    assert isinstance(back, Ensemble) and back.size == 2
    for x, y in zip(leaves(ens), leaves(back)):
        np.testing.assert_array_equal(x, y)


def test_bad_ensembles_are_refused(split):
    train_ds, _ = split
    with pytest.raises(LagraxError, match="positive number of members"):
        train(delan(train_ds.info, 0, train_ds), train_ds, None, TrainConfig(epochs=1), ensemble=0)
    with pytest.raises(LagraxError, match="no spec"):
        train(pendulum_model(), train_ds, None, TrainConfig(epochs=1), ensemble=2)
    with pytest.raises(ShapeError, match="leading member axis"):
        Ensemble(pendulum_model())
    with pytest.raises(LagraxError, match="same structure"):
        Ensemble.of([pendulum_model(), delan(train_ds.info, 0, train_ds)])
    with pytest.raises(LagraxError, match="out of range"):
        Ensemble.of([pendulum_model()]).member(3)
    with pytest.raises(LagraxError, match="needs qdd"):
        Ensemble.of([pendulum_model()]).predict_with_uncertainty(np.zeros(1), np.zeros(1))


@pytest.mark.slow
def test_cli_trains_and_evaluates_an_ensemble(cli, tmp_path):
    data = tmp_path / "p.npz"
    argv = ["generate", "-s", "pendulum", "--trajectories", "5", "--duration", "1", "--out", str(data)]
    assert cli(*argv)[0] == 0
    run = tmp_path / "run"
    args = ["-m", "delan", "-d", str(data), "-o", str(run), "--epochs", "3", "--lbfgs-epochs", "0"]
    code, out, _ = cli(
        "train", *args, "--width", "8", "--depth", "1", "--ensemble", "2", "--test-fraction", "0.4"
    )
    assert code == 0 and "2 members' mean prediction" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ensemble"] == 2 and len(metrics["members"]) == 2
    assert metrics["member_mean"]["torque_mse"] == pytest.approx(
        np.mean([m["torque_mse"] for m in metrics["members"]])
    )
    code, out, _ = cli("evaluate", str(run), "--no-rollout")
    assert code == 0 and "each of the 2 members" in out and "#1" in out
    code, out, _ = cli("report", str(run))
    assert code == 0 and "Each of the 2 members" in (run / "report.md").read_text()
    code, _, err = cli("train", *args[:5], str(tmp_path / "r2"), "--ensemble", "0")
    assert code == 2 and not (tmp_path / "r2").exists()
    with warnings.catch_warnings():
        code, _, err = cli("train", *args[:5], str(run), "--resume", "--ensemble", "3")
    assert_clean_error(code, err, "ensemble")
