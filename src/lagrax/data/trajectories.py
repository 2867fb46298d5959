"""Trajectories: generate datasets from a ground-truth system.

Three kinds of motion, one entry point :func:`generate`:

* ``"passive"`` -- free rollouts (tau = 0) from random initial states, integrated
  adaptively with :func:`lagrax.systems.rollout.simulate`;
* ``"excitation"`` -- finite Fourier series joint trajectories (Swevers, Ganseman,
  Tukel, De Schutter, Van Brussel 1997, the standard excitation in robot
  identification), with torques from inverse dynamics; under-actuated systems
  are instead driven by random Fourier-series torques on their actuated joints;
* ``"characters"`` -- a two-link arm drawing lowercase letters taken from font
  glyph outlines (our own equivalent of the DeLaN character dataset).

:func:`generate` adds the ground truth the system provides (mass matrix, torque
decomposition, energy, momentum and its rate) and a sensor model: Gaussian noise on ``q``
and ``tau`` (levels of their own), the sample rate, and which signals are measured; with
``measured="q,tau"`` (what a real arm logs) ``qd, qdd`` are re-estimated from the noisy
``q`` by :func:`lagrax.data.signals.savgol_derivatives` (re-exported here), per trajectory.

Sampling of random initial states / excitation ranges (per joint):
position within ``info.position_limits`` when given, else ``[-pi, pi)`` for a
revolute joint and ``[-PRISMATIC_RANGE, PRISMATIC_RANGE]`` metres for a prismatic
one; velocity within ``+-info.velocity_limits`` when given, else
``+-DEFAULT_VELOCITY`` (rad/s or m/s).

Everything is batched over trajectories (vmap / batched system calls); the only
Python loops run over trajectories or letters, never over samples. This module
does not define the file format (:mod:`lagrax.data.dataset`) or plot (:mod:`lagrax.analysis.plotting`).
"""

from __future__ import annotations

import functools
import numbers
import time
from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.systems.batching import batched
from lagrax.data.dataset import Dataset
from lagrax.core.errors import LagraxError, ShapeError, UnknownNameError
from lagrax.systems.rollout import simulate
from lagrax.data.signals import savgol_derivatives
from lagrax.core.version import __version__

PRISMATIC_RANGE = 1.0  # [m]: sampling range of a prismatic joint without limits
DEFAULT_VELOCITY = 2.0  # [rad/s or m/s]: velocity range of a joint without a velocity limit
LIMIT_MARGIN = 0.9  # excitation uses at most this fraction of each position and velocity range
# where excitation centres are drawn: a fraction of each joint's half range about its centre
REGIONS = {"middle": (-0.5, 0.5), "upper": (0.45, 0.7), "lower": (-0.7, -0.45)}
KINDS = ("passive", "excitation", "characters", "states")
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Per kind: (trajectories, duration [s], dt [s]) when not given. Characters: one
# trajectory per letter, and a duration that follows the letter's outline length.
DEFAULTS = {
    "passive": (20, 5.0, 0.01),
    "excitation": (20, 10.0, 0.01),
    "characters": (None, None, 0.01),
    "states": (100, 1.0, 1.0),  # groups of states; no time axis (duration and dt unused)
}

Progress = Callable[[str], None] | None


def _say(progress: Progress, message: str) -> None:
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


def _time_grid(duration: float, dt: float) -> np.ndarray:
    if not (dt > 0 and duration > 0):
        raise LagraxError(f"duration and dt must be positive, got duration={duration}, dt={dt}")
    T = int(round(duration / dt)) + 1
    if T < 3:
        raise LagraxError(f"duration={duration} s at dt={dt} s gives {T} samples; need at least 3")
    return np.arange(T) * dt


def _stack(ts: np.ndarray, q, qd, qdd, tau=None) -> dict:
    """``(B, T, n)`` batches -> flat ``(B*T, n)`` sample arrays with trajectory ids."""
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
# Passive rollouts
# --------------------------------------------------------------------------------------


