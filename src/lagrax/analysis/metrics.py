"""Evaluation: how well a model (or a ground-truth system) explains a dataset.

``evaluate(model, dataset)`` returns the metrics of the DeLaN papers as a flat dict
of floats, computed on whole arrays at once (each model call is one jitted, vmapped
batch; rollouts are one ``lax.scan`` vmapped over the trajectories):

* ``torque_mse``: inverse dynamics, sum over joints of the squared error, mean over
  samples (the "Torque MSE" of the DeLaN reference code);
* ``torque_nmse``: per-joint MSE divided by the variance of the true torque of that
  joint, averaged over joints (scale-free, comparable across systems);
* ``inertial_mse``, ``coriolis_mse``, ``gravity_mse``: the same for the terms
  ``M qdd``, ``c(q, qd)``, ``g(q)`` of ``tau = M qdd + c + g + friction``;
* ``power_mse``: mean squared error of the power balance
  ``dE/dt + qd^T friction = qd^T tau`` (model energy rate against recorded input power);
* ``qdd_mse``: forward dynamics, sum over joints of the squared error, mean over samples;
* ``valid_prediction_time``: see :func:`valid_prediction_time`;
* ``rollout_error``: geometric mean over time and trajectories of
  :func:`rollout_relative_error` of the same rollouts (Finzi et al. 2020);
* ``energy_error``: where the data is unforced and its ground truth conservative, the
  mean over trajectories of :func:`energy_error` (true energy drift along the rollouts);
* ``eval_samples_per_second``: throughput of batched inverse dynamics on the dataset;
* ``train_seconds``, ``steps``: copied from the training record when one is given.

A metric that the model cannot provide (it does not :meth:`~lagrax.systems.System.provides`
the quantity, e.g. the mass matrix of a black-box MLP) or that the dataset cannot
support (no recorded torques, no ground-truth decomposition) is left out, never
reported as NaN. Whole datasets go through :func:`lagrax.batched` (checked, raising on a
singular solve); rollouts use the per-sample :func:`lagrax.systems.rollout.rk4_rollout` in one jit.

This module does not train and does not plot (see :mod:`lagrax.training` and
:mod:`lagrax.analysis.report`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.systems.batching import batched
from lagrax.data.dataset import Dataset, has_motion, is_passive, load_dataset
from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError, ShapeError, UnknownNameError
from lagrax.core.fileio import file_sha256
from lagrax.systems.rollout import rk4_rollout
from lagrax.models.ensemble import Ensemble
from lagrax.training.rundir import EVALUATIONS, Run, RunDir, load_run

METRIC_KEYS = (
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
)


# --------------------------------------------------------------------------------------
# Error measures
# --------------------------------------------------------------------------------------


def sum_squared_error(pred: Float[Array, "N n"], true: Float[Array, "N n"]) -> float:
    """Sum over joints of the squared error, mean over samples (DeLaN's "MSE")."""
    err = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.mean(np.sum(err**2, axis=-1)))


