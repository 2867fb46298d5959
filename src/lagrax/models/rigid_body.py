"""Known kinematics, learned inertial parameters: a physically consistent rigid-body model.

A roboticist with a URDF knows the kinematic tree and identifies the rest. This model
takes the tree of a :class:`~lagrax.systems.rigid_body.RigidBodyTree` (joint placements,
axes, gravity) as fixed and learns, per link, the ten inertial parameters, and per
joint the armature (rotor inertia) and friction. Its dynamics are the tree's recursive
Newton-Euler algorithm with the current parameters, so it is a
:class:`~lagrax.systems.StructuredSystem`: rollout, evaluation and control take it
unchanged.

**Physically consistent by construction.** Each link's inertia is the 4x4
pseudo-inertia ``J = [[Sigma, h], [h^T, m]]`` (``Sigma = 1/2 tr(Ibar) I - Ibar`` the
second moment of the mass distribution, ``Ibar`` the rotational inertia about the link
frame's origin, ``h = m c``), written as ``J = U U^T`` with ``U`` upper-triangular from
ten unconstrained numbers and ``exp`` on its diagonal (the log-Cholesky parametrisation
of Rucker & Wensing 2022, "Smooth parameterization of rigid-body inertia", eq. 9).
``J`` positive definite is exactly a positive mass with principal moments that satisfy
the triangle inequalities (Wensing, Kim & Slotine 2017). Armature and friction
coefficients are softplus of raw numbers (``>= 0``).

**Non-trainable kinematics.** The trainers optimise every inexact array leaf of a model
(``eqx.is_inexact_array``), weight decay included, so ``stop_gradient`` would not keep
the kinematics still. They are a static field instead (:class:`Kinematics`, nested
tuples of floats, hashable), turned into constants of the compiled program when used.

**Identification.** Inverse dynamics is linear in the standard parameters per link
``(m, m c, Ibar)`` (Atkeson, An & Hollerbach 1986), plus armature and viscous and
Coulomb friction: :func:`regressor` gives ``Y`` with ``tau = Y theta`` (forward-mode
derivative of the same RNEA, vmapped over samples), and :func:`identify` solves the least
squares problem once, reports the base parameters (Gautier 1990's QR with column
pivoting), the conditioning and the directions the data cannot identify, and maps the
solution back to the log-Cholesky parameters. Each joint's rows are weighted by one over
its torque's spread, so the cost is the torque nMSE. Where the least-squares solution is
not consistent itself (outside the model class: an unmodelled spring, a friction law it
lacks; or noise), the consistent parameters that fit best in torque space are found: a
convex problem (least squares over positive semi-definite pseudo-inertias, Wensing, Kim
& Slotine 2017), solved by a barrier method in JAX from the nearest consistent point in
parameter space or the start, whichever fits better, so the result never fits worse
than the start.

**In training.** The model can ``prefit`` (a capability): the trainer runs
:func:`identify` on the training set first, then refines by the usual losses and keeps
the identified parameters where refinement does not improve on them
(:mod:`lagrax.training.trainer`). Weight decay does not apply to it (``decay_mask``: the
physical parameters have no prior at zero).

Not here: the ``hybrid`` model (:mod:`lagrax.models.hybrid`, a residual on top of this
one); MJCF files (the kinematics come from a URDF, given or recorded in the dataset's
system info).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from lagrax.core import mechanics
from lagrax.core.errors import LagraxError
from lagrax.core.friction import JointFriction
from lagrax.core.options import Codec, FrictionKind, Option, Precision
from lagrax.models.friction import LearnedFriction, NoFriction, learned_friction
from lagrax.models.spec import ARM_OPTIMISER, ModelSpec, Recipe, SpecError, Specified
from lagrax.systems.base import StructuredSystem, SystemInfo
from lagrax.systems.rigid_body import RigidBodyTree

Vec = Float[Array, " n"]
Mat = Float[Array, "n n"]

#: The standard parameters of one link, in Pinocchio's order (``Inertia.toDynamicParameters``):
#: mass, first moment ``m c`` and the inertia about the link frame's origin.
LINK_PARAMETERS = ("m", "mc_x", "mc_y", "mc_z", "I_xx", "I_xy", "I_yy", "I_xz", "I_yz", "I_zz")
#: The per-joint parameters after the links', in this order.
JOINT_PARAMETERS = ("armature", "viscous", "coulomb")
#: Smallest armature or friction coefficient a softplus parameter is set to (exact zero is out of reach).
FLOOR = 1e-12


# --------------------------------------------------------------------------------------
# Pseudo-inertia and its log-Cholesky parametrisation (Rucker & Wensing 2022)
# --------------------------------------------------------------------------------------


def pseudo_inertia_from_log_cholesky(theta: Float[Array, "... 10"]) -> Float[Array, "... 4 4"]:
    """``J = U U^T`` from ``(alpha, d1, d2, d3, s12, s23, s13, t1, t2, t3)`` (Rucker & Wensing 2022, eq. 9).

    ``U = exp(alpha) [[e^d1, s12, s13, t1], [0, e^d2, s23, t2], [0, 0, e^d3, t3], [0, 0, 0, 1]]``,
    so ``J`` is positive definite for every real ``theta`` and the mass is ``exp(2 alpha)``.
    """
    alpha, d1, d2, d3, s12, s23, s13, t1, t2, t3 = jnp.moveaxis(theta, -1, 0)
    zero, one = jnp.zeros_like(alpha), jnp.ones_like(alpha)
    rows = [
        [jnp.exp(d1), s12, s13, t1],
        [zero, jnp.exp(d2), s23, t2],
        [zero, zero, jnp.exp(d3), t3],
        [zero, zero, zero, one],
    ]
    U = jnp.exp(alpha)[..., None, None] * jnp.stack([jnp.stack(r, -1) for r in rows], -2)
    return U @ jnp.swapaxes(U, -1, -2)


def log_cholesky_from_pseudo_inertia(J, names=None) -> np.ndarray:
    """The inverse of :func:`pseudo_inertia_from_log_cholesky` for ``(..., 4, 4)`` matrices.

    Raises a :class:`~lagrax.core.errors.LagraxError` naming the link (``names``, one per
    matrix) whose pseudo-inertia is not positive definite: a zero or negative mass, or
    moments that no mass distribution has.
    """
    J = np.asarray(J, dtype=np.float64)
    flat = J.reshape(-1, 4, 4)
    out = np.empty((len(flat), 10))
    for k, Jk in enumerate(flat):
        # J = U U^T with U upper-triangular is the lower Cholesky factor of J read backwards
        try:
            U = np.linalg.cholesky(Jk[::-1, ::-1])[::-1, ::-1]
        except np.linalg.LinAlgError:
            who = f"link {names[k]!r}" if names is not None else f"pseudo-inertia {k}"
            raise LagraxError(
                f"{who}: the inertial parameters are not physically consistent (pseudo-inertia not "
                f"positive definite: mass {Jk[3, 3]:.6g} kg, eigenvalues {np.linalg.eigvalsh(Jk)})"
            ) from None
        scale = U[3, 3]
        V = U / scale
        out[k] = [np.log(scale), *np.log(np.diag(V)[:3]), V[0, 1], V[1, 2], V[0, 2], *V[:3, 3]]
    return out.reshape(J.shape[:-2] + (10,))


def _skew_square(c):
    """``|c|^2 I - c c^T`` (a point mass's inertia about the origin, per unit mass)."""
    eye = jnp.eye(3, dtype=c.dtype)
    return jnp.sum(c * c, -1)[..., None, None] * eye - c[..., :, None] * c[..., None, :]


def inertial_from_pseudo_inertia(J: Float[Array, "... 4 4"]):
    """``(mass, com, inertia about the com)`` of pseudo-inertias, shapes ``(...), (..., 3), (..., 3, 3)``."""
    m = J[..., 3, 3]
    c = J[..., :3, 3] / m[..., None]
    sigma_c = J[..., :3, :3] - m[..., None, None] * c[..., :, None] * c[..., None, :]
    eye = jnp.eye(3, dtype=J.dtype)
    return m, c, jnp.trace(sigma_c, axis1=-2, axis2=-1)[..., None, None] * eye - sigma_c


def pseudo_inertia_from_inertial(mass, com, inertia) -> Float[Array, "... 4 4"]:
    """The pseudo-inertia of a link with ``mass``, centre of mass ``com`` and ``inertia`` about it."""
    mass, com, inertia = jnp.asarray(mass), jnp.asarray(com), jnp.asarray(inertia)
    inertia_o = inertia + mass[..., None, None] * _skew_square(com)  # parallel axis theorem
    return _pseudo_inertia(mass, mass[..., None] * com, inertia_o)


def _pseudo_inertia(m, h, inertia_o):
    eye = jnp.eye(3, dtype=inertia_o.dtype)
    sigma = 0.5 * jnp.trace(inertia_o, axis1=-2, axis2=-1)[..., None, None] * eye - inertia_o
    top = jnp.concatenate([sigma, h[..., :, None]], -1)
    bottom = jnp.concatenate([h, m[..., None]], -1)[..., None, :]
    return jnp.concatenate([top, bottom], -2)


def standard_from_pseudo_inertia(J: Float[Array, "... 4 4"]) -> Float[Array, "... 10"]:
    """The standard parameters :data:`LINK_PARAMETERS` of pseudo-inertias."""
    sigma = J[..., :3, :3]
    eye = jnp.eye(3, dtype=J.dtype)
    inertia_o = jnp.trace(sigma, axis1=-2, axis2=-1)[..., None, None] * eye - sigma
    i, j = (0, 0, 1, 0, 1, 2), (0, 1, 1, 2, 2, 2)
    return jnp.concatenate([J[..., 3, 3:], J[..., :3, 3], inertia_o[..., i, j]], -1)


def pseudo_inertia_from_standard(theta: Float[Array, "... 10"]) -> Float[Array, "... 4 4"]:
    """The inverse of :func:`standard_from_pseudo_inertia` (any real numbers: ``J`` may be indefinite)."""
    xx, xy, yy, xz, yz, zz = jnp.moveaxis(theta[..., 4:], -1, 0)
    inertia_o = jnp.stack(
        [jnp.stack([xx, xy, xz], -1), jnp.stack([xy, yy, yz], -1), jnp.stack([xz, yz, zz], -1)], -2
    )
    return _pseudo_inertia(theta[..., 0], theta[..., 1:4], inertia_o)


# --------------------------------------------------------------------------------------
# The kinematic tree, as static data
# --------------------------------------------------------------------------------------


def _nested(x) -> Any:
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else tuple(_nested(v) for v in x)


@dataclasses.dataclass(frozen=True)
class Kinematics:
    """The kinematic part of a :class:`RigidBodyTree`, hashable (a model's static field).

    Fields as in :class:`RigidBodyTree`, as nested tuples of floats.
    """

    parents: tuple[int, ...]
    kinds: tuple[str, ...]
    axes: tuple
    rotations: tuple
    translations: tuple
    gravity: tuple[float, ...]

    @classmethod
    def of(cls, tree: RigidBodyTree) -> Kinematics:
        """The kinematics of ``tree`` (its inertial parameters, armature and friction left out)."""
        return cls(
            tree.parents,
            tree.kinds,
            _nested(tree.axes),
            _nested(tree.rotations),
            _nested(tree.translations),
            _nested(tree.gravity_vector),
        )

    def tree(self, info: SystemInfo, masses, coms, inertias, armature) -> RigidBodyTree:
        """A frictionless :class:`RigidBodyTree` with these inertial parameters (their dtype)."""
        arr = lambda x: jnp.asarray(x, masses.dtype)  # noqa: E731
        return RigidBodyTree(
            info=info,
            parents=self.parents,
            kinds=self.kinds,
            axes=arr(self.axes),
            rotations=arr(self.rotations),
            translations=arr(self.translations),
            masses=masses,
            coms=coms,
            inertias=inertias,
            gravity_vector=arr(self.gravity),
            armature=armature,
        )

    def link_lengths(self) -> np.ndarray:
        """Per link, the distance to its farthest child joint (leaves: the mean of the others)."""
        t = np.linalg.norm(np.asarray(self.translations), axis=-1)
        n = len(self.parents)
        lengths = np.array(
            [max((t[j] for j in range(n) if self.parents[j] == i), default=0.0) for i in range(n)]
        )
        known = lengths[lengths > 0]
        return np.where(lengths > 0, lengths, known.mean() if known.size else 0.1)


# --------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------


class InertialInit(Option):
    """Where a :class:`RigidBodyModel`'s parameters start: the file's values or uninformed ones."""

    NOMINAL = "nominal"
    UNINFORMED = "uninformed"

    @classmethod
    def label(cls) -> str:
        return "init"


def _optional_path(value):
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    return str(value)


OPTIONAL_PATH = Codec(
    parse=_optional_path, to_json=lambda p: p, check=lambda p: p is None or isinstance(p, str)
)

#: Uninformed start: every link this heavy [kg] ...
UNINFORMED_MASS = 1.0
#: ... armature [kg m^2] and friction coefficients (as DeLaN's learned friction starts).
UNINFORMED_JOINT = 1e-2


@dataclasses.dataclass(frozen=True)
class RigidBodySpec(ModelSpec):
    """The options of a :class:`RigidBodyModel`.

    Attributes:
        init: ``NOMINAL`` starts from the URDF's inertias and the system's armature and
            friction; ``UNINFORMED`` from every link :data:`UNINFORMED_MASS` kg with its
            centre of mass at the joint and an isotropic inertia ``m l^2 / 12`` (``l``
            the distance to the link's child joint: the scale of a rod of that length),
            armature and friction :data:`UNINFORMED_JOINT`.
        friction: learned joint friction; identification fits viscous and Coulomb terms.
        urdf: the file whose kinematic tree the model uses; ``None``: the URDF recorded in
            the system info (a system made by ``lagrax.system("urdf", ...)``, ``panda``, ``ur5``).
        precision: parameter dtype; inputs are cast to it.
    """

    kind: ClassVar[str] = "rigid_body"
    RECIPE = Recipe({**ARM_OPTIMISER, "inverse": 1.0, "forward": 1.0})

    init: InertialInit = InertialInit.NOMINAL
    friction: FrictionKind = FrictionKind.COULOMB
    urdf: str | None = dataclasses.field(default=None, metadata={"codec": OPTIONAL_PATH})
    precision: Precision = Precision.FLOAT32

    def build(self, info: SystemInfo, *, key: PRNGKeyArray | None = None) -> RigidBodyModel:
        """The model of the system ``info`` describes (``key`` is unused: the start is deterministic)."""
        nominal = nominal_tree(info, self.urdf)
        kinematics = Kinematics.of(nominal)
        model = RigidBodyModel(
            info=info,
            raw_inertial=jnp.zeros((info.dof, 10), self.precision.dtype),
            raw_armature=jnp.zeros((info.dof,), self.precision.dtype),
            friction_model=learned_friction(self.friction, info.dof, self.precision),
            kinematics=kinematics,
            spec=self,
        )
        if self.init is InertialInit.NOMINAL:
            J = pseudo_inertia_from_inertial(nominal.masses, nominal.coms, nominal.inertias)
            friction = nominal.friction_model
            zero = np.zeros(info.dof)
            return model.with_parameters(
                J,
                nominal.armature,
                zero if friction is None else friction.viscous,
                zero if friction is None else friction.coulomb,
            )
        n, lengths = info.dof, kinematics.link_lengths()
        inertias = UNINFORMED_MASS * (lengths**2 / 12.0)[:, None, None] * np.eye(3)
        J = pseudo_inertia_from_inertial(np.full(n, UNINFORMED_MASS), np.zeros((n, 3)), inertias)
        joint = np.full(n, UNINFORMED_JOINT)
        return model.with_parameters(J, joint, joint, joint)


def nominal_tree(info: SystemInfo, urdf: str | None = None) -> RigidBodyTree:
    """The rigid-body tree of the system ``info`` describes, from ``urdf`` or the URDF in its info.

    Raises a :class:`~lagrax.models.spec.SpecError` that names the option ``urdf`` when
    neither is there, and one when the file's joints are not the info's.
    """
    from lagrax.systems import system

    params = dict(info.params)
    path = urdf or params.get("urdf")
    if path is None:
        raise SpecError(
            "a model with known kinematics (rigid_body, hybrid) needs a kinematic tree, and system "
            f"{info.name!r} was not made from a URDF; "
            "give the file with --urdf PATH (-O urdf=PATH, make_model(..., urdf=PATH))"
        )
    effects = {} if urdf else {k: params[k] for k in ("damping", "coulomb", "armature") if k in params}
    robot = system(
        "urdf",
        path=str(path),
        name=info.name,
        locked_joints=dict(params.get("locked_joints", ())),
        gravity=params.get("gravity", (0.0, 0.0, -9.81)),
        **effects,
    )
    if robot.info.joint_names != info.joint_names:
        raise SpecError(
            f"the joints of {str(path)!r} {list(robot.info.joint_names)} are not the system's "
            f"{list(info.joint_names)} (names, order and count must match)"
        )
    return robot.rigid_body_tree()


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def _inverse_softplus(x) -> np.ndarray:
    x = np.maximum(np.asarray(x, dtype=np.float64), FLOOR)
    return x + np.log(-np.expm1(-x))  # log(expm1(x)) without overflow


class RigidBodyModel(Specified, StructuredSystem):
    """A rigid-body tree with known kinematics and learned inertial parameters, armature and friction.

    Attributes:
        raw_inertial: per link the log-Cholesky parameters of its pseudo-inertia, ``(n, 10)``.
        raw_armature: the armature before its softplus, ``(n,)``.
        friction_model: learned joint friction (:mod:`lagrax.models.friction`).
        kinematics: the known tree (static: never trained).
        spec: the :class:`RigidBodySpec` it was built from (static).
    """

    raw_inertial: Float[Array, "n 10"]
    raw_armature: Float[Array, " n"]
    friction_model: NoFriction | LearnedFriction
    kinematics: Kinematics = eqx.field(static=True)
    spec: RigidBodySpec = eqx.field(static=True, kw_only=True)

    CAPABLE_OF: ClassVar[frozenset[str]] = Specified.CAPABLE_OF | {"prefit", "decay_mask"}

    @property
    def dtype(self):
        """The parameters' dtype (``spec.precision``)."""
        return self.spec.precision.dtype

    # ---- training -------------------------------------------------------------------------
    def prefit(self, dataset) -> tuple[RigidBodyModel, dict]:
        """:func:`identify` on ``dataset``: the trainer's one step before its epochs."""
        return identify(self, dataset)

    def decay_mask(self) -> RigidBodyModel:
        """No weight decay: ``False`` for every parameter array."""
        return jax.tree_util.tree_map(lambda _: False, eqx.filter(self, eqx.is_inexact_array))

    # ---- parameters -----------------------------------------------------------------------
    def pseudo_inertias(self) -> Float[Array, "n 4 4"]:
        """Each link's pseudo-inertia (positive definite by construction)."""
        return pseudo_inertia_from_log_cholesky(self.raw_inertial)

    def armature(self) -> Vec:
        """The armature (rotor inertia) of each joint, ``>= 0``."""
        return jax.nn.softplus(self.raw_armature)

    def tree(self) -> RigidBodyTree:
        """The frictionless :class:`RigidBodyTree` of the current parameters."""
        m, c, inertia = inertial_from_pseudo_inertia(self.pseudo_inertias())
        return self.kinematics.tree(self.info, m, c, inertia, self.armature())

    def standard_parameters(self) -> Float[Array, " p"]:
        """The parameters as :func:`regressor` orders them: per link :data:`LINK_PARAMETERS`,
        then armature, viscous and Coulomb friction per joint (zero where the friction kind has none)."""
        n = self.dof
        links = standard_from_pseudo_inertia(self.pseudo_inertias()).reshape(-1)
        friction = self.friction_model
        if isinstance(friction, LearnedFriction):
            jf = friction.joint_friction()
            viscous, coulomb = jf.viscous, jf.coulomb
        else:
            viscous = coulomb = jnp.zeros(n, self.dtype)
        return jnp.concatenate([links, self.armature(), viscous, coulomb])

    def with_parameters(self, pseudo_inertias, armature, viscous, coulomb) -> RigidBodyModel:
        """This model set to the given pseudo-inertias ``(n, 4, 4)`` (positive definite, else a
        LagraxError naming the link), armature and friction (``(n,)`` each, floored at :data:`FLOOR`)."""
        raw = log_cholesky_from_pseudo_inertia(pseudo_inertias, self.info.joint_names)
        model = eqx.tree_at(
            lambda s: (s.raw_inertial, s.raw_armature),
            self,
            (jnp.asarray(raw, self.dtype), jnp.asarray(_inverse_softplus(armature), self.dtype)),
        )
        if isinstance(self.friction_model, LearnedFriction):
            raw_friction = [jnp.asarray(_inverse_softplus(x), self.dtype) for x in (viscous, coulomb)]
            model = eqx.tree_at(
                lambda s: (s.friction_model.raw_viscous, s.friction_model.raw_coulomb),
                model,
                tuple(raw_friction),
            )
        return model

    # ---- the per-sample protocol ------------------------------------------------------------
    def mass_matrix(self, q: Vec) -> Mat:
        """``M(q)`` by RNEA columns, armature on the diagonal."""
        self.check_sample(q=q)
        return self.tree().mass_matrix(q.astype(self.dtype))

    def potential_energy(self, q: Vec) -> Scalar:
        """``V(q) = -sum_i m_i g . c_i(q)``."""
        self.check_sample(q=q)
        return self.tree().potential_energy(q.astype(self.dtype))

    def gravity(self, q: Vec) -> Vec:
        """``g(q) = RNEA(q, 0, 0)``."""
        self.check_sample(q=q)
        return self.tree().gravity(q.astype(self.dtype))

    def friction(self, q: Vec, qd: Vec) -> Vec:
        """The learned joint friction."""
        return self.friction_model(qd.astype(self.dtype))

    def terms(self, q: Vec, qd: Vec) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g`` and ``V`` from the recursive Newton-Euler algorithm."""
        self.check_sample(q=q, qd=qd)
        q, qd = q.astype(self.dtype), qd.astype(self.dtype)
        tree, zero = self.tree(), jnp.zeros_like(q)
        coriolis = tree.rnea(q, qd, zero, gravity=False)
        return mechanics.StructuredTerms(
            tree.mass_matrix(q), coriolis, tree.gravity(q), tree.potential_energy(q)
        )

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        """``tau = RNEA(q, qd, qdd) + armature qdd + friction(qd)``."""
        self.check_sample(q=q, qd=qd, qdd=qdd)
        q, qd, qdd = (x.astype(self.dtype) for x in (q, qd, qdd))
        return self.tree().inverse_dynamics(q, qd, qdd) + self.friction(q, qd)

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        """A Cholesky solve of ``M qdd = tau - friction - RNEA(q, qd, 0)``."""
        self.check_sample(q=q, qd=qd, tau=tau)
        q, qd, tau = (x.astype(self.dtype) for x in (q, qd, tau))
        return self.tree().forward_dynamics(q, qd, tau - self.friction(q, qd))


# --------------------------------------------------------------------------------------
# Identification: the regressor and one least-squares solve
# --------------------------------------------------------------------------------------


def parameter_names(model: RigidBodyModel) -> list[str]:
    """The names of :meth:`RigidBodyModel.standard_parameters`' entries (``"J1.I_zz"``, ``"J2.armature"``)."""
    joints = model.info.joint_names
    links = [f"{j}.{p}" for j in joints for p in LINK_PARAMETERS]
    return links + [f"{j}.{p}" for p in JOINT_PARAMETERS for j in joints]


def _active(model: RigidBodyModel) -> np.ndarray:
    """Which standard parameters the model's friction kind has (all but absent friction terms)."""
    n, kind = model.dof, model.spec.friction
    viscous = kind is not FrictionKind.NONE
    coulomb = kind in (FrictionKind.COULOMB, FrictionKind.STRIBECK)
    return np.concatenate([np.ones(11 * n, bool), np.full(n, viscous), np.full(n, coulomb)])


def _standard_torque(model: RigidBodyModel, theta, q, qd, qdd):
    """Inverse dynamics as a function of the standard parameters (linear in ``theta``)."""
    n = model.dof
    links = theta[: 10 * n].reshape(n, 10)
    armature, viscous, coulomb = theta[10 * n :].reshape(3, n)
    m, c, inertia = inertial_from_pseudo_inertia(pseudo_inertia_from_standard(links))
    tree = model.kinematics.tree(model.info, m, c, inertia, armature)
    friction = model.friction_model
    # without learned friction its columns are left out (_active), so any scale will do
    smoothing = friction.smoothing if isinstance(friction, LearnedFriction) else 1.0
    law = JointFriction(viscous, coulomb, jnp.zeros_like(viscous), jnp.ones_like(viscous), smoothing)
    return tree.inverse_dynamics(q, qd, qdd) + law(qd)


def _widest(dtype):
    """float64 where JAX has it enabled (identification is a least-squares solve), else ``dtype``."""
    return jnp.float64 if jax.config.jax_enable_x64 else dtype


def regressor(model: RigidBodyModel, q, qd, qdd) -> Float[Array, "Nn p"]:
    """``Y`` with ``tau = Y @ theta`` stacked over samples, ``(N n, 13 n)``; ``theta`` is
    :meth:`RigidBodyModel.standard_parameters` (``q, qd, qdd``: ``(N, n)`` arrays).

    The torque is linear in ``theta``, so its forward-mode Jacobian at any point is ``Y``;
    it is taken at unit masses with centres of mass at the origin, where the conversion
    to the tree's ``(m, c, I_c)`` divides by one. It is computed in float64 where JAX
    has it enabled, whatever the model's precision.
    """
    dtype = _widest(model.dtype)
    q, qd, qdd = (np.asarray(x, dtype) for x in (q, qd, qdd))
    count = q.shape[0]
    # fixed chunks (a power of two, at most REGRESSOR_CHUNK) padded with zeros: one compiled
    # program serves every sample count, where each count would otherwise compile its own
    chunk = min(REGRESSOR_CHUNK, 1 << max(count - 1, 1).bit_length())
    padded = -(-count // chunk) * chunk
    q, qd, qdd = (np.concatenate([x, np.zeros((padded - count, x.shape[1]), dtype)]) for x in (q, qd, qdd))
    rows = [
        _regressor_rows(model, *(jnp.asarray(x[i : i + chunk]) for x in (q, qd, qdd)))
        for i in range(0, padded, chunk)
    ]
    return jnp.concatenate(rows)[:count].reshape(-1, 13 * model.dof)


#: The most samples :func:`regressor` evaluates in one call of its compiled program.
REGRESSOR_CHUNK = 4096


@eqx.filter_jit
def _regressor_rows(model: RigidBodyModel, q, qd, qdd) -> Float[Array, "N n p"]:
    """Per sample, the Jacobian of :func:`_standard_torque` in ``theta`` (compiled once per model layout)."""
    unit_link = jnp.array([1.0, 0, 0, 0, 1, 0, 1, 0, 0, 1], q.dtype)
    reference = jnp.concatenate([jnp.tile(unit_link, model.dof), jnp.zeros(3 * model.dof, q.dtype)])

    def one(q_, qd_, qdd_):
        return jax.jacfwd(lambda theta: _standard_torque(model, theta, q_, qd_, qdd_))(reference)

    return jax.vmap(one)(q, qd, qdd)


def identify(model: RigidBodyModel, dataset, *, rcond: float | None = None) -> tuple[RigidBodyModel, dict]:
    """Least-squares identification of ``model``'s parameters from ``dataset`` (``q, qd, qdd, tau``).

    The solution is the model's current parameters plus the least-squares update in the
    directions the data excite (the pseudo-inverse of the column-scaled regressor, with
    the numerical rank where singular values fall below ``rcond`` times the largest; by
    default ``1e-10`` in float64, ``1e-5`` in float32): directions the data cannot
    identify keep their current values instead of noise. Each joint's rows are weighted by
    one over its torque's spread (the cost is the torque nMSE). Where that solution is not
    physically consistent, the consistent one that fits best in torque space is sought
    (:func:`_consistent`); the report says where. The Stribeck
    term of ``friction=stribeck`` is not linear in its parameters and keeps its value.

    Returns ``(model, report)``; the report (JSON types) has ``samples``, ``parameters``,
    ``rank``, ``base_parameters`` of the least-squares solution (``[{"name", "value"}]``,
    each a named combination), ``condition_number`` (of the column-scaled base regressor),
    ``null_directions``, ``unidentifiable`` (the parameters the data do not determine on
    their own), ``projected`` and ``clipped`` (where the solution was not consistent),
    ``projection_steps`` and ``refinement_steps`` (the Newton steps of the fit in torque
    space), and the torque nMSE on the data of the least-squares solution
    (``least_squares_nmse``) and of the returned model (``torque_nmse``).
    """
    if dataset.tau is None or np.shape(dataset.q)[-1] != model.dof:
        raise LagraxError(f"identify needs torques of the model's {model.dof} joints (q, qd, qdd, tau)")
    tau = np.asarray(dataset.tau, np.float64).reshape(-1)
    # each joint's rows over its torque's spread: the least-squares cost is then the torque nMSE
    spread = np.std(tau.reshape(-1, model.dof), axis=0)
    weight = np.tile(1.0 / np.where(spread > 0, spread, 1.0), np.shape(dataset.q)[0])
    Y = np.asarray(regressor(model, dataset.q, dataset.qd, dataset.qdd), np.float64)
    active = np.flatnonzero(_active(model))
    names = [parameter_names(model)[k] for k in active]
    start = np.array(model.standard_parameters(), np.float64)
    rcond = (1e-10 if _widest(model.dtype) == jnp.float64 else 1e-5) if rcond is None else rcond
    Yw = weight[:, None] * Y[:, active]
    norms = np.linalg.norm(Yw, axis=0)
    # an unexcited parameter's column is zero up to rounding: scaled to unit length, it would be noise
    excited = norms > rcond * norms.max()
    scale = np.where(excited, norms, 1.0)
    Ys = np.where(excited, Yw / scale, 0.0)
    U, S, Vt = np.linalg.svd(Ys, full_matrices=False)
    rank = int(np.sum(S > rcond * S[0])) if S.size and S[0] > 0 else 0
    U, S, rows = U[:, :rank], S[:rank], Vt[:rank]
    theta = start.copy()
    theta[active] += rows.T @ ((U.T @ (weight * (tau - Y @ theta))) / S) / scale
    fit = (S[:, None] * rows * scale, U.T @ (weight * tau))
    fitted, repair = _consistent(model, theta, start, fit, active)
    nmse = lambda th: _nmse((Y @ th).reshape(-1, model.dof), tau.reshape(-1, model.dof))  # noqa: E731
    return fitted, dict(
        samples=int(np.shape(dataset.q)[0]),
        parameters=len(names),
        rank=rank,
        **_base_parameters(Ys, scale, theta[active], names, rank),
        unidentifiable=[name for name, v in zip(names, _null_weight(rows)) if v > 1e-6],
        **repair,
        least_squares_nmse=nmse(theta),
        torque_nmse=nmse(np.asarray(fitted.standard_parameters(), np.float64)),
    )


def _null_weight(rows) -> np.ndarray:
    """Per parameter, the length of its unit vector's part outside the excited rows."""
    return np.sqrt(np.maximum(1.0 - np.sum(rows**2, axis=0), 0.0))


def _split(theta: np.ndarray, n: int):
    """Standard parameters -> ``(pseudo-inertias, armature, viscous, coulomb)``."""
    J = np.asarray(pseudo_inertia_from_standard(jnp.asarray(theta[: 10 * n].reshape(n, 10))))
    return (J, *theta[10 * n :].reshape(3, n))


def _base_parameters(Ys, scale, theta, names, rank) -> dict:
    """Gautier's base parameters (QR with column pivoting picks ``rank`` independent columns;
    each base parameter is one of them plus the dependent ones it absorbs), the condition
    number of the column-scaled base regressor, and one null direction per dependent column."""
    _, R, pivots = scipy.linalg.qr(Ys, mode="economic", pivoting=True)
    independent, dependent = pivots[:rank], pivots[rank:]
    # Ys[:, dependent] = Ys[:, independent] K, so Y theta = Y_base (theta_ind + Kt theta_dep)
    K = (
        scipy.linalg.solve_triangular(R[:rank, :rank], R[:rank, rank:])
        if rank
        else np.zeros((0, len(dependent)))
    )
    Kt = K * scale[dependent][None, :] / scale[independent][:, None]  # in the parameters' own units

    def combination(pairs):
        return "".join(f" {'+' if w > 0 else '-'} {abs(w):.6g} {names[k]}" for w, k in pairs if abs(w) > 1e-9)

    base = [
        dict(
            name=names[i] + combination(zip(Kt[row], dependent)),
            value=float(theta[i] + Kt[row] @ theta[dependent]),
        )
        for row, i in enumerate(independent)
    ]
    null = [names[d] + combination(zip(-Kt[:, col], independent)) for col, d in enumerate(dependent)]
    singular = np.linalg.svd(Ys[:, independent], compute_uv=False) if rank else None
    return dict(
        base_parameters=base,
        condition_number=float(singular[0] / singular[-1]) if rank else None,
        null_directions=null,
    )


def _violations(theta: np.ndarray, names) -> tuple[list[dict], list[str]]:
    """The links whose pseudo-inertia is not positive definite, and the negative joint parameters."""
    n = len(names)
    J = np.asarray(pseudo_inertia_from_standard(jnp.asarray(theta[: 10 * n].reshape(n, 10))))
    links = []
    for name, Ji in zip(names, J):
        w = np.linalg.eigvalsh(Ji)
        if w[0] <= 1e-9 * max(w[-1], FLOOR):
            links.append(dict(link=name, smallest_eigenvalue=float(w[0])))
    joints = [
        f"{j}.{p}"
        for p, row in zip(JOINT_PARAMETERS, theta[10 * n :].reshape(3, n))
        for j, v in zip(names, row)
        if v < 0
    ]
    return links, joints


def _consistent(
    model: RigidBodyModel, theta: np.ndarray, start: np.ndarray, fit, active
) -> tuple[RigidBodyModel, dict]:
    """``model`` set to the standard parameters ``theta``, made physically consistent where
    they are not; the report's part about it.

    Where they are not, the nearest consistent point that fits as well is sought in
    parameter space (:func:`_alternating_projections` on ``fit = (A, b)``: exact where the
    model class is), and then, from it or from ``start`` (the model's parameters before
    identification), whichever fits better, the consistent parameters that fit best in
    torque space (:func:`_torque_space_fit`): outside the model class (an unmodelled
    spring, a friction law it lacks) the nearest consistent point in parameter space can
    fit far worse than the start did.
    """
    names = model.info.joint_names
    n = len(names)
    links, joints = _violations(theta, names)
    steps = refined = 0
    if links or joints:
        theta, steps = _alternating_projections(theta, *fit, active, n)
        A, b = fit
        cost = lambda th: float(np.sum((A @ th[active] - b) ** 2))  # noqa: E731
        begin = theta if cost(theta) <= cost(start) else start
        theta, refined = _torque_space_fit(begin, A, b, active, n)
    report = dict(projected=links, clipped=joints, projection_steps=steps, refinement_steps=refined)
    return model.with_parameters(*_split(theta, n)), report


def _torque_space_fit(theta: np.ndarray, A, b, active, n: int) -> tuple[np.ndarray, int]:
    """``(theta, steps)``: the consistent parameters that fit ``A x = b`` best, from the
    consistent ``theta`` (a convex problem: a least-squares cost over a set of positive
    semi-definite pseudo-inertias and non-negative joint parameters).

    A barrier method (Boyd & Vandenberghe 2004, sec. 11.3), all in JAX:
    ``t |A x - b|^2 / |b|^2 - sum_i log det J_i(x) - sum_j log x_j``, plus a proximal term
    ``sum_i |J_i(x) - J_i(theta)|_F^2 / |J_i(theta)|_F^2`` (and the same for the joint
    parameters) that holds the directions the data do not excite near ``theta`` (the
    barrier alone would push them off without bound), minimised by Newton's method for
    ``t = 1, 10, ..., 1e15``: the cost is then within ``1e-13 |b|^2`` per constraint of
    its constrained minimum. The result is kept only where it fits better than ``theta``.
    """
    x0 = theta[active].copy()
    joints = x0[10 * n :]
    x0[10 * n :] = np.maximum(joints, 1e-9 * max(float(np.max(joints, initial=0.0)), 1e-3))
    x, steps = _barrier(jnp.asarray(x0), jnp.asarray(A), jnp.asarray(b), n)
    x = np.array(x, np.float64)
    if np.all(np.isfinite(x)):  # the optimum lies on the cone's boundary: a margin for the Cholesky factor
        x[: 10 * n] = _floor_eigenvalues(x[: 10 * n], n, 1e-10)
    cost = lambda v: float(np.sum((A @ v - b) ** 2))  # noqa: E731
    if not np.all(np.isfinite(x)) or cost(x) > cost(theta[active]):
        return theta, int(steps)
    theta = theta.copy()
    theta[active] = x
    return theta, int(steps)


def _floor_eigenvalues(links: np.ndarray, n: int, floor: float) -> np.ndarray:
    """Standard link parameters with each pseudo-inertia's eigenvalues at least ``floor``
    times its largest (the nearest such matrix in the Frobenius norm)."""
    link_map = _link_map()
    J = (links.reshape(n, 10) @ link_map.T).reshape(n, 4, 4)
    w, V = np.linalg.eigh(J)
    J = (V * np.maximum(w, floor * w[:, -1:])[:, None, :]) @ np.swapaxes(V, -1, -2)
    return (J.reshape(n, 16) @ _inverse_link_map().T).reshape(-1)


#: The barrier method's schedule: ``t`` per round, Newton steps per round.
BARRIER_T = tuple(10.0**k for k in range(16))
NEWTON_STEPS = 10


@functools.partial(jax.jit, static_argnums=(3,))
def _barrier(x0, A, b, n: int):
    """:func:`_torque_space_fit`'s Newton iterations: ``(x, steps taken)``.

    The pseudo-inertias are linear in ``x`` (``vec J_i = E x_i``, :func:`_link_map`), so
    the gradient and Hessian are closed-form: ``d log det J / dx = E^T vec(J^-1)`` and
    ``d^2 log det J / dx^2 = -E^T (J^-1 kron J^-1) E`` (Boyd & Vandenberghe 2004, A.4.1)."""
    E = jnp.asarray(_link_map(), x0.dtype)  # (16, 10)
    links0, joints0 = x0[: 10 * n].reshape(n, 10), x0[10 * n :]
    link_size = jnp.sum((links0 @ E.T) ** 2, axis=-1)[:, None, None]  # |J_i|_F^2 at the start
    joint_size = jnp.maximum(jnp.abs(joints0), jnp.max(jnp.abs(joints0), initial=1e-3)) ** 2
    prox_links = 2.0 * (E.T @ E)[None] / link_size  # (n, 10, 10)
    norm = b @ b
    gram = 2.0 * A.T @ A / norm

    def objective(x, t):
        J = (x[: 10 * n].reshape(n, 10) @ E.T).reshape(n, 4, 4)
        L = jnp.linalg.cholesky(J)  # NaN outside the positive definite cone
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)))
        r, dx = A @ x - b, x[: 10 * n].reshape(n, 10) - links0
        prox = 0.5 * jnp.einsum("ia,iab,ib->", dx, prox_links, dx) + jnp.sum(
            (x[10 * n :] - joints0) ** 2 / joint_size
        )
        f = t * (r @ r) / norm - logdet - jnp.sum(jnp.log(x[10 * n :])) + prox
        return jnp.where(jnp.isfinite(f), f, jnp.inf)

    def derivatives(x, t):
        J = (x[: 10 * n].reshape(n, 10) @ E.T).reshape(n, 4, 4)
        Jinv = jnp.linalg.inv(J)
        dx, joints = x[: 10 * n].reshape(n, 10) - links0, x[10 * n :]
        g_links = -(Jinv.reshape(n, 16) @ E) + jnp.einsum("iab,ib->ia", prox_links, dx)
        g_joints = -1.0 / joints + 2.0 * (joints - joints0) / joint_size
        g = t * 2.0 * A.T @ (A @ x - b) / norm + jnp.concatenate([g_links.reshape(-1), g_joints])
        kron = jnp.einsum("iac,ibd->iabcd", Jinv, Jinv).reshape(n, 16, 16)
        blocks = jnp.einsum("ka,ikl,lb->iab", E, kron, E) + prox_links
        H = t * gram + jax.scipy.linalg.block_diag(*blocks, jnp.diag(1.0 / joints**2 + 2.0 / joint_size))
        return g, H

    sizes = 0.5 ** jnp.arange(31.0)

    def newton(carry, t):
        x, taken = carry
        g, H = derivatives(x, t)
        d = jnp.sqrt(jnp.abs(jnp.diag(H))) + 1e-300
        step = -jnp.linalg.solve(H / d[:, None] / d[None, :], g / d) / d
        trial = jax.vmap(lambda s: objective(x + s * step, t))(sizes)
        ok = trial <= objective(x, t) + 1e-4 * sizes * (g @ step)  # Armijo
        moved = jnp.any(ok) & jnp.all(jnp.isfinite(step))
        x = jnp.where(moved, x + sizes[jnp.argmax(ok)] * step, x)
        return (x, taken + moved.astype(jnp.int32)), None

    schedule = jnp.repeat(jnp.asarray(BARRIER_T, x0.dtype), NEWTON_STEPS)
    (x, taken), _ = jax.lax.scan(newton, (x0, jnp.int32(0)), schedule)
    return x, taken


