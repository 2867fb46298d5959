"""The training loop: epochs of a jitted step, validation, early stopping, checkpoints.

:func:`train` fits any lagrax model (an equinox :class:`~lagrax.systems.System`) to a
:class:`~lagrax.data.dataset.Dataset` with the weighted losses of
:mod:`lagrax.training.losses`, composed from the parts of :mod:`lagrax.training.step`:

* the dataset's arrays are put on the device once; an AdamW epoch
  (``steps_per_epoch`` minibatch steps over a fresh permutation, see
  :mod:`lagrax.training.batches`) is one compiled ``lax.scan`` of the step, traced once
  per run; ``lbfgs_epochs`` full-batch L-BFGS epochs follow, made by the same
  :func:`~lagrax.training.step.make_step`;
* a step whose loss or gradient is not finite is skipped (parameters and optimiser
  state unchanged) and counted; if every step of ``max_bad_epochs`` consecutive
  epochs is skipped, training stops with :class:`TrainingError`;
* validation every ``val_every`` epochs on held-out trajectories; early stopping after
  ``patience`` validations without improvement; the best parameters are returned;
* checkpoints (atomic, see :mod:`lagrax.training.checkpoint`) every
  ``checkpoint_every`` epochs and at the end; ``resume=True`` continues a killed run
  and gives the same parameters as an uninterrupted one (per-epoch PRNG keys are
  ``fold_in(seed, epoch)``, so nothing depends on where a run was cut);
* one JSON line per epoch in ``metrics.jsonl`` and an optional progress bar;
* a model that can ``prefit`` (a capability: the rigid-body model's one-shot least-squares
  identification) is prefit on the training set before the first epoch, and the gradient
  epochs refine it. Refinement never makes it worse: at the end the prefit parameters
  are scored like the trained ones (validation loss, or the full-batch training loss
  without a validation set) and kept where they are at least as good, so an exact
  identification (torque nMSE ~1e-14) survives an AdamW phase that would blur it;
* a model with a ``decay_mask`` (a capability) has weight decay on those parameters only.

The same loop scales out: an :class:`~lagrax.models.ensemble.Ensemble` (or
``ensemble=K``) trains its members in one ``vmap``-ped program (:class:`Programs`);
``devices=N`` splits each batch over a mesh (:mod:`lagrax.training.parallel`); a
:class:`~lagrax.data.shards.ShardedDataset` is streamed chunk by chunk through the same
compiled epoch (:mod:`lagrax.training.streaming`).

This module does not manage run directories or read dataset files (see
:mod:`lagrax.training.rundir`), and computes only training losses (evaluation metrics
are :mod:`lagrax.analysis.metrics`'s).
"""

from __future__ import annotations

import dataclasses
import json
import math
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

