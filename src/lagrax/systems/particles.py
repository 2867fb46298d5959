"""Particles whose Lagrangian is not ``1/2 qd^T M(q) qd - V(q)``: general ``L(q, qd)`` systems.

* :func:`relativistic_particle`: the kinetic term ``-m c^2 sqrt(1 - |qd|^2 / c^2)``
  makes the Hessian ``d^2L/dqd^2`` depend on the velocity (the LNN paper's example of
  a system DeLaN's structure cannot express);
* :func:`charged_particle`: the magnetic term ``e qd . A(q)`` is linear in the velocity,
  a gyroscopic force that does no work.

Both are :class:`~lagrax.systems.LagrangianSystem` s: everything (dynamics, energy,
canonical momentum) is derived by :mod:`lagrax.core.mechanics` from ``L`` alone; this
module has no dynamics code of its own. Only uniform external fields (and an
isotropic spring) are offered.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp

from lagrax.core.errors import UnknownNameError
from lagrax.systems.base import LagrangianSystem, Scalar, SystemInfo, Vec
from lagrax.systems.parameters import ParameterError, check_nonnegative, check_positive

_AXES = ("x", "y", "z")


class RelativisticParticle(LagrangianSystem):
    """``L = -m c^2 sqrt(1 - |qd|^2/c^2) + m c^2 - V(q)``, ``V = m g q_last + k/2 |q|^2`` (textbook)."""

    m: float
    c: float
    g: float
    k: float

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        rest = self.m * self.c**2
        kinetic = rest - rest * jnp.sqrt(1.0 - jnp.sum(qd**2) / self.c**2)  # = (gamma - 1) m c^2 + O(v^4)
        # uniform field along the last axis ("height"), plus an optional isotropic spring
        potential = self.m * self.g * q[-1] + 0.5 * self.k * jnp.sum(q**2)
        return kinetic - potential


class LNNRelativisticParticle(LagrangianSystem):
    """The LNN reference code's ``L = (1 - qd^2)^(-1/2) + g q`` (``c = m = 1``, one dimension)."""

    g: float

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        # Cranmer et al. 2020, reference notebook SpecialRelativity.ipynb: c = m = 1 and
        # a *plus* sign on the field term, so the force is +g.
        return (1.0 - qd[0] ** 2) ** -0.5 + self.g * q[0]


def relativistic_particle(
    m: float = 1.0,
    c: float = 1.0,
    g: float = 1.0,
    k: float = 0.0,
    dim: int = 1,
    variant: str = "textbook",
) -> RelativisticParticle | LNNRelativisticParticle:
    """A relativistic point particle in a uniform field (and optionally a spring).

    ``variant="textbook"`` (default): ``L = -m c^2 sqrt(1 - |qd|^2/c^2) + m c^2 - V(q)``
    with ``V = m g q_last + k/2 |q|^2``. The constant ``m c^2`` is added so that the
    kinetic energy is the usual ``(gamma - 1) m c^2`` (it changes no dynamics). The
    canonical momentum is ``p = gamma m qd`` and speeds stay below ``c``. Units are
    natural by default (``m = c = g = 1``); any consistent SI values work.

    ``variant="lnn"``: the ground truth of the Lagrangian Neural Networks reference code
    (Cranmer et al. 2020), ``L = (1 - qd^2)^(-1/2) + g q`` with ``c = m = 1`` in one
    dimension, whose accelerations are ``qdd = g (1 - qd^2)^(5/2) / (1 + 2 qd^2)``. Note
    it is *not* the textbook ``L`` (the LNN paper's text states the textbook one).

    Parameters: mass ``m``, speed of light ``c``, field strength ``g`` (force ``m g``
    towards ``-q_last``), spring constant ``k`` (textbook variant only), ``dim`` 1-3
    coordinates ``x, y, z`` (all prismatic, all actuated; ``velocity_limits = c``).
    """
    if variant not in ("textbook", "lnn"):
        raise UnknownNameError.for_name("relativistic_particle variant", variant, ("textbook", "lnn"))
    if dim not in (1, 2, 3):
        raise ParameterError(f"relativistic_particle: dim must be 1, 2 or 3, got {dim!r}")
    check_positive("relativistic_particle", m=m, c=c)
    check_nonnegative("relativistic_particle", k=k)
    if not isinstance(g, (int, float)):
        raise ParameterError(f"relativistic_particle: g must be a number, got {g!r}")
    if variant == "lnn" and (m != 1.0 or c != 1.0 or k != 0.0 or dim != 1):
        raise ParameterError(
            "relativistic_particle: variant='lnn' is the LNN reference code's fixed Lagrangian "
            f"(m = c = 1, k = 0, dim = 1); got m={m}, c={c}, k={k}, dim={dim}. Only g can be set."
        )
    description = (
        "relativistic particle, LNN reference-code Lagrangian (1 - qd^2)^(-1/2) + g q"
        if variant == "lnn"
        else f"relativistic particle in a uniform field{' and a spring' if k else ''} ({dim}-D)"
    )
    info = SystemInfo.make(
        "relativistic_particle",
        dim,
        joint_names=_AXES[:dim],
        joint_types=("prismatic",) * dim,
        velocity_limits=(c,) * dim,
        params=dict(m=m, c=c, g=g, k=k, dim=dim, variant=variant),
        description=description,
    )
    if variant == "lnn":
        return LNNRelativisticParticle(info=info, g=g)
    return RelativisticParticle(info=info, m=m, c=c, g=g, k=k)


