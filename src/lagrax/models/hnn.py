"""Hamiltonian Neural Networks: a black-box ``H(q, p)`` and the structured ``H = 1/2 p^T M^-1 p + V``.

* :class:`HNN` (Greydanus, Dzamba & Yosinski 2019): one network ``H(q, p)`` (revolute
  ``q`` enter as ``cos q, sin q``). Its canonical equations
  ``qdot = dH/dp, pdot = -dH/dq + tau`` are :meth:`HNN.canonical_time_derivative`, the thing
  it is trained on. To be used like any other system from ``(q, qd)`` it needs the
  momentum ``p``; the spec's ``momentum`` (a :class:`Momentum`) says where it comes from:

  - ``VELOCITY``: ``p := qd``, the common shortcut when a dataset has no momenta.
    Forward dynamics is then ``qdd = pdot = -dH/dq + tau``. It is only right when
    ``qd`` *is* the canonical momentum (unit mass matrix); the LNN paper's
    relativistic particle (Cranmer et al. 2020, sec. 5) is the documented failure of
    an HNN fed this non-canonical ``p``, and lagrax keeps the option to reproduce it.
  - ``CANONICAL``: ``p`` is the true momentum (the dataset's ``p`` field). The map
    ``qd -> p`` is only implicit in a black-box H (``qd = dH/dp(q, p)``), so lagrax
    solves it with a fixed number of Newton steps using the Hessian ``d^2H/dp^2``
    (starting from ``p = 0``; exact after one step for a ``H`` quadratic in ``p``),
    and differentiates the canonical flow for the accelerations:
    ``qdd = d/dt dH/dp = (d^2H/dp dq) qd + (d^2H/dp^2) pdot``. Where ``d^2H/dp^2``
    is singular or the iteration has not converged, the public methods raise
    :class:`~lagrax.core.errors.SingularHessianError`; rollouts stop with an error. Never
    a silent NaN.

  A black-box H does not split into kinetic and potential energy, so ``mass_matrix``,
  ``coriolis``, ``gravity``, ``kinetic_energy`` and ``potential_energy`` raise
  :class:`~lagrax.core.errors.NotProvidedError`; ``energy(q, qd)`` is ``H(q, p(q, qd))``.

* :class:`StructuredHNN` (Lutter & Peters 2023, "Combining physics and deep learning
  to learn continuous-time dynamics models"): ``M(q)`` from DeLaN's
  :class:`~lagrax.models.delan.CholeskyMassNetwork` (SPD by construction) and ``V(q)``
  from its :class:`~lagrax.models.delan.PotentialNetwork`. It *is* a structured
  mechanical system, so forward and inverse dynamics, ``c``, ``g`` and energies come
  from the mechanics core exactly as for DeLaN; the model class is the same as
  DeLaN's. What differs is the training target: the reference trains it on the
  canonical time derivative ``(qdot, pdot)`` of :meth:`StructuredHNN.canonical_time_derivative`
  given ``(q, p)``, where DeLaN is trained on ``qdd`` or ``tau`` given ``(q, qd)``.

:func:`lagrax.systems.rollout.simulate_canonical` integrates either model in canonical
coordinates ``(q, p)``, along which an HNN conserves its own ``H`` (with ``tau = 0``).
**The specs.** :class:`HNNSpec` (width, depth, activation, initialisation, precision,
momentum, Newton steps; softplus and equinox's default initialisation by default) and
:class:`StructuredHNNSpec` (as DeLaN's networks: width, depth, activation, Xavier
initialisation, shift, epsilon, precision) hold the hyper-parameters;
``spec.build(info, key=key)`` draws the weights and the model keeps the spec as
``model.spec``.

This module does not train (see the training module) and has no friction model for
the black-box HNN (the canonical form of Greydanus et al. is conservative + input).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from lagrax.core.options import Activation, Init, Option, Precision
from lagrax.systems.base import LAGRANGIAN_QUANTITIES, StructuredSystem, System, SystemInfo
from lagrax.models.delan import CholeskyMassNetwork, PotentialNetwork
from lagrax.models.nets import feature_size, joint_features, network
from lagrax.models.spec import (
    CHARACTER_OPTIMISER,
    ModelSpec,
    Recipe,
    Specified,
    check_at_least,
    check_positive,
)


class Momentum(Option):
    """Where a black-box HNN's momentum comes from: ``p := qd``, or solved from ``qd = dH/dp``."""

    VELOCITY = "velocity"
    CANONICAL = "canonical"

    @classmethod
    def label(cls) -> str:
        return "HNN momentum option"


