"""Independent states: the LNN paper's training data (Cranmer et al. 2020), no motion.

``samples`` states ``q ~ U[q_range]``, ``qd ~ U[qd_range]`` per joint, unforced
(``tau = 0``), with ``qdd`` the system's forward dynamics. The raw arrays are ``t (N,)``
(all zero: there is no time axis), ``q, qd, qdd, tau (N, n)`` and ``trajectory (N,)``:
the states dealt into ``trajectories`` groups so that train/test splits by trajectory
work. Without a time axis, no signal can be estimated from another: every signal must be
measured (:class:`lagrax.data.sensors.Sensors`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from lagrax.core.errors import LagraxError
from lagrax.data.generators.common import Progress, check_timing, say, state_ranges
from lagrax.systems.batching import batched


@dataclasses.dataclass(frozen=True)
class StatesSettings:
    """How independent states are drawn: ``samples`` states in ``trajectories`` groups
    (ids), ``q`` uniform in ``q_range`` and ``qd`` in ``qd_range`` (each one ``(low, high)``
    pair for every joint or one per joint; defaults: the joint's position range and ``+-``
    its velocity range)."""

    trajectories: int = 100
    samples: int = 10_000
    q_range: Any = None
    qd_range: Any = None

    TIME_AXIS: ClassVar[bool] = False
    # what the metadata records as the sample period and duration [s]: one unit each,
    # as a states dataset always has (its samples are not on a time grid)
    dt: ClassVar[float] = 1.0
    duration: ClassVar[float] = 1.0

    def __post_init__(self):
        check_timing(self.trajectories, None, None)
        samples = self.samples
        if isinstance(samples, bool) or int(samples) != samples or samples < 1:
            raise LagraxError(f"samples must be a positive whole number, got {samples!r}")
        object.__setattr__(self, "samples", int(samples))
        object.__setattr__(self, "trajectories", int(self.trajectories))


def simulate(system, settings: StatesSettings, seed: int = 0, progress: Progress = None) -> dict:
    """The raw arrays of independent states (see the module docstring), and under
    ``"settings"`` the number of samples and the ranges drawn from."""
    info = system.info
    samples = settings.samples
    groups = min(settings.trajectories, samples)
    (lo, hi), (vlo, vhi) = state_ranges(info, settings.q_range, settings.qd_range)
    rng = np.random.default_rng(seed)
    q = rng.uniform(lo, hi, (samples, info.dof))
    qd = rng.uniform(vlo, vhi, (samples, info.dof))
    say(progress, f"accelerations of {samples} states")
    qdd = np.asarray(
        batched(system).forward_dynamics(jnp.asarray(q), jnp.asarray(qd), jnp.zeros_like(jnp.asarray(q)))
    )
    record = dict(
        samples=samples, q_range=np.stack([lo, hi], 1).tolist(), qd_range=np.stack([vlo, vhi], 1).tolist()
    )
    return dict(
        t=np.zeros(samples),
        q=q,
        qd=qd,
        qdd=qdd,
        tau=np.zeros_like(q),
        trajectory=(np.arange(samples) * groups // samples).astype(np.int64),
        settings=record,
    )


__all__ = ["StatesSettings", "simulate"]
