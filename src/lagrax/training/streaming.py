"""Training on data that does not fit in memory: epochs streamed from shards.

A :class:`~lagrax.data.shards.ShardedDataset` (a directory of memory-mapped ``.npy`` shards)
is never loaded whole. :class:`Stream` plans an epoch as chunks of ``chunk_size``
samples (a multiple of the batch size): the shards' own seeded order
(:meth:`~lagrax.data.shards.ShardedDataset.chunks`, a function of the run's seed and the
epoch only), each chunk put on the device and scanned by the same compiled AdamW epoch
as in-memory data (minibatches from a permutation of the chunk, keyed by
``fold_in(epoch key, chunk)``). :func:`stream_epoch` runs one epoch: the next chunk is
read from disk while the device works on the current one, and at most two chunks are in
flight, so memory holds a few chunks whatever the dataset's size.

Because the order depends on ``(seed, epoch)`` only and checkpoints are written at the
ends of epochs, a killed run resumes bit for bit, as with in-memory data. The members of
an ensemble read one stream (the chunk order of the run's seed) and shuffle each chunk
with their own keys, so member 0 is the run of that seed alone.

Statistics (loss scales, a model's input normalisation) and the input checks use a
seeded sample of :data:`STATISTICS_SAMPLES` samples (:meth:`Stream.sample`).
Not available on streamed data: the rollout loss (it needs whole trajectories) and
full-batch L-BFGS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lagrax.core.errors import DatasetError
from lagrax.training.batches import Batching
from lagrax.training.config import TrainConfig
from lagrax.training.losses import Loss, as_loss

STATISTICS_SAMPLES = 100_000  # samples read for the statistics and checks of a streamed run
CHUNK_SAMPLES = 65_536  # samples per chunk (rounded to whole batches)
COUNTS = ("skipped", "singular")


def is_streamed(ds: Any) -> bool:
    """Whether ``ds`` is a sharded dataset to stream (not an in-memory one)."""
    from lagrax.data.shards import ShardedDataset

    return isinstance(ds, ShardedDataset)


@dataclasses.dataclass(frozen=True)
class Stream:
    """How a run streams ``source``: the fields its losses read, the chunk size, its seed."""

    source: Any  # a lagrax.data.shards.ShardedDataset
    fields: tuple[str, ...]
    chunk_size: int
    batch_size: int
    seed: int
    dtype: Any

    @classmethod
    def of(cls, source, loss: Loss | Mapping[str, float], config: TrainConfig) -> Stream:
        """The plan for ``source`` under ``config`` with ``loss`` (a
        :class:`~lagrax.training.losses.Loss`, or weights by name); a clear error for what
        streaming cannot do."""
        loss = as_loss(loss)
        if loss.reads_windows:
            raise DatasetError(
                "the rollout loss needs whole trajectories in memory; streamed (sharded) data has none"
            )
        if config.lbfgs_epochs > 0:
            raise DatasetError(
                f"full-batch L-BFGS needs every sample at once; with streamed (sharded) data set "
                f"lbfgs_epochs = 0 (it is {config.lbfgs_epochs})"
            )
        missing = [f for f in loss.fields() if f not in source.fields]
        if missing:
            raise DatasetError(f"the sharded dataset {source.path} lacks {', '.join(missing)}")
        batch = config.batch_size if config.batch_size > 0 else CHUNK_SAMPLES
        batch = min(batch, len(source))
        chunk = max(1, CHUNK_SAMPLES // batch) * batch
        return cls(source, tuple(loss.fields()), chunk, batch, config.seed, config.dtype.dtype)

    @property
    def n_chunks(self) -> int:
        """Chunks per epoch (the last one filled up from the epoch's start)."""
        return self.source.n_chunks(self.chunk_size)

    def batching(self, sharding=None) -> Batching:
        """One chunk's minibatch plan: every batch of the chunk's permutation."""
        steps = self.chunk_size // self.batch_size
        return Batching(self.chunk_size, self.batch_size, steps, None, 0, sharding)

    def sample(self, n: int = STATISTICS_SAMPLES):
        """A seeded in-memory sample (:class:`~lagrax.data.dataset.Dataset`) for statistics and checks."""
        return self.source.sample(n, seed=self.seed)

    def chunks(self, epoch: int) -> Iterator[dict[str, jax.Array]]:
        """Epoch ``epoch``'s chunks, each on the device in the run's dtype."""
        for chunk in self.source.chunks(self.seed, epoch, self.chunk_size, self.fields):
            yield {k: jnp.asarray(v, self.dtype) for k, v in chunk.items()}

    def first(self) -> dict[str, jax.Array]:
        """A chunk with the shapes of every chunk (to compile the epoch)."""
        return next(self.chunks(0))


def combine_chunks(metrics: list[Mapping[str, jax.Array]]) -> dict[str, jax.Array]:
    """One epoch's metrics from its chunks': the mean over chunks (those with a finite
    value: a chunk whose every step was skipped has NaN) and the counts' totals."""
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *metrics)
    return {k: jnp.sum(v, 0) if k in COUNTS else jnp.nanmean(v, 0) for k, v in stacked.items()}


def stream_epoch(
    epoch_fn: Callable,
    state,
    stream: Stream,
    epoch: int,
    chunk_key: Callable[[int], Any],
    place: Callable | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
):
    """``(state, metrics)`` after ``epoch_fn(state, chunk, chunk_key(c))`` over the epoch's
    chunks. ``place`` puts a chunk on the run's devices; ``on_chunk(done, total)`` reports
    progress. The next chunk is read while the current one trains (JAX dispatches
    asynchronously); waiting for chunk ``c - 1`` before dispatching ``c + 1`` keeps at most
    two chunks in flight."""
    outs: list = []
    total = stream.n_chunks
    for c, chunk in enumerate(stream.chunks(epoch)):
        if place is not None:
            chunk = place(chunk)
        state, m = epoch_fn(state, chunk, chunk_key(c))
        if outs:
            jax.block_until_ready(outs[-1])
        outs.append(m)
        if on_chunk is not None:
            on_chunk(c + 1, total)
    return state, combine_chunks(outs)
