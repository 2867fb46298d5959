"""The ``lagrax`` command line: list systems, generate and plot datasets, run the demo.

Each command is a thin shell over the library (:mod:`lagrax.data.trajectories`,
:mod:`lagrax.data.dataset`, :mod:`lagrax.analysis.plotting`, :mod:`lagrax.training`,
:mod:`lagrax.analysis.metrics`, :mod:`lagrax.analysis.report`, :mod:`lagrax.cli.demo`,
:mod:`lagrax.benchmarks`); no physics or data handling lives here, and strings become
option objects here or in the function they are handed to. :func:`main` is the console
script: every :class:`~lagrax.core.errors.LagraxError` and every bad command-line parameter
becomes one line ``error: <message>`` on stderr and exit code 2, without a traceback,
and nothing is overwritten.

Commands add themselves with ``@app.command()``; heavy imports (JAX, Pinocchio)
happen inside the commands so that ``lagrax --help`` and ``lagrax systems`` stay fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lagrax.core.errors import LagraxError, NumericalError

app = typer.Typer(
    name="lagrax",
    help="Learn physically consistent dynamics models of mechanical systems (DeLaN, LNN) in JAX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_USER_ERROR = 2


def _enable_x64() -> None:
    # Ground truth and datasets are generated in float64 (closed-form checks at 1e-10).
    import jax

    jax.config.update("jax_enable_x64", True)


def _parse_params(params: list[str] | None) -> dict:
    """``["m1=2", "g=9.81"]`` -> ``{"m1": 2.0, "g": 9.81}`` (numbers where they parse)."""
    out = {}
    for item in params or []:
        if "=" not in item:
            raise LagraxError(f"--param expects NAME=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            out[key.strip()] = value
    return out


_WORDS = {"true": True, "false": False, "none": None}


def _param_scalar(text: str):
    """``"2"`` -> 2, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None, else the text."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_system_params(params: list[str] | None) -> dict:
    """``-p`` values for a system factory: numbers, ``true``/``false``/``none``, comma lists.

    ``["realistic=true", "damping=0.1,0.2", "path=arm.urdf"]`` -> ``{"realistic": True,
    "damping": (0.1, 0.2), "path": "arm.urdf"}``; a list is a tuple of such values (one per
    joint). Whether a value suits its parameter is the factory's check (a LagraxError).
    """
    out: dict = {}
    for item in params or []:
        key, _, value = item.partition("=")
        key = key.strip()
        if not key or "=" not in item:
            raise LagraxError(f"--param expects NAME=VALUE, got {item!r}")
        if key in out:
            raise LagraxError(f"--param {key} is given twice")
        if "," in value:
            parts = value.split(",")
            if any(not x.strip() for x in parts):
                raise LagraxError(f"--param {key}: empty entry in the list {value!r}")
            out[key] = tuple(_param_scalar(x) for x in parts)
        else:
            out[key] = _param_scalar(value)
    return out


# --------------------------------------------------------------------------------------
# lagrax systems
# --------------------------------------------------------------------------------------


def _system_row(name: str, description: str) -> tuple[str, str, str]:
    """(name, dof, description); a system that cannot be built says why instead of crashing."""
    from lagrax.systems import system

    try:
        s = system(name)
    except ModuleNotFoundError as e:
        missing = e.name or str(e)
        if missing.split(".")[0] in ("pinocchio", "example_robot_data"):
            return name, "-", f"{description} [needs Pinocchio: pip install 'lagrax[robots]']"
        return name, "-", f"{description} [not available: {e}]"
    except (ImportError, AttributeError) as e:
        return name, "-", f"{description} [not available: {e}]"
    except (LagraxError, TypeError):
        # e.g. "urdf" needs a path= parameter: describe it, do not build it
        return name, "any", description
    return name, str(s.dof), description


@app.command("systems")
def systems_command() -> None:
    """List the ground-truth systems: name, degrees of freedom, description."""
    from lagrax.systems import list_systems

    table = Table(title="lagrax systems")
    table.add_column("name", style="bold")
    table.add_column("dof", justify="right")
    table.add_column("description")
    for name, description in list_systems():
        table.add_row(*(escape(cell) for cell in _system_row(name, description)))
    console.print(table)


# --------------------------------------------------------------------------------------
# lagrax generate
# --------------------------------------------------------------------------------------


