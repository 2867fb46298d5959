"""The training loop: one jitted ``lax.scan`` per epoch, validation, early stopping, checkpoints.

:func:`train` fits any lagrax model (an equinox :class:`~lagrax.systems.System`) to a
:class:`~lagrax.datasets.Dataset` with the weighted losses of
:mod:`lagrax.training.losses` and optax AdamW:

* the dataset's arrays are put on the device once; an epoch (``steps_per_epoch``
  minibatch steps over a fresh permutation) is one compiled call, traced once per run;
* a step whose loss or gradient is not finite is skipped (parameters and optimiser
  state unchanged) and counted; if every step of ``max_bad_epochs`` consecutive
  epochs is skipped, training stops with :class:`TrainingError`;
* validation every ``val_every`` epochs on held-out trajectories; early stopping after
  ``patience`` validations without improvement; the best parameters are returned;
* checkpoints (atomic, see :mod:`lagrax.training.checkpoint`) every
  ``checkpoint_every`` epochs and at the end; ``resume=True`` continues a killed run
  and gives the same parameters as an uninterrupted one (per-epoch PRNG keys are
  ``fold_in(seed, epoch)``, so nothing depends on where a run was cut);
* one JSON line per epoch in ``metrics.jsonl`` and an optional progress bar.

:func:`run_training` is the command line's entry: it loads and splits a dataset file,
builds the model, trains, and writes the run directory. Evaluation metrics come from
:mod:`lagrax.evaluation`; this module computes only training losses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import DatasetError, FileExistsLagraxError, LagraxError, ShapeError
from . import losses as L
from .checkpoint import CheckpointError, atomic_write_text, load_checkpoint, save_checkpoint
from .config import PRESET_MODEL_OPTIONS, PRESETS, TrainConfig

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
# settings that may change between a run and its resumption without changing its results
RESUMABLE_CHANGES = (
    "epochs",
    "max_seconds",
    "target_val_loss",
    "checkpoint_every",
    "patience",
    "val_every",
    "lbfgs_epochs",
)


class TrainingError(LagraxError, RuntimeError):
    """Training cannot go on (e.g. every step keeps producing non-finite losses)."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` has the best parameters by validation loss (the last ones without a
    validation set); ``history`` one dict per epoch (as in ``metrics.jsonl``);
    ``train_seconds`` the wall time of the epochs and validations (compilation excluded,
    reported as ``compile_seconds``); ``steps`` optimiser steps taken, ``skipped_steps``
    those skipped as non-finite; ``stopped_reason`` one of ``"completed"``,
    ``"early_stopping"``, ``"max_seconds"``, ``"target_val_loss"``, ``"callback"``.
    """

    model: Any
    history: list[dict]
    train_seconds: float
    steps: int
    skipped_steps: int
    stopped_reason: str
    compile_seconds: float = 0.0
    singular_samples: int = 0
    best_epoch: int | None = None
    best_val_loss: float | None = None
    epoch_traces: int = 0  # how often the epoch function was traced (1 per run)


# --------------------------------------------------------------------------------------
# Optimiser
# --------------------------------------------------------------------------------------


def learning_rate_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    """The learning rate per optimiser step for ``config.schedule``."""
    total = max(int(total_steps), 1)
    warmup = int(config.warmup * total)
    end = config.lr * config.final_lr_fraction
    if config.schedule == "cosine":
        if warmup == 0:
            return optax.cosine_decay_schedule(config.lr, total, alpha=config.final_lr_fraction)
        return optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total, end)
    if config.schedule == "onecycle":
        pct = config.warmup if config.warmup > 0 else 0.3
        return optax.cosine_onecycle_schedule(
            total, config.lr, pct_start=pct, div_factor=25.0, final_div_factor=25.0 / config.final_lr_fraction
        )
    if warmup == 0:
        return optax.constant_schedule(config.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, warmup), optax.constant_schedule(config.lr)], [warmup]
    )


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW with the configured schedule, after global-norm gradient clipping."""
    adamw = optax.adamw(
        learning_rate_schedule(config, total_steps),
        b1=config.b1,
        b2=config.b2,
        weight_decay=config.weight_decay,
    )
    if config.clip_norm is None or config.clip_norm <= 0:
        return adamw
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)