def normalised_mse(pred: Float[Array, "N n"], true: Float[Array, "N n"]) -> float:
    """Per-joint MSE divided by the variance of the true values, averaged over joints."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    mse = np.mean((pred - true) ** 2, axis=0)
    # A joint whose true value never changes has no scale of its own; fall back to its MSE.
    var = np.var(true, axis=0)
    return float(np.mean(mse / np.where(var > 0, var, 1.0)))


def _check_dataset(model, dataset: Dataset) -> None:
    if dataset.dof != model.dof:
        raise ShapeError(
            f"the dataset has {dataset.dof} joints but the model ({model.info.name}) has {model.dof}; "
            "evaluate a model on data of the system it was trained for"
        )
    if len(dataset) == 0:
        raise DatasetError("the dataset is empty: nothing to evaluate")


# --------------------------------------------------------------------------------------
# Rollouts and the valid prediction time
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrajectoryRollout:
    """A model's rollout of one recorded trajectory, for plots.

    ``t (T,)`` times; ``q, qd (T, n)`` recorded states; ``q_pred, qd_pred (T, n)`` the
    model's rollout from the first recorded state under the recorded torques;
    ``error (T,)`` the normalised position error; ``valid_time`` the valid prediction time.
    """

    trajectory: int
    label: str | None
    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    tau: np.ndarray
    q_pred: np.ndarray
    qd_pred: np.ndarray
    error: np.ndarray
    valid_time: float
    relative_error: np.ndarray | None = None  # (T,) rollout_relative_error of the state (q, qd)


@dataclasses.dataclass
class PredictionResult:
    """Valid prediction times: ``mean`` over trajectories, one per trajectory, and the rollouts.

    ``rollout_error``: the geometric mean of :func:`rollout_relative_error` over all times
    but the first and all trajectories (Finzi et al. 2020).
    """

    mean: float
    valid_times: np.ndarray
    rollouts: list[TrajectoryRollout]
    rollout_error: float = math.nan


@eqx.filter_jit
def _batched_rollouts(model, q0, qd0, tau, dt, substeps: int):
    qd0, tau, dt = (a.astype(q0.dtype) for a in (qd0, tau, dt))
    return jax.vmap(lambda a, b, c, d: rk4_rollout(model, a, b, c, d, substeps))(q0, qd0, tau, dt)


def normalised_position_error(q_pred: Float[Array, "T n"], q: Float[Array, "T n"]) -> Float[Array, " T"]:
    """``e(t) = ||q_pred(t) - q(t)||_2 / ||q_max - q_min||_2``.

    The Euclidean position error over the joints, divided by the norm of the
    per-joint range of the recorded positions over the trajectory (so 1e-2 means one
    percent of the distance the trajectory covers). A diverged (NaN) prediction has
    infinite error.
    """
    q_pred, q = np.asarray(q_pred, np.float64), np.asarray(q, np.float64)
    scale = np.linalg.norm(q.max(axis=0) - q.min(axis=0))
    err = np.linalg.norm(q_pred - q, axis=-1) / max(scale, np.finfo(np.float64).tiny)
    return np.where(np.isfinite(err), err, np.inf)


def rollout_relative_error(
    z_pred: Float[Array, "*batch T m"], z: Float[Array, "*batch T m"]
) -> Float[Array, "*batch T"]:
    """``||z_hat - z|| / (||z_hat|| + ||z||)`` at each time (Finzi et al. 2020), in [0, 1].

    ``z`` is the whole state, e.g. ``concatenate([q, qd], -1)``. A diverged (NaN)
    prediction counts as the largest error, 1.
    """
    z_pred, z = np.asarray(z_pred, np.float64), np.asarray(z, np.float64)
    num = np.linalg.norm(z_pred - z, axis=-1)
    den = np.linalg.norm(z_pred, axis=-1) + np.linalg.norm(z, axis=-1)
    err = num / np.maximum(den, np.finfo(np.float64).tiny)
    return np.where(np.isfinite(err), err, 1.0)


def geometric_mean(errors, skip_first: bool = True) -> float:
    """``exp(mean(log e))`` over times (all but the first, where a rollout starts exactly
    at the truth, when ``skip_first``) and trajectories; zeros count as 1e-300."""
    e = np.asarray(errors, np.float64)
    if skip_first:
        e = e[..., 1:]
    return float(np.exp(np.mean(np.log(np.maximum(e, 1e-300)))))


def energy_at(system, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
    """``system``'s energy at states ``(..., n)``, NaN where a state is not finite (a
    diverged rollout), so the checked edge never sees the NaN."""
    q, qd = np.asarray(q), np.asarray(qd)
    n = q.shape[-1]
    finite = np.all(np.isfinite(q) & np.isfinite(qd), axis=-1)
    flat = [np.where(finite[..., None], a, 0.0).reshape(-1, n) for a in (q, qd)]
    e = np.asarray(batched(system).energy(jnp.asarray(flat[0]), jnp.asarray(flat[1])), np.float64)
    return np.where(finite, e.reshape(q.shape[:-1]), np.nan)


def energy_error(
    truth, q_pred: Float[Array, "*batch T n"], qd_pred: Float[Array, "*batch T n"], scale: float
) -> np.ndarray:
    """``|E(t_end) - E(0)| / scale`` of the true energy along predicted motions, per motion.

    ``truth`` is the ground-truth system whose energy ``E(q, qd)`` is measured along the
    model's rollout (the LNN paper's metric, with ``scale = 29.4`` J for its double
    pendulum). A diverged (NaN) rollout has infinite error.
    """
    q_pred, qd_pred = np.asarray(q_pred), np.asarray(qd_pred)
    energy = energy_at(truth, q_pred[..., (0, -1), :], qd_pred[..., (0, -1), :])
    err = np.abs(energy[..., 1] - energy[..., 0]) / scale
    return np.where(np.isfinite(err), err, np.inf)


def is_conservative(system, dataset: Dataset) -> bool:
    """Whether ``system`` has no friction at the dataset's states and the data is unforced."""
    if not is_passive(dataset):
        return False
    if not system.provides("friction"):
        return True
    friction = batched(system).friction(jnp.asarray(dataset.q), jnp.asarray(dataset.qd))
    return not np.any(np.asarray(friction))


