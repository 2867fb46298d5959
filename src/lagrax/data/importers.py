"""Importers: robot logs (CSV files, ROS 1 and ROS 2 bags) into a :class:`~lagrax.data.dataset.Dataset`.

* :func:`read_csv` reads a table with one column per joint and quantity;
* :func:`read_bag` reads ``sensor_msgs/msg/JointState`` messages from a ROS 1 ``.bag``
  file or a ROS 2 bag (a directory with ``metadata.yaml``, or one ``.db3``/``.mcap``
  file) with the pure-Python ``rosbags`` package (``pip install 'lagrax[ros]'``);
* :func:`read_log` picks one of the two by the path (``lagrax import`` calls it).

Both end in the same steps (documented in ``docs/import.md``):

1. **Trajectories.** A ``trajectory`` column (CSV) groups the samples; otherwise a step
   back in time, or a step longer than ``max_gap`` times the median sample period,
   starts a new trajectory. A sample with the same time as the one before it in its
   trajectory is dropped (the count goes into the metadata).
2. **Uniform time.** The Savitzky-Golay filter needs uniform sampling. The period ``dt``
   is the median step within trajectories; if some step differs from it by more than
   ``max_jitter * dt`` the samples are either resampled (``resample=True``, the default
   for bags: linear interpolation of every logged field onto ``t0, t0 + dt, ...`` up to
   the trajectory's last time) or refused with an error (the default for CSV files).
3. **Derivatives.** ``qd`` and ``qdd`` that were not logged are estimated from ``q`` per
   trajectory with :func:`lagrax.data.signals.savgol_derivatives` (``window`` samples, a
   ``polyorder`` polynomial); every trajectory then needs at least ``window`` samples.
   ``tau`` is kept if it was logged, else the dataset has none (a passive log).
4. **Metadata.** ``t`` becomes time within its trajectory; the metadata holds a
   :class:`~lagrax.systems.base.SystemInfo` (``name``, the joint names in output order,
   revolute joints except those named in ``prismatic``), ``dt``, the source (file,
   format, topic, time source), the derivative settings and which fields were
   estimated, and the import settings (resampling, jitter, dropped or skipped samples,
   each trajectory's start time relative to the first sample).

Every problem with the input raises a :class:`~lagrax.core.errors.LagraxError` (mostly
:class:`~lagrax.core.errors.DatasetError`) whose one-line message names it.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lagrax.data.dataset import Dataset
from lagrax.core.errors import DatasetError, LagraxError, UnknownNameError
from lagrax.data.signals import savgol_derivatives
from lagrax.systems.base import SystemInfo
from lagrax.core.version import __version__

FORMATS = ("csv", "bag")
JOINT_STATE = "sensor_msgs/msg/JointState"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
BAG_SUFFIXES = (".bag", ".db3", ".mcap")
FIELDS = ("q", "qd", "qdd", "tau")
ROS_HINT = "reading ROS bags needs the rosbags package: pip install 'lagrax[ros]'"


@dataclasses.dataclass
class _Log:
    """Samples as read, before the common steps: times ``(N,)``, fields ``(N, n)`` or absent."""

    t: np.ndarray
    fields: dict[str, np.ndarray]
    joints: list[str]
    source: dict[str, Any]
    trajectory: np.ndarray | None = None
    labels: list[str] | None = None
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Settings:
    name: str
    prismatic: tuple[str, ...] = ()
    window: int = 11
    polyorder: int = 3
    resample: bool = False
    max_jitter: float = 0.01
    max_gap: float = 3.0


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def detect_format(path, format: str | None = None) -> str:
    """``"csv"`` or ``"bag"``: ``format`` if given, else by the path (a directory or a
    ``.bag``/``.db3``/``.mcap`` file is a bag, a ``.csv``/``.tsv``/``.txt`` file a CSV table)."""
    path = _existing(path)
    if format is not None:
        if format not in FORMATS:
            raise UnknownNameError.for_name("import format", format, FORMATS)
        return format
    if path.is_dir() or path.suffix.lower() in BAG_SUFFIXES:
        return "bag"
    if path.suffix.lower() in CSV_SUFFIXES:
        return "csv"
    raise DatasetError(
        f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
        f"name it with --format csv|bag (format=...)"
    )


def read_log(path, format: str | None = None, *, topic: str = "/joint_states", **options) -> Dataset:
    """Read a CSV table or a ROS bag (see :func:`detect_format`) with :func:`read_csv` or
    :func:`read_bag`; ``topic`` applies to bags only, ``options`` to both."""
    if detect_format(path, format) == "bag":
        return read_bag(path, topic, **options)
    return read_csv(path, **options)


def read_csv(
    path,
    joints: Sequence[str] | None = None,
    time_column: str = "t",
    *,
    trajectory_column: str = "trajectory",
    delimiter: str | None = None,
    name: str | None = None,
    prismatic: Sequence[str] = (),
    window: int = 11,
    polyorder: int = 3,
    resample: bool = False,
    max_jitter: float = 0.01,
    max_gap: float = 3.0,
) -> Dataset:
    """A dataset from a CSV table with a header row.

    Columns: the time ``t`` [s] (``time_column``); per joint ``J`` its position
    ``q_J`` and optionally ``qd_J``, ``qdd_J``, ``tau_J``; optionally integer trajectory
    ids in ``trajectory`` (``trajectory_column``; they become the labels, the dataset's
    ids count 0, 1, ... in order of first appearance). Other columns are ignored, lines
    starting with ``#`` are comments, and ``delimiter`` defaults to a tab for ``.tsv``
    files and a comma otherwise.

    Joint order: ``joints`` selects and orders the output columns by name; by default
    every joint with a ``q_`` column, in the order of the header. ``qd``, ``qdd`` and
    ``tau`` must be given for every selected joint or for none: missing ``qd``/``qdd``
    are estimated from ``q`` (Savitzky-Golay, ``window``, ``polyorder``), a missing
    ``tau`` stays absent. Samples must be uniformly spaced in time (within
    ``max_jitter`` of the period) unless ``resample`` is true; trajectories are split
    as the module docstring describes. ``name`` (default: the file stem) names the
    system; joints in ``prismatic`` are prismatic, the others revolute.
    """
    path = _existing(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a CSV file")
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    header, cells, lines = _read_table(path, delimiter)
    columns = {c: i for i, c in enumerate(header)}
    if time_column not in columns:
        raise DatasetError(f"{path} has no time column {time_column!r}; its columns: {', '.join(header)}")
    joints = _csv_joints(path, header, joints)

    def column(col: str) -> np.ndarray:
        return _numeric(cells[:, columns[col]], col, lines, path)

    fields = {"q": np.stack([column(f"q_{j}") for j in joints], axis=1)}
    for field in FIELDS[1:]:
        present = [j for j in joints if f"{field}_{j}" in columns]
        if present and len(present) < len(joints):
            missing = [f"{field}_{j}" for j in joints if j not in present]
            raise DatasetError(
                f"{path} has {field}_ columns for {', '.join(present)} but not {', '.join(missing)}; "
                f"give {field}_<joint> for every joint or for none"
            )
        if present:
            fields[field] = np.stack([column(f"{field}_{j}") for j in joints], axis=1)
    log = _Log(column(time_column), fields, joints, {"format": "csv", "file": str(path)})
    if trajectory_column in columns:
        log.trajectory, log.labels = _trajectory_ids(column(trajectory_column), trajectory_column)
    settings = _Settings(
        name or path.stem, tuple(prismatic), window, polyorder, resample, max_jitter, max_gap
    )
    return _to_dataset(log, settings, str(path))


def read_bag(
    path,
    topic: str = "/joint_states",
    joints: Sequence[str] | None = None,
    *,
    name: str | None = None,
    prismatic: Sequence[str] = (),
    window: int = 11,
    polyorder: int = 3,
    resample: bool = True,
    max_jitter: float = 0.01,
    max_gap: float = 3.0,
) -> Dataset:
    """A dataset from the ``sensor_msgs/msg/JointState`` messages on ``topic`` of a bag.

    ``path`` is a ROS 1 ``.bag`` file or a ROS 2 bag: its directory (with
    ``metadata.yaml``) or a single ``.db3``/``.mcap`` file. A topic given without its
    leading ``/`` is found too.

    Joint order: columns are mapped **by joint name**, never by position in the
    message, so messages may list the joints in any order and carry other joints
    (a gripper), which are ignored. ``joints`` selects and orders the output columns;
    by default they are the names of the first message, in its order. A message that
    lacks one of the selected joints is skipped (counted in the metadata).
    ``position`` -> ``q``; ``velocity`` -> ``qd`` if every kept message has it, else
    ``qd`` is estimated; ``effort`` -> ``tau`` if every kept message has it, else the
    dataset has no ``tau``; ``qdd`` is always estimated.

    Time: ``header.stamp`` of each message; if any kept message has a zero stamp,
    the bag's receive times for all messages (the metadata says which). Jittery stamps are resampled
    onto a uniform grid at the median period (``resample=True``; ``False`` makes
    jitter above ``max_jitter`` an error). Other settings as in :func:`read_csv`.
    """
    path = _existing(path)
    reader_cls, typestore = _rosbags(path)
    try:
        with reader_cls([path], default_typestore=typestore) as reader:
            topic = _check_topic(reader, topic, path)
            connections = [c for c in reader.connections if c.topic == topic]
            messages = _collect_messages(reader, connections)
    except LagraxError:
        raise
    except Exception as e:  # rosbags raises many kinds (reader, serde, typesys, OS errors)
        raise DatasetError(f"cannot read the bag {path}: {type(e).__name__}: {e}") from None
    log = _joint_states_to_log(messages, joints, topic, path)
    settings = _Settings(
        name or path.stem, tuple(prismatic), window, polyorder, resample, max_jitter, max_gap
    )
    return _to_dataset(log, settings, f"{path}:{topic}")


def describe_import(ds: Dataset, path) -> str:
    """One line about an imported dataset: samples, trajectories, joints, dt, what was estimated."""
    estimated = ds.metadata.get("derivatives", {}).get("estimated", [])
    info = ds.metadata.get("import", {})
    notes = ["estimated " + ", ".join(estimated) if estimated else "nothing estimated"]
    notes.append("with tau" if ds.tau is not None else "no tau")
    if info.get("resampled"):
        notes.append(f"resampled (jitter {info.get('jitter', 0):.0%} of dt)")
    for key, what in (("skipped_messages", "messages skipped"), ("dropped_duplicates", "repeated times")):
        if info.get(key):
            notes.append(f"{info[key]} {what}")
    trajectories = ds.n_trajectories
    return (
        f"wrote {path}: {len(ds)} samples, {trajectories} "
        f"{'trajectory' if trajectories == 1 else 'trajectories'}, {ds.dof} joints "
        f"({', '.join(ds.info.joint_names)}), dt {ds.dt:.6g} s; {'; '.join(notes)}"
    )


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    return path


def _read_table(path: Path, delimiter: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Header, cells ``(N, columns)`` as stripped strings, and each row's line number."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read {path} as CSV: {e}") from None
    # csv rows are text; blank lines and '#' comments are left out, keeping line numbers
    kept = [(i + 1, r) for i, r in enumerate(rows) if r and not r[0].lstrip().startswith("#")]
    if len(kept) < 2:
        raise DatasetError(f"{path} has no data rows (a header row and at least one row of numbers)")
    header = [c.strip() for c in kept[0][1]]
    lines = np.array([line for line, _ in kept[1:]])
    widths = np.array([len(r) for _, r in kept[1:]])
    bad = np.flatnonzero(widths != len(header))
    if bad.size:
        raise DatasetError(
            f"{path} line {lines[bad[0]]} has {widths[bad[0]]} fields but the header has {len(header)}"
        )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise DatasetError(f"{path} has repeated column names: {', '.join(duplicated)}")
    cells = np.char.strip(np.array([r for _, r in kept[1:]], dtype=str))
    return header, cells, lines


def _csv_joints(path: Path, header: list[str], joints: Sequence[str] | None) -> list[str]:
    """The joints to read: ``joints`` (each must have a ``q_`` column) or every ``q_`` column."""
    present = [c[2:] for c in header if c.startswith("q_") and len(c) > 2]
    if joints is None:
        if not present:
            raise DatasetError(
                f"{path} has no position columns (q_<joint>); its columns: {', '.join(header)}"
            )
        return present
    joints = _checked_joint_list(joints)
    for j in joints:
        if j not in present:
            raise DatasetError(
                f"{path} has no column 'q_{j}' for joint {j!r}; joints with q_ columns: "
                f"{', '.join(present) or 'none'}; all columns: {', '.join(header)}"
            )
    return joints


def _numeric(cells: np.ndarray, column: str, lines: np.ndarray, path: Path) -> np.ndarray:
    """One column as floats; a non-numeric or non-finite cell is an error naming its row."""
    try:
        values = cells.astype(float)
    except ValueError:
        values = None
    if values is None:
        row = int(np.flatnonzero(~np.vectorize(_parses_as_float, otypes=[bool])(cells))[0])
        raise DatasetError(
            f"{path}: non-numeric value {str(cells[row])!r} in column {column!r}, "
            f"data row {row + 1} (line {lines[row]})"
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise DatasetError(
            f"{path}: value {str(cells[row])!r} in column {column!r}, data row {row + 1} (line {lines[row]}) "
            f"is not finite ({bad.size} such values in that column)"
        )
    return values


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _trajectory_ids(values: np.ndarray, column: str) -> tuple[np.ndarray, list[str]]:
    """Integer ids from a column -> ids 0, 1, ... in order of first appearance, and labels."""
    if not np.array_equal(values, np.round(values)):
        row = int(np.flatnonzero(values != np.round(values))[0])
        raise DatasetError(f"column {column!r} must hold integer ids; data row {row + 1} has {values[row]}")
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels = [str(int(v)) for v in unique[order]]
    return rank[inverse.reshape(-1)].astype(np.int64), labels


# --------------------------------------------------------------------------------------
# Bags
# --------------------------------------------------------------------------------------


def _rosbags(path: Path):
    """``(AnyReader, default typestore)`` for this bag, or an error saying how to install rosbags."""
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        raise LagraxError(ROS_HINT) from None
    if path.is_dir():
        if not (path / "metadata.yaml").exists():
            raise DatasetError(f"{path} is a directory without metadata.yaml, so not a ROS 2 bag")
    elif path.suffix.lower() not in BAG_SUFFIXES:
        raise DatasetError(
            f"{path} is not a ROS bag: expected a ROS 1 .bag file or a ROS 2 bag "
            "(a directory with metadata.yaml, or a .db3/.mcap file)"
        )
    ros1 = path.suffix.lower() == ".bag" and not path.is_dir()
    return AnyReader, get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)


def _check_topic(reader, topic: str, path: Path) -> str:
    """The topic's name as stored; an error listing the topics if absent or not JointState."""
    topics = reader.topics
    if topic not in topics and f"/{topic}" in topics:
        topic = f"/{topic}"
    if topic not in topics:
        have = ", ".join(f"{name} ({info.msgtype})" for name, info in sorted(topics.items()))
        raise DatasetError(f"{path} has no topic {topic!r}; its topics: {have or 'none'}")
    msgtype = topics[topic].msgtype
    if msgtype != JOINT_STATE:
        raise DatasetError(f"topic {topic!r} of {path} carries {msgtype} messages, not {JOINT_STATE}")
    if topics[topic].msgcount == 0:
        raise DatasetError(f"topic {topic!r} of {path} has no messages")
    return topic


