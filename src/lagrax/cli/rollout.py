"""``lagrax rollout``: integrate a trained model (or a ground truth) from initial states and compare.

The work is :mod:`lagrax.analysis.prediction`: this module turns the command's options
into its :class:`~lagrax.analysis.prediction.RolloutJob` (the system built, the dataset read).
"""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64, err_console, metrics_table
from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError, NumericalError


@request
class RolloutRequest:
    """What ``lagrax rollout`` was asked: the model, the truth, the initial states, the solver, outputs."""

    run_dir: Path | None = argument(None, help="run directory of a trained model (omit: roll out --system)")
    out: Path = option(..., "--out", "-o", help="output file (.npz); figures and .json go next to it")
    system: str | None = option(
        None, "--system", "-s", help="ground-truth system (the reference, or what to roll out)"
    )
    params: list[str] | None = option(None, "--param", "-p", help="system parameter name=value")
    data: Path | None = option(None, "--data", "-d", help="start from (and compare with) a dataset")
    initial_states: str | None = option(
        None, help="'q1,..,qn,qd1,..,qdn; ...' or a file of such rows (.npy, .csv, .txt)"
    )
    random: int = option(10, help="random initial states (or: trajectories taken from --data)")
    seed: int = option(0, help="seed of the random initial states")
    duration: float | None = option(None, help="seconds to integrate (default 10; with --data: theirs)")
    dt: float = option(0.1, help="seconds between saved states")
    solver: str = option("tsit5", help="tsit5 | dopri5 | dopri8 (adaptive) | rk4 (needs --step)")
    rtol: float = option(1e-8, help="relative tolerance of adaptive steps")
    atol: float = option(1e-8, help="absolute tolerance of adaptive steps")
    step: float | None = option(None, help="a fixed integration step instead of adaptive ones")
    compare: list[Path] | None = option(None, help="another run directory to roll out alongside")
    energy_scale: float | None = option(None, help="scale of the energy error (default: max |E|)")
    gif: bool = option(False, "--gif", help="also write an animated GIF (pendulums)")
    force: bool = option(False, "--force", help="overwrite existing outputs")


def run(request: RolloutRequest) -> None:
    """Integrate a trained model (or a ground-truth system) from initial states and compare.

    Writes OUT (.npz: times, states and true energies of every rollout), OUT.json (the
    metrics), OUT-energy.png, OUT-positions.png and, with --gif, OUT.gif.
    """
    enable_x64()
    import warnings

    from lagrax.analysis.metrics import DataMismatchWarning
    from lagrax.analysis.prediction import check_outputs, run_rollouts, write_outputs

    job = rollout_job(request)
    check_outputs(job)
    with warnings.catch_warnings(record=True) as caught:  # said as `warning:` lines, as evaluate does
        warnings.simplefilter("always", DataMismatchWarning)
        with console.status("integrating the rollouts ..."):
            predictions, metrics = run_rollouts(job)
    for w in caught:
        if issubclass(w.category, DataMismatchWarning):
            err_console.print(f"warning: {w.message}", markup=False, highlight=False, soft_wrap=True)
        else:  # the others as they were
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    settings = dict(
        solver=request.solver,
        rtol=request.rtol,
        atol=request.atol,
        step=request.step,
        dt=request.dt,
        duration=job.duration,
    )
    for path in write_outputs(job, predictions, metrics, settings):
        console.print(f"wrote {path}", soft_wrap=True)
    for name, row in metrics.items():
        console.print(metrics_table(row, f"{name} against {predictions[0].name}"))
    failed = [p for p in predictions if p.failure]
    if failed:
        raise NumericalError(f"{failed[0].failure}; the part computed so far is in {request.out}")


def rollout_job(request: RolloutRequest):
    """The :class:`~lagrax.analysis.prediction.RolloutJob` of a request: the system built,
    the dataset read, the default duration resolved."""
    from lagrax.analysis.prediction import RolloutJob
    from lagrax.data.dataset import load_dataset
    from lagrax.systems import system as make_system

    if request.run_dir is None and request.system is None:
        raise LagraxError("give a run directory to roll out, or --system NAME to roll out a ground truth")
    if request.initial_states is not None and request.data is not None:
        raise LagraxError("--initial-states and --data both give initial states: choose one")
    truth = make_system(request.system, **parse_params(request.params)) if request.system else None
    data = load_dataset(request.data) if request.data is not None else None
    if truth is None:
        truth = _data_truth(data, request.run_dir)
    duration = request.duration if request.duration is not None else (None if data is not None else 10.0)
    return RolloutJob(
        out=request.out,
        run_dir=request.run_dir,
        system=truth,
        data=data,
        initial_states=request.initial_states,
        random=request.random,
        seed=request.seed,
        duration=duration,
        dt=request.dt,
        solver=dict(solver=request.solver, rtol=request.rtol, atol=request.atol, dt=request.step),
        compare=tuple(request.compare or ()),
        energy_scale=request.energy_scale,
        gif=request.gif,
        force=request.force,
    )


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


command = as_command(RolloutRequest, run)
