"""``lagrax plot``: a dataset's q, qd and tau as a figure (:func:`lagrax.analysis.plotting.plot_dataset`)."""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console


@request
class PlotRequest:
    """What ``lagrax plot`` was asked: the dataset and the figure file."""

    dataset: Path = argument(..., help="dataset file (.npz)")
    out: Path = option(..., "--out", "-o", help="output figure (.png, .pdf, .svg)")
    force: bool = option(False, "--force", help="overwrite an existing figure")


def run(request: PlotRequest) -> None:
    """Plot q, qd and tau of every trajectory of a dataset (and the end-effector path)."""
    from lagrax.analysis.plotting import check_figure_path, plot_dataset
    from lagrax.data.dataset import load_dataset

    check_figure_path(request.out, request.force)
    ds = load_dataset(request.dataset)
    plot_dataset(ds, request.out, force=request.force)
    console.print(f"wrote {request.out}", soft_wrap=True)


command = as_command(PlotRequest, run)