@dataclasses.dataclass(frozen=True)
class HNNSpec(ModelSpec):
    """The hyper-parameters of a black-box :class:`HNN`.

    Attributes:
        width, depth, activation, init: the network ``[features(q), p] -> H`` (a smooth
            activation: the dynamics are its derivatives).
        precision: parameter dtype; inputs are cast to it.
        momentum: ``VELOCITY`` (``p = qd``) or ``CANONICAL`` (``p`` from the data;
            ``p(q, qd)`` solved by ``newton_steps`` Newton iterations when needed).
        newton_steps: Newton iterations of the canonical momentum, >= 1.
    """

    kind: ClassVar[str] = "hnn"

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.SOFTPLUS
    init: Init = Init.DEFAULT
    precision: Precision = Precision.FLOAT32
    momentum: Momentum = Momentum.VELOCITY
    newton_steps: int = 8

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        check_at_least(self, "newton_steps", 1)

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "HNN":
        """A black-box HNN for the system described by ``info``, weights drawn from ``key``."""
        net = network(
            feature_size(info.joint_types) + info.dof,
            "scalar",
            self.width,
            self.depth,
            self.activation,
            key=key,
            init=self.init,
            precision=self.precision,
        )
        return HNN(info=info, net=net, spec=self)


@dataclasses.dataclass(frozen=True)
class StructuredHNNSpec(ModelSpec):
    """The hyper-parameters of a :class:`StructuredHNN` (DeLaN's separate networks).

    Attributes:
        width, depth, activation, init: of the mass and the potential network.
        shift, epsilon: the diagonal of the Cholesky factor is ``softplus(raw + shift) + epsilon``.
        precision: parameter dtype; inputs are cast to it.
    """

    kind: ClassVar[str] = "hnn_structured"
    # DeLaN's optimiser recipe, fitting Hamilton's equations instead of the torques
    RECIPE = Recipe({**CHARACTER_OPTIMISER, "inverse": 0.0, "canonical": 1.0})

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.SOFTPLUS
    init: Init = Init.XAVIER
    shift: float = 0.0
    epsilon: float = 1e-2
    precision: Precision = Precision.FLOAT32

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        check_positive(self, "epsilon")

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "StructuredHNN":
        """A structured HNN for the system described by ``info``, weights drawn from ``key``."""
        common = dict(
            width=self.width,
            depth=self.depth,
            activation=self.activation,
            init=self.init,
            precision=self.precision,
        )
        k_mass, k_pot = jax.random.split(key)
        mass = CholeskyMassNetwork(
            info.joint_types, key=k_mass, shift=self.shift, epsilon=self.epsilon, **common
        )
        potential = PotentialNetwork(info.joint_types, key=k_pot, **common)
        return StructuredHNN(info=info, mass_net=mass, potential_net=potential, spec=self)


NEWTON_MESSAGE = (
    "the HNN's d^2H/dp^2 is singular or the Newton solve of qd = dH/dp(q, p) for the momentum "
    "did not converge at this state, so p(q, qd) and the accelerations are undefined "
    "(use momentum='velocity', more newton_steps, or a model whose H is convex in p)"
)