def passive(
    system,
    trajectories: int = 20,
    duration: float = 5.0,
    dt: float = 0.01,
    seed: int = 0,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    solver: diffrax.AbstractSolver | str = "tsit5",
    progress: Progress = None,
    q_range=None,
    qd_range=None,
    initial=None,
) -> dict:
    """Free motion (tau = 0) from random initial states; returns flat sample arrays.

    Initial ``q`` is uniform in ``q_range`` (default :func:`position_ranges`), ``qd``
    uniform in ``qd_range`` (default ``+-``:func:`velocity_ranges`); each range is one
    ``(low, high)`` pair for every joint or one per joint. ``initial=(q0, qd0)``, two
    ``(trajectories, dof)`` arrays, gives the initial states instead. Integrated
    adaptively with tolerances ``rtol, atol``.
    """
    info = system.info
    if initial is None:
        q0, qd0 = _uniform_states(info, trajectories, seed, q_range, qd_range)
    else:
        q0, qd0 = _given_states(initial, trajectories, info.dof)
    ts = _time_grid(duration, dt)
    _say(progress, f"integrating {trajectories} rollouts")
    r = simulate(system, q0, qd0, ts, solver=solver, rtol=rtol, atol=atol)
    out = _stack(ts, r.q, r.qd, r.qdd, np.zeros_like(r.q))
    # the metadata records the solver by name (or class name for a solver object)
    name = solver if isinstance(solver, str) else getattr(solver, "value", type(solver).__name__)
    out["settings"] = dict(
        rtol=rtol, atol=atol, solver=str(name), initial="given" if initial is not None else "random"
    )
    return out


def _uniform_states(info, count: int, seed: int, q_range, qd_range) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = joint_ranges(q_range, info.dof, position_ranges(info), "q_range")
    vmax = velocity_ranges(info)
    vlo, vhi = joint_ranges(qd_range, info.dof, (-vmax, vmax), "qd_range")
    return rng.uniform(lo, hi, size=(count, info.dof)), rng.uniform(vlo, vhi, size=(count, info.dof))


def _given_states(initial, count: int, dof: int) -> tuple[np.ndarray, np.ndarray]:
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


# --------------------------------------------------------------------------------------
# Independent states (the LNN paper's training data)
# --------------------------------------------------------------------------------------


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


