"""Learned joint friction, shared by the models that have it (DeLaN, LNN).

:func:`learned_friction` is the one place a model's friction module is made: for
``FrictionKind.NONE`` it is :class:`NoFriction` (zero force, no parameters), otherwise a
:class:`LearnedFriction` whose parameters are positive by construction. A model always
has a friction module and calls it, so no model code asks whether friction is there.

Not here: the friction law itself (:class:`lagrax.core.friction.JointFriction`, also used by
the ground-truth systems).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.core.errors import LagraxError
from lagrax.core.friction import JointFriction
from lagrax.core.options import FrictionKind, Precision


def _inverse_softplus(y: float) -> float:
    return float(np.log(np.expm1(y)))


class NoFriction(eqx.Module):
    """No friction: a zero force in the model's precision, and no parameters."""

    precision: Precision = eqx.field(static=True)

    def __call__(self, qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """Zero, shape and precision of the model's states."""
        return jnp.zeros_like(qd, dtype=self.precision.dtype)


class LearnedFriction(eqx.Module):
    """Per-joint friction with positive learned parameters (softplus of raw ones).

    ``kind``: ``VISCOUS`` (``d qd``), ``COULOMB`` (viscous + Coulomb), or ``STRIBECK``
    (viscous + Coulomb + Stribeck); see :class:`lagrax.core.friction.JointFriction`.
    """

    raw_viscous: Float[Array, " n"]
    raw_coulomb: Float[Array, " n"]
    raw_stribeck: Float[Array, " n"]
    raw_stribeck_velocity: Float[Array, " n"]
    kind: FrictionKind = eqx.field(static=True)
    smoothing: float = eqx.field(static=True)

    def __init__(
        self,
        dof: int,
        kind: FrictionKind,
        *,
        precision: Precision = Precision.FLOAT32,
        init_value: float = 0.01,
        smoothing: float = 1e-2,
    ):
        if not isinstance(kind, FrictionKind) or kind is FrictionKind.NONE:
            raise LagraxError(f"LearnedFriction needs a FrictionKind other than NONE, got {kind!r}")
        dt = precision.dtype
        self.kind, self.smoothing = kind, float(smoothing)
        self.raw_viscous = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_coulomb = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_stribeck = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_stribeck_velocity = jnp.full((dof,), _inverse_softplus(0.1), dtype=dt)

    def joint_friction(self) -> JointFriction:
        """The current parameters as a :class:`JointFriction` (all >= 0)."""
        sp = jax.nn.softplus
        zero = jnp.zeros_like(self.raw_viscous)
        coulomb = sp(self.raw_coulomb) if self.kind in (FrictionKind.COULOMB, FrictionKind.STRIBECK) else zero
        stribeck = sp(self.raw_stribeck) if self.kind is FrictionKind.STRIBECK else zero
        # + small floor: the Stribeck velocity divides
        velocity = sp(self.raw_stribeck_velocity) + 1e-3
        return JointFriction(sp(self.raw_viscous), coulomb, stribeck, velocity, self.smoothing)

    def __call__(self, qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """The friction force the joint torques overcome at velocity ``qd``."""
        return self.joint_friction()(qd.astype(self.raw_viscous.dtype))


def learned_friction(kind: FrictionKind, dof: int, precision: Precision) -> NoFriction | LearnedFriction:
    """The friction module of a model: :class:`NoFriction` for ``NONE``, else learned."""
    if kind is FrictionKind.NONE:
        return NoFriction(precision)
    return LearnedFriction(dof, kind, precision=precision)
