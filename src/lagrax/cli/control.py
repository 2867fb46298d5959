"""``lagrax control``: closed-loop tracking control of a robot with learned models (and online learning).

The work is :mod:`lagrax.control.tracking` (the loops, their outputs),
:mod:`lagrax.control.laws` and :mod:`lagrax.control.online`: this module turns the
command's options into a :class:`~lagrax.control.tracking.ControlJob`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from rich.table import Table

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64
from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError, OutOfRangeError


@request
class ControlRequest:
    """What ``lagrax control`` was asked: the plant, the references, the controllers, online learning."""

    run_dirs: list[Path] | None = argument(None, help="run directories of trained models to control with")
    system: str = option(
        ..., "--system", "-s", help="the robot (the plant): panda, ur5, urdf -p path=ARM.urdf, ..."
    )
    params: list[str] | None = option(None, "--param", "-p", help="system parameter name=value")
    out: Path = option(..., "--out", "-o", help="output file (.npz); .json and figures go next to it")
    trajectory: str = option(
        "random", help="'random' (Fourier series within the limits) or an .npz with q, qd, qdd at --rate"
    )
    count: int = option(1, help="random references, tracked at once (vmap)")
    seed: int = option(0, help="seed of the random references, noise and online learning")
    duration: float = option(10.0, help="seconds of each random reference")
    speed: float = option(1.0, help="speed of the random references (1: one period per duration)")
    controller: str | None = option(
        None,
        help="computed-torque | feedforward-pd | pd; default: computed-torque, or feedforward-pd "
        "for a new --scratch model (PD carries the robot while the model learns)",
    )
    rate: float | None = option(None, help="control rate [Hz]; default 1000 (track), 500 (swing-up)")
    substeps: int = option(1, help="plant RK4 steps per control period")
    kp: str | None = option(None, help="proportional gain: one number or one per joint (a,b,...)")
    kd: str | None = option(None, help="derivative gain: one number or one per joint")
    bandwidth: float | None = option(
        None,
        help="without --kp/--kd: critically damped at w [rad/s] (PD gains scaled by inertia); "
        "default: from the robot's inertia and torque limits",
    )
    torque_limit: bool = option(False, "--torque-limit", help="clip torques to the robot's limits")
    q_noise: float = option(0.0, help="std of position measurement noise")
    qd_noise: float = option(0.0, help="std of velocity measurement noise")
    clip: bool = option(False, "--clip", help="clip a reference outside the joint limits (else refused)")
    baselines: bool = option(True, help="also the analytic model and PD alone")
    online: bool = option(False, "--online", help="the first model also learns while it controls")
    scratch: str | None = option(None, help="online: start from a new model of this kind (delan, ...)")
    online_lr: float = option(1e-3, help="online: AdamW learning rate")
    online_every: int = option(1, help="online: ticks between updates")
    online_steps: int = option(1, help="online: optimiser steps per update")
    online_batch: int = option(32, help="online: minibatch size from the replay buffer")
    payload: float = option(0.0, help="mass [kg] added to the end effector at --payload-at")
    payload_at: float | None = option(None, help="when the payload is added [s] (default: halfway)")
    force: bool = option(False, "--force", help="overwrite existing outputs")
    task: str = option(
        "track",
        help="track: follow references | swing-up: swing an under-actuated system (cartpole, furuta, "
        "inverted_double_pendulum) up from --count hanging states and balance it (energy + LQR)",
    )


def run(request: ControlRequest) -> None:
    """Closed-loop tracking control of a robot with learned models (and online learning).

    The plant is the robot's true dynamics; each row controls it with a model: every
    run directory's, the analytic one and PD alone. Writes OUT (.npz), OUT.json (tracking
    RMSE and max error per joint, effort), OUT-tracking.png and OUT-errors.png. A loop
    that blows up stops at its first non-finite torque or state and its row says when
    and why; the command fails only when every learned model's loop did.
    """
    enable_x64()
    if _task(request) == "swing-up":
        return run_swing_up(request)
    request = dataclasses.replace(request, rate=1000.0 if request.rate is None else request.rate)
    from lagrax.control.tracking import learned_rows_all_diverged, metrics_rows, run_control, write_control

    job = control_job(request)
    job.check_outputs()
    with console.status("running the closed loops ...") as status:
        results = run_control(job, progress=lambda m: status.update(m))
    for path in write_control(job, results):
        console.print(f"wrote {path}", soft_wrap=True)
    table = Table(title=f"tracking on {job.system.info.name} ({job.controller.value}, {request.rate:g} Hz)")
    for column in ("controller", "RMSE [rad]", "max error [rad]", "effort"):
        table.add_column(column)
    for row in metrics_rows(results):
        if row["diverged"]:
            table.add_row(row["row"], row["diverged"], "-", "-")
        else:
            table.add_row(row["row"], f"{row['rmse']:.3g}", f"{row['max_error']:.3g}", f"{row['effort']:.4g}")
    console.print(table)
    if learned_rows_all_diverged(results):
        raise LagraxError(
            "every learned model's closed loop diverged (see the table); the outputs are written"
        )


def control_job(request: ControlRequest):
    """The :class:`~lagrax.control.tracking.ControlJob` of a request: the plant built, the
    references drawn or read, the gains, loop settings and models resolved."""
    from lagrax.control.laws import Controller, LoopSettings
    from lagrax.control.tracking import ControlJob
    from lagrax.systems import system as make_system

    truth = make_system(request.system, **parse_params(request.params))
    info = truth.info
    limit = info.torque_limits if request.torque_limit else None
    if request.torque_limit and limit is None:
        raise LagraxError(f"--torque-limit: {info.name} has no torque limits")
    # the settings first: they check --rate before the reference divides by it
    settings = LoopSettings(request.rate, request.substeps, limit, request.q_noise, request.qd_noise)
    if request.trajectory == "random":  # before drawing them: a week at 1 kHz does not fit
        if not (math.isfinite(request.duration) and request.duration > 0):
            raise OutOfRangeError(f"--duration must be a positive number of seconds, got {request.duration}")
        _check_memory(request, request.count, request.duration * request.rate + 1, info.dof)
    reference = _reference(request, info)
    _check_memory(request, *reference[0].shape)
    gains = _gains(request, info.dof)
    seconds = (reference[0].shape[1] - 1) / request.rate
    return ControlJob(
        out=request.out,
        system=truth,
        reference=reference,
        models=_control_models(request, info),
        controller=Controller.parse(_controller(request)),
        gains=gains,
        bandwidth=request.bandwidth,
        settings=settings,
        baselines=request.baselines,
        online=_online_settings(request),
        payload=request.payload,
        payload_at=request.payload_at if request.payload_at is not None else seconds / 2,
        clip=request.clip,
        seed=request.seed,
        force=request.force,
    )


# float64 numbers held per reference, tick and joint: the reference's q, qd, qdd, the work of
# drawing it (its Fourier series' values and derivatives, twice), and per row q, qd, tau
_REFERENCE_NUMBERS, _ROW_NUMBERS = 9, 3


def _check_memory(request: ControlRequest, count: float, samples: float, dof: int) -> None:
    """Refuse references and rows whose arrays alone exceed the machine's memory, before
    NumPy or XLA fails on them (an allocation error, or an abort of the process)."""
    from lagrax.core.memory import check_fits

    rows = (
        len(request.run_dirs or []) + 2 * request.baselines + request.online + (request.scratch is not None)
    )
    nbytes = 8.0 * count * samples * dof * (_REFERENCE_NUMBERS + _ROW_NUMBERS * rows)
    check_fits(
        nbytes,
        f"controlling {count:g} references of {samples:.6g} ticks ({rows} rows)",
        "shorten --duration, lower --rate or track fewer references (--count)",
    )


def _controller(request: ControlRequest) -> str:
    """The --controller, else computed torque; a new model learning from scratch starts
    with feed-forward PD: computed torque with an untrained mass matrix diverges before
    the first update, while PD's feedback holds the robot until the feed-forward helps."""
    if request.controller is not None:
        return request.controller
    return "feedforward-pd" if request.scratch is not None else "computed-torque"