class ChargedParticle(LagrangianSystem):
    """``L = 1/2 m |qd|^2 + e qd . A(q) - V(q)`` with ``A = B/2 (-y, x)`` (symmetric gauge)."""

    m: float
    e: float
    B: float
    k: float
    E: tuple[float, float] = eqx.field(static=True, default=(0.0, 0.0))

    def vector_potential(self, q):
        """``A(q) = B/2 (-y, x)``: uniform field ``B`` along ``+z`` (out of the plane)."""
        return 0.5 * self.B * jnp.stack([-q[..., 1], q[..., 0]], axis=-1)

    def lagrangian(self, q: Vec, qd: Vec) -> Scalar:
        # isotropic spring plus a uniform electric field E (force e E)
        potential = 0.5 * self.k * jnp.sum(q**2) - self.e * (self.E[0] * q[0] + self.E[1] * q[1])
        return 0.5 * self.m * jnp.sum(qd**2) + self.e * qd @ self.vector_potential(q) - potential


def charged_particle(
    m: float = 1.0,
    e: float = 1.0,
    B: float = 1.0,
    k: float = 0.0,
    E: Sequence[float] = (0.0, 0.0),
) -> ChargedParticle:
    """A charged particle in the plane, in a uniform magnetic field ``B`` out of the plane.

    ``L = 1/2 m |qd|^2 + e qd . A(q) - V(q)`` with the symmetric gauge ``A = B/2 (-y, x)``
    and ``V = k/2 |q|^2 - e E . q`` (optional isotropic spring ``k`` and uniform electric
    field ``E``). ``q = (x, y)`` [m], both prismatic and actuated.

    With ``k = 0, E = 0`` the particle circles at the cyclotron frequency ``omega = e B / m``
    (clockwise for ``e B > 0``) on a circle of radius ``m |v| / (e B)``; the canonical
    momentum is ``p = m qd + e A(q)`` and the energy ``1/2 m |qd|^2 + V`` (the magnetic
    force does no work). Parameters: mass ``m`` [kg], charge ``e`` [C], field ``B`` [T],
    ``k`` [N/m], ``E`` [V/m].
    """
    check_positive("charged_particle", m=m)
    check_nonnegative("charged_particle", k=k)
    for name, value in (("e", e), ("B", B)):
        if not isinstance(value, (int, float)):
            raise ParameterError(f"charged_particle: {name} must be a number, got {value!r}")
    E = tuple(float(v) for v in E)
    if len(E) != 2:
        raise ParameterError(f"charged_particle: E must have two components (Ex, Ey), got {E}")
    info = SystemInfo.make(
        "charged_particle",
        2,
        joint_names=("x", "y"),
        joint_types=("prismatic", "prismatic"),
        params=dict(m=m, e=e, B=B, k=k, E=E),
        description="2-D charged particle in a uniform magnetic field (symmetric gauge)",
    )
    return ChargedParticle(info=info, m=m, e=e, B=B, k=k, E=E)