def states(
    system,
    trajectories: int = 100,
    duration: float = 1.0,
    dt: float = 1.0,
    seed: int = 0,
    progress: Progress = None,
    samples: int = 10_000,
    q_range=None,
    qd_range=None,
) -> dict:
    """Independent random states with their analytic accelerations, unforced (LNN paper).

    ``q ~ U[q_range]`` and ``qd ~ U[qd_range]`` per joint (one ``(low, high)`` pair for all
    joints or one per joint; defaults :func:`position_ranges` and ``+-``
    :func:`velocity_ranges`), ``tau = 0``, ``qdd`` the system's forward dynamics. The
    ``samples`` states are dealt into ``trajectories`` groups (ids) so that train/test
    splits by trajectory work; each sample's ``t`` is 0: there is no motion to roll out.
    ``duration`` and ``dt`` are unused.
    """
    del duration, dt
    info = system.info
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise LagraxError(f"samples must be a positive whole number, got {samples!r}")
    samples, groups = int(samples), min(int(trajectories), int(samples))
    lo, hi = joint_ranges(q_range, info.dof, position_ranges(info), "q_range")
    vmax = velocity_ranges(info)
    vlo, vhi = joint_ranges(qd_range, info.dof, (-vmax, vmax), "qd_range")
    rng = np.random.default_rng(seed)
    q = rng.uniform(lo, hi, (samples, info.dof))
    qd = rng.uniform(vlo, vhi, (samples, info.dof))
    _say(progress, f"accelerations of {samples} states")
    qdd = np.asarray(
        batched(system).forward_dynamics(jnp.asarray(q), jnp.asarray(qd), jnp.zeros_like(jnp.asarray(q)))
    )
    settings = dict(
        samples=samples, q_range=np.stack([lo, hi], 1).tolist(), qd_range=np.stack([vlo, vhi], 1).tolist()
    )
    return dict(
        t=np.zeros(samples),
        q=q,
        qd=qd,
        qdd=qdd,
        tau=np.zeros_like(q),
        trajectory=(np.arange(samples) * groups // samples).astype(np.int64),
        settings=settings,
    )


# --------------------------------------------------------------------------------------
# Fourier-series excitation (Swevers et al. 1997)
# --------------------------------------------------------------------------------------


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


def excitation(
    system,
    trajectories: int = 20,
    duration: float = 10.0,
    dt: float = 0.01,
    seed: int = 0,
    harmonics: int = 5,
    base_frequency: float | None = None,
    speed: float = 1.0,
    region: str = "middle",
    progress: Progress = None,
) -> dict:
    """Random finite-Fourier-series excitation trajectories; returns flat sample arrays.

    ``speed`` multiplies the fundamental frequency and the velocity cap: ``speed=2``
    gives motions of the same extent twice as fast (four times the accelerations).
    ``region`` picks where the trajectories' centres are drawn, as fractions of each
    joint's half range about its centre (:data:`REGIONS`): ``"middle"`` (the default),
    or ``"upper"`` / ``"lower"``, towards the limits, which ``"middle"`` never centres
    on. Together they make test sets outside a training set's distribution.

    Fully actuated systems: ``q, qd, qdd`` analytic from :func:`fourier_joint_trajectory`
    with fundamental ``base_frequency`` (default ``1 / duration`` Hz, so each
    trajectory is one period) and ``harmonics`` harmonics; ``tau`` from inverse dynamics.

    Scaling (per trajectory and joint): with coefficients ``a, b ~ N(0, 1)``, a centre
    ``q0`` drawn in the middle half of the joint's position range and the series part
    ``f(t)`` evaluated on the sample grid, ``a, b`` are multiplied by
    ``u * min(r / max|f|, LIMIT_MARGIN * vmax / max|qd|)`` with ``r = LIMIT_MARGIN *``
    (distance from ``q0`` to the nearer limit) and ``u ~ U(0.5, 1)``. Hence ``q`` stays
    within the position ranges and ``|qd|`` within the velocity ranges at every sample.

    Under-actuated systems (``info.actuated`` not all true) cannot follow arbitrary
    joint trajectories: they are simulated forward from random initial states (as
    in :func:`passive`, actuated joints at rest) under torques that are random cosine
    series of the same frequencies on the actuated joints and exactly zero on the
    others. The amplitude follows each joint's inertia ``M_jj`` at the range centre,
    ``0.5 M_jj min(vmax w, half_range w^2 / 2)``, capped at half the torque limit, so
    that the actuated joints move by about a quarter of their range; positions are not
    guaranteed to stay within limits (the unactuated joints swing freely).

    A fully actuated system with a ``simulate_excitation(ts, q, qd, qdd, progress=)``
    method (an MJCF system: :meth:`lagrax.systems.mjcf.MjcfSystem.simulate_excitation`)
    steps its own simulator along these references instead, and the data are what it
    recorded.
    """
    info = system.info
    rng = np.random.default_rng(seed)
    n, B, L = info.dof, trajectories, int(harmonics)
    if L < 1:
        raise LagraxError(f"harmonics must be at least 1, got {harmonics}")
    ts = _time_grid(duration, dt)
    f0 = 1.0 / duration if base_frequency is None else float(base_frequency)
    if f0 <= 0:
        raise LagraxError(f"base_frequency must be positive, got {base_frequency}")
    if not (np.isfinite(speed) and speed > 0):
        raise LagraxError(f"speed must be a positive number, got {speed}")
    if region not in REGIONS:
        raise UnknownNameError.for_name("region", region, REGIONS)
    omega = 2 * np.pi * f0 * speed
    settings = dict(harmonics=L, base_frequency=f0 * speed, speed=speed, region=region)
    if not all(info.actuated):
        return _driven(system, ts, rng, B, L, omega, settings, progress)

    q, qd, qdd = _references(info, ts, rng, (B, n, L), omega, speed, region)
    if system.provides("simulate_excitation"):  # a simulator of its own (MuJoCo) tracks the references
        sim = system.simulate_excitation(ts, q, qd, qdd, progress=progress)
        out = _stack(ts, sim["q"], sim["qd"], sim["qdd"], sim["tau"])
        out["settings"] = dict(settings, **sim["settings"])
        return out
    _say(progress, f"inverse dynamics of {B} x {len(ts)} samples")
    tau = batched(system).inverse_dynamics(q, qd, qdd)
    out = _stack(ts, q, qd, qdd, tau)
    out["settings"] = settings
    return out


def _references(info, ts, rng, shape, omega, speed, region):
    """Fourier-series joint references ``q, qd, qdd`` of shape ``(B, T, n)`` within the limits."""
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
    on the grid ``0, dt, ..., duration``, the finite Fourier series of :func:`excitation`
    (one period over ``duration`` at ``speed=1``), within the position and velocity
    ranges of ``info`` (a :class:`~lagrax.systems.SystemInfo`)."""
    if region not in REGIONS:
        raise UnknownNameError.for_name("region", region, tuple(REGIONS))
    if int(harmonics) < 1 or int(count) < 1:
        raise LagraxError(f"harmonics and count must be at least 1, got {harmonics} and {count}")
    if not (np.isfinite(speed) and speed > 0):
        raise LagraxError(f"speed must be a positive number, got {speed}")
    ts = _time_grid(duration, dt)
    rng = np.random.default_rng(seed)
    omega = 2 * np.pi * speed / duration
    q, qd, qdd = _references(info, ts, rng, (int(count), info.dof, int(harmonics)), omega, speed, region)
    return np.asarray(q), np.asarray(qd), np.asarray(qdd)


def _driven(system, ts, rng, B, L, omega, settings, progress) -> dict:
    """Forward simulation under random Fourier-series torques on the actuated joints only."""
    info = system.info
    n = info.dof
    actuated = np.asarray(info.actuated, dtype=bool)
    lo, hi = position_ranges(info)
    vmax = velocity_ranges(info)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    # Amplitude from the joint's own inertia: a torque A cos(w t) on an inertia m moves the
    # joint by A / (m w^2) at speed A / (m w); aim at a quarter of the position range and
    # half the speed range (capped at half the torque limit). Cosines only, so that the
    # velocity of a free actuated joint has no drift.
    inertia = np.diagonal(np.asarray(batched(system).mass_matrix(jnp.asarray(centre))))
    amp = 0.5 * inertia * np.minimum(vmax * omega, 0.5 * half * omega**2)
    if info.torque_limits is not None:
        limit = np.asarray(info.torque_limits, float)
        amp = np.where(np.isfinite(limit) & (limit > 0), np.minimum(amp, 0.5 * limit), amp)
    amp = np.where(actuated, amp, 0.0)
    a = rng.standard_normal((B, n, L)) / np.arange(1, L + 1)  # falling spectrum: smooth torques
    wl = omega * np.arange(1, L + 1)
    u = np.einsum("tl,bnl->btn", np.cos(ts[:, None] * wl), a)
    u = u / np.max(np.abs(u), axis=1, keepdims=True) * amp * rng.uniform(0.5, 1.0, size=(B, 1, n))
    q0 = centre + rng.uniform(-0.5, 0.5, size=(B, n)) * half
    # actuated joints start at rest (their motion comes from the torque); the others anywhere
    qd0 = np.where(actuated, 0.0, rng.uniform(-0.5, 0.5, size=(B, n)) * vmax)
    _say(progress, f"simulating {B} torque-driven rollouts (under-actuated)")
    # The torque samples are linearly interpolated between samples by simulate; the
    # recorded qdd is forward dynamics at exactly the recorded tau, so tau = ID(q, qd, qdd).
    r = simulate(system, q0, qd0, ts, u, rtol=1e-10, atol=1e-10)
    out = _stack(ts, r.q, r.qd, r.qdd, u)
    out["settings"] = dict(
        settings, driven="random cosine-series torques on actuated joints", torque_amplitude=amp
    )
    return out


# --------------------------------------------------------------------------------------
# Characters drawn by a two-link arm
# --------------------------------------------------------------------------------------


def _glyph_outline(letter: str, points: int = 512) -> np.ndarray:
    """The longest closed outline of ``letter`` (DejaVu Sans, 1 em), resampled to
    ``points`` points equally spaced by arc length, ``(points, 2)``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), letter, size=1.0, prop=FontProperties(family="DejaVu Sans"))
    outlines, current = [], []
    for segment, code in path.iter_bezier():
        if code == Path.MOVETO:
            if len(current) > 1:
                outlines.append(np.concatenate(current))
            current = [segment.control_points[:1]]
            continue
        # evaluate each Bezier piece densely (the glyph's quadratic/cubic curves)
        current.append(segment(np.linspace(0.0, 1.0, 17)[1:]))
    if len(current) > 1:
        outlines.append(np.concatenate(current))
    if not outlines:
        raise LagraxError(f"no outline for character {letter!r}")

    def length(p):
        return np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1))

    outline = max(outlines, key=length)
    if np.linalg.norm(outline[0] - outline[-1]) > 1e-9:
        outline = np.vstack([outline, outline[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(outline, axis=0), axis=1))])
    keep = np.concatenate([[True], np.diff(arc) > 1e-12])
    outline, arc = outline[keep], arc[keep]
    s = np.linspace(0.0, arc[-1], points, endpoint=False)
    return np.stack([np.interp(s, arc, outline[:, 0]), np.interp(s, arc, outline[:, 1])], axis=1)


