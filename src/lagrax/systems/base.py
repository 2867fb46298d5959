"""The system protocol shared by ground-truth systems and learned models.

A :class:`System` is an equinox module (a pytree): its array fields are parameters,
its static ``info`` field is metadata (dof, joint names and types, limits). Its public
methods are the **per-sample protocol**: one state, arrays of shape ``(n,)``, pure JAX,
usable inside ``jit``, ``vmap``, ``grad`` and ``lax.scan``. Batching, input checks and
errors instead of NaN are one thin wrapper at the edge, :func:`lagrax.batched`.

* :class:`StructuredSystem` implements ``mass_matrix(q)`` and ``potential_energy(q)``;
* :class:`LagrangianSystem` implements ``lagrangian(q, qd)``;
* both may override ``friction(q, qd)`` (default zero).

Everything else (dynamics, c, g, energies, momentum, power) comes from
:mod:`lagrax.core.mechanics`. A model that is not Lagrangian (an MLP, an HNN) subclasses
:class:`System` directly, implements what it can and declares it in ``PROVIDES``;
the rest raises :class:`~lagrax.core.errors.NotProvidedError`.

Not here: batching and input checks (:mod:`lagrax.systems.batching`), integration
(:mod:`lagrax.systems.rollout`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar

from lagrax.core import mechanics
from lagrax.core.mechanics import SolveResult
from lagrax.core.errors import NotProvidedError, ShapeError, UnknownNameError

JOINT_TYPES = ("revolute", "prismatic")


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
# The per-sample protocol
# --------------------------------------------------------------------------------------

Vec = Float[Array, " n"]
Mat = Float[Array, "n n"]

#: Every quantity of the protocol, by the name of its per-sample method.
QUANTITIES = (
    "forward_dynamics",
    "inverse_dynamics",
    "mass_matrix",
    "coriolis",
    "coriolis_matrix",
    "gravity",
    "friction",
    "kinetic_energy",
    "potential_energy",
    "energy",
    "lagrangian",
    "momentum",
    "power",
    "energy_rate",
    "decomposition",
    "hamiltonian",
    "canonical_time_derivative",
)
#: What a system given by its Lagrangian (general or structured) derives: all but the
#: canonical (Hamiltonian) pair, which needs the momentum as an input.
LAGRANGIAN_QUANTITIES = frozenset(QUANTITIES) - {"hamiltonian", "canonical_time_derivative"}

#: Every capability beyond the quantities: what only some systems can do, each named
#: after the method (or field) it stands for.
CAPABILITIES = (
    "forward_kinematics",  # forward_kinematics(q) -> end-effector (x, y): a planar arm
    "inverse_kinematics",  # inverse_kinematics(xy) and the link lengths l1, l2: a planar two-link arm
    "kinematics",  # kinematics() -> PlanarChain, the bodies' positions: the pendulum chains
    "rigid_body_tree",  # rigid_body_tree() -> the same dynamics in pure JAX: a Pinocchio robot
    "payload",  # with_payload(mass, offset, link) -> the plant carrying a payload: a rigid-body tree
    "simulate_excitation",  # simulate_excitation(ts, q, qd, qdd): steps its own simulator (MuJoCo)
    "spec",  # a static ModelSpec field with spec.build(info, key=...): a learned model
    "prefit",  # prefit(dataset) -> (model, report): a one-shot fit the trainer runs first (identification)
    "decay_mask",  # decay_mask() -> a bool per parameter array: which ones weight decay pulls to zero
)


class System(eqx.Module):
    """Anything with dynamics: a ground-truth system or a learned model.

    **The per-sample protocol.** Every public method takes one state, arrays of shape
    ``(n,)``, and is a pure JAX function: it can be called inside ``jit``, ``vmap``,
    ``grad`` and ``lax.scan`` with no Python checks in the way. A controller, a loss or
    an online learner is written against these methods alone. For batches, checked
    inputs and errors instead of NaN, wrap the system at the edge:
    ``lagrax.batched(system).mass_matrix(Q)`` (see :mod:`lagrax.systems.batching`).

    **Capabilities.** :meth:`provides` says which quantities a system can give (the names
    of :data:`QUANTITIES`, declared per class in ``PROVIDES``); asking for another raises
    :class:`~lagrax.core.errors.NotProvidedError` naming it, when traced. It also says
    what else a system can do (the names of :data:`CAPABILITIES`, declared per class in
    ``CAPABLE_OF``: kinematics, a pure-JAX rigid-body tree, a simulator of its own ...).
    Callers ask a capability, never a class, and never probe for attributes.

    **Singularity** is a value: :meth:`solve_forward_dynamics` returns a flag with the
    accelerations, and :meth:`forward_dynamics` is NaN exactly where it is set.
    """

    info: SystemInfo = eqx.field(static=True)

    #: Quantities this class provides (see :meth:`provides`); subclasses set it.
    PROVIDES: ClassVar[frozenset[str]] = frozenset({"friction"})
    #: Capabilities this class has (names from :data:`CAPABILITIES`); subclasses set it.
    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset()
    #: Why a forward-dynamics solve can be flagged singular (the batched edge's message).
    SINGULAR_MESSAGE: ClassVar[str] = "the forward dynamics are not finite at this state"
    #: Methods besides forward dynamics whose non-finite result means that solve failed.
    SINGULAR_METHODS: ClassVar[frozenset[str]] = frozenset()

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

    @property
    def kind(self) -> str:
        """What kind of system this is: the model kind of a learned model, else the system's name."""
        return self.info.name

    def settings(self) -> dict[str, Any]:
        """What the system was built with, as JSON: a model's spec, a ground truth's parameters."""
        return self.info.to_json()["params"]

    def actuation_matrix(self) -> Float[Array, "n m"]:
        """``B`` (n x m): an input ``u`` of the m actuated joints acts as ``tau = B u``."""
        eye = np.eye(self.dof)
        return jnp.asarray(eye[:, [i for i, a in enumerate(self.info.actuated) if a]])

    def provides(self, quantity: str) -> bool:
        """Whether this system can give ``quantity`` (a name from :data:`QUANTITIES`) or has
        the capability ``quantity`` (a name from :data:`CAPABILITIES`)."""
        if quantity in CAPABILITIES:
            return quantity in self.CAPABLE_OF
        if quantity not in QUANTITIES:
            raise UnknownNameError.for_name("quantity or capability", quantity, QUANTITIES + CAPABILITIES)
        return quantity in self.PROVIDES

    def check_sample(self, **arrays) -> None:
        """Raise :class:`~lagrax.core.errors.ShapeError` unless every array is one state of
        this system, shape ``(n,)``. Only static shapes are read, so it costs nothing under
        ``jit``; a batch gets the hint to ``lagrax.batched`` and ``jax.vmap``."""
        n = self.info.dof
        for name, a in arrays.items():
            shape = jnp.shape(a)
            if shape != (n,):
                hint = mechanics.BATCH_HINT if len(shape) > 1 else f"expected ({n},) for its {n} joints"
                raise ShapeError(f"{self.info.name}: {name} has shape {shape}; {hint}")

    def not_provided(self, what: str) -> NotProvidedError:
        """The error for a quantity this system cannot give (raise it)."""
        return NotProvidedError(
            f"{type(self).__name__} ({self.info.name}) cannot provide {what}: {self.not_provided_reason()}"
        )

    def not_provided_reason(self) -> str:
        return "it is not defined for this kind of model"

    def with_data_statistics(self, q, qd, qdd=None, tau=None) -> "System":
        """A copy adapted to training data (``(N, n)`` arrays; ``qdd``, ``tau`` may be None).

        Most systems need nothing and return themselves; a model that standardises its
        inputs (the MLP baseline) fixes its scales here. Trainers call it before training.
        """
        return self

    # ---- dynamics ---------------------------------------------------------------------
    def solve_forward_dynamics(self, q: Vec, qd: Vec, tau: Vec, regularization: float = 0.0) -> SolveResult:
        """Accelerations under joint forces ``tau`` and a flag where the solve was singular.

        ``regularization`` adds ``lambda I`` to a matrix that may be singular (the Hessian
        of a general Lagrangian); systems whose matrix is positive definite by
        construction ignore it. Never raises and never returns NaN unflagged.
        """
        qdd = self.forward_dynamics(q, qd, tau)
        return SolveResult(qdd, ~jnp.all(jnp.isfinite(qdd)))

    def solve_motion(self, q: Vec, qd: Vec, tau: Vec) -> SolveResult:
        """Accelerations to integrate a motion with, flagged where they do not define one.

        As :meth:`solve_forward_dynamics` (no regularisation), flagged also where the
        accelerations are not finite; a general Lagrangian also flags a Hessian that is not
        definite. Rollouts (:func:`lagrax.systems.rollout.simulate`) stop at a flag.
        """
        qdd, singular = self.solve_forward_dynamics(q, qd, tau)
        return SolveResult(qdd, singular | ~jnp.all(jnp.isfinite(qdd)))

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        """Accelerations ``qdd`` under generalised joint forces ``tau`` (NaN where singular)."""
        raise self.not_provided("forward dynamics")

    def inverse_and_forward_dynamics(
        self, q: Vec, qd: Vec, qdd: Vec, tau: Vec, regularization: float = 0.0
    ) -> tuple[Vec, SolveResult]:
        """``(inverse_dynamics(q, qd, qdd), solve_forward_dynamics(q, qd, tau))`` at one state.

        The two directions of one recorded sample, as a loss that trains both needs them.
        Lagrangian systems override it to derive ``M``, ``c`` and ``g`` (or the Hessian
        terms) once for both.
        """
        return self.inverse_dynamics(q, qd, qdd), self.solve_forward_dynamics(q, qd, tau, regularization)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        """Generalised joint forces ``tau = M qdd + c + g + friction``."""
        raise self.not_provided("inverse dynamics")

    def mass_matrix(self, q: Vec) -> Mat:
        """``M(q)``, shape ``(n, n)``, symmetric positive definite."""
        raise self.not_provided("a mass matrix")

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        """Coriolis and centrifugal forces ``c(q, qd) = C(q, qd) qd``."""
        raise self.not_provided("Coriolis/centrifugal forces")

    def coriolis_matrix(self, q: Vec, qd: Vec) -> Mat:
        """``C(q, qd)`` with ``C qd = coriolis`` and ``Mdot - 2C`` skew-symmetric."""
        raise self.not_provided("a Coriolis matrix")

    def gravity(self, q: Vec) -> Vec:
        """Gravity (potential) forces ``g(q) = dV/dq``."""
        raise self.not_provided("gravity forces")

    def friction(self, q: Vec, qd: Vec) -> Vec:
        """Dissipative generalised forces the joint torques must overcome (zero by default)."""
        return jnp.zeros_like(qd)

    # ---- energies ---------------------------------------------------------------------
    def kinetic_energy(self, q: Vec, qd: Vec) -> Scalar:
        """``T(q, qd)``."""
        raise self.not_provided("a kinetic energy")

    def potential_energy(self, q: Vec) -> Scalar:
        """``V(q)``."""
        raise self.not_provided("a potential energy")

    def energy(self, q: Vec, qd: Vec) -> Scalar:
        """Total energy ``E = T + V`` of a state ``(q, qd)`` (the energy function ``p qd - L``)."""
        return self.kinetic_energy(q, qd) + self.potential_energy(q)

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        """``L(q, qd)``."""
        raise self.not_provided("a Lagrangian")

    def momentum(self, q: Vec, qd: Vec) -> Vec:
        """Canonical momentum ``p = dL/dqd``."""
        raise self.not_provided("a canonical momentum")

    def hamiltonian(self, q: Vec, p: Vec) -> Scalar:
        """``H(q, p)`` of a state in canonical coordinates (momentum ``p``, not velocity)."""
        raise self.not_provided("a Hamiltonian of canonical coordinates")

    def canonical_time_derivative(self, q: Vec, p: Vec, tau: Vec) -> tuple[Vec, Vec]:
        """Hamilton's equations ``(qdot, pdot) = (dH/dp, -dH/dq + tau)``."""
        raise self.not_provided("Hamilton's equations (a canonical time derivative)")

    def power(self, q: Vec, qd: Vec, tau: Vec) -> Scalar:
        """Power into the system, ``qd^T (tau - friction)`` (= dE/dt along the motion)."""
        self.check_sample(q=q, qd=qd, tau=tau)
        return qd @ (tau - self.friction(q, qd))

    def energy_rate(self, q: Vec, qd: Vec, qdd: Vec) -> Scalar:
        """``dE/dt`` along a motion, from the system's own energy: ``dE/dq qd + dE/dqd qdd``."""
        self.check_sample(q=q, qd=qd, qdd=qdd)
        return mechanics.energy_rate(self.energy, q, qd, qdd)

    def decomposition(self, q: Vec, qd: Vec, qdd: Vec) -> dict[str, Vec]:
        """The torque terms ``inertial = M qdd``, ``coriolis``, ``gravity``, ``friction``."""
        return {
            "inertial": self.mass_matrix(q) @ qdd,
            "coriolis": self.coriolis(q, qd),
            "gravity": self.gravity(q),
            "friction": self.friction(q, qd),
        }

    def __repr__(self):  # equinox's repr prints every array; keep it readable
        return f"{type(self).__name__}(name={self.info.name!r}, dof={self.info.dof})"


