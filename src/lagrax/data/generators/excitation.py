"""Excitation: finite Fourier series joint trajectories, the standard excitation in robot
identification (Swevers, Ganseman, Tukel, De Schutter, Van Brussel 1997).

Fully actuated systems follow random Fourier-series references ``q, qd, qdd`` (analytic,
within the position and velocity ranges), with ``tau`` from inverse dynamics; a system
with a simulator of its own (MuJoCo, ``provides("simulate_excitation")``) tracks the
references in it and the data are what it recorded. Under-actuated systems are instead
driven forward by random cosine-series torques on their actuated joints. The raw arrays
are ``t (B*T,)``, ``q, qd, qdd, tau (B*T, n)`` and ``trajectory (B*T,)`` for ``B``
trajectories of ``T`` samples.

:func:`reference_trajectories` gives the same references as desired motions for tracking
control. This module adds neither ground truth nor sensor noise
(:func:`lagrax.data.generators.generate` does).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.data.generators.common import (
    Progress,
    check_timing,
    position_ranges,
    say,
    stack,
    time_grid,
    velocity_ranges,
)
from lagrax.systems import rollout
from lagrax.systems.batching import batched

LIMIT_MARGIN = 0.9  # excitation uses at most this fraction of each position and velocity range
# where excitation centres are drawn: a fraction of each joint's half range about its centre
REGIONS = {"middle": (-0.5, 0.5), "upper": (0.45, 0.7), "lower": (-0.7, -0.45)}


def _check_speed(speed) -> None:
    if not (np.isfinite(speed) and speed > 0):
        raise LagraxError(f"speed must be a positive number, got {speed}")


@dataclasses.dataclass(frozen=True)
class ExcitationSettings:
    """How excitation trajectories are made.

    ``trajectories`` trajectories of ``duration`` seconds sampled every ``dt`` seconds:
    Fourier series of ``harmonics`` harmonics with fundamental ``base_frequency`` (default
    ``1 / duration`` Hz, so each trajectory is one period).

    ``speed`` multiplies the fundamental frequency and the velocity cap: ``speed=2``
    gives motions of the same extent twice as fast (four times the accelerations).
    ``region`` picks where the trajectories' centres are drawn, as fractions of each
    joint's half range about its centre (:data:`REGIONS`): ``"middle"`` (the default),
    or ``"upper"`` / ``"lower"``, towards the limits, which ``"middle"`` never centres
    on. Together they make test sets outside a training set's distribution.
    """

    trajectories: int = 20
    duration: float = 10.0
    dt: float = 0.01
    harmonics: int = 5
    base_frequency: float | None = None
    speed: float = 1.0
    region: str = "middle"

    TIME_AXIS: ClassVar[bool] = True  # samples lie on a time grid (derivatives can be estimated)

    def __post_init__(self):
        check_timing(self.trajectories, self.duration, self.dt)
        object.__setattr__(self, "trajectories", int(self.trajectories))
        if int(self.harmonics) < 1:
            raise LagraxError(f"harmonics must be at least 1, got {self.harmonics}")
        time_grid(self.duration, self.dt)  # at least 3 samples
        if self.fundamental <= 0:
            raise LagraxError(f"base_frequency must be positive, got {self.base_frequency}")
        _check_speed(self.speed)
        if self.region not in REGIONS:
            raise UnknownNameError.for_name("region", self.region, REGIONS)

    @property
    def fundamental(self) -> float:
        """The fundamental frequency [Hz] at ``speed=1``."""
        return 1.0 / self.duration if self.base_frequency is None else float(self.base_frequency)


def simulate(system, settings: ExcitationSettings, seed: int = 0, progress: Progress = None) -> dict:
    """The raw arrays of ``system``'s excitation (see the module docstring and
    :func:`references`), and under ``"settings"`` the series' harmonics, frequency, speed
    and region (and, for a driven or simulated system, what drove it)."""
    info, s = system.info, settings
    rng = np.random.default_rng(seed)
    n, B, L = info.dof, s.trajectories, int(s.harmonics)
    ts = time_grid(s.duration, s.dt)
    f0 = s.fundamental
    omega = 2 * np.pi * f0 * s.speed
    record = dict(harmonics=L, base_frequency=f0 * s.speed, speed=s.speed, region=s.region)
    if not all(info.actuated):
        return driven(system, ts, rng, (B, n, L), omega, record, progress)

    q, qd, qdd = references(info, ts, rng, (B, n, L), omega, s.speed, s.region)
    if system.provides("simulate_excitation"):  # a simulator of its own (MuJoCo) tracks the references
        sim = system.simulate_excitation(ts, q, qd, qdd, progress=progress)
        out = stack(ts, sim["q"], sim["qd"], sim["qdd"], sim["tau"])
        out["settings"] = dict(record, **sim["settings"])
        return out
    say(progress, f"inverse dynamics of {B} x {len(ts)} samples")
    tau = batched(system).inverse_dynamics(q, qd, qdd)
    out = stack(ts, q, qd, qdd, tau)
    out["settings"] = record
    return out


def fourier_joint_trajectory(
    t: Float[Array, " T"],
    q0: Float[Array, " n"],
    a: Float[Array, "n L"],
    b: Float[Array, "n L"],
    omega: float,
) -> tuple[Array, Array, Array]:
    """Swevers et al. (1997) eq. (7): ``q_i(t) = q0_i + sum_l a_il/(w l) sin(w l t)
    - b_il/(w l) cos(w l t)``, and its analytic ``qd, qdd``; each ``(T, n)``."""
    wl = omega * jnp.arange(1, a.shape[-1] + 1)  # (L,)
    s, c = jnp.sin(t[:, None] * wl), jnp.cos(t[:, None] * wl)  # (T, L)
    q = q0 + s @ (a / wl).T - c @ (b / wl).T
    qd = c @ a.T + s @ b.T
    qdd = -s @ (a * wl).T + c @ (b * wl).T
    return q, qd, qdd


def references(info, ts, rng, shape, omega, speed, region):
    """Fourier-series joint references ``q, qd, qdd`` of shape ``(B, T, n)`` within the limits.

    ``shape = (B, n, L)``: trajectories, joints, harmonics. Scaling (per trajectory and
    joint): with coefficients ``a, b ~ N(0, 1)``, a centre ``q0`` drawn in ``region`` of the
    joint's position range and the series part ``f(t)`` evaluated on the sample grid ``ts``,
    ``a, b`` are multiplied by ``u * min(r / max|f|, LIMIT_MARGIN * vmax / max|qd|)`` with
    ``r = LIMIT_MARGIN *`` (distance from ``q0`` to the nearer limit) and ``u ~ U(0.5, 1)``.
    Hence ``q`` stays within the position ranges and ``|qd|`` within the velocity ranges at
    every sample.
    """
    B, n, L = shape
    lo, hi = position_ranges(info)
    vmax = velocity_ranges(info)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    q0 = centre + rng.uniform(*REGIONS[region], size=(B, n)) * half
    room = LIMIT_MARGIN * np.minimum(hi - q0, q0 - lo)  # (B, n)
    a = rng.standard_normal((B, n, L))
    b = rng.standard_normal((B, n, L))
    t = jnp.asarray(ts)
    fourier = jax.vmap(fourier_joint_trajectory, in_axes=(None, 0, 0, 0, None))
    # unit-scale series about zero, to measure the range each coefficient set covers
    f, fd, _ = fourier(t, jnp.zeros((B, n)), jnp.asarray(a), jnp.asarray(b), omega)
    scale = np.minimum(
        room / np.max(np.abs(np.asarray(f)), axis=1),
        speed * LIMIT_MARGIN * vmax / np.max(np.abs(np.asarray(fd)), axis=1),
    ) * rng.uniform(0.5, 1.0, size=(B, n))
    a, b = a * scale[..., None], b * scale[..., None]
    return fourier(t, jnp.asarray(q0), jnp.asarray(a), jnp.asarray(b), omega)


def reference_trajectories(
    info,
    duration: float,
    dt: float,
    count: int = 1,
    seed: int = 0,
    harmonics: int = 5,
    speed: float = 1.0,
    region: str = "middle",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Desired joint motions for tracking control: ``q, qd, qdd`` of shape ``(count, T, n)``
    on the grid ``0, dt, ..., duration``, the finite Fourier series of the excitation
    (one period over ``duration`` at ``speed=1``), within the position and velocity
    ranges of ``info`` (a :class:`~lagrax.systems.SystemInfo`)."""
    if region not in REGIONS:
        raise UnknownNameError.for_name("region", region, tuple(REGIONS))
    if int(harmonics) < 1 or int(count) < 1:
        raise LagraxError(f"harmonics and count must be at least 1, got {harmonics} and {count}")
    _check_speed(speed)
    ts = time_grid(duration, dt)
    rng = np.random.default_rng(seed)
    omega = 2 * np.pi * speed / duration
    q, qd, qdd = references(info, ts, rng, (int(count), info.dof, int(harmonics)), omega, speed, region)
    return np.asarray(q), np.asarray(qd), np.asarray(qdd)


