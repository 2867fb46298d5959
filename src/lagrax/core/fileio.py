"""Atomic file writes: every file lagrax writes goes through :func:`atomic_write`.

A temporary file in the target's folder is written, flushed and renamed over the
target, so a crash or a full disk never leaves half a file (a user's dataset, model or
checkpoint is either the old one or the new one). The new file gets the usual
permissions (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.

This module does not decide whether overwriting is allowed (see
:func:`lagrax.data.dataset.check_writable`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    # the only way to read the umask is to set it; set it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then rename it to ``path``.

    On any error (a full disk: ``OSError`` with ``errno.ENOSPC``) the temporary file is
    removed and ``path`` is left as it was; an ``OSError`` that names no file gets
    ``path`` as its ``filename``, so the command line's one error line says where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write names no file: say which (a full disk: one line naming it)
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file's bytes (a dataset's or a model's identity)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``root`` (to prove nothing changed)."""
    root = Path(root)
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