class StructuredSystem(System):
    """A system given by ``M(q)`` and ``V(q)``: subclasses implement those two.

    Forward dynamics is a Cholesky solve; ``M`` must be symmetric positive definite.
    """

    PROVIDES: ClassVar[frozenset[str]] = LAGRANGIAN_QUANTITIES
    SINGULAR_MESSAGE: ClassVar[str] = "the mass matrix is not positive definite at this state"

    def mass_matrix(self, q: Vec) -> Mat:
        raise NotImplementedError

    def potential_energy(self, q: Vec) -> Scalar:
        raise NotImplementedError

    def terms(self, q: Vec, qd: Vec) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g`` and ``V`` at one state, from one forward-mode pass."""
        self.check_sample(q=q, qd=qd)
        return mechanics.structured_terms(self.mass_matrix, self.potential_energy, q, qd)

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        self.check_sample(q=q, qd=qd, tau=tau)
        return mechanics.structured_forward_dynamics(self.terms(q, qd), tau, self.friction(q, qd))

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        self.check_sample(q=q, qd=qd, qdd=qdd)
        return mechanics.structured_inverse_dynamics(self.terms(q, qd), qdd, self.friction(q, qd))

    def inverse_and_forward_dynamics(
        self, q: Vec, qd: Vec, qdd: Vec, tau: Vec, regularization: float = 0.0
    ) -> tuple[Vec, SolveResult]:
        self.check_sample(q=q, qd=qd, qdd=qdd, tau=tau)
        terms, friction = self.terms(q, qd), self.friction(q, qd)
        forward = mechanics.structured_forward_dynamics(terms, tau, friction)
        return (
            mechanics.structured_inverse_dynamics(terms, qdd, friction),
            SolveResult(forward, ~jnp.all(jnp.isfinite(forward))),
        )

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        return self.terms(q, qd).coriolis

    def coriolis_matrix(self, q: Vec, qd: Vec) -> Mat:
        self.check_sample(q=q, qd=qd)
        return mechanics.coriolis_matrix(self.mass_matrix, q, qd)

    def gravity(self, q: Vec) -> Vec:
        self.check_sample(q=q)
        return mechanics.value_and_jacfwd(self.potential_energy, q)[1]

    def kinetic_energy(self, q: Vec, qd: Vec) -> Scalar:
        self.check_sample(q=q, qd=qd)
        return mechanics.structured_kinetic_energy(self.mass_matrix, q, qd)

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        return self.kinetic_energy(q, qd) - self.potential_energy(q)

    def momentum(self, q: Vec, qd: Vec) -> Vec:
        self.check_sample(q=q, qd=qd)
        return self.mass_matrix(q) @ qd

    def decomposition(self, q: Vec, qd: Vec, qdd: Vec) -> dict[str, Vec]:
        t = self.terms(q, qd)
        return {
            "inertial": t.mass_matrix @ qdd,
            "coriolis": t.coriolis,
            "gravity": t.gravity,
            "friction": self.friction(q, qd),
        }


class LagrangianSystem(System):
    """A system given by a general scalar ``L(q, qd)``: subclasses implement :meth:`lagrangian`.

    ``mass_matrix`` is the Hessian ``d^2L/dqd^2`` at rest (``qd = 0``) unless a
    velocity is given; ``gravity`` is ``-dL/dq`` at rest and ``coriolis`` the rest of
    the velocity-dependent force. Forward dynamics solves with the Hessian; where it is
    singular, :meth:`solve_forward_dynamics` flags it and :meth:`forward_dynamics` is NaN
    (the batched edge raises :class:`~lagrax.core.errors.SingularHessianError`).
    """

    PROVIDES: ClassVar[frozenset[str]] = LAGRANGIAN_QUANTITIES - {"coriolis_matrix"}
    SINGULAR_MESSAGE: ClassVar[str] = (
        "the Lagrangian's Hessian d^2L/dqd^2 is singular (or, in a rollout, indefinite) at this "
        "state, so the accelerations are undefined (check the Lagrangian, or regularise it)"
    )

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        raise NotImplementedError

    def terms(self, q: Vec, qd: Vec) -> mechanics.GeneralTerms:
        """Hessian, mixed term, ``dL/dq`` and momentum at one state (forward over reverse)."""
        self.check_sample(q=q, qd=qd)
        return mechanics.general_terms(self.lagrangian, q, qd)

    def solve_forward_dynamics(self, q: Vec, qd: Vec, tau: Vec, regularization: float = 0.0) -> SolveResult:
        self.check_sample(q=q, qd=qd, tau=tau)
        qdd, singular = mechanics.general_forward_dynamics(
            self.terms(q, qd), tau, self.friction(q, qd), regularization
        )
        return SolveResult(qdd, singular)

    def solve_motion(self, q: Vec, qd: Vec, tau: Vec) -> SolveResult:
        """As :meth:`System.solve_motion`, flagged also where the Hessian is not definite: an
        indefinite ``d^2L/dqd^2`` solves, but its motion is not that of a Lagrangian system."""
        self.check_sample(q=q, qd=qd, tau=tau)
        terms = self.terms(q, qd)
        qdd, singular = mechanics.general_forward_dynamics(terms, tau, self.friction(q, qd))
        singular = singular | ~mechanics.definite(terms.hessian)
        return SolveResult(qdd, singular | ~jnp.all(jnp.isfinite(qdd)))

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        qdd, singular = self.solve_forward_dynamics(q, qd, tau)
        return jnp.where(singular, jnp.nan, qdd)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        self.check_sample(q=q, qd=qd, qdd=qdd)
        return mechanics.general_inverse_dynamics(self.terms(q, qd), qdd, self.friction(q, qd))

    def inverse_and_forward_dynamics(
        self, q: Vec, qd: Vec, qdd: Vec, tau: Vec, regularization: float = 0.0
    ) -> tuple[Vec, SolveResult]:
        self.check_sample(q=q, qd=qd, qdd=qdd, tau=tau)
        terms, friction = self.terms(q, qd), self.friction(q, qd)
        return (
            mechanics.general_inverse_dynamics(terms, qdd, friction),
            mechanics.general_forward_dynamics(terms, tau, friction, regularization),
        )

    def mass_matrix(self, q: Vec, qd: Vec | None = None) -> Mat:
        qd = jnp.zeros_like(q) if qd is None else qd
        return self.terms(q, qd).hessian

    def gravity(self, q: Vec) -> Vec:
        self.check_sample(q=q)
        return -jax.grad(self.lagrangian, argnums=0)(q, jnp.zeros_like(q))

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        t = self.terms(q, qd)
        return t.mixed_qd - t.dL_dq - self.gravity(q)

    def potential_energy(self, q: Vec) -> Scalar:
        self.check_sample(q=q)
        return mechanics.general_potential_energy(self.lagrangian, q)

    def energy(self, q: Vec, qd: Vec) -> Scalar:
        self.check_sample(q=q, qd=qd)
        return mechanics.general_energy(self.lagrangian, q, qd)

    def kinetic_energy(self, q: Vec, qd: Vec) -> Scalar:
        return self.energy(q, qd) - self.potential_energy(q)

    def momentum(self, q: Vec, qd: Vec) -> Vec:
        self.check_sample(q=q, qd=qd)
        return jax.grad(self.lagrangian, argnums=1)(q, qd)

    def decomposition(self, q: Vec, qd: Vec, qdd: Vec) -> dict[str, Vec]:
        t = self.terms(q, qd)
        g = self.gravity(q)
        return {
            "inertial": t.hessian @ qdd,
            "coriolis": t.mixed_qd - t.dL_dq - g,
            "gravity": g,
            "friction": self.friction(q, qd),
        }


# --------------------------------------------------------------------------------------
# User-defined systems from plain JAX functions
# --------------------------------------------------------------------------------------


class FunctionLagrangianSystem(LagrangianSystem):
    """A general system from a user's ``L(q, qd)`` (see :func:`lagrangian_system`)."""

    fn: Callable = eqx.field(static=True)
    friction_fn: Callable | None = eqx.field(static=True, default=None)

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        return self.fn(q, qd)

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return jnp.zeros_like(qd) if self.friction_fn is None else self.friction_fn(q, qd)