def first_exceedance(t: np.ndarray, error: np.ndarray, threshold: float) -> float:
    exceeded = np.flatnonzero(~(error <= threshold))
    return float((t[exceeded[0]] if exceeded.size else t[-1]) - t[0])


def _trajectory_slices(dataset: Dataset) -> list[tuple[int, np.ndarray]]:
    """``(id, sample indices)`` of each trajectory, in order of first appearance."""
    ids, first = np.unique(dataset.trajectory, return_index=True)
    return [(int(i), np.flatnonzero(dataset.trajectory == i)) for i in ids[np.argsort(first)]]


def _sample_periods(dataset: Dataset, slices) -> np.ndarray:
    """The fixed sample period of each trajectory; a DatasetError for non-uniform sampling."""
    dts = []
    for tid, idx in slices:
        steps = np.diff(dataset.t[idx])
        if not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9) or steps[0] <= 0:
            raise DatasetError(f"trajectory {tid} is not sampled uniformly in time; rollouts need a fixed dt")
        dts.append(steps[0])
    return np.array(dts)


def _rollouts_from_first_states(model, dataset: Dataset, slices, tau: np.ndarray, substeps: int):
    """``q_pred, qd_pred (K, T_max, n)``: every trajectory rolled out in one vmapped scan
    (shorter ones padded with their last torque; the padding is ignored by the caller)."""
    t_max = max(len(idx) for _, idx in slices)
    tau_pad = np.stack(
        [np.concatenate([tau[idx], np.repeat(tau[idx][-1:], t_max - len(idx), 0)]) for _, idx in slices]
    )
    first = np.array([idx[0] for _, idx in slices])
    q_pred, qd_pred = _batched_rollouts(
        model,
        jnp.asarray(dataset.q[first]),
        jnp.asarray(dataset.qd[first]),
        jnp.asarray(tau_pad),
        jnp.asarray(_sample_periods(dataset, slices)),
        substeps,
    )
    return np.asarray(q_pred), np.asarray(qd_pred)


def valid_prediction_time(
    model,
    dataset: Dataset,
    threshold: float = 1e-2,
    substeps: int = 20,
) -> PredictionResult:
    """How long a rollout of ``model`` stays close to each recorded trajectory.

    For each trajectory: start from its first recorded state ``(q, qd)``, integrate the
    model's forward dynamics with RK4 at ``dt / substeps`` driven by the recorded
    torques (linear between samples; zero if the dataset has none), and return the
    first time, relative to the trajectory's start, at which the normalised position
    error (:func:`normalised_position_error`) exceeds ``threshold``; the trajectory's
    duration if it never does (Lutter & Peters 2023, RK4 with dt/20, threshold 1e-2).
    A singular solve makes the rollout NaN from there on: its error is infinite.
    ``mean`` averages over trajectories. All trajectories are integrated in one
    vmapped scan.
    """
    _check_dataset(model, dataset)
    if not model.provides("forward_dynamics"):
        raise model.not_provided("forward dynamics (rollouts)")
    slices = _trajectory_slices(dataset)
    if min(len(idx) for _, idx in slices) < 2:
        raise DatasetError("valid prediction time needs trajectories of at least two samples")
    tau = dataset.tau if dataset.tau is not None else np.zeros_like(dataset.q)
    q_pred, qd_pred = _rollouts_from_first_states(model, dataset, slices, tau, substeps)
    rollouts = []
    for k, (tid, idx) in enumerate(slices):
        t, T = dataset.t[idx], len(idx)
        error = normalised_position_error(q_pred[k, :T], dataset.q[idx])
        label = dataset.labels[tid] if dataset.labels is not None and tid < len(dataset.labels) else None
        rollouts.append(
            TrajectoryRollout(
                trajectory=tid,
                label=label,
                t=t,
                q=dataset.q[idx],
                qd=dataset.qd[idx],
                tau=tau[idx],
                q_pred=q_pred[k, :T],
                qd_pred=qd_pred[k, :T],
                error=error,
                valid_time=first_exceedance(t, error, threshold),
                relative_error=rollout_relative_error(
                    np.concatenate([q_pred[k, :T], qd_pred[k, :T]], -1),
                    np.concatenate([dataset.q[idx], dataset.qd[idx]], -1),
                ),
            )
        )
    times = np.array([r.valid_time for r in rollouts])
    rel = np.concatenate([r.relative_error[1:] for r in rollouts])
    return PredictionResult(float(times.mean()), times, rollouts, geometric_mean(rel, skip_first=False))


