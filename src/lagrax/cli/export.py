"""``lagrax export``: a trained model as an ONNX or StableHLO file for loops outside Python.

The work is :func:`lagrax.analysis.export.export_run`; it writes OUT and OUT.json, after
checking the file against the JAX model (nothing is written on a mismatch).
"""

from __future__ import annotations

from pathlib import Path

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console, enable_x64


@request
class ExportRequest:
    """What ``lagrax export`` was asked: the run, the format and file, the functions and shapes."""

    run_dir: Path = argument(..., help="run directory written by `lagrax train`")
    format: str = option(..., "--format", "-f", help="onnx | stablehlo")
    out: Path = option(..., "--out", "-o", help="the file to write (its metadata goes to OUT.json)")
    batch: int | None = option(None, help="a fixed batch of B states per call (default: one state)")
    member: int | None = option(None, help="an ensemble's member K (default: the members' mean)")
    functions: str | None = option(
        None, help="comma-separated, e.g. inverse_dynamics,mass_matrix (default: all the model provides)"
    )
    data: Path | None = option(
        None, "--data", "-d", help="data whose range the check samples (default: the run's)"
    )
    force: bool = option(False, "--force", help="overwrite OUT and OUT.json")


def run(request: ExportRequest) -> None:
    """Export a trained model to ONNX or StableHLO (OUT, with its metadata in OUT.json).

    The file is checked first: it must match the JAX model to 1e-6 relative on 1,000
    random states from the range of the run's data, or nothing is written.
    """
    enable_x64()
    from lagrax.analysis.export import export_run

    functions = None
    if request.functions is not None:
        functions = [f.strip() for f in request.functions.split(",") if f.strip()]
    with console.status(f"exporting {request.run_dir} to {request.format} and checking it ..."):
        exported = export_run(
            request.run_dir,
            request.out,
            fmt=request.format,
            functions=functions,
            batch=request.batch,
            member=request.member,
            data=request.data,
            force=request.force,
        )
    worst = max(exported.max_relative_error.values())
    console.print(
        f"wrote {exported.path} ({', '.join(exported.functions)}; largest relative difference "
        f"from JAX {worst:.1e}) and {exported.metadata_path}",
        soft_wrap=True,
        markup=False,
    )


command = as_command(ExportRequest, run)
