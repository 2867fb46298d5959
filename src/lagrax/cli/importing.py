"""``lagrax import``: a robot log (CSV, ROS 1 or ROS 2 bag) as a dataset file.

The work is :func:`lagrax.data.importers.read_log` (docs/import.md).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from lagrax.cli.command import argument, as_command, option, request
from lagrax.cli.common import console


@request
class ImportRequest:
    """What ``lagrax import`` was asked: the log, how to read it, and the output file."""

    source: Path = argument(..., metavar="SOURCE", help="CSV file, ROS 1 .bag file or ROS 2 bag")
    out: Path = option(..., "--out", "-o", help="output dataset file (.npz)")
    topic: str = option("/joint_states", help="bags: the sensor_msgs/JointState topic")
    joints: str | None = option(
        None,
        help="comma-separated joint names: selects and orders the columns "
        "(default: CSV every q_ column, bag the first message's joints)",
    )
    name: str | None = option(None, help="system name in the metadata (default: the file stem)")
    format: str | None = option(None, "--format", help="csv | bag (default: by suffix/directory)")
    window: int = option(11, help="Savitzky-Golay window (odd) for estimated qd, qdd")
    polyorder: int = option(3, help="Savitzky-Golay polynomial order")
    prismatic: list[str] | None = option(
        None, "--prismatic", help="a prismatic joint (repeatable; the others are revolute)"
    )
    resample: bool | None = option(
        None, "--resample/--no-resample", help="interpolate jittery times onto a uniform grid (default: bags)"
    )
    force: bool = option(False, "--force", help="overwrite an existing output file")


def run(request: ImportRequest) -> None:
    """Import a robot log (CSV, ROS 1 or ROS 2 bag) as a dataset .npz file (docs/import.md)."""
    from lagrax.data.dataset import check_writable, save_dataset
    from lagrax.data.importers import describe_import, read_log

    check_writable(request.out, request.force)
    options = {} if request.resample is None else {"resample": request.resample}
    joints = request.joints
    ds = read_log(
        request.source,
        request.format,
        topic=request.topic,
        joints=None if joints is None else [j.strip() for j in joints.split(",") if j.strip()],
        name=request.name,
        prismatic=request.prismatic or (),
        window=request.window,
        polyorder=request.polyorder,
        **options,
    )
    save_dataset(ds, request.out, force=request.force)
    console.print(escape(describe_import(ds, request.out)), soft_wrap=True)


command = as_command(ImportRequest, run)
