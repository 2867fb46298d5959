"""Energy-based swing-up and LQR balance of under-actuated systems, with any model's mechanics.

The controller of Lutter, Listmann and Peters, "Deep Lagrangian Networks for end-to-end
learning of energy-based control for under-actuated systems" (IROS 2019), built from
what every :class:`~lagrax.systems.System` with a Lagrangian gives (a textbook system,
a MuJoCo model or a trained DeLaN alike): ``T``, ``V``, ``M`` and ``c + g + friction``.
The only facts about a system it needs are which joint is driven and where "upright" and
"hanging" are (:data:`UPRIGHT`, :data:`HANGING`). With ``a`` the driven joint and ``u`` the others:

* **swing-up** (energy shaping, Astrom and Furuta, Automatica 2000, eq. 6, in the
  collocated form of Spong, IEEE CSM 1995): the energy of the unactuated part,
  ``E_u = T(q, qd_u) + V(q)`` (the driven joint's velocity set to zero), is steered to
  ``V(top)``. Under partial feedback linearisation (Spong 1995, eq. 12) the driven
  joint follows a commanded acceleration ``v`` and ``dE_u/dt ~ y v`` with
  ``y = -M_au qd_u``; so ``v = a_max tanh(-k (E_u - V_top) y / (dE y_0))`` (``dE`` the
  energy from bottom to top, ``y_0 = sqrt(2 dE M_au M_uu^-1 M_ua)`` at the bottom),
  minus a PD term that keeps the driven joint near its centre. The torque is the partial
  feedback linearisation
  ``tau_a = S v + h_a - M_au M_uu^-1 h_u``, ``S = M_aa - M_au M_uu^-1 M_ua``,
  ``h = c + g + friction = ID(q, qd, 0)``.
* **balance**: the discrete LQR (at the loop's rate, zero-order hold) of the model's
  linearisation at the top: ``jax.jacfwd`` of its forward dynamics (central
  differences for a system whose forward dynamics has no derivative rule: MuJoCo).
  The loop switches to it when every unactuated joint is within ``switch_angle`` of
  upright, and back to the swing-up only when one leaves ``2 switch_angle``.

The closed loop (:func:`swing_up_loop`) runs at ``rate`` Hz inside one ``lax.scan``, the
plant integrated by RK4 under zero-order hold, the torque clipped to its limit. A run
succeeds when every unactuated joint stays within ``tolerance`` of upright for the last
``hold`` seconds. A model without energies (the MLP baseline) cannot swing up: only its
linearisation balances (:func:`balance_law`).

Deliberately not here: a swing-up of several driven joints, state estimation (the loop
reads the plant's state), and position limits in the plant (they are reported).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.control.laws import guarded_step, plant_step
from lagrax.core.errors import LagraxError, OutOfRangeError, ShapeError
from lagrax.core.friction import JointFriction
from lagrax.systems import System

Vec = Float[Array, " n"]

#: Where each under-actuated system is upright: ``q`` at the top (the driven joint: its centre).
UPRIGHT: dict[str, tuple[float, ...]] = {
    "cartpole": (0.0, math.pi),
    "furuta": (0.0, math.pi),
    "inverted_double_pendulum": (0.0, 0.0, 0.0),
}
#: Where each hangs at rest: the second hinge of the double pendulum is relative to the first.
HANGING: dict[str, tuple[float, ...]] = {
    "cartpole": (0.0, 0.0),
    "furuta": (0.0, 0.0),
    "inverted_double_pendulum": (0.0, math.pi, 0.0),
}

#: Default limit of the driven joint's torque or force (``SwingUpSettings.torque_limit``).
TORQUE_LIMITS: dict[str, float] = {"cartpole": 10.0, "furuta": 0.1, "inverted_double_pendulum": 100.0}

#: The plants' friction (viscous ``d``, Coulomb ``c``, Stribeck ``s`` per joint) used by
#: :func:`with_plant_friction`: of the order of the Quanser manuals' viscous values and
#: MuJoCo's ``damping`` in ``inverted_double_pendulum.xml``, plus dry friction.
PLANT_FRICTION: dict[str, dict[str, tuple[float, ...]]] = {
    "cartpole": dict(viscous=(5.4, 0.0024), coulomb=(0.3, 0.002), stribeck=(0.2, 0.001)),
    "furuta": dict(viscous=(1.5e-3, 5e-5), coulomb=(2e-3, 5e-5), stribeck=(1e-3, 2e-5)),
    "inverted_double_pendulum": dict(
        viscous=(0.05, 0.05, 0.05), coulomb=(1.0, 0.01, 0.01), stribeck=(0.5, 0.005, 0.005)
    ),
}


class SwingUpError(LagraxError, ValueError):
    """A system or model the swing-up cannot control (fully actuated, unknown top, no energies)."""


@dataclasses.dataclass(frozen=True)
class SwingUpSettings:
    """How the swing-up runs.

    Attributes:
        rate: control rate [Hz]; the plant is integrated with ``substeps`` RK4 steps per tick.
        duration: seconds of each run.
        torque_limit: ``|tau_a| <=`` this; ``None``: :data:`TORQUE_LIMITS` or the system's own.
        energy_gain: ``k`` of the energy law (dimensionless).
        energy_margin: the law aims at ``V(top) + margin dE``: a model whose energies are a
            few per cent off (or a plant that differs from it) still carries the pendulum
            over the top, where the LQR catches it, instead of short of it.
        accel_fraction: ``a_max = accel_fraction * torque_limit / S(top)``.
        centre_frequency: ``w`` [rad/s] of the PD (``w^2``, ``2 w``) that keeps the driven joint centred.
        switch_angle: [rad] the LQR takes over within this of upright (every unactuated joint).
        tolerance: [rad] upright means every unactuated joint within this.
        hold: seconds at the end that a success stays upright.
    """

    rate: float = 500.0
    substeps: int = 2
    duration: float = 10.0
    torque_limit: float | None = None
    energy_gain: float = 30.0
    energy_margin: float = 0.1
    accel_fraction: float = 0.6
    centre_frequency: float = 2.0
    switch_angle: float = 0.35
    tolerance: float = 0.1
    hold: float = 2.0

    def __post_init__(self):
        for name in ("rate", "duration", "energy_gain", "accel_fraction", "switch_angle", "tolerance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise OutOfRangeError(f"swing-up {name} must be a positive number, got {value!r}")
        if not (isinstance(self.energy_margin, (int, float)) and 0 <= self.energy_margin < 1):
            raise OutOfRangeError(f"swing-up energy margin must be in [0, 1), got {self.energy_margin!r}")
        if not (0 <= self.hold < self.duration) or not (0 <= self.centre_frequency < math.inf):
            raise OutOfRangeError(f"swing-up hold must be in [0, duration), got {self.hold}")
        if self.torque_limit is not None and not (math.isfinite(self.torque_limit) and self.torque_limit > 0):
            raise OutOfRangeError(f"swing-up torque limit must be positive, got {self.torque_limit}")
        if isinstance(self.substeps, bool) or int(self.substeps) != self.substeps or self.substeps < 1:
            raise OutOfRangeError(f"substeps must be a whole number >= 1, got {self.substeps}")

    @property
    def dt(self) -> float:
        return 1.0 / self.rate

    @property
    def ticks(self) -> int:
        return int(round(self.duration * self.rate))


# --------------------------------------------------------------------------------------
# The system's facts: the driven joint and the top
# --------------------------------------------------------------------------------------


def check_swing_up_system(info) -> int:
    """The driven joint of an under-actuated system with a known top; a :class:`SwingUpError` else."""
    driven = [j for j, a in enumerate(info.actuated) if a]
    if len(driven) == info.dof:
        raise SwingUpError(
            f"the swing-up task needs an under-actuated system; every joint of {info.name} is actuated "
            f"(under-actuated systems: {', '.join(UPRIGHT)})"
        )
    if len(driven) != 1:
        raise SwingUpError(f"the swing-up drives one joint; {info.name} has {len(driven)} actuated joints")
    if info.name not in UPRIGHT:
        raise SwingUpError(
            f"no upright position is known for {info.name}; the swing-up knows {', '.join(UPRIGHT)}"
        )
    return driven[0]


def check_swing_up_model(model: System, plant: System, energies: bool = True) -> None:
    """A model of another system, or (``energies``) one without ``T``, ``V`` and ``M``, is refused."""
    mine, theirs = model.info, plant.info
    if mine.dof != theirs.dof or tuple(mine.joint_names) != tuple(theirs.joint_names):
        raise SwingUpError(
            f"the model was trained on {mine.name} ({', '.join(mine.joint_names)}), not on {theirs.name} "
            f"({', '.join(theirs.joint_names)}): a model of another system cannot swing it up"
        )
    if tuple(mine.actuated) != tuple(theirs.actuated):
        raise SwingUpError(
            f"the model's actuated joints {mine.actuated} are not {theirs.name}'s {theirs.actuated}"
        )
    needed = ("kinetic_energy", "potential_energy", "mass_matrix", "inverse_dynamics")
    missing = [q for q in needed if not model.provides(q)]
    if energies and missing:
        raise SwingUpError(
            f"energy control needs the model's energies and mass matrix; {type(model).__name__} "
            f"({mine.name}) cannot provide {', '.join(missing)} (use it for balance only)"
        )


def with_plant_friction(system: System, scale: float = 1.0) -> System:
    """``system`` with the viscous + Coulomb + Stribeck friction of :data:`PLANT_FRICTION`
    (times ``scale``), replacing its own."""
    table = PLANT_FRICTION.get(system.info.name)
    if table is None:
        raise SwingUpError(f"no plant friction is known for {system.info.name}")
    friction = JointFriction.make(system.dof, **{k: np.asarray(v) * scale for k, v in table.items()})
    return eqx.tree_at(lambda s: s.friction_model, system, friction, is_leaf=lambda x: x is None)


# --------------------------------------------------------------------------------------
# The law: per sample and pure
# --------------------------------------------------------------------------------------


class SwingUpLaw(eqx.Module):
    """A swing-up and balance controller for one model (built by :func:`swing_up_law`).

    Attributes:
        top: ``q`` upright ``(n,)``; ``revolute``: which joints' errors wrap (static).
        driven: the driven joint (static).
        lqr_gain: ``K`` ``(2 n,)``: ``tau_a = -K [q - top, qd]`` while balancing.
        energy_top, energy_scale: ``V(top)`` and ``dE = V(top) - V(bottom)`` of the model.
        coupling: ``y_0 = sqrt(2 dE M_au M_uu^-1 M_ua)`` at the bottom, the scale of ``y``.
        torque_limit, accel_limit, gains: see :class:`SwingUpSettings` (``kp``, ``kd``, ``k``).
        energy: whether the model has energies (else the law only balances).
    """

    top: Vec
    lqr_gain: Float[Array, " m"]
    energy_top: Array
    energy_scale: Array
    coupling: Array
    accel_limit: Array
    torque_limit: float = eqx.field(static=True)
    driven: int = eqx.field(static=True)
    revolute: tuple[bool, ...] = eqx.field(static=True)
    energy_gain: float = eqx.field(static=True)
    energy_margin: float = eqx.field(static=True)
    kp: float = eqx.field(static=True)
    kd: float = eqx.field(static=True)
    switch_angle: float = eqx.field(static=True)
    energy: bool = eqx.field(static=True)

    def error(self, q: Vec) -> Vec:
        """``q - top``, wrapped to ``(-pi, pi]`` on revolute joints."""
        e = q - self.top
        wrapped = jnp.mod(e + jnp.pi, 2 * jnp.pi) - jnp.pi
        return jnp.where(jnp.asarray(self.revolute), wrapped, e)

    @property
    def unactuated(self) -> np.ndarray:
        return np.array([j for j in range(len(self.revolute)) if j != self.driven])


def unactuated_energy(model: System, law: SwingUpLaw, q: Vec, qd: Vec) -> Array:
    """``E_u = T(q, qd with qd_a = 0) + V(q)``: the energy the swing-up shapes."""
    free = qd.at[law.driven].set(0.0)
    return model.kinetic_energy(q, free) + model.potential_energy(q)


def energy_torque(model: System, law: SwingUpLaw, q: Vec, qd: Vec) -> Array:
    """The swing-up's driven-joint torque (see the module docstring)."""
    a, u = law.driven, law.unactuated
    M = model.mass_matrix(q)
    h = model.inverse_dynamics(q, qd, jnp.zeros_like(qd))  # c + g + friction
    Muu, Mua, Mau = M[u][:, u], M[u, a], M[a, u]
    solve_u = jnp.linalg.solve(Muu, jnp.stack([Mua, h[u]], axis=1))
    schur = M[a, a] - Mau @ solve_u[:, 0]
    y = -(Mau @ qd[u])
    shortfall = (unactuated_energy(model, law, q, qd) - law.energy_top) / law.energy_scale - law.energy_margin
    v = law.accel_limit * jnp.tanh(-law.energy_gain * shortfall * y / law.coupling)
    v = v - law.kp * law.error(q)[a] - law.kd * qd[a]
    return schur * v + h[a] - Mau @ solve_u[:, 1]


