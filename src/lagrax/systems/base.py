"""The system interface shared by ground-truth systems and learned models.

A :class:`System` is an equinox module (a pytree): its array fields are parameters,
its static ``info`` field is metadata (dof, joint names and types, limits). Every
public method accepts one state (arrays of shape ``(n,)``) or a batch with any
leading axes ``(..., n)`` and returns the matching shape; batching is a ``vmap`` at
this edge over the per-sample ``_methods`` that subclasses implement.

* :class:`StructuredSystem` implements ``_mass_matrix(q)`` and ``_potential_energy(q)``;
* :class:`LagrangianSystem` implements ``_lagrangian(q, qd)``;
* both may override ``_friction(q, qd)`` (default zero).

Everything else (dynamics, c, g, energies, momentum, power) comes from
:mod:`lagrax.mechanics`. A model that is not Lagrangian (an MLP, an HNN) subclasses
:class:`System` directly and implements what it can; the rest raises
:class:`~lagrax.errors.NotProvidedError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import mechanics
from ..errors import NotProvidedError, ShapeError, SingularHessianError

JOINT_TYPES = ("revolute", "prismatic")
SINGULAR_MESSAGE = (
    "the Lagrangian's Hessian d^2L/dqd^2 is singular at this state, so the accelerations "
    "are undefined (check the Lagrangian, or regularise it)"
)


def _frozen(value):
    """Lists -> tuples, dicts -> tuples of pairs, recursively (hashable parameters)."""
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class SystemInfo:
    """Static metadata of a system. Hashable, so it can be a static pytree field.

    Attributes:
        name: registry name (``"double_pendulum"``) or a user label.
        dof: number of generalised coordinates ``n``.
        joint_names: one name per coordinate.
        joint_types: ``"revolute"`` (an angle: networks see ``cos q, sin q``) or
            ``"prismatic"`` (any non-periodic coordinate, used as is).
        actuated: which coordinates an input torque may drive.
        position_limits: ``((lo, hi), ...)`` per joint, or ``None`` if unlimited.
        velocity_limits: ``(vmax, ...)`` per joint, or ``None``.
        torque_limits: ``(taumax, ...)`` per joint, or ``None``.
        params: the physical parameters, as ``((name, value), ...)``.
        description: one line for ``lagrax systems``.
    """

    name: str
    dof: int
    joint_names: tuple[str, ...]
    joint_types: tuple[str, ...]
    actuated: tuple[bool, ...]
    position_limits: tuple[tuple[float, float], ...] | None = None
    velocity_limits: tuple[float, ...] | None = None
    torque_limits: tuple[float, ...] | None = None
    params: tuple[tuple[str, Any], ...] = ()
    description: str = ""

    def __post_init__(self):
        n = self.dof
        if not isinstance(n, int) or n < 1:
            raise ShapeError(f"dof must be a positive integer, got {n!r}")
        for field in ("joint_names", "joint_types", "actuated"):
            if len(getattr(self, field)) != n:
                raise ShapeError(f"{field} has {len(getattr(self, field))} entries for dof={n}")
        bad = [t for t in self.joint_types if t not in JOINT_TYPES]
        if bad:
            raise ShapeError(f"joint types must be one of {JOINT_TYPES}, got {bad}")
        for field in ("position_limits", "velocity_limits", "torque_limits"):
            v = getattr(self, field)
            if v is not None and len(v) != n:
                raise ShapeError(f"{field} has {len(v)} entries for dof={n}")

    @classmethod
    def make(
        cls,
        name: str,
        dof: int,
        joint_names: Sequence[str] | None = None,
        joint_types: Sequence[str] | None = None,
        actuated: Sequence[bool] | None = None,
        **kwargs,
    ) -> "SystemInfo":
        """Build an info with defaults: joints ``q0, q1, ...``, all revolute, all actuated."""
        joint_names = tuple(joint_names) if joint_names is not None else tuple(f"q{i}" for i in range(dof))
        joint_types = tuple(joint_types) if joint_types is not None else ("revolute",) * dof
        actuated = tuple(bool(a) for a in actuated) if actuated is not None else (True,) * dof
        params = kwargs.pop("params", {})
        if isinstance(params, dict):
            params = tuple(params.items())
        # JSON gives lists and dicts; the info is hashed as a static field, so freeze them.
        params = tuple((k, _frozen(v)) for k, v in params)
        for field in ("position_limits", "velocity_limits", "torque_limits"):
            v = kwargs.get(field)
            if v is not None:
                kwargs[field] = tuple(tuple(float(x) for x in e) if np.ndim(e) else float(e) for e in v)
        return cls(name, dof, joint_names, joint_types, actuated, params=params, **kwargs)

    def to_json(self) -> dict:
        """A JSON-serialisable dict (for dataset and model metadata)."""
        d = dataclasses.asdict(self)
        d["params"] = {k: v for k, v in self.params}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SystemInfo":
        d = dict(d)
        return cls.make(**d)


# --------------------------------------------------------------------------------------
# Batching at the edge
# --------------------------------------------------------------------------------------


def _check_args(system: "System", method: str, names: Sequence[str], args: Sequence[Any]):
    n = system.info.dof
    arrays = []
    batch_shape = None
    for name, a in zip(names, args):
        a = jnp.asarray(a)
        if not jnp.issubdtype(a.dtype, jnp.floating):
            a = a.astype(jnp.result_type(float))
        if a.ndim == 0 or a.shape[-1] != n:
            raise ShapeError(
                f"{system.info.name}.{method}: {name} has shape {tuple(a.shape)}, expected (n,) "
                f"or (batch, n) with n = {n} joints ({', '.join(system.info.joint_names)})"
            )
        if batch_shape is None:
            batch_shape = a.shape[:-1]
        elif a.shape[:-1] != batch_shape:
            raise ShapeError(
                f"{system.info.name}.{method}: {name} has batch shape {tuple(a.shape[:-1])}, "
                f"but {names[0]} has {tuple(batch_shape)}"
            )
        arrays.append(a)
    # A common dtype (so that float32 parameters meet float64 states consistently).
    dtype = jnp.result_type(*arrays)
    return [a.astype(dtype) for a in arrays], batch_shape


BATCH_CHUNK = 256  # samples per vmapped chunk of a large batch


@eqx.filter_jit
def _batched_call(system: "System", method: str, args: tuple, batch_shape: tuple):
    fn = getattr(system, method)
    if batch_shape == ():
        return fn(*args)
    flat = [a.reshape(-1, a.shape[-1]) for a in args]
    if flat[0].shape[0] <= BATCH_CHUNK:
        out = jax.vmap(fn)(*flat)
    else:
        # vmap over chunks, a loop over the chunks: the intermediates of a chunk stay in
        # cache (measured 4-5x the throughput of one vmap over 65,536 samples on a CPU)
        out = jax.lax.map(lambda xs: fn(*xs), tuple(flat), batch_size=BATCH_CHUNK)
    return jax.tree_util.tree_map(lambda o: o.reshape(batch_shape + o.shape[1:]), out)


def _dispatch(system: "System", method: str, names: Sequence[str], args: Sequence[Any]):
    arrays, batch_shape = _check_args(system, method.lstrip("_"), names, args)
    try:
        return _batched_call(system, method, tuple(arrays), tuple(batch_shape))
    except eqx.EquinoxRuntimeError as e:
        if SINGULAR_MESSAGE in str(e):
            raise SingularHessianError(f"{system.info.name}.{method.lstrip('_')}: {SINGULAR_MESSAGE}") from None
        raise


# --------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------


class System(eqx.Module):
    """Anything with dynamics: a ground-truth system or a learned model.

    Public methods take ``(n,)`` or ``(..., n)`` arrays. Subclasses implement the
    per-sample ``_`` methods; what a subclass cannot provide raises
    :class:`~lagrax.errors.NotProvidedError` naming the quantity.
    """

    info: SystemInfo = eqx.field(static=True)

    # ---- metadata -------------------------------------------------------------------
    @property
    def dof(self) -> int:
        return self.info.dof

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.info.joint_names

    @property
    def joint_types(self) -> tuple[str, ...]:
        return self.info.joint_types

    def actuation_matrix(self) -> Float[Array, "n m"]:
        """``B`` (n x m): an input ``u`` of the m actuated joints acts as ``tau = B u``."""
        eye = np.eye(self.dof)
        return jnp.asarray(eye[:, [i for i, a in enumerate(self.info.actuated) if a]])

    def _not_provided(self, what: str):
        raise NotProvidedError(
            f"{type(self).__name__} ({self.info.name}) cannot provide {what}: "
            f"{self._not_provided_reason()}"
        )

    def _not_provided_reason(self) -> str:
        return "it is not defined for this kind of model"

    # ---- per-sample hooks (override) -------------------------------------------------
    def _forward_dynamics(self, q, qd, tau):
        self._not_provided("forward dynamics")

    def _inverse_dynamics(self, q, qd, qdd):
        self._not_provided("inverse dynamics")

    def _mass_matrix(self, q):
        self._not_provided("a mass matrix")

    def _coriolis(self, q, qd):
        self._not_provided("Coriolis/centrifugal forces")

    def _coriolis_matrix(self, q, qd):
        self._not_provided("a Coriolis matrix")

    def _gravity(self, q):
        self._not_provided("gravity forces")

    def _friction(self, q, qd):
        return jnp.zeros_like(qd)

    def _kinetic_energy(self, q, qd):
        self._not_provided("a kinetic energy")

    def _potential_energy(self, q):
        self._not_provided("a potential energy")

    def _energy(self, q, qd):
        return self._kinetic_energy(q, qd) + self._potential_energy(q)

    def _lagrangian(self, q, qd):
        self._not_provided("a Lagrangian")

    def _momentum(self, q, qd):
        self._not_provided("a canonical momentum")

    def _power(self, q, qd, tau):
        # rate of change of the system's energy under input tau: qd^T (tau - friction)
        return qd @ (tau - self._friction(q, qd))

    def _energy_rate(self, q, qd, qdd):
        return mechanics.energy_rate(self._energy, q, qd, qdd)

    def _decomposition(self, q, qd, qdd):
        return {
            "inertial": self._mass_matrix(q) @ qdd,
            "coriolis": self._coriolis(q, qd),
            "gravity": self._gravity(q),
            "friction": self._friction(q, qd),
        }

    # ---- public, batched ---------------------------------------------------------
    def forward_dynamics(self, q, qd, tau):
        """Accelerations ``qdd`` under generalised joint forces ``tau``."""
        return _dispatch(self, "_forward_dynamics", ("q", "qd", "tau"), (q, qd, tau))

    def inverse_dynamics(self, q, qd, qdd):
        """Generalised joint forces ``tau = M qdd + c + g + friction``."""
        return _dispatch(self, "_inverse_dynamics", ("q", "qd", "qdd"), (q, qd, qdd))

    def mass_matrix(self, q):
        """``M(q)``, shape ``(..., n, n)``."""
        return _dispatch(self, "_mass_matrix", ("q",), (q,))

    def coriolis(self, q, qd):
        """Coriolis and centrifugal forces ``c(q, qd) = C(q, qd) qd``."""
        return _dispatch(self, "_coriolis", ("q", "qd"), (q, qd))

    def coriolis_matrix(self, q, qd):
        """``C(q, qd)``, shape ``(..., n, n)``, with ``C qd = coriolis`` and ``Mdot - 2C`` skew."""
        return _dispatch(self, "_coriolis_matrix", ("q", "qd"), (q, qd))

    def gravity(self, q):
        """Gravity (potential) forces ``g(q) = dV/dq``."""
        return _dispatch(self, "_gravity", ("q",), (q,))

    def friction(self, q, qd):
        """Dissipative generalised forces the joint torques must overcome."""
        return _dispatch(self, "_friction", ("q", "qd"), (q, qd))

    def kinetic_energy(self, q, qd):
        return _dispatch(self, "_kinetic_energy", ("q", "qd"), (q, qd))

    def potential_energy(self, q):
        return _dispatch(self, "_potential_energy", ("q",), (q,))

    def energy(self, q, qd):
        """Total energy ``E = T + V`` (the Hamiltonian, by the Legendre transform)."""
        return _dispatch(self, "_energy", ("q", "qd"), (q, qd))

    hamiltonian = energy

    def lagrangian(self, q, qd):
        return _dispatch(self, "_lagrangian", ("q", "qd"), (q, qd))

    def momentum(self, q, qd):
        """Canonical momentum ``p = dL/dqd``."""
        return _dispatch(self, "_momentum", ("q", "qd"), (q, qd))

    def power(self, q, qd, tau):
        """Power into the system, ``qd^T (tau - friction)`` (= dE/dt along the motion)."""
        return _dispatch(self, "_power", ("q", "qd", "tau"), (q, qd, tau))

    def energy_rate(self, q, qd, qdd):
        """``dE/dt`` along a motion, from the model's own energy: ``dE/dq qd + dE/dqd qdd``."""
        return _dispatch(self, "_energy_rate", ("q", "qd", "qdd"), (q, qd, qdd))

    def decomposition(self, q, qd, qdd):
        """Dict of the torque terms ``inertial = M qdd``, ``coriolis``, ``gravity``, ``friction``."""
        return _dispatch(self, "_decomposition", ("q", "qd", "qdd"), (q, qd, qdd))

    def __repr__(self):  # equinox's repr prints every array; keep it readable
        return f"{type(self).__name__}(name={self.info.name!r}, dof={self.info.dof})"


