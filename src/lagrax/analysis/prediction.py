"""Long rollouts of models and systems, compared with the truth: the engine of ``lagrax rollout``.

:func:`predict` integrates one system (a trained model or a ground truth) from a batch
of initial states with :func:`lagrax.systems.rollout.simulate` (diffrax, vmapped over the
states, one compiled program), passive or driven by recorded torques, and returns a
:class:`Prediction`: the states, and the true energy along them when a ground truth is
known. :func:`compare` scores a prediction against the truth's:

* ``rollout_error``: the geometric mean over times (after the first) and initial states
  of ``||z_hat - z|| / (||z_hat|| + ||z||)``, ``z = (q, qd)`` (Finzi et al. 2020);
* ``valid_prediction_time``: mean over initial states of the first time the normalised
  position error exceeds 1e-2 (:func:`lagrax.analysis.metrics.valid_prediction_time`'s rule);
* ``energy_error``: mean over initial states of ``|E(t_end) - E(0)| / scale``, ``E`` the
  true energy along the prediction (the LNN paper's metric), where the truth is
  conservative and the motion passive.

A rollout that fails part-way (a singular or indefinite Hessian, a blow-up) still
returns what was computed (NaN after the stop) in :attr:`Prediction.failure`.
Figures and the ``.npz`` output are written by :func:`write_prediction` and
:mod:`lagrax.analysis.plotting`. This module does not train or evaluate datasets.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from lagrax.systems.batching import batched
from lagrax.data.dataset import Dataset, check_writable
from lagrax.core.errors import LagraxError, NumericalError, ShapeError
from lagrax.analysis.metrics import (
    DataMismatchWarning,
    energy_at,
    first_exceedance,
    geometric_mean,
    normalised_position_error,
    rollout_relative_error,
)
from lagrax.core.fileio import atomic_write
from lagrax.systems.rollout import simulate
from lagrax.data.generators import position_ranges, velocity_ranges


@dataclasses.dataclass
class Prediction:
    """States ``q, qd (B, T, n)`` at times ``t (T,)`` of system ``name``; ``energy (B, T)``
    the truth's energy along them (None without a truth); ``failure`` the message of a
    rollout that stopped early (its states are NaN from there on)."""

    name: str
    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    energy: np.ndarray | None = None
    failure: str | None = None


def parse_initial_states(text: str, dof: int) -> tuple[np.ndarray, np.ndarray]:
    """``q0, qd0 (B, n)`` from ``"q1,...,qn,qd1,...,qdn; ..."`` or a file of such rows
    (``.npy``, or text with commas or spaces); a ShapeError for rows of another length."""
    path = Path(text)
    if path.suffix in (".npy", ".txt", ".csv") or path.is_file():
        if not path.is_file():
            raise LagraxError(f"initial-state file {path} does not exist")
        rows = (
            np.load(path)
            if path.suffix == ".npy"
            else np.loadtxt(path, delimiter="," if "," in path.read_text() else None)
        )
    else:
        try:
            rows = [
                [float(x) for x in row.replace(" ", ",").split(",") if x]
                for row in text.split(";")
                if row.strip()
            ]
        except ValueError:
            raise LagraxError(
                f"initial states must be numbers 'q1,...,qn,qd1,...,qdn; ...', got {text!r}"
            ) from None
    rows = np.atleast_2d(np.asarray(rows, np.float64))
    if rows.ndim != 2 or rows.shape[1] != 2 * dof:
        raise ShapeError(
            f"each initial state needs {2 * dof} numbers (q then qd for {dof} joints), "
            f"got rows of {rows.shape[-1]}"
        )
    if not np.all(np.isfinite(rows)):
        raise LagraxError("the initial states hold NaN or infinite values")
    return rows[:, :dof], rows[:, dof:]


def random_initial_states(info, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` states uniform in the system's position ranges and ``+-`` velocity ranges."""
    if count < 1:
        raise LagraxError(f"the number of random initial states must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    lo, hi = position_ranges(info)
    vmax = velocity_ranges(info)
    return rng.uniform(lo, hi, (count, info.dof)), rng.uniform(-vmax, vmax, (count, info.dof))


@dataclasses.dataclass
class Recorded:
    """Initial states, times and torques taken from the first trajectories of a dataset,
    and the recorded motion as a :class:`Prediction` (the truth)."""

    q0: np.ndarray
    qd0: np.ndarray
    t: np.ndarray
    tau: np.ndarray | None
    truth: Prediction


def from_dataset(ds: Dataset, count: int, duration: float | None = None) -> Recorded:
    """The first ``count`` trajectories of ``ds``, cut to the shortest of them (and to
    ``duration``); their recorded torques drive the rollout unless the data is passive."""
    ids = ds.trajectory_ids[: max(count, 1)]
    idx = [np.flatnonzero(ds.trajectory == i) for i in ids]
    T = min(len(i) for i in idx)
    t = ds.t[idx[0][:T]] - ds.t[idx[0][0]]
    if duration is not None:
        T = int(np.searchsorted(t, duration + 1e-9))
        t = t[:T]
    if T < 2 or not np.all(np.diff(t) > 0):
        raise LagraxError(
            "rollouts from a dataset need trajectories of at least two samples at increasing times"
        )
    q = np.stack([ds.q[i[:T]] for i in idx])
    qd = np.stack([ds.qd[i[:T]] for i in idx])
    tau = None if ds.tau is None or not np.any(ds.tau) else np.stack([ds.tau[i[:T]] for i in idx])
    return Recorded(q[:, 0], qd[:, 0], t, tau, Prediction("recorded", t, q, qd))


def _energy(truth, q: np.ndarray, qd: np.ndarray) -> np.ndarray | None:
    """The truth's energy at states ``(B, T, n)`` (NaN where the states are)."""
    if truth is None or not truth.provides("energy"):
        return None
    return energy_at(truth, q, qd)


def predict(system, q0, qd0, t, tau=None, *, truth=None, name: str | None = None, **solver) -> Prediction:
    """Integrate ``system`` from each initial state ``(B, n)`` over times ``t (T,)``.

    ``tau``: None (passive) or recorded torques ``(B, T, n)``. ``solver``: the options of
    :func:`lagrax.systems.rollout.simulate` (``solver``, ``rtol``, ``atol``, ``dt``,
    ``max_steps``). A rollout that stops early keeps what it computed and says why in
    ``failure`` instead of raising.
    """
    name = name or system.info.name
    failure = None
    try:
        r = simulate(system, np.asarray(q0), np.asarray(qd0), np.asarray(t), tau, **solver)
    except NumericalError as e:
        if getattr(e, "partial", None) is None:
            raise
        r, failure = e.partial, str(e)
    q, qd = (np.asarray(a, np.float64) for a in (r.q, r.qd))
    return Prediction(name, np.asarray(t, np.float64), q, qd, _energy(truth, q, qd), failure)


def compare(pred: Prediction, truth: Prediction, energy_scale: float | None, conservative: bool) -> dict:
    """``rollout_error``, ``valid_prediction_time`` and (when ``conservative``) ``energy_error``
    of ``pred`` against ``truth`` (see the module docstring)."""
    z = lambda p: np.concatenate([p.q, p.qd], -1)  # noqa: E731
    out = {"rollout_error": geometric_mean(rollout_relative_error(z(pred), z(truth)))}
    valid = [first_exceedance(pred.t, normalised_position_error(a, b), 1e-2) for a, b in zip(pred.q, truth.q)]
    out["valid_prediction_time"] = float(np.mean(valid))
    if conservative and pred.energy is not None and truth.energy is not None:
        scale = energy_scale or energy_scale_of(truth)
        drift = np.abs(pred.energy[:, -1] - truth.energy[:, 0]) / scale
        out["energy_error"] = float(np.mean(np.where(np.isfinite(drift), drift, np.inf)))
    return out


def energy_scale_of(truth: Prediction) -> float:
    """The default scale of ``energy_error``: the largest ``|E|`` along the true motions."""
    e = np.abs(truth.energy[np.isfinite(truth.energy)])
    return max(float(e.max()) if e.size else 1.0, np.finfo(np.float64).tiny)


def write_prediction(path, predictions: list[Prediction], metrics: dict, settings: dict, force: bool) -> Path:
    """One ``.npz``: ``t``, and ``<name>_q``, ``<name>_qd``, ``<name>_energy`` per
    prediction; ``metadata`` (JSON: settings, metrics, names, failures)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise LagraxError(f"the rollout output must be a .npz file, got {path}")
    check_writable(path, force)
    arrays: dict[str, np.ndarray] = {"t": predictions[0].t}
    for p in predictions:
        arrays[f"{p.name}_q"], arrays[f"{p.name}_qd"] = p.q, p.qd
        if p.energy is not None:
            arrays[f"{p.name}_energy"] = p.energy
    meta = dict(
        settings=settings,
        metrics=metrics,
        names=[p.name for p in predictions],
        failures={p.name: p.failure for p in predictions if p.failure},
    )
    arrays["metadata"] = np.array(json.dumps(meta, default=_jsonable))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


@dataclasses.dataclass
class RolloutJob:
    """What ``lagrax rollout`` was asked: the model (a run directory's, else the ground
    truth ``system`` itself), the truth, where the initial states come from, the times,
    the solver and the outputs."""

    out: Path
    run_dir: Path | None = None
    system: object = None  # the ground truth (a System) or None
    data: Dataset | None = None
    initial_states: str | None = None
    random: int = 10
    seed: int = 0
    duration: float = 10.0
    dt: float = 0.1
    solver: dict = dataclasses.field(default_factory=dict)
    compare: tuple[Path, ...] = ()
    energy_scale: float | None = None
    gif: bool = False
    force: bool = False

    def figure_paths(self) -> dict[str, Path]:
        stem = self.out.with_suffix("")
        paths = {
            "metrics": self.out.with_suffix(".json"),
            "energy": Path(f"{stem}-energy.png"),
            "positions": Path(f"{stem}-positions.png"),
        }
        if self.gif:
            paths["animation"] = self.out.with_suffix(".gif")
        return paths


def _models(job: RolloutJob) -> list[tuple[str, object]]:
    """``(name, system)`` to roll out: the run's model and each compared run's, or the truth."""
    from lagrax.analysis.metrics import load_run

    if job.run_dir is None:
        return [(job.system.info.name, job.system)]
    named = []
    for path in (job.run_dir, *job.compare):
        run = load_run(path)
        _warn_other_system(run, job)
        kind = getattr(getattr(run.model, "spec", None), "kind", None)
        name = str(run.config.get("model") or kind or Path(path).name)
        while name in [n for n, _ in named] or name in ("truth", "recorded"):
            name = f"{name}_{len(named)}"
        named.append((name, run.model))
    return named


def _warn_other_system(run, job: RolloutJob) -> None:
    """A :class:`~lagrax.analysis.metrics.DataMismatchWarning` when the run was trained on
    another system's data than the truth's (or the data's) it is rolled out against: the
    joints may agree in number while the physics differ (``evaluate`` warns the same way)."""
    trained_on = run.config.get("data_name")
    against = job.system.info.name if job.system is not None else None
    recorded = job.data.metadata.get("system") if job.data is not None else None
    if against is None and isinstance(recorded, dict):
        against = recorded.get("name")
    if trained_on and against and trained_on != against:
        warnings.warn(
            f"the model in {run.path} was trained on {trained_on!r} data but is rolled out "
            f"against {against!r}",
            DataMismatchWarning,
            stacklevel=3,
        )


def _start(job: RolloutJob, info):
    """Initial states, times and torques, and the recorded motion when from data."""
    if job.data is not None:
        rec = from_dataset(job.data, job.random, job.duration)
        return rec.q0, rec.qd0, rec.t, rec.tau, rec.truth
    if job.initial_states is not None:
        q0, qd0 = parse_initial_states(job.initial_states, info.dof)
    else:
        q0, qd0 = random_initial_states(info, job.random, job.seed)
    if not (job.dt > 0 and job.duration >= job.dt):
        raise LagraxError(f"need 0 < dt <= duration, got dt={job.dt}, duration={job.duration}")
    t = np.arange(int(round(job.duration / job.dt)) + 1) * job.dt
    return q0, qd0, t, None, None


def _conservative(truth, q0, qd0, tau) -> bool:
    if truth is None or tau is not None:
        return False
    if not truth.provides("friction"):
        return True
    return not np.any(np.asarray(batched(truth).friction(jnp.asarray(q0), jnp.asarray(qd0 + 1.0))))


def _check_dof(models, truth, data) -> None:
    dofs = {name: m.info.dof for name, m in models}
    if truth is not None:
        dofs["the ground truth"] = truth.info.dof
    if data is not None:
        dofs["the data"] = data.dof
    if len(set(dofs.values())) > 1:
        raise ShapeError(f"the number of joints does not match: {dofs}")


def run_rollouts(job: RolloutJob) -> tuple[list[Prediction], dict[str, dict]]:
    """Every prediction of ``job`` (the reference first: recorded motion or the truth's
    rollout, when there is one) and the metrics of each model against the reference."""
    models = _models(job)
    _check_dof(models, job.system, job.data)
    truth = job.system
    q0, qd0, t, tau, recorded = _start(job, (truth or models[0][1]).info)
    predictions = []
    reference = recorded
    if recorded is not None and truth is not None:
        recorded.energy = _energy(truth, recorded.q, recorded.qd)
    if reference is None and truth is not None and job.run_dir is not None:
        reference = predict(truth, q0, qd0, t, tau, truth=truth, name="truth", **job.solver)
    if reference is not None:
        predictions.append(reference)
    for name, model in models:
        predictions.append(predict(model, q0, qd0, t, tau, truth=truth, name=name, **job.solver))
    metrics = {}
    if reference is not None:
        conservative = _conservative(truth, q0, qd0, tau)
        for p in predictions[1:]:
            metrics[p.name] = compare(p, reference, job.energy_scale, conservative)
    return predictions, metrics


def write_outputs(
    job: RolloutJob, predictions: list[Prediction], metrics: dict, settings: dict
) -> list[Path]:
    """The ``.npz``, the metrics ``.json``, the figures and (``job.gif``) the animation."""
    from lagrax.analysis import plotting

    paths = job.figure_paths()
    written = [write_prediction(job.out, predictions, metrics, settings, job.force)]
    text = json.dumps(metrics, indent=2, default=_jsonable) + "\n"
    written.append(atomic_write(paths["metrics"], lambda f: f.write(text.encode())))
    if any(p.energy is not None for p in predictions):
        written.append(plotting.plot_energy(predictions, paths["energy"], job.force))
    written.append(plotting.plot_positions(predictions, paths["positions"], job.force))
    if job.gif:
        lengths = plotting.pendulum_lengths(predictions_info(job))
        frames = [dataclasses.replace(p, q=p.q[:1]) for p in predictions]
        written.append(plotting.animate_pendulum(frames, lengths, paths["animation"], job.force))
    return written


def predictions_info(job: RolloutJob):
    """The system info the animation draws (the truth's, else the data's or the model's)."""
    if job.system is not None:
        return job.system.info
    if job.data is not None:
        return job.data.info
    return _models(job)[0][1].info


def check_outputs(job: RolloutJob) -> None:
    """Refuse, before any work, outputs that exist (without ``force``) or cannot be drawn."""
    from lagrax.analysis import plotting

    if job.out.suffix != ".npz":
        raise LagraxError(f"the rollout output must be a .npz file, got {job.out}")
    check_writable(job.out, job.force)
    for path in job.figure_paths().values():
        check_writable(path, job.force)
    if job.gif and plotting.pendulum_lengths(predictions_info(job)) is None:
        raise LagraxError(
            "--gif draws pendulums (pendulum, double_pendulum, chain_pendulum), "
            f"not {predictions_info(job).name}"
        )


def _jsonable(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    return str(o)


__all__ = [
    "RolloutJob",
    "check_outputs",
    "run_rollouts",
    "write_outputs",
    "Prediction",
    "Recorded",
    "compare",
    "energy_scale_of",
    "from_dataset",
    "parse_initial_states",
    "predict",
    "random_initial_states",
    "write_prediction",
]
