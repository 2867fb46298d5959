"""The engine of ``lagrax control`` (and ``benchmarks/robot_control.py``): build the
plant, the references and the models of a :class:`ControlJob`, run every controller
row through :func:`lagrax.control.laws.track` (and :func:`lagrax.control.online.online_track`),
and write the table, the arrays and the figures.

Rows: each trained model with the chosen controller; ``analytic``, the plant's own
dynamics as the controller's model (the best a model can do); ``pd``, PD alone (the
least). With ``online`` the first model (or a new one, ``scratch``) also learns while
it controls; the row ``<name> online`` is that run and ``<name>`` the same model never
updated.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from lagrax.control.laws import (
    Controller,
    Gains,
    LoopSettings,
    PlantChange,
    Trace,
    default_gains,
    describe_divergence,
    divergence,
    track,
    tracking_metrics,
)
from lagrax.data.dataset import check_writable
from lagrax.core.errors import LagraxError, OutOfRangeError, ShapeError
from lagrax.systems.rigid_body import plant_of
from lagrax.core.fileio import atomic_write

PD_ROW, ANALYTIC_ROW = "pd", "analytic"


def load_reference(path: Path, dof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reference file: an ``.npz`` with ``q``, ``qd``, ``qdd`` of shape ``(T, n)`` or
    ``(B, T, n)``, sampled at the control rate."""
    try:
        with np.load(path) as f:
            missing = [k for k in ("q", "qd", "qdd") if k not in f.files]
            if missing:
                raise LagraxError(
                    f"reference {path} lacks {missing}: it needs q, qd and qdd at the control rate"
                )
            arrays = [np.asarray(f[k], dtype=np.float64) for k in ("q", "qd", "qdd")]
    except (ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise LagraxError(f"reference file {path} does not exist") from None
        raise LagraxError(f"cannot read reference {path}: {e}") from None
    out = tuple(a[None] if a.ndim == 2 else a for a in arrays)
    if any(a.ndim != 3 or a.shape != out[0].shape or a.shape[-1] != dof for a in out):
        raise ShapeError(f"reference {path}: q, qd, qdd must each be (T, {dof}) or (B, T, {dof})")
    return out  # type: ignore[return-value]


@dataclasses.dataclass
class ControlJob:
    """What ``lagrax control`` was asked (see the command's help)."""

    out: Path
    system: object
    reference: tuple[np.ndarray, np.ndarray, np.ndarray]
    models: list[tuple[str, object]]
    controller: Controller = Controller.COMPUTED_TORQUE
    gains: Gains | None = None  # None: default_gains per controller at bandwidth
    bandwidth: float | None = None  # None: the robot's automatic bandwidths
    settings: LoopSettings = dataclasses.field(default_factory=LoopSettings)
    baselines: bool = True
    online: object = None  # an OnlineSettings, or None
    payload: float = 0.0
    payload_at: float = 0.0
    clip: bool = False
    seed: int = 0
    force: bool = False

    def __post_init__(self):
        if not (np.isfinite(self.payload) and self.payload >= 0):
            raise OutOfRangeError(f"the payload must be a mass >= 0 kg, got {self.payload}")
        samples = np.shape(self.reference[0])[1]
        if samples < 2:  # one sample: nothing moves, and every RMSE is 0
            raise ShapeError(f"a reference needs at least 2 samples to track, got {samples}")

    def figure_paths(self) -> dict[str, Path]:
        stem = self.out.with_suffix("")
        return {
            "metrics": self.out.with_suffix(".json"),
            "tracking": Path(f"{stem}-tracking.png"),
            "errors": Path(f"{stem}-errors.png"),
        }

    def check_outputs(self) -> None:
        if self.out.suffix != ".npz":
            raise LagraxError(f"the control output must be a .npz file, got {self.out}")
        for path in (self.out, *self.figure_paths().values()):
            check_writable(path, self.force)

    def gains_for(self, controller: Controller, plant) -> Gains:
        """The given gains, else :func:`~lagrax.control.laws.default_gains` at the reference's start."""
        if self.gains is not None:
            return self.gains
        return default_gains(controller, plant, self.reference[0][0, 0], self.bandwidth, self.settings.rate)

    def change(self, plant) -> PlantChange | None:
        """The payload change of the plant, if any."""
        if self.payload == 0:
            return None
        if not plant.provides("payload"):
            raise LagraxError(
                f"--payload needs a robot from a URDF (a rigid-body tree), not {plant.info.name}"
            )
        tick = int(round(self.payload_at * self.settings.rate))
        return PlantChange(plant.with_payload(self.payload), tick)


def rows_to_run(job: ControlJob, plant) -> list[tuple[str, object, Controller]]:
    """``(name, model, controller)`` of every row."""
    rows = [(name, model, job.controller) for name, model in job.models]
    if job.baselines:
        rows = [(ANALYTIC_ROW, plant, job.controller), *rows, (PD_ROW, None, Controller.PD)]
    return rows


def run_control(job: ControlJob, progress=None) -> dict[str, dict]:
    """Every row's :class:`~lagrax.control.laws.Trace` and metrics: ``{name: {"trace", "metrics"}}``."""
    plant = plant_of(job.system)
    change = job.change(plant)
    dt = job.settings.dt
    results: dict[str, dict] = {}
    for name, model, controller in rows_to_run(job, plant):
        _say(progress, f"closed loop: {name} ({controller.value})")
        gains = job.gains_for(controller, plant)
        trace = track(
            plant, model, controller, gains, job.reference, job.settings, job.seed, job.clip, change
        )
        results[name] = dict(trace=trace, metrics=tracking_metrics(trace, job.reference, dt))
    if job.online is not None:
        results.update(_online_rows(job, plant, job.gains_for(job.controller, plant), change, progress))
    return results


def _online_rows(job: ControlJob, plant, gains, change, progress) -> dict[str, dict]:
    from lagrax.control.online import online_track

    if not job.models:
        raise LagraxError("online learning needs a model: a run directory, or --scratch MODEL")
    name, model = job.models[0]
    _say(progress, f"closed loop with online learning: {name}")
    ref = tuple(a[:1] for a in job.reference)
    trace, learning, _ = online_track(
        plant, model, job.controller, gains, ref, job.settings, job.online, job.seed, change=change
    )
    batched = Trace(*(np.asarray(a)[None] for a in trace))
    metrics = tracking_metrics(batched, ref, job.settings.dt)
    metrics["updates"] = int(np.sum(np.asarray(learning.updated)))
    return {f"{name} online": dict(trace=batched, metrics=metrics, loss=np.asarray(learning.loss))}


def _say(progress, message: str) -> None:
    if progress is not None:
        progress(message)


def write_control(job: ControlJob, results: dict[str, dict]) -> list[Path]:
    """``OUT.npz`` (reference, and per row states, torques and faults), ``OUT.json`` (metrics),
    ``OUT-tracking.png`` and ``OUT-errors.png``."""
    from lagrax.analysis import plotting

    paths = job.figure_paths()
    arrays = {"t": np.arange(job.reference[0].shape[1]) * job.settings.dt, "q_ref": job.reference[0]}
    for i, (name, r) in enumerate(results.items()):
        arrays[f"q_{i}"], arrays[f"tau_{i}"] = np.asarray(r["trace"].q), np.asarray(r["trace"].tau)
        arrays[f"fault_{i}"] = np.asarray(r["trace"].fault)
    arrays["rows"] = np.array(list(results))
    written = [atomic_write(job.out, lambda f: np.savez(f, **arrays))]
    table = {name: r["metrics"] for name, r in results.items()}
    text = json.dumps(dict(rows=table, settings=_settings(job)), indent=2) + "\n"
    written.append(atomic_write(paths["metrics"], lambda f: f.write(text.encode())))
    series = dict(_first_series(name, r["trace"], job.settings.dt) for name, r in results.items())
    t, ref = arrays["t"], job.reference[0][0]
    names = job.system.info.joint_names
    written.append(plotting.plot_tracking(t, ref, series, names, paths["tracking"], job.force))
    written.append(plotting.plot_tracking_errors(t, ref, series, paths["errors"], job.force))
    return written


def _first_series(name: str, trace: Trace, dt: float) -> tuple[str, np.ndarray]:
    """The first reference's positions, labelled; a loop that stopped is cut where it
    stopped and its label says when and why."""
    q = np.array(trace.q[0], dtype=float)
    diverged = divergence(Trace(*(np.asarray(a)[:1] for a in trace)), dt)
    if diverged is None:
        return name, q
    q[int(round(diverged["t"] / dt)) :] = np.nan
    return f"{name}, {describe_divergence(diverged)}", q


def _settings(job: ControlJob) -> dict:
    s = dataclasses.asdict(job.settings)
    return dict(
        s,
        system=job.system.info.name,
        controller=job.controller.value,
        references=int(job.reference[0].shape[0]),
        duration=float((job.reference[0].shape[1] - 1) / job.settings.rate),
        payload=job.payload,
        payload_at=job.payload_at,
        online=None if job.online is None else dataclasses.asdict(job.online),
    )


def metrics_rows(results: dict[str, dict]) -> list[dict]:
    """One flat row per controller for a table: RMSE (all joints), worst joint's max
    error, effort; a loop that stopped has ``None`` for those and its ``diverged`` text
    (``"diverged at t = ... s (cause)"``)."""
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        stopped = m.get("diverged")
        rows.append(
            dict(
                row=name,
                rmse=m["rmse_all"],
                max_error=None if stopped else max(m["max_error"]),
                effort=m["effort"],
                diverged=None if stopped is None else describe_divergence(stopped),
            )
        )
    return rows


def learned_rows_all_diverged(results: dict[str, dict]) -> bool:
    """Whether every row with a learned model (not ``analytic``, not ``pd``) stopped; False
    when there is none."""
    learned = [r for name, r in results.items() if name not in (ANALYTIC_ROW, PD_ROW)]
    return bool(learned) and all(r["metrics"].get("diverged") for r in learned)


__all__ = [
    "ANALYTIC_ROW",
    "ControlJob",
    "PD_ROW",
    "learned_rows_all_diverged",
    "load_reference",
    "metrics_rows",
    "plant_of",
    "rows_to_run",
    "run_control",
    "write_control",
]