# --------------------------------------------------------------------------------------
# Data on the device
# --------------------------------------------------------------------------------------


def _fields(weights: Mapping[str, float]) -> list[str]:
    names: list[str] = []
    for term, w in weights.items():
        if w > 0 and term != "rollout":
            names += [f for f in L.NEEDS_DATA[term] if f not in names]
    return names


def _window_starts(ds, horizon: int) -> np.ndarray:
    """Samples from which ``horizon`` more samples of the same trajectory follow."""
    traj = np.asarray(ds.trajectory)
    n = traj.shape[0] - horizon
    if n <= 0:
        return np.zeros(0, np.int64)
    same = np.ones(n, bool)
    for k in range(1, horizon + 1):
        same &= traj[k : k + n] == traj[:n]
    return np.flatnonzero(same)


def _device_arrays(ds, weights, config: TrainConfig, dtype) -> dict[str, jax.Array]:
    data = {f: jnp.asarray(getattr(ds, f), dtype) for f in _fields(weights)}
    if weights.get("rollout", 0) > 0:
        for f in ("q", "qd", "tau"):
            data.setdefault(f, jnp.asarray(getattr(ds, f), dtype))
        data["t"] = jnp.asarray(ds.t, dtype)
        starts = _window_starts(ds, config.rollout_horizon)
        if starts.size == 0:
            raise DatasetError(
                f"loss 'rollout' needs trajectories longer than rollout_horizon = {config.rollout_horizon} samples"
            )
        data["window_starts"] = jnp.asarray(starts, jnp.int32)
    return data


def _gather_windows(data, starts, horizon: int):
    idx = starts[:, None] + jnp.arange(horizon + 1)
    return {
        "q": data["q"][idx],
        "qd": data["qd"][idx],
        "tau": data["tau"][idx],
        "dt": data["t"][idx[:, 1]] - data["t"][idx[:, 0]],
    }


def _sample_batch(data) -> dict:
    return {k: v for k, v in data.items() if k not in ("t", "window_starts")}