@app.command("generate")
def generate_command(
    system_name: str = typer.Argument(..., metavar="SYSTEM", help="registry name, see `lagrax systems`"),
    out: Path = typer.Option(..., "--out", "-o", help="output dataset file (.npz)"),
    kind: str = typer.Option("excitation", help="passive | excitation | characters | states"),
    trajectories: int | None = typer.Option(None, help="number of trajectories (default per kind)"),
    duration: float | None = typer.Option(None, help="seconds per trajectory (default per kind)"),
    dt: float | None = typer.Option(None, help="sample period in seconds (default per kind)"),
    rate: float | None = typer.Option(None, metavar="HZ", help="or: sample rate in Hz (e.g. 500, 1000)"),
    noise: float = typer.Option(0.0, help="std of Gaussian sensor noise added to q and tau"),
    q_noise: float | None = typer.Option(None, help="std of the noise on q (default: --noise)"),
    tau_noise: float | None = typer.Option(None, help="std of the noise on tau (default: --noise)"),
    measured: str = typer.Option(
        "all",
        metavar="SIGNALS",
        help="what the robot logs: all, or e.g. q,tau (qd, qdd then estimated from the noisy q)",
    ),
    savgol_window: int = typer.Option(11, help="samples of the Savitzky-Golay filter estimating qd, qdd"),
    seed: int = typer.Option(0, help="random seed"),
    letters: str | None = typer.Option(None, help="characters kind: which letters to draw"),
    samples: int | None = typer.Option(None, help="states kind: how many states (default 10000)"),
    q_range: list[str] | None = typer.Option(
        None, metavar="LO,HI", help="states, passive: position range, once for all joints or once per joint"
    ),
    qd_range: list[str] | None = typer.Option(
        None, metavar="LO,HI", help="states, passive: velocity range, once for all joints or once per joint"
    ),
    qdd_range: list[str] | None = typer.Option(None, metavar="LO,HI", help="--shard-size: qdd range"),
    shard_size: int | None = typer.Option(None, help="states: write --out as a directory of N-sample shards"),
    dtype: str | None = typer.Option(None, help="--shard-size: stored float type (default float32)"),
    param: list[str] | None = typer.Option(
        None,
        "--param",
        "-p",
        help="system parameter NAME=VALUE (repeatable): numbers, true/false, or per-joint lists 0.1,0.2,...",
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output file"),
) -> None:
    """Generate SYSTEM's motion (or, --kind states, its states) as one .npz file (--shard-size: shards)."""
    if _generate_sharded(dict(locals())):
        return
    from lagrax.data.dataset import check_writable

    if dt is not None and rate is not None:
        raise LagraxError(
            f"--dt and --rate both set the sample rate: give one (got --dt {dt}, --rate {rate})"
        )
    check_writable(out, force)  # fail before spending minutes on generation
    _enable_x64()
    from lagrax.data.dataset import save_dataset
    from lagrax.systems import system
    from lagrax.data.trajectories import generate

    sys_ = system(system_name, **parse_system_params(param))
    options = _kind_options(kind, letters=letters, samples=samples, q_range=q_range, qd_range=qd_range)
    start = time.perf_counter()
    with console.status(f"generating {kind} data for {system_name} ...") as status:
        ds = generate(
            sys_,
            kind=kind,
            trajectories=trajectories,
            duration=duration,
            dt=dt,
            noise=noise,
            seed=seed,
            progress=lambda msg: status.update(f"{system_name} ({kind}): {msg} ..."),
            rate=rate,
            q_noise=q_noise,
            tau_noise=tau_noise,
            measured=measured,
            savgol_window=savgol_window,
            **options,
        )
        save_dataset(ds, out, force=force)
    elapsed = time.perf_counter() - start
    console.print(
        f"wrote {out}: {len(ds)} samples, {ds.n_trajectories} trajectories, "
        f"{ds.dof} joints, {kind}, in {elapsed:.1f} s",
        soft_wrap=True,
    )


# what `generate --shard-size` cannot honour: option -> its default
_NOT_SHARDED = dict(
    trajectories=None, duration=None, dt=None, rate=None, noise=0.0, q_noise=None, tau_noise=None
) | dict(measured="all", savgol_window=11, letters=None)


def _generate_sharded(given: dict) -> bool:
    """``generate --shard-size``: write a shard directory (:func:`lagrax.data.shards.generate_shards`)
    and return True; return False (after checking its options are unused) without it."""
    if given["shard_size"] is None:
        for name in ("qdd_range", "dtype"):
            if given[name] is not None:
                raise LagraxError(f"--{name.replace('_', '-')} is an option of --shard-size")
        return False
    if given["kind"] != "states":
        raise LagraxError(
            f"--shard-size writes independent states: use --kind states, not --kind {given['kind']}"
        )
    for name, default in _NOT_SHARDED.items():
        if given[name] != default:
            raise LagraxError(f"--{name.replace('_', '-')} is not supported with --shard-size")
    from lagrax.data.dataset import check_writable

    out, force = given["out"], given["force"]
    check_writable(out, force)  # fail before spending minutes on generation
    _enable_x64()
    from lagrax.data.shards import generate_shards
    from lagrax.systems import system

    ranges = {k: _pairs(given[k], "--" + k.replace("_", "-")) for k in ("q_range", "qd_range", "qdd_range")}
    ranges = {k: v[0] if v is not None and len(v) == 1 else v for k, v in ranges.items()}
    sys_ = system(given["system_name"], **parse_system_params(given["param"]))
    start = time.perf_counter()
    data = generate_shards(
        sys_,
        out,
        given["samples"] or 10_000,
        given["shard_size"],
        given["seed"],
        **ranges,
        dtype=given["dtype"] or "float32",
        force=force,
    )
    console.print(
        f"wrote {out}/: {len(data)} samples in {data.n_shards} shards, {data.dof} joints, "
        f"states, in {time.perf_counter() - start:.1f} s",
        soft_wrap=True,
    )
    return True


def _pairs(values: list[str] | None, option: str) -> list[tuple[float, float]] | None:
    """``["lo,hi", ...]`` -> ``[(lo, hi), ...]``; a LagraxError naming ``option`` otherwise."""
    if not values:
        return None
    pairs = []
    for text in values:
        parts = text.replace(" ", "").split(",")
        try:
            lo, hi = (float(x) for x in parts)
        except ValueError:
            raise LagraxError(f"{option} takes LO,HI (two numbers), got {text!r}") from None
        pairs.append((lo, hi))
    return pairs


def _kind_options(kind: str, **given) -> dict:
    """The options of ``kind`` that were given; an error for options of another kind."""
    given["q_range"] = _pairs(given["q_range"], "--q-range")
    given["qd_range"] = _pairs(given["qd_range"], "--qd-range")
    owners = {
        "letters": ("characters",),
        "samples": ("states",),
        "q_range": ("states", "passive"),
        "qd_range": ("states", "passive"),
    }
    options = {k: v for k, v in given.items() if v is not None}
    for name in options:
        if kind not in owners[name]:
            flag = "--" + name.replace("_", "-")
            raise LagraxError(
                f"{flag} is an option of --kind {' or '.join(owners[name])}, not of --kind {kind}"
            )
    for name in ("q_range", "qd_range"):
        if name in options and len(options[name]) == 1:
            options[name] = options[name][0]
    return options


# --------------------------------------------------------------------------------------
# lagrax import (implementation: lagrax.data.importers)
# --------------------------------------------------------------------------------------


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., metavar="SOURCE", help="CSV file, ROS 1 .bag file or ROS 2 bag"),
    out: Path = typer.Option(..., "--out", "-o", help="output dataset file (.npz)"),
    topic: str = typer.Option("/joint_states", help="bags: the sensor_msgs/JointState topic"),
    joints: str | None = typer.Option(
        None,
        help="comma-separated joint names: selects and orders the columns "
        "(default: CSV every q_ column, bag the first message's joints)",
    ),
    name: str | None = typer.Option(None, help="system name in the metadata (default: the file stem)"),
    format: str | None = typer.Option(None, "--format", help="csv | bag (default: by suffix/directory)"),
    window: int = typer.Option(11, help="Savitzky-Golay window (odd) for estimated qd, qdd"),
    polyorder: int = typer.Option(3, help="Savitzky-Golay polynomial order"),
    prismatic: list[str] | None = typer.Option(
        None, "--prismatic", help="a prismatic joint (repeatable; the others are revolute)"
    ),
    resample: bool | None = typer.Option(
        None, "--resample/--no-resample", help="interpolate jittery times onto a uniform grid (default: bags)"
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output file"),
) -> None:
    """Import a robot log (CSV, ROS 1 or ROS 2 bag) as a dataset .npz file (docs/import.md)."""
    from lagrax.data.dataset import check_writable, save_dataset
    from lagrax.data.importers import describe_import, read_log

    check_writable(out, force)
    options = {} if resample is None else {"resample": resample}
    ds = read_log(
        source,
        format,
        topic=topic,
        joints=None if joints is None else [j.strip() for j in joints.split(",") if j.strip()],
        name=name,
        prismatic=prismatic or (),
        window=window,
        polyorder=polyorder,
        **options,
    )
    save_dataset(ds, out, force=force)
    console.print(escape(describe_import(ds, out)), soft_wrap=True)