def _outline_fourier(outline: np.ndarray, harmonics: int) -> np.ndarray:
    """Smoothed periodic Fourier coefficients ``(2, 2 harmonics + 1)`` of a closed outline.

    Layout per coordinate: ``[c0, a_1..a_K, b_1..b_K]`` for ``c0 + sum a_k cos(2 pi k s) +
    b_k sin(2 pi k s)``, ``s`` in ``[0, 1)``. A Gaussian taper on the harmonics rounds
    the glyph's corners without Gibbs ringing, so accelerations stay moderate.
    """
    M = outline.shape[0]
    F = np.fft.rfft(outline, axis=0) / M  # (M//2+1, 2)
    k = np.arange(1, harmonics + 1)
    taper = np.exp(-0.5 * (k / (harmonics / 2.0)) ** 2)
    a = 2 * F[1 : harmonics + 1].real * taper[:, None]
    b = -2 * F[1 : harmonics + 1].imag * taper[:, None]
    return np.concatenate([F[:1].real, a, b], axis=0).T  # (2, 2K+1)


def _outline_point(coef: Float[Array, "2 m"], s: Float[Array, ""]) -> Float[Array, " 2"]:
    K = (coef.shape[1] - 1) // 2
    k = jnp.arange(1, K + 1)
    basis = jnp.concatenate([jnp.ones(1), jnp.cos(2 * jnp.pi * k * s), jnp.sin(2 * jnp.pi * k * s)])
    return coef @ basis


