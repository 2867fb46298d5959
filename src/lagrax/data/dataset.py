"""Datasets: the one in-memory form, the ``.npz`` format, loaders and splits.

* :class:`Dataset` holds samples ``(N, n)`` of one system's motion, grouped into
  trajectories by an integer id per sample, with optional ground truth.
* :func:`save_dataset` / :func:`load_dataset` write and read one ``.npz`` file
  (format below); :func:`load_dataset` also reads the DeLaN reference character
  file (``delan_character_trajectories.npz``) into the same form.
* :meth:`Dataset.split` separates train and test **by trajectory** (by label or by
  a fraction of trajectories), never by sample.

File format (``.npz``, no pickles): ``t (N,)`` time within its trajectory [s];
``q, qd, qdd (N, n)``; ``trajectory (N,)`` integer ids; optional ``tau (N, n)``,
ground truth ``mass_matrix (N, n, n)``, ``inertial, coriolis, gravity (N, n)``,
``energy (N,)``, ``p, pdot (N, n)``; optional ``labels (K,)`` strings (``labels[id]``
names trajectory ``id``); ``metadata``: a 0-d string array holding JSON (system info
under ``"system"``, ``dt``, generator settings, seed, lagrax version).

This module does not generate data (:mod:`lagrax.data.generators`), estimate derivatives
(:mod:`lagrax.data.signals`) or plot (:mod:`lagrax.analysis.plotting`); it imports none of them but
:mod:`lagrax.data.signals`.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lagrax.core.errors import DatasetError, FileExistsLagraxError, UnknownNameError
from lagrax.core.fileio import atomic_write
from lagrax.data.signals import savgol_derivatives
from lagrax.systems.base import SystemInfo

REQUIRED_FIELDS = ("t", "q", "qd", "qdd", "trajectory")
OPTIONAL_FIELDS = ("tau", "mass_matrix", "inertial", "coriolis", "gravity", "energy", "p", "pdot")
ARRAY_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
# Per-sample trailing shape of each field, in terms of the dof n.
_TRAILING = {
    "t": lambda n: (),
    "trajectory": lambda n: (),
    "energy": lambda n: (),
    "mass_matrix": lambda n: (n, n),
}


def is_passive(dataset) -> bool:
    """Whether ``dataset`` has no torques, or torques that are zero in every sample."""
    return dataset.tau is None or not np.any(np.asarray(dataset.tau))


def unactuated_joints(dataset) -> tuple[int, ...]:
    """The joints of ``dataset`` that no input drives: those its system info marks
    unactuated, and, in driven data, those whose torque is zero in every sample (an
    imported log of an under-actuated plant). Empty for passive data and fully actuated
    systems."""
    if is_passive(dataset):
        return ()
    marked = set()
    if "system" in getattr(dataset, "metadata", {}):
        marked = {i for i, a in enumerate(dataset.info.actuated) if not a}
    silent = np.flatnonzero(~np.any(np.asarray(dataset.tau) != 0, axis=0))
    return tuple(sorted(marked | {int(i) for i in silent}))


def has_motion(dataset) -> bool:
    """Whether ``dataset`` records motion in time (not independent states, ``kind="states"``,
    whose samples all have ``t = 0``): only then can rollouts be compared with it."""
    return dataset.metadata.get("kind") != "states" and bool(np.any(np.asarray(dataset.t) != 0))


DELAN_KEYS = ("labels", "traj_start", "traj_len", "t", "qp", "qv", "qa", "tau", "m", "c", "g")
DELAN_DT = 0.04
DELAN_INFO = SystemInfo.make(
    "delan_character_arm",
    2,
    joint_names=("q1", "q2"),
    joint_types=("revolute", "revolute"),
    description="simulated gravity-loaded planar 2-link arm of the DeLaN character dataset (Lutter et al.)",
)


@dataclasses.dataclass
class Dataset:
    """Samples of one system's motion, grouped into trajectories.

    Arrays (N samples, n joints): ``t (N,)`` time within its trajectory; ``q, qd, qdd
    (N, n)``; ``trajectory (N,)`` integer ids; optional ``tau (N, n)``, ground-truth
    ``mass_matrix (N, n, n)``, ``inertial = M qdd``, ``coriolis``, ``gravity (N, n)``,
    ``energy (N,)``, momentum ``p`` and its rate ``pdot (N, n)``. ``labels`` names
    each trajectory id (``labels[id]``), e.g. the character drawn; ids keep their
    meaning in subsets and splits. ``metadata`` holds the system info
    (``metadata["system"]``, a :meth:`SystemInfo.to_json` dict), ``dt`` and the
    generator settings.
    """

    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    trajectory: np.ndarray
    tau: np.ndarray | None = None
    mass_matrix: np.ndarray | None = None
    inertial: np.ndarray | None = None
    coriolis: np.ndarray | None = None
    gravity: np.ndarray | None = None
    energy: np.ndarray | None = None
    p: np.ndarray | None = None
    pdot: np.ndarray | None = None
    labels: list[str] | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # keep the metadata in its on-disk (JSON) form, so a loaded dataset equals the saved one
        try:
            self.metadata = json.loads(json.dumps(self.metadata, default=json_default))
        except (TypeError, ValueError) as e:
            raise DatasetError(f"dataset metadata must be JSON-serialisable: {e}") from None

    # ---- shape and metadata -----------------------------------------------------------
    @property
    def dof(self) -> int:
        return int(self.q.shape[-1])

    @property
    def info(self) -> SystemInfo:
        if "system" not in self.metadata:
            raise DatasetError("dataset metadata has no 'system' entry (the system's info)")
        return SystemInfo.from_json(self.metadata["system"])

    @property
    def dt(self) -> float | None:
        """Sample period [s] from the metadata, if recorded."""
        dt = self.metadata.get("dt")
        return None if dt is None else float(dt)

    def __len__(self) -> int:
        return int(self.q.shape[0])

    # ---- trajectories -----------------------------------------------------------------
    @property
    def trajectory_ids(self) -> np.ndarray:
        """The distinct trajectory ids, in order of first appearance."""
        ids, first = np.unique(self.trajectory, return_index=True)
        return ids[np.argsort(first)]

    @property
    def n_trajectories(self) -> int:
        return int(np.unique(self.trajectory).size)

    def label(self, trajectory_id: int) -> str:
        """The label of one trajectory id (its id as a string if there are no labels)."""
        return str(trajectory_id) if self.labels is None else self.labels[int(trajectory_id)]

    def select_trajectories(self, ids: Sequence[int] | np.ndarray) -> "Dataset":
        """The samples of the given trajectory ids (ids and labels keep their meaning)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        unknown = np.setdiff1d(ids, self.trajectory)
        if unknown.size:
            raise DatasetError(
                f"no trajectories with ids {unknown.tolist()}; known ids: {self.trajectory_ids.tolist()}"
            )
        return self._subset(np.isin(self.trajectory, ids))

    def trajectories(self) -> Iterator[tuple[int, "Dataset"]]:
        """``(id, dataset of that trajectory)`` for each trajectory, in file order."""
        for i in self.trajectory_ids:
            yield int(i), self._subset(self.trajectory == i)

    def split(
        self,
        test_labels: Sequence[str] | str | None = None,
        test_fraction: float | None = None,
        seed: int = 0,
    ) -> tuple["Dataset", "Dataset"]:
        """``(train, test)``, separated by whole trajectories.

        Give exactly one of ``test_labels`` (e.g. ``"eqv"`` or ``["e", "q", "v"]``: all
        trajectories with those labels are test; a trajectory without a label is named by
        its id, ``"0"``, ``"1"``, ...) or ``test_fraction`` (that fraction of
        the trajectories, rounded, drawn at random with ``seed``). Raises
        :class:`DatasetError` if either side would be empty.
        """
        if (test_labels is None) == (test_fraction is None):
            raise DatasetError("split needs exactly one of test_labels or test_fraction")
        ids = self.trajectory_ids
        if test_labels is not None:
            wanted = [
                str(x) for x in (test_labels if not isinstance(test_labels, str) else list(test_labels))
            ]
            names = {int(i): self.label(i) for i in ids}  # an unlabelled trajectory is named by its id
            for label in wanted:
                if label not in names.values():
                    raise UnknownNameError.for_name("trajectory label", label, sorted(set(names.values())))
            test_ids = np.array([i for i, name in names.items() if name in wanted], dtype=np.int64)
        else:
            if not 0.0 < test_fraction < 1.0:
                raise DatasetError(f"test_fraction must lie in (0, 1), got {test_fraction}")
            n_test = int(round(test_fraction * ids.size))
            if n_test in (0, ids.size):
                raise DatasetError(
                    f"test_fraction={test_fraction} of {ids.size} trajectories leaves an empty "
                    f"{'test' if n_test == 0 else 'training'} set"
                )
            test_ids = np.random.default_rng(seed).permutation(ids)[:n_test]
        is_test = np.isin(self.trajectory, test_ids)
        if is_test.all():
            raise DatasetError("the split leaves no training trajectories")
        return self._subset(~is_test), self._subset(is_test)

    def _subset(self, mask: np.ndarray) -> "Dataset":
        arrays = {f: (None if getattr(self, f) is None else getattr(self, f)[mask]) for f in ARRAY_FIELDS}
        return Dataset(**arrays, labels=self.labels, metadata=dict(self.metadata))

    # ---- construction and checks ------------------------------------------------------
    @classmethod
    def from_positions(
        cls,
        t: np.ndarray,
        q: np.ndarray,
        trajectory: np.ndarray | None = None,
        tau: np.ndarray | None = None,
        *,
        info: SystemInfo | None = None,
        labels: Sequence[str] | None = None,
        window: int = 11,
        polyorder: int = 3,
        metadata: dict | None = None,
    ) -> "Dataset":
        """A dataset from logged positions (and torques) only: ``qd, qdd`` are estimated
        with a Savitzky-Golay filter per trajectory (see
        :func:`lagrax.data.signals.savgol_derivatives`); ``q`` and ``tau`` are kept as given.
        """
        t = np.asarray(t, dtype=float)
        q = np.asarray(q, dtype=float)
        if q.ndim == 1:
            q = q[:, None]
        trajectory = np.zeros(len(q), np.int64) if trajectory is None else np.asarray(trajectory, np.int64)
        if t.shape != (len(q),) or trajectory.shape != (len(q),):
            raise DatasetError(
                f"t {t.shape} and trajectory {trajectory.shape} must have shape ({len(q)},) like q"
            )
        qd, qdd = savgol_derivatives(t, q, trajectory, window=window, polyorder=polyorder)
        meta = dict(metadata or {})
        info = info or SystemInfo.make("logged_system", q.shape[1])
        meta.setdefault("system", info.to_json())
        meta.setdefault("kind", "from_positions")
        meta.setdefault("derivatives", {"method": "savgol", "window": window, "polyorder": polyorder})
        ds = cls(
            t=t,
            q=q,
            qd=qd,
            qdd=qdd,
            trajectory=trajectory,
            tau=None if tau is None else np.asarray(tau, dtype=float),
            labels=None if labels is None else list(labels),
            metadata=meta,
        )
        ds.validate()
        return ds

    def validate(self, source: str = "dataset") -> "Dataset":
        """Check shapes, finiteness and the dof against the metadata; raise :class:`DatasetError`."""
        for f in REQUIRED_FIELDS:
            if getattr(self, f) is None:
                raise DatasetError(f"{source}: missing required array {f!r}")
        q = np.asarray(self.q)
        if q.ndim != 2:
            raise DatasetError(f"{source}: q must have shape (N, n), got {q.shape}")
        N, n = q.shape
        if N == 0:
            raise DatasetError(f"{source}: no samples")
        for f in ARRAY_FIELDS:
            if getattr(self, f) is not None:
                _check_field(source, f, getattr(self, f), N, n)
        _check_metadata(source, self.metadata)
        if "system" in self.metadata:
            meta_dof = int(self.metadata["system"].get("dof", n))
            if meta_dof != n:
                raise DatasetError(
                    f"{source}: q has {n} joints but the metadata's system "
                    f"{self.metadata['system'].get('name', '?')!r} has dof={meta_dof}"
                )
        last = int(np.max(self.trajectory))
        if self.labels is not None and len(self.labels) <= last:
            raise DatasetError(f"{source}: {len(self.labels)} labels but trajectory ids go up to {last}")
        return self


