"""Atomic checkpoints of a training run: one file holding a JSON header and the leaves.

A checkpoint is a single file ``<dir>/last.ckpt``: one line of JSON (epoch, history,
early-stopping state, the resolved config) followed by the serialised array leaves
of the training state pytree (parameters, optimiser state, PRNG key, best
parameters). It is written to a temporary file in the same directory, flushed to
disk and renamed over the old one, so a crash leaves either the previous checkpoint
or the new one, never a partial file.

This module knows nothing about losses or optimisers; the trainer builds the
``like`` pytree that gives the leaves their structure when reading back.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx

from ..fileio import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)
from ..errors import LagraxError

CHECKPOINT_NAME = "last.ckpt"


class CheckpointError(LagraxError, ValueError):
    """A checkpoint is missing, truncated or belongs to a different run."""


def save_checkpoint(directory: str | Path, state: Any, meta: dict) -> Path:
    """Write ``state`` (a pytree of arrays) and ``meta`` (JSON-serialisable) atomically."""
    buffer = io.BytesIO()
    header = json.dumps(meta, separators=(",", ":"), allow_nan=True)
    if "\n" in header:  # json.dumps never emits raw newlines, but the format relies on it
        raise CheckpointError("checkpoint metadata must serialise to one line")
    buffer.write(header.encode() + b"\n")
    eqx.tree_serialise_leaves(buffer, state)
    path = Path(directory) / CHECKPOINT_NAME
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(directory: str | Path, like: Any) -> tuple[Any, dict]:
    """``(state, meta)`` from ``directory``; ``like`` is a pytree with the state's structure."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume (train without --resume)")
    with path.open("rb") as f:
        try:
            meta = json.loads(f.readline())
            state = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:  # noqa: BLE001 - any decoding failure means the same to the user
            raise CheckpointError(
                f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it belongs to a "
                "different model or configuration, or is corrupt"
            ) from None
    return state, meta
