"""Lagrangian Neural Networks (Cranmer, Greydanus, Hoyer, Battaglia, Spergel & Ho, 2020).

An LNN learns an arbitrary scalar Lagrangian ``L(q, qd)`` with an MLP and gets its
dynamics from the Euler-Lagrange equation (Cranmer et al. eq. 6),

    qdd = (d^2L/dqd^2)^-1 [dL/dq - (d^2L/dqd dq) qd + tau - friction],

derived once in :mod:`lagrax.mechanics` (the model is a
:class:`~lagrax.systems.LagrangianSystem`). Revolute joints enter the network as
``(cos q, sin q)``, prismatic ones as they are; velocities enter as they are.

The network is an ordinary field ``network(q, qd) -> scalar``, so any callable
Lagrangian can take its place (``eqx.tree_at(lambda m: m.network, lnn, L)``), which
is how the tests check the model path against a known system.

**Singular Hessians.** Nothing makes a learned ``d^2L/dqd^2`` invertible. lagrax
keeps two paths apart:

* the public ``forward_dynamics`` (and rollouts) solve the *unregularised*
  Euler-Lagrange equation, the model's actual dynamics, and raise
  :class:`~lagrax.errors.SingularHessianError` where the accelerations are undefined;
* training calls ``solve_forward_dynamics(q, qd, tau, regularization)``, which
  adds Tikhonov ``lambda I`` to the Hessian with ``lambda = max(model.regularization,
  regularization)`` and returns a singular flag instead of raising, so one bad sample
  neither stops a jitted training scan nor sends its gradient to infinity.

``regularization`` defaults to ``1e-6``: in float32 a Hessian whose reciprocal
condition number is below ``n * eps ~ 1e-7 n`` is numerically singular anyway, and
on the O(1) Hessians of normalised mechanical data the shift changes accelerations by
~1e-6 relative, below float32 training noise. :meth:`LNN.singular_count` reports how
many samples of a batch were singular or changed noticeably by the regularisation.

Not here: training loops, losses (``lagrax.training``), and any special treatment of
``q mod 2 pi`` (the angle features make the model periodic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Scalar

from .. import mechanics
from ..errors import LagraxError, UnknownNameError
from ..systems.base import LagrangianSystem, SystemInfo
from .delan import FRICTIONS, LearnedFriction, init_in_dtype, resolve_dtype
from .nets import feature_size, joint_features, mlp


class LagrangianMLP(eqx.Module):
    """``(q, qd) -> L``: an MLP on ``[features(q), qd]`` with a scalar output."""

    net: eqx.nn.MLP
    joint_types: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        joint_types: Sequence[str],
        *,
        key: PRNGKeyArray,
        width: int = 64,
        depth: int = 2,
        activation: str = "softplus",
        init: str = "lnn",
        dtype: str = "float32",
    ):
        self.joint_types = tuple(joint_types)
        in_size = feature_size(self.joint_types) + len(self.joint_types)
        net = mlp(in_size, "scalar", width, depth, activation, key=key, init=init, dtype=jnp.float32)
        self.net = init_in_dtype(net, dtype)

    def __call__(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Scalar:
        return self.net(jnp.concatenate([joint_features(q, self.joint_types), qd]))


class LNN(LagrangianSystem):
    """A Lagrangian Neural Network; used exactly like a ground-truth :class:`LagrangianSystem`.

    Attributes:
        network: any callable ``(q, qd) -> scalar`` (a :class:`LagrangianMLP` when built
            by :func:`make_lnn`).
        friction_model: ``None`` or a :class:`~lagrax.models.delan.LearnedFriction`.
        regularization: Tikhonov ``lambda`` of the training solve (see module docstring).
        dtype: ``"float32"`` or ``"float64"``; inputs are cast to it.
    """

    network: Callable
    friction_model: LearnedFriction | None
    regularization: float = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def lagrangian(self, q, qd):
        dt = resolve_dtype(self.dtype)
        return self.network(q.astype(dt), qd.astype(dt))

    def friction(self, q, qd):
        if self.friction_model is None:
            return jnp.zeros_like(qd, dtype=resolve_dtype(self.dtype))
        return self.friction_model(qd)

    def _cast(self, *xs):
        dt = resolve_dtype(self.dtype)
        return [x.astype(dt) for x in xs]

    def solve_forward_dynamics(self, q, qd, tau, regularization=0.0) -> mechanics.SolveResult:
        """Accelerations and a singular flag, solving with ``H + regularization * I`` (in the
        parameters' dtype). Training passes its Tikhonov ``lambda`` here (see the module docstring)."""
        q, qd, tau = self._cast(q, qd, tau)
        return super().solve_forward_dynamics(q, qd, tau, regularization)

    def _singular_or_regularised(self, q, qd, tau, regularization, tolerance) -> Bool[Array, ""]:
        q, qd, tau = self._cast(q, qd, tau)
        terms, friction = self.terms(q, qd), self.friction(q, qd)
        exact, singular = mechanics.general_forward_dynamics(terms, tau, friction, 0.0)
        regularised, singular_reg = mechanics.general_forward_dynamics(terms, tau, friction, regularization)
        changed = jnp.linalg.norm(regularised - exact) > tolerance * (jnp.linalg.norm(exact) + tolerance)
        return singular | singular_reg | changed

    def singular_count(
        self, q, qd, tau, *, regularization: float = 1e-6, tolerance: float = 1e-3
    ) -> Int[Array, ""]:
        """How many samples of a batch ``(N, n)`` have a singular Hessian, or accelerations that
        Tikhonov ``regularization`` changes by more than ``tolerance`` (relative, in norm)."""
        flags = _flags(
            self, *(jnp.atleast_2d(jnp.asarray(a)) for a in (q, qd, tau)), regularization, tolerance
        )
        return jnp.sum(flags)


@eqx.filter_jit
def _flags(model: LNN, q, qd, tau, regularization, tolerance):
    return jax.vmap(lambda a, b, c: model._singular_or_regularised(a, b, c, regularization, tolerance))(
        q, qd, tau
    )


def make_lnn(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "softplus",
    init: str = "lnn",
    regularization: float = 1e-6,
    friction: str | None = None,
    dtype: str = "float32",
) -> LNN:
    """An LNN for the system described by ``info``.

    Args:
        width, depth: hidden units per layer and number of hidden layers.
        activation: a smooth activation (the dynamics use second derivatives of the
            network, so ``relu`` gives a zero Hessian); softplus as in the paper.
        init: ``"lnn"`` (Cranmer et al. 2020, Appendix), ``"xavier"``, ``"orthogonal"``
            or ``"default"``.
        regularization: Tikhonov ``lambda >= 0`` of the training solve.
        friction: ``None``, ``"viscous"``, ``"coulomb"`` or ``"stribeck"`` (learned, >= 0).
        dtype: ``"float32"`` or ``"float64"`` parameters.
    """
    if friction not in FRICTIONS:
        raise UnknownNameError.for_name("friction", str(friction), [str(f) for f in FRICTIONS])
    if regularization < 0:
        raise LagraxError(f"regularization must be >= 0, got {regularization}")
    resolve_dtype(dtype)
    hyper = dict(
        width=int(width),
        depth=int(depth),
        activation=activation,
        init=init,
        regularization=float(regularization),
        friction=friction,
        dtype=dtype,
    )
    network = LagrangianMLP(
        info.joint_types, key=key, width=width, depth=depth, activation=activation, init=init, dtype=dtype
    )
    friction_model = None if friction is None else LearnedFriction(info.dof, friction, dtype=dtype)
    return LNN(
        info=info,
        network=network,
        friction_model=friction_model,
        regularization=float(regularization),
        dtype=dtype,
        kind="lnn",
        hyperparameters=tuple(hyper.items()),
    )