class HNN(Specified, System):
    """Hamiltonian Neural Network: a black-box scalar ``H(q, p)``.

    Attributes:
        net: ``[features(q), p] -> H``; any callable on that vector works (tests put a
            closed-form Hamiltonian here).
        spec: the :class:`HNNSpec` it was built from (static): momentum mode, Newton
            steps and the precision inputs are cast to.
    """

    net: Callable
    spec: HNNSpec = eqx.field(static=True)

    PROVIDES: ClassVar[frozenset[str]] = frozenset(
        {
            "forward_dynamics",
            "inverse_dynamics",
            "momentum",
            "energy",
            "hamiltonian",
            "canonical_time_derivative",
            "power",
            "energy_rate",
            "friction",
        }
    )
    SINGULAR_MESSAGE: ClassVar[str] = NEWTON_MESSAGE
    SINGULAR_METHODS: ClassVar[frozenset[str]] = frozenset(
        {"inverse_dynamics", "momentum", "energy", "energy_rate"}
    )

    def not_provided_reason(self) -> str:
        return (
            "an HNN learns one black-box Hamiltonian H(q, p), which does not separate into a "
            "mass matrix, kinetic and potential energy"
        )

    # ---- the Hamiltonian and its canonical flow -----------------------------------------
    def _cast(self, *xs):
        return tuple(x.astype(self.spec.precision.dtype) for x in xs)

    @property
    def _velocity_momentum(self) -> bool:
        return self.spec.momentum is Momentum.VELOCITY

    def hamiltonian(self, q: Float[Array, " n"], p: Float[Array, " n"]) -> Scalar:
        """``H(q, p)``, the network's output."""
        q, p = self._cast(q, p)
        return self.net(jnp.concatenate([joint_features(q, self.info.joint_types), p]))

    def canonical_time_derivative(
        self, q: Float[Array, " n"], p: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """``(qdot, pdot) = (dH/dp, -dH/dq + tau)``."""
        # Greydanus et al. 2019, eq. 2 (plus the generalised input force tau)
        out = jnp.result_type(q, p, tau)
        q, p, tau = self._cast(q, p, tau)
        dH_dq, dH_dp = jax.grad(self.hamiltonian, argnums=(0, 1))(q, p)
        return dH_dp.astype(out), (tau - dH_dq).astype(out)

    # ---- from (q, qd): the momentum ------------------------------------------------------
    def _hessians(self, q, p):
        """``dH/dq``, ``dH/dp``, ``d^2H/dp dq`` and ``d^2H/dp^2`` at one state."""
        grad_p = jax.grad(self.hamiltonian, argnums=1)
        dH_dq = jax.grad(self.hamiltonian, argnums=0)(q, p)
        H_pq, H_pp = jax.jacfwd(grad_p, argnums=(0, 1))(q, p)
        return dH_dq, grad_p(q, p), H_pq, H_pp

    def _canonical_momentum(self, q, qd):
        """``p`` with ``dH/dp(q, p) = qd`` (Newton from ``p = 0``) and a did-not-converge flag."""
        grad_p = jax.grad(self.hamiltonian, argnums=1)

        def step(_, p):
            H_pp = jax.jacfwd(grad_p, argnums=1)(q, p)
            return p - jnp.linalg.solve(H_pp, grad_p(q, p) - qd)

        p = jax.lax.fori_loop(0, self.spec.newton_steps, step, jnp.zeros_like(qd))
        residual = jnp.linalg.norm(grad_p(q, p) - qd)
        tol = jnp.sqrt(jnp.finfo(qd.dtype).eps) * (1.0 + jnp.linalg.norm(qd))
        failed = ~(residual <= tol) | ~jnp.all(jnp.isfinite(p))
        return p, failed

    def momentum(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """``p``: ``qd`` itself (velocity) or the solution of ``dH/dp(q, p) = qd`` (canonical;
        NaN where the Newton solve fails)."""
        out = jnp.result_type(q, qd)
        q, qd = self._cast(q, qd)
        if self._velocity_momentum:
            return qd.astype(out)
        p, failed = self._canonical_momentum(q, qd)
        return jnp.where(failed, jnp.nan, p).astype(out)

    # ---- dynamics and energy from (q, qd) ------------------------------------------------
    def forward_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """``qdd``: ``pdot`` with ``p = qd`` (velocity), or ``d/dt dH/dp`` with ``p`` solved
        (canonical; NaN where the Newton solve fails)."""
        out = jnp.result_type(q, qd, tau)
        q, qd, tau = self._cast(q, qd, tau)
        if self._velocity_momentum:
            return self.canonical_time_derivative(q, qd, tau)[1].astype(out)
        p, failed = self._canonical_momentum(q, qd)
        dH_dq, _, H_pq, H_pp = self._hessians(q, p)
        qdd = H_pq @ qd + H_pp @ (tau - dH_dq)  # d/dt dH/dp along the canonical flow
        return jnp.where(failed, jnp.nan, qdd).astype(out)

    def inverse_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], qdd: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """``tau`` that gives ``qdd`` (NaN where the canonical Newton solve fails)."""
        out = jnp.result_type(q, qd, qdd)
        q, qd, qdd = self._cast(q, qd, qdd)
        if self._velocity_momentum:
            return (qdd + jax.grad(self.hamiltonian, argnums=0)(q, qd)).astype(out)
        p, failed = self._canonical_momentum(q, qd)
        dH_dq, _, H_pq, H_pp = self._hessians(q, p)
        pdot = jnp.linalg.solve(H_pp, qdd - H_pq @ qd)
        return jnp.where(failed, jnp.nan, pdot + dH_dq).astype(out)

    def energy(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Scalar:
        """``H(q, p(q, qd))``."""
        return self.hamiltonian(q, self.momentum(q, qd)).astype(jnp.result_type(q, qd))


class StructuredHNN(Specified, StructuredSystem):
    """Structured HNN: ``H = 1/2 p^T M(q)^-1 p + V(q)`` with DeLaN's mass and potential networks.

    A :class:`StructuredSystem`: dynamics from ``(q, qd)`` come from the mechanics
    core. :meth:`canonical_time_derivative` is the canonical form used for training on ``(p, pdot)``.
    """

    PROVIDES: ClassVar[frozenset[str]] = LAGRANGIAN_QUANTITIES | {"hamiltonian", "canonical_time_derivative"}

    mass_net: CholeskyMassNetwork
    potential_net: PotentialNetwork
    spec: StructuredHNNSpec = eqx.field(static=True)

    @property
    def dtype(self):
        """The parameters' dtype (``spec.precision``)."""
        return self.spec.precision.dtype

    def mass_matrix(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``M(q) = L(q) L(q)^T``."""
        return self.mass_net(q.astype(self.dtype))

    def potential_energy(self, q: Float[Array, " n"]) -> Scalar:
        """``V(q)``."""
        return self.potential_net(q.astype(self.dtype))

    def hamiltonian(self, q: Float[Array, " n"], p: Float[Array, " n"]) -> Scalar:
        """``H(q, p) = 1/2 p^T M(q)^-1 p + V(q)``."""
        q, p = q.astype(self.dtype), p.astype(self.dtype)
        chol = self.mass_net.cholesky(q)
        return 0.5 * p @ cho_solve((chol, True), p) + self.potential_net(q)

    def canonical_time_derivative(
        self, q: Float[Array, " n"], p: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """``(qdot, pdot) = (M^-1 p, -dH/dq + tau - friction)``."""
        out = jnp.result_type(q, p, tau)
        q, p, tau = (x.astype(self.dtype) for x in (q, p, tau))
        qdot = cho_solve((self.mass_net.cholesky(q), True), p)  # dH/dp = M^-1 p
        # dH/dq = -1/2 qdot^T (dM/dq) qdot + dV/dq, with qdot held fixed
        dT_dq = jax.grad(lambda q_: 0.5 * qdot @ self.mass_net(q_) @ qdot)(q)
        dV_dq = jax.grad(self.potential_net)(q)
        pdot = dT_dq - dV_dq + tau - self.friction(q, qdot)
        return qdot.astype(out), pdot.astype(out)