def _tree_where(pred, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


# --------------------------------------------------------------------------------------
# The compiled pieces
# --------------------------------------------------------------------------------------


class _Engine:
    """The jitted epoch and validation functions for one model structure and config."""

    def __init__(self, static, config: TrainConfig, weights, scales, n_samples: int, total_steps: int):
        self.config = config
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.scales = scales
        self.static = static
        self.n = n_samples
        bs = config.batch_size if config.batch_size > 0 else n_samples
        self.batch = min(bs, n_samples)
        self.full_batch = self.batch == n_samples
        self.steps = config.steps_per_epoch or math.ceil(n_samples / self.batch)
        self.optimizer = make_optimizer(config, total_steps)
        self.schedule = learning_rate_schedule(config, total_steps)
        self.rollout = "rollout" in self.weights
        self.traces = 0
        self.epoch = jax.jit(self._epoch)
        self.validate = jax.jit(self._validate)
        self.lbfgs = optax.lbfgs(memory_size=config.lbfgs_memory)
        self.lbfgs_epoch = jax.jit(self._lbfgs_epoch)

    def init(self, params):
        """Optimiser state: ``(AdamW state, L-BFGS state)``, one per phase."""
        return self.optimizer.init(params), self.lbfgs.init(params)

    def steps_in(self, epoch: int) -> int:
        """Optimiser steps in epoch ``epoch`` (0-based): minibatch steps, then L-BFGS iterations."""
        return self.steps if epoch < self.config.epochs else self.config.lbfgs_steps

    def steps_through(self, epochs: int) -> int:
        """Optimiser steps in the first ``epochs`` epochs."""
        adam = min(epochs, self.config.epochs)
        return adam * self.steps + (epochs - adam) * self.config.lbfgs_steps

    def loss(self, params, batch, windows):
        model = eqx.combine(params, self.static)
        terms, singular = L.batch_losses(
            model,
            batch,
            windows,
            self.scales,
            self.weights,
            regularization=self.config.regularization,
            substeps=self.config.rollout_substeps,
        )
        return L.weighted_total(terms, self.weights), (terms, singular)

    def _indices(self, key):
        total = self.steps * self.batch
        reps = math.ceil(total / self.n)
        perms = jax.vmap(lambda k: jax.random.permutation(k, self.n))(jax.random.split(key, reps))
        return perms.reshape(-1)[:total].reshape(self.steps, self.batch)

    def _epoch(self, params, opt_state, key, data):
        self.traces += 1  # Python side effect: runs once per trace, not per call
        k_batch, k_win = jax.random.split(key)
        idx = jnp.zeros((self.steps, 0), jnp.int32) if self.full_batch else self._indices(k_batch)
        if self.rollout:
            n_win = data["window_starts"].shape[0]
            widx = jax.random.randint(k_win, (self.steps, self.config.rollout_batch_size), 0, n_win)
        else:
            widx = jnp.zeros((self.steps, 0), jnp.int32)
        samples = _sample_batch(data)

        def step(carry, xs):
            params, opt_state = carry
            i, wi = xs
            batch = samples if self.full_batch else jax.tree_util.tree_map(lambda a: a[i], samples)
            windows = (
                _gather_windows(data, data["window_starts"][wi], self.config.rollout_horizon)
                if self.rollout
                else None
            )
            (loss, (terms, singular)), grads = jax.value_and_grad(self.loss, has_aux=True)(
                params, batch, windows
            )
            finite = jnp.isfinite(loss) & _all_finite(grads)
            updates, new_opt_state = self.optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            # a non-finite step leaves parameters and optimiser state exactly as they were
            params = _tree_where(finite, new_params, params)
            opt_state = _tree_where(finite, new_opt_state, opt_state)
            return (params, opt_state), (loss, terms, finite, singular)

        (params, opt_state), (loss, terms, finite, singular) = jax.lax.scan(
            step, (params, opt_state), (idx, widx)
        )
        n_ok = jnp.maximum(jnp.sum(finite), 1)

        def mean_ok(x):
            return jnp.sum(jnp.where(finite, x, 0.0)) / n_ok

        metrics = {
            "loss": jnp.where(jnp.any(finite), mean_ok(loss), jnp.nan),
            **{k: jnp.where(jnp.any(finite), mean_ok(v), jnp.nan) for k, v in terms.items()},
            "skipped": jnp.sum(~finite),
            "singular": jnp.sum(singular),
        }
        return params, opt_state, metrics

    def _lbfgs_epoch(self, params, lbfgs_state, data):
        """``lbfgs_steps`` full-batch L-BFGS iterations; a non-finite one is skipped and counted."""
        samples = _sample_batch(data)
        windows = (
            _gather_windows(data, data["window_starts"], self.config.rollout_horizon)
            if self.rollout
            else None
        )

        def value_fn(p):
            return self.loss(p, samples, windows)[0]

        value_and_grad = optax.value_and_grad_from_state(value_fn)

        def step(carry, _):
            params, state = carry
            value, grads = value_and_grad(params, state=state)
            updates, new_state = self.lbfgs.update(
                grads, state, params, value=value, grad=grads, value_fn=value_fn
            )
            new_params = optax.apply_updates(params, updates)
            ok = jnp.isfinite(value) & _all_finite(grads) & _all_finite(new_params)
            return (_tree_where(ok, new_params, params), _tree_where(ok, new_state, state)), ok

        (params, lbfgs_state), finite = jax.lax.scan(
            step, (params, lbfgs_state), None, length=self.config.lbfgs_steps
        )
        loss, (terms, singular) = self.loss(params, samples, windows)
        metrics = {"loss": loss, **terms, "skipped": jnp.sum(~finite), "singular": singular}
        return params, lbfgs_state, metrics

    def _validate(self, params, data):
        windows = None
        if self.rollout:
            windows = _gather_windows(data, data["window_starts"], self.config.rollout_horizon)
        total, (terms, singular) = self.loss(params, _sample_batch(data), windows)
        return {"loss": total, **terms, "singular": singular}


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------


def _floats(d: Mapping) -> dict:
    return {k: (int(v) if k in ("skipped", "singular") else float(v)) for k, v in d.items()}


def _check_model_data(model, ds, what: str) -> None:
    if model.info.dof != ds.dof:
        raise ShapeError(
            f"the model has {model.info.dof} joints ({', '.join(model.info.joint_names)}) but the {what} "
            f"has {ds.dof}; build the model from the dataset's system info"
        )
    if len(ds) == 0:
        raise DatasetError(f"the {what} is empty")


def _progress_bar(enabled: bool, total: int):
    if not (enabled and sys.stderr.isatty()):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        transient=False,
    )
    bar.start()
    return bar