def _min_jerk(tau: Float[Array, ""]) -> Float[Array, ""]:
    # 10 t^3 - 15 t^4 + 6 t^5: zero velocity and acceleration at both ends (Flash & Hogan 1985)
    tau = jnp.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def _check_character_args(system, letters: str, trajectories: int | None) -> list[str]:
    """The letter drawn by each trajectory, or a LagraxError naming the bad argument."""
    if not system.provides("inverse_kinematics"):
        raise LagraxError(
            f"kind 'characters' needs a planar two-link arm with inverse_kinematics (system "
            f"'two_link_arm'); {system.info.name!r} is not one"
        )
    bad = sorted({c for c in letters if c not in LETTERS})
    if not letters or bad:
        raise LagraxError(f"letters must be lowercase a-z; got {letters!r}")
    B = len(letters) if trajectories is None else int(trajectories)
    if B < 1:
        raise LagraxError(f"trajectories must be at least 1, got {trajectories}")
    return [letters[i % len(letters)] for i in range(B)]


def _letter_layout(system, drawn, rng, harmonics, seconds_per_em, duration, dt) -> tuple[list, float]:
    """Per letter: ``(Fourier coefficients, duration, rotation-and-scale, offset)`` in the
    arm's workspace, and the metres per em (see :func:`characters`)."""
    l1, l2 = float(system.l1), float(system.l2)
    r_lo, r_hi = abs(l1 - l2), l1 + l2
    em = 0.35 * (r_hi - r_lo)  # metres per em; keeps the letter box well inside the annulus
    centre = np.array([(r_lo + r_hi) / 2, 0.0])
    outlines = {c: _glyph_outline(c) for c in sorted(set(drawn))}
    layout = []
    for c in drawn:
        coef = _outline_fourier(outlines[c], harmonics)
        length = np.sum(np.linalg.norm(np.diff(outlines[c], axis=0, append=outlines[c][:1]), axis=1))
        coef[:, 0] = 0.0  # centre the letter on its mean point
        T = duration if duration is not None else float(np.clip(seconds_per_em * length, 3.0, 10.0))
        T = max(2, int(round(T / dt))) * dt  # a whole number of samples: the last one is at rest
        angle = rng.uniform(-0.15, 0.15)
        size = em * rng.uniform(0.85, 1.0)
        rot = size * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        offset = centre + rng.uniform(-0.03, 0.03, size=2) * (r_hi - r_lo)
        layout.append((coef, T, rot, offset))
    return layout, em


@eqx.filter_jit
def _drawing_states(ik: Callable, coef, T, rot, off, t):
    """``q, qd, qdd`` per sample of the arm drawing outlines ``coef`` (exact time
    derivatives of inverse kinematics along the minimum-jerk path, by forward-mode AD)."""

    def one(coef, T, rot, off, t):
        f = lambda t: ik(off + rot @ _outline_point(coef, _min_jerk(t / T)))  # noqa: E731
        df = lambda t: jax.jvp(f, (t,), (jnp.ones_like(t),))[1]  # noqa: E731
        q, qd = jax.jvp(f, (t,), (jnp.ones_like(t),))
        qdd = jax.jvp(df, (t,), (jnp.ones_like(t),))[1]
        return q, qd, qdd

    return jax.vmap(one)(coef, T, rot, off, t)