def concatenate(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset of the samples of ``datasets`` in order (e.g. recordings of one robot,
    or excitation of several trajectory lengths).

    Every part must be of the same system (equal ``metadata["system"]``) and carry the same
    fields. Trajectory ids are renumbered so that each part's stay distinct (part ``k``'s
    ids are shifted past those before it), and labels follow them. The metadata are the
    first part's, with ``"parts"``: each part's metadata.

    Raises:
        DatasetError: no parts, parts of different systems, or different fields.
    """
    parts = list(datasets)
    if not parts:
        raise DatasetError("concatenate needs at least one dataset")
    first = parts[0]
    fields = [f for f in ARRAY_FIELDS if getattr(first, f) is not None]
    for k, ds in enumerate(parts[1:], start=1):
        if ds.metadata.get("system") != first.metadata.get("system"):
            raise DatasetError(
                f"dataset {k} is of another system than dataset 0; only one system's data concatenate"
            )
        mine = [f for f in ARRAY_FIELDS if getattr(ds, f) is not None]
        if mine != fields:
            raise DatasetError(f"dataset {k} has the fields {mine}, dataset 0 {fields}; they must match")
    arrays: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    labels: list[str] = []
    offset = 0
    for ds in parts:
        count = int(ds.trajectory.max()) + 1 if len(ds) else 0
        for f in fields:
            arrays[f].append(ds.trajectory + offset if f == "trajectory" else getattr(ds, f))
        labels += [ds.label(i) for i in range(count)]
        offset += count
    any_labels = any(ds.labels is not None for ds in parts)
    metadata = dict(first.metadata, parts=[ds.metadata for ds in parts])
    joined = {f: np.concatenate(a) for f, a in arrays.items()}
    return Dataset(**joined, labels=labels if any_labels else None, metadata=metadata)


def _check_metadata(source: str, metadata: dict) -> None:
    """The metadata entries lagrax reads: a positive finite ``dt``, a ``system`` object."""
    if not isinstance(metadata, dict):
        raise DatasetError(f"{source}: metadata must be a JSON object, got {type(metadata).__name__}")
    dt = metadata.get("dt")
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
            raise DatasetError(f"{source}: the metadata's dt must be a positive finite number, got {dt!r}")
    system = metadata.get("system")
    if system is not None and not (isinstance(system, dict) and isinstance(system.get("dof", 1), int)):
        raise DatasetError(f"{source}: the metadata's 'system' must be a JSON object with an integer dof")


def _check_field(source: str, name: str, a: np.ndarray, N: int, n: int) -> None:
    """One array of ``N`` samples of ``n`` joints: its shape, and integer ids or finite values."""
    expected = (N,) + _TRAILING.get(name, lambda n: (n,))(n)
    if np.shape(a) != expected:
        what = "length" if np.shape(a)[:1] != (N,) else "shape"
        raise DatasetError(
            f"{source}: inconsistent {what}: {name!r} has shape {np.shape(a)}, expected {expected} "
            f"(q has {N} samples of {n} joints)"
        )
    if name == "trajectory":
        if not np.issubdtype(np.asarray(a).dtype, np.integer) or np.asarray(a).dtype == bool:
            raise DatasetError(f"{source}: 'trajectory' must hold integer ids, got {np.asarray(a).dtype}")
        if a.min() < 0:
            raise DatasetError(f"{source}: 'trajectory' ids must be non-negative")
        return
    dtype = np.asarray(a).dtype
    if not np.issubdtype(dtype, np.floating):
        raise DatasetError(
            f"{source}: {name!r} has dtype {dtype}; lagrax needs real floating-point arrays "
            f"(convert with .astype(float) if the values are right)"
        )
    bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise DatasetError(f"{source}: {name!r} has {bad} non-finite values (NaN or inf)")


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def check_writable(path, force: bool = False) -> None:
    """Raise :class:`FileExistsLagraxError` if ``path`` exists and ``force`` is false."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsLagraxError(f"{path} exists; refusing to overwrite it (use --force / force=True)")


