"""Textbook ground-truth systems, each defined only by ``M(q)`` and ``V(q)``.

Conventions: pendulum angles are measured from the downward vertical (``q = 0``
hangs at rest, ``pi`` is upright), gravity ``g`` points down, SI units. The one
exception is :func:`two_link_arm`, whose shoulder angle is measured from the
horizontal like the DeLaN dataset it reproduces. Every system goes through
:mod:`lagrax.core.mechanics`; none has dynamics code of its own. Actuator models (motor
voltages, back-EMF) are deliberately left out: ``tau`` is the generalised force.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.core.errors import UnknownNameError
from lagrax.core.friction import JointFriction
from lagrax.systems.base import Mat, Scalar, StructuredSystem, SystemInfo, Vec
from lagrax.systems.parameters import ParameterError, check_nonnegative, check_positive


class _WithFriction(StructuredSystem):
    friction_model: JointFriction | None

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return jnp.zeros_like(qd) if self.friction_model is None else self.friction_model(qd)


def _friction(dof, damping, coulomb):
    if damping == 0.0 and coulomb == 0.0:
        return None
    return JointFriction.make(dof, viscous=damping, coulomb=coulomb)


@dataclasses.dataclass(frozen=True)
class PlanarChain:
    """Known kinematics of a planar chain of point masses on rods from a fixed pivot.

    ``q_i`` is the absolute angle of rod ``i`` from the downward vertical, so mass ``i``
    sits at ``sum_{k <= i} l_k (sin q_k, -cos q_k)``. Constrained models (Finzi et al.
    2020's CLNN, :mod:`lagrax.models.clnn`) take these positions as known and learn the
    masses and the potential over them. Hashable, so a model keeps it as a static field.
    """

    lengths: tuple[float, ...]
    dim: int = 2

    @property
    def bodies(self) -> int:
        """The number of point masses."""
        return len(self.lengths)

    def positions(self, q: Vec) -> Float[Array, "b 2"]:
        """The masses' Cartesian positions, ``(bodies, 2)``, for one configuration ``(n,)``."""
        lengths = jnp.asarray(self.lengths, dtype=q.dtype)
        return jnp.stack([jnp.cumsum(lengths * jnp.sin(q)), jnp.cumsum(-lengths * jnp.cos(q))], -1)


#: The registered systems whose :class:`PlanarChain` kinematics are known.
WITH_KINEMATICS = ("pendulum", "double_pendulum", "chain_pendulum")


class Pendulum(_WithFriction):
    """Point mass ``m`` on a massless rod of length ``l``: ``M = m l^2``, ``V = -m g l cos q``."""

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"kinematics"})

    m: float
    l: float
    g: float

    def mass_matrix(self, q: Vec) -> Mat:
        return jnp.full((1, 1), self.m * self.l**2, dtype=q.dtype)

    def kinematics(self) -> PlanarChain:
        """Where the mass is, given ``q`` (see :class:`PlanarChain`)."""
        return PlanarChain((self.l,))

    def potential_energy(self, q: Vec) -> Scalar:
        return -self.m * self.g * self.l * jnp.cos(q[0])


def pendulum(m: float = 1.0, l: float = 1.0, g: float = 9.81, damping: float = 0.0, coulomb: float = 0.0):
    """A simple pendulum (1 revolute joint, actuated)."""
    check_positive("pendulum", m=m, l=l)
    check_nonnegative("pendulum", g=g, damping=damping, coulomb=coulomb)
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

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"kinematics"})

    m1: float
    m2: float
    l1: float
    l2: float
    g: float

    def kinematics(self) -> PlanarChain:
        """Where the masses are, given ``q`` (see :class:`PlanarChain`)."""
        return PlanarChain((self.l1, self.l2))

    def mass_matrix(self, q: Vec) -> Mat:
        m12 = self.m2 * self.l1 * self.l2 * jnp.cos(q[0] - q[1])
        return jnp.array([[(self.m1 + self.m2) * self.l1**2, m12], [m12, self.m2 * self.l2**2]])

    def potential_energy(self, q: Vec) -> Scalar:
        return -(self.m1 + self.m2) * self.g * self.l1 * jnp.cos(q[0]) - self.m2 * self.g * self.l2 * jnp.cos(
            q[1]
        )


