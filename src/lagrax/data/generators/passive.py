"""Passive rollouts: free motion (``tau = 0``) from random or given initial states.

Each trajectory starts from ``q`` uniform in its position range and ``qd`` uniform in its
velocity range (:func:`~lagrax.data.generators.common.state_ranges`), or from given
initial states, and is integrated adaptively with :func:`lagrax.systems.rollout.simulate`
on the grid ``0, dt, ..., duration``. The raw arrays are ``t (B*T,)``, ``q, qd, qdd, tau
(B*T, n)`` (``tau`` all zero) and ``trajectory (B*T,)`` for ``B`` trajectories of ``T``
samples. This module adds neither ground truth nor sensor noise
(:func:`lagrax.data.generators.generate` does).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import diffrax
import numpy as np

from lagrax.core.errors import LagraxError, ShapeError
from lagrax.data.generators.common import Progress, check_timing, say, stack, state_ranges, time_grid
from lagrax.systems import rollout


@dataclasses.dataclass(frozen=True)
class PassiveSettings:
    """How passive rollouts are made.

    ``trajectories`` rollouts of ``duration`` seconds sampled every ``dt`` seconds, with
    tolerances ``rtol, atol`` of the adaptive ``solver`` (a name or a diffrax solver).
    Initial ``q`` is uniform in ``q_range``, ``qd`` in ``qd_range`` (each one ``(low,
    high)`` pair for every joint or one per joint; defaults: the joint's position range and
    ``+-`` its velocity range); ``initial=(q0, qd0)``, two ``(trajectories, dof)`` arrays,
    gives the initial states instead.
    """

    trajectories: int = 20
    duration: float = 5.0
    dt: float = 0.01
    rtol: float = 1e-10
    atol: float = 1e-10
    solver: diffrax.AbstractSolver | str = "tsit5"
    q_range: Any = None
    qd_range: Any = None
    initial: tuple[Any, Any] | None = None

    TIME_AXIS: ClassVar[bool] = True  # samples lie on a time grid (derivatives can be estimated)

    def __post_init__(self):
        check_timing(self.trajectories, self.duration, self.dt)
        object.__setattr__(self, "trajectories", int(self.trajectories))
        time_grid(self.duration, self.dt)  # at least 3 samples


def simulate(system, settings: PassiveSettings, seed: int = 0, progress: Progress = None) -> dict:
    """The raw arrays of ``system``'s free motion (see the module docstring), and under
    ``"settings"`` the solver, tolerances and whether the initial states were given."""
    info, s = system.info, settings
    if s.initial is None:
        q0, qd0 = uniform_states(info, s.trajectories, seed, s.q_range, s.qd_range)
    else:
        q0, qd0 = given_states(s.initial, s.trajectories, info.dof)
    ts = time_grid(s.duration, s.dt)
    say(progress, f"integrating {s.trajectories} rollouts")
    r = rollout.simulate(system, q0, qd0, ts, solver=s.solver, rtol=s.rtol, atol=s.atol)
    out = stack(ts, r.q, r.qd, r.qdd, np.zeros_like(r.q))
    # the metadata records the solver by name (or class name for a solver object)
    name = s.solver if isinstance(s.solver, str) else getattr(s.solver, "value", type(s.solver).__name__)
    out["settings"] = dict(
        rtol=s.rtol, atol=s.atol, solver=str(name), initial="given" if s.initial is not None else "random"
    )
    return out


def uniform_states(info, count: int, seed: int, q_range, qd_range) -> tuple[np.ndarray, np.ndarray]:
    """``count`` initial states ``q0, qd0 (count, dof)``, uniform in the ranges
    (:func:`~lagrax.data.generators.common.state_ranges`), from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    (lo, hi), (vlo, vhi) = state_ranges(info, q_range, qd_range)
    return rng.uniform(lo, hi, size=(count, info.dof)), rng.uniform(vlo, vhi, size=(count, info.dof))


def given_states(initial, count: int, dof: int) -> tuple[np.ndarray, np.ndarray]:
    """``initial = (q0, qd0)`` as two finite ``(count, dof)`` float arrays, or a LagraxError."""
    try:
        q0, qd0 = (np.asarray(a, dtype=np.float64) for a in initial)
    except (TypeError, ValueError):
        raise ShapeError("initial must be a pair (q0, qd0) of real arrays") from None
    for name, a in (("q0", q0), ("qd0", qd0)):
        if a.shape != (count, dof):
            raise ShapeError(f"initial {name} has shape {a.shape}, expected ({count}, {dof})")
        if not np.all(np.isfinite(a)):
            raise LagraxError(f"initial {name} holds NaN or inf")
    return q0, qd0


__all__ = ["PassiveSettings", "given_states", "simulate", "uniform_states"]
