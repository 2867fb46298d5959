"""Hamiltonian Neural Networks: a black-box ``H(q, p)`` and the structured ``H = 1/2 p^T M^-1 p + V``.

* :class:`HNN` (Greydanus, Dzamba & Yosinski 2019): one network ``H(q, p)`` (revolute
  ``q`` enter as ``cos q, sin q``). Its canonical equations
  ``qdot = dH/dp, pdot = -dH/dq + tau`` are :meth:`HNN.canonical_time_derivative`, the thing
  it is trained on. To be used like any other system from ``(q, qd)`` it needs the
  momentum ``p``; the ``momentum`` option says where it comes from:

  - ``"velocity"``: ``p := qd``, the common shortcut when a dataset has no momenta.
    Forward dynamics is then ``qdd = pdot = -dH/dq + tau``. It is only right when
    ``qd`` *is* the canonical momentum (unit mass matrix); the LNN paper's
    relativistic particle (Cranmer et al. 2020, sec. 5) is the documented failure of
    an HNN fed this non-canonical ``p``, and lagrax keeps the option to reproduce it.
  - ``"canonical"``: ``p`` is the true momentum (the dataset's ``p`` field). The map
    ``qd -> p`` is only implicit in a black-box H (``qd = dH/dp(q, p)``), so lagrax
    solves it with a fixed number of Newton steps using the Hessian ``d^2H/dp^2``
    (starting from ``p = 0``; exact after one step for a ``H`` quadratic in ``p``),
    and differentiates the canonical flow for the accelerations:
    ``qdd = d/dt dH/dp = (d^2H/dp dq) qd + (d^2H/dp^2) pdot``. Where ``d^2H/dp^2``
    is singular or the iteration has not converged, the public methods raise
    :class:`~lagrax.errors.SingularHessianError`; rollouts stop with an error. Never
    a silent NaN.

  A black-box H does not split into kinetic and potential energy, so ``mass_matrix``,
  ``coriolis``, ``gravity``, ``kinetic_energy`` and ``potential_energy`` raise
  :class:`~lagrax.errors.NotProvidedError`; ``energy(q, qd)`` is ``H(q, p(q, qd))``.

* :class:`StructuredHNN` (Lutter & Peters 2023, "Combining physics and deep learning
  to learn continuous-time dynamics models"): ``M(q)`` from DeLaN's
  :class:`~lagrax.models.delan.CholeskyMassNetwork` (SPD by construction) and ``V(q)``
  from its :class:`~lagrax.models.delan.PotentialNetwork`. It *is* a structured
  mechanical system, so forward and inverse dynamics, ``c``, ``g`` and energies come
  from the mechanics core exactly as for DeLaN; the model class is the same as
  DeLaN's. What differs is the training target: the reference trains it on the
  canonical time derivative ``(qdot, pdot)`` of :meth:`StructuredHNN.canonical_time_derivative`
  given ``(q, p)``, where DeLaN is trained on ``qdd`` or ``tau`` given ``(q, qd)``.

:func:`lagrax.rollout.simulate_canonical` integrates either model in canonical
coordinates ``(q, p)``, along which an HNN conserves its own ``H`` (with ``tau = 0``).
This module does not train (see the training module) and has no friction model for
the black-box HNN (the canonical form of Greydanus et al. is conservative + input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from ..errors import ShapeError, UnknownNameError
from ..systems.base import LAGRANGIAN_QUANTITIES, StructuredSystem, System, SystemInfo
from .delan import CholeskyMassNetwork, PotentialNetwork, resolve_dtype
from .nets import feature_size, joint_features, mlp

MOMENTA = ("velocity", "canonical")


def with_param_dtype(module, dtype: str):
    """``module`` with every floating-point array cast to ``dtype``.

    Factories initialise in float32 and cast, because random draws in float64 are
    different numbers: this way a float32 and a float64 model built with one key
    agree to float32 precision.
    """
    target = resolve_dtype(dtype)
    return jax.tree_util.tree_map(lambda x: x.astype(target) if eqx.is_inexact_array(x) else x, module)


NEWTON_MESSAGE = (
    "the HNN's d^2H/dp^2 is singular or the Newton solve of qd = dH/dp(q, p) for the momentum "
    "did not converge at this state, so p(q, qd) and the accelerations are undefined "
    "(use momentum='velocity', more newton_steps, or a model whose H is convex in p)"
)


class HNN(System):
    """Hamiltonian Neural Network: a black-box scalar ``H(q, p)``.

    Attributes:
        net: ``[features(q), p] -> H``; any callable on that vector works (tests put a
            closed-form Hamiltonian here).
        momentum: ``"velocity"`` (``p = qd``) or ``"canonical"`` (``p`` solved from ``qd``).
        newton_steps: Newton iterations for ``p(q, qd)`` when canonical.
        dtype: parameter dtype name; inputs are cast to it.
    """

    net: Callable
    kind: str = eqx.field(static=True, default="hnn")
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())
    momentum_mode: str = eqx.field(static=True, default="velocity")
    newton_steps: int = eqx.field(static=True, default=8)
    dtype: str = eqx.field(static=True, default="float32")

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
        dt = resolve_dtype(self.dtype)
        return tuple(x.astype(dt) for x in xs)

    def hamiltonian(self, q: Float[Array, " n"], p: Float[Array, " n"]) -> Scalar:
        q, p = self._cast(q, p)
        return self.net(jnp.concatenate([joint_features(q, self.info.joint_types), p]))

    def canonical_time_derivative(self, q, p, tau) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
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

        p = jax.lax.fori_loop(0, self.newton_steps, step, jnp.zeros_like(qd))
        residual = jnp.linalg.norm(grad_p(q, p) - qd)
        tol = jnp.sqrt(jnp.finfo(qd.dtype).eps) * (1.0 + jnp.linalg.norm(qd))
        failed = ~(residual <= tol) | ~jnp.all(jnp.isfinite(p))
        return p, failed

    def momentum(self, q, qd):
        """``p``: ``qd`` itself (velocity) or the solution of ``dH/dp(q, p) = qd`` (canonical;
        NaN where the Newton solve fails)."""
        out = jnp.result_type(q, qd)
        q, qd = self._cast(q, qd)
        if self.momentum_mode == "velocity":
            return qd.astype(out)
        p, failed = self._canonical_momentum(q, qd)
        return jnp.where(failed, jnp.nan, p).astype(out)

    # ---- dynamics and energy from (q, qd) ------------------------------------------------
    def forward_dynamics(self, q, qd, tau):
        """``qdd``: ``pdot`` with ``p = qd`` (velocity), or ``d/dt dH/dp`` with ``p`` solved
        (canonical; NaN where the Newton solve fails)."""
        out = jnp.result_type(q, qd, tau)
        q, qd, tau = self._cast(q, qd, tau)
        if self.momentum_mode == "velocity":
            return self.canonical_time_derivative(q, qd, tau)[1].astype(out)
        p, failed = self._canonical_momentum(q, qd)
        dH_dq, _, H_pq, H_pp = self._hessians(q, p)
        qdd = H_pq @ qd + H_pp @ (tau - dH_dq)  # d/dt dH/dp along the canonical flow
        return jnp.where(failed, jnp.nan, qdd).astype(out)

    def inverse_dynamics(self, q, qd, qdd):
        out = jnp.result_type(q, qd, qdd)
        q, qd, qdd = self._cast(q, qd, qdd)
        if self.momentum_mode == "velocity":
            return (qdd + jax.grad(self.hamiltonian, argnums=0)(q, qd)).astype(out)
        p, failed = self._canonical_momentum(q, qd)
        dH_dq, _, H_pq, H_pp = self._hessians(q, p)
        pdot = jnp.linalg.solve(H_pp, qdd - H_pq @ qd)
        return jnp.where(failed, jnp.nan, pdot + dH_dq).astype(out)

    def energy(self, q, qd):
        """``H(q, p(q, qd))``."""
        return self.hamiltonian(q, self.momentum(q, qd)).astype(jnp.result_type(q, qd))


class StructuredHNN(StructuredSystem):
    """Structured HNN: ``H = 1/2 p^T M(q)^-1 p + V(q)`` with DeLaN's mass and potential networks.

    A :class:`StructuredSystem`: dynamics from ``(q, qd)`` come from the mechanics
    core. :meth:`canonical_time_derivative` is the canonical form used for training on ``(p, pdot)``.
    """

    PROVIDES: ClassVar[frozenset[str]] = LAGRANGIAN_QUANTITIES | {"hamiltonian", "canonical_time_derivative"}

    mass_net: CholeskyMassNetwork
    potential_net: PotentialNetwork
    kind: str = eqx.field(static=True, default="hnn_structured")
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())

    @property
    def dtype(self):
        return self.mass_net.net.layers[0].weight.dtype

    def mass_matrix(self, q):
        return self.mass_net(q.astype(self.dtype))

    def potential_energy(self, q):
        return self.potential_net(q.astype(self.dtype))

    def hamiltonian(self, q, p) -> Scalar:
        q, p = q.astype(self.dtype), p.astype(self.dtype)
        chol = self.mass_net.cholesky(q)
        return 0.5 * p @ cho_solve((chol, True), p) + self.potential_net(q)

    def canonical_time_derivative(self, q, p, tau):
        out = jnp.result_type(q, p, tau)
        q, p, tau = (x.astype(self.dtype) for x in (q, p, tau))
        qdot = cho_solve((self.mass_net.cholesky(q), True), p)  # dH/dp = M^-1 p
        # dH/dq = -1/2 qdot^T (dM/dq) qdot + dV/dq, with qdot held fixed
        dT_dq = jax.grad(lambda q_: 0.5 * qdot @ self.mass_net(q_) @ qdot)(q)
        dV_dq = jax.grad(self.potential_net)(q)
        pdot = dT_dq - dV_dq + tau - self.friction(q, qdot)
        return qdot.astype(out), pdot.astype(out)


def make_hnn(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "softplus",
    init: str = "default",
    dtype: str = "float32",
    momentum: str = "velocity",
    newton_steps: int = 8,
) -> HNN:
    """A black-box HNN for the system described by ``info``.

    Args:
        width, depth, activation, init: the network ``[features(q), p] -> H``
            (a smooth activation: the dynamics are its derivatives).
        dtype: ``"float32"`` or ``"float64"`` parameters.
        momentum: ``"velocity"`` (``p = qd``) or ``"canonical"`` (``p`` from the data;
            ``p(q, qd)`` solved by ``newton_steps`` Newton iterations when needed).
    """
    if momentum not in MOMENTA:
        raise UnknownNameError.for_name("HNN momentum option", momentum, MOMENTA)
    if int(newton_steps) < 1:
        raise ShapeError(f"newton_steps must be >= 1, got {newton_steps}")
    net = mlp(
        feature_size(info.joint_types) + info.dof,
        "scalar",
        width,
        depth,
        activation,
        key=key,
        init=init,
        dtype=jnp.float32,
    )
    resolve_dtype(dtype)  # an unknown name fails here, before anything is built
    hyper = dict(
        width=int(width),
        depth=int(depth),
        activation=activation,
        init=init,
        dtype=dtype,
        momentum=momentum,
        newton_steps=int(newton_steps),
    )
    return HNN(
        info=info,
        net=with_param_dtype(net, dtype),
        kind="hnn",
        hyperparameters=tuple(hyper.items()),
        momentum_mode=momentum,
        newton_steps=int(newton_steps),
        dtype=dtype,
    )


def make_structured_hnn(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "softplus",
    init: str = "xavier",
    shift: float = 0.0,
    epsilon: float = 1e-2,
    dtype: str = "float32",
) -> StructuredHNN:
    """A structured HNN (``M = L L^T`` and ``V`` networks as in DeLaN) for ``info``.

    ``shift``, ``epsilon``: the diagonal of the Cholesky factor is ``softplus(raw + shift) + epsilon``.
    """
    hyper = dict(
        width=int(width),
        depth=int(depth),
        activation=activation,
        init=init,
        shift=float(shift),
        epsilon=float(epsilon),
        dtype=dtype,
    )
    resolve_dtype(dtype)
    common = dict(width=width, depth=depth, activation=activation, init=init, dtype="float32")
    k_mass, k_pot = jax.random.split(key)
    model = StructuredHNN(
        info=info,
        mass_net=CholeskyMassNetwork(info.joint_types, key=k_mass, shift=shift, epsilon=epsilon, **common),
        potential_net=PotentialNetwork(info.joint_types, key=k_pot, **common),
        kind="hnn_structured",
        hyperparameters=tuple(hyper.items()),
    )
    return with_param_dtype(model, dtype)