def balance_torque(law: SwingUpLaw, q: Vec, qd: Vec) -> Array:
    """The LQR's driven-joint torque ``-K [q - top, qd]``."""
    return -law.lqr_gain @ jnp.concatenate([law.error(q), qd])


def swing_up_torque(model: System, law: SwingUpLaw, q: Vec, qd: Vec, balancing: Array) -> tuple[Vec, Array]:
    """The joint torques ``(n,)`` (zero on the unactuated joints) at ``(q, qd)``, and whether
    the loop balances from here (the switch with its hysteresis)."""
    far = jnp.max(jnp.abs(law.error(q)[law.unactuated]))
    balancing = jnp.where(balancing, far < 2 * law.switch_angle, far < law.switch_angle)
    if law.energy:
        ua = jnp.where(balancing, balance_torque(law, q, qd), energy_torque(model, law, q, qd))
    else:
        ua = jnp.where(balancing, balance_torque(law, q, qd), 0.0)
    ua = jnp.clip(ua, -law.torque_limit, law.torque_limit)
    return jnp.zeros_like(q).at[law.driven].set(ua), balancing


# --------------------------------------------------------------------------------------
# Setting a law up (host side): the linearisation and the Riccati equation
# --------------------------------------------------------------------------------------


#: [rad/s or m/s] the velocity at which the linearisation's velocity columns are taken
#: (``+-``, averaged): dry friction is a relay, and its slope at rest (``c / eps`` of the
#: smooth sign) is a damping the balancing loop never sees.
VELOCITY_PROBE = 0.5


