"""Atomic checkpoints of a training run: one file holding a JSON header and the leaves.

A checkpoint is a single file ``<dir>/last.ckpt``: one line of JSON (the loop's
bookkeeping: epoch, history, early-stopping state, the resolved config) followed by the
serialised array leaves of a pytree, for a run a :class:`RunCheckpoint` (the
:class:`~lagrax.training.step.TrainState` and the best parameters so far). It is
written to a temporary file in the same directory, flushed to disk and renamed over the
old one, so a crash leaves either the previous checkpoint or the new one, never a
partial file. Reading back needs a ``like`` pytree of the same structure (a fresh
state), and :func:`check_resumable` refuses a configuration that would change results.

This module knows nothing about losses, optimisers or the loop itself.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
from jaxtyping import PyTree

from lagrax.core.fileio import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)
from lagrax.core.errors import LagraxError

CHECKPOINT_NAME = "last.ckpt"
# settings that may change between a run and its resumption without changing its results
RESUMABLE_CHANGES = (
    "epochs",
    "max_seconds",
    "target_val_loss",
    "checkpoint_every",
    "patience",
    "val_every",
    "lbfgs_epochs",
)


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


class RunCheckpoint(NamedTuple):
    """The arrays a run needs to go on bit for bit: its training state (parameters,
    optimiser state, step count, PRNG key) and the best parameters by validation loss."""

    state: Any  # a lagrax.training.step.TrainState
    best_params: PyTree


def check_resumable(saved: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse to resume a run saved with settings ``saved`` under ``config`` (both
    ``TrainConfig.to_dict()``) if they differ in anything but :data:`RESUMABLE_CHANGES`."""
    old = {k: v for k, v in saved.items() if k not in RESUMABLE_CHANGES}
    new = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise CheckpointError(
            f"cannot resume: the configuration differs from the checkpoint's in {', '.join(changed)} "
            f"(was {[old.get(k) for k in changed]}, now {[new.get(k) for k in changed]})"
        )