class StructuredSystem(System):
    """A system given by ``M(q)`` and ``V(q)``: subclasses implement those two.

    Forward dynamics is a Cholesky solve; ``M`` must be symmetric positive definite.
    """

    def _mass_matrix(self, q):
        raise NotImplementedError

    def _potential_energy(self, q):
        raise NotImplementedError

    def _terms(self, q, qd) -> mechanics.StructuredTerms:
        return mechanics.structured_terms(self._mass_matrix, self._potential_energy, q, qd)

    def _forward_dynamics(self, q, qd, tau):
        return mechanics.structured_forward_dynamics(self._terms(q, qd), tau, self._friction(q, qd))

    def _inverse_dynamics(self, q, qd, qdd):
        return mechanics.structured_inverse_dynamics(self._terms(q, qd), qdd, self._friction(q, qd))

    def _coriolis(self, q, qd):
        return self._terms(q, qd).coriolis

    def _coriolis_matrix(self, q, qd):
        return mechanics.coriolis_matrix(self._mass_matrix, q, qd)

    def _gravity(self, q):
        return mechanics.value_and_jacfwd(self._potential_energy, q)[1]

    def _kinetic_energy(self, q, qd):
        return mechanics.structured_kinetic_energy(self._mass_matrix, q, qd)

    def _lagrangian(self, q, qd):
        return self._kinetic_energy(q, qd) - self._potential_energy(q)

    def _momentum(self, q, qd):
        return self._mass_matrix(q) @ qd

    def _decomposition(self, q, qd, qdd):
        t = self._terms(q, qd)
        return {
            "inertial": t.mass_matrix @ qdd,
            "coriolis": t.coriolis,
            "gravity": t.gravity,
            "friction": self._friction(q, qd),
        }