def linearisation(model: System, top: np.ndarray, driven: int) -> tuple[np.ndarray, np.ndarray]:
    """``A (2n, 2n)``, ``B (2n, 1)`` of ``d[q, qd]/dt`` at ``(top, 0)`` under the driven
    joint's torque: ``jax.jacfwd`` of the model's forward dynamics (central differences
    where it has no derivative rule: MuJoCo's callbacks). The velocity columns are the
    mean of the Jacobians at ``qd = +-VELOCITY_PROBE`` (see :data:`VELOCITY_PROBE`)."""
    n = top.shape[0]
    e = np.zeros(n)
    e[driven] = 1.0

    def f(x, ua):
        q, qd = x[:n], x[n:]
        return jnp.concatenate([qd, model.forward_dynamics(q, qd, jnp.asarray(e) * ua)])

    x0 = np.concatenate([np.asarray(top, float), np.zeros(n)])
    probe = np.concatenate([np.zeros(n), np.full(n, VELOCITY_PROBE)])
    jacobians = []
    for x in (x0, x0 + probe, x0 - probe):
        try:
            A, B = jax.jacfwd(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(0.0))
            jacobians.append((np.array(A, float), np.array(B, float)[:, None]))
        except (TypeError, NotImplementedError, ValueError):
            jacobians.append(_central_differences(jax.jit(f), x, n))
    A, B = jacobians[0]
    A[:, n:] = 0.5 * (jacobians[1][0][:, n:] + jacobians[2][0][:, n:])
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise SwingUpError(f"the linearisation of {model.info.name}'s model at the top is not finite")
    return A, B


