"""Closed-loop tracking control: a plant, a controller and a model inside one ``lax.scan``.

The *plant* is any :class:`~lagrax.systems.System` (the ground truth: a Pinocchio or
MuJoCo robot, a textbook arm), integrated by RK4 under zero-order-hold torques with
``substeps`` steps per control period. Each tick the *controller* reads the plant's
state (plus optional Gaussian measurement noise) and asks a *model* (any System: a
trained DeLaN, the MLP baseline, the truth itself) for its torques. With
``e = q_d - q`` and ``ed = qd_d - qd``:

* ``pd``: ``tau = Kp e + Kd ed`` (the model is not used);
* ``feedforward-pd``: ``tau = ID(q_d, qd_d, qdd_d) + Kp e + Kd ed``, the model's
  inverse dynamics along the reference;
* ``computed-torque``: ``tau = ID(q, qd, qdd_d + Kp e + Kd ed)``
  ``= M(q) (qdd_d + Kp e + Kd ed) + c(q, qd) + g(q) (+ friction)``.

Torques are clipped to ``torque_limit`` when one is given. The per-sample functions
(:func:`controller_torque`, :func:`plant_step`, :func:`closed_loop`) are the API: one
reference at a time, pure, jittable; :func:`track` is the checked, batched edge (a
``vmap`` over references, one compiled program).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from lagrax.core.errors import LagraxError, OutOfRangeError, ShapeError
from lagrax.core.options import Option
from lagrax.systems import System
from lagrax.systems.rollout import rk4_step

Vec = Float[Array, " n"]


class Controller(Option):
    """The control law (see the module docstring)."""

    PD = "pd"
    FEEDFORWARD_PD = "feedforward-pd"
    COMPUTED_TORQUE = "computed-torque"

    @classmethod
    def label(cls) -> str:
        return "controller"


class Gains(eqx.Module):
    """Proportional and derivative gains per joint (``kp``, ``kd``: ``(n,)``)."""

    kp: Vec
    kd: Vec

    @classmethod
    def make(cls, dof: int, kp, kd) -> Gains:
        """Gains for ``dof`` joints from one number each or one per joint; a
        :class:`ShapeError` names a gain of the wrong size, an :class:`OutOfRangeError`
        a negative or non-finite one."""
        out = []
        for name, value in (("kp", kp), ("kd", kd)):
            a = np.asarray(value, dtype=np.float64)
            if a.ndim == 0:
                a = np.full(dof, float(a))
            if a.shape != (dof,):
                raise ShapeError(f"controller gain {name} has {a.size} values, the robot has {dof} joints")
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise OutOfRangeError(f"controller gain {name} must be finite and >= 0, got {a.tolist()}")
            out.append(jnp.asarray(a))
        return cls(*out)

    @classmethod
    def critical(cls, dof: int, bandwidth: float = 10.0) -> Gains:
        """``Kp = w^2``, ``Kd = 2 w`` per joint: the error dynamics of computed torque with a
        perfect model are critically damped at ``bandwidth`` rad/s."""
        return cls.make(dof, bandwidth**2, 2.0 * bandwidth)


# The automatic gains: a joint's feedback reaches its torque limit at this position error
# [rad or m], and no joint's bandwidth exceeds this fraction of the control rate [rad/s per Hz].
SATURATION_ERROR = 0.05
MAX_BANDWIDTH_PER_HZ = 0.05
FALLBACK_BANDWIDTH = 10.0  # rad/s, for a system without torque limits


def effective_inertia(plant: System, q: Vec) -> np.ndarray:
    """``1 / (M(q)^-1)_jj`` per joint: the inertia joint ``j`` feels with the others free."""
    M = np.asarray(plant.mass_matrix(jnp.asarray(q)), dtype=np.float64)
    return 1.0 / np.diagonal(np.linalg.solve(M, np.eye(M.shape[0])))


def automatic_bandwidths(plant: System, q: Vec, rate: float = 1000.0) -> np.ndarray:
    """Each joint's bandwidth [rad/s] from the robot itself: the one whose PD gain
    ``Kp_j = I_j w_j^2`` (``I_j`` the :func:`effective_inertia` at ``q``) reaches the
    joint's torque limit at a :data:`SATURATION_ERROR` error, at most
    :data:`MAX_BANDWIDTH_PER_HZ` times the control ``rate``. A system without torque
    limits gets :data:`FALLBACK_BANDWIDTH` on every joint."""
    n = plant.info.dof
    limits = plant.info.torque_limits
    if limits is None:
        return np.full(n, FALLBACK_BANDWIDTH)
    w = np.sqrt(np.asarray(limits, float) / (SATURATION_ERROR * effective_inertia(plant, q)))
    return np.minimum(w, MAX_BANDWIDTH_PER_HZ * rate)


def default_gains(
    controller: Controller, plant: System, q: Vec, bandwidth: float | None = None, rate: float = 1000.0
) -> Gains:
    """Critically damped gains at ``bandwidth`` rad/s, or (``None``) at the robot's own
    :func:`automatic_bandwidths` for a loop at ``rate`` Hz.

    Computed torque multiplies its feedback by ``M(q)`` itself, so its gains are
    accelerations (:meth:`Gains.critical`); with automatic bandwidths it takes the
    slowest joint's. PD and feed-forward PD apply theirs as torques, so joint ``j``'s
    gains are scaled by its effective inertia ``1 / (M^-1)_jj`` at ``q`` (the
    reference's start): the closed-loop matrix ``M^-1 K`` then has a unit-scaled
    diagonal and eigenvalues at most ``n w^2``, which the loop follows. Scaled by
    ``M_jj`` instead, the light wrist of a Panda under its heavy shoulder gives
    eigenvalues some 300 times larger, and the loop diverges."""
    n = plant.info.dof
    if bandwidth is not None:
        w = np.full(n, float(bandwidth))
    else:
        w = automatic_bandwidths(plant, q, rate)
    if controller is Controller.COMPUTED_TORQUE:
        return Gains.critical(n, float(np.min(w)))
    inertia = effective_inertia(plant, q)
    return Gains.make(n, inertia * w**2, inertia * 2.0 * w)


class Tick(NamedTuple):
    """One control period's reference ``q_d, qd_d, qdd_d`` (each ``(n,)``)."""

    q: Vec
    qd: Vec
    qdd: Vec


# Why a closed loop stopped (a :class:`Trace`'s ``fault``); 0: it runs.
FAULTS = {1: "the controller's torque is not finite", 2: "the plant's state is not finite"}


class Trace(NamedTuple):
    """A closed-loop run: plant ``q, qd`` at the start of every tick and the applied ``tau``,
    each ``(T, n)``, and ``fault`` ``(T,)``: 0 while the loop runs, else the code in
    :data:`FAULTS` of what stopped it. From its first non-finite torque or state on, a
    loop holds its last finite state and applies no torque (a leading batch axis from
    :func:`track`)."""

    q: Array
    qd: Array
    tau: Array
    fault: Array


def guarded_step(step, q: Vec, qd: Vec, tau: Vec, fault: Array):
    """``step(tau) -> (q, qd)`` unless the loop has stopped: a non-finite ``tau`` (fault 1)
    or next state (fault 2) stops it, and a stopped loop keeps ``(q, qd)`` and applies no
    torque. Returns ``(q, qd, fault after the step, fault at this tick, tau applied)``."""
    fault = jnp.where((fault == 0) & ~jnp.all(jnp.isfinite(tau)), 1, fault)
    tau = jnp.where(fault == 0, tau, jnp.zeros_like(tau))
    q1, qd1 = step(tau)
    broke = (fault == 0) & ~(jnp.all(jnp.isfinite(q1)) & jnp.all(jnp.isfinite(qd1)))
    after = jnp.where(broke, 2, fault)
    hold = after != 0
    return jnp.where(hold, q, q1), jnp.where(hold, qd, qd1), after, fault, tau


def controller_torque(
    controller: Controller, model: System | None, gains: Gains, q: Vec, qd: Vec, ref: Tick
) -> Vec:
    """The control law's torque at measured ``(q, qd)`` for reference ``ref`` (one tick)."""
    e, ed = ref.q - q, ref.qd - qd
    feedback = gains.kp * e + gains.kd * ed
    if controller is Controller.PD or model is None:
        return feedback
    if controller is Controller.FEEDFORWARD_PD:
        return model.inverse_dynamics(ref.q, ref.qd, ref.qdd) + feedback
    return model.inverse_dynamics(q, qd, ref.qdd + feedback)


def plant_step(plant: System, q: Vec, qd: Vec, tau: Vec, dt: float, substeps: int = 1) -> tuple[Vec, Vec]:
    """The plant's state after ``dt`` under constant ``tau``: ``substeps`` steps of
    :func:`~lagrax.systems.rollout.rk4_step` (zero-order hold: ``tau`` over the whole step)."""
    h = dt / substeps

    def step(state, _):
        return rk4_step(plant, state, (tau, tau, tau), h), None

    (q, qd), _ = jax.lax.scan(step, (q, qd), None, length=substeps)
    return q, qd


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """How the loop runs: ``rate`` [Hz], plant RK4 ``substeps`` per tick, optional
    ``torque_limit`` (per joint, ``|tau| <= limit``) and measurement noise standard
    deviations ``q_noise`` [rad or m] and ``qd_noise`` (per second)."""

    rate: float = 1000.0
    substeps: int = 1
    torque_limit: tuple[float, ...] | None = None
    q_noise: float = 0.0
    qd_noise: float = 0.0

    def __post_init__(self):
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise OutOfRangeError(f"control rate must be a positive number of Hz, got {self.rate}")
        if isinstance(self.substeps, bool) or int(self.substeps) != self.substeps or self.substeps < 1:
            raise OutOfRangeError(f"substeps must be a whole number >= 1, got {self.substeps}")
        if min(self.q_noise, self.qd_noise) < 0 or not np.isfinite(self.q_noise + self.qd_noise):
            raise OutOfRangeError(f"noise must be finite and >= 0, got {self.q_noise}, {self.qd_noise}")

    @property
    def dt(self) -> float:
        return 1.0 / self.rate


def apply_limit(tau: Vec, limit: Vec | None) -> Vec:
    """``tau`` clipped to ``[-limit, limit]`` per joint (unchanged for ``None``)."""
    return tau if limit is None else jnp.clip(tau, -limit, limit)


def measure(q: Vec, qd: Vec, settings: LoopSettings, key: PRNGKeyArray) -> tuple[Vec, Vec]:
    """``(q, qd)`` as a sensor reads them: plus Gaussian noise of the settings' size."""
    kq, kv = jax.random.split(key)
    q = q + settings.q_noise * jax.random.normal(kq, q.shape, q.dtype)
    return q, qd + settings.qd_noise * jax.random.normal(kv, qd.shape, qd.dtype)


class PlantChange(NamedTuple):
    """From tick ``tick`` on, the plant is ``plant`` (e.g. with a payload): a system with
    the same structure as the first, whose arrays replace the first's."""

    plant: System
    tick: int


def plant_at(plant: System, change: PlantChange | None, t: Array) -> System:
    """The plant in effect at tick ``t``."""
    if change is None:
        return plant
    before, static = eqx.partition(plant, eqx.is_array)
    after = eqx.filter(change.plant, eqx.is_array)
    now = jax.tree_util.tree_map(lambda a, b: jnp.where(t >= change.tick, b, a), before, after)
    return eqx.combine(now, static)


def closed_loop(
    plant: System,
    model: System | None,
    controller: Controller,
    gains: Gains,
    reference: Tick,
    q0: Vec,
    qd0: Vec,
    settings: LoopSettings,
    key: PRNGKeyArray,
    change: PlantChange | None = None,
) -> Trace:
    """Track one ``reference`` (a :class:`Tick` of ``(T, n)`` arrays at the control rate)
    from ``(q0, qd0)``: one ``lax.scan`` over the ``T`` ticks (the plant changes as
    ``change`` says)."""
    limit = None if settings.torque_limit is None else jnp.asarray(settings.torque_limit, q0.dtype)

    def tick(state, xs):
        q, qd, fault = state
        ref, k, t = xs
        qm, qdm = measure(q, qd, settings, k)
        tau = apply_limit(controller_torque(controller, model, gains, qm, qdm, ref), limit)

        def step(u):
            return plant_step(plant_at(plant, change, t), q, qd, u, settings.dt, settings.substeps)

        q1, qd1, after, now, tau = guarded_step(step, q, qd, tau, fault)
        return (q1, qd1, after), Trace(q, qd, tau, now)

    T = reference.q.shape[0]
    start = (q0, qd0, jnp.zeros((), jnp.int32))
    _, trace = jax.lax.scan(tick, start, (reference, jax.random.split(key, T), jnp.arange(T)))
    return trace


# --------------------------------------------------------------------------------------
# The checked, batched edge
# --------------------------------------------------------------------------------------


def check_reference(info, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray, clip: bool = False) -> np.ndarray:
    """Refuse references ``(B, T, n)`` with the wrong number of joints, non-finite values,
    or positions outside the joint limits of ``info`` (with ``clip=True`` positions are
    clipped to the limits instead). Returns the (possibly clipped) positions."""
    for name, a in (("q", q), ("qd", qd), ("qdd", qdd)):
        if a.ndim != 3 or a.shape[-1] != info.dof:
            raise ShapeError(
                f"reference {name} has shape {a.shape}, expected (B, T, {info.dof}) for {info.name}"
            )
        if not np.all(np.isfinite(a)):
            raise LagraxError(f"reference {name} holds NaN or inf")
    if info.position_limits is None:
        return q
    lo, hi = (np.asarray(x, float) for x in zip(*info.position_limits))
    if clip:
        return np.clip(q, lo, hi)
    outside = (q < lo) | (q > hi)
    if np.any(outside):
        b, t, j = np.argwhere(outside)[0]
        raise OutOfRangeError(
            f"the reference leaves the joint limits: {info.joint_names[j]} = {q[b, t, j]:.4g} at sample {t} "
            f"of trajectory {b}, limits [{lo[j]:.4g}, {hi[j]:.4g}] (clip it, or use another trajectory)"
        )
    return q


def check_model_matches(model: System | None, plant: System) -> None:
    """A model trained for another robot, or with another joint order, is refused."""
    if model is None:
        return
    mine, theirs = model.info, plant.info
    if mine.dof != theirs.dof:
        raise ShapeError(
            f"the model has {mine.dof} joints ({mine.name}), the robot {theirs.name} has {theirs.dof}"
        )
    if tuple(mine.joint_names) != tuple(theirs.joint_names):
        raise ShapeError(
            f"the model's joints {list(mine.joint_names)} are not the robot's {list(theirs.joint_names)} "
            f"({theirs.name}): trained for another robot, or with another joint order"
        )


def track(
    plant: System,
    model: System | None,
    controller: Controller | str,
    gains: Gains,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: LoopSettings | None = None,
    seed: int = 0,
    clip: bool = False,
    change: PlantChange | None = None,
) -> Trace:
    """Track every reference ``(q_d, qd_d, qdd_d)``, each ``(B, T, n)`` at the control rate,
    from its first state, in one jitted ``vmap`` of :func:`closed_loop`."""
    settings = settings or LoopSettings()
    controller = Controller.parse(controller)
    check_model_matches(model, plant)
    q, qd, qdd = (np.asarray(a, dtype=np.float64) for a in reference)
    q = check_reference(plant.info, q, qd, qdd, clip)
    if gains.kp.shape != (plant.info.dof,):
        raise ShapeError(
            f"controller gains have {gains.kp.shape[0]} values, the robot has {plant.info.dof} joints"
        )
    keys = jax.random.split(jax.random.PRNGKey(seed), q.shape[0])
    ref = Tick(jnp.asarray(q), jnp.asarray(qd), jnp.asarray(qdd))
    return _track_all(plant, model, controller, gains, ref, keys, settings, change)


@eqx.filter_jit
def _track_all(plant, model, controller, gains, ref: Tick, keys, settings, change) -> Trace:
    def one(r: Tick, key) -> Trace:
        return closed_loop(plant, model, controller, gains, r, r.q[0], r.qd[0], settings, key, change)

    return jax.vmap(one)(ref, keys)


def divergence(trace: Trace, dt: float) -> dict | None:
    """``None`` when every loop of ``trace`` ran to its end; else where the first one
    stopped: ``t`` [s], ``cause`` (from :data:`FAULTS`), ``reference`` (its index) and
    ``references`` (how many stopped)."""
    fault = np.asarray(trace.fault)
    fault = fault.reshape(-1, fault.shape[-1])
    bad = fault != 0
    if not bad.any():
        return None
    first = np.where(bad.any(axis=1), bad.argmax(axis=1), fault.shape[1])
    b = int(np.argmin(first))
    k = int(first[b])
    return dict(t=k * dt, cause=FAULTS[int(fault[b, k])], reference=b, references=int(bad.any(axis=1).sum()))


def describe_divergence(diverged: dict) -> str:
    """``"diverged at t = 1.23 s (the controller's torque is not finite)"``."""
    return f"diverged at t = {diverged['t']:.4g} s ({diverged['cause']})"


def tracking_metrics(trace: Trace, reference: tuple[np.ndarray, ...], dt: float) -> dict:
    """Per joint: position-tracking RMSE and max |error| over every tick and reference;
    torque effort (RMS torque) per joint and the mean squared torque summed over
    joints times the duration (``sum_j mean(tau_j^2) * T``). A run where a loop stopped
    (:func:`divergence`) has ``finite: False``, its ``diverged`` record and ``None`` for
    the error and effort numbers, which would not mean anything."""
    diverged = divergence(trace, dt)
    if diverged is not None:
        empty = dict.fromkeys(("rmse", "max_error", "rmse_all", "torque_rms", "effort"))
        return dict(empty, finite=False, diverged=diverged)
    e = np.asarray(reference[0]) - np.asarray(trace.q)
    tau = np.asarray(trace.tau)
    duration = tau.shape[-2] * dt
    return dict(
        rmse=np.sqrt(np.mean(e**2, axis=(0, 1))).tolist(),
        max_error=np.max(np.abs(e), axis=(0, 1)).tolist(),
        rmse_all=float(np.sqrt(np.mean(e**2))),
        torque_rms=np.sqrt(np.mean(tau**2, axis=(0, 1))).tolist(),
        effort=float(np.sum(np.mean(tau**2, axis=(0, 1))) * duration),
        finite=True,
        diverged=None,
    )


__all__ = [
    "FAULTS",
    "Controller",
    "Gains",
    "LoopSettings",
    "PlantChange",
    "Tick",
    "Trace",
    "apply_limit",
    "check_model_matches",
    "check_reference",
    "closed_loop",
    "controller_torque",
    "automatic_bandwidths",
    "default_gains",
    "effective_inertia",
    "describe_divergence",
    "divergence",
    "guarded_step",
    "measure",
    "plant_at",
    "plant_step",
    "track",
    "tracking_metrics",
]