def json_default(o):
    """``json.dumps``'s ``default`` for metadata: NumPy scalars and arrays, tuples and sets."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"metadata value of type {type(o).__name__} is not JSON-serialisable")


def save_dataset(ds: Dataset, path, force: bool = False) -> Path:
    """Write ``ds`` to one ``.npz`` file (format in the module docstring).

    Refuses to overwrite an existing file unless ``force``; writes to a temporary
    file in the same folder and renames it, so a crash never leaves half a file.
    """
    path = Path(path)
    check_writable(path, force)
    ds.validate(source=str(path))
    arrays = {f: np.asarray(getattr(ds, f)) for f in ARRAY_FIELDS if getattr(ds, f) is not None}
    arrays["trajectory"] = arrays["trajectory"].astype(np.int64)
    if ds.labels is not None:
        arrays["labels"] = np.asarray([str(x) for x in ds.labels], dtype=str)
    arrays["metadata"] = np.asarray(json.dumps(ds.metadata, default=json_default))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; every way a file can fail to be one is a DatasetError."""
    if not path.exists():
        raise DatasetError(f"dataset file {path} does not exist")
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a dataset file (.npz)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except PermissionError:
        raise DatasetError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise DatasetError(f"{path} is empty (0 bytes): not a dataset")
    if head != b"PK\x03\x04":
        raise DatasetError(
            f"{path} is not an .npz archive ({_describe_head(head)}); lagrax datasets are .npz files"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise DatasetError(f"{path} holds pickled Python objects, which lagrax never loads") from None
        raise DatasetError(f"{path} is damaged: not a readable .npz archive ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise DatasetError(
            f"{path} is damaged: not a readable .npz archive ({type(e).__name__}: {e})"
        ) from None


def _describe_head(head: bytes) -> str:
    if head.startswith(b"\x80"):
        return "it looks like pickled data, which lagrax never loads"
    if head.startswith(b"\x93NUM"):
        return "it is a single .npy array"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "it looks like a text file"
    return f"it starts with bytes {head!r}"


def _metadata(path: Path, raw) -> dict:
    """The JSON object in a file's ``metadata`` entry, checked."""
    if np.asarray(raw).dtype.kind not in "US" or np.ndim(raw) != 0:
        raise DatasetError(f"{path}: 'metadata' must be a 0-d string holding a JSON object")
    try:
        metadata = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: 'metadata' is not valid JSON ({e})") from None
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    return metadata


def load_dataset(path) -> Dataset:
    """Read a dataset written by :func:`save_dataset`, or the DeLaN reference character file.

    Returns a valid :class:`Dataset` or raises :class:`DatasetError` naming the problem:
    a missing, unreadable, empty, damaged or non-``.npz`` file, missing keys, arrays that
    are not real floating point, NaN/inf values, inconsistent lengths, bad metadata
    (not a JSON object, a non-positive ``dt``), or a dof that does not match the metadata.
    """
    path = Path(path)
    data = _read_npz(path)
    try:
        if "qp" in data and "traj_start" in data:
            return _from_delan(data, path)
        return _from_arrays(data, path)
    except DatasetError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as e:
        # a last guard: arrays of a shape or kind no check above foresaw
        raise DatasetError(f"{path}: malformed dataset ({type(e).__name__}: {e})") from None


def _from_arrays(data: dict, path: Path) -> Dataset:
    missing = [k for k in REQUIRED_FIELDS + ("metadata",) if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing required keys {missing} (found {sorted(data)})")
    metadata = _metadata(path, data["metadata"])
    labels = data.get("labels")
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "US"):
        raise DatasetError(
            f"{path}: 'labels' must be a 1-d array of strings, got {labels.dtype} {labels.shape}"
        )
    ds = Dataset(
        **{f: data.get(f) for f in ARRAY_FIELDS},
        labels=None if labels is None else [str(x) for x in labels],
        metadata=metadata,
    )
    return ds.validate(source=str(path))


def _from_delan(data: dict, path: Path) -> Dataset:
    """The DeLaN character file: ``qp, qv, qa`` -> ``q, qd, qdd``; ``m, c, g`` -> torque terms."""
    missing = [k for k in DELAN_KEYS if k not in data]
    if missing:
        raise DatasetError(f"{path}: DeLaN character file lacks keys {missing}")
    start, length = data["traj_start"].astype(np.int64), data["traj_len"].astype(np.int64)
    N = len(data["qp"])
    if start.shape != length.shape or (length < 1).any() or (start + length > N).any():
        raise DatasetError(f"{path}: traj_start/traj_len do not describe trajectories within {N} samples")
    trajectory = np.full(N, -1, np.int64)
    for i, (s, k) in enumerate(zip(start, length)):
        trajectory[s : s + k] = i
    if (trajectory < 0).any():
        raise DatasetError(f"{path}: {int((trajectory < 0).sum())} samples belong to no trajectory")
    ds = Dataset(
        t=data["t"],
        q=data["qp"],
        qd=data["qv"],
        qdd=data["qa"],
        trajectory=trajectory,
        tau=data["tau"],
        mass_matrix=data.get("mass_matrix"),
        inertial=data["m"],
        coriolis=data["c"],
        gravity=data["g"],
        p=data.get("p"),
        pdot=data.get("pdot"),
        labels=[str(x) for x in data["labels"]],
        metadata={
            "system": DELAN_INFO.to_json(),
            "dt": DELAN_DT,
            "kind": "characters",
            "source": "DeLaN reference character dataset (Lutter et al.)",
            "file": path.name,
        },
    )
    return ds.validate(source=str(path))
