"""Known kinematics plus a learned residual: the rigid-body model with a DeLaN on top.

The ``hybrid`` model is a :class:`~lagrax.models.rigid_body.RigidBodyModel` (a URDF's
kinematic tree, identified inertias, armature and friction) plus a Deep Lagrangian
Network residual for what the rigid-body class cannot express (a cable or spring, an
unmodelled link, a friction law it lacks):

* ``M(q) = M_rb(q) + L(q) L(q)^T``, ``L`` from the DeLaN Cholesky network
  (:class:`~lagrax.models.delan.SharedDeLaNNetwork`'s trunk and Cholesky head);
* ``V(q) = V_rb(q) + V_net(q)`` (the same network's potential head);
* ``friction = friction_rb(qd) + r(q, qd)``, ``r`` an MLP of the joint features and ``qd``.

So it is a :class:`~lagrax.systems.StructuredSystem`: ``c`` and ``g`` of the residual come
from :mod:`lagrax.core.mechanics` (the Christoffel terms are linear in ``M``), and rollout,
evaluation and control take it unchanged.

**The residual can be zero.** ``L``'s diagonal has no softplus and no epsilon
(:func:`~lagrax.models.delan.lower_triangular`): ``L L^T`` is positive semi-definite for
any entries and ``M_rb`` positive definite, so ``M`` is positive definite, and a zero
Cholesky head gives exactly ``M_rb`` (a softplus diagonal, even shifted far negative,
never reaches zero). But ``L L^T`` is quadratic in ``L``: at ``L = 0`` its gradient is
zero, for every smooth positive semi-definite parametrisation, and AdamW would never
leave it. So the Cholesky head starts small, not zero (its Xavier draw times
``residual_init``, ``1e-3``: ``|L L^T| ~ 1e-6``), where Adam's normalised steps move it at
the learning rate's pace; the potential head and the friction network's output layer are
linear in their weights and start at exactly zero. :meth:`HybridModel.without_residual`
zeroes all three: it is the rigid-body model exactly.

**Regularised toward zero.** Weight decay applies to the residual's parameters only
(the capability ``decay_mask``; AdamW's decoupled decay, the recipe's
``weight_decay = 1e-3``), never to the rigid-body parameters, so where the prior is right
the residual shrinks back toward zero instead of trading places with it.

**Training.** :meth:`HybridModel.prefit` identifies the rigid-body part on the torques
minus the residual's (held at its start, ``~0``;
:func:`~lagrax.models.rigid_body.identify`), then the trainer refines the whole by the
usual losses and keeps the prefit parameters where refinement does not improve on them.

Not here: the identification itself (:mod:`lagrax.models.rigid_body`), DeLaN's fast
one-pass path (the residual's terms come from the generic mechanics, a second pass).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from lagrax.core import mechanics
from lagrax.core.options import Activation, FrictionKind, Init, Precision
from lagrax.models.delan import SharedDeLaNNetwork, lower_triangular
from lagrax.models.nets import feature_size, joint_features, network
from lagrax.models.rigid_body import (
    OPTIONAL_PATH,
    InertialInit,
    RigidBodyModel,
    RigidBodySpec,
    identify,
)
from lagrax.models.spec import ARM_OPTIMISER, ModelSpec, Recipe, Specified, check_at_least, check_positive
from lagrax.systems.base import StructuredSystem, SystemInfo

Vec = Float[Array, " n"]
Mat = Float[Array, "n n"]


@dataclasses.dataclass(frozen=True)
class HybridSpec(ModelSpec):
    """The options of a :class:`HybridModel`.

    Attributes:
        init, friction, urdf: the rigid-body part's (:class:`~lagrax.models.rigid_body.RigidBodySpec`).
        width, depth, activation: the residual networks' (DeLaN's trunk, the friction MLP).
        residual_init: the Cholesky head's initial weights are its Xavier draw times this
            (``> 0``: at zero the mass residual's gradient vanishes; see the module docstring).
        precision: parameter dtype; inputs are cast to it.
    """

    kind: ClassVar[str] = "hybrid"
    RECIPE = Recipe({**ARM_OPTIMISER, "inverse": 1.0, "forward": 1.0, "weight_decay": 1e-3})

    init: InertialInit = InertialInit.NOMINAL
    friction: FrictionKind = FrictionKind.COULOMB
    urdf: str | None = dataclasses.field(default=None, metadata={"codec": OPTIONAL_PATH})
    width: int = 64
    depth: int = 2
    activation: Activation = Activation.TANH
    residual_init: float = 1e-3
    precision: Precision = Precision.FLOAT32

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        check_positive(self, "residual_init")

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> HybridModel:
        """The rigid-body model of ``info``'s kinematics plus a residual drawn from ``key``."""
        rigid = RigidBodySpec(
            init=self.init, friction=self.friction, urdf=self.urdf, precision=self.precision
        )
        k_net, k_friction = jax.random.split(key)
        options = dict(width=self.width, depth=self.depth, activation=self.activation, init=Init.XAVIER)
        net = SharedDeLaNNetwork(
            info.joint_types, key=k_net, shift=0.0, epsilon=0.0, precision=self.precision, **options
        )
        net = eqx.tree_at(
            lambda m: (m.cholesky_head.weight, m.potential_head.weight),
            net,
            (self.residual_init * net.cholesky_head.weight, jnp.zeros_like(net.potential_head.weight)),
        )
        friction_net = network(
            feature_size(info.joint_types) + info.dof,
            info.dof,
            key=k_friction,
            precision=self.precision,
            **options,
        )
        last = friction_net.layers[-1]
        friction_net = eqx.tree_at(lambda m: m.layers[-1].weight, friction_net, jnp.zeros_like(last.weight))
        return HybridModel(
            info=info, rigid_body=rigid.build(info), residual=net, friction_residual=friction_net, spec=self
        )


class HybridModel(Specified, StructuredSystem):
    """``rigid_body`` plus a DeLaN residual: ``M = M_rb + L L^T``, ``V = V_rb + V_net``,
    friction ``= friction_rb + r(q, qd)``.

    Attributes:
        rigid_body: the :class:`~lagrax.models.rigid_body.RigidBodyModel` part.
        residual: the DeLaN network of ``L(q)`` (raw Cholesky head, no diagonal map) and ``V_net(q)``.
        friction_residual: the MLP ``[features(q), qd] -> r``.
        spec: the :class:`HybridSpec` it was built from (static).
    """

    rigid_body: RigidBodyModel
    residual: SharedDeLaNNetwork
    friction_residual: eqx.nn.MLP
    spec: HybridSpec = eqx.field(static=True, kw_only=True)

    CAPABLE_OF: ClassVar[frozenset[str]] = Specified.CAPABLE_OF | {"prefit", "decay_mask"}

    @property
    def dtype(self):
        """The parameters' dtype (``spec.precision``)."""
        return self.spec.precision.dtype

    # ---- the residual -----------------------------------------------------------------------
    def _hidden(self, q: Vec):
        return self.residual.trunk(joint_features(q.astype(self.dtype), self.info.joint_types))

    def residual_cholesky(self, q: Vec) -> Mat:
        """``L(q)`` of the mass residual (lower triangular, any diagonal)."""
        return lower_triangular(self.residual.cholesky_head(self._hidden(q)), self.dof)

    def residual_mass_matrix(self, q: Vec) -> Mat:
        """``L(q) L(q)^T``, positive semi-definite."""
        L = self.residual_cholesky(q)
        return L @ L.T

    def residual_potential(self, q: Vec) -> Scalar:
        """``V_net(q)``."""
        return self.residual.potential_head(self._hidden(q))

    def residual_friction(self, q: Vec, qd: Vec) -> Vec:
        """``r(q, qd)``, the friction the rigid-body friction law misses."""
        x = jnp.concatenate(
            [joint_features(q.astype(self.dtype), self.info.joint_types), qd.astype(self.dtype)]
        )
        return self.friction_residual(x)

    def without_residual(self) -> HybridModel:
        """This model with the residual's output layers zeroed: the rigid-body part exactly."""
        zero = jnp.zeros_like
        return eqx.tree_at(
            lambda m: (
                m.residual.cholesky_head.weight,
                m.residual.cholesky_head.bias,
                m.residual.potential_head.weight,
                m.residual.potential_head.bias,
                m.friction_residual.layers[-1].weight,
                m.friction_residual.layers[-1].bias,
            ),
            self,
            (
                zero(self.residual.cholesky_head.weight),
                zero(self.residual.cholesky_head.bias),
                zero(self.residual.potential_head.weight),
                zero(self.residual.potential_head.bias),
                zero(self.friction_residual.layers[-1].weight),
                zero(self.friction_residual.layers[-1].bias),
            ),
        )

    # ---- training -------------------------------------------------------------------------
    def prefit(self, dataset) -> tuple[HybridModel, dict]:
        """The rigid-body part identified (:func:`~lagrax.models.rigid_body.identify`) on the
        torques less the residual's, which is held at its value (``~0`` at the start)."""
        residual = np.asarray(_residual_torques(self, dataset.q, dataset.qd, dataset.qdd), np.float64)
        target = dataclasses.replace(dataset, tau=np.asarray(dataset.tau, np.float64) - residual)
        rigid, report = identify(self.rigid_body, target)
        return eqx.tree_at(lambda m: m.rigid_body, self, rigid), report

    def decay_mask(self) -> HybridModel:
        """Weight decay on the residual only: ``True`` for its arrays, ``False`` for the rigid body's."""
        mask = jax.tree_util.tree_map(lambda _: True, eqx.filter(self, eqx.is_inexact_array))
        return eqx.tree_at(
            lambda m: m.rigid_body, mask, jax.tree_util.tree_map(lambda _: False, mask.rigid_body)
        )

    # ---- the per-sample protocol ------------------------------------------------------------
    def mass_matrix(self, q: Vec) -> Mat:
        """``M_rb(q) + L(q) L(q)^T``."""
        self.check_sample(q=q)
        return self.rigid_body.mass_matrix(q) + self.residual_mass_matrix(q)

    def potential_energy(self, q: Vec) -> Scalar:
        """``V_rb(q) + V_net(q)``."""
        self.check_sample(q=q)
        return self.rigid_body.potential_energy(q) + self.residual_potential(q)

    def gravity(self, q: Vec) -> Vec:
        """``g_rb(q) + dV_net/dq``."""
        self.check_sample(q=q)
        q = q.astype(self.dtype)
        return self.rigid_body.gravity(q) + mechanics.value_and_jacfwd(self.residual_potential, q)[1]

    def friction(self, q: Vec, qd: Vec) -> Vec:
        """The rigid-body friction plus the residual ``r(q, qd)``."""
        return self.rigid_body.friction(q, qd) + self.residual_friction(q, qd)

    def residual_terms(self, q: Vec, qd: Vec) -> mechanics.StructuredTerms:
        """The residual's ``L L^T``, ``c``, ``g`` and ``V`` (the mechanics core)."""
        return mechanics.structured_terms(self.residual_mass_matrix, self.residual_potential, q, qd)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        """The rigid body's RNEA torque plus the residual's ``L L^T qdd + c + g + r``
        (with the residual at zero, the rigid body's torque exactly)."""
        self.check_sample(q=q, qd=qd, qdd=qdd)
        q, qd, qdd = (x.astype(self.dtype) for x in (q, qd, qdd))
        extra = mechanics.structured_inverse_dynamics(
            self.residual_terms(q, qd), qdd, self.residual_friction(q, qd)
        )
        return self.rigid_body.inverse_dynamics(q, qd, qdd) + extra

    def terms(self, q: Vec, qd: Vec) -> mechanics.StructuredTerms:
        """The rigid body's terms (RNEA) plus the residual's (mechanics core; ``c`` is linear in ``M``)."""
        self.check_sample(q=q, qd=qd)
        q, qd = q.astype(self.dtype), qd.astype(self.dtype)
        rigid = self.rigid_body.terms(q, qd)
        extra = self.residual_terms(q, qd)
        return mechanics.StructuredTerms(*(a + b for a, b in zip(rigid, extra)))


@eqx.filter_jit
def _residual_torques(model: HybridModel, q, qd, qdd) -> Float[Array, "N n"]:
    """Per sample, the hybrid's torque minus its rigid-body part's."""

    def one(q_, qd_, qdd_):
        return model.inverse_dynamics(q_, qd_, qdd_) - model.rigid_body.inverse_dynamics(q_, qd_, qdd_)

    return jax.vmap(one)(*(jnp.asarray(x, model.dtype) for x in (q, qd, qdd)))


__all__ = ["HybridSpec", "HybridModel"]