class LagrangianSystem(System):
    """A system given by a general scalar ``L(q, qd)``: subclasses implement ``_lagrangian``.

    ``mass_matrix`` is the Hessian ``d^2L/dqd^2`` at rest (``qd = 0``) unless a
    velocity is given; ``gravity`` is ``-dL/dq`` at rest and ``coriolis`` the rest of
    the velocity-dependent force. Forward dynamics solves with the Hessian and raises
    :class:`~lagrax.errors.SingularHessianError` where it is singular.
    """

    def _lagrangian(self, q, qd):
        raise NotImplementedError

    def _terms(self, q, qd) -> mechanics.GeneralTerms:
        return mechanics.general_terms(self._lagrangian, q, qd)

    def _forward_dynamics_checked(self, q, qd, tau, regularization=0.0) -> mechanics.SolveResult:
        """Accelerations and a flag where the Hessian was singular (no exception)."""
        return mechanics.general_forward_dynamics(
            self._terms(q, qd), tau, self._friction(q, qd), regularization
        )

    def _forward_dynamics(self, q, qd, tau):
        qdd, singular = self._forward_dynamics_checked(q, qd, tau)
        return eqx.error_if(
            qdd,
            singular,
            SINGULAR_MESSAGE,
        )

    def _inverse_dynamics(self, q, qd, qdd):
        return mechanics.general_inverse_dynamics(self._terms(q, qd), qdd, self._friction(q, qd))

    def _mass_matrix(self, q, qd=None):
        qd = jnp.zeros_like(q) if qd is None else qd
        return self._terms(q, qd).hessian

    def _gravity(self, q):
        return -jax.grad(self._lagrangian, argnums=0)(q, jnp.zeros_like(q))

    def _coriolis(self, q, qd):
        t = self._terms(q, qd)
        return t.mixed_qd - t.dL_dq - self._gravity(q)

    def _potential_energy(self, q):
        return mechanics.general_potential_energy(self._lagrangian, q)

    def _energy(self, q, qd):
        return mechanics.general_energy(self._lagrangian, q, qd)

    def _kinetic_energy(self, q, qd):
        return self._energy(q, qd) - self._potential_energy(q)

    def _momentum(self, q, qd):
        return jax.grad(self._lagrangian, argnums=1)(q, qd)

    def _decomposition(self, q, qd, qdd):
        t = self._terms(q, qd)
        g = self._gravity(q)
        return {
            "inertial": t.hessian @ qdd,
            "coriolis": t.mixed_qd - t.dL_dq - g,
            "gravity": g,
            "friction": self._friction(q, qd),
        }