# --------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------


def samples_per_second(model, dataset: Dataset, repeats: int = 3) -> float:
    """Batched inverse dynamics on all samples of ``dataset``: samples per second of
    the fastest of ``repeats`` timed calls (after one call to compile)."""
    q, qd, qdd = (jnp.asarray(a) for a in (dataset.q, dataset.qd, dataset.qdd))
    jax.block_until_ready(batched(model).inverse_dynamics(q, qd, qdd))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(batched(model).inverse_dynamics(q, qd, qdd))
        best = min(best, time.perf_counter() - start)
    return float(len(dataset) / max(best, 1e-9))


# --------------------------------------------------------------------------------------
# All metrics
# --------------------------------------------------------------------------------------


def _torque_metrics(model, dataset: Dataset, q, qd, qdd) -> dict[str, float]:
    """``torque_mse``, ``torque_nmse`` where there are torques and inverse dynamics.

    Passive data (torques absent or zero in every sample) supports no torque metric: the
    normalised one would divide by a zero variance, so neither is reported.
    """
    if dataset.tau is None or not np.any(dataset.tau) or not model.provides("inverse_dynamics"):
        return {}
    tau_pred = batched(model).inverse_dynamics(q, qd, qdd)
    return {
        "torque_mse": sum_squared_error(tau_pred, dataset.tau),
        "torque_nmse": normalised_mse(tau_pred, dataset.tau),
    }


TERMS = {"inertial": "mass_matrix", "coriolis": "coriolis", "gravity": "gravity"}


def _term(model, name: str, q, qd, qdd):
    """One term of the decomposition, from the model's own method for it."""
    if name == "inertial":
        return batched(model).mass_matrix(q) @ qdd[..., None]
    return batched(model).coriolis(q, qd) if name == "coriolis" else batched(model).gravity(q)


def _term_metrics(model, dataset: Dataset, q, qd, qdd) -> dict[str, float]:
    """``inertial_mse``, ``coriolis_mse``, ``gravity_mse`` where both sides have the term."""
    wanted = [name for name in TERMS if getattr(dataset, name) is not None]
    terms = batched(model).decomposition(q, qd, qdd) if wanted and model.provides("decomposition") else {}
    metrics = {}
    for name in wanted:
        true = getattr(dataset, name)
        if name in terms:
            pred = terms[name]
        elif model.provides(TERMS[name]):
            pred = _term(model, name, q, qd, qdd)
        else:
            continue
        metrics[f"{name}_mse"] = sum_squared_error(np.reshape(pred, true.shape), true)
    return metrics


