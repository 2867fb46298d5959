"""Directory locks: one process at a time writes a run, study or dataset directory.

Two ``lagrax train --out D`` started at once would otherwise both pass the "is it empty?"
check and interleave their files (one run's ``config.json``, the other's model). A
:class:`DirectoryLock` is held for as long as the writing lasts::

    with DirectoryLock(run_dir, what="train"):
        ...  # write the run

It is the file ``D/.lagrax.lock`` (:data:`LOCK_NAME`), locked with ``flock`` and holding
the holder's pid, host, start time and command as JSON. A second process is refused
with a :class:`DirectoryLockedError` naming the holder (:func:`check_unlocked` asks
without taking the lock). The kernel releases a ``flock`` when its process dies, however
it dies, so a file left by a killed process (kill -9, a power cut) is free to take: the
lock reports it as stale (one ``warning:`` line on stderr naming the dead holder, or
the ``report`` given) and takes it over.

:meth:`DirectoryLock.beside` locks a path that is replaced whole (a shard directory
renamed into place) with a file next to it, ``.NAME.lagrax.lock``, instead.

This module does not make writes atomic (:mod:`lagrax.core.fileio`). ``flock`` does not
reach across hosts on every network file system, and there is none on Windows (there
the file only records the holder).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from lagrax.core.errors import FileExistsLagraxError, LagraxError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lagrax.lock"


class DirectoryLockedError(LagraxError, RuntimeError):
    """Another process holds the lock of a directory (the message names it)."""


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def describe_holder(holder: dict[str, Any]) -> str:
    """``'lagrax train (pid 123 on host h, since 2026-12-03T18:00:00+00:00)'`` of a lock's record."""
    return (
        f"{_command(holder.get('what'))} (pid {holder.get('pid', '?')} on host "
        f"{holder.get('host', '?')}, since {holder.get('started', '?')})"
    )


def _command(what: Any) -> str:
    """``"train"`` -> ``"lagrax train"`` (``"lagrax sweep"`` stays)."""
    what = str(what or "a process")
    return what if what.startswith(("lagrax", "a process", "an unknown")) else f"lagrax {what}"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def check_unlocked(path: str | Path, lock_file: str | Path | None = None) -> None:
    """Raise :class:`DirectoryLockedError` naming the holder if a process holds the lock of
    directory ``path`` now; takes nothing and changes nothing."""
    file = Path(lock_file) if lock_file is not None else Path(path) / LOCK_NAME
    try:
        fd = os.open(file, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked_error(Path(path), _read(fd)) from None
    finally:
        os.close(fd)  # (and with it a shared lock, if taken)


def _locked_error(path: Path, holder: dict[str, Any]) -> "DirectoryLockedError":
    return DirectoryLockedError(
        f"{path} is in use by {describe_holder(holder)}; wait for it to finish, or use another directory"
    )


class DirectoryLock:
    """The lock of directory ``path`` for one writer; ``what`` names the writer's command
    (``"train"``, ``"generate"``, ``"sweep"``) in the messages other processes get.

    A context manager (or :meth:`acquire` and :meth:`release`). Acquiring creates
    ``path`` if needed (and :meth:`release` removes it again if the lock made it and it
    is still empty); it raises :class:`DirectoryLockedError` naming the holder if another
    process, or another lock of this process, holds it, and
    :class:`~lagrax.core.errors.FileExistsLagraxError` if ``path`` is a file.
    """

    def __init__(
        self,
        path: str | Path,
        what: str = "train",
        *,
        lock_file: str | Path | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.what = _command(what)
        self.file = Path(lock_file) if lock_file is not None else self.path / LOCK_NAME
        self.report = report or _warn  # where a stale lock taken over is said
        self._fd: int | None = None
        self._made: Path | None = None

    @classmethod
    def beside(cls, path: str | Path, what: str) -> "DirectoryLock":
        """The lock of ``path`` as a file next to it, ``.NAME.lagrax.lock``: for a directory
        that is built elsewhere and renamed into place whole (a lock inside would be replaced)."""
        path = Path(path)
        return cls(path, what, lock_file=path.parent / f".{path.name}{LOCK_NAME}")

    def __repr__(self) -> str:
        return f"DirectoryLock({str(self.path)!r}, what={self.what!r})"

    def __enter__(self) -> "DirectoryLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """Whether this lock is held (acquired and not released)."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (see the class docstring); taking it twice is an error."""
        if self._fd is not None:
            raise LagraxError(f"{self!r} is already held")
        self._make_directory()
        try:
            for _ in range(10):  # a holder that released between our open and flock: again
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
                if self._locked(fd):
                    break
            else:  # pragma: no cover - ten releases in a row
                raise DirectoryLockedError(f"{self.path} is locked and released too often to take")
            self._take(fd)
        except BaseException:
            self._remove_made_directory()
            raise

    def release(self) -> None:
        """Give the lock up: its file is removed (then unlocked), nothing else."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file)
        os.close(fd)  # closing releases the flock
        self._remove_made_directory()

    # ---- the steps ---------------------------------------------------------------------
    def _make_directory(self) -> None:
        folder = self.file.parent
        if folder.exists() and not folder.is_dir():
            raise FileExistsLagraxError(f"{folder} exists and is not a directory")
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._made = missing[-1] if missing else None  # the outermost folder the lock made

    def _remove_made_directory(self) -> None:
        """Remove the folders the lock made, if they are empty (a refused run leaves none)."""
        made, self._made = self._made, None
        if made is None:
            return
        for p in (self.file.parent, *self.file.parent.parents):
            with contextlib.suppress(OSError):
                p.rmdir()  # only an empty folder
            if p == made:
                break

    def _locked(self, fd: int) -> bool:
        """Lock the open lock file ``fd``: True when it is ours and still the file at
        :attr:`file`; raises :class:`DirectoryLockedError` when another holds it."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise _locked_error(self.path, holder) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
        except FileNotFoundError:  # the holder removed it as it released
            same = False
        if not same:
            os.close(fd)
        return same

    def _take(self, fd: int) -> None:
        """Check a record left in the file (a stale lock), then write ours."""
        try:
            previous = _read(fd)
            if previous:
                self._check_stale(previous)
            record = dict(
                pid=os.getpid(),
                host=socket.gethostname(),
                started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                what=self.what,
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _check_stale(self, previous: dict[str, Any]) -> None:
        """A record whose lock is free: its process is gone (or, on another host, out of
        ``flock``'s reach). Say so, and take it over."""
        pid, host = previous.get("pid"), previous.get("host")
        here = host in (None, socket.gethostname())
        gone = (
            "is no longer running"
            if here and not (isinstance(pid, int) and _alive(pid))
            else "holds it no more"
        )
        self.report(
            f"took over the stale lock of {self.path}: {describe_holder(previous)} {gone} "
            "(killed, or crashed); what it wrote may be incomplete"
        )


def _read(fd: int) -> dict[str, Any]:
    """The JSON record in the open lock file ``fd`` (``{}`` if empty or unreadable)."""
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
        record = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {"what": "an unknown process (its lock file is unreadable)"}
    return record if isinstance(record, dict) else {}


__all__ = ["LOCK_NAME", "DirectoryLock", "DirectoryLockedError", "check_unlocked", "describe_holder"]
