"""``lagrax evaluate``: a trained model's metrics on a dataset's trajectories.

The work is :func:`lagrax.analysis.metrics.evaluate_run`; it writes
RUN_DIR/evaluations/DATA-SPLIT.json and never replaces the run's own metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64, err_console, print_metrics


@request
class EvaluateRequest:
    """What ``lagrax evaluate`` was asked: the run, the data and split, whether to roll out."""

    run_dir: Path = argument(..., help="run directory written by `lagrax train`")
    data: Path | None = option(None, "--data", "-d", help="dataset file (.npz); default: the run's")
    split: str = option("test", help="test | train | all (trajectories from the run's split.json)")
    rollout: bool = option(True, help="also compute the valid prediction time (rollouts)")
    force: bool = option(False, "--force", help="replace an earlier evaluation of the same data and split")


def run(request: EvaluateRequest) -> None:
    """Evaluate a trained model: print the metrics and write RUN_DIR/evaluations/DATA-SPLIT.json.

    The run's own test metrics (RUN_DIR/metrics.json, written by training) are never replaced.
    """
    enable_x64()
    import warnings

    from lagrax.analysis.metrics import DataMismatchWarning, evaluate_run, evaluation_path

    run_dir, split = request.run_dir, request.split
    target = evaluation_path(run_dir, request.data, split)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataMismatchWarning)
        with console.status(f"evaluating {run_dir} on its {split} trajectories ..."):
            metrics, run, ds, _ = evaluate_run(
                run_dir, request.data, split, rollout=request.rollout, force=request.force
            )
    for w in caught:
        if issubclass(w.category, DataMismatchWarning):
            err_console.print(f"warning: {w.message}", markup=False, highlight=False, soft_wrap=True)
    labels = ", ".join(ds.label(i) for i in ds.trajectory_ids)
    title = f"{run.config.get('model', 'model')} on {split}: {labels}"
    if "members" in metrics:
        title += f" (the mean of {metrics['ensemble']} members' predictions)"
    print_metrics(metrics, title)
    console.print(f"wrote {target}", soft_wrap=True)


command = as_command(EvaluateRequest, run)