def _central_differences(f, x0: np.ndarray, n: int, h: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    A = np.zeros((2 * n, 2 * n))
    for i in range(2 * n):
        d = np.zeros(2 * n)
        d[i] = h
        A[:, i] = (np.asarray(f(x0 + d, 0.0)) - np.asarray(f(x0 - d, 0.0))) / (2 * h)
    B = (np.asarray(f(x0, h)) - np.asarray(f(x0, -h))) / (2 * h)
    return A, B[:, None]


def discrete_lqr(A: np.ndarray, B: np.ndarray, dt: float, Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """The discrete-time LQR gain ``K (m, 2n)`` of ``dx/dt = A x + B u`` under zero-order hold at ``dt``."""
    import scipy.linalg

    k = A.shape[0]
    block = np.zeros((k + B.shape[1], k + B.shape[1]))
    block[:k, :k], block[:k, k:] = A, B
    F = scipy.linalg.expm(block * dt)
    Ad, Bd = F[:k, :k], F[:k, k:]
    try:
        P = scipy.linalg.solve_discrete_are(Ad, Bd, Q, R)
    except (np.linalg.LinAlgError, ValueError) as e:
        raise SwingUpError(f"no stabilising LQR for the model's linearisation at the top: {e}") from None
    return np.linalg.solve(R + Bd.T @ P @ Bd, Bd.T @ P @ Ad)


def lqr_weights(model: System, top: np.ndarray, torque_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """``Q = diag(1, ..., 0.1, ...)`` (positions [rad or m], velocities) and ``R = 1 / limit^2``
    (Bryson's rule: a unit error is worth the full torque)."""
    n = top.shape[0]
    return np.diag([1.0] * n + [0.1] * n), np.array([[1.0 / torque_limit**2]])


def _torque_limit(info, settings: SwingUpSettings, driven: int) -> float:
    if settings.torque_limit is not None:
        return float(settings.torque_limit)
    if info.name in TORQUE_LIMITS:
        return TORQUE_LIMITS[info.name]
    limits = info.torque_limits
    if limits is not None and math.isfinite(limits[driven]):
        return float(limits[driven])
    raise SwingUpError(f"{info.name} has no torque limit on its driven joint: give one")


def swing_up_law(model: System, settings: SwingUpSettings | None = None, energy: bool = True) -> SwingUpLaw:
    """The swing-up and balance law of ``model`` (its energies, and the LQR of its
    linearisation at the top); ``energy=False``: balance only (for a model without energies)."""
    settings = settings or SwingUpSettings()
    info = model.info
    a = check_swing_up_system(info)
    top = np.asarray(UPRIGHT[info.name], float)
    limit = _torque_limit(info, settings, a)
    A, B = linearisation(model, top, a)
    K = discrete_lqr(A, B, settings.dt, *lqr_weights(model, top, limit))[0]
    if energy:
        bottom = np.asarray(HANGING[info.name], float)
        u = [j for j in range(info.dof) if j != a]
        V_top = float(model.potential_energy(jnp.asarray(top)))
        scale = V_top - float(model.potential_energy(jnp.asarray(bottom)))
        if not scale > 0:
            raise SwingUpError(
                f"the model's potential energy is not higher upright than hanging ({scale:.3g}): "
                "it cannot swing up by energy"
            )
        M = np.asarray(model.mass_matrix(jnp.asarray(top)), float)
        schur = 1.0 / np.linalg.inv(M)[a, a]
        Mb = np.asarray(model.mass_matrix(jnp.asarray(bottom)), float)
        coupling = math.sqrt(2 * scale * abs(Mb[a, u] @ np.linalg.solve(Mb[np.ix_(u, u)], Mb[u, a])))
    else:
        V_top, scale, schur, coupling = 0.0, 1.0, 1.0, 1.0
    w = settings.centre_frequency
    return SwingUpLaw(
        top=jnp.asarray(top),
        lqr_gain=jnp.asarray(K),
        energy_top=jnp.asarray(V_top),
        energy_scale=jnp.asarray(scale),
        coupling=jnp.asarray(coupling),
        accel_limit=jnp.asarray(settings.accel_fraction * limit / schur),
        torque_limit=limit,
        driven=a,
        revolute=tuple(t == "revolute" for t in info.joint_types),
        energy_gain=settings.energy_gain,
        energy_margin=settings.energy_margin,
        kp=w**2,
        kd=2 * w,
        switch_angle=settings.switch_angle,
        energy=energy,
    )


def balance_law(model: System, settings: SwingUpSettings | None = None) -> SwingUpLaw:
    """The LQR alone, from ``model``'s linearisation (for models without energies: the MLP)."""
    return swing_up_law(model, settings, energy=False)


# --------------------------------------------------------------------------------------
# The closed loop
# --------------------------------------------------------------------------------------


class SwingUpTrace(NamedTuple):
    """A run: ``q``, ``qd``, ``tau`` ``(T, n)`` at every tick, ``balancing`` and ``fault``
    ``(T,)`` (see :data:`lagrax.control.laws.FAULTS`); a leading batch axis from :func:`swing_up`."""

    q: Array
    qd: Array
    tau: Array
    balancing: Array
    fault: Array


def swing_up_loop(
    plant: System, model: System, law: SwingUpLaw, q0: Vec, qd0: Vec, settings: SwingUpSettings
) -> SwingUpTrace:
    """One run from ``(q0, qd0)``: ``settings.ticks`` control periods in one ``lax.scan``."""

    def tick(state, _):
        q, qd, balancing, fault = state
        tau, balancing = swing_up_torque(model, law, q, qd, balancing)

        def step(u):
            return plant_step(plant, q, qd, u, settings.dt, settings.substeps)

        q1, qd1, after, now, tau = guarded_step(step, q, qd, tau, fault)
        return (q1, qd1, balancing, after), SwingUpTrace(q, qd, tau, balancing, now)

    start = (q0, qd0, jnp.asarray(False), jnp.zeros((), jnp.int32))
    _, trace = jax.lax.scan(tick, start, None, length=settings.ticks)
    return trace


def swing_up(
    plant: System,
    model: System,
    law: SwingUpLaw,
    q0: np.ndarray,
    qd0: np.ndarray,
    settings: SwingUpSettings | None = None,
) -> SwingUpTrace:
    """Runs from every initial state ``q0, qd0`` ``(B, n)``: a jitted ``vmap`` of :func:`swing_up_loop`."""
    settings = settings or SwingUpSettings()
    q0, qd0 = (np.asarray(x, dtype=np.float64) for x in (q0, qd0))
    n = plant.info.dof
    if q0.ndim != 2 or q0.shape[1] != n or qd0.shape != q0.shape:
        raise ShapeError(f"initial states must be (B, {n}) arrays for {plant.info.name}, got {q0.shape}")
    return _swing_up_all(plant, model, law, jnp.asarray(q0), jnp.asarray(qd0), settings)


@eqx.filter_jit
def _swing_up_all(plant, model, law, q0, qd0, settings) -> SwingUpTrace:
    return jax.vmap(lambda q, qd: swing_up_loop(plant, model, law, q, qd, settings))(q0, qd0)


def initial_states(info, count: int, seed: int = 0, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random states near hanging down, ``(count, n)`` each: the unactuated joints
    within ``spread`` [rad] of the bottom with velocities up to ``spread`` [rad/s], the
    driven joint near its centre at rest."""
    a = check_swing_up_system(info)
    rng = np.random.default_rng(seed)
    q = np.tile(np.asarray(HANGING[info.name], float), (count, 1))
    qd = np.zeros((count, info.dof))
    u = [j for j in range(info.dof) if j != a]
    q[:, u] += rng.uniform(-spread, spread, (count, len(u)))
    qd[:, u] = rng.uniform(-spread, spread, (count, len(u)))
    q[:, a] += rng.uniform(-0.05, 0.05, count)
    return q, qd


def near_top_states(info, count: int, seed: int = 0, spread: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random states within ``spread`` of upright (for balance alone)."""
    check_swing_up_system(info)
    rng = np.random.default_rng(seed)
    top = np.asarray(UPRIGHT[info.name], float)
    q = top + rng.uniform(-spread, spread, (count, info.dof))
    return q, rng.uniform(-spread, spread, (count, info.dof))


def swing_up_metrics(plant: System, law: SwingUpLaw, trace: SwingUpTrace, settings: SwingUpSettings) -> dict:
    """Per run and overall: ``success`` (upright within ``tolerance`` for the last ``hold``
    seconds, no fault), ``time_to_upright`` (from when it stays upright; NaN if never),
    ``energy_error`` (the plant's ``|E_u - V_top| / dE`` when the LQR first takes over:
    how well the swing-up hit the energy; NaN if it never does), the driven joint's
    largest excursion, and the success rate."""
    q, qd = np.asarray(trace.q), np.asarray(trace.qd)
    fault = np.asarray(trace.fault)
    err = np.abs(np.asarray(jax.vmap(jax.vmap(law.error))(jnp.asarray(q))))[..., law.unactuated]
    up = np.all(err < settings.tolerance, axis=-1) & (fault == 0)
    hold = max(1, int(round(settings.hold * settings.rate)))
    success = up[:, -hold:].all(axis=1)
    # the first tick from which it stays upright to the end
    last_down = np.where(~up, np.arange(up.shape[1]), -1).max(axis=1)
    time_up = np.where(success, (last_down + 1) * settings.dt, np.nan)
    balancing = np.asarray(trace.balancing)
    switched = balancing.any(axis=1)
    first = balancing.argmax(axis=1)
    rows = np.arange(q.shape[0])
    qs, qds = jnp.asarray(q[rows, first]), jnp.asarray(qd[rows, first])
    truth = _plant_law(plant, law)
    E = np.asarray(jax.vmap(lambda a, b: unactuated_energy(plant, truth, a, b))(qs, qds))
    energy_error = np.where(switched, np.abs(E - float(truth.energy_top)) / float(truth.energy_scale), np.nan)
    return dict(
        success=success.tolist(),
        success_rate=float(success.mean()),
        time_to_upright=time_up.tolist(),
        mean_time_to_upright=_nanmean(time_up),
        energy_error=energy_error.tolist(),
        mean_energy_error=_nanmean(energy_error),
        max_driven_excursion=float(np.max(np.abs(q[..., law.driven] - float(law.top[law.driven])))),
        faults=int((fault != 0).any(axis=1).sum()),
    )


def _plant_law(plant: System, law: SwingUpLaw) -> SwingUpLaw:
    """``law`` with the plant's own ``V(top)`` and ``dE`` (to score energies in the plant's terms)."""
    top = np.asarray(law.top)
    bottom = np.asarray(HANGING[plant.info.name], float)
    V_top = plant.potential_energy(jnp.asarray(top))
    scale = V_top - plant.potential_energy(jnp.asarray(bottom))
    return eqx.tree_at(lambda x: (x.energy_top, x.energy_scale), law, (V_top, scale))


def _nanmean(x: np.ndarray) -> float | None:
    x = np.asarray(x, float)
    return float(np.nanmean(x)) if np.any(np.isfinite(x)) else None


# --------------------------------------------------------------------------------------
# A job of ``lagrax control --task swing-up``: rows, outputs, figures
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SwingUpJob:
    """What ``lagrax control --task swing-up`` was asked: the plant, ``(name, model)`` rows,
    the settings, how many random hanging starts and their seed, the output ``.npz``."""

    out: object
    plant: System
    models: list
    settings: SwingUpSettings
    count: int = 30
    seed: int = 0

    def paths(self) -> dict:
        from pathlib import Path

        stem = Path(self.out).with_suffix("")
        return {
            "arrays": Path(self.out),
            "metrics": Path(self.out).with_suffix(".json"),
            "energy": Path(f"{stem}-energy.png"),
            "angle": Path(f"{stem}-angle.png"),
            "animation": Path(f"{stem}-swing-up.gif"),
        }


def has_energies(model: System) -> bool:
    """Whether ``model`` gives what the energy law needs (``T``, ``V``, ``M``, inverse dynamics)."""
    return all(
        model.provides(q) for q in ("kinetic_energy", "potential_energy", "mass_matrix", "inverse_dynamics")
    )


def run_swing_up_rows(job: SwingUpJob, progress=None) -> dict[str, dict]:
    """Every row's trace, metrics, energies ``E_u`` of the plant along the runs and a note:
    ``{name: {"trace", "metrics", "energy", "note"}}``. A model without energies only balances."""
    q0, qd0 = initial_states(job.plant.info, job.count, job.seed)
    out = {}
    for name, model in job.models:
        if progress is not None:
            progress(f"swing-up: {name}")
        energy = has_energies(model)
        law = swing_up_law(model, job.settings, energy=energy)
        trace = swing_up(job.plant, model, law, q0, qd0, job.settings)
        note = "" if energy else "no energies: cannot swing up, LQR from its linearisation only"
        out[name] = dict(
            trace=trace,
            metrics=swing_up_metrics(job.plant, law, trace, job.settings),
            energy=plant_energies(job.plant, law, trace),
            note=note,
        )
    return out


def plant_energies(plant: System, law: SwingUpLaw, trace: SwingUpTrace) -> np.ndarray:
    """The plant's ``(E_u - V_top) / dE`` along every run, ``(B, T)``: 0 is the top's energy."""
    truth = _plant_law(plant, law)
    E = jax.vmap(jax.vmap(lambda q, qd: unactuated_energy(plant, truth, q, qd)))(trace.q, trace.qd)
    return (np.asarray(E) - float(truth.energy_top)) / float(truth.energy_scale)


def write_swing_up(job: SwingUpJob, results: dict[str, dict]) -> list:
    """``OUT.npz`` (per row ``q``, ``tau``, ``balancing``, energies), ``OUT.json`` (metrics and
    settings), ``OUT-energy.png``, ``OUT-angle.png`` and ``OUT-swing-up.gif`` (the first row's
    first run)."""
    import json

    from lagrax.core.fileio import atomic_write

    paths = job.paths()
    s = job.settings
    t = np.arange(s.ticks) * s.dt
    arrays: dict[str, np.ndarray] = {"t": t, "rows": np.array(list(results))}
    for i, r in enumerate(results.values()):
        tr = r["trace"]
        arrays.update(
            {f"q_{i}": np.asarray(tr.q), f"tau_{i}": np.asarray(tr.tau), f"energy_{i}": r["energy"]}
        )
        arrays[f"balancing_{i}"] = np.asarray(tr.balancing)
    written = [atomic_write(paths["arrays"], lambda f: np.savez(f, **arrays))]
    settings = dict(dataclasses.asdict(s), system=job.plant.info.name, count=job.count, seed=job.seed)
    metrics = {name: dict(r["metrics"], note=r["note"]) for name, r in results.items()}
    text = json.dumps(dict(rows=metrics, settings=settings), indent=2) + "\n"
    written.append(atomic_write(paths["metrics"], lambda f: f.write(text.encode())))
    written += plot_swing_up(job, results, t)
    first = next(iter(results.values()))
    written.append(animate_swing_up(job.plant.info, np.asarray(first["trace"].q[0]), s, paths["animation"]))
    return written


def plot_swing_up(job: SwingUpJob, results: dict[str, dict], t: np.ndarray) -> list:
    """The energy ``(E_u - V_top) / dE`` and the unactuated angles from upright over time,
    the first run of every row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lagrax.core.fileio import atomic_write

    paths = job.paths()
    info = job.plant.info
    a = check_swing_up_system(info)
    free = [j for j in range(info.dof) if j != a]
    written = []
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, r in results.items():
        ax.plot(t, r["energy"][0], label=name)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set(xlabel="t [s]", ylabel="(E_u - V_top) / dE", title=f"{info.name}: energy of the unactuated part")
    ax.legend()
    written.append(_save_figure(fig, paths["energy"], atomic_write))
    fig, axes = plt.subplots(len(free), 1, figsize=(8, 2.5 * len(free)), squeeze=False)
    top = np.asarray(UPRIGHT[info.name])
    for name, r in results.items():
        q = np.asarray(r["trace"].q[0])
        for ax, j in zip(axes[:, 0], free):
            ax.plot(t, np.mod(q[:, j] - top[j] + np.pi, 2 * np.pi) - np.pi, label=name)
    for ax, j in zip(axes[:, 0], free):
        ax.set(xlabel="t [s]", ylabel=f"{info.joint_names[j]} from upright [rad]")
        ax.axhspan(-job.settings.tolerance, job.settings.tolerance, color="0.9")
    axes[0, 0].legend()
    written.append(_save_figure(fig, paths["angle"], atomic_write))
    return written


def _save_figure(fig, path, atomic_write):
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def chain_points(info, q: np.ndarray) -> np.ndarray:
    """A schematic of one state, ``(k + 1, 2)`` points: the base at the driven joint's
    coordinate (metres, or radians for a rotary arm), then one unit link per unactuated
    joint, angles relative to the link before and measured from hanging down."""
    a = check_swing_up_system(info)
    hanging = np.asarray(HANGING[info.name])
    points = [np.array([q[a] - hanging[a], 0.0])]
    angle = 0.0
    for j in (j for j in range(info.dof) if j != a):
        angle += q[j] - hanging[j]
        points.append(points[-1] + np.array([np.sin(angle), -np.cos(angle)]))
    return np.array(points)


def animate_swing_up(info, q: np.ndarray, settings: SwingUpSettings, path, fps: int = 25):
    """A GIF of one run ``q (T, n)`` as :func:`chain_points` (matplotlib's PillowWriter)."""
    import os
    import tempfile
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    step = max(1, int(round(settings.rate / fps)))
    frames = [chain_points(info, row) for row in q[::step]]
    links = len(frames[0]) - 1
    span = max(2.0, float(np.max(np.abs([p[0, 0] for p in frames]))) + links + 0.5)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.set(xlim=(-span, span), ylim=(-links - 0.5, links + 0.5), aspect="equal", title=info.name)
    (line,) = ax.plot([], [], "o-", lw=3)
    label = ax.text(0.02, 0.95, "", transform=ax.transAxes)

    def draw(k):
        line.set_data(frames[k][:, 0], frames[k][:, 1])
        label.set_text(f"t = {k * step * settings.dt:.2f} s")
        return line, label

    animation = FuncAnimation(fig, draw, frames=len(frames), blit=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".gif", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        animation.save(tmp, writer=PillowWriter(fps=fps))
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


__all__ = [
    "HANGING",
    "PLANT_FRICTION",
    "TORQUE_LIMITS",
    "UPRIGHT",
    "VELOCITY_PROBE",
    "SwingUpError",
    "SwingUpJob",
    "SwingUpLaw",
    "SwingUpSettings",
    "SwingUpTrace",
    "balance_law",
    "animate_swing_up",
    "balance_torque",
    "chain_points",
    "check_swing_up_model",
    "check_swing_up_system",
    "discrete_lqr",
    "energy_torque",
    "has_energies",
    "initial_states",
    "linearisation",
    "lqr_weights",
    "near_top_states",
    "plant_energies",
    "plot_swing_up",
    "run_swing_up_rows",
    "swing_up",
    "swing_up_law",
    "swing_up_loop",
    "swing_up_metrics",
    "swing_up_torque",
    "unactuated_energy",
    "with_plant_friction",
    "write_swing_up",
]
