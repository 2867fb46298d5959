"""Textbook ground-truth systems, each defined only by ``M(q)`` and ``V(q)``.

Conventions: angles are measured from the downward vertical (``q = 0`` hangs at
rest), gravity ``g`` points down, SI units. Every system goes through
:mod:`lagrax.mechanics`; none has dynamics code of its own.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..friction import JointFriction
from .base import StructuredSystem, SystemInfo


class _WithFriction(StructuredSystem):
    friction_model: JointFriction | None

    def _friction(self, q, qd):
        return jnp.zeros_like(qd) if self.friction_model is None else self.friction_model(qd)


def _friction(dof, damping, coulomb):
    if damping == 0.0 and coulomb == 0.0:
        return None
    return JointFriction.make(dof, viscous=damping, coulomb=coulomb)


class Pendulum(_WithFriction):
    """Point mass ``m`` on a massless rod of length ``l``: ``M = m l^2``, ``V = -m g l cos q``."""

    m: float
    l: float
    g: float

    def _mass_matrix(self, q):
        return jnp.full((1, 1), self.m * self.l**2, dtype=q.dtype)

    def _potential_energy(self, q):
        return -self.m * self.g * self.l * jnp.cos(q[0])


def pendulum(m: float = 1.0, l: float = 1.0, g: float = 9.81, damping: float = 0.0, coulomb: float = 0.0):
    """A simple pendulum (1 revolute joint, actuated)."""
    info = SystemInfo.make(
        "pendulum",
        1,
        joint_names=("theta",),
        params=dict(m=m, l=l, g=g, damping=damping, coulomb=coulomb),
        description="simple pendulum, point mass on a massless rod",
    )
    return Pendulum(info=info, friction_model=_friction(1, damping, coulomb), m=m, l=l, g=g)


class DoublePendulum(_WithFriction):
    """Two point masses on massless rods; both angles from the downward vertical."""

    m1: float
    m2: float
    l1: float
    l2: float
    g: float

    def _mass_matrix(self, q):
        m12 = self.m2 * self.l1 * self.l2 * jnp.cos(q[0] - q[1])
        return jnp.array([[(self.m1 + self.m2) * self.l1**2, m12], [m12, self.m2 * self.l2**2]])

    def _potential_energy(self, q):
        return -(self.m1 + self.m2) * self.g * self.l1 * jnp.cos(q[0]) - self.m2 * self.g * self.l2 * jnp.cos(q[1])


def double_pendulum(
    m1: float = 1.0, m2: float = 1.0, l1: float = 1.0, l2: float = 1.0, g: float = 9.8,
    damping: float = 0.0, coulomb: float = 0.0,
):
    """Double pendulum with the LNN paper's defaults (m1 = m2 = l1 = l2 = 1, g = 9.8).

    ``q = (theta1, theta2)``, both absolute angles from the downward vertical.
    """
    info = SystemInfo.make(
        "double_pendulum",
        2,
        joint_names=("theta1", "theta2"),
        params=dict(m1=m1, m2=m2, l1=l1, l2=l2, g=g, damping=damping, coulomb=coulomb),
        description="double pendulum, point masses, absolute angles (LNN paper)",
    )
    return DoublePendulum(info=info, friction_model=_friction(2, damping, coulomb), m1=m1, m2=m2, l1=l1, l2=l2, g=g)