def driven(system, ts, rng, shape, omega, record, progress: Progress = None) -> dict:
    """Forward simulation under random Fourier-series torques on the actuated joints only.

    Under-actuated systems (``info.actuated`` not all true) cannot follow arbitrary joint
    trajectories: ``B`` of them (``shape = (B, n, L)``) are simulated forward on the grid
    ``ts`` from random initial states (actuated joints at rest) under torques that are
    random cosine series of ``L`` harmonics of ``omega`` [rad/s] on the actuated joints and
    exactly zero on the others. The amplitude follows each joint's inertia ``M_jj`` at the
    range centre, ``0.5 M_jj min(vmax w, half_range w^2 / 2)``, capped at half the torque
    limit, so that the actuated joints move by about a quarter of their range; positions
    are not guaranteed to stay within limits (the unactuated joints swing freely).
    """
    B, n, L = shape
    info = system.info
    actuated = np.asarray(info.actuated, dtype=bool)
    lo, hi = position_ranges(info)
    vmax = velocity_ranges(info)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    amp = _torque_amplitude(system, centre, vmax, half, omega, actuated)
    a = rng.standard_normal((B, n, L)) / np.arange(1, L + 1)  # falling spectrum: smooth torques
    wl = omega * np.arange(1, L + 1)
    u = np.einsum("tl,bnl->btn", np.cos(ts[:, None] * wl), a)
    u = u / np.max(np.abs(u), axis=1, keepdims=True) * amp * rng.uniform(0.5, 1.0, size=(B, 1, n))
    q0 = centre + rng.uniform(-0.5, 0.5, size=(B, n)) * half
    # actuated joints start at rest (their motion comes from the torque); the others anywhere
    qd0 = np.where(actuated, 0.0, rng.uniform(-0.5, 0.5, size=(B, n)) * vmax)
    say(progress, f"simulating {B} torque-driven rollouts (under-actuated)")
    # The torque samples are linearly interpolated between samples by simulate; the
    # recorded qdd is forward dynamics at exactly the recorded tau, so tau = ID(q, qd, qdd).
    r = rollout.simulate(system, q0, qd0, ts, u, rtol=1e-10, atol=1e-10)
    out = stack(ts, r.q, r.qd, r.qdd, u)
    out["settings"] = dict(
        record, driven="random cosine-series torques on actuated joints", torque_amplitude=amp
    )
    return out


def _torque_amplitude(system, centre, vmax, half, omega, actuated) -> np.ndarray:
    """Per joint, the amplitude of the driving torque (zero on unactuated joints), ``(n,)``."""
    info = system.info
    # Amplitude from the joint's own inertia: a torque A cos(w t) on an inertia m moves the
    # joint by A / (m w^2) at speed A / (m w); aim at a quarter of the position range and
    # half the speed range (capped at half the torque limit). Cosines only, so that the
    # velocity of a free actuated joint has no drift.
    inertia = np.diagonal(np.asarray(batched(system).mass_matrix(jnp.asarray(centre))))
    amp = 0.5 * inertia * np.minimum(vmax * omega, 0.5 * half * omega**2)
    if info.torque_limits is not None:
        limit = np.asarray(info.torque_limits, float)
        amp = np.where(np.isfinite(limit) & (limit > 0), np.minimum(amp, 0.5 * limit), amp)
    return np.where(actuated, amp, 0.0)


__all__ = [
    "LIMIT_MARGIN",
    "REGIONS",
    "ExcitationSettings",
    "driven",
    "fourier_joint_trajectory",
    "reference_trajectories",
    "references",
    "simulate",
]
