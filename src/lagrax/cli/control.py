"""``lagrax control``: closed-loop tracking control of a robot with learned models (and online learning).

The work is :mod:`lagrax.control.tracking` (the loops, their outputs),
:mod:`lagrax.control.laws` and :mod:`lagrax.control.online`: this module turns the
command's options into a :class:`~lagrax.control.tracking.ControlJob`.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64
from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError


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
    rate: float = option(1000.0, help="control rate [Hz]")
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


def run(request: ControlRequest) -> None:
    """Closed-loop tracking control of a robot with learned models (and online learning).

    The plant is the robot's true dynamics; each row controls it with a model: every
    run directory's, the analytic one and PD alone. Writes OUT (.npz), OUT.json (tracking
    RMSE and max error per joint, effort), OUT-tracking.png and OUT-errors.png. A loop
    that blows up stops at its first non-finite torque or state and its row says when
    and why; the command fails only when every learned model's loop did.
    """
    enable_x64()
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
    reference = _reference(request, info)
    gains = _gains(request, info.dof)
    limit = info.torque_limits if request.torque_limit else None
    if request.torque_limit and limit is None:
        raise LagraxError(f"--torque-limit: {info.name} has no torque limits")
    settings = LoopSettings(request.rate, request.substeps, limit, request.q_noise, request.qd_noise)
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


command = as_command(ControlRequest, run)