class FunctionStructuredSystem(StructuredSystem):
    """A structured system from a user's ``M(q)`` and ``V(q)`` (see :func:`structured_system`)."""

    mass_fn: Callable = eqx.field(static=True)
    potential_fn: Callable = eqx.field(static=True)
    friction_fn: Callable | None = eqx.field(static=True, default=None)

    def mass_matrix(self, q: Vec) -> Mat:
        return self.mass_fn(q)

    def potential_energy(self, q: Vec) -> Scalar:
        return self.potential_fn(q)

    def friction(self, q: Vec, qd: Vec) -> Vec:
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
    meta = SystemInfo.make(name, dof, joint_names, joint_types, actuated, **info)
    _check_output_shape(L, meta, "L(q, qd)", (), 2)
    return FunctionLagrangianSystem(info=meta, fn=L, friction_fn=friction)


def _check_output_shape(fn: Callable, info: "SystemInfo", what: str, expected: tuple, arity: int) -> None:
    """Trace ``fn`` on zeros of the system's size (no computation) and check its output shape."""
    n = info.dof
    args = [jax.ShapeDtypeStruct((n,), jnp.result_type(float))] * arity
    try:
        out = jax.eval_shape(fn, *args)
    except Exception as e:  # the user's function itself failed on (n,) inputs
        raise ShapeError(
            f"{info.name}: {what} fails on inputs of shape ({n},): {type(e).__name__}: {e}"
        ) from None
    shape = getattr(out, "shape", None)
    if shape != expected:
        raise ShapeError(
            f"{info.name}: {what} returns shape {shape}, expected {expected} for a system of {n} joints"
        )


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
    meta = SystemInfo.make(name, dof, joint_names, joint_types, actuated, **info)
    _check_output_shape(mass_matrix, meta, "M(q)", (dof, dof), 1)
    _check_output_shape(potential, meta, "V(q)", (), 1)
    return FunctionStructuredSystem(
        info=meta, mass_fn=mass_matrix, potential_fn=potential, friction_fn=friction
    )