def double_pendulum(
    m1: float = 1.0,
    m2: float = 1.0,
    l1: float = 1.0,
    l2: float = 1.0,
    g: float = 9.8,
    damping: float = 0.0,
    coulomb: float = 0.0,
):
    """Double pendulum with the LNN paper's defaults (m1 = m2 = l1 = l2 = 1, g = 9.8).

    ``q = (theta1, theta2)``, both absolute angles from the downward vertical.
    """
    check_positive("double_pendulum", m1=m1, m2=m2, l1=l1, l2=l2)
    check_nonnegative("double_pendulum", g=g, damping=damping, coulomb=coulomb)
    info = SystemInfo.make(
        "double_pendulum",
        2,
        joint_names=("theta1", "theta2"),
        params=dict(m1=m1, m2=m2, l1=l1, l2=l2, g=g, damping=damping, coulomb=coulomb),
        description="double pendulum, point masses, absolute angles (LNN paper)",
    )
    return DoublePendulum(
        info=info, friction_model=_friction(2, damping, coulomb), m1=m1, m2=m2, l1=l1, l2=l2, g=g
    )


# --------------------------------------------------------------------------------------
# Chain of N pendulums (Finzi et al. 2020's ChainPendulum)
# --------------------------------------------------------------------------------------


class ChainPendulum(_WithFriction):
    """N point masses on massless rods, each angle absolute from the downward vertical.

    With ``tail[i] = sum_{k >= i} m_k`` (the mass at and below link i):
    ``M_ij = tail[max(i, j)] l_i l_j cos(q_i - q_j)`` and
    ``V = -g sum_i tail[i] l_i cos q_i``.
    """

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"kinematics"})

    masses: tuple[float, ...]
    lengths: tuple[float, ...]
    g: float

    def _tail_lengths(self):
        m, l = np.asarray(self.masses), np.asarray(self.lengths)
        tail = np.cumsum(m[::-1])[::-1]
        n = len(m)
        coupling = tail[np.maximum.outer(np.arange(n), np.arange(n))] * np.outer(l, l)
        return jnp.asarray(coupling), jnp.asarray(tail * l)

    def kinematics(self) -> PlanarChain:
        """Where the masses are, given ``q`` (see :class:`PlanarChain`)."""
        return PlanarChain(tuple(self.lengths))

    def mass_matrix(self, q: Vec) -> Mat:
        coupling, _ = self._tail_lengths()
        return coupling * jnp.cos(q[:, None] - q[None, :])

    def potential_energy(self, q: Vec) -> Scalar:
        _, weights = self._tail_lengths()
        return -self.g * jnp.sum(weights * jnp.cos(q))


def _per_link(name: str, value, n: int) -> tuple[float, ...]:
    """A scalar broadcast to ``n`` links, or a sequence of exactly ``n`` values."""
    values = [value] * n if isinstance(value, (int, float)) and not isinstance(value, bool) else list(value)
    if len(values) != n:
        raise ParameterError(f"chain_pendulum: {name} needs one value per link ({n}), got {len(values)}")
    check_positive("chain_pendulum", **{f"{name}[{i}]": v for i, v in enumerate(values)})
    return tuple(float(v) for v in values)