def train(
    model,
    train_ds,
    val_ds=None,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any, dict], bool | None] | None = None,
) -> TrainResult:
    """Fit ``model`` to ``train_ds``; see the module docstring for what happens.

    Args:
        model: a lagrax model (or any System with array leaves to fit).
        train_ds, val_ds: :class:`~lagrax.datasets.Dataset`; ``val_ds`` drives early
            stopping and the choice of the returned parameters.
        config: :class:`TrainConfig` (defaults if None).
        run_dir: where ``metrics.jsonl`` and ``checkpoints/`` go (nothing is written if None).
        resume: continue from ``run_dir/checkpoints`` (same model, data and config).
        progress: a progress bar on a terminal.
        callback: ``callback(epoch, model, record)`` after each epoch, outside the timed
            region (e.g. a benchmark's test evaluation); returning True stops training.
    """
    config = (config or TrainConfig()).validate()
    weights = config.loss_weights()
    _check_model_data(model, train_ds, "training set")
    L.check_model(model, weights)
    L.check_data(train_ds, weights, "training set")
    if val_ds is not None:
        _check_model_data(model, val_ds, "validation set")
        L.check_data(val_ds, weights, "validation set")
    dtype = DTYPES[config.dtype]
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise TrainingError("dtype 'float64' needs 64-bit JAX: jax.config.update('jax_enable_x64', True)")

    scales = L.data_scales(train_ds, dtype)
    data = _device_arrays(train_ds, weights, config, dtype)
    val_data = _device_arrays(val_ds, weights, config, dtype) if val_ds is not None else None
    sample = {k: v[0] for k, v in _sample_batch(data).items()}
    window = (
        _gather_windows(data, data["window_starts"][:1], config.rollout_horizon)
        if "window_starts" in data
        else None
    )
    window = None if window is None else jax.tree_util.tree_map(lambda a: a[0], window)
    L.check_losses(
        model,
        weights,
        sample,
        window,
        scales,
        regularization=config.regularization,
        substeps=config.rollout_substeps,
    )

    params, static = eqx.partition(model, eqx.is_inexact_array)
    bs = config.batch_size if config.batch_size > 0 else len(train_ds)
    steps_per_epoch = config.steps_per_epoch or math.ceil(len(train_ds) / min(bs, len(train_ds)))
    engine = _Engine(static, config, weights, scales, len(train_ds), config.epochs * steps_per_epoch)
    opt_state = engine.init(params)
    total_epochs = config.epochs + config.lbfgs_epochs
    base_key = jax.random.PRNGKey(config.seed)

    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_dir = run_dir / "checkpoints" if run_dir is not None else None
    state = {"params": params, "opt_state": opt_state, "best_params": params, "key": base_key}
    meta = {
        "epoch": 0,
        "history": [],
        "best_val_loss": None,
        "best_epoch": None,
        "bad_validations": 0,
        "bad_epochs": 0,
        "train_seconds": 0.0,
        "compile_seconds": 0.0,
        "skipped_steps": 0,
        "singular_samples": 0,
        "config": config.to_dict(),
        "stopped_reason": None,
    }
    if resume:
        if ckpt_dir is None:
            raise CheckpointError("resume=True needs the run_dir of the run to continue")
        state, meta = load_checkpoint(ckpt_dir, state)
        old = {k: v for k, v in meta["config"].items() if k not in RESUMABLE_CHANGES}
        new = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise CheckpointError(
                f"cannot resume: the configuration differs from the checkpoint's in {', '.join(changed)} "
                f"(was {[old.get(k) for k in changed]}, now {[new.get(k) for k in changed]})"
            )
        meta["config"] = config.to_dict()
    params, opt_state, best_params = state["params"], state["opt_state"], state["best_params"]
    history: list[dict] = list(meta["history"])

    metrics_file = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        # rewrite from the checkpoint's history: epochs after the last checkpoint are redone
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        metrics_file = (run_dir / "metrics.jsonl").open("a")

    t_compile = time.perf_counter()
    epoch_fn = engine.epoch.lower(params, opt_state[0], base_key, data).compile()
    val_fn = engine.validate.lower(params, val_data).compile() if val_data is not None else None
    meta["compile_seconds"] = meta.get("compile_seconds", 0.0) + time.perf_counter() - t_compile
    lbfgs_fn = None  # compiled when the L-BFGS phase starts

    def checkpoint():
        if ckpt_dir is not None:
            meta["history"] = history
            save_checkpoint(
                ckpt_dir,
                {"params": params, "opt_state": opt_state, "best_params": best_params, "key": base_key},
                meta,
            )

    bar = _progress_bar(progress, total_epochs)
    task = bar.add_task("", total=total_epochs, completed=meta["epoch"]) if bar is not None else None
    stopped = meta["stopped_reason"] if meta["epoch"] >= total_epochs else None
    stopped = stopped or ("completed" if meta["epoch"] >= total_epochs else None)
    try:
        epoch = meta["epoch"]
        while stopped is None:
            if epoch < config.epochs:
                t0 = time.perf_counter()
                params, adam_state, m = epoch_fn(
                    params, opt_state[0], jax.random.fold_in(base_key, epoch), data
                )
                opt_state = (adam_state, opt_state[1])
                m = _floats(jax.device_get(m))
                # the schedule's position: skipped steps do not advance it
                lr = float(engine.schedule((epoch + 1) * engine.steps - meta["skipped_steps"] - m["skipped"]))
                record = {"epoch": epoch + 1, "step": engine.steps_through(epoch + 1), "lr": lr, **m}
            else:
                if lbfgs_fn is None:
                    t_compile = time.perf_counter()
                    lbfgs_fn = engine.lbfgs_epoch.lower(params, opt_state[1], data).compile()
                    meta["compile_seconds"] += time.perf_counter() - t_compile
                t0 = time.perf_counter()
                params, lbfgs_state, m = lbfgs_fn(params, opt_state[1], data)
                opt_state = (opt_state[0], lbfgs_state)
                m = _floats(jax.device_get(m))
                record = {
                    "epoch": epoch + 1,
                    "step": engine.steps_through(epoch + 1),
                    "optimizer": "lbfgs",
                    **m,
                }
            last = epoch + 1 >= total_epochs
            improved = False
            if val_fn is not None and ((epoch + 1) % config.val_every == 0 or last):
                v = _floats(jax.device_get(val_fn(params, val_data)))
                record.update({f"val_{k}": x for k, x in v.items()})
                if math.isfinite(v["loss"]) and (
                    meta["best_val_loss"] is None or v["loss"] < meta["best_val_loss"]
                ):
                    best_params, meta["best_val_loss"], meta["best_epoch"] = params, v["loss"], epoch + 1
                    meta["bad_validations"], improved = 0, True
                else:
                    meta["bad_validations"] += 1
            elif val_fn is None:
                best_params, meta["best_epoch"] = params, epoch + 1
            meta["train_seconds"] += time.perf_counter() - t0
            record["seconds"] = meta["train_seconds"]
            epoch += 1
            meta["epoch"] = epoch
            meta["skipped_steps"] += m["skipped"]
            meta["singular_samples"] += m["singular"]
            history.append(record)
            if metrics_file is not None:
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
            if bar is not None:
                shown = " ".join(f"{k}={record[k]:.3g}" for k in ("loss", "val_loss") if k in record)
                bar.update(task, completed=epoch, description=shown)

            meta["bad_epochs"] = meta["bad_epochs"] + 1 if m["skipped"] == engine.steps_in(epoch - 1) else 0
            if meta["bad_epochs"] >= config.max_bad_epochs:
                checkpoint()
                raise TrainingError(
                    f"training stopped at epoch {epoch}: every step of the last {meta['bad_epochs']} epochs "
                    f"had a non-finite loss or gradient ({meta['skipped_steps']} steps skipped in all). "
                    f"Check the data for NaN/inf, or lower the learning rate (lr = {config.lr:g}); "
                    "the parameters were left at their last finite values"
                )
            if last:
                stopped = "completed"
            elif (
                config.patience is not None
                and val_fn is not None
                and meta["bad_validations"] >= config.patience
            ):
                stopped = "early_stopping"
            elif config.max_seconds is not None and meta["train_seconds"] >= config.max_seconds:
                stopped = "max_seconds"
            elif (
                config.target_val_loss is not None
                and improved
                and meta["best_val_loss"] <= config.target_val_loss
            ):
                stopped = "target_val_loss"
            if stopped is not None or epoch % config.checkpoint_every == 0:
                meta["stopped_reason"] = stopped
                checkpoint()
            if callback is not None and stopped is None:
                if callback(epoch, eqx.combine(params, static), record):
                    stopped = "callback"
                    meta["stopped_reason"] = stopped
                    checkpoint()
    finally:
        if bar is not None:
            bar.stop()
        if metrics_file is not None:
            metrics_file.close()

    if meta["skipped_steps"]:
        warnings.warn(
            f"{meta['skipped_steps']} training steps had a non-finite loss or gradient and were skipped",
            RuntimeWarning,
            stacklevel=2,
        )
    final = best_params if val_fn is not None and meta["best_val_loss"] is not None else params
    return TrainResult(
        model=eqx.combine(final, static),
        history=history,
        train_seconds=meta["train_seconds"],
        steps=engine.steps_through(meta["epoch"]) - meta["skipped_steps"],
        skipped_steps=meta["skipped_steps"],
        stopped_reason=stopped,
        compile_seconds=meta["compile_seconds"],
        singular_samples=meta["singular_samples"],
        best_epoch=meta["best_epoch"],
        best_val_loss=meta["best_val_loss"],
        epoch_traces=engine.traces,
    )