# --------------------------------------------------------------------------------------
# lagrax plot
# --------------------------------------------------------------------------------------


@app.command("plot")
def plot_command(
    dataset: Path = typer.Argument(..., help="dataset file (.npz)"),
    out: Path = typer.Option(..., "--out", "-o", help="output figure (.png, .pdf, .svg)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing figure"),
) -> None:
    """Plot q, qd and tau of every trajectory of a dataset (and the end-effector path)."""
    from lagrax.data.dataset import load_dataset
    from lagrax.analysis.plotting import check_figure_path, plot_dataset

    check_figure_path(out, force)
    ds = load_dataset(dataset)
    plot_dataset(ds, out, force=force)
    console.print(f"wrote {out}", soft_wrap=True)


# --------------------------------------------------------------------------------------
# lagrax rollout (implementation: lagrax.analysis.prediction)
# --------------------------------------------------------------------------------------


@app.command("rollout")
def rollout_command(
    run_dir: Path | None = typer.Argument(
        None, help="run directory of a trained model (omit: roll out --system)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="output file (.npz); figures and .json go next to it"),
    system: str | None = typer.Option(None, help="ground-truth system (the reference, or what to roll out)"),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="system parameter name=value"),
    data: Path | None = typer.Option(None, "--data", "-d", help="start from (and compare with) a dataset"),
    initial_states: str | None = typer.Option(
        None, help="'q1,..,qn,qd1,..,qdn; ...' or a file of such rows (.npy, .csv, .txt)"
    ),
    random: int = typer.Option(10, help="random initial states (or: trajectories taken from --data)"),
    seed: int = typer.Option(0, help="seed of the random initial states"),
    duration: float | None = typer.Option(
        None, help="seconds to integrate (default 10; with --data: theirs)"
    ),
    dt: float = typer.Option(0.1, help="seconds between saved states"),
    solver: str = typer.Option("tsit5", help="tsit5 | dopri5 | dopri8 (adaptive) | rk4 (needs --step)"),
    rtol: float = typer.Option(1e-8, help="relative tolerance of adaptive steps"),
    atol: float = typer.Option(1e-8, help="absolute tolerance of adaptive steps"),
    step: float | None = typer.Option(None, help="a fixed integration step instead of adaptive ones"),
    compare: list[Path] | None = typer.Option(None, help="another run directory to roll out alongside"),
    energy_scale: float | None = typer.Option(None, help="scale of the energy error (default: max |E|)"),
    gif: bool = typer.Option(False, "--gif", help="also write an animated GIF (pendulums)"),
    force: bool = typer.Option(False, "--force", help="overwrite existing outputs"),
) -> None:
    """Integrate a trained model (or a ground-truth system) from initial states and compare.

    Writes OUT (.npz: times, states and true energies of every rollout), OUT.json (the
    metrics), OUT-energy.png, OUT-positions.png and, with --gif, OUT.gif.
    """
    _enable_x64()
    from lagrax.analysis.prediction import check_outputs, run_rollouts, write_outputs

    job = _rollout_job(locals())
    check_outputs(job)
    with console.status("integrating the rollouts ..."):
        predictions, metrics = run_rollouts(job)
    settings = dict(solver=solver, rtol=rtol, atol=atol, step=step, dt=dt, duration=job.duration)
    for path in write_outputs(job, predictions, metrics, settings):
        console.print(f"wrote {path}", soft_wrap=True)
    for name, row in metrics.items():
        console.print(_metrics_table(row, f"{name} against {predictions[0].name}"))
    failed = [p for p in predictions if p.failure]
    if failed:
        raise NumericalError(f"{failed[0].failure}; the part computed so far is in {out}")


