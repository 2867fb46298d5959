"""Sharded datasets: samples on disk, read in seeded chunks without loading them all.

A dataset too large for memory is a **directory**::

    panda10m/
        shards.json              # the manifest (below)
        shard-00000.q.npy        # one .npy file per field per shard
        shard-00000.qd.npy
        ...
        shard-00009.tau.npy

Each ``.npy`` file holds one field of one shard, ``(rows,) + trailing shape`` (``q, qd,
qdd, tau``: ``(rows, n)``), and is opened with ``np.load(mmap_mode="r")``: opening reads
only its header, and the operating system pages in just the rows that are indexed.
Plain ``.npz`` archives (the in-memory format of :mod:`lagrax.data.dataset`) cannot be
memory-mapped -- their members are zip entries, read whole and possibly compressed -- so
shards use one bare ``.npy`` per field instead.

``shards.json`` holds ``format`` (``"lagrax-shards"``), ``version``, ``fields`` (name ->
dtype and trailing shape), ``metadata`` (the same JSON object an ``.npz`` dataset stores:
the system info under ``"system"``, generator settings, seed, ...), and per shard its
``name``, ``rows`` and per file its ``bytes`` and ``sha256``.

* :class:`ShardWriter` appends chunks of samples and writes full shards as it goes; the
  whole directory is built under a temporary name and renamed into place when the writer
  closes, so a crash never leaves half a dataset at the target path.
* :class:`ShardedDataset` opens a directory (checking the manifest and the file sizes;
  each shard's SHA-256 sums, headers, shapes and finiteness are checked lazily when it is
  first read, or all at once by :meth:`ShardedDataset.check`),
  draws small in-memory :class:`~lagrax.data.dataset.Dataset` samples
  (:meth:`~ShardedDataset.sample`) and streams an epoch in fixed-size chunks whose order
  depends only on ``(seed, epoch)`` (:meth:`~ShardedDataset.chunks`).
* :func:`generate_shards` writes independent random states ``q, qd, qdd`` of a system with
  ``tau`` from its inverse dynamics (jitted, vmapped, chunk by chunk).

This module does not train (:mod:`lagrax.training`); it reads and writes files only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lagrax.data.dataset import ARRAY_FIELDS, Dataset, check_writable, json_default
from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError
from lagrax.core.fileio import atomic_write, atomic_write_text, file_sha256
from lagrax.core.locks import DirectoryLock
from lagrax.systems.base import SystemInfo

FORMAT = "lagrax-shards"
VERSION = 1
MANIFEST = "shards.json"
REQUIRED = ("q", "qd", "qdd")
DEFAULT_ACCELERATION = 10.0  # [rad/s^2 or m/s^2]: generate_shards' qdd range, +- this
DEFAULT_SHARD_SIZE = 1_000_000
# fields with one value per sample (no joint axis); every other field is (rows, n)
_SCALAR_FIELDS = ("t", "trajectory", "energy")


def _trailing(name: str, dof: int) -> tuple[int, ...]:
    if name in _SCALAR_FIELDS:
        return ()
    return (dof, dof) if name == "mass_matrix" else (dof,)


def shard_file(name: str, field: str) -> str:
    """The file name of one field of one shard, e.g. ``shard-00000.q.npy``."""
    return f"{name}.{field}.npy"


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


class ShardWriter:
    """Write a sharded dataset chunk by chunk (a context manager).

    ::

        with ShardWriter(out, info, shard_size=1_000_000, dtype="float32") as w:
            for q, qd, qdd, tau in chunks:
                w.append(q=q, qd=qd, qdd=qdd, tau=tau)

    Every :meth:`append` must give the same fields, among
    :data:`lagrax.data.dataset.ARRAY_FIELDS` and including ``q, qd, qdd``, each with ``rows``
    samples of ``info.dof`` joints and finite values. Floating fields are stored as
    ``dtype`` (default: as given), ``trajectory`` as int64. Full shards of ``shard_size``
    rows are written (each file atomically) as they fill; the last one may be shorter.
    On a clean exit the manifest is written and the temporary directory renamed to
    ``path``; on an exception it is removed. An existing ``path`` is refused
    (:class:`~lagrax.core.errors.FileExistsLagraxError`) unless ``force``, in which case it is
    replaced only once the new dataset is complete.
    """

    def __init__(
        self,
        path: str | Path,
        info: SystemInfo,
        *,
        shard_size: int = DEFAULT_SHARD_SIZE,
        dtype: str | np.dtype | None = None,
        metadata: dict[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        if isinstance(shard_size, bool) or int(shard_size) != shard_size or shard_size < 1:
            raise LagraxError(f"shard_size must be a positive whole number, got {shard_size!r}")
        self.path = Path(path)
        check_writable(self.path, force)
        self.info = info
        self.shard_size = int(shard_size)
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype.kind != "f":
            raise LagraxError(f"dtype must be a floating-point type, got {self.dtype}")
        self.metadata = dict(metadata or {})
        self.metadata["system"] = info.to_json()
        self.force = force
        self.rows = 0
        self.fields: dict[str, np.dtype] | None = None
        self.shards: list[dict[str, Any]] = []
        self.buffer: dict[str, list[np.ndarray]] = {}
        self.buffered = 0
        self.tmp: Path | None = None
        self.lock: DirectoryLock | None = None

    def __enter__(self) -> "ShardWriter":
        # one writer of `path` at a time (a lock file next to it: the directory is renamed in whole)
        self.lock = DirectoryLock.beside(self.path, "generate")
        self.lock.acquire()
        try:
            self.tmp = Path(
                tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            )
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
            elif self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None
        finally:
            self.lock.release()

    def append(self, **arrays: np.ndarray) -> None:
        """Add ``rows`` samples: one array per field, each ``(rows,) + trailing``."""
        if self.tmp is None:
            raise LagraxError("ShardWriter.append outside its `with` block (or after close)")
        arrays = self._checked(arrays)
        rows = len(arrays["q"])
        done = 0
        while done < rows:
            take = min(rows - done, self.shard_size - self.buffered)
            for name, a in arrays.items():
                self.buffer.setdefault(name, []).append(a[done : done + take])
            self.buffered += take
            done += take
            if self.buffered == self.shard_size:
                self._flush()

    def _checked(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The chunk's arrays in their stored dtypes, after checking names, shapes, values."""
        missing = [f for f in REQUIRED if f not in arrays]
        unknown = sorted(set(arrays) - set(ARRAY_FIELDS))
        if missing or unknown:
            raise DatasetError(
                f"shard chunk: missing fields {missing} / unknown fields {unknown} "
                f"(allowed: {', '.join(ARRAY_FIELDS)})"
            )
        if self.fields is not None and set(arrays) != set(self.fields):
            raise DatasetError(
                f"shard chunk has fields {sorted(arrays)}, earlier chunks {sorted(self.fields)}"
            )
        rows, n = len(np.asarray(arrays["q"])), self.info.dof
        out = {}
        for name in sorted(arrays):
            a = np.asarray(arrays[name])
            if a.shape != (rows,) + _trailing(name, n):
                raise DatasetError(
                    f"shard chunk: {name!r} has shape {a.shape}, expected {(rows,) + _trailing(name, n)}"
                )
            if name == "trajectory":
                out[name] = a.astype(np.int64)
                continue
            if not np.all(np.isfinite(a)):
                raise DatasetError(f"shard chunk: {name!r} holds NaN or inf values")
            out[name] = a.astype(self.dtype or a.dtype, copy=False)
        if self.fields is None:
            self.fields = {name: a.dtype for name, a in out.items()}
        return out

    def _flush(self) -> None:
        """Write the buffered rows as the next shard."""
        if not self.buffered:
            return
        name = f"shard-{len(self.shards):05d}"
        files = {}
        for field, parts in self.buffer.items():
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            target = self.tmp / shard_file(name, field)
            atomic_write(target, lambda f, data=data: np.save(f, np.ascontiguousarray(data)))
            files[field] = {"bytes": target.stat().st_size, "sha256": file_sha256(target)}
        self.shards.append({"name": name, "rows": self.buffered, "files": files})
        self.rows += self.buffered
        self.buffer, self.buffered = {}, 0

    def manifest(self) -> dict[str, Any]:
        """The manifest (``shards.json``) of what has been written so far."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "dof": self.info.dof,
            "rows": self.rows,
            "fields": {
                f: {"dtype": str(d), "shape": list(_trailing(f, self.info.dof))}
                for f, d in (self.fields or {}).items()
            },
            "metadata": self.metadata,
            "shards": self.shards,
        }

    def close(self) -> Path:
        """Write the last shard and the manifest, and move the directory into place."""
        if self.tmp is None:
            return self.path
        self._flush()
        if not self.rows:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
            raise DatasetError(f"{self.path}: no samples were written")
        text = json.dumps(self.manifest(), indent=1, default=json_default)
        atomic_write_text(self.tmp / MANIFEST, text)
        os.chmod(self.tmp, 0o777 & ~_umask())
        _replace_dir(self.tmp, self.path, self.force)
        self.tmp = None
        return self.path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_dir(tmp: Path, path: Path, force: bool) -> None:
    """Rename ``tmp`` to ``path``; an existing ``path`` only with ``force``, removed after."""
    if not path.exists():
        os.replace(tmp, path)
        return
    if not force:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsLagraxError(f"{path} exists; refusing to overwrite it (use --force / force=True)")
    old = path.parent / f".{path.name}.old-{os.getpid()}-{time.monotonic_ns()}"
    os.replace(path, old)
    os.replace(tmp, path)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _read_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest of the shard directory ``path``."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file, not a shard directory"
        raise DatasetError(f"sharded dataset {path} {what}")
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path} has no {MANIFEST}: not a sharded lagrax dataset") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{file} is not readable JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{file}: not a lagrax shard manifest (format {FORMAT!r} expected)")
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{file}: format version {manifest.get('version')!r}; this lagrax reads {VERSION}")
    try:
        fields, shards = manifest["fields"], manifest["shards"]
        rows = [int(s["rows"]) for s in shards]
        missing = [f for f in REQUIRED if f not in fields]
        SystemInfo.from_json(manifest["metadata"]["system"])
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{file}: malformed manifest ({type(e).__name__}: {e})") from None
    if missing or not shards or min(rows) < 1:
        raise DatasetError(f"{file}: needs fields {list(REQUIRED)} and non-empty shards")
    return manifest


class ShardedDataset:
    """A sharded dataset on disk (see the module docstring); open it with :meth:`open`.

    ``len()`` is the number of samples, ``fields`` the stored field names, ``info`` and
    ``dof`` the system's; :meth:`arrays` maps one shard's files (``np.memmap``, nothing
    read until indexed). At most ``cache`` shards are mapped at a time.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], cache: int = 2) -> None:
        self.path = path
        self.manifest = manifest
        self.metadata: dict[str, Any] = manifest["metadata"]
        self.fields: tuple[str, ...] = tuple(manifest["fields"])
        self.shard_rows = np.array([int(s["rows"]) for s in manifest["shards"]], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_rows)])
        self.cache = max(1, int(cache))
        self.mapped: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.finite: set[tuple[int, str]] = set()
        self.verified: set[int] = set()  # shards whose files matched their SHA-256 sums

    @classmethod
    def open(cls, path: str | Path) -> "ShardedDataset":
        """Open a shard directory: reads the manifest and checks every file exists with its
        recorded size (cheap); shapes and values are checked when a shard is first read."""
        path = Path(path)
        ds = cls(path, _read_manifest(path))
        for i, shard in enumerate(manifest_shards(ds.manifest)):
            for field in ds.fields:
                ds.file_check(i, field, shard)
        return ds

    # ---- shape and metadata -------------------------------------------------------
    @property
    def info(self) -> SystemInfo:
        """The system's info, from the metadata."""
        return SystemInfo.from_json(self.metadata["system"])

    @property
    def dof(self) -> int:
        """Number of joints ``n``."""
        return self.info.dof

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self.shard_rows)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return (
            f"ShardedDataset({str(self.path)!r}, {len(self)} samples, {self.n_shards} shards, {self.fields})"
        )

    def n_chunks(self, chunk_size: int) -> int:
        """Chunks per epoch of :meth:`chunks`: ``ceil(len / chunk_size)``."""
        return -(-len(self) // _positive(chunk_size, "chunk_size"))

    # ---- files --------------------------------------------------------------------
    def file_check(self, shard: int, field: str, entry: dict[str, Any] | None = None) -> Path:
        """The path of one file, after checking it exists with its recorded size."""
        entry = entry or self.manifest["shards"][shard]
        file = self.path / shard_file(entry["name"], field)
        recorded = entry["files"].get(field, {}).get("bytes")
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise DatasetError(
                f"{self.path}: shard {entry['name']} lacks its {field!r} file {file.name}"
            ) from None
        if recorded is not None and size != recorded:
            raise DatasetError(
                f"{self.path}: shard {entry['name']} field {field!r}: {file.name} has {size} bytes, "
                f"the manifest records {recorded} (truncated or replaced?)"
            )
        return file

    def arrays(self, shard: int) -> dict[str, np.ndarray]:
        """Shard ``shard``'s fields as read-only ``np.memmap`` arrays (headers and shapes checked)."""
        if shard in self.mapped:
            self.mapped.move_to_end(shard)
            return self.mapped[shard]
        entry = self.manifest["shards"][shard]
        self.verify(shard)
        out = {}
        for field in self.fields:
            file = self.file_check(shard, field, entry)
            try:
                a = np.load(file, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise DatasetError(
                    f"{self.path}: shard {entry['name']} field {field!r}: unreadable ({e})"
                ) from None
            spec = self.manifest["fields"][field]
            expected = (int(entry["rows"]),) + tuple(spec["shape"])
            if a.shape != expected or str(a.dtype) != spec["dtype"]:
                raise DatasetError(
                    f"{self.path}: shard {entry['name']} field {field!r} is {a.dtype} {a.shape}, "
                    f"the manifest says {spec['dtype']} {expected}"
                )
            out[field] = a
        self.mapped[shard] = out
        while len(self.mapped) > self.cache:
            self.mapped.popitem(last=False)  # unmapping releases its pages
        return out

    def verify(self, shard: int) -> None:
        """Check shard ``shard``'s files against the SHA-256 sums in the manifest, once per
        opened dataset (the first time the shard is read: one pass over its bytes, as reading
        it takes anyway); a flipped byte is a :class:`~lagrax.core.errors.DatasetError`."""
        if shard in self.verified:
            return
        entry = self.manifest["shards"][shard]
        for field in self.fields:
            recorded = entry["files"].get(field, {}).get("sha256")
            file = self.file_check(shard, field, entry)
            if recorded is not None and file_sha256(file) != recorded:
                raise DatasetError(
                    f"{self.path}: shard {entry['name']} field {field!r}: {file.name} "
                    "does not match its SHA-256 in the manifest (corrupt or replaced)"
                )
        self.verified.add(shard)

    def take(self, shard: int, rows: np.ndarray, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """Rows ``rows`` (indices within the shard) of ``fields``, copied into memory and
        checked finite (an error names the shard and field)."""
        mapped = self.arrays(shard)
        out = {}
        for field in fields:
            a = np.asarray(mapped[field][rows])
            if field != "trajectory" and (shard, field) not in self.finite and not np.all(np.isfinite(a)):
                name = self.manifest["shards"][shard]["name"]
                raise DatasetError(f"{self.path}: shard {name} field {field!r} holds NaN or inf values")
            out[field] = a
        return out

    def check(self) -> "ShardedDataset":
        """Read every shard once: the SHA-256 sums, shapes and finite values.
        Returns ``self``; raises :class:`~lagrax.core.errors.DatasetError` naming the bad shard."""
        for i, entry in enumerate(manifest_shards(self.manifest)):
            self.verify(i)
            for start in range(0, int(entry["rows"]), 1 << 18):
                self.take(i, slice(start, start + (1 << 18)), self.fields)
            self.finite.update((i, f) for f in self.fields)
        return self

    # ---- in-memory samples --------------------------------------------------------
    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global sample indices -> ``(shard, row within shard)``."""
        index = np.asarray(index, dtype=np.int64)
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        return shard, index - self.offsets[shard]

    def gather(self, index: np.ndarray, fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The samples at global indices ``index`` (any order), shard by shard."""
        fields = self.fields if fields is None else tuple(fields)
        unknown = [f for f in fields if f not in self.fields]
        if unknown:
            raise DatasetError(f"{self.path}: no fields {unknown}; stored: {list(self.fields)}")
        index = np.asarray(index, dtype=np.int64)
        shard, row = self.locate(index)
        out = {f: None for f in fields}
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            part = self.take(int(s), row[where], fields)
            for f, a in part.items():
                if out[f] is None:
                    out[f] = np.empty((len(index),) + a.shape[1:], a.dtype)
                out[f][where] = a
        return out

    def sample(self, n: int, seed: int | None = None) -> Dataset:
        """An in-memory :class:`~lagrax.data.dataset.Dataset` of ``n`` samples: evenly spaced
        (``seed=None``) or drawn at random without replacement with ``seed``, in file order.

        Only the pages holding those rows are read. Fields not stored get defaults:
        ``t = 0`` and ``trajectory`` = the shard index (so splits by trajectory split by shard).
        """
        n = min(_positive(n, "n"), len(self))
        if seed is None:
            index = np.linspace(0, len(self) - 1, n).round().astype(np.int64)
        else:
            index = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        arrays = self.gather(index)
        arrays.setdefault("t", np.zeros(n))
        arrays.setdefault("trajectory", self.locate(index)[0])
        meta = dict(self.metadata, sampled_from={"path": str(self.path), "samples": len(self), "seed": seed})
        return Dataset(**arrays, metadata=meta).validate(source=str(self.path))

    # ---- epochs -------------------------------------------------------------------
    def chunks(
        self,
        key_or_seed: int,
        epoch: int,
        chunk_size: int,
        fields: Sequence[str] | None = None,
        *,
        start: int = 0,
        window: int = 1,
    ) -> Iterator[dict[str, np.ndarray]]:
        """One epoch in :meth:`n_chunks` chunks of exactly ``chunk_size`` rows each.

        ``key_or_seed`` is an integer seed or a JAX PRNG key (see :func:`seed_entropy`).
        The order depends only on ``(key_or_seed, epoch)`` (and ``window``, the dataset):
        the shards are permuted, taken ``window`` at a time, and the rows of each window
        permuted; chunks follow that order, crossing from one window into the next where
        needed. Every sample appears exactly once, except that the last chunk is filled
        up by wrapping around to the epoch's first rows (so shapes never change).
        ``start`` skips the first ``start`` chunks without reading them (resume
        mid-epoch). Yields ``{field: array (chunk_size, ...)}`` of ``fields`` (default:
        all stored), fresh in-memory arrays; at most ``cache`` shards are mapped at once.
        """
        chunk_size = _positive(chunk_size, "chunk_size")
        fields = self.fields if fields is None else tuple(fields)
        plan = _EpochPlan(self, seed_entropy(key_or_seed), int(epoch), _positive(window, "window"))
        total = self.n_chunks(chunk_size)
        for c in range(max(0, int(start)), total):
            lo = c * chunk_size
            parts = [plan.take(a, b, fields) for a, b in plan.segments(lo, lo + chunk_size)]
            yield {
                f: np.concatenate([p[f] for p in parts]) if len(parts) > 1 else parts[0][f] for f in fields
            }


class _EpochPlan:
    """One epoch's order: permuted windows of shards, rows permuted within each window."""

    def __init__(self, data: ShardedDataset, seed: tuple[int, ...], epoch: int, window: int) -> None:
        self.data = data
        self.seed, self.epoch = seed, epoch
        order = np.random.default_rng([*seed, epoch, 0]).permutation(data.n_shards)
        self.windows = [order[i : i + window] for i in range(0, len(order), window)]
        sizes = [int(data.shard_rows[w].sum()) for w in self.windows]
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.cached: tuple[int, np.ndarray, np.ndarray] | None = None

    def segments(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """Epoch positions ``[lo, hi)`` (wrapping past the end) as pieces within one window."""
        n = int(self.starts[-1])
        while lo < hi:
            a = lo % n
            w = int(np.searchsorted(self.starts, a, side="right") - 1)
            b = min(a + hi - lo, int(self.starts[w + 1]))
            yield a, b
            lo += b - a

    def window_rows(self, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``w``'s permuted rows as ``(shard, row within shard)``."""
        if self.cached is None or self.cached[0] != w:
            shards = self.windows[w]
            shard = np.repeat(shards, self.data.shard_rows[shards])
            row = np.concatenate([np.arange(self.data.shard_rows[s]) for s in shards])
            perm = np.random.default_rng([*self.seed, self.epoch, 1, w]).permutation(len(row))
            self.cached = (w, shard[perm], row[perm])
        return self.cached[1], self.cached[2]

    def take(self, a: int, b: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """The data at epoch positions ``[a, b)``, which lie in one window."""
        w = int(np.searchsorted(self.starts, a, side="right") - 1)
        shard, row = self.window_rows(w)
        lo, hi = a - int(self.starts[w]), b - int(self.starts[w])
        shard, row = shard[lo:hi], row[lo:hi]
        if len(self.windows[w]) == 1:
            return self.data.take(int(shard[0]), row, fields)
        out: dict[str, np.ndarray] = {}
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            for f, x in self.data.take(int(s), row[where], fields).items():
                out.setdefault(f, np.empty((hi - lo,) + x.shape[1:], x.dtype))[where] = x
        return out


def seed_entropy(key_or_seed: Any) -> tuple[int, ...]:
    """A seed for numpy's ``SeedSequence``: ``(seed,)`` for a non-negative integer, the key's
    words for a JAX PRNG key (typed ``jax.random.key`` or raw ``uint32`` ``PRNGKey``)."""
    if isinstance(key_or_seed, (int, np.integer)) and not isinstance(key_or_seed, bool):
        if key_or_seed < 0:
            raise LagraxError(f"seed must be non-negative, got {key_or_seed}")
        return (int(key_or_seed),)
    import jax

    key = key_or_seed
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = np.asarray(key)
    if words.dtype.kind not in "ui" or words.size == 0:
        raise LagraxError(f"key_or_seed must be an integer or a JAX PRNG key, got {key_or_seed!r}")
    return tuple(int(x) for x in words.astype(np.uint64).ravel())


def manifest_shards(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's per-shard entries (``name``, ``rows``, ``files``)."""
    return list(manifest["shards"])


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise LagraxError(f"{what} must be a positive whole number, got {value!r}")
    return int(value)


def open_shards(path: str | Path) -> ShardedDataset:
    """Shorthand for :meth:`ShardedDataset.open`."""
    return ShardedDataset.open(path)


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a shard manifest."""
    return (Path(path) / MANIFEST).is_file()


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _state_ranges(info: SystemInfo, q_range, qd_range, qdd_range) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from lagrax.data.generators import joint_ranges, position_ranges, velocity_ranges

    vmax = velocity_ranges(info)
    amax = np.full(info.dof, DEFAULT_ACCELERATION)
    return {
        "q": joint_ranges(q_range, info.dof, position_ranges(info), "q_range"),
        "qd": joint_ranges(qd_range, info.dof, (-vmax, vmax), "qd_range"),
        "qdd": joint_ranges(qdd_range, info.dof, (-amax, amax), "qdd_range"),
    }


def generate_shards(
    system,
    out_dir: str | Path,
    samples: int,
    shard_size: int = DEFAULT_SHARD_SIZE,
    seed: int = 0,
    q_range=None,
    qd_range=None,
    qdd_range=None,
    *,
    dtype: str = "float32",
    chunk: int = 1 << 16,
    force: bool = False,
    progress: bool = True,
) -> ShardedDataset:
    """Write ``samples`` independent random states of ``system`` as a sharded dataset.

    ``q, qd, qdd`` are uniform per joint in ``q_range`` (default
    :func:`~lagrax.data.generators.position_ranges`: the joint limits, else ``+-pi``),
    ``qd_range`` (default ``+-`` :func:`~lagrax.data.generators.velocity_ranges`) and
    ``qdd_range`` (default ``+-DEFAULT_ACCELERATION``): one ``(low, high)`` pair for all
    joints or one per joint. ``tau`` is the system's inverse dynamics (for a Pinocchio
    robot its pure-JAX :class:`~lagrax.systems.rigid_body.RigidBodyTree`, see
    :func:`lagrax.systems.rigid_body.plant_of`), computed ``chunk`` samples at a time in one jitted
    ``vmap`` in the precision JAX is set to, and stored as ``dtype``. The draw of chunk
    ``k`` is seeded by ``(seed, k)``. ``progress`` shows a bar with an ETA (rich, on stderr).
    """
    import jax.numpy as jnp

    from lagrax.systems.rigid_body import plant_of

    samples, chunk = _positive(samples, "samples"), _positive(chunk, "chunk")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LagraxError(f"seed must be a non-negative integer, got {seed!r}")
    info = system.info
    ranges = _state_ranges(info, q_range, qd_range, qdd_range)
    inverse = _inverse_dynamics_fn(plant_of(system))
    settings = {k: np.stack(v, 1).tolist() for k, v in ranges.items()}
    metadata = _generator_metadata(system, samples, seed, settings, dtype)
    start = time.perf_counter()
    with ShardWriter(out_dir, info, shard_size=shard_size, dtype=dtype, metadata=metadata, force=force) as w:
        with _ProgressBar(progress, samples, f"{info.name}: {samples:,} states") as advance:
            for k, lo in enumerate(range(0, samples, chunk)):
                rows = min(chunk, samples - lo)
                rng = np.random.default_rng([seed, k])
                arrays = {f: rng.uniform(a, b, (rows, info.dof)) for f, (a, b) in ranges.items()}
                # pad the last chunk to the compiled shape rather than compile another
                padded = (jnp.asarray(np.resize(arrays[f], (chunk, info.dof))) for f in ("q", "qd", "qdd"))
                arrays["tau"] = np.asarray(inverse(*padded))[:rows]
                w.append(**arrays)
                advance(rows)
        w.metadata["generation_seconds"] = round(time.perf_counter() - start, 3)
    return ShardedDataset.open(out_dir)


def _inverse_dynamics_fn(plant):
    """``(q, qd, qdd) (B, n) -> tau (B, n)``, jitted and vmapped over the batch."""
    import equinox as eqx
    import jax

    call = eqx.filter_jit(lambda p, q, qd, qdd: jax.vmap(p.inverse_dynamics)(q, qd, qdd))
    return lambda q, qd, qdd: call(plant, q, qd, qdd)


def _generator_metadata(system, samples: int, seed: int, settings: dict, dtype: str) -> dict[str, Any]:
    import jax

    from lagrax.core.version import __version__

    return dict(
        kind="states",
        dt=1.0,
        seed=seed,
        generator=dict(
            samples=samples,
            sampler="uniform q, qd, qdd; tau = inverse dynamics",
            dtype=str(np.dtype(dtype)),
            compute_dtype="float64" if jax.config.jax_enable_x64 else "float32",
            **{f"{k}_range": v for k, v in settings.items()},
        ),
        lagrax_version=__version__,
    )


class _ProgressBar:
    """A context manager yielding ``advance(rows)``: a rich progress bar with an ETA, or nothing."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda rows: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "ETA",
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task(self.description, total=self.total)
        return lambda rows: self.bar.advance(task, rows)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


__all__ = [
    "DEFAULT_ACCELERATION",
    "DEFAULT_SHARD_SIZE",
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "ShardWriter",
    "ShardedDataset",
    "generate_shards",
    "is_sharded",
    "manifest_shards",
    "open_shards",
    "seed_entropy",
    "shard_file",
]
