"""``lagrax report``: RUN_DIR/report.md with its figures (:func:`lagrax.analysis.report.report_run`)."""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64, print_metrics


@request
class ReportRequest:
    """What ``lagrax report`` was asked: the run and the data to evaluate it on."""

    run_dir: Path = argument(..., help="run directory written by `lagrax train`")
    data: Path | None = option(None, "--data", "-d", help="dataset file (.npz); default: the run's")
    force: bool = option(False, "--force", help="replace an earlier report.md and its figures")


def run(request: ReportRequest) -> None:
    """Write RUN_DIR/report.md with figures (torque decomposition, learning curves, rollouts)."""
    enable_x64()
    from lagrax.analysis.report import check_report_writable, report_run

    check_report_writable(request.run_dir, request.force)  # before minutes of rollouts
    with console.status(f"evaluating {request.run_dir} and drawing the figures ..."):
        path, metrics = report_run(request.run_dir, request.data, force=request.force)
    print_metrics(metrics, "test metrics")
    console.print(f"wrote {path} and its figures", soft_wrap=True)


command = as_command(ReportRequest, run)