# --------------------------------------------------------------------------------------
# User-defined systems from plain JAX functions
# --------------------------------------------------------------------------------------


class FunctionLagrangianSystem(LagrangianSystem):
    """A general system from a user's ``L(q, qd)`` (see :func:`lagrangian_system`)."""

    fn: Callable = eqx.field(static=True)
    friction_fn: Callable | None = eqx.field(static=True, default=None)

    def _lagrangian(self, q, qd):
        return self.fn(q, qd)

    def _friction(self, q, qd):
        return jnp.zeros_like(qd) if self.friction_fn is None else self.friction_fn(q, qd)


class FunctionStructuredSystem(StructuredSystem):
    """A structured system from a user's ``M(q)`` and ``V(q)`` (see :func:`structured_system`)."""

    mass_fn: Callable = eqx.field(static=True)
    potential_fn: Callable = eqx.field(static=True)
    friction_fn: Callable | None = eqx.field(static=True, default=None)

    def _mass_matrix(self, q):
        return self.mass_fn(q)

    def _potential_energy(self, q):
        return self.potential_fn(q)

    def _friction(self, q, qd):
        return jnp.zeros_like(qd) if self.friction_fn is None else self.friction_fn(q, qd)


def lagrangian_system(
    L: Callable,
    dof: int,
    joint_types: Sequence[str] | None = None,
    *,
    joint_names: Sequence[str] | None = None,
    actuated: Sequence[bool] | None = None,
    friction: Callable | None = None,
    name: str = "user_lagrangian",
    **info,
) -> FunctionLagrangianSystem:
    """A full system from a JAX function ``L(q, qd) -> scalar`` on ``(n,)`` arrays.

    Example::

        def L(q, qd):  # a pendulum
            return 0.5 * qd[0] ** 2 + 9.81 * jnp.cos(q[0])
        pendulum = lagrax.lagrangian_system(L, dof=1)
        pendulum.forward_dynamics(q, qd, tau)

    ``friction(q, qd) -> (n,)``, if given, is a dissipative force the torques overcome.
    """
    info = SystemInfo.make(name, dof, joint_names, joint_types, actuated, **info)
    return FunctionLagrangianSystem(info=info, fn=L, friction_fn=friction)


def structured_system(
    mass_matrix: Callable,
    potential: Callable,
    dof: int,
    joint_types: Sequence[str] | None = None,
    *,
    joint_names: Sequence[str] | None = None,
    actuated: Sequence[bool] | None = None,
    friction: Callable | None = None,
    name: str = "user_structured",
    **info,
) -> FunctionStructuredSystem:
    """A full system from JAX functions ``M(q) -> (n, n)`` (SPD) and ``V(q) -> scalar``."""
    info = SystemInfo.make(name, dof, joint_names, joint_types, actuated, **info)
    return FunctionStructuredSystem(info=info, mass_fn=mass_matrix, potential_fn=potential, friction_fn=friction)
