"""The end-to-end demo: the whole pipeline of lagrax, in the order the data flows.

:func:`run_demo` generates character data for the two-link arm
(:mod:`lagrax.data.generators`), saves and plots it (:mod:`lagrax.data.dataset`,
:mod:`lagrax.analysis.plotting`), trains DeLaN with its training preset
(:func:`lagrax.training.run_training`), evaluates it on the held-out letters and writes
the report (:func:`lagrax.analysis.report.report_run`). ``lagrax demo`` (:func:`run`, of a
:class:`DemoRequest`) and ``make demo`` call it.

This module only wires those steps together; each step lives in its own module (imported
when the demo runs, so that ``lagrax --help`` stays fast).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from lagrax.cli.command import as_command, option, request
from lagrax.cli import common
from lagrax.cli.common import console, enable_x64, metrics_table
from lagrax.core.errors import FileExistsLagraxError, LagraxError

DEMO_TEST_LETTERS = "eqv"  # the reference split of the DeLaN character benchmark
DEMO_SYSTEM = "two_link_arm"


def _check_settings(epochs, seconds: float, dt: float) -> None:
    """Every demo setting, before anything is written."""
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
        raise LagraxError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    for name, value in (("seconds", seconds), ("dt", dt)):
        if not (math.isfinite(value) and value > 0):
            raise LagraxError(f"{name} must be a positive finite number, got {value!r}")


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise FileExistsLagraxError(f"{out} exists and is not empty; use --force to overwrite the demo")
    out.mkdir(parents=True, exist_ok=True)


def _generate_data(out: Path, dt: float, seed: int, say: Callable[[str], None]) -> Path:
    """Step 1: the 26 letters drawn by the arm, saved as ``out/characters.npz`` and plotted."""
    from lagrax.analysis.plotting import plot_dataset
    from lagrax.data.dataset import save_dataset
    from lagrax.data.generators import generate
    from lagrax.systems import system

    data_path = out / "characters.npz"
    say(f"[1/4] generating character trajectories for {DEMO_SYSTEM} (26 letters) ...")
    ds = generate(system(DEMO_SYSTEM), kind="characters", dt=dt, seed=seed)
    save_dataset(ds, data_path, force=True)
    plot_dataset(ds, out / "characters.png", force=True)
    say(f"      {len(ds)} samples, {ds.n_trajectories} letters, dt = {ds.dt:g} s -> {data_path}")
    return data_path


def _train(data_path: Path, out: Path, epochs, seconds: float, seed: int, say) -> None:
    """Step 2: DeLaN with the training preset, the test letters held out."""
    from lagrax.analysis.metrics import held_out_metrics
    from lagrax.training import TrainConfig, recipe, run_training

    settings = {**recipe("delan", None)[0], "max_seconds": seconds, "seed": seed}
    if epochs is not None:
        settings["epochs"] = epochs
    config = TrainConfig.from_dict(settings)
    say(
        f"[2/4] training DeLaN: {config.epochs} AdamW epochs + {config.lbfgs_epochs} L-BFGS epochs "
        f"(at most {seconds:g} s), "
        f"test letters {', '.join(DEMO_TEST_LETTERS)} held out ..."
    )
    letters = list(DEMO_TEST_LETTERS)
    run_training("delan", data_path, out, config, {}, letters, force=True, evaluate=held_out_metrics)


def run_demo(
    out: str | Path,
    *,
    force: bool = False,
    epochs: int | None = None,
    seconds: float = 90.0,
    dt: float = 0.02,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> Path:
    """The end-to-end demo: character data for ``two_link_arm`` -> DeLaN -> metrics -> report.

    Generates the 26 letters sampled every ``dt`` (float64 ground truth), holds out
    e, q, v for testing, trains DeLaN with the training preset (``epochs`` overrides its
    AdamW epochs; training stops early after ``seconds``), evaluates it on the held-out
    letters and writes ``report.md`` and the figures into ``out``. ``say`` receives the
    progress lines. Refuses a non-empty ``out`` unless ``force``. Returns the report's path.
    """
    from lagrax.analysis.report import report_run

    out = Path(out)
    _check_settings(epochs, seconds, dt)
    _prepare_out(out, force)
    data_path = _generate_data(out, dt, seed, say)
    _train(data_path, out, epochs, seconds, seed, say)
    say("[3/4] evaluating on the held-out letters (rollouts: RK4 at dt/20) ...")
    path, _ = report_run(out, force=True)
    say(f"[4/4] wrote {path} and its figures")
    return path


@request
class DemoRequest:
    """What ``lagrax demo`` was asked: the output directory, the training budget, the seed."""

    out: Path = option(Path("runs/demo"), "--out", "-o", help="output directory")
    force: bool = option(False, "--force", help="overwrite an existing demo directory")
    epochs: int | None = option(None, help="AdamW epochs (default: the DeLaN training preset)")
    seconds: float = option(90.0, help="stop training after this many seconds")
    seed: int = option(0, help="random seed (data and model)")


def run(request: DemoRequest) -> None:
    """Generate character data for the two-link arm, train DeLaN, evaluate on held-out letters, report."""
    enable_x64()
    start = time.perf_counter()
    path = run_demo(
        request.out,
        force=request.force,
        epochs=request.epochs,
        seconds=request.seconds,
        seed=request.seed,
        say=common.say,
    )
    from lagrax.training.rundir import RunDir

    metrics = RunDir(path.parent).read_report_metrics()
    console.print(metrics_table(metrics, "DeLaN on the held-out letters e, q, v"))
    console.print(f"demo done in {time.perf_counter() - start:.0f} s: open {path}", soft_wrap=True)


command = as_command(DemoRequest, run)

__all__ = ["DEMO_TEST_LETTERS", "DemoRequest", "run_demo", "run"]
