"""Joint friction: a dissipative generalised force per joint.

Used by ground-truth systems (fixed parameters) and by DeLaN (learned parameters)
alike, in the convention of :mod:`lagrax.core.mechanics`: the torques overcome it,
``tau = M qdd + c + g + friction(qd)``. Model of Lutter et al., "DeLaN for energy
control" (IROS 2019): viscous + Coulomb with a smooth sign, optional Stribeck term::

    f_i = d_i qd_i + (c_i + s_i exp(-(qd_i / v_i)^2)) tanh(qd_i / eps)

Every term opposes motion, so ``qd . f >= 0`` (it only ever removes energy).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class JointFriction(eqx.Module):
    """Per-joint viscous, Coulomb and (optional) Stribeck friction.

    Attributes:
        viscous: ``d`` (n,), >= 0 [N m s / rad].
        coulomb: ``c`` (n,), >= 0 [N m].
        stribeck: ``s`` (n,), >= 0, extra static friction at rest [N m].
        stribeck_velocity: ``v`` (n,), > 0, decay velocity of the Stribeck term.
        smoothing: velocity scale ``eps`` of the smooth sign ``tanh(qd / eps)``.
    """

    viscous: Float[Array, " n"]
    coulomb: Float[Array, " n"]
    stribeck: Float[Array, " n"]
    stribeck_velocity: Float[Array, " n"]
    smoothing: float = eqx.field(static=True, default=1e-2)

    @classmethod
    def make(cls, dof: int, viscous=0.0, coulomb=0.0, stribeck=0.0, stribeck_velocity=0.1, smoothing=1e-2):
        """Friction of ``dof`` joints; each parameter a scalar (all joints) or one per joint.

        No checks here (values may be traced); ground-truth factories check theirs first
        (e.g. :func:`lagrax.systems.robots.plant_effects`).
        """

        def vec(x):
            return jnp.broadcast_to(jnp.asarray(x, dtype=float), (dof,))

        return cls(vec(viscous), vec(coulomb), vec(stribeck), vec(stribeck_velocity), smoothing)

    def __call__(self, qd: Float[Array, " n"]) -> Float[Array, " n"]:
        static = self.coulomb + self.stribeck * jnp.exp(-((qd / self.stribeck_velocity) ** 2))
        return self.viscous * qd + static * jnp.tanh(qd / self.smoothing)