@functools.cache
def _inverse_link_map() -> np.ndarray:
    """``(10, 16)``: the pseudo-inverse of :func:`_link_map` (a symmetric ``J.ravel()`` to its parameters)."""
    return np.linalg.pinv(_link_map())


@functools.cache
def _link_map() -> np.ndarray:
    """``(16, 10)``: ``J.ravel() = map @ theta`` for one link's standard parameters (it is linear)."""
    return np.asarray(pseudo_inertia_from_standard(jnp.eye(10)), np.float64).reshape(10, 16).T


def _alternating_projections(
    theta, A, b, active, n: int, iterations: int = 2_000, tolerance: float = 1e-7
) -> tuple[np.ndarray, int]:
    """A consistent ``theta`` that fits as well as the least-squares one: ``(theta, steps)``.

    Both sets are convex: the least-squares solutions ``A theta = b`` (in the active
    parameters) and the consistent parameters (each link's pseudo-inertia positive
    definite, the joint parameters ``>= 0``), which holds the truth when the model class
    is exact. Projecting onto each in turn, in one metric (the Frobenius norm of the
    pseudo-inertias, the plain one of the joint parameters), converges to a point of both
    (von Neumann; Bauschke & Borwein 1996), linearly. It stops when ``|A theta - b|`` is
    below ``tolerance |b|`` after the consistent projection, when it stops decreasing (the
    sets do not meet: the model class is not exact, or the data are noisy), or after
    ``iterations``: the result is consistent then, with a worse fit (the report's
    ``torque_nmse`` shows it).
    """
    W, link_map = np.eye(len(active)), _link_map()
    for i in range(n):
        W[10 * i : 10 * i + 10, 10 * i : 10 * i + 10] = link_map.T @ link_map
    Winv = np.linalg.inv(W)
    onto_fit = Winv @ A.T @ np.linalg.pinv(A @ Winv @ A.T)
    x, previous = theta[active].copy(), np.inf
    for step in range(1, iterations + 1):
        x[: 10 * n] = _floor_eigenvalues(x[: 10 * n], n, 1e-8)
        x[10 * n :] = np.maximum(x[10 * n :], 0.0)
        residual = A @ x - b
        distance = np.linalg.norm(residual)
        # met, or stalled (the sets do not meet: a model class that is not exact, noise), or
        # out of steps: stop after the consistent projection, so the result is consistent
        if distance <= tolerance * np.linalg.norm(b) or previous - distance <= 1e-10 * distance:
            break
        if step == iterations:
            break
        x, previous = x - onto_fit @ residual, distance
    theta = theta.copy()
    theta[active] = x
    return theta, step


def _nmse(pred: np.ndarray, true: np.ndarray) -> float:
    mse = np.mean((pred - true) ** 2, axis=0)
    var = np.var(true, axis=0)
    return float(np.mean(mse / np.where(var > 0, var, 1.0)))


__all__ = [
    "RigidBodyModel",
    "RigidBodySpec",
    "InertialInit",
    "OPTIONAL_PATH",
    "Kinematics",
    "LINK_PARAMETERS",
    "JOINT_PARAMETERS",
    "pseudo_inertia_from_log_cholesky",
    "log_cholesky_from_pseudo_inertia",
    "inertial_from_pseudo_inertia",
    "pseudo_inertia_from_inertial",
    "standard_from_pseudo_inertia",
    "pseudo_inertia_from_standard",
    "nominal_tree",
    "parameter_names",
    "regressor",
    "identify",
]