def _power_and_forward_metrics(model, dataset: Dataset, q, qd, qdd) -> dict[str, float]:
    """``power_mse`` (energy balance) and ``qdd_mse`` (forward dynamics) where there are torques."""
    if dataset.tau is None:
        return {}
    metrics = {}
    if model.provides("energy_rate") and not is_passive(dataset):
        # Power balance: dE/dt (model energy along the recorded motion) plus the power the
        # model's friction dissipates must equal the input power qd^T tau.
        rate = np.asarray(batched(model).energy_rate(q, qd, qdd), np.float64)
        dissipated = 0.0
        if model.provides("friction"):
            dissipated = np.sum(np.asarray(qd) * np.asarray(batched(model).friction(q, qd)), axis=-1)
        err = rate + dissipated - np.sum(dataset.qd * dataset.tau, axis=-1)
        metrics["power_mse"] = float(np.mean(err**2))
    if model.provides("forward_dynamics"):
        qdd_pred = batched(model).forward_dynamics(q, qd, jnp.asarray(dataset.tau))
        metrics["qdd_mse"] = sum_squared_error(qdd_pred, dataset.qdd)
    return metrics


def _training_metrics(training: Mapping[str, Any] | None) -> dict[str, float]:
    if training is None:
        return {}
    out = {}
    for key in ("train_seconds", "steps"):
        if training.get(key) is not None:
            out[key] = float(training[key]) if key == "train_seconds" else int(training[key])
    return out


def _rollout_metrics(model, dataset: Dataset, prediction: PredictionResult, truth, energy_scale) -> dict:
    """``valid_prediction_time``, ``rollout_error`` and, for a conservative ``truth``,
    ``energy_error`` (mean over trajectories of :func:`energy_error`)."""
    metrics = {"valid_prediction_time": prediction.mean, "rollout_error": prediction.rollout_error}
    if truth is not None and is_conservative(truth, dataset):
        scale = energy_scale if energy_scale is not None else default_energy_scale(truth, dataset)
        q_pred = [r.q_pred for r in prediction.rollouts]
        qd_pred = [r.qd_pred for r in prediction.rollouts]
        errors = [float(energy_error(truth, a[None], b[None], scale)[0]) for a, b in zip(q_pred, qd_pred)]
        metrics["energy_error"] = float(np.mean(errors))
    return metrics


def default_energy_scale(truth, dataset: Dataset) -> float:
    """The largest ``|E|`` of ``truth`` over the dataset's recorded states (the scale of
    ``energy_error`` unless one is given)."""
    energy = batched(truth).energy(jnp.asarray(dataset.q), jnp.asarray(dataset.qd))
    return max(float(np.max(np.abs(np.asarray(energy)))), np.finfo(np.float64).tiny)


def evaluate(
    model,
    dataset: Dataset,
    *,
    rollout: bool = True,
    threshold: float = 1e-2,
    substeps: int = 20,
    training: Mapping[str, Any] | None = None,
    throughput: bool = True,
    truth=None,
    energy_scale: float | None = None,
    members: bool = True,
) -> dict[str, Any]:
    """The metrics of ``model`` on ``dataset`` (see the module docstring for each key).

    Args:
        model: any :class:`~lagrax.systems.System` (a trained model or a ground truth).
        dataset: the samples to evaluate on (usually the held-out test split).
        rollout: also compute ``valid_prediction_time`` and ``rollout_error`` (the slowest metrics).
        threshold, substeps: of :func:`valid_prediction_time`.
        training: a training record with ``train_seconds`` and ``steps`` to copy in.
        throughput: also time batched inverse dynamics (``eval_samples_per_second``).
        truth: the ground-truth system; where it is conservative on this data
            (:func:`is_conservative`), ``energy_error`` of the rollouts is reported.
        energy_scale: the scale of ``energy_error`` (default :func:`default_energy_scale`).
        members: for an :class:`~lagrax.models.ensemble.Ensemble` (whose own metrics are
            those of the members' mean prediction), also each member's metrics and their
            mean and standard deviation (:func:`ensemble_metrics`).

    Keys a model cannot provide, or the dataset cannot support, are omitted. Passive data
    (no torques, or zero torques) supports no torque metric, no decomposition into
    inertial, Coriolis and gravity torques, and no power balance: from unforced motion a
    Lagrangian is identified only up to a factor.
    """
    _check_dataset(model, dataset)
    q, qd, qdd = (jnp.asarray(a) for a in (dataset.q, dataset.qd, dataset.qdd))
    metrics = _torque_metrics(model, dataset, q, qd, qdd)
    if not is_passive(dataset):
        metrics.update(_term_metrics(model, dataset, q, qd, qdd))
    metrics.update(_power_and_forward_metrics(model, dataset, q, qd, qdd))
    if rollout and model.provides("forward_dynamics") and has_motion(dataset):
        prediction = valid_prediction_time(model, dataset, threshold, substeps)
        metrics.update(_rollout_metrics(model, dataset, prediction, truth, energy_scale))
    metrics.update(_training_metrics(training))
    if throughput and "torque_mse" in metrics:
        metrics["eval_samples_per_second"] = samples_per_second(model, dataset)
    if members and isinstance(model, Ensemble):
        options = dict(threshold=threshold, substeps=substeps, truth=truth, energy_scale=energy_scale)
        metrics.update(ensemble_metrics(model, dataset, rollout=rollout, **options))
    return metrics


