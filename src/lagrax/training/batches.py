"""A dataset's arrays on the device, and the batches an epoch draws from them.

:func:`device_arrays` puts the fields the active loss terms read on the device once
(plus, for the rollout loss, the sample times and the starts of every window of
``rollout_horizon`` steps inside one trajectory). :class:`Batching` is the epoch's plan:
how many steps, how many samples each, and the ``draw``/``gather`` pair that
:func:`lagrax.training.step.make_epoch` scans over (minibatches from permutations of the
samples, rollout windows drawn uniformly, both from the epoch's key).

This module computes no losses and takes no optimiser steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jaxtyping import Array, Int, PRNGKeyArray

from lagrax.core.errors import DatasetError
from lagrax.training.config import TrainConfig
from lagrax.training.losses import Loss, as_loss
from lagrax.training.parallel import constrain_rows

Data = dict[str, jax.Array]
# the arrays that describe windows, not samples
WINDOW_FIELDS = ("t", "window_starts")


def data_fields(loss: Loss | Mapping[str, float]) -> list[str]:
    """The per-sample dataset fields the active terms of ``loss`` (a :class:`~lagrax.training.losses.Loss`
    or weights by name) read, window terms aside."""
    return as_loss(loss).fields()


def window_starts(ds, horizon: int) -> np.ndarray:
    """Samples from which ``horizon`` more samples of the same trajectory follow."""
    traj = np.asarray(ds.trajectory)
    n = traj.shape[0] - horizon
    if n <= 0:
        return np.zeros(0, np.int64)
    same = np.ones(n, bool)
    for k in range(1, horizon + 1):
        same &= traj[k : k + n] == traj[:n]
    return np.flatnonzero(same)


def device_arrays(ds, loss: Loss | Mapping[str, float], config: TrainConfig) -> Data:
    """The arrays of ``ds`` the active terms of ``loss`` need, in ``config.dtype``, on the device."""
    dtype = config.dtype.dtype
    loss = as_loss(loss)
    data = {f: jnp.asarray(getattr(ds, f), dtype) for f in loss.fields()}
    if loss.reads_windows:
        for f in ("q", "qd", "tau"):
            data.setdefault(f, jnp.asarray(getattr(ds, f), dtype))
        data["t"] = jnp.asarray(ds.t, dtype)
        starts = window_starts(ds, config.rollout_horizon)
        if starts.size == 0:
            raise DatasetError(
                "loss 'rollout' needs trajectories longer than "
                f"rollout_horizon = {config.rollout_horizon} samples"
            )
        data["window_starts"] = jnp.asarray(starts, jnp.int32)
    return data


def samples(data: Data) -> Data:
    """The per-sample arrays of ``data`` (each ``(N, n)``)."""
    return {k: v for k, v in data.items() if k not in WINDOW_FIELDS}


def gather_windows(data: Data, starts: Int[Array, " w"], horizon: int) -> Data:
    """Rollout windows from ``starts``: ``q, qd, tau`` of shape ``(w, horizon + 1, n)``, ``dt`` ``(w,)``."""
    idx = starts[:, None] + jnp.arange(horizon + 1)
    return {
        "q": data["q"][idx],
        "qd": data["qd"][idx],
        "tau": data["tau"][idx],
        "dt": data["t"][idx[:, 1]] - data["t"][idx[:, 0]],
    }


# The most rollout windows in a full batch: reverse mode through a window's RK4 steps
# keeps some 0.5 MB per window (1 DoF, horizon 4, 2 sub-steps), so every window of a
# large dataset would not fit in memory (80,000 windows: 53 GB).
MAX_FULL_WINDOWS = 2048


def full_batch(data: Data, horizon: int | None) -> tuple[Data, Data | None]:
    """Every sample and (with ``horizon``) every window, or :data:`MAX_FULL_WINDOWS` evenly
    spaced ones where there are more: validation's and L-BFGS's batch."""
    if horizon is None:
        return samples(data), None
    starts = data["window_starts"]
    if starts.shape[0] > MAX_FULL_WINDOWS:
        starts = starts[np.linspace(0, starts.shape[0] - 1, MAX_FULL_WINDOWS).round().astype(np.int64)]
    return samples(data), gather_windows(data, starts, horizon)


@dataclasses.dataclass(frozen=True)
class Batching:
    """An epoch of ``steps`` minibatches of ``size`` samples (all ``n`` when ``full``) and,
    with ``horizon``, ``windows`` rollout windows per step. With ``sharding`` (data-parallel
    training, :mod:`lagrax.training.parallel`) each batch's samples and windows are split
    over the devices along their leading axis."""

    n: int
    size: int
    steps: int
    horizon: int | None
    windows: int
    sharding: NamedSharding | None = None

    @classmethod
    def of(
        cls, config: TrainConfig, n_samples: int, rollout: bool, sharding: NamedSharding | None = None
    ) -> Batching:
        """The plan for ``n_samples`` training samples under ``config`` (batches split by ``sharding``)."""
        bs = config.batch_size if config.batch_size > 0 else n_samples
        size = min(bs, n_samples)
        steps = config.steps_per_epoch or math.ceil(n_samples / size)
        horizon = config.rollout_horizon if rollout else None
        return cls(n_samples, size, steps, horizon, config.rollout_batch_size, sharding)

    def constrain(self, batch):
        """Inside ``jit``: ``batch`` (samples, windows) split over the devices by ``sharding``
        (unchanged without one); see :func:`~lagrax.training.parallel.constrain_rows`."""
        return constrain_rows(batch, self.sharding)

    @property
    def full(self) -> bool:
        """Whether each step sees every sample (no permutation is drawn)."""
        return self.size == self.n

    def _indices(self, key: PRNGKeyArray) -> Int[Array, "steps size"]:
        total = self.steps * self.size
        reps = math.ceil(total / self.n)
        perms = jax.vmap(lambda k: jax.random.permutation(k, self.n))(jax.random.split(key, reps))
        return perms.reshape(-1)[:total].reshape(self.steps, self.size)

    def draw(self, key: PRNGKeyArray, data: Data) -> tuple[Array, Array]:
        """Per step: sample indices (consecutive permutations) and window indices."""
        k_batch, k_win = jax.random.split(key)
        idx = jnp.zeros((self.steps, 0), jnp.int32) if self.full else self._indices(k_batch)
        if self.horizon is None:
            return idx, jnp.zeros((self.steps, 0), jnp.int32)
        n_win = data["window_starts"].shape[0]
        return idx, jax.random.randint(k_win, (self.steps, self.windows), 0, n_win)

    def gather(self, data: Data, row: tuple[Array, Array]) -> tuple[Data, Data | None]:
        """One step's ``(samples, windows)`` from a row of :meth:`draw`."""
        i, wi = row
        every = samples(data)
        batch = every if self.full else jax.tree_util.tree_map(lambda a: a[i], every)
        if self.horizon is None:
            return self.constrain((batch, None))
        return self.constrain((batch, gather_windows(data, data["window_starts"][wi], self.horizon)))