def characters(
    system,
    letters: str = LETTERS,
    trajectories: int | None = None,
    duration: float | None = None,
    dt: float = 0.01,
    seed: int = 0,
    harmonics: int = 16,
    seconds_per_em: float = 2.5,
    elbow=None,
    progress: Progress = None,
) -> dict:
    """A two-link arm drawing lowercase letters; returns flat sample arrays and labels.

    Each letter's longest glyph outline (DejaVu Sans) is resampled by arc length and
    fitted by a smoothed periodic Fourier series (``harmonics`` harmonics, Gaussian
    taper), scaled (1 em -> 35 % of the reachable annulus' width) and placed at the
    middle of the annulus ``|l1 - l2| < r < l1 + l2`` on the +x axis of the arm's
    frame, with a small random offset, rotation and size change per trajectory. The
    outline is traversed once with a minimum-jerk profile over ``duration`` seconds
    (default ``seconds_per_em`` x the outline length in em, within [3, 10] s), so the
    arm starts and ends at rest. ``q`` comes from ``system.inverse_kinematics`` and
    ``qd, qdd`` are exact time derivatives of that composition (forward-mode AD, no
    finite differences); ``tau`` from inverse dynamics. ``trajectories`` (default
    ``len(letters)``) cycles through ``letters``.
    """
    letters = "".join(letters)
    drawn = _check_character_args(system, letters, trajectories)
    rng = np.random.default_rng(seed)
    _say(progress, "fitting glyph outlines")
    layout, em = _letter_layout(system, drawn, rng, harmonics, seconds_per_em, duration, dt)
    grids = [_time_grid(T, dt) for _, T, _, _ in layout]
    traj = np.concatenate([np.full(len(g), i, np.int64) for i, g in enumerate(grids)])
    per_sample = [np.stack([np.asarray(part[k]) for part in layout])[traj] for k in range(4)]
    ik = (
        system.inverse_kinematics
        if elbow is None
        else functools.partial(system.inverse_kinematics, elbow=elbow)
    )
    _say(progress, f"inverse kinematics of {len(drawn)} letters, {len(traj)} samples")
    q, qd, qdd = (np.array(x) for x in _drawing_states(ik, *per_sample, np.concatenate(grids)))
    if not np.all(np.isfinite(q)):
        raise LagraxError("inverse kinematics failed for some character points (outside the workspace?)")
    # angles from arctan2 may wrap at +-pi; unwrap within each trajectory (qd, qdd are unaffected)
    for i in range(len(drawn)):
        q[traj == i] = np.unwrap(q[traj == i], axis=0)
    _say(progress, "inverse dynamics")
    tau = np.asarray(batched(system).inverse_dynamics(q, qd, qdd))
    settings = dict(
        letters=letters,
        harmonics=harmonics,
        seconds_per_em=seconds_per_em,
        elbow=elbow,
        font="DejaVu Sans",
        metres_per_em=em,
        durations=[T for _, T, _, _ in layout],
    )
    return dict(
        t=np.concatenate(grids),
        q=q,
        qd=qd,
        qdd=qdd,
        trajectory=traj,
        tau=tau,
        labels=drawn,
        settings=settings,
    )


# --------------------------------------------------------------------------------------
# Ground truth, noise and the entry point
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


MEASURABLE = ("q", "qd", "qdd", "tau")


def measured_signals(measured: str | Sequence[str] | None = "all") -> tuple[str, ...]:
    """The signals a robot logs, from ``"all"`` (default) or names like ``"q,tau"``.

    Each of ``q, qd, qdd, tau`` may be named; ``q`` and ``tau`` must be (the estimates come
    from ``q``, and ``tau`` is what the drives log). Returned in the order of ``MEASURABLE``.
    """
    if measured is None or (isinstance(measured, str) and measured.strip().lower() == "all"):
        return MEASURABLE
    items = measured.split(",") if isinstance(measured, str) else [str(x) for x in measured]
    names = [x.strip() for x in items if x.strip()]
    for name in names:
        if name not in MEASURABLE:
            raise UnknownNameError.for_name("measured signal", name, MEASURABLE + ("all",))
    missing = [x for x in ("q", "tau") if x not in names]
    if missing:
        raise LagraxError(
            f"measured signals must include q and tau (got {', '.join(names) or 'none'}): the signals not "
            "measured are estimated from q, and tau is what the drives log"
        )
    return tuple(x for x in MEASURABLE if x in names)