# what an ensemble's metrics add (see ensemble_metrics)
ENSEMBLE_KEYS = ("ensemble", "member_mean", "member_std", "members")


def ensemble_metrics(model, dataset: Dataset, **options: Any) -> dict[str, Any]:
    """Each member's :func:`evaluate` metrics (``options`` as there) and, per metric, their
    mean and standard deviation over the members:
    ``{"ensemble": K, "member_mean": {...}, "member_std": {...}, "members": [{...}, ...]}``."""
    per = [evaluate(model.member(i), dataset, throughput=False, **options) for i in range(model.size)]
    keys = [k for k in per[0] if all(k in p for p in per)]
    values = {k: np.array([p[k] for p in per], dtype=float) for k in keys}
    return {
        "ensemble": model.size,
        "member_mean": {k: float(v.mean()) for k, v in values.items()},
        "member_std": {k: float(v.std()) for k, v in values.items()},
        "members": per,
    }


# --------------------------------------------------------------------------------------
# Run directories (lagrax.training.rundir.RunDir: written by lagrax.training.run_training)
# --------------------------------------------------------------------------------------


def held_out_metrics(model, test_ds: Dataset, training: Mapping[str, Any]) -> dict[str, Any]:
    """A trained model's metrics on its run's test split: :func:`evaluate` with the
    training record and the data's ground truth (:func:`dataset_truth`). The
    :class:`~lagrax.training.run.Evaluator` that ``lagrax train`` passes to
    :func:`~lagrax.training.run.run_training`."""
    return evaluate(model, test_ds, training=training, truth=dataset_truth(test_ds))


SPLITS = ("test", "train", "all")


class DataMismatchWarning(UserWarning):
    """The data given to evaluate a run is another system's than the one it was trained on."""


def run_data_path(run: Run) -> Path:
    """The run's recorded data file, found wherever the run is used from.

    New runs record an absolute path and the file's SHA-256; older runs a path relative
    to where training ran (tried from the working directory, then from the run
    directory's parent). Raises a :class:`DatasetError` when the file has moved or
    changed since training.
    """
    if "data" not in run.config:
        raise DatasetError(f"{run.path} does not record its data file: give --data FILE.npz")
    recorded = Path(run.config["data"])
    candidates = [recorded] if recorded.is_absolute() else [recorded, run.path.parent / recorded]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DatasetError(
            f"the run's data file {recorded} has moved or been deleted: give the data with --data FILE.npz"
        )
    expected = run.config.get("data_sha256")
    if expected and file_sha256(found) != expected:
        raise DatasetError(
            f"the run's data file {found} has changed since training (its SHA-256 differs): "
            "give the training data with --data FILE.npz"
        )
    return found


def _warn_other_system(run: Run, ds: Dataset, data: Path) -> None:
    trained_on = run.config.get("data_name")
    name = ds.metadata.get("system", {}).get("name") if isinstance(ds.metadata.get("system"), dict) else None
    if trained_on and name and name != trained_on:
        warnings.warn(
            f"{data} holds {name!r} data but the model in {run.path} was trained on {trained_on!r} data",
            DataMismatchWarning,
            stacklevel=3,
        )


