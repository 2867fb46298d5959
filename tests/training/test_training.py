"""Tests of the training engine: it optimises, traces once, survives NaNs, resumes exactly,
writes checkpoints atomically, restores the best parameters, and refuses bad input.

Most tests fit a two-parameter pendulum (``M = a``, ``V = -b cos q``) whose true
values are known, so "the loss went down" is checked as "the physics was identified".
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from tests.helpers import TRUE_GRAVITY, TRUE_INERTIA, leaves, pendulum_data, pendulum_model
from lagrax.core.errors import DatasetError, LagraxError, ShapeError
from lagrax.training import (
    CheckpointError,
    LossUnavailableError,
    TrainConfig,
    TrainingError,
    load_checkpoint,
    parse_loss_weights,
    read_toml,
    save_checkpoint,
    train,
)
from lagrax.core import fileio
from lagrax.core.options import Schedule

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def data():
    return pendulum_data()


FAST = dict(
    lr=0.05,
    batch_size=32,
    schedule="cosine",
    final_lr_fraction=1e-3,
    weight_decay=0.0,
    clip_norm=None,
    dtype="float64",
)


# --------------------------------------------------------------------------------------
# It learns
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["inverse=1", "forward=1", "inverse=1,power=1", "rollout=1"])
def test_each_loss_identifies_the_pendulum(data, loss):
    cfg = TrainConfig(
        epochs=40,
        steps_per_epoch=20,
        **FAST,
        **parse_loss_weights(loss),
        rollout_horizon=3,
        rollout_batch_size=16,
    )
    result = train(pendulum_model(1.0, 5.0), data, config=cfg, progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 1e-6 * losses[0]
    assert float(jnp.exp(result.model.log_a)) == pytest.approx(TRUE_INERTIA, rel=1e-2)
    assert float(jnp.exp(result.model.log_b)) == pytest.approx(TRUE_GRAVITY, rel=1e-2)
    assert result.skipped_steps == 0 and result.stopped_reason == "completed"


def test_delan_loss_decreases_and_epoch_is_traced_once(data):
    model = lagrax.make_model("delan", data.info, key=jax.random.PRNGKey(0), width=16, depth=1)
    cfg = TrainConfig(epochs=8, batch_size=50, lr=2e-2, steps_per_epoch=5)
    result = train(model, data, config=cfg, progress=False)
    assert result.epoch_traces == 1  # eight epochs, one compiled scan
    assert result.steps == 8 * 5 and [h["step"] for h in result.history][-1] == 40
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]


@pytest.mark.slow
def test_lbfgs_refinement_identifies_what_adamw_left_rough(data, tmp_path):
    """Two AdamW epochs leave the pendulum's parameters off; full-batch L-BFGS epochs
    then identify them to 1e-6, count their iterations as steps, and resume exactly."""
    cfg = TrainConfig(epochs=2, lbfgs_epochs=3, lbfgs_steps=10, checkpoint_every=1, **FAST)
    after = {}  # the model after each epoch: after the second, what AdamW alone left

    def record(epoch, model, _record):
        after[epoch] = model

    result = train(
        pendulum_model(1.0, 5.0), data, config=cfg, run_dir=tmp_path / "a", progress=False, callback=record
    )
    assert float(jnp.exp(after[2].log_a)) != pytest.approx(TRUE_INERTIA, rel=1e-3)
    assert float(jnp.exp(result.model.log_a)) == pytest.approx(TRUE_INERTIA, rel=1e-6)
    assert float(jnp.exp(result.model.log_b)) == pytest.approx(TRUE_GRAVITY, rel=1e-6)
    assert [h.get("optimizer") for h in result.history] == [None, None, "lbfgs", "lbfgs", "lbfgs"]
    steps = result.history[1]["step"]  # the AdamW steps
    assert result.steps == steps + 30 and result.history[-1]["step"] == steps + 30

    def kill_after_3(epoch, _model, _record):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train(
            pendulum_model(1.0, 5.0),
            data,
            config=cfg,
            run_dir=tmp_path / "b",
            progress=False,
            callback=kill_after_3,
        )
    resumed = train(
        pendulum_model(1.0, 5.0), data, config=cfg, run_dir=tmp_path / "b", resume=True, progress=False
    )
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in result.history]


def test_hnn_structured_canonical_loss_runs(data):
    ds = pendulum_data()
    ds.p = TRUE_INERTIA * ds.qd  # M qd
    ds.pdot = ds.tau - TRUE_GRAVITY * np.sin(ds.q)
    model = lagrax.make_model("hnn_structured", ds.info, key=jax.random.PRNGKey(0), width=16, depth=1)
    cfg = TrainConfig(epochs=4, batch_size=50, lr=1e-2, inverse=0.0, canonical=1.0)
    result = train(model, ds, config=cfg, progress=False)
    assert result.history[-1]["canonical"] < result.history[0]["canonical"]


# --------------------------------------------------------------------------------------
# Non-finite steps
# --------------------------------------------------------------------------------------


def test_nan_in_one_sample_is_skipped_and_counted(data):
    bad = pendulum_data()
    bad.tau = bad.tau.copy()
    bad.tau[7] = np.nan
    cfg = TrainConfig(epochs=5, **{**FAST, "batch_size": 30})
    with pytest.warns(RuntimeWarning, match="non-finite"):
        result = train(pendulum_model(1.0, 5.0), bad, config=cfg, progress=False)
    # the sample sits in exactly one minibatch per epoch
    assert result.skipped_steps == 5
    assert [h["skipped"] for h in result.history] == [1] * 5
    assert all(np.all(np.isfinite(x)) for x in leaves(result.model))
    assert result.history[-1]["loss"] < 0.1 * result.history[0]["loss"]  # and it still learns


def test_persistent_nans_stop_training_with_a_clear_error(data):
    bad = pendulum_data()
    bad.tau = np.full_like(bad.tau, np.nan)
    cfg = TrainConfig(epochs=20, max_bad_epochs=2, **FAST)
    with pytest.raises(TrainingError, match="non-finite loss or gradient"):
        train(pendulum_model(), bad, config=cfg, progress=False)


# --------------------------------------------------------------------------------------
# Checkpoints and resume
# --------------------------------------------------------------------------------------


class Killed(Exception):
    pass


RESUMED = dict(epochs=6, batch_size=40, lr=1e-2, val_every=2, checkpoint_every=1)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """Six epochs without interruption, checkpointed: ``(run directory, result)``."""
    train_ds, val_ds = data.split(test_labels=["t0"])
    run_dir = tmp_path_factory.mktemp("straight") / "a"
    return run_dir, train(
        pendulum_model(), train_ds, val_ds, TrainConfig(**RESUMED), run_dir=run_dir, progress=False
    )


def test_resume_gives_the_uninterrupted_result(data, straight, tmp_path):
    model, (_, straight) = pendulum_model(), straight
    train_ds, val_ds = data.split(test_labels=["t0"])
    cfg = TrainConfig(**RESUMED)

    def kill_after_3(epoch, _model, _record):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train(model, train_ds, val_ds, cfg, run_dir=tmp_path / "b", progress=False, callback=kill_after_3)
    resumed = train(model, train_ds, val_ds, cfg, run_dir=tmp_path / "b", resume=True, progress=False)
    for x, y in zip(leaves(straight.model), leaves(resumed.model)):
        np.testing.assert_array_equal(x, y)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_different_configuration(data, straight):
    run_dir, _ = straight
    train_ds, val_ds = data.split(test_labels=["t0"])
    cfg = TrainConfig(**RESUMED)
    snapshot = fileio.tree_digest(run_dir)
    with pytest.raises(CheckpointError, match="lr"):
        train(
            pendulum_model(),
            train_ds,
            val_ds,
            cfg.replace(lr=0.02),
            run_dir=run_dir,
            resume=True,
            progress=False,
        )
    assert fileio.tree_digest(run_dir) == snapshot  # the run is left as it was


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    state = {"w": jnp.arange(3.0)}
    save_checkpoint(tmp_path, state, {"epoch": 1})

    def crash(*args):
        raise OSError("disk died mid-write")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        save_checkpoint(tmp_path, {"w": jnp.arange(3.0) + 10}, {"epoch": 2})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # no temporary file left behind
    restored, meta = load_checkpoint(tmp_path, state)
    assert meta == {"epoch": 1}
    np.testing.assert_array_equal(restored["w"], np.arange(3.0))
    (tmp_path / "last.ckpt").write_bytes((tmp_path / "last.ckpt").read_bytes()[:-5])  # truncated
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path, state)


# --------------------------------------------------------------------------------------
# Validation and early stopping
# --------------------------------------------------------------------------------------


def test_early_stopping_restores_the_best_parameters(tmp_path):
    # train on a pendulum of mass 1, validate on one of mass 2: starting from mass 3 the
    # validation loss falls while the estimate passes 2, then rises again.
    train_ds, val_ds = pendulum_data(m=1.0), pendulum_data(m=2.0, seed=1)
    snapshots = {}

    def record(epoch, model, _record):
        snapshots[epoch] = leaves(model)

    cfg = TrainConfig(epochs=200, val_every=1, patience=3, **{**FAST, "lr": 0.02})
    result = train(
        pendulum_model(a=3 * TRUE_INERTIA, b=3 * TRUE_GRAVITY),
        train_ds,
        val_ds,
        cfg,
        progress=False,
        callback=record,
    )
    assert result.stopped_reason == "early_stopping"
    val = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(val)) + 1 < len(val)
    assert result.best_val_loss == pytest.approx(min(val))
    for x, y in zip(leaves(result.model), snapshots[result.best_epoch]):
        np.testing.assert_array_equal(x, y)
    assert float(jnp.exp(result.model.log_a)) == pytest.approx(2 * TRUE_INERTIA, rel=0.1)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_missing_quantities_give_clear_errors(data):
    mlp = lagrax.make_model("mlp", data.info, key=jax.random.PRNGKey(0), width=8, depth=1)
    with pytest.raises(LossUnavailableError, match="loss 'power' needs an energy; the mlp model"):
        train(mlp, data, config=TrainConfig(epochs=1, power=1.0), progress=False)
    with pytest.raises(LossUnavailableError, match="loss 'canonical'.*mlp"):
        train(mlp, data, config=TrainConfig(epochs=1, canonical=1.0), progress=False)
    no_tau = pendulum_data()
    no_tau.tau = None
    with pytest.raises(DatasetError, match="loss 'inverse' needs joint torques 'tau'"):
        train(pendulum_model(), no_tau, config=TrainConfig(epochs=1), progress=False)
    two_dof = lagrax.make_model("delan", lagrax.SystemInfo.make("x", 2), key=jax.random.PRNGKey(0))
    with pytest.raises(ShapeError, match="model has 2 joints.*has 1"):
        train(two_dof, data, config=TrainConfig(epochs=1), progress=False)


def test_config_from_toml_and_bad_options(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('epochs = 7\n[train]\nlr = 0.01\nschedule = "onecycle"\n[model]\nwidth = 32\n')
    train_opts, model_opts = read_toml(path)
    cfg = TrainConfig.from_toml(path, batch_size=64)
    assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.batch_size) == (7, 0.01, Schedule.ONECYCLE, 64)
    assert model_opts == {"width": 32}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(LagraxError, match="unknown training option 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(LagraxError, match="unknown learning-rate schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(LagraxError, match="unknown loss 'torque'"):
        parse_loss_weights("torque=1")
    with pytest.raises(LagraxError, match="at least one loss weight"):
        TrainConfig(inverse=0.0)


@pytest.mark.slow
def test_a_float64_model_trains_in_float64_under_the_default_data_dtype(data):
    """The default data dtype is float32; a float64 model gets float64 data (the same run
    as asking for it), and the rollout loss then goes through L-BFGS too (mixed
    precision broke optax's line search)."""
    cfg = dict(epochs=2, steps_per_epoch=5, lbfgs_epochs=1, lbfgs_steps=5, rollout=1.0, rollout_horizon=3)
    settings = {k: v for k, v in FAST.items() if k != "dtype"}
    default = train(pendulum_model(1.0, 5.0), data, config=TrainConfig(**cfg, **settings), progress=False)
    asked = train(pendulum_model(1.0, 5.0), data, config=TrainConfig(**cfg, **FAST), progress=False)
    assert [np.asarray(a).dtype for a in leaves(default.model)] == [np.float64, np.float64]
    for a, b in zip(leaves(default.model), leaves(asked.model)):
        np.testing.assert_array_equal(a, b)
    assert [h["loss"] for h in default.history] == [h["loss"] for h in asked.history]


def test_a_full_batch_holds_at_most_max_full_windows_evenly_spaced():
    from lagrax.training.batches import MAX_FULL_WINDOWS, full_batch

    n = 3 * MAX_FULL_WINDOWS + 7
    data = dict(
        t=jnp.arange(n + 4) * 0.1,
        q=jnp.arange(n + 4.0)[:, None],
        qd=jnp.zeros((n + 4, 1)),
        tau=jnp.zeros((n + 4, 1)),
        window_starts=jnp.arange(n),
    )
    _, windows = full_batch(data, horizon=4)
    starts = np.asarray(windows["q"][:, 0, 0]).astype(int)
    assert starts.shape == (MAX_FULL_WINDOWS,) and starts[0] == 0 and starts[-1] == n - 1
    assert np.all(np.diff(starts) >= 2) and np.all(np.diff(starts) <= 4)
    small = dict(data, window_starts=jnp.arange(10))
    assert full_batch(small, horizon=4)[1]["q"].shape == (10, 5, 1)
