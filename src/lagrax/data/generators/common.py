"""What the generators share: sampling ranges, time grids, flat sample arrays, ground truth.

Sampling of random initial states / excitation ranges (per joint): position within
``info.position_limits`` when given, else ``[-pi, pi)`` for a revolute joint and
``[-PRISMATIC_RANGE, PRISMATIC_RANGE]`` metres for a prismatic one; velocity within
``+-info.velocity_limits`` when given, else ``+-DEFAULT_VELOCITY`` (rad/s or m/s).

Every generator returns *raw* samples, flat over trajectories: ``t (N,)`` the time within
its trajectory, ``q, qd, qdd, tau (N, n)``, ``trajectory (N,)`` integer ids, and under
``"settings"`` what the dataset's metadata records of the generator. This module does not
simulate (the kinds' own modules do) or add sensor noise (:mod:`lagrax.data.sensors`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from lagrax.core.errors import LagraxError
from lagrax.systems.batching import batched

PRISMATIC_RANGE = 1.0  # [m]: sampling range of a prismatic joint without limits
DEFAULT_VELOCITY = 2.0  # [rad/s or m/s]: velocity range of a joint without a velocity limit

Progress = Callable[[str], None] | None


def say(progress: Progress, message: str) -> None:
    """Report ``message`` to ``progress`` (a ``callback(message)``), if there is one."""
    if progress is not None:
        progress(message)


# --------------------------------------------------------------------------------------
# Sampling ranges
# --------------------------------------------------------------------------------------


def position_ranges(info) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint ``(lo, hi)`` for sampling positions (see the module docstring)."""
    if info.position_limits is not None:
        lim = np.asarray(info.position_limits, dtype=float)
        lo, hi = lim[:, 0].copy(), lim[:, 1].copy()
    else:
        lo, hi = np.full(info.dof, np.nan), np.full(info.dof, np.nan)
    revolute = np.array([t == "revolute" for t in info.joint_types])
    # a limit given as +-inf (or missing) falls back to the default range of the joint type
    default = np.where(revolute, np.pi, PRISMATIC_RANGE)
    lo = np.where(np.isfinite(lo), lo, -default)
    hi = np.where(np.isfinite(hi), hi, default)
    return lo, hi


def velocity_ranges(info) -> np.ndarray:
    """Per-joint maximum speed for sampling velocities."""
    if info.velocity_limits is None:
        return np.full(info.dof, DEFAULT_VELOCITY)
    v = np.asarray(info.velocity_limits, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, DEFAULT_VELOCITY)


