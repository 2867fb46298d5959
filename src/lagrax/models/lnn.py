"""Lagrangian Neural Networks (Cranmer, Greydanus, Hoyer, Battaglia, Spergel & Ho, 2020).

An LNN learns an arbitrary scalar Lagrangian ``L(q, qd)`` with an MLP and gets its
dynamics from the Euler-Lagrange equation (Cranmer et al. eq. 6),

    qdd = (d^2L/dqd^2)^-1 [dL/dq - (d^2L/dqd dq) qd + tau - friction],

derived once in :mod:`lagrax.core.mechanics` (the model is a
:class:`~lagrax.systems.LagrangianSystem`). Revolute joints enter the network as
``(cos q, sin q)``, prismatic ones as they are; velocities enter as they are.

The network is an ordinary field ``network(q, qd) -> scalar``, so any callable
Lagrangian can take its place (``eqx.tree_at(lambda m: m.network, lnn, L)``), which
is how the tests check the model path against a known system.

**Singular Hessians.** Nothing makes a learned ``d^2L/dqd^2`` invertible. lagrax
keeps two paths apart:

* the public ``forward_dynamics`` (and rollouts) solve the *unregularised*
  Euler-Lagrange equation, the model's actual dynamics, and raise
  :class:`~lagrax.core.errors.SingularHessianError` where the accelerations are undefined;
* training calls ``solve_forward_dynamics(q, qd, tau, regularization)``, which
  adds Tikhonov ``lambda I`` to the Hessian and returns a singular flag instead of
  raising, so one bad sample neither stops a jitted training scan nor sends its
  gradient to infinity. The training configuration owns ``lambda``
  (``TrainConfig.regularization``); the model has no regularisation of its own.

The training default ``lambda = 1e-6``: in float32 a Hessian whose reciprocal
condition number is below ``n * eps ~ 1e-7 n`` is numerically singular anyway, and
on the O(1) Hessians of normalised mechanical data the shift changes accelerations by
~1e-6 relative, below float32 training noise. :meth:`LNN.singular_count` reports how
many samples of a batch were singular or changed noticeably by a regularisation.

**The spec.** :class:`LNNSpec` holds the hyper-parameters (width, depth, activation,
initialisation, friction, precision; softplus and the paper's initialisation by
default); ``LNNSpec(...).build(info, key=key)`` draws the weights, and the model keeps
the spec as ``model.spec``.

Not here: training loops, losses (``lagrax.training``), and any special treatment of
``q mod 2 pi`` (the angle features make the model periodic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Scalar

from lagrax.core import mechanics
from lagrax.core.options import Activation, FrictionKind, Init, Precision
from lagrax.systems.base import LagrangianSystem, SystemInfo
from lagrax.models.friction import LearnedFriction, NoFriction, learned_friction
from lagrax.models.nets import feature_size, joint_features, network
from lagrax.models.spec import ModelSpec, Recipe, SpecError, Specified, check_at_least


@dataclasses.dataclass(frozen=True)
class LNNSpec(ModelSpec):
    """The hyper-parameters of an :class:`LNN`.

    Attributes:
        width, depth: hidden units per layer and number of hidden layers.
        activation: a smooth activation (the dynamics use second derivatives of the
            network, so ``RELU`` gives a zero Hessian); softplus as in the paper.
        init: ``LNN`` (Cranmer et al. 2020, Appendix), ``XAVIER``, ``ORTHOGONAL`` or ``DEFAULT``.
        friction: learned joint friction (``NONE``, ``VISCOUS``, ``COULOMB``, ``STRIBECK``).
        precision: parameter dtype; inputs are cast to it.
        velocity_scale: velocities enter the network as ``qd / velocity_scale``; training
            sets it to the RMS joint velocity of the data (:meth:`LNN.with_data_statistics`)
            so that fast data (the LNN paper samples ``|qd|`` up to 10) meets the network's
            activations at unit scale. The dynamics do not depend on it otherwise.
        free_particle: the network's output gets ``free_particle * |qd / velocity_scale|^2 / 2``
            added, the Lagrangian of free unit masses, so that training starts from a
            positive definite Hessian ``d^2L/dqd^2`` (the network's output layer starts at
            zero): from a random network's indefinite one, the fit has to cross the
            singular set, where accelerations are infinite, and it stalls there. The
            network can still cancel the term: no form is imposed. ``0`` is the paper's
            plain network with its initialisation.
    """

    kind: ClassVar[str] = "lnn"
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("velocity_scale", "free_particle")
    # benchmarks/lnn_double_pendulum.py: AdamW at 3e-3 to a loss of ~1e-2, then full-batch
    # L-BFGS, which does most of the fitting (double pendulum, 20,000 states, 64x2:
    # normalised loss 8e-4 after ~5 min, 9e-5 after ~23 min on a busy 2-core machine).
    # With the free-particle start (free_particle) the Hessian stays definite.
    RECIPE = Recipe(
        dict(
            epochs=200,
            batch_size=512,
            lr=3e-3,
            schedule="cosine",
            lbfgs_epochs=30,
            lbfgs_steps=25,
            lbfgs_memory=100,
            inverse=1.0,
        )
    )

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.SOFTPLUS
    init: Init = Init.LNN
    friction: FrictionKind = FrictionKind.NONE
    precision: Precision = Precision.FLOAT32
    velocity_scale: float = 1.0
    free_particle: float = 1.0

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        if not self.velocity_scale > 0:
            raise SpecError(f"LNNSpec.velocity_scale must be positive, got {self.velocity_scale}")

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "LNN":
        """An LNN for the system described by ``info``, weights drawn from ``key``."""
        lagrangian = LagrangianMLP.make(
            info.joint_types,
            key=key,
            width=self.width,
            depth=self.depth,
            activation=self.activation,
            init=self.init,
            precision=self.precision,
            velocity_scale=self.velocity_scale,
            free_particle=self.free_particle,
        )
        friction = learned_friction(self.friction, info.dof, self.precision)
        return LNN(info=info, network=lagrangian, friction_model=friction, spec=self)


class LagrangianMLP(eqx.Module):
    """``(q, qd) -> L``: an MLP on ``[features(q), qd]`` with a scalar output."""

    net: eqx.nn.MLP
    joint_types: tuple[str, ...] = eqx.field(static=True)
    velocity_scale: float = eqx.field(static=True, default=1.0)
    free_particle: float = eqx.field(static=True, default=0.0)

    @classmethod
    def make(
        cls,
        joint_types: Sequence[str],
        *,
        key: PRNGKeyArray,
        width: int,
        depth: int,
        activation: Activation,
        init: Init,
        precision: Precision,
        velocity_scale: float = 1.0,
        free_particle: float = 0.0,
    ) -> "LagrangianMLP":
        """A network with weights drawn from ``key``."""
        joint_types = tuple(joint_types)
        in_size = feature_size(joint_types) + len(joint_types)
        net = network(in_size, "scalar", width, depth, activation, key=key, init=init, precision=precision)
        if free_particle > 0:  # start at the free particle: the output layer at zero
            last = net.layers[-1]
            net = eqx.tree_at(
                lambda n: (n.layers[-1].weight, n.layers[-1].bias), net, (0 * last.weight, 0 * last.bias)
            )
        return cls(net, joint_types, float(velocity_scale), float(free_particle))

    def __call__(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Scalar:
        v = qd / self.velocity_scale
        return self.net(
            jnp.concatenate([joint_features(q, self.joint_types), v])
        ) + 0.5 * self.free_particle * (v @ v)


class LNN(Specified, LagrangianSystem):
    """A Lagrangian Neural Network; used exactly like a ground-truth :class:`LagrangianSystem`.

    Attributes:
        network: any callable ``(q, qd) -> scalar`` (a :class:`LagrangianMLP` when built
            from an :class:`LNNSpec`).
        friction_model: :class:`~lagrax.models.friction.NoFriction` or
            :class:`~lagrax.models.friction.LearnedFriction` (``spec.friction``).
        spec: the :class:`LNNSpec` it was built from (static); inputs are cast to
            ``spec.precision``.
    """

    network: Callable
    friction_model: NoFriction | LearnedFriction
    spec: LNNSpec = eqx.field(static=True)

    def _cast(self, *xs):
        return [x.astype(self.spec.precision.dtype) for x in xs]

    def lagrangian(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Scalar:
        """``L(q, qd)``, the network's output."""
        q, qd = self._cast(q, qd)
        return self.network(q, qd)

    def friction(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """The learned friction force (zero without friction)."""
        return self.friction_model(qd)

    def with_data_statistics(self, q, qd, qdd=None, tau=None) -> "LNN":
        """A copy whose velocities enter the network scaled by the data's RMS joint velocity
        (``spec.velocity_scale``), the same weights otherwise. Only a network built from
        the spec (a :class:`LagrangianMLP`) is rescaled; a user's callable is kept."""
        if not isinstance(self.network, LagrangianMLP):
            return self
        rms = float(np.sqrt(np.nanmean(np.square(np.asarray(qd, np.float64)))))
        scale = rms if np.isfinite(rms) and rms > 1e-6 else 1.0
        network = LagrangianMLP(self.network.net, self.network.joint_types, scale, self.network.free_particle)
        spec = self.spec.replace(velocity_scale=scale)
        return LNN(info=self.info, network=network, friction_model=self.friction_model, spec=spec)

    def solve_forward_dynamics(
        self,
        q: Float[Array, " n"],
        qd: Float[Array, " n"],
        tau: Float[Array, " n"],
        regularization: float = 0.0,
    ) -> mechanics.SolveResult:
        """Accelerations and a singular flag, solving with ``H + regularization * I`` (in the
        parameters' dtype). Training passes its Tikhonov ``lambda`` here (see the module docstring)."""
        q, qd, tau = self._cast(q, qd, tau)
        return super().solve_forward_dynamics(q, qd, tau, regularization)

    def singular_or_regularised(
        self,
        q: Float[Array, " n"],
        qd: Float[Array, " n"],
        tau: Float[Array, " n"],
        regularization: float = 1e-6,
        tolerance: float = 1e-3,
    ) -> Bool[Array, ""]:
        """Per sample: is the Hessian singular, or do the accelerations change by more than
        ``tolerance`` (relative, in norm) under Tikhonov ``regularization``?"""
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
    return jax.vmap(lambda a, b, c: model.singular_or_regularised(a, b, c, regularization, tolerance))(
        q, qd, tau
    )