def _check_timing(trajectories, duration, dt) -> None:
    """A positive whole number of trajectories, and a positive finite duration and dt."""
    if trajectories is not None and (isinstance(trajectories, bool) or int(trajectories) != trajectories):
        raise LagraxError(f"trajectories must be a whole number, got {trajectories!r}")
    if trajectories is not None and trajectories < 1:
        raise LagraxError(f"trajectories must be at least 1, got {trajectories}")
    for name, value in (("duration", duration), ("dt", dt)):
        if value is None:
            continue
        if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
            raise LagraxError(f"{name} must be a positive finite number of seconds, got {value!r}")
    if duration is not None and duration < dt:
        raise LagraxError(f"duration ({duration} s) is shorter than one sample period dt ({dt} s)")


def _sample_period(dt: float | None, rate: float | None, default: float) -> float:
    """The sample period from ``dt`` [s] or ``rate`` [Hz] (not both), else the kind's default."""
    if dt is not None and rate is not None:
        raise LagraxError(f"give the sample period dt or the sample rate, not both (dt={dt}, rate={rate})")
    if rate is None:
        return default if dt is None else dt
    if not (np.isfinite(rate) and rate > 0):
        raise LagraxError(f"rate must be a positive number of samples per second, got {rate}")
    return 1.0 / rate


def _sensors(noise, q_noise, tau_noise, measured, window, polyorder, kind: str = "") -> dict:
    """The checked sensor settings (recorded in the metadata under ``"sensors"``)."""
    levels = dict(noise=noise, q_noise=noise if q_noise is None else q_noise)
    levels["tau_noise"] = noise if tau_noise is None else tau_noise
    for name, value in levels.items():
        if not (isinstance(value, numbers.Real) and np.isfinite(value) and value >= 0):
            raise LagraxError(f"{name} must be a non-negative number, got {value!r}")
    signals = measured_signals(measured)
    if kind == "states" and len(signals) < len(MEASURABLE):
        raise LagraxError(
            "kind 'states' has no time axis to differentiate along: every signal must be measured"
        )
    estimated = [x for x in MEASURABLE if x not in signals]
    if estimated and not (int(window) == window and window % 2 == 1 and 0 <= polyorder < window):
        raise LagraxError(
            f"the Savitzky-Golay window must be an odd number of samples larger than polyorder; got "
            f"window={window}, polyorder={polyorder}"
        )
    derivatives = dict(method="savgol", window=int(window), polyorder=int(polyorder)) if estimated else None
    return dict(
        measured=list(signals),
        estimated=estimated,
        q_noise=float(levels["q_noise"]),
        tau_noise=float(levels["tau_noise"]),
        derivatives=derivatives,
        ground_truth="noise-free, from the true q, qd, qdd",
    )


def _measure(raw: dict, sensors: dict, seed: int, dt: float) -> None:
    """Add the sensor noise to ``raw``'s ``q`` and ``tau`` and re-estimate what is not measured.

    Noise comes from ``default_rng([seed, 1])``, ``q`` first, then ``tau``. ``qd, qdd`` not
    measured become Savitzky-Golay derivatives of the noisy ``q``, per trajectory.
    """
    rng = np.random.default_rng([seed, 1])
    if sensors["q_noise"] > 0:
        raw["q"] = raw["q"] + sensors["q_noise"] * rng.standard_normal(raw["q"].shape)
    if sensors["tau_noise"] > 0 and raw.get("tau") is not None:
        raw["tau"] = raw["tau"] + sensors["tau_noise"] * rng.standard_normal(raw["tau"].shape)
    if sensors["estimated"]:
        d = sensors["derivatives"]
        qd, qdd = savgol_derivatives(dt, raw["q"], raw["trajectory"], d["window"], d["polyorder"])
        raw.update({k: v for k, v in (("qd", qd), ("qdd", qdd)) if k in sensors["estimated"]})


def _kind_call(kind: str, kind_options: dict) -> Callable:
    """The kind's generator, after checking ``kind_options`` against its parameters."""
    import inspect

    fn = {"passive": passive, "excitation": excitation, "characters": characters, "states": states}[kind]
    allowed = set(inspect.signature(fn).parameters) - {
        "system",
        "trajectories",
        "duration",
        "dt",
        "seed",
        "progress",
    }
    unknown = sorted(set(kind_options) - allowed)
    if unknown:
        raise UnknownNameError(f"unknown option(s) {unknown} for kind {kind!r}; allowed: {sorted(allowed)}")
    return fn