def _data_truth(data, run_dir):
    """The registered system that generated ``data``, else the run's training data."""
    from lagrax.analysis.metrics import dataset_truth, load_run, run_data_path

    if data is None and run_dir is not None:
        try:
            from lagrax.data.dataset import load_dataset

            data = load_dataset(run_data_path(load_run(run_dir)))
        except LagraxError:
            return None
    return dataset_truth(data) if data is not None else None


def _rollout_job(given: dict):
    """The :class:`~lagrax.analysis.prediction.RolloutJob` of the command's options."""
    from lagrax.data.dataset import load_dataset
    from lagrax.analysis.prediction import RolloutJob
    from lagrax.systems import system as make_system

    if given["run_dir"] is None and given["system"] is None:
        raise LagraxError("give a run directory to roll out, or --system NAME to roll out a ground truth")
    if given["initial_states"] is not None and given["data"] is not None:
        raise LagraxError("--initial-states and --data both give initial states: choose one")
    truth = make_system(given["system"], **parse_system_params(given["param"])) if given["system"] else None
    data = load_dataset(given["data"]) if given["data"] is not None else None
    if truth is None:
        truth = _data_truth(data, given["run_dir"])
    solver = dict(solver=given["solver"], rtol=given["rtol"], atol=given["atol"], dt=given["step"])
    duration = given["duration"] if given["duration"] is not None else (None if data is not None else 10.0)
    return RolloutJob(
        out=given["out"],
        run_dir=given["run_dir"],
        system=truth,
        data=data,
        initial_states=given["initial_states"],
        random=given["random"],
        seed=given["seed"],
        duration=duration,
        dt=given["dt"],
        solver=solver,
        compare=tuple(given["compare"] or ()),
        energy_scale=given["energy_scale"],
        gif=given["gif"],
        force=given["force"],
    )


# --------------------------------------------------------------------------------------
# lagrax control (implementation: lagrax.control.tracking, lagrax.control.laws, lagrax.control.online)
# --------------------------------------------------------------------------------------


@app.command("control")
def control_command(
    run_dirs: list[Path] | None = typer.Argument(
        None, help="run directories of trained models to control with"
    ),
    system: str = typer.Option(..., help="the robot (the plant): panda, ur5, urdf -p path=ARM.urdf, ..."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="system parameter name=value"),
    out: Path = typer.Option(..., "--out", "-o", help="output file (.npz); .json and figures go next to it"),
    trajectory: str = typer.Option(
        "random", help="'random' (Fourier series within the limits) or an .npz with q, qd, qdd at --rate"
    ),
    count: int = typer.Option(1, help="random references, tracked at once (vmap)"),
    seed: int = typer.Option(0, help="seed of the random references, noise and online learning"),
    duration: float = typer.Option(10.0, help="seconds of each random reference"),
    speed: float = typer.Option(1.0, help="speed of the random references (1: one period per duration)"),
    controller: str = typer.Option("computed-torque", help="computed-torque | feedforward-pd | pd"),
    rate: float = typer.Option(1000.0, help="control rate [Hz]"),
    substeps: int = typer.Option(1, help="plant RK4 steps per control period"),
    kp: str | None = typer.Option(None, help="proportional gain: one number or one per joint (a,b,...)"),
    kd: str | None = typer.Option(None, help="derivative gain: one number or one per joint"),
    bandwidth: float = typer.Option(
        10.0, help="without --kp/--kd: critically damped at w [rad/s] (PD gains scaled by inertia)"
    ),
    torque_limit: bool = typer.Option(False, "--torque-limit", help="clip torques to the robot's limits"),
    q_noise: float = typer.Option(0.0, help="std of position measurement noise"),
    qd_noise: float = typer.Option(0.0, help="std of velocity measurement noise"),
    clip: bool = typer.Option(
        False, "--clip", help="clip a reference outside the joint limits (else refused)"
    ),
    baselines: bool = typer.Option(True, help="also the analytic model and PD alone"),
    online: bool = typer.Option(False, "--online", help="the first model also learns while it controls"),
    scratch: str | None = typer.Option(None, help="online: start from a new model of this kind (delan, ...)"),
    online_lr: float = typer.Option(1e-3, help="online: AdamW learning rate"),
    online_every: int = typer.Option(1, help="online: ticks between updates"),
    online_steps: int = typer.Option(1, help="online: optimiser steps per update"),
    online_batch: int = typer.Option(32, help="online: minibatch size from the replay buffer"),
    payload: float = typer.Option(0.0, help="mass [kg] added to the end effector at --payload-at"),
    payload_at: float | None = typer.Option(None, help="when the payload is added [s] (default: halfway)"),
    force: bool = typer.Option(False, "--force", help="overwrite existing outputs"),
) -> None:
    """Closed-loop tracking control of a robot with learned models (and online learning).

    The plant is the robot's true dynamics; each row controls it with a model: every
    run directory's, the analytic one and PD alone. Writes OUT (.npz), OUT.json (tracking
    RMSE and max error per joint, effort), OUT-tracking.png and OUT-errors.png.
    """
    _enable_x64()
    import numpy as np

    from lagrax.control.tracking import metrics_rows, run_control, write_control

    job = _control_job(locals())
    job.check_outputs()
    with console.status("running the closed loops ...") as status:
        results = run_control(job, progress=lambda m: status.update(m))
    for path in write_control(job, results):
        console.print(f"wrote {path}", soft_wrap=True)
    table = Table(title=f"tracking on {job.system.info.name} ({job.controller.value}, {rate:g} Hz)")
    for column in ("controller", "RMSE [rad]", "max error [rad]", "effort"):
        table.add_column(column)
    for row in metrics_rows(results):
        cells = [f"{row['rmse']:.3g}", f"{row['max_error']:.3g}", f"{row['effort']:.4g}"]
        table.add_row(row["row"], *(cells if np.isfinite(row["rmse"]) else ["diverged", "-", "-"]))
    console.print(table)


