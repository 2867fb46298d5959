"""``lagrax sweep``: search training settings and model options with Optuna.

The work is :func:`lagrax.training.sweep.run_sweep` (the optional extra ``lagrax[sweep]``).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64
from lagrax.core.errors import LagraxError


@request
class SweepRequest:
    """What ``lagrax sweep`` was asked: the space, the data, the study's size, workers and storage."""

    space: Path = argument(..., help="search space: a SPACE.toml file (see lagrax.training.sweep)")
    data: Path = option(..., "--data", "-d", help="dataset file (.npz) every trial trains on")
    out: Path = option(..., "--out", "-o", help="sweep directory to write")
    trials: int = option(20, "--trials", "-n", help="trials in the study, all workers together")
    workers: int = option(1, "--workers", "-w", help="worker processes on this machine")
    storage: str | None = option(
        None, help="study database URL shared by workers on several machines (default: OUT/study.db)"
    )
    seed: int = option(0, help="seed of the TPE sampler (worker k: seed + k)")
    force: bool = option(False, "--force", help="replace the sweep files in an existing --out")
    resume: bool = option(False, "--resume", help="continue the study in --out up to --trials")
    progress: bool = option(True, help="one line per finished trial")


def run(request: SweepRequest) -> None:
    """Search training settings and model options with Optuna (TPE, median pruning).

    Each trial trains a run into OUT/trials/NNNN; OUT gets trials.csv, best.toml (for
    `lagrax train --config`), history.png and sweep.json. Workers on other machines that
    run the same command against the same --storage share the study.
    """
    enable_x64()
    from lagrax.training.sweep import run_sweep

    try:
        result = run_sweep(
            request.space,
            request.data,
            request.out,
            request.trials,
            workers=request.workers,
            storage=request.storage,
            seed=request.seed,
            force=request.force,
            progress=request.progress,
            resume=request.resume,
        )
    except KeyboardInterrupt:
        raise SweepInterrupted(
            f"interrupted (Ctrl-C); `{resume_command(request)}` continues the study"
        ) from None
    console.print(_trials_table(result))
    if result.best is None:
        raise LagraxError(
            f"no trial of the sweep completed ({result.counts}); see {request.out / 'trials.csv'}"
        )
    console.print(
        f"best: trial {result.best['number']}, {result.metric} {result.best['value']:.4g}, in "
        f"{result.wall_seconds:.1f} s; wrote {request.out} (best.toml, trials.csv, history.png, sweep.json)",
        soft_wrap=True,
    )


class SweepInterrupted(LagraxError):
    """Ctrl-C during a sweep: one line naming the command that resumes it, exit code 130."""

    exit_code = 130


def resume_command(request: SweepRequest) -> str:
    """The ``lagrax sweep ... --resume`` command that continues the interrupted ``request``."""
    import shlex

    words = ["lagrax", "sweep", request.space, "--data", request.data, "--out", request.out]
    words += ["--trials", request.trials, "--workers", request.workers, "--seed", request.seed]
    if request.storage:
        from lagrax.training.sweep import shown_url

        words += ["--storage", shown_url(request.storage)]  # (a password stays hidden)
    return shlex.join([str(w) for w in words] + ["--resume"])


def _trials_table(result) -> Table:
    """One row per trial: number, state, value, seconds and the searched values."""
    from lagrax.training.sweep import state_word

    table = Table(title=f"study {result.study} ({result.metric}, minimised)")
    for column in ("trial", "state", "value", "seconds", *result.param_names):
        table.add_column(column, justify="left" if column == "state" else "right")
    for row in result.rows:
        cells = [row["number"], state_word(row["state"]), row["value"], row["seconds"]]
        cells += [row[name] for name in result.param_names]
        table.add_row(*(_cell(c) for c in cells))
    return table


def _cell(value) -> str:
    """A cell of the trial table: ``-`` for none, 4 significant digits for a float."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


command = as_command(SweepRequest, run)