from lagrax.core.errors import DatasetError, LagraxError, ShapeError
from lagrax.models.ensemble import Ensemble
from lagrax.core.options import Precision
from lagrax.training import losses as L
from lagrax.training.batches import Batching, Data, device_arrays, full_batch, gather_windows, samples
from lagrax.training.checkpoint import (
    CheckpointError,
    RunCheckpoint,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from lagrax.training.config import TrainConfig
from lagrax.training.optimizers import learning_rate_schedule, make_lbfgs, make_optimizer
from lagrax.training.parallel import agree_on_stop, data_parallel, is_writer
from lagrax.training.rundir import RunDir
from lagrax.training.streaming import Stream, is_streamed, stream_epoch
from lagrax.training.step import StepInfo, TrainState, make_epoch, make_step, tree_where


class TrainingError(LagraxError, RuntimeError):
    """Training cannot go on (e.g. every step keeps producing non-finite losses)."""


class PrefitWarning(UserWarning):
    """A model's prefit left parameters that the data do not identify (named in the message)."""


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
    members: dict | None = None  # an ensemble's per-member record (see Bookkeeping.members)
    # the prefit's report (the first member's, for an ensemble), or None without a prefit
    prefit: dict | None = None
    # whether the prefit parameters were kept over the trained ones (per member: a list)
    kept_prefit: bool | list[bool] | None = None


@dataclasses.dataclass
class Bookkeeping:
    """The loop's record between epochs (the JSON header of a checkpoint, with the config)."""

    epoch: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    best_val_loss: float | None = None
    best_epoch: int | None = None
    bad_validations: int = 0
    bad_epochs: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    skipped_steps: int = 0
    singular_samples: int = 0
    stopped_reason: str | None = None
    # an ensemble's per-member "best_val_loss", "best_epoch" and "skipped_steps" (lists)
    members: dict | None = None

    def header(self, config: TrainConfig) -> dict:
        """What a checkpoint's header holds: this record and the run's settings."""
        return {**dataclasses.asdict(self), "config": config.to_dict()}

    @classmethod
    def from_header(cls, header: Mapping) -> Bookkeeping:
        """The record of a checkpoint's header."""
        return cls(**{f.name: header[f.name] for f in dataclasses.fields(cls) if f.name in header})


# --------------------------------------------------------------------------------------
# The compiled pieces
# --------------------------------------------------------------------------------------


class Programs:
    """The jitted AdamW epoch, L-BFGS epoch and validation of one model structure and config.

    A run has one :class:`~lagrax.training.step.TrainState` whose optimiser state is the
    pair ``(AdamW state, L-BFGS state)``, so checkpoints have one structure throughout;
    each phase steps the state with its own entry (:func:`in_phase`, :func:`out_of_phase`).

    With ``members = K`` (an ensemble), the state's leaves have a leading member axis and
    each program is the single-model program under ``jax.vmap``: the members share the
    data and have their own parameters, optimiser states and keys (so their own shuffles),
    and a non-finite step is skipped for its member only.
    """

    def __init__(
        self,
        static,
        config: TrainConfig,
        scales: L.Scales,
        batching: Batching,
        members: int | None = None,
        chunks: int = 1,
        decay_mask=None,
    ):
        self.config, self.static, self.scales, self.batching = config, static, scales, batching
        self.members = members
        # an AdamW epoch's minibatch steps: ``chunks`` scans of ``batching`` (streamed data)
        self.epoch_steps = batching.steps * chunks
        self.objective = config.loss()
        total_steps = config.epochs * self.epoch_steps
        self.schedule = learning_rate_schedule(config, total_steps)
        self.optimizers = (make_optimizer(config, total_steps, decay_mask), make_lbfgs(config))
        adamw_step = make_step(self.loss, self.optimizers[0], has_aux=True)
        lbfgs_step = make_step(lambda p, b: self.loss(p, b)[0], self.optimizers[1])
        self.adamw_scan = make_epoch(adamw_step, batching.draw, batching.gather)
        self.lbfgs_scan = make_epoch(lbfgs_step, self._lbfgs_rows, lambda full, _: full)
        self.traces = 0
        self.adamw_epoch = jax.jit(self._per_member(self._adamw_epoch, (0, None, 0)))
        self.lbfgs_epoch = jax.jit(self._each_member(self._lbfgs_epoch))
        self.validate = jax.jit(self._per_member(self._validate, (0, None)))

    def _per_member(self, fn: Callable, in_axes: tuple) -> Callable:
        return fn if self.members is None else jax.vmap(fn, in_axes=in_axes)

    def _each_member(self, fn: Callable) -> Callable:
        """``fn(state, shared)`` member after member (``lax.map``) inside one program: the
        L-BFGS line search is a while loop, which under ``vmap`` would run every member
        until the slowest one's search ends, with both branches of each ``cond``."""
        if self.members is None:
            return fn
        return lambda state, shared: jax.lax.map(lambda s: fn(s, shared), state)

    def init(self, params, seed: int) -> TrainState:
        """The state before the first step (both phases' optimiser states initialised);
        member ``k`` of an ensemble gets the key of seed ``seed + k``."""

        def one(p, key):
            opt_state = tuple(o.init(p) for o in self.optimizers)
            return TrainState(p, opt_state, jnp.zeros((), jnp.int32), key)

        if self.members is None:
            return one(params, jax.random.PRNGKey(seed))
        keys = jax.vmap(jax.random.PRNGKey)(seed + jnp.arange(self.members))
        return jax.vmap(one)(params, keys)

    def epoch_key(self, key, epoch: int):
        """The key of epoch ``epoch`` (0-based), ``fold_in(key, epoch)`` (per member)."""
        return self._per_member(lambda k: jax.random.fold_in(k, epoch), (0,))(key)

    def model(self, params):
        """The model of ``params`` (an :class:`~lagrax.models.ensemble.Ensemble` for members)."""
        model = eqx.combine(params, self.static)
        return model if self.members is None else Ensemble(model)

    def keep_where(self, improved, new, old):
        """``new`` for the members where ``improved`` (a bool per member), else ``old``."""
        return jax.vmap(tree_where)(jnp.asarray(improved), new, old)

    def loss(self, params, batch: tuple[Data, Data | None]):
        """``(objective, (terms, singular samples))`` of a ``(samples, windows)`` batch."""
        return self.objective(
            eqx.combine(params, self.static),
            *self.batching.constrain(batch),  # split over the devices when data-parallel
            self.scales,
        )

    def steps_in(self, epoch: int) -> int:
        """Optimiser steps in epoch ``epoch`` (0-based): minibatch steps, then L-BFGS iterations."""
        return self.epoch_steps if epoch < self.config.epochs else self.config.lbfgs_steps

    def steps_through(self, epochs: int) -> int:
        """Optimiser steps in the first ``epochs`` epochs."""
        adam = min(epochs, self.config.epochs)
        return adam * self.epoch_steps + (epochs - adam) * self.config.lbfgs_steps

    def _lbfgs_rows(self, key, data):
        return jnp.zeros((self.config.lbfgs_steps, 0), jnp.int32)

    def _adamw_epoch(self, state: TrainState, data: Data, key):
        self.traces += 1  # Python side effect: runs once per trace, not per call
        phase_state, info = self.adamw_scan(in_phase(state, 0), data, key)
        return out_of_phase(state, phase_state, 0), _epoch_metrics(info)

    def _lbfgs_epoch(self, state: TrainState, full):
        # full batch: nothing is drawn, the key is not used
        phase_state, info = self.lbfgs_scan(in_phase(state, 1), full, state.key)
        state = out_of_phase(state, phase_state, 1)
        loss, (terms, singular) = self.loss(state.params, full)
        return state, {"loss": loss, **terms, "skipped": jnp.sum(~info.finite), "singular": singular}

    def _validate(self, params, full):
        total, (terms, singular) = self.loss(params, full)
        return {"loss": total, **terms, "singular": singular}


def in_phase(state: TrainState, phase: int) -> TrainState:
    """``state`` with only optimiser ``phase``'s state (0: AdamW, 1: L-BFGS), for its step."""
    return TrainState(state.params, state.opt_state[phase], state.step, state.key)


def out_of_phase(state: TrainState, stepped: TrainState, phase: int) -> TrainState:
    """``stepped`` (from :func:`in_phase`) with the other phases' optimiser states put back."""
    opt_state = state.opt_state[:phase] + (stepped.opt_state,) + state.opt_state[phase + 1 :]
    return TrainState(stepped.params, opt_state, stepped.step, stepped.key)


def _epoch_metrics(info: StepInfo) -> dict:
    """Means over the epoch's applied steps (NaN if none was), skipped and singular counts."""
    terms, singular = info.aux
    finite = info.finite
    n_ok = jnp.maximum(jnp.sum(finite), 1)

    def mean_ok(x):
        return jnp.where(jnp.any(finite), jnp.sum(jnp.where(finite, x, 0.0)) / n_ok, jnp.nan)

    return {
        "loss": mean_ok(info.loss),
        **{k: mean_ok(v) for k, v in terms.items()},
        "skipped": jnp.sum(~finite),
        "singular": jnp.sum(singular),
    }


# --------------------------------------------------------------------------------------
# Setting up
# --------------------------------------------------------------------------------------


COUNTS = ("skipped", "singular")


def _floats(d: Mapping) -> dict:
    return {k: (int(v) if k in COUNTS else float(v)) for k, v in d.items()}


def _finite_mean(v: np.ndarray) -> float:
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else float("nan")


def record_metrics(m: Mapping, members: int | None) -> dict:
    """Host numbers of a program's metrics. For an ensemble: the mean over the members
    whose value is finite (counts: the total), and each member's values under ``members``."""
    m = jax.device_get(m)
    if members is None:
        return _floats(m)
    per = {k: np.asarray(v) for k, v in m.items()}
    out: dict[str, Any] = {k: int(v.sum()) if k in COUNTS else _finite_mean(v) for k, v in per.items()}
    out["members"] = {k: [int(x) if k in COUNTS else float(x) for x in v] for k, v in per.items()}
    return out


def _check_model_data(model, ds, what: str) -> None:
    if model.info.dof != ds.dof:
        raise ShapeError(
            f"the model has {model.info.dof} joints ({', '.join(model.info.joint_names)}) but the {what} "
            f"has {ds.dof}; build the model from the dataset's system info"
        )
    if len(ds) == 0:
        raise DatasetError(f"the {what} is empty")


def _check_inputs(model, train_ds, val_ds, config: TrainConfig) -> None:
    loss = config.loss()
    _check_model_data(model, train_ds, "training set")
    loss.check_model(model)
    loss.check_data(train_ds, "training set")
    if val_ds is not None:
        _check_model_data(model, val_ds, "validation set")
        loss.check_data(val_ds, "validation set")
    if config.dtype is Precision.FLOAT64 and not jax.config.jax_enable_x64:
        raise TrainingError("dtype 'float64' needs 64-bit JAX: jax.config.update('jax_enable_x64', True)")


def _data_precision(model, config: TrainConfig) -> TrainConfig:
    """``config`` with ``dtype`` float64 when ``model`` has float64 parameters: data rounded
    to float32 would cap the fit at float32 accuracy (and mixed precision breaks L-BFGS)."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    if config.dtype is Precision.FLOAT32 and any(leaf.dtype == jnp.float64 for leaf in leaves):
        return dataclasses.replace(config, dtype=Precision.FLOAT64)
    return config


def _check_losses_trace(model, data: Data, scales: L.Scales, config: TrainConfig) -> None:
    """Every active term traced on one sample (and window), so a missing quantity fails now."""
    sample = {k: v[0] for k, v in samples(data).items()}
    window = None
    if "window_starts" in data:
        windows = gather_windows(data, data["window_starts"][:1], config.rollout_horizon)
        window = jax.tree_util.tree_map(lambda a: a[0], windows)
    config.loss().check_traced(model, sample, window, scales)


@dataclasses.dataclass
class _Inputs:
    """What :func:`train` derives from its arguments before compiling anything."""

    model: Any  # the model, or the Ensemble to train
    single: Any  # the model, or the ensemble's first member (for the checks)
    members: int | None
    config: TrainConfig
    loss: L.Loss
    scales: L.Scales
    data: Data  # on the device: every sample, or one chunk of streamed data
    stream: Stream | None
    prefit: dict | None = None  # the prefit's report (the first member's)


def _inputs(model, train_ds, val_ds, config: TrainConfig, ensemble: int | None) -> _Inputs:
    """Check and prepare :func:`train`'s inputs (streamed data: on a seeded sample)."""
    stream = None
    stats_ds = train_ds
    if is_streamed(train_ds):
        stream = Stream.of(train_ds, config.loss(), config)
        stats_ds = stream.sample()
    if ensemble is not None:
        model = ensemble_of(model, ensemble, config.seed, stats_ds)
    members = model.size if isinstance(model, Ensemble) else None
    single = model.member(0) if members else model
    config = _data_precision(single, config)
    if stream is not None:
        stream = dataclasses.replace(stream, dtype=config.dtype.dtype)
    _check_inputs(single, stats_ds, val_ds, config)
    model, report = prefit(model, members, stats_ds)
    single = model.member(0) if members else model
    loss = config.loss()
    scales = L.data_scales(stats_ds, config.dtype.dtype)
    data = stream.first() if stream is not None else device_arrays(train_ds, loss, config)
    _check_losses_trace(single, data, scales, config)
    return _Inputs(model, single, members, config, loss, scales, data, stream, report)


def prefit(model, members: int | None, train_ds):
    """``(model, report)``: the model prefit on ``train_ds`` where it ``provides("prefit")``
    and the data have torques, else ``(model, None)``. An ensemble (``members``) whose
    members are all the same (a ``rigid_body``'s start is deterministic) is prefit once and
    the result shared; otherwise each member is prefit (the first one's report)."""
    from lagrax.data.dataset import is_passive

    single = model.member(0) if members else model
    if not single.provides("prefit") or train_ds.tau is None or is_passive(train_ds):
        return model, None
    if not members:
        model, report = single.prefit(train_ds)
    elif _identical_members(model):  # a rigid_body's start is deterministic: prefit once
        fitted, report = single.prefit(train_ds)
        model = Ensemble.of([fitted] * members)
    else:
        fitted = [model.member(i).prefit(train_ds) for i in range(members)]
        model, report = Ensemble.of([m for m, _ in fitted]), fitted[0][1]
    if report.get("unidentifiable"):
        warnings.warn(unidentifiable_message(report), PrefitWarning, stacklevel=4)
    return model, report


def _identical_members(ensemble: Ensemble) -> bool:
    """Whether every member's parameters are the first one's (then so are their prefits)."""
    stacked = jax.tree_util.tree_leaves(eqx.filter(ensemble.members, eqx.is_array))
    return all(bool(np.all(np.asarray(leaf) == np.asarray(leaf)[:1])) for leaf in stacked)


def unidentifiable_message(report: Mapping) -> str:
    """The warning that names the parameters a prefit's ``report`` could not identify."""
    names = report["unidentifiable"]
    return (
        f"the training data do not identify {len(names)} parameter(s) on their own: {', '.join(names)} "
        "(they keep their start values where no excited combination moves them; see the base "
        "parameters in identification.json)"
    )


# the copies of a member's parameters a training holds: the parameters, their gradient,
# AdamW's two moments, the update and the best parameters kept for early stopping
_TRAINING_COPIES = 6


def check_ensemble_fits(member_bytes: int, size: int) -> None:
    """Refuse an ensemble of ``size`` members of ``member_bytes`` bytes of parameters each
    whose training state alone (:data:`_TRAINING_COPIES` copies) exceeds the machine's memory."""
    from lagrax.core.memory import check_fits

    nbytes = size * _TRAINING_COPIES * member_bytes
    check_fits(nbytes, f"an ensemble of {size} members", "train fewer members (--ensemble)")


def ensemble_of(model, size: int, seed: int, train_ds) -> Ensemble:
    """An ensemble of ``size`` members of ``model``'s kind: ``model.spec`` built from the
    key of seed ``seed + k`` for member ``k`` and adapted to ``train_ds``'s statistics, as
    a run with that seed alone builds its model."""
    if isinstance(model, Ensemble):
        model = model.member(0)
    if not (isinstance(size, int) and size >= 1):
        raise LagraxError(f"ensemble must be a positive number of members, got {size!r}")
    if not model.provides("spec"):
        raise LagraxError(f"ensemble: a {type(model).__name__} has no spec to build members from")
    arrays = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    check_ensemble_fits(sum(x.size * x.dtype.itemsize for x in arrays), size)
    spec = model.spec
    ds = train_ds

    def member(key):
        return spec.build(model.info, key=key).with_data_statistics(ds.q, ds.qd, ds.qdd, ds.tau)

    return Ensemble.build(member, range(seed, seed + size))


def _start(programs: Programs, params, config: TrainConfig, ckpt_dir: Path | None, resume: bool):
    """``(RunCheckpoint, Bookkeeping)`` of a new run, or of the checkpoint being resumed."""
    state = programs.init(params, config.seed)
    saved, book = RunCheckpoint(state, params), Bookkeeping()
    if not resume:
        return saved, book
    if ckpt_dir is None:
        raise CheckpointError("resume=True needs the run_dir of the run to continue")
    saved, header = load_checkpoint(ckpt_dir, saved)
    check_resumable(header["config"], config.to_dict())
    return RunCheckpoint(*saved), Bookkeeping.from_header(header)


def _checkpoint(ckpt_dir: Path | None, saved: RunCheckpoint, book: Bookkeeping, config: TrainConfig) -> None:
    """Write the run's state and bookkeeping (nothing without a run directory)."""
    if ckpt_dir is not None:
        save_checkpoint(ckpt_dir, saved, book.header(config))


def _progress_bar(enabled: bool, total: int, done: int):
    """A rich progress bar with ETA on a terminal (``None`` elsewhere), and its task."""
    if not (enabled and sys.stderr.isatty()):
        return None, None
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
    return bar, bar.add_task("", total=total, completed=done)


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """What the loop reads (and the compiled functions it fills in)."""

    config: TrainConfig
    programs: Programs
    data: Data
    val_full: tuple | None
    ckpt_dir: Path | None
    callback: Callable | None
    progress: bool = False
    metrics_file: Any = None
    bar: Any = None
    task: Any = None
    adamw_fn: Callable | None = None
    lbfgs_fn: Callable | None = None
    validate_fn: Callable | None = None
    train_full: tuple | None = None
    stream: Stream | None = None  # streamed data: run.data is then one chunk
    place: Callable | None = None  # puts a streamed chunk on the run's devices

    @property
    def total_epochs(self) -> int:
        return self.config.epochs + self.config.lbfgs_epochs


def _compile(run: _Run, saved: RunCheckpoint, book: Bookkeeping) -> None:
    """Compile the AdamW epoch and validation now, so their time is not training time."""
    t0 = time.perf_counter()
    state, p = saved.state, run.programs
    run.adamw_fn = p.adamw_epoch.lower(state, run.data, state.key).compile()
    if run.val_full is not None:
        run.validate_fn = p.validate.lower(state.params, run.val_full).compile()
    book.compile_seconds += time.perf_counter() - t0


def _train_epoch(run: _Run, state: TrainState, book: Bookkeeping) -> tuple[TrainState, dict, float]:
    """One AdamW or L-BFGS epoch: ``(state, record, start time)``."""
    epoch, p = book.epoch, run.programs
    if epoch < run.config.epochs:
        t0 = time.perf_counter()
        if run.stream is None:
            state, m = run.adamw_fn(state, run.data, p.epoch_key(state.key, epoch))
        else:
            state, m = _stream_epoch(run, state, epoch)
        m = record_metrics(m, p.members)
        # the schedule's position (a member's, on average): skipped steps do not advance it
        skipped = (book.skipped_steps + m["skipped"]) // (p.members or 1)
        lr = float(p.schedule((epoch + 1) * p.epoch_steps - skipped))
        return state, {"epoch": epoch + 1, "step": p.steps_through(epoch + 1), "lr": lr, **m}, t0
    if run.lbfgs_fn is None:
        t_compile = time.perf_counter()
        run.train_full = full_batch(run.data, p.batching.horizon)
        run.lbfgs_fn = p.lbfgs_epoch.lower(state, run.train_full).compile()
        book.compile_seconds += time.perf_counter() - t_compile
    t0 = time.perf_counter()
    state, m = run.lbfgs_fn(state, run.train_full)
    m = record_metrics(m, p.members)
    return state, {"epoch": epoch + 1, "step": p.steps_through(epoch + 1), "optimizer": "lbfgs", **m}, t0


def _stream_epoch(run: _Run, state: TrainState, epoch: int):
    """An AdamW epoch over streamed chunks (:func:`~lagrax.training.streaming.stream_epoch`)."""
    key = run.programs.epoch_key(state.key, epoch)

    def on_chunk(done: int, total: int) -> None:
        if run.bar is not None:
            run.bar.update(run.task, completed=epoch + done / total, description=f"chunk {done}/{total}")

    def chunk_key(c: int):
        return run.programs.epoch_key(key, c)

    return stream_epoch(run.adamw_fn, state, run.stream, epoch, chunk_key, run.place, on_chunk)


def _validate(run: _Run, saved: RunCheckpoint, book: Bookkeeping, record: dict) -> tuple[RunCheckpoint, bool]:
    """Validate when due, keeping the best parameters; ``(saved, improved)``."""
    params, epoch = saved.state.params, book.epoch + 1
    if run.validate_fn is None:
        book.best_epoch = epoch
        return RunCheckpoint(saved.state, params), False
    if epoch % run.config.val_every != 0 and epoch < run.total_epochs:
        return saved, False
    v = record_metrics(run.validate_fn(params, run.val_full), run.programs.members)
    record.update({f"val_{k}": x for k, x in v.items() if k != "members"})
    if run.programs.members is not None:
        return _validate_members(run, saved, book, record, v["members"])
    if math.isfinite(v["loss"]) and (book.best_val_loss is None or v["loss"] < book.best_val_loss):
        book.best_val_loss, book.best_epoch, book.bad_validations = v["loss"], epoch, 0
        return RunCheckpoint(saved.state, params), True
    book.bad_validations += 1
    return saved, False


def _validate_members(run: _Run, saved: RunCheckpoint, book: Bookkeeping, record: dict, v: dict):
    """:func:`_validate` for an ensemble: each member keeps its own best parameters; the run
    improved if any member did (early stopping waits for the last member to stop improving)."""
    epoch, k = book.epoch + 1, run.programs.members
    record["members"].update({f"val_{name}": x for name, x in v.items()})
    mem = book.members or {}
    best = [math.inf if b is None else b for b in mem.get("best_val_loss", [None] * k)]
    improved = [math.isfinite(x) and x < b for x, b in zip(v["loss"], best)]
    if not any(improved):
        book.bad_validations += 1
        return saved, False
    best = [x if up else b for x, up, b in zip(v["loss"], improved, best)]
    epochs = [epoch if up else e for up, e in zip(improved, mem.get("best_epoch", [None] * k))]
    mem.update(best_val_loss=[b if math.isfinite(b) else None for b in best], best_epoch=epochs)
    book.members = mem
    book.best_val_loss, book.best_epoch, book.bad_validations = _finite_mean(np.asarray(best)), epoch, 0
    best_params = run.programs.keep_where(improved, saved.state.params, saved.best_params)
    return RunCheckpoint(saved.state, best_params), True


def _log(run: _Run, book: Bookkeeping, record: dict) -> None:
    """Append the epoch's record to the history, ``metrics.jsonl`` and the progress bar."""
    book.history.append(record)
    if run.metrics_file is not None:
        run.metrics_file.write(json.dumps(record) + "\n")
        run.metrics_file.flush()
    if run.bar is not None:
        shown = " ".join(f"{k}={record[k]:.3g}" for k in ("loss", "val_loss") if k in record)
        run.bar.update(run.task, completed=book.epoch, description=shown)


def _check_bad_epochs(run: _Run, saved: RunCheckpoint, book: Bookkeeping, skipped: int) -> None:
    """Stop with :class:`TrainingError` after ``max_bad_epochs`` epochs with every step skipped."""
    every_step = run.programs.steps_in(book.epoch - 1) * (run.programs.members or 1)
    book.bad_epochs = book.bad_epochs + 1 if skipped == every_step else 0
    if book.bad_epochs >= run.config.max_bad_epochs:
        _checkpoint(run.ckpt_dir, saved, book, run.config)
        raise TrainingError(
            f"training stopped at epoch {book.epoch}: every step of the last {book.bad_epochs} epochs "
            f"had a non-finite loss or gradient ({book.skipped_steps} steps skipped in all). "
            f"Check the data for NaN/inf, or lower the learning rate (lr = {run.config.lr:g}); "
            "the parameters were left at their last finite values"
        )


def _stop_reason(run: _Run, book: Bookkeeping, improved: bool) -> str | None:
    """Why training stops after this epoch, or ``None`` to go on."""
    config = run.config
    if book.epoch >= run.total_epochs:
        return "completed"
    if (
        config.patience is not None
        and run.validate_fn is not None
        and book.bad_validations >= config.patience
    ):
        return "early_stopping"
    if config.max_seconds is not None and book.train_seconds >= config.max_seconds:
        return "max_seconds"
    if config.target_val_loss is not None and improved and book.best_val_loss <= config.target_val_loss:
        return "target_val_loss"
    return None


def _epoch(run: _Run, saved: RunCheckpoint, book: Bookkeeping) -> tuple[RunCheckpoint, str | None]:
    """Train, validate, log and checkpoint one epoch; ``(saved, stop reason or None)``."""
    state, record, t0 = _train_epoch(run, saved.state, book)
    saved, improved = _validate(run, RunCheckpoint(state, saved.best_params), book, record)
    book.train_seconds += time.perf_counter() - t0
    record["seconds"] = book.train_seconds
    book.epoch += 1
    book.skipped_steps += record["skipped"]
    book.singular_samples += record["singular"]
    if "members" in record:  # an ensemble: each member's skipped steps
        so_far = (book.members or {}).get("skipped_steps", [0] * len(record["members"]["skipped"]))
        book.members = {
            **(book.members or {}),
            "skipped_steps": [a + b for a, b in zip(so_far, record["members"]["skipped"])],
        }
    _log(run, book, record)
    _check_bad_epochs(run, saved, book, record["skipped"])
    stopped = _stop_reason(run, book, improved)
    if stopped is not None or book.epoch % run.config.checkpoint_every == 0:
        book.stopped_reason = stopped
        _checkpoint(run.ckpt_dir, saved, book, run.config)
    if run.callback is not None and stopped is None:
        if run.callback(book.epoch, run.programs.model(state.params), record):
            stopped = book.stopped_reason = "callback"
            _checkpoint(run.ckpt_dir, saved, book, run.config)
    return saved, agree_on_stop(stopped)


def _loop(run: _Run, saved: RunCheckpoint, book: Bookkeeping) -> tuple[RunCheckpoint, str]:
    """Epochs until a stop reason; a run resumed after its last epoch stops at once."""
    stopped = (book.stopped_reason or "completed") if book.epoch >= run.total_epochs else None
    run.bar, run.task = _progress_bar(run.progress, run.total_epochs, book.epoch)
    try:
        while stopped is None:
            saved, stopped = _epoch(run, saved, book)
    finally:
        if run.bar is not None:
            run.bar.stop()
        if run.metrics_file is not None:
            run.metrics_file.close()
    return saved, stopped


def _open_metrics(run_dir: RunDir | None, history: list[dict]):
    """``metrics.jsonl`` rewritten from the checkpoint's history, open for appending."""
    if run_dir is None:
        return None
    # epochs after the last checkpoint are redone, so their lines go
    return run_dir.open_history(history)


def _warn_skipped(book: Bookkeeping) -> None:
    if not book.skipped_steps:
        return
    per = (book.members or {}).get("skipped_steps")
    which = "" if per is None else " (per member: " + ", ".join(map(str, per)) + ")"
    warnings.warn(
        f"{book.skipped_steps} training steps had a non-finite loss or gradient and were skipped{which}",
        RuntimeWarning,
        stacklevel=4,
    )


def _trained_params(run: _Run, saved: RunCheckpoint, book: Bookkeeping):
    """The parameters training gives: the best by validation loss, else the last ones."""
    use_best = run.validate_fn is not None and book.best_val_loss is not None
    return saved.best_params if use_best else saved.state.params


def _keep_prefit(run: _Run, trained, prefit):
    """``(parameters, kept)``: the prefit parameters where they score at least as well as the
    trained ones (per member), on the validation set, else on the whole training set
    (streamed data: the trained ones)."""
    if run.validate_fn is not None:
        score, full = run.validate_fn, run.val_full
    elif run.stream is None:
        full = run.train_full
        score = run.programs.validate
        full = full_batch(run.data, run.programs.batching.horizon) if full is None else full
    else:
        return trained, False
    members = run.programs.members
    before, after = (record_metrics(score(p, full), members) for p in (prefit, trained))
    if members is None:
        kept = math.isfinite(before["loss"]) and not before["loss"] > after["loss"]
        return (prefit if kept else trained), kept
    kept = [
        math.isfinite(b) and not b > a for b, a in zip(before["members"]["loss"], after["members"]["loss"])
    ]
    return run.programs.keep_where(kept, prefit, trained), kept


def _result(run: _Run, saved: RunCheckpoint, book: Bookkeeping, stopped: str, final=None) -> TrainResult:
    _warn_skipped(book)
    final = _trained_params(run, saved, book) if final is None else final
    k = run.programs.members or 1
    return TrainResult(
        model=run.programs.model(final),
        history=book.history,
        train_seconds=book.train_seconds,
        steps=k * run.programs.steps_through(book.epoch) - book.skipped_steps,
        skipped_steps=book.skipped_steps,
        stopped_reason=stopped,
        compile_seconds=book.compile_seconds,
        singular_samples=book.singular_samples,
        best_epoch=book.best_epoch,
        best_val_loss=book.best_val_loss,
        epoch_traces=run.programs.traces,
        members=book.members,
    )


def train(
    model,
    train_ds,
    val_ds=None,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, Any, dict], bool | None] | None = None,
    ensemble: int | None = None,
    devices: int | None = None,
) -> TrainResult:
    """Fit ``model`` to ``train_ds``; see the module docstring for what happens.

    Args:
        model: a lagrax model (or any System with array leaves to fit), or an
            :class:`~lagrax.models.ensemble.Ensemble`, whose members train together in
            one ``vmap``-ped program; member ``k`` gets the shuffles of seed
            ``config.seed + k``.
        train_ds, val_ds: :class:`~lagrax.data.dataset.Dataset`; ``val_ds`` drives early
            stopping and the choice of the returned parameters.
        config: :class:`TrainConfig` (defaults if None).
        run_dir: where ``metrics.jsonl`` and ``checkpoints/`` go (nothing is written if None).
        resume: continue from ``run_dir/checkpoints`` (same model, data and config).
        progress: a progress bar on a terminal.
        callback: ``callback(epoch, model, record)`` after each epoch, outside the timed
            region (e.g. a benchmark's test evaluation); returning True stops training.
        ensemble: train ``ensemble`` members: ``model``'s spec rebuilt from the keys of
            seeds ``config.seed + k`` and adapted to ``train_ds``
            (:func:`ensemble_of`); ``model``'s own parameters are not used.
        devices: data-parallel over this many devices (:mod:`lagrax.training.parallel`):
            each batch split over them, parameters replicated; ``None`` or 1: one device,
            except after :func:`~lagrax.training.parallel.initialize_distributed` (then
            every process's devices; only process 0 writes to ``run_dir``).

    An ensemble's records hold the members' mean (of those finite) and each member's
    values under ``"members"``; a member whose steps are not finite is skipped alone;
    early stopping waits until no member improves; the result is an ``Ensemble``.
    """
    x = _inputs(model, train_ds, val_ds, config or TrainConfig(), ensemble)  # frozen: valid
    config = x.config
    params, static = eqx.partition(x.model.members if x.members else x.model, eqx.is_inexact_array)
    decay_mask = x.single.decay_mask() if x.single.provides("decay_mask") else None
    dp = data_parallel(devices)  # None: the single-device path
    rows = dp.rows if dp is not None else None
    if x.stream is not None:
        batching = x.stream.batching(sharding=rows)
    else:
        batching = Batching.of(config, len(train_ds), rollout=x.loss.reads_windows, sharding=rows)
    chunks = x.stream.n_chunks if x.stream is not None else 1
    programs = Programs(static, config, x.scales, batching, x.members, chunks, decay_mask)
    val_full = None
    if val_ds is not None:
        val_full = full_batch(device_arrays(val_ds, x.loss, config), batching.horizon)
    run_dir = RunDir(run_dir) if run_dir is not None else None
    ckpt_dir = run_dir.checkpoints_path if run_dir is not None else None
    saved, book = _start(programs, params, config, ckpt_dir, resume)
    data, prefit = x.data, (params if x.prefit is not None else None)
    if dp is not None:  # data and state replicated on the mesh; only process 0 writes
        data, val_full, saved, prefit = dp.place((data, val_full, saved, prefit))
        run_dir, ckpt_dir = (run_dir, ckpt_dir) if is_writer() else (None, None)
    run = _Run(config, programs, data, val_full, ckpt_dir, callback, progress)
    run.stream, run.place = x.stream, (dp.place if dp is not None else None)
    _compile(run, saved, book)
    run.metrics_file = _open_metrics(run_dir, book.history)
    saved, stopped = _loop(run, saved, book)
    final, kept = _trained_params(run, saved, book), None
    if prefit is not None:
        final, kept = _keep_prefit(run, final, prefit)
    result = dataclasses.replace(_result(run, saved, book, stopped, final), prefit=x.prefit, kept_prefit=kept)
    return result if dp is None else dataclasses.replace(result, model=dp.local(result.model))