def _collect_messages(reader, connections) -> dict[str, Any]:
    """The messages, grouped by layout (joint names and which arrays are filled).

    Returns ``stamp_ns``/``bag_ns`` ``(M,)`` and ``groups``: layout ``(names, has
    velocity, has effort)`` -> ``(message indices, positions, velocities, efforts)``.
    """
    stamps: list[int] = []
    bag_times: list[int] = []
    groups: dict[tuple[tuple[str, ...], bool, bool], tuple[list, list, list, list]] = {}
    for k, (connection, bag_ns, raw) in enumerate(reader.messages(connections=connections)):
        msg = reader.deserialize(raw, connection.msgtype)
        names = tuple(msg.name)
        n_vel, n_eff = len(msg.velocity), len(msg.effort)
        if len(msg.position) != len(names) or n_vel not in (0, len(names)) or n_eff not in (0, len(names)):
            raise DatasetError(
                f"message {k} on {connection.topic} has {len(names)} joint names but "
                f"{len(msg.position)} positions, {n_vel} velocities and {n_eff} efforts"
            )
        group = groups.setdefault((names, n_vel > 0, n_eff > 0), ([], [], [], []))
        for store, value in zip(group, (k, msg.position, msg.velocity, msg.effort)):
            store.append(value)
        stamps.append(int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
        bag_times.append(int(bag_ns))
    return {"stamp_ns": np.array(stamps, np.int64), "bag_ns": np.array(bag_times, np.int64), "groups": groups}


def _joint_states_to_log(messages: dict, joints: Sequence[str] | None, topic: str, path: Path) -> _Log:
    """Map the grouped messages onto the selected joints by name (vectorised per layout)."""
    groups = messages["groups"]
    joints = list(next(iter(groups))[0]) if joints is None else _checked_joint_list(joints)
    _check_joints_in_messages(groups, joints, topic)
    M, n = len(messages["stamp_ns"]), len(joints)
    arrays = {f: np.full((M, n), np.nan) for f in ("q", "qd", "tau")}
    kept, has_vel, has_eff = (np.zeros(M, bool) for _ in range(3))
    for (names, vel, eff), (rows, position, velocity, effort) in groups.items():
        if not set(joints) <= set(names):
            continue
        cols = [names.index(j) for j in joints]
        rows = np.asarray(rows)
        kept[rows], has_vel[rows], has_eff[rows] = True, vel, eff
        for field, values, filled in (("q", position, True), ("qd", velocity, vel), ("tau", effort, eff)):
            if filled:
                arrays[field][rows] = np.asarray(values, dtype=float).reshape(len(rows), -1)[:, cols]
    use_header = bool(np.all(messages["stamp_ns"][kept] != 0))
    ns = messages["stamp_ns" if use_header else "bag_ns"][kept]
    fields = {"q": arrays["q"][kept]}
    if has_vel[kept].all():
        fields["qd"] = arrays["qd"][kept]
    if has_eff[kept].all():
        fields["tau"] = arrays["tau"][kept]
    for field, values in fields.items():
        _check_finite_messages(values, field, joints, np.flatnonzero(kept), topic)
    source = {
        "format": "ros1 bag" if path.suffix.lower() == ".bag" and not path.is_dir() else "ros2 bag",
        "file": str(path),
        "topic": topic,
        "msgtype": JOINT_STATE,
        "time": "header.stamp" if use_header else "bag time (some header stamps are zero)",
        "start_time": float(ns[0]) * 1e-9,
    }
    notes = {"messages": M, "skipped_messages": int(M - kept.sum())}
    return _Log((ns - ns[0]) * 1e-9, fields, joints, source, notes=notes)


def _check_joints_in_messages(groups: dict, joints: list[str], topic: str) -> None:
    """Every selected joint is in some message, and some message has them all."""
    seen = list(dict.fromkeys(name for names, _, _ in groups for name in names))
    for j in joints:
        if j not in seen:
            raise DatasetError(f"no message on {topic} names joint {j!r}; joints there: {', '.join(seen)}")
    if not any(set(joints) <= set(names) for names, _, _ in groups):
        raise DatasetError(f"no single message on {topic} carries all the joints {', '.join(joints)}")


def _check_finite_messages(values, field: str, joints, message_index: np.ndarray, topic: str) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = bad[0]
        what = {"q": "position", "qd": "velocity", "tau": "effort"}[field]
        raise DatasetError(
            f"non-finite {what} ({values[row, col]}) of joint {joints[col]!r} in message "
            f"{message_index[row]} on {topic} ({len(bad)} such values)"
        )


def _checked_joint_list(joints: Sequence[str]) -> list[str]:
    joints = [joints] if isinstance(joints, str) else list(joints)
    if not joints:
        raise DatasetError("the list of joints is empty")
    repeated = sorted({j for j in joints if joints.count(j) > 1})
    if repeated:
        raise DatasetError(f"joints named more than once: {', '.join(repeated)}")
    return joints


# --------------------------------------------------------------------------------------
# Common steps: trajectories, uniform time, derivatives, metadata
# --------------------------------------------------------------------------------------


def _to_dataset(log: _Log, s: _Settings, source: str) -> Dataset:
    """Split, make uniform, estimate, and wrap the samples in a validated :class:`Dataset`."""
    if s.window % 2 == 0 or s.window <= s.polyorder or s.polyorder < 2:
        raise LagraxError(
            f"the filter window must be odd and longer than the polynomial order (at least 2); "
            f"got window={s.window}, polyorder={s.polyorder}"
        )
    t, fields = log.t, log.fields
    if log.trajectory is None:
        trajectory = _split_by_time(t, s.max_gap)
    else:
        order = np.argsort(log.trajectory, kind="stable")  # each trajectory's samples together
        t, trajectory = t[order], log.trajectory[order]
        fields = {k: v[order] for k, v in fields.items()}
        _check_time_increases(t, trajectory, log.labels, source)
    keep = np.r_[True, (np.diff(t) != 0) | (np.diff(trajectory) != 0)]
    t, trajectory = t[keep], trajectory[keep]
    fields = {k: v[keep] for k, v in fields.items()}
    _check_lengths(trajectory, 2, "at least 2 samples to find the sample period", source, log.labels)
    dt, jitter = _period_and_jitter(t, trajectory)
    resampled = bool(jitter > s.max_jitter)
    if resampled and not s.resample:
        raise DatasetError(
            f"{source}: samples are not uniformly spaced in time (a step differs from the median "
            f"period {dt:.6g} s by {jitter:.1%}, more than {s.max_jitter:.1%}); resample them "
            "(--resample, resample=True)"
        )
    if resampled:
        t, fields, trajectory = _resample(t, fields, trajectory, dt)
    estimated = [f for f in ("qd", "qdd") if f not in fields]
    if estimated:
        why = f"at least window={s.window} samples for the derivative filter"
        _check_lengths(trajectory, s.window, why, source, log.labels)
        qd, qdd = savgol_derivatives(dt, fields["q"], trajectory, window=s.window, polyorder=s.polyorder)
        fields = {"qd": qd, "qdd": qdd, **fields}
    starts = _trajectory_starts(t, trajectory)
    notes = dict(log.notes, resampled=resampled, jitter=float(jitter), dropped_duplicates=int((~keep).sum()))
    notes.update(max_jitter=s.max_jitter, max_gap=s.max_gap, trajectory_start_times=starts.tolist())
    metadata = {
        "system": _system_info(log.joints, s).to_json(),
        "dt": dt,
        "kind": "imported",
        "source": log.source,
        "derivatives": {
            "method": "savgol" if estimated else "logged",
            "window": s.window,
            "polyorder": s.polyorder,
            "estimated": estimated,
        },
        "import": notes,
        "lagrax_version": __version__,
    }
    ds = Dataset(
        t=t - starts[trajectory],
        q=fields["q"],
        qd=fields["qd"],
        qdd=fields["qdd"],
        trajectory=trajectory,
        tau=fields.get("tau"),
        labels=log.labels,
        metadata=metadata,
    )
    return ds.validate(source=source)


def _split_by_time(t: np.ndarray, max_gap: float) -> np.ndarray:
    """Trajectory ids: a new one after a step back in time or a gap over ``max_gap`` periods."""
    steps = np.diff(t)
    forward = steps[steps > 0]
    period = float(np.median(forward)) if forward.size else np.inf
    breaks = (steps < 0) | (steps > max_gap * period)
    return np.r_[0, np.cumsum(breaks)].astype(np.int64)


def _check_time_increases(t, trajectory, labels, source: str) -> None:
    back = np.flatnonzero((np.diff(t) < 0) & (np.diff(trajectory) == 0))
    if back.size:
        k = int(back[0])
        name = _trajectory_name(int(trajectory[k]), labels)
        raise DatasetError(
            f"{source}: time goes back from {t[k]:.6g} s to {t[k + 1]:.6g} s within trajectory {name}"
        )


def _trajectory_name(i: int, labels) -> str:
    return str(i) if labels is None else labels[i]


def _check_lengths(trajectory, minimum: int, why: str, source: str, labels) -> None:
    ids, counts = np.unique(trajectory, return_counts=True)
    short = np.flatnonzero(counts < minimum)
    if short.size:
        k = short[0]
        raise DatasetError(
            f"{source}: trajectory {_trajectory_name(int(ids[k]), labels)} has {counts[k]} "
            f"sample{'s' if counts[k] != 1 else ''}, fewer than the {why} "
            f"({short.size} of {ids.size} trajectories are that short)"
        )


def _period_and_jitter(t, trajectory) -> tuple[float, float]:
    """The median step within trajectories, and the largest deviation from it (relative)."""
    same = np.diff(trajectory) == 0
    steps = np.diff(t)[same]
    dt = float(np.median(steps))
    return dt, float(np.max(np.abs(steps - dt)) / dt)


def _resample(t, fields: dict, trajectory, dt: float):
    """Linear interpolation of every field onto ``t0 + k dt`` within each trajectory."""
    grids: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in fields}
    for i in np.unique(trajectory):  # one vectorised interpolation per trajectory
        m = trajectory == i
        ti = t[m]
        grid = ti[0] + dt * np.arange(int(np.floor((ti[-1] - ti[0]) / dt + 1e-9)) + 1)
        left = np.clip(np.searchsorted(ti, grid, side="right") - 1, 0, ti.size - 2)
        w = ((grid - ti[left]) / (ti[left + 1] - ti[left]))[:, None]
        for k, values in fields.items():
            v = values[m]
            parts[k].append(v[left] * (1 - w) + v[left + 1] * w)
        grids.append(grid)
        ids.append(np.full(grid.size, i, np.int64))
    return np.concatenate(grids), {k: np.concatenate(p) for k, p in parts.items()}, np.concatenate(ids)


def _trajectory_starts(t, trajectory) -> np.ndarray:
    """``starts[id]``: the first time of each trajectory (0 for ids without samples)."""
    starts = np.zeros(int(trajectory.max()) + 1)
    first = np.r_[True, np.diff(trajectory) != 0]
    starts[trajectory[first]] = t[first]
    return starts


def _system_info(joints: list[str], s: _Settings) -> SystemInfo:
    for j in s.prismatic:
        if j not in joints:
            raise UnknownNameError.for_name("prismatic joint", j, joints)
    types = ["prismatic" if j in s.prismatic else "revolute" for j in joints]
    return SystemInfo.make(
        s.name,
        len(joints),
        joint_names=joints,
        joint_types=types,
        description="imported robot log",
    )


__all__ = ["FORMATS", "describe_import", "detect_format", "read_bag", "read_csv", "read_log"]