def run_dataset(run: Run, data: str | Path | None = None, split: str = "test") -> tuple[Dataset, Path]:
    """The part ``split`` (``"test"``, ``"train"`` or ``"all"``) of the run's dataset.

    ``data`` defaults to the data file recorded in the run's ``config.json`` (see
    :func:`run_data_path`); the trajectory ids of each part come from the run's
    ``split.json``. Data of another system than the training data's gives a
    :class:`DataMismatchWarning`.
    """
    if split not in SPLITS:
        raise UnknownNameError.for_name("split", split, SPLITS)
    data = run_data_path(run) if data is None else Path(data)
    ds = load_dataset(data)
    if ds.dof != run.model.dof:
        raise ShapeError(
            f"{data} has {ds.dof} joints but the model in {run.path} has {run.model.dof}: "
            "give the dataset the model was trained on"
        )
    _warn_other_system(run, ds, data)
    if split == "all":
        return ds, data
    part = run.split.get(split, {})
    ids = part.get("ids") if isinstance(part, dict) else part
    if not ids:
        raise DatasetError(
            f"{run.path}/split.json has no {split!r} trajectories (trained without a test split?); "
            "use --split all or --split train"
        )
    missing = sorted(set(int(i) for i in ids) - set(int(i) for i in np.unique(ds.trajectory)))
    if missing:
        raise DatasetError(
            f"{data} lacks the run's {split} trajectories {missing[:10]}: is it the run's data?"
        )
    return ds.select_trajectories(ids), data


def evaluation_path(run_dir: str | Path, data: str | Path | None, split: str = "test") -> Path:
    """Where :func:`evaluate_run` writes: ``RUN/evaluations/<data file stem>-<split>.json``
    (:meth:`~lagrax.training.rundir.RunDir.evaluation_path`).

    Training's own test metrics (``RUN/metrics.json``) are never replaced by an evaluation.
    """
    return RunDir(run_dir).evaluation_path(data, split)


def evaluate_run(
    run_dir: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    *,
    rollout: bool = True,
    write: bool = True,
    force: bool = False,
) -> tuple[dict[str, float], Run, Dataset, PredictionResult | None]:
    """Evaluate a run's model on a part of a dataset (default: the run's own).

    With ``write``, the metrics go to :func:`evaluation_path` (refused if that exists,
    unless ``force``); the training-time ``metrics.json`` is never replaced. Returns the
    metrics, the run, the evaluated dataset and the rollouts (for the report).
    """
    record = RunDir(run_dir)
    target = record.evaluation_path(data, split)
    if write and target.exists() and not force:
        raise FileExistsLagraxError(f"{target} exists; refusing to overwrite it (use --force)")
    run = record.load()
    ds, _ = run_dataset(run, data, split)
    metrics = evaluate(run.model, ds, rollout=False, training=run.training, members=False)
    prediction = None
    if rollout and run.model.provides("forward_dynamics") and has_motion(ds):
        prediction = valid_prediction_time(run.model, ds)
        metrics.update(_rollout_metrics(run.model, ds, prediction, dataset_truth(ds), None))
    ordered = {k: metrics[k] for k in METRIC_KEYS if k in metrics}
    if isinstance(run.model, Ensemble):
        ordered.update(ensemble_metrics(run.model, ds, rollout=rollout, truth=dataset_truth(ds)))
    if write:
        record.write_evaluation(target, ordered)
    return ordered, run, ds, prediction


def dataset_truth(dataset: Dataset):
    """The registered ground-truth system that generated ``dataset`` (by its name and
    parameters), or None for logged, imported or unregistered data."""
    from lagrax.systems import REGISTRY, system

    info = dataset.info
    if info.name not in REGISTRY:
        return None
    try:
        truth = system(info.name, **dict(info.params))
    except (LagraxError, TypeError, ValueError):
        return None
    return truth if truth.info.dof == dataset.dof else None


__all__ = [
    "METRIC_KEYS",
    "ENSEMBLE_KEYS",
    "ensemble_metrics",
    "Run",
    "evaluate_run",
    "evaluation_path",
    "DataMismatchWarning",
    "EVALUATIONS",
    "run_data_path",
    "load_run",
    "run_dataset",
    "PredictionResult",
    "TrajectoryRollout",
    "evaluate",
    "normalised_mse",
    "normalised_position_error",
    "samples_per_second",
    "sum_squared_error",
    "valid_prediction_time",
    "held_out_metrics",
    "dataset_truth",
]