def _reference(request: ControlRequest, info):
    """The references ``(q, qd, qdd)``: random ones, or the --trajectory file's."""
    if request.trajectory != "random":
        from lagrax.control.tracking import load_reference

        return load_reference(Path(request.trajectory), info.dof)
    from lagrax.data.generators import reference_trajectories

    return reference_trajectories(
        info, request.duration, 1.0 / request.rate, request.count, request.seed, speed=request.speed
    )


def _gains(request: ControlRequest, dof: int):
    """The --kp/--kd gains, or None (gains from --bandwidth)."""
    if request.kp is None and request.kd is None:
        return None
    if request.kp is None or request.kd is None:
        raise LagraxError("give both --kp and --kd (or neither: gains from --bandwidth)")
    from lagrax.control.laws import Gains

    return Gains.make(dof, _floats(request.kp, "kp"), _floats(request.kd, "kd"))


def _floats(text: str, what: str):
    """``"2"`` -> 2.0, ``"1,2"`` -> [1.0, 2.0]; an error naming ``--what`` otherwise."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise LagraxError(f"--{what} expects a number or comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _control_models(request: ControlRequest, info) -> list:
    """``(name, model)`` of the run directories (and of a new ``--scratch`` model first)."""
    from lagrax.analysis.metrics import load_run

    models = []
    for path in request.run_dirs or []:
        name = Path(path).name
        while name in [n for n, _ in models]:
            name = f"{name}_{len(models)}"
        models.append((name, load_run(path).model))
    if request.scratch is not None:
        if not request.online:
            raise LagraxError("--scratch starts a new model for online learning: add --online")
        import jax

        from lagrax.models import make_model

        model = make_model(request.scratch, info, key=jax.random.PRNGKey(request.seed))
        models.insert(0, (f"{request.scratch} (new)", model))
    return models


def _online_settings(request: ControlRequest):
    """The :class:`~lagrax.control.online.OnlineSettings` of --online, else None."""
    if not request.online:
        return None
    from lagrax.control.online import OnlineSettings

    return OnlineSettings(
        every=request.online_every,
        steps=request.online_steps,
        batch_size=request.online_batch,
        lr=request.online_lr,
    )


# ---- --task swing-up --------------------------------------------------------------------

TASKS = ("track", "swing-up")
SWING_UP_RATE = 500.0


def _task(request: ControlRequest) -> str:
    """The --task, checked."""
    from lagrax.core.errors import UnknownNameError

    if request.task not in TASKS:
        raise UnknownNameError.for_name("task", request.task, TASKS)
    return request.task


def run_swing_up(request: ControlRequest) -> None:
    """``--task swing-up``: every model swings the plant up from ``--count`` hanging states
    (:mod:`lagrax.control.swing_up`); the table, OUT.npz, OUT.json, OUT-energy.png,
    OUT-angle.png and OUT-swing-up.gif."""
    from lagrax.control import swing_up as su

    job = swing_up_job(request)
    for path in job.paths().values():
        check_writable_output(path, request.force)
    with console.status("running the swing-ups ...") as status:
        results = su.run_swing_up_rows(job, progress=lambda m: status.update(m))
    for path in su.write_swing_up(job, results):
        console.print(f"wrote {path}", soft_wrap=True)
    table = Table(title=f"swing-up of {job.plant.info.name} ({job.settings.rate:g} Hz, {job.count} starts)")
    for column in ("model", "success", "time to upright [s]", "energy error", "note"):
        table.add_column(column)
    for name, r in results.items():
        m = r["metrics"]
        time_up, energy = m["mean_time_to_upright"], m["mean_energy_error"]
        table.add_row(
            name,
            f"{100 * m['success_rate']:.0f} %",
            "-" if time_up is None else f"{time_up:.3g}",
            "-" if energy is None else f"{100 * energy:.2g} %",
            r["note"],
        )
    console.print(table)


def check_writable_output(path: Path, force: bool) -> None:
    from lagrax.data.dataset import check_writable

    check_writable(path, force)


def swing_up_job(request: ControlRequest):
    """The :class:`~lagrax.control.swing_up.SwingUpJob` of a request: the plant (with the
    swing-up's plant friction), the models checked against it, the settings."""
    from lagrax.control import swing_up as su
    from lagrax.systems import system as make_system

    if request.out.suffix != ".npz":
        raise LagraxError(f"the control output must be a .npz file, got {request.out}")
    tracking_only = dict(online=request.online, scratch=request.scratch, payload=request.payload)
    given = [f"--{k}" for k, v in tracking_only.items() if v]
    if given:
        raise LagraxError(f"{', '.join(given)}: for --task track only, not swing-up")
    truth = make_system(request.system, **parse_params(request.params))
    su.check_swing_up_system(truth.info)
    if request.count < 1:
        raise LagraxError(f"--count must be at least 1, got {request.count}")
    plant = su.with_plant_friction(truth)
    settings = su.SwingUpSettings(
        rate=SWING_UP_RATE if request.rate is None else request.rate, duration=request.duration
    )
    models = [(name, model) for name, model in _control_models(request, truth.info)]
    for _, model in models:
        su.check_swing_up_model(model, plant, energies=False)
    if request.baselines:
        models.insert(0, ("analytic", plant))
    if not models:
        raise LagraxError("nothing to run: give a run directory, or keep the analytic baseline")
    from lagrax.core.memory import check_fits

    # per row and start: q, qd, tau and the energies at every tick, float64
    nbytes = 8.0 * len(models) * request.count * settings.ticks * (3 * truth.dof + 2)
    check_fits(
        nbytes,
        f"swinging up {request.count} starts of {settings.ticks} ticks ({len(models)} rows)",
        "shorten --duration or run fewer starts (--count)",
    )
    return su.SwingUpJob(
        out=request.out, plant=plant, models=models, settings=settings, count=request.count, seed=request.seed
    )


command = as_command(ControlRequest, run)