def _metadata(system, kind, raw, dt, duration, seed, noise, sensors, settings, start) -> dict:
    """What :func:`generate` records of a dataset's making."""
    return dict(
        system=system.info.to_json(),
        dt=dt,
        rate=1.0 / dt,
        kind=kind,
        trajectories=int(np.unique(raw["trajectory"]).size),
        duration=duration,
        seed=seed,
        noise=noise,
        sensors=sensors,
        generator=settings,
        lagrax_version=__version__,
        generation_seconds=round(time.perf_counter() - start, 3),
    )


def generate(
    system,
    kind: str = "excitation",
    trajectories: int | None = None,
    duration: float | None = None,
    dt: float | None = None,
    noise: float = 0.0,
    seed: int = 0,
    progress: Progress = None,
    *,
    rate: float | None = None,
    q_noise: float | None = None,
    tau_noise: float | None = None,
    measured: str | Sequence[str] = "all",
    savgol_window: int = 11,
    savgol_polyorder: int = 3,
    **kind_options,
) -> Dataset:
    """A :class:`~lagrax.data.dataset.Dataset` of ``system``'s motion, with ground truth.

    Args:
        system: a ground-truth :class:`~lagrax.systems.System`.
        kind: ``"passive"`` (:func:`passive`), ``"excitation"`` (:func:`excitation`),
            ``"characters"`` (:func:`characters`, two-link arm only) or ``"states"``
            (:func:`states`: independent states, ``samples=``, ``q_range=``, ``qd_range=``).
        trajectories, duration, dt: defaults per kind in ``DEFAULTS`` (``duration`` is
            per trajectory; for characters, per letter).
        noise: std of additive Gaussian sensor noise on both ``q`` and ``tau`` (shorthand
            for ``q_noise`` and ``tau_noise`` where those are not given).
        seed: seeds the initial states / coefficients / letter placement and the noise.
        progress: optional ``callback(message)`` called as stages begin.
        rate: the sample rate [Hz], instead of ``dt`` (``dt = 1 / rate``; not both).
        q_noise, tau_noise: std of the noise on ``q`` [rad or m] and ``tau`` [N m or N].
        measured: the signals a robot logs: ``"all"`` (default: ``qd, qdd`` are the exact
            ones, as a simulator knows them) or e.g. ``"q,tau"``: the others are then
            estimated from the noisy ``q`` by Savitzky-Golay differentiation per trajectory
            (``savgol_window`` samples, polynomials of degree ``savgol_polyorder``).
        kind_options: passed to the kind's function (e.g. ``harmonics=``, ``letters=``).

    ``tau`` is the system's inverse dynamics along the true motion: for a robot with
    friction and rotor inertia, the torque the drives deliver. Noise is added after the
    ground truth (``mass_matrix``, torque terms, energy, momentum) is computed from the
    true ``q, qd, qdd``: those fields stay clean, and the metadata records the sensors
    (``"sensors"``: measured and estimated signals, noise levels, derivative filter).
    """
    if kind not in KINDS:
        raise UnknownNameError.for_name("dataset kind", kind, KINDS)
    d_traj, d_dur, d_dt = DEFAULTS[kind]
    trajectories = d_traj if trajectories is None else trajectories
    duration = d_dur if duration is None else duration
    dt = _sample_period(dt, rate, d_dt)
    _check_timing(trajectories, duration, dt)
    sensors = _sensors(noise, q_noise, tau_noise, measured, savgol_window, savgol_polyorder)
    if kind == "states" and sensors["estimated"]:
        raise LagraxError(
            "kind 'states' has no time axis to differentiate along: every signal must be measured"
        )
    start = time.perf_counter()
    fn = _kind_call(kind, kind_options)
    args = dict(trajectories=trajectories, dt=dt, seed=seed, progress=progress, **kind_options)
    if kind != "characters" or duration is not None:
        args["duration"] = duration
    raw = fn(system, **args)
    settings = raw.pop("settings")
    labels = raw.pop("labels", None)
    _say(progress, "ground truth")
    truth = ground_truth(system, raw["q"], raw["qd"], raw["qdd"])
    _measure(raw, sensors, seed, dt)
    metadata = _metadata(system, kind, raw, dt, duration, seed, noise, sensors, settings, start)
    ds = Dataset(**raw, **truth, labels=labels, metadata=metadata)
    return ds.validate(source=f"generated {kind} data for {system.info.name}")


__all__ = [
    "DEFAULTS",
    "KINDS",
    "MEASURABLE",
    "characters",
    "excitation",
    "fourier_joint_trajectory",
    "generate",
    "ground_truth",
    "measured_signals",
    "passive",
    "joint_ranges",
    "states",
    "position_ranges",
    "reference_trajectories",
    "savgol_derivatives",
    "velocity_ranges",
]
