"""``lagrax bench``: a benchmark of :data:`lagrax.benchmarks.BENCHMARKS`, its markdown table printed."""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import say


@request
class BenchRequest:
    """What ``lagrax bench`` was asked: the benchmark, its seeds and models, the output table."""

    name: str = argument(..., help="benchmark: delan-character")
    seeds: str = option("0,1,2", help="comma-separated seeds or a range (0-9): one ensemble")
    models: str | None = option(None, help="comma-separated models (default: delan,mlp,hnn_structured)")
    quick: bool = option(False, "--quick", help="a short smoke run (few epochs, one seed)")
    epochs: int | None = option(None, help="training epochs per run (default per model)")
    data: Path | None = option(None, "--data", "-d", help="the DeLaN character file")
    out: Path | None = option(None, "--out", "-o", help="also write the markdown table here")
    force: bool = option(False, "--force", help="overwrite an existing --out (and its .json)")
    sequential: bool = option(False, "--sequential", help="seeds one after another, not an ensemble")


def run(request: BenchRequest) -> None:
    """Run a benchmark and print its markdown table (mean +- std over seeds, reference side by side)."""
    from lagrax.benchmarks import BENCHMARKS

    if request.name not in BENCHMARKS:
        from lagrax.core.errors import UnknownNameError

        raise UnknownNameError.for_name("benchmark", request.name, BENCHMARKS)
    BENCHMARKS[request.name](
        seeds=request.seeds,
        models=request.models,
        quick=request.quick,
        epochs=request.epochs,
        data=request.data,
        out=request.out,
        say=say,
        force=request.force,
        sequential=request.sequential,
    )


command = as_command(BenchRequest, run)