def joint_ranges(
    given, dof: int, default: tuple[np.ndarray, np.ndarray], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint ``(lo, hi)`` from ``given``: None (``default``), one ``(lo, hi)`` pair for
    every joint, or ``dof`` pairs; a LagraxError for anything else."""
    if given is None:
        return default
    a = np.asarray(given, dtype=float)
    if a.shape == (2,):
        a = np.tile(a, (dof, 1))
    if a.shape != (dof, 2):
        raise LagraxError(
            f"{what} must be one (low, high) pair or one per joint ({dof}), got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)) or np.any(a[:, 0] >= a[:, 1]):
        raise LagraxError(f"{what} must be finite with low < high for every joint, got {a.tolist()}")
    return a[:, 0], a[:, 1]


def state_ranges(
    info, q_range, qd_range
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(q_lo, q_hi), (qd_lo, qd_hi)`` per joint: the given ranges (see :func:`joint_ranges`),
    else :func:`position_ranges` and ``+-``:func:`velocity_ranges`."""
    q = joint_ranges(q_range, info.dof, position_ranges(info), "q_range")
    vmax = velocity_ranges(info)
    return q, joint_ranges(qd_range, info.dof, (-vmax, vmax), "qd_range")


# --------------------------------------------------------------------------------------
# Timing and sample arrays
# --------------------------------------------------------------------------------------


def check_timing(trajectories: int | None, duration: float | None, dt: float | None) -> None:
    """A positive whole number of trajectories, and a positive finite duration and dt
    (each checked where not None), with ``duration >= dt``; a LagraxError naming the bad one."""
    if trajectories is not None and (isinstance(trajectories, bool) or int(trajectories) != trajectories):
        raise LagraxError(f"trajectories must be a whole number, got {trajectories!r}")
    if trajectories is not None and trajectories < 1:
        raise LagraxError(f"trajectories must be at least 1, got {trajectories}")
    for name, value in (("duration", duration), ("dt", dt)):
        if value is None:
            continue
        if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
            raise LagraxError(f"{name} must be a positive finite number of seconds, got {value!r}")
    if duration is not None and dt is not None and duration < dt:
        raise LagraxError(f"duration ({duration} s) is shorter than one sample period dt ({dt} s)")


def time_grid(duration: float, dt: float) -> np.ndarray:
    """The sample times ``0, dt, ..., duration`` (rounded to whole samples), ``(T,)``, ``T >= 3``."""
    if not (dt > 0 and duration > 0):
        raise LagraxError(f"duration and dt must be positive, got duration={duration}, dt={dt}")
    T = int(round(duration / dt)) + 1
    if T < 3:
        raise LagraxError(f"duration={duration} s at dt={dt} s gives {T} samples; need at least 3")
    return np.arange(T) * dt


def stack(ts: np.ndarray, q, qd, qdd, tau=None) -> dict:
    """``(B, T, n)`` batches on the grid ``ts (T,)`` -> flat ``(B*T, n)`` sample arrays with
    trajectory ids."""
    B, T, n = np.shape(q)
    out = dict(
        t=np.tile(np.asarray(ts, float), B),
        q=np.asarray(q).reshape(B * T, n),
        qd=np.asarray(qd).reshape(B * T, n),
        qdd=np.asarray(qdd).reshape(B * T, n),
        trajectory=np.repeat(np.arange(B, dtype=np.int64), T),
    )
    if tau is not None:
        out["tau"] = np.asarray(tau).reshape(B * T, n)
    return out


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


@eqx.filter_jit
def _momentum_and_rate(system, q, qd, qdd):
    """``p(q, qd)`` and its time derivative along ``(qd, qdd)`` (one jvp), per sample."""
    return jax.vmap(lambda a, b, c: jax.jvp(system.momentum, (a, b), (b, c)))(q, qd, qdd)


def ground_truth(system, q, qd, qdd) -> dict:
    """What the system provides of ``mass_matrix, inertial, coriolis, gravity, energy, p, pdot``
    for samples ``(N, n)``.

    ``pdot`` is the time derivative of ``p(q, qd)`` along the motion: the JVP of the
    momentum in the direction ``(qd, qdd)``. Quantities the system does not provide
    (:meth:`~lagrax.systems.System.provides`) are left out.
    """
    q, qd, qdd = (jnp.asarray(x) for x in (q, qd, qdd))
    edge = batched(system)
    out = {}
    if system.provides("decomposition"):
        d = edge.decomposition(q, qd, qdd)
        out.update(inertial=d["inertial"], coriolis=d["coriolis"], gravity=d["gravity"])
    if system.provides("mass_matrix"):
        out["mass_matrix"] = edge.mass_matrix(q)
    if system.provides("energy"):
        out["energy"] = edge.energy(q, qd)
    if system.provides("momentum"):
        out["p"], out["pdot"] = _momentum_and_rate(system, q, qd, qdd)
    return {k: np.asarray(v) for k, v in out.items()}


__all__ = [
    "DEFAULT_VELOCITY",
    "PRISMATIC_RANGE",
    "Progress",
    "check_timing",
    "ground_truth",
    "joint_ranges",
    "position_ranges",
    "say",
    "stack",
    "state_ranges",
    "time_grid",
    "velocity_ranges",
]