# --------------------------------------------------------------------------------------
# run_training: the command line's entry
# --------------------------------------------------------------------------------------

# What a run directory holds; --force removes these (and nothing else) before a new run.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "metrics.json",
    "split.json",
    "model.eqx",
    "model.json",
    "summary.json",
    "checkpoints",
)


def _prepare_run_dir(out_dir: Path, force: bool, resume: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsLagraxError(f"{out_dir} exists and is not a directory")
    existing = [p for p in out_dir.iterdir()] if out_dir.exists() else []
    if resume:
        if not (out_dir / "checkpoints").exists():
            raise CheckpointError(
                f"nothing to resume in {out_dir}: it has no checkpoints/ (train without --resume)"
            )
        return
    if existing and not force:
        raise FileExistsLagraxError(
            f"run directory {out_dir} exists and is not empty; use --resume to continue that run "
            "or --force to replace its run files"
        )
    for name in RUN_FILES:  # only what a run writes: --force never deletes anything else
        p = out_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _resolve(
    out_dir: Path, resume: bool, config, model_options, model_name: str
) -> tuple[TrainConfig, dict, dict]:
    """The run's settings: the saved run's when resuming, else the model's preset
    (:data:`~lagrax.training.config.PRESETS`), with ``config`` / ``model_options`` on top."""
    saved = {}
    if resume and (out_dir / "config.json").exists():
        saved = json.loads((out_dir / "config.json").read_text())
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        base = saved.get("train") if saved else PRESETS.get(model_name, {})
        cfg = TrainConfig.from_dict({**base, **dict(config or {})})
    base_options = saved.get("model_options") if saved else PRESET_MODEL_OPTIONS.get(model_name, {})
    options = {**base_options, **dict(model_options or {})}
    return cfg, options, saved


def _split_record(ds, train_ids, test_ids, val_ids) -> dict:
    def describe(ids):
        return {"ids": [int(i) for i in ids], "labels": [ds.label(i) for i in ids]}

    return {"train": describe(train_ids), "validation": describe(val_ids), "test": describe(test_ids)}


def run_training(
    model_name: str,
    data_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig | Mapping | None = None,
    model_options: Mapping | None = None,
    test_labels=None,
    test_fraction: float | None = None,
    force: bool = False,
    resume: bool = False,
    *,
    val_fraction: float = 0.0,
    progress: bool = True,
) -> Path:
    """Train ``model_name`` on a dataset file and write the run directory ``out_dir``.

    The directory gets ``config.json`` (resolved config, model and options, data path,
    split), ``split.json`` (train/validation/test trajectory ids and labels),
    ``metrics.jsonl`` (one line per epoch), ``checkpoints/``, the model (``model.eqx``
    via :func:`lagrax.models.io.save_model`) and, with a test split, ``metrics.json``
    from :func:`lagrax.evaluation.evaluate`.

    ``config`` / ``model_options`` given as mappings are overrides: on top of the
    saved run's settings when resuming, of the model's preset otherwise (a
    :class:`TrainConfig` is used as it is). ``val_fraction`` of
    the training trajectories is held out for validation and early stopping.
    An existing non-empty ``out_dir`` is refused unless ``resume`` or ``force``
    (which removes only the files a run writes, see :data:`RUN_FILES`).
    """
    from ..datasets import load_dataset
    from ..models import MODELS, make_model

    if model_name not in MODELS:
        from ..errors import UnknownNameError

        raise UnknownNameError.for_name("model", model_name, MODELS)
    out_dir = Path(out_dir)
    if resume and force:
        raise LagraxError("give either --resume (continue the run) or --force (start it again), not both")
    cfg, options, saved = _resolve(out_dir, resume, config, model_options, model_name)
    if saved and saved.get("model") not in (None, model_name):
        raise CheckpointError(f"cannot resume: {out_dir} holds a {saved['model']!r} run, not {model_name!r}")
    ds = load_dataset(data_path)
    L.check_data(ds, cfg.loss_weights(), f"dataset {data_path}")
    if saved and saved.get("dof") not in (None, ds.dof):
        raise ShapeError(
            f"cannot resume: the run's model has {saved['dof']} joints but {data_path} has {ds.dof}"
        )
    if test_labels is not None or test_fraction is not None:
        train_ds, test_ds = ds.split(test_labels=test_labels, test_fraction=test_fraction, seed=cfg.seed)
        if len(test_ds) == 0:
            raise DatasetError(f"the test split of {data_path} is empty")
    else:
        train_ds, test_ds = ds, None
    val_ds = None
    if val_fraction > 0:
        train_ds, val_ds = train_ds.split(test_fraction=val_fraction, seed=cfg.seed)
    _prepare_run_dir(out_dir, force, resume)  # only after every input check passed

    options = {"dtype": cfg.dtype, **options}
    model = make_model(model_name, train_ds.info, key=jax.random.PRNGKey(cfg.seed), **options)
    model = model.with_data_statistics(train_ds.q, train_ds.qd, train_ds.qdd, train_ds.tau)

    ids = lambda d: [] if d is None else sorted(int(i) for i in np.unique(d.trajectory))  # noqa: E731
    split = _split_record(ds, ids(train_ds), ids(test_ds), ids(val_ds))
    run_config = {
        "model": model_name,
        "model_options": options,
        "train": cfg.to_dict(),
        "data": str(data_path),
        "dof": ds.dof,
        "test_labels": test_labels if isinstance(test_labels, (str, type(None))) else list(test_labels),
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "split": split,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.json", json.dumps(run_config, indent=2) + "\n")
    atomic_write_text(out_dir / "split.json", json.dumps(split, indent=2) + "\n")

    result = train(model, train_ds, val_ds, cfg, run_dir=out_dir, resume=resume, progress=progress)

    from ..models.io import save_model

    save_model(result.model, out_dir, force=True)
    summary = {
        "model": model_name,
        "epochs": len(result.history),
        "steps": result.steps,
        "skipped_steps": result.skipped_steps,
        "singular_samples": result.singular_samples,
        "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds,
        "stopped_reason": result.stopped_reason,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "final_loss": result.history[-1]["loss"] if result.history else None,
    }
    if test_ds is not None:
        from ..evaluation import evaluate

        metrics = evaluate(
            result.model, test_ds, training={"train_seconds": result.train_seconds, "steps": result.steps}
        )
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        summary["test"] = metrics
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return out_dir