def chain_pendulum(
    n: int = 3,
    masses: float | Sequence[float] = 1.0,
    lengths: float | Sequence[float] = 1.0,
    g: float = 9.81,
    damping: float = 0.0,
    coulomb: float = 0.0,
):
    """A planar chain of ``n`` pendulums (point masses on massless rods), the ChainPendulum
    of Finzi et al. 2020 in angle coordinates.

    ``q_i`` is the absolute angle of link ``i`` from the downward vertical; ``masses``
    and ``lengths`` are one number for every link or one per link; ``n = 1`` is
    :func:`pendulum` and ``n = 2`` :func:`double_pendulum`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"chain_pendulum: n must be a whole number of links >= 1, got {n!r}")
    masses, lengths = _per_link("masses", masses, n), _per_link("lengths", lengths, n)
    check_nonnegative("chain_pendulum", g=g, damping=damping, coulomb=coulomb)
    info = SystemInfo.make(
        "chain_pendulum",
        n,
        joint_names=tuple(f"theta{i + 1}" for i in range(n)),
        params=dict(n=n, masses=masses, lengths=lengths, g=g, damping=damping, coulomb=coulomb),
        description=f"chain of {n} pendulums, point masses, absolute angles (Finzi et al. 2020)",
    )
    return ChainPendulum(
        info=info, friction_model=_friction(n, damping, coulomb), masses=masses, lengths=lengths, g=g
    )


# --------------------------------------------------------------------------------------
# Planar two-link arm (DeLaN's simulated robot)
# --------------------------------------------------------------------------------------

# Identified from the DeLaN reference character dataset (delan_character_trajectories.npz,
# 2913 samples of its ground-truth H(q) and g(q)) by linear least squares on the standard
# parametrisation M = [[a + 2b cos q2, c + b cos q2], [c + b cos q2, c]],
# g = [g1 cos q1 + g2 cos(q1 + q2), g2 cos(q1 + q2)] (the cosine convention fits, the sine
# one does not). Max residuals 2.1e-15 (M) and 1.8e-15 N m (g): the file is exactly
# this model with a = 65891/48000, b = 1/2, c = 49691/96000, g1 = 2.625, g2 = 1.5.
_DELAN_ARM = dict(
    m1=5.0 / 12.0, m2=0.5, l1=1.0, l2=1.0, lc1=0.9, lc2=1.0, I1=1691.0 / 96000.0, I2=1691.0 / 96000.0, g=3.0
)


class TwoLinkArm(_WithFriction):
    """Planar two-link arm in the vertical plane with distributed link inertias.

    ``q1`` is the absolute angle of link 1 from the horizontal ``x`` axis, ``q2`` the
    elbow angle relative to link 1, both counter-clockwise; ``y`` points up, gravity
    down. Link ``i`` has mass ``m_i``, length ``l_i``, centre of mass at ``lc_i`` along
    the link and inertia ``I_i`` about its centre of mass.
    """

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"forward_kinematics", "inverse_kinematics"})

    m1: float
    m2: float
    l1: float
    l2: float
    lc1: float
    lc2: float
    I1: float
    I2: float
    g: float

    def mass_matrix(self, q: Vec) -> Mat:
        a = self.I1 + self.I2 + self.m1 * self.lc1**2 + self.m2 * (self.l1**2 + self.lc2**2)
        b = self.m2 * self.l1 * self.lc2
        c = self.I2 + self.m2 * self.lc2**2
        m12 = c + b * jnp.cos(q[1])
        return jnp.array([[a + 2 * b * jnp.cos(q[1]), m12], [m12, c]])

    def potential_energy(self, q: Vec) -> Scalar:
        # heights of the two centres of mass above the shoulder
        y1 = self.lc1 * jnp.sin(q[0])
        y2 = self.l1 * jnp.sin(q[0]) + self.lc2 * jnp.sin(q[0] + q[1])
        return self.g * (self.m1 * y1 + self.m2 * y2)

    def forward_kinematics(self, q: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
        """End-effector position ``(x, y)`` [m] of joint angles ``q`` (any leading axes)."""
        q = jnp.asarray(q)
        if q.ndim == 0 or q.shape[-1] != 2:
            raise ParameterError(
                f"two_link_arm.forward_kinematics: q must have shape (..., 2), got {q.shape}"
            )
        return _arm_fk(self.l1, self.l2, q)

    def inverse_kinematics(self, xy: Float[Array, "... 2"], elbow: str = "down") -> Float[Array, "... 2"]:
        """Joint angles that put the end effector at ``xy`` (closed form, any leading axes).

        ``elbow="down"`` gives ``q2 >= 0`` (the DeLaN data's branch: reaching to the
        right, the elbow is below the shoulder-hand line), ``"up"`` gives ``q2 <= 0``.
        Raises :class:`ParameterError` naming the first point out of reach
        (``|l1 - l2| <= |xy| <= l1 + l2``, with a 1e-9 tolerance on ``cos q2``).
        Under ``jit`` the check cannot run and unreachable points give NaN.
        """
        if elbow not in ("up", "down"):
            raise UnknownNameError.for_name("elbow branch", elbow, ("up", "down"))
        xy = jnp.asarray(xy)
        if xy.ndim == 0 or xy.shape[-1] != 2:
            raise ParameterError(
                f"two_link_arm.inverse_kinematics: xy must have shape (..., 2), got {xy.shape}"
            )
        q = _arm_ik(self.l1, self.l2, xy, 1.0 if elbow == "down" else -1.0)
        if not isinstance(q, jax.core.Tracer):
            unreachable = np.isnan(np.asarray(q[..., 1]).reshape(-1)) & ~np.isnan(
                np.asarray(xy).reshape(-1, 2)
            ).any(-1)
            if unreachable.any():
                i = int(np.argmax(unreachable))
                pt = np.asarray(xy).reshape(-1, 2)[i]
                raise ParameterError(
                    f"two_link_arm.inverse_kinematics: point {pt.tolist()} (flat index {i}) is out of reach: "
                    f"its distance {math.hypot(*pt):.4g} m from the shoulder is not in "
                    f"[{abs(self.l1 - self.l2):.4g}, {self.l1 + self.l2:.4g}] m"
                )
        return q


@jax.jit
def _arm_fk(l1, l2, q):
    q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
    return jnp.stack([l1 * jnp.cos(q1) + l2 * jnp.cos(q12), l1 * jnp.sin(q1) + l2 * jnp.sin(q12)], axis=-1)


@jax.jit
def _arm_ik(l1, l2, xy, sign):
    # law of cosines for the elbow; points out of reach give NaN
    cos_q2 = (jnp.sum(xy**2, axis=-1) - l1**2 - l2**2) / (2 * l1 * l2)
    cos_q2 = jnp.where(jnp.abs(cos_q2) <= 1 + 1e-9, jnp.clip(cos_q2, -1.0, 1.0), jnp.nan)
    q2 = sign * jnp.arccos(cos_q2)
    q1 = jnp.arctan2(xy[..., 1], xy[..., 0]) - jnp.arctan2(l2 * jnp.sin(q2), l1 + l2 * jnp.cos(q2))
    return jnp.stack([q1, q2], axis=-1)


def two_link_arm(
    m1: float = _DELAN_ARM["m1"],
    m2: float = _DELAN_ARM["m2"],
    l1: float = _DELAN_ARM["l1"],
    l2: float = _DELAN_ARM["l2"],
    lc1: float = _DELAN_ARM["lc1"],
    lc2: float = _DELAN_ARM["lc2"],
    I1: float = _DELAN_ARM["I1"],
    I2: float = _DELAN_ARM["I2"],
    g: float = _DELAN_ARM["g"],
    damping: float = 0.0,
    coulomb: float = 0.0,
) -> TwoLinkArm:
    """Planar 2-link arm in the vertical plane, by default DeLaN's simulated robot.

    ``q = (q1, q2)``: shoulder angle from the horizontal, elbow angle relative to link 1
    [rad]. Both joints actuated. Parameters (SI): link masses ``m1, m2`` [kg], lengths
    ``l1, l2`` [m], centre-of-mass distances from the proximal joint ``lc1, lc2`` [m],
    inertias about the centres of mass ``I1, I2`` [kg m^2], gravity ``g`` [m/s^2],
    optional viscous ``damping`` [N m s/rad] and ``coulomb`` friction [N m].

    Defaults reproduce the arm that drew the DeLaN reference character dataset
    (Lutter et al., ICLR 2019; shared/data/delan_character_trajectories.npz): its
    ground-truth ``H(q)`` and ``g(q)`` fit the standard two-link model exactly (max
    residual 2e-15), giving ``a = I1 + I2 + m1 lc1^2 + m2 (l1^2 + lc2^2) = 1.372729``,
    ``b = m2 l1 lc2 = 0.5``, ``c = I2 + m2 lc2^2 = 0.517615`` [kg m^2],
    ``g1 = (m1 lc1 + m2 l1) g = 2.625`` and ``g2 = m2 lc2 g = 1.5`` [N m]. Only these five
    combinations are identifiable and ``b / g2 = l1 / g`` fixes ``l1 / g = 1/3 s^2``:
    with 1 m links the file's arm lives in ``g = 3 m/s^2`` (equivalently a 3.27 m arm
    under 9.81 m/s^2). The physically consistent choice made here (positive masses
    and inertias, centres of mass on the links) is ``m1 = 5/12, m2 = 1/2`` kg,
    ``l1 = l2 = 1`` m, ``lc1 = 0.9, lc2 = 1.0`` m, ``I1 = I2 = 1691/96000`` kg m^2,
    ``g = 3`` m/s^2. ``l2`` does not enter the dynamics, only the kinematics.

    Joint limits: ``q1`` in ``[-pi, pi]``, ``q2`` in ``[-2.9, 2.9]`` rad (the links
    cannot fold onto each other); the DeLaN data stay within ``q1 in [-1.43, 0.24]``,
    ``q2 in [0.75, 2.76]``.
    """
    check_positive("two_link_arm", m1=m1, m2=m2, l1=l1, l2=l2)
    check_nonnegative("two_link_arm", lc1=lc1, lc2=lc2, I1=I1, I2=I2, g=g, damping=damping, coulomb=coulomb)
    info = SystemInfo.make(
        "two_link_arm",
        2,
        joint_names=("shoulder", "elbow"),
        joint_types=("revolute", "revolute"),
        actuated=(True, True),
        position_limits=((-math.pi, math.pi), (-2.9, 2.9)),
        params=dict(
            m1=m1, m2=m2, l1=l1, l2=l2, lc1=lc1, lc2=lc2, I1=I1, I2=I2, g=g, damping=damping, coulomb=coulomb
        ),
        description="planar 2-link arm in the vertical plane, DeLaN's simulated robot",
    )
    return TwoLinkArm(
        info=info,
        friction_model=_friction(2, damping, coulomb),
        m1=m1,
        m2=m2,
        l1=l1,
        l2=l2,
        lc1=lc1,
        lc2=lc2,
        I1=I1,
        I2=I2,
        g=g,
    )


# --------------------------------------------------------------------------------------
# Cart-pole (Quanser linear IP02 with the short pole)
# --------------------------------------------------------------------------------------

# Quanser IP02 + 12" pole as modelled in quanser_robots (Lutter et al., "DeLaN for
# energy control", IROS 2019, used these platforms): gear ratio Kg = 3.71, rotor
# inertia Jm = 3.9e-7 kg m^2, pinion radius r_mp = 6.35e-3 m; the rotor's inertia
# reflected to the cart is Kg^2 Jm / r_mp^2.
_IP02_ROTOR_MASS = 3.71**2 * 3.9e-7 / 6.35e-3**2  # = 0.1331 kg
_IP02_TRACK = 0.814 / 2  # half the usable track length [m]


class CartPole(_WithFriction):
    """Cart (position ``x``) carrying a pole (angle ``theta`` from hanging down)."""

    mc: float
    mp: float
    l: float
    J: float
    g: float

    def mass_matrix(self, q: Vec) -> Mat:
        m12 = self.mp * self.l * jnp.cos(q[1])
        return jnp.array([[self.mc + self.mp, m12], [m12, self.J + self.mp * self.l**2]])

    def potential_energy(self, q: Vec) -> Scalar:
        return -self.mp * self.g * self.l * jnp.cos(q[1])


def cartpole(
    mc: float = 0.37 + _IP02_ROTOR_MASS,
    mp: float = 0.127,
    l: float = 0.3365 / 2,
    J: float | None = None,
    g: float = 9.81,
    damping: bool = False,
    Beq: float = 5.4,
    Bp: float = 0.0024,
) -> CartPole:
    """Cart-pole, Quanser linear IP02 with the short (12 inch) pole; only the cart actuated.

    ``q = (x, theta)``: cart position [m] (prismatic) and pole angle [rad] (revolute,
    ``0`` hanging down, ``pi`` upright, like the pendulums). ``tau = (F, 0)``: the
    force on the cart [N]; the pole is not actuated (``actuated = (True, False)``).

    Parameters (SI), defaults from the Quanser IP02 user manual as used by the
    quanser_robots simulator of Lutter et al., "DeLaN for energy control" (IROS 2019):
    ``mc`` equivalent cart mass = cart 0.37 kg + motor rotor inertia reflected through
    the rack (``Kg^2 Jm / r_mp^2 = 0.1331`` kg); ``mp = 0.127`` kg pole mass;
    ``l = 0.16825`` m pivot to pole centre of mass (half the 0.3365 m pole); ``J`` pole
    inertia about its centre of mass (default ``mp l^2 / 3``, a uniform rod of length
    ``2 l``); ``g`` [m/s^2]. ``damping=True`` adds the manual's viscous friction
    ``Beq = 5.4`` N s/m on the cart and ``Bp = 0.0024`` N m s/rad on the pole (through
    :class:`~lagrax.core.friction.JointFriction`). Track limits ``x in [-0.407, 0.407]`` m
    (the 0.814 m track); the pole angle is unlimited (``[-pi, pi]`` is its wrap range).
    """
    J = mp * l**2 / 3 if J is None else J
    check_positive("cartpole", mc=mc, mp=mp, l=l)
    check_nonnegative("cartpole", J=J, g=g, Beq=Beq, Bp=Bp)
    info = SystemInfo.make(
        "cartpole",
        2,
        joint_names=("x", "theta"),
        joint_types=("prismatic", "revolute"),
        actuated=(True, False),
        position_limits=((-_IP02_TRACK, _IP02_TRACK), (-math.pi, math.pi)),
        params=dict(mc=mc, mp=mp, l=l, J=J, g=g, damping=damping, Beq=Beq, Bp=Bp),
        description="cart-pole, Quanser IP02 short pole, only the cart actuated",
    )
    friction = JointFriction.make(2, viscous=jnp.array([Beq, Bp])) if damping else None
    return CartPole(info=info, friction_model=friction, mc=mc, mp=mp, l=l, J=J, g=g)


# --------------------------------------------------------------------------------------
# Furuta pendulum (Quanser Qube-Servo 2)
# --------------------------------------------------------------------------------------


class Furuta(_WithFriction):
    """Rotary inverted pendulum: arm angle ``theta`` and pendulum angle ``alpha`` (0 down)."""

    Mr: float
    Lr: float
    Jr: float
    Mp: float
    Lp: float
    Jp: float
    g: float

    def mass_matrix(self, q: Vec) -> Mat:
        # Quanser Qube-Servo 2 workbook model (also quanser_robots): pendulum a rod of
        # length Lp hinged at the arm tip, arm inertia Jr about the motor axis.
        jp_pivot = self.Jp + 0.25 * self.Mp * self.Lp**2
        m11 = self.Jr + self.Mp * self.Lr**2 + 0.25 * self.Mp * self.Lp**2 * jnp.sin(q[1]) ** 2
        m12 = 0.5 * self.Mp * self.Lp * self.Lr * jnp.cos(q[1])
        return jnp.array([[m11, m12], [m12, jp_pivot]])

    def potential_energy(self, q: Vec) -> Scalar:
        return -0.5 * self.Mp * self.Lp * self.g * jnp.cos(q[1])


def furuta(
    Mr: float = 0.095,
    Lr: float = 0.085,
    Mp: float = 0.024,
    Lp: float = 0.129,
    Jr: float | None = None,
    Jp: float | None = None,
    g: float = 9.81,
    damping: bool = False,
    Dr: float = 0.0015,
    Dp: float = 0.0005,
) -> Furuta:
    """Furuta (rotary inverted) pendulum with Quanser Qube-Servo 2 parameters; only the arm actuated.

    ``q = (theta, alpha)``: rotary arm angle and pendulum angle [rad], ``alpha = 0``
    hanging down, ``pi`` upright. ``tau = (motor torque, 0)``.

    Parameters (SI), defaults from the Qube-Servo 2 course material (qube2_rotpen_param):
    arm mass ``Mr = 0.095`` kg, length ``Lr = 0.085`` m, inertia ``Jr = Mr Lr^2 / 12``
    kg m^2; pendulum mass ``Mp = 0.024`` kg, length ``Lp = 0.129`` m (centre of mass at
    ``Lp / 2``), inertia about its centre of mass ``Jp = Mp Lp^2 / 12`` kg m^2;
    ``g = 9.81`` m/s^2. ``damping=True`` adds the manual's viscous damping ``Dr = 0.0015``
    (arm) and ``Dp = 0.0005`` N m s/rad (pendulum) through
    :class:`~lagrax.core.friction.JointFriction`.

    Model: the Quanser workbook's nonlinear equations, i.e.
    ``M = [[Jr + Mp Lr^2 + Mp Lp^2 sin^2(alpha) / 4, Mp Lp Lr cos(alpha) / 2],
    [., Jp + Mp Lp^2 / 4]]`` and ``V = -Mp g Lp cos(alpha) / 2``; like the workbook it
    neglects the pendulum's own ``Jp sin^2(alpha)`` about the vertical. No position
    limits (the arm's cable stop is not modelled).
    """
    Jr = Mr * Lr**2 / 12 if Jr is None else Jr
    Jp = Mp * Lp**2 / 12 if Jp is None else Jp
    check_positive("furuta", Mr=Mr, Lr=Lr, Mp=Mp, Lp=Lp)
    check_nonnegative("furuta", Jr=Jr, Jp=Jp, g=g, Dr=Dr, Dp=Dp)
    info = SystemInfo.make(
        "furuta",
        2,
        joint_names=("theta", "alpha"),
        joint_types=("revolute", "revolute"),
        actuated=(True, False),
        params=dict(Mr=Mr, Lr=Lr, Mp=Mp, Lp=Lp, Jr=Jr, Jp=Jp, g=g, damping=damping, Dr=Dr, Dp=Dp),
        description="Furuta pendulum, Quanser Qube-Servo 2, only the arm actuated",
    )
    friction = JointFriction.make(2, viscous=jnp.array([Dr, Dp])) if damping else None
    return Furuta(info=info, friction_model=friction, Mr=Mr, Lr=Lr, Jr=Jr, Mp=Mp, Lp=Lp, Jp=Jp, g=g)
