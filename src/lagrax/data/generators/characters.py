"""Characters: a planar two-link arm drawing lowercase letters (our own equivalent of the
DeLaN character dataset, Lutter et al., ICLR 2019).

Each letter's longest glyph outline (DejaVu Sans) is resampled by arc length and fitted
by a smoothed periodic Fourier series (Gaussian taper), scaled (1 em -> 35 % of the
reachable annulus' width) and placed at the middle of the annulus ``|l1 - l2| < r < l1 +
l2`` on the +x axis of the arm's frame, with a small random offset, rotation and size
change per trajectory. The outline is traversed once with a minimum-jerk profile, so the
arm starts and ends at rest. ``q`` comes from ``system.inverse_kinematics`` and ``qd,
qdd`` are exact time derivatives of that composition (forward-mode AD, no finite
differences); ``tau`` from inverse dynamics.

The raw arrays are ``t (N,)``, ``q, qd, qdd, tau (N, n)``, ``trajectory (N,)`` and
``labels``, the letter each trajectory draws; trajectories differ in length (each
letter's duration follows its outline). This module adds neither ground truth nor
sensor noise (:func:`lagrax.data.generators.generate` does).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.core.errors import LagraxError
from lagrax.data.generators.common import Progress, check_timing, say, time_grid
from lagrax.systems.batching import batched

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclasses.dataclass(frozen=True)
class CharacterSettings:
    """How the letters are drawn.

    ``trajectories`` (default ``len(letters)``) cycles through ``letters`` (lowercase a-z),
    each drawn over ``duration`` seconds (default ``seconds_per_em`` x the outline length
    in em, within [3, 10] s) and sampled every ``dt`` seconds; ``harmonics`` harmonics fit
    each outline; ``elbow`` picks the inverse kinematics' branch (the system's default
    when None).
    """

    letters: str = LETTERS
    trajectories: int | None = None
    duration: float | None = None
    dt: float = 0.01
    harmonics: int = 16
    seconds_per_em: float = 2.5
    elbow: Any = None

    TIME_AXIS: ClassVar[bool] = True  # samples lie on a time grid (derivatives can be estimated)

    def __post_init__(self):
        letters = "".join(self.letters)
        object.__setattr__(self, "letters", letters)
        check_timing(self.trajectories, self.duration, self.dt)
        bad = sorted({c for c in letters if c not in LETTERS})
        if not letters or bad:
            raise LagraxError(f"letters must be lowercase a-z; got {letters!r}")

    def drawn(self) -> list[str]:
        """The letter drawn by each trajectory."""
        count = len(self.letters) if self.trajectories is None else int(self.trajectories)
        return [self.letters[i % len(self.letters)] for i in range(count)]


def simulate(system, settings: CharacterSettings, seed: int = 0, progress: Progress = None) -> dict:
    """The raw arrays of ``system`` drawing ``settings.letters`` (see the module docstring);
    ``"labels"`` the letter of each trajectory, and under ``"settings"`` the letters, fit,
    font, scale and each letter's duration."""
    if not system.provides("inverse_kinematics"):
        raise LagraxError(
            f"kind 'characters' needs a planar two-link arm with inverse_kinematics (system "
            f"'two_link_arm'); {system.info.name!r} is not one"
        )
    s, drawn = settings, settings.drawn()
    rng = np.random.default_rng(seed)
    say(progress, "fitting glyph outlines")
    layout, em = _letter_layout(system, drawn, rng, s.harmonics, s.seconds_per_em, s.duration, s.dt)
    grids = [time_grid(T, s.dt) for _, T, _, _ in layout]
    traj = np.concatenate([np.full(len(g), i, np.int64) for i, g in enumerate(grids)])
    ik = system.inverse_kinematics
    if s.elbow is not None:
        ik = functools.partial(system.inverse_kinematics, elbow=s.elbow)
    say(progress, f"inverse kinematics of {len(drawn)} letters, {len(traj)} samples")
    q, qd, qdd = _draw(ik, layout, grids, traj)
    say(progress, "inverse dynamics")
    tau = np.asarray(batched(system).inverse_dynamics(q, qd, qdd))
    record = dict(
        letters=s.letters,
        harmonics=s.harmonics,
        seconds_per_em=s.seconds_per_em,
        elbow=s.elbow,
        font="DejaVu Sans",
        metres_per_em=em,
        durations=[T for _, T, _, _ in layout],
    )
    t = np.concatenate(grids)
    return dict(t=t, q=q, qd=qd, qdd=qdd, trajectory=traj, tau=tau, labels=drawn, settings=record)


def _draw(ik: Callable, layout: list, grids: list, traj: np.ndarray):
    """``q, qd, qdd (N, n)`` of the arm drawing each letter of ``layout`` on its time grid;
    ``q`` unwrapped within each trajectory."""
    per_sample = [np.stack([np.asarray(part[k]) for part in layout])[traj] for k in range(4)]
    q, qd, qdd = (np.array(x) for x in _drawing_states(ik, *per_sample, np.concatenate(grids)))
    if not np.all(np.isfinite(q)):
        raise LagraxError("inverse kinematics failed for some character points (outside the workspace?)")
    # angles from arctan2 may wrap at +-pi; unwrap within each trajectory (qd, qdd are unaffected)
    for i in range(len(layout)):
        q[traj == i] = np.unwrap(q[traj == i], axis=0)
    return q, qd, qdd


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


def _letter_layout(system, drawn, rng, harmonics, seconds_per_em, duration, dt) -> tuple[list, float]:
    """Per letter: ``(Fourier coefficients, duration, rotation-and-scale, offset)`` in the
    arm's workspace, and the metres per em (see :class:`CharacterSettings`)."""
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


__all__ = ["LETTERS", "CharacterSettings", "simulate"]