def _floats(text: str | None, what: str):
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise LagraxError(f"--{what} expects a number or comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _control_job(given: dict):
    """The :class:`~lagrax.control.tracking.ControlJob` of the command's options."""
    from lagrax.control.laws import Controller, Gains, LoopSettings
    from lagrax.systems import system as make_system
    from lagrax.control.tracking import ControlJob, load_reference

    truth = make_system(given["system"], **parse_system_params(given["param"]))
    info = truth.info
    if given["trajectory"] == "random":
        from lagrax.data.trajectories import reference_trajectories

        reference = reference_trajectories(
            info, given["duration"], 1.0 / given["rate"], given["count"], given["seed"], speed=given["speed"]
        )
    else:
        reference = load_reference(Path(given["trajectory"]), info.dof)
    gains = None
    if given["kp"] is not None or given["kd"] is not None:
        if given["kp"] is None or given["kd"] is None:
            raise LagraxError("give both --kp and --kd (or neither: gains from --bandwidth)")
        gains = Gains.make(info.dof, _floats(given["kp"], "kp"), _floats(given["kd"], "kd"))
    limit = info.torque_limits if given["torque_limit"] else None
    if given["torque_limit"] and limit is None:
        raise LagraxError(f"--torque-limit: {info.name} has no torque limits")
    settings = LoopSettings(given["rate"], given["substeps"], limit, given["q_noise"], given["qd_noise"])
    seconds = (reference[0].shape[1] - 1) / given["rate"]
    return ControlJob(
        out=given["out"],
        system=truth,
        reference=reference,
        models=_control_models(given, info),
        controller=Controller.parse(given["controller"]),
        gains=gains,
        bandwidth=given["bandwidth"],
        settings=settings,
        baselines=given["baselines"],
        online=_online_settings(given),
        payload=given["payload"],
        payload_at=given["payload_at"] if given["payload_at"] is not None else seconds / 2,
        clip=given["clip"],
        seed=given["seed"],
        force=given["force"],
    )


def _control_models(given: dict, info) -> list:
    """``(name, model)`` of the run directories (and of a new ``--scratch`` model)."""
    from lagrax.analysis.metrics import load_run

    models = []
    for path in given["run_dirs"] or []:
        name = Path(path).name
        while name in [n for n, _ in models]:
            name = f"{name}_{len(models)}"
        models.append((name, load_run(path).model))
    if given["scratch"] is not None:
        if not given["online"]:
            raise LagraxError("--scratch starts a new model for online learning: add --online")
        import jax

        from lagrax.models import make_model

        models.insert(
            0,
            (
                f"{given['scratch']} (new)",
                make_model(given["scratch"], info, key=jax.random.PRNGKey(given["seed"])),
            ),
        )
    return models


def _online_settings(given: dict):
    if not given["online"]:
        return None
    from lagrax.control.online import OnlineSettings

    return OnlineSettings(
        every=given["online_every"],
        steps=given["online_steps"],
        batch_size=given["online_batch"],
        lr=given["online_lr"],
    )


# --------------------------------------------------------------------------------------
# lagrax train (implementation: lagrax.training.run_training)
# --------------------------------------------------------------------------------------


@app.command("train")
def train_command(
    model: str = typer.Option(..., "--model", "-m", help="delan | lnn | hnn | hnn_structured | mlp"),
    data: Path = typer.Option(
        ..., "--data", "-d", help="dataset file (.npz), ours or the DeLaN character file"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="run directory to write"),
    test_labels: str | None = typer.Option(
        None, help="held-out trajectory labels, comma-separated, e.g. e,q,v (ids 0,1,... without labels)"
    ),
    test_fraction: float | None = typer.Option(
        None, help="or: fraction of trajectories held out for testing"
    ),
    val_fraction: float | None = typer.Option(
        None, help="fraction of training trajectories for validation/early stopping (default 0)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML file with train and model tables"),
    epochs: int | None = typer.Option(None, help="passes over the training set"),
    batch_size: int | None = typer.Option(None, help="minibatch size (0 = full batch)"),
    steps_per_epoch: int | None = typer.Option(None, help="optimiser steps per compiled epoch"),
    lr: float | None = typer.Option(None, help="peak learning rate"),
    schedule: str | None = typer.Option(None, help="cosine | onecycle | constant"),
    weight_decay: float | None = typer.Option(None, help="AdamW weight decay"),
    loss: str | None = typer.Option(None, help="loss weights, e.g. inverse=1,forward=0.1 (others 0)"),
    lbfgs_epochs: int | None = typer.Option(
        None, help="full-batch L-BFGS epochs after the AdamW ones (0 = none)"
    ),
    lbfgs_steps: int | None = typer.Option(None, help="L-BFGS iterations per L-BFGS epoch"),
    lbfgs_memory: int | None = typer.Option(None, help="L-BFGS memory (stored update pairs)"),
    patience: int | None = typer.Option(None, help="validations without improvement before stopping"),
    max_seconds: float | None = typer.Option(None, help="stop after this much training time"),
    dtype: str | None = typer.Option(None, help="float32 | float64"),
    seed: int | None = typer.Option(None, help="random seed (model, shuffling, split)"),
    width: int | None = typer.Option(None, help="hidden units per layer"),
    depth: int | None = typer.Option(None, help="hidden layers"),
    activation: str | None = typer.Option(None, help="tanh | softplus | ..."),
    option: list[str] | None = typer.Option(
        None, "--option", "-O", help="model option NAME=VALUE (repeatable)"
    ),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    force: bool = typer.Option(False, "--force", help="replace the run files in an existing --out"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    devices: str | None = typer.Option(
        None, help="data-parallel over N devices or 'all' (multi-process: LAGRAX_COORDINATOR etc.)"
    ),
    ensemble: int | None = typer.Option(
        None, min=1, help="train K members (seeds seed..seed+K-1) as one vmapped program"
    ),
) -> None:
    """Train a model on a dataset; write config, metrics, checkpoints and the model to --out.

    Settings not given come from the model's recipe for the data (lagrax.training.recipe).
    Arms (4 joints or more), delan and mlp: 150 AdamW epochs at lr 1e-2 with the inverse
    and forward losses; delan 128 wide with learned viscous + Coulomb friction. Smaller
    systems, delan, mlp and hnn_structured: 200 AdamW epochs at lr 1e-2, then 100 L-BFGS
    epochs. Otherwise the TrainConfig defaults.
    """
    given = dict(locals())
    _enable_x64()
    from lagrax.analysis.metrics import held_out_metrics
    from lagrax.training import TrainConfig, run_training
    from lagrax.training.parallel import is_writer, resolve_devices

    n_devices = resolve_devices(devices)  # joins a multi-process run if LAGRAX_COORDINATOR is set
    overrides, model_options = _train_settings(given)
    labels = None if test_labels is None else [x.strip() for x in test_labels.split(",") if x.strip()]
    if not resume:
        TrainConfig.from_dict(overrides)  # a bad option fails before any file is touched
    kwargs = dict(force=force, resume=resume, progress=progress, devices=n_devices, ensemble=ensemble)
    kwargs.update(test_labels=labels, test_fraction=test_fraction, val_fraction=val_fraction)
    path = run_training(model, data, out, overrides, model_options, evaluate=held_out_metrics, **kwargs)
    if is_writer():
        _print_training_summary(model, path)


TRAIN_OPTIONS = (
    "epochs",
    "batch_size",
    "steps_per_epoch",
    "lr",
    "schedule",
    "weight_decay",
    "patience",
    "max_seconds",
    "dtype",
    "seed",
    "lbfgs_epochs",
    "lbfgs_steps",
    "lbfgs_memory",
)
MODEL_OPTIONS = ("width", "depth", "activation")


def _train_settings(given: dict) -> tuple[dict, dict]:
    """Training overrides and model options: the TOML file, then the command-line options."""
    from lagrax.training import TrainConfig, parse_loss_weights, read_toml

    overrides, model_options = {}, {}
    if given["config"] is not None:
        overrides, model_options = read_toml(given["config"])
        TrainConfig.from_dict(overrides)  # the file's own values are checked, even those overridden
    overrides.update({k: given[k] for k in TRAIN_OPTIONS if given[k] is not None})
    if given["loss"] is not None:
        overrides.update(parse_loss_weights(given["loss"]))
    model_options.update({k: given[k] for k in MODEL_OPTIONS if given[k] is not None})
    for key, value in _parse_params(given["option"]).items():
        model_options[key] = {"true": True, "false": False, "none": None}.get(str(value).lower(), value)
    return overrides, model_options


def _print_training_summary(model: str, path: Path) -> None:
    from lagrax.training.rundir import RunDir

    summary = RunDir(path).read_summary()
    test = summary.get("test", {})
    tail = f"; test torque MSE {test['torque_mse']:.3g}" if "torque_mse" in test else ""
    if "ensemble" in test:
        mean, std = test["member_mean"].get("torque_mse"), test["member_std"].get("torque_mse")
        tail += f" (the {test['ensemble']} members' mean prediction)"
        tail += f"; members {mean:.3g} ± {std:.2g}" if mean is not None else ""
    console.print(
        f"trained {model} for {summary['epochs']} epochs ({summary['steps']} steps, "
        f"{summary['train_seconds']:.1f} s, {summary['stopped_reason']}); final loss "
        f"{summary['final_loss']:.3g}{tail}; wrote {path}",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------------------
# lagrax sweep (implementation: lagrax.training.sweep, on Optuna: the optional extra lagrax[sweep])
# --------------------------------------------------------------------------------------


@app.command("sweep")
def sweep_command(
    space: Path = typer.Argument(..., help="search space: a SPACE.toml file (see lagrax.training.sweep)"),
    data: Path = typer.Option(..., "--data", "-d", help="dataset file (.npz) every trial trains on"),
    out: Path = typer.Option(..., "--out", "-o", help="sweep directory to write"),
    trials: int = typer.Option(20, "--trials", "-n", help="trials in the study, all workers together"),
    workers: int = typer.Option(1, "--workers", "-w", help="worker processes on this machine"),
    storage: str | None = typer.Option(
        None, help="study database URL shared by workers on several machines (default: OUT/study.db)"
    ),
    seed: int = typer.Option(0, help="seed of the TPE sampler (worker k: seed + k)"),
    force: bool = typer.Option(False, "--force", help="replace the sweep files in an existing --out"),
    resume: bool = typer.Option(False, "--resume", help="continue the study in --out up to --trials"),
    progress: bool = typer.Option(True, help="one line per finished trial"),
) -> None:
    """Search training settings and model options with Optuna (TPE, median pruning).

    Each trial trains a run into OUT/trials/NNNN; OUT gets trials.csv, best.toml (for
    `lagrax train --config`), history.png and sweep.json. Workers on other machines that
    run the same command against the same --storage share the study.
    """
    _enable_x64()
    from lagrax.training.sweep import run_sweep, state_word

    result = run_sweep(space, data, out, trials, workers, storage, seed, force, progress, resume)
    table = Table(title=f"study {result.study} ({result.metric}, minimised)")
    for column in ("trial", "state", "value", "seconds", *result.param_names):
        table.add_column(column, justify="left" if column == "state" else "right")
    for row in result.rows:
        cells = [row["number"], state_word(row["state"]), row["value"], row["seconds"]]
        cells += [row[name] for name in result.param_names]
        table.add_row(*(_sweep_cell(c) for c in cells))
    console.print(table)
    if result.best is None:
        raise LagraxError(f"no trial of the sweep completed ({result.counts}); see {out / 'trials.csv'}")
    console.print(
        f"best: trial {result.best['number']}, {result.metric} {result.best['value']:.4g}, in "
        f"{result.wall_seconds:.1f} s; wrote {out} (best.toml, trials.csv, history.png, sweep.json)",
        soft_wrap=True,
    )


def _sweep_cell(value) -> str:
    """A cell of the sweep's trial table: ``-`` for none, 4 significant digits for a float."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


# --------------------------------------------------------------------------------------
# lagrax evaluate / report / demo / bench (implementations: lagrax.analysis.metrics, lagrax.analysis.report,
# lagrax.cli.demo, lagrax.benchmarks)
# --------------------------------------------------------------------------------------


def _metrics_table(metrics: dict, title: str) -> Table:
    from lagrax.analysis.report import METRIC_DESCRIPTIONS, format_value

    table = Table(title=title)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for key, value in metrics.items():
        table.add_row(key, format_value(value), escape(METRIC_DESCRIPTIONS.get(key, "")))
    return table


def _members_table(metrics: dict) -> Table:
    """An ensemble's metrics: mean ± std over the members, then each member's value."""
    from lagrax.analysis.report import format_value

    table = Table(title=f"each of the {metrics['ensemble']} members")
    table.add_column("metric", style="bold")
    table.add_column("mean ± std", justify="right")
    for i in range(metrics["ensemble"]):
        table.add_column(f"#{i}", justify="right")
    for key, mean in metrics["member_mean"].items():
        spread = f"{format_value(mean)} ± {format_value(metrics['member_std'][key])}"
        table.add_row(key, spread, *(format_value(m.get(key)) for m in metrics["members"]))
    return table


@app.command("evaluate")
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="run directory written by `lagrax train`"),
    data: Path | None = typer.Option(None, "--data", "-d", help="dataset file (.npz); default: the run's"),
    split: str = typer.Option("test", help="test | train | all (trajectories from the run's split.json)"),
    rollout: bool = typer.Option(True, help="also compute the valid prediction time (rollouts)"),
    force: bool = typer.Option(
        False, "--force", help="replace an earlier evaluation of the same data and split"
    ),
) -> None:
    """Evaluate a trained model: print the metrics and write RUN_DIR/evaluations/DATA-SPLIT.json.

    The run's own test metrics (RUN_DIR/metrics.json, written by training) are never replaced.
    """
    _enable_x64()
    import warnings

    from lagrax.analysis.metrics import ENSEMBLE_KEYS, DataMismatchWarning, evaluate_run, evaluation_path

    target = evaluation_path(run_dir, data, split)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataMismatchWarning)
        with console.status(f"evaluating {run_dir} on its {split} trajectories ..."):
            metrics, run, ds, _ = evaluate_run(run_dir, data, split, rollout=rollout, force=force)
    for w in caught:
        if issubclass(w.category, DataMismatchWarning):
            err_console.print(f"warning: {w.message}", markup=False, highlight=False, soft_wrap=True)
    labels = ", ".join(ds.label(i) for i in ds.trajectory_ids)
    title = f"{run.config.get('model', 'model')} on {split}: {labels}"
    if "members" in metrics:
        title += f" (the mean of {metrics['ensemble']} members' predictions)"
    console.print(_metrics_table({k: v for k, v in metrics.items() if k not in ENSEMBLE_KEYS}, title))
    if "members" in metrics:
        console.print(_members_table(metrics))
    console.print(f"wrote {target}", soft_wrap=True)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="run directory written by `lagrax train`"),
    data: Path | None = typer.Option(None, "--data", "-d", help="dataset file (.npz); default: the run's"),
    force: bool = typer.Option(False, "--force", help="replace an earlier report.md and its figures"),
) -> None:
    """Write RUN_DIR/report.md with figures (torque decomposition, learning curves, rollouts)."""
    _enable_x64()
    from lagrax.analysis.report import check_report_writable, report_run

    check_report_writable(run_dir, force)  # before minutes of rollouts
    with console.status(f"evaluating {run_dir} and drawing the figures ..."):
        path, metrics = report_run(run_dir, data, force=force)
    from lagrax.analysis.metrics import ENSEMBLE_KEYS

    console.print(
        _metrics_table({k: v for k, v in metrics.items() if k not in ENSEMBLE_KEYS}, "test metrics")
    )
    if "members" in metrics:
        console.print(_members_table(metrics))
    console.print(f"wrote {path} and its figures", soft_wrap=True)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="output directory"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing demo directory"),
    epochs: int | None = typer.Option(None, help="AdamW epochs (default: the DeLaN training preset)"),
    seconds: float = typer.Option(90.0, help="stop training after this many seconds"),
    seed: int = typer.Option(0, help="random seed (data and model)"),
) -> None:
    """Generate character data for the two-link arm, train DeLaN, evaluate on held-out letters, report."""
    _enable_x64()
    from lagrax.cli.demo import run_demo

    start = time.perf_counter()
    path = run_demo(
        out,
        force=force,
        epochs=epochs,
        seconds=seconds,
        seed=seed,
        say=lambda msg: console.print(escape(msg), soft_wrap=True),
    )
    from lagrax.training.rundir import RunDir

    metrics = RunDir(path.parent).read_report_metrics()
    console.print(_metrics_table(metrics, "DeLaN on the held-out letters e, q, v"))
    console.print(f"demo done in {time.perf_counter() - start:.0f} s: open {path}", soft_wrap=True)


@app.command("bench")
def bench_command(
    name: str = typer.Argument(..., help="benchmark: delan-character"),
    seeds: str = typer.Option("0,1,2", help="comma-separated seeds or a range (0-9): one ensemble"),
    models: str | None = typer.Option(
        None, help="comma-separated models (default: delan,mlp,hnn_structured)"
    ),
    quick: bool = typer.Option(False, "--quick", help="a short smoke run (few epochs, one seed)"),
    epochs: int | None = typer.Option(None, help="training epochs per run (default per model)"),
    data: Path | None = typer.Option(None, "--data", "-d", help="the DeLaN character file"),
    out: Path | None = typer.Option(None, "--out", "-o", help="also write the markdown table here"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing --out (and its .json)"),
    sequential: bool = typer.Option(False, "--sequential", help="seeds one after another, not an ensemble"),
) -> None:
    """Run a benchmark and print its markdown table (mean +- std over seeds, reference side by side)."""
    from lagrax.benchmarks import BENCHMARKS

    if name not in BENCHMARKS:
        from lagrax.core.errors import UnknownNameError

        raise UnknownNameError.for_name("benchmark", name, BENCHMARKS)
    BENCHMARKS[name](
        seeds=seeds,
        models=models,
        quick=quick,
        epochs=epochs,
        data=data,
        out=out,
        say=lambda msg: console.print(escape(msg), soft_wrap=True),
        force=force,
        sequential=sequential,
    )


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _say_error(message: str) -> None:
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def os_error_message(e: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> ``no space left on device: x``."""
    what = (e.strerror or str(e)).rstrip(".")
    what = what[:1].lower() + what[1:]
    where = e.filename if e.filename is not None else ""
    return f"{what}: {where}" if where else what


INTERRUPTED = "interrupted (Ctrl-C); `lagrax train --resume` continues a run from its last checkpoint"
EXIT_INTERRUPTED = 130


def abort_message(e: BaseException) -> tuple[str, int]:
    """Typer turns an EOFError into Abort: not a Ctrl-C."""
    cause = e.__cause__ or e.__context__
    if isinstance(cause, EOFError):
        return f"unexpected end of input ({cause or 'EOFError'})", EXIT_USER_ERROR
    return INTERRUPTED, EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: user errors -> ``error: <message>`` on stderr and exit code 2.

    Every :class:`LagraxError`, bad command-line parameter and OS error (a full disk, a
    read-only folder, a path below a regular file) is one line and exit 2; Ctrl-C is
    one line and exit 130. Nothing else is caught: a traceback is a lagrax bug.
    """
    from typer._click import exceptions as click_exceptions

    try:
        result = app(args=argv, prog_name="lagrax", standalone_mode=False)
    except LagraxError as e:
        _say_error(str(e))
        code = EXIT_USER_ERROR
    except click_exceptions.ClickException as e:  # bad/missing parameters, unknown options
        if e.format_message():  # (no arguments at all: the help was printed instead)
            _say_error(e.format_message())
        code = EXIT_USER_ERROR
    except OSError as e:
        _say_error(os_error_message(e))
        code = EXIT_USER_ERROR
    except (typer.Abort, KeyboardInterrupt) as e:
        message, code = abort_message(e)
        _say_error(message)
    except typer.Exit as e:
        code = e.exit_code
    else:
        code = result if isinstance(result, int) else 0
        if code == EXIT_INTERRUPTED:  # typer returns Ctrl-C as exit code 130, silently
            _say_error(INTERRUPTED)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
