"""A Pinocchio robot's dynamics in pure JAX: recursive Newton-Euler over its kinematic tree.

:class:`~lagrax.systems.robots.PinocchioRobot` calls Pinocchio through host callbacks:
exact, but each call leaves the compiled program. A controller that runs 10,000 ticks
inside one ``lax.scan`` (:mod:`lagrax.control.laws`) needs a plant that compiles with it.
:class:`RigidBodyTree` reads the same Pinocchio model once (joint placements, axes,
link inertias, gravity, armature) into arrays and evaluates Featherstone's recursive
Newton-Euler algorithm (RNEA) in JAX, with spatial vectors in Pinocchio's order
``(linear, angular)`` and each link's quantities in its own frame:

* ``inverse_dynamics``: RNEA, plus ``armature * qdd`` and joint friction;
* ``mass_matrix``: the columns ``RNEA(q, 0, e_j)`` without gravity (one ``vmap``);
* ``forward_dynamics``: a Cholesky solve of ``M qdd = tau - friction - RNEA(q, qd, 0)``;
* ``potential_energy``: ``-sum_i m_i g . c_i(q)`` from forward kinematics.

It equals Pinocchio to rounding (``tests/test_control.py``). :meth:`RigidBodyTree.with_payload`
adds a point mass to a link, for a changed payload.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar

from lagrax.core.errors import LagraxError
from lagrax.core.friction import JointFriction
from lagrax.systems.base import StructuredSystem, SystemInfo

Vec = Float[Array, " n"]
Mat = Float[Array, "n n"]

_AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}
_KINDS = {"JointModelR": "R", "JointModelRUB": "R", "JointModelP": "P"}
_UNALIGNED = {
    "JointModelRevoluteUnaligned": "R",
    "JointModelRevoluteUnboundedUnaligned": "R",
    "JointModelPrismaticUnaligned": "P",
}


def joint_kind_and_axis(joint) -> tuple[str, np.ndarray]:
    """``("R" | "P", unit axis)`` of a 1-DoF Pinocchio joint model; a LagraxError otherwise."""
    name = joint.shortname()
    if name in _UNALIGNED:
        axis = np.asarray(joint.extract().axis, dtype=float)
        return _UNALIGNED[name], axis / np.linalg.norm(axis)
    prefix, last = name[:-1], name[-1]
    if prefix in _KINDS and last in _AXES:
        return _KINDS[prefix], np.asarray(_AXES[last])
    raise LagraxError(f"joint model {name} has no JAX rigid-body form (revolute and prismatic joints only)")


def _skew(v):
    return jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], dtype=v.dtype)


def _rotation(axis, angle):
    """Rodrigues: the rotation by ``angle`` about the unit ``axis``."""
    K = _skew(axis)
    return jnp.eye(3, dtype=K.dtype) + jnp.sin(angle) * K + (1.0 - jnp.cos(angle)) * (K @ K)


class RigidBodyTree(StructuredSystem):
    """A fixed-base tree of rigid links with 1-DoF joints (see the module docstring).

    Joint ``i`` (lagrax coordinate ``i``) has parent ``parents[i]`` (``-1``: the base),
    kind ``"R"`` or ``"P"`` about/along ``axes[i]`` (its own frame), and places its
    frame at ``rotations[i], translations[i]`` in the parent's frame at ``q_i = 0``.
    Link ``i`` has ``masses[i]``, centre of mass ``coms[i]`` and rotational inertia
    ``inertias[i]`` about it, in the joint's frame.
    """

    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"payload"})

    parents: tuple[int, ...] = eqx.field(static=True)
    kinds: tuple[str, ...] = eqx.field(static=True)
    axes: Float[Array, "n 3"]
    rotations: Float[Array, "n 3 3"]
    translations: Float[Array, "n 3"]
    masses: Float[Array, " n"]
    coms: Float[Array, "n 3"]
    inertias: Float[Array, "n 3 3"]
    gravity_vector: Float[Array, " 3"]
    armature: Float[Array, " n"]
    friction_model: JointFriction | None = None

    @classmethod
    def from_pinocchio(
        cls, model, info: SystemInfo, friction_model: JointFriction | None = None
    ) -> RigidBodyTree:
        """The arrays of a Pinocchio ``Model`` whose joints all have ``nv = 1`` in order."""
        n = model.njoints - 1
        kinds, axes = zip(*(joint_kind_and_axis(model.joints[j]) for j in range(1, n + 1)))
        if [model.joints[j].idx_v for j in range(1, n + 1)] != list(range(n)):
            raise LagraxError("the JAX rigid-body form needs joints whose velocity indices run 0, 1, ...")
        inert = [model.inertias[j] for j in range(1, n + 1)]
        place = [model.jointPlacements[j] for j in range(1, n + 1)]
        arr = lambda xs: jnp.asarray(np.array(xs, dtype=float))  # noqa: E731
        return cls(
            info=info,
            parents=tuple(int(model.parents[j]) - 1 for j in range(1, n + 1)),
            kinds=tuple(kinds),
            axes=arr(axes),
            rotations=arr([p.rotation for p in place]),
            translations=arr([p.translation for p in place]),
            masses=arr([i.mass for i in inert]),
            coms=arr([i.lever for i in inert]),
            inertias=arr([i.inertia for i in inert]),
            gravity_vector=arr(model.gravity.linear),
            armature=arr(np.broadcast_to(np.asarray(model.armature, float), (n,))),
            friction_model=friction_model,
        )

    # ---- kinematics ---------------------------------------------------------------
    def joint_transform(self, i: int, qi: Scalar) -> tuple[Array, Array]:
        """``(E, p)``: link ``i``'s frame in its parent's, ``x_parent = E x_i + p``."""
        if self.kinds[i] == "R":
            return self.rotations[i] @ _rotation(self.axes[i], qi), self.translations[i]
        return self.rotations[i], self.translations[i] + self.rotations[i] @ (self.axes[i] * qi)

    def motion_subspace(self, i: int) -> tuple[Array, Array]:
        """Joint ``i``'s ``S = (linear, angular)`` in its own frame."""
        zero = jnp.zeros(3, self.axes.dtype)
        return (zero, self.axes[i]) if self.kinds[i] == "R" else (self.axes[i], zero)

    def link_frames(self, q: Vec) -> list[tuple[Array, Array]]:
        """Each link's world pose ``(R, p)``."""
        out: list[tuple[Array, Array]] = []
        for i, parent in enumerate(self.parents):
            E, p = self.joint_transform(i, q[i])
            if parent < 0:
                out.append((E, p))
            else:
                R0, p0 = out[parent]
                out.append((R0 @ E, p0 + R0 @ p))
        return out

    # ---- dynamics -----------------------------------------------------------------
    def rnea(self, q: Vec, qd: Vec, qdd: Vec, gravity: bool = True) -> Vec:
        """The joint torques of the rigid bodies alone (no armature, no friction)."""
        zero = jnp.zeros(3, q.dtype)
        base_acc = -self.gravity_vector.astype(q.dtype) if gravity else zero
        frames: list[tuple[Array, Array]] = []
        vel: list[tuple[Array, Array]] = []
        acc: list[tuple[Array, Array]] = []
        force: list[tuple[Array, Array]] = []
        for i, parent in enumerate(self.parents):
            E, p = self.joint_transform(i, q[i])
            vp = (zero, zero) if parent < 0 else vel[parent]
            ap = (base_acc, zero) if parent < 0 else acc[parent]
            Sv, Sw = self.motion_subspace(i)
            v_lin = E.T @ (vp[0] + jnp.cross(vp[1], p)) + Sv * qd[i]
            w = E.T @ vp[1] + Sw * qd[i]
            # a_i = X a_parent + S qdd + v_i x (S qd): the last term in (linear, angular) parts
            a_lin = E.T @ (ap[0] + jnp.cross(ap[1], p)) + Sv * qdd[i]
            a_lin = a_lin + jnp.cross(w, Sv * qd[i]) + jnp.cross(v_lin, Sw * qd[i])
            a_w = E.T @ ap[1] + Sw * qdd[i] + jnp.cross(w, Sw * qd[i])
            frames.append((E, p))
            vel.append((v_lin, w))
            acc.append((a_lin, a_w))
            force.append(self._link_force(i, (v_lin, w), (a_lin, a_w)))
        return self._backward(frames, force, q.dtype)

    def _link_force(self, i: int, v, a) -> tuple[Array, Array]:
        """``I a + v x* (I v)``: the net spatial force on link ``i``."""
        hv_lin, hv_ang = self._momentum(i, *v)
        ha_lin, ha_ang = self._momentum(i, *a)
        f = ha_lin + jnp.cross(v[1], hv_lin)
        tau = ha_ang + jnp.cross(v[0], hv_lin) + jnp.cross(v[1], hv_ang)
        return f, tau

    def _momentum(self, i: int, lin, ang) -> tuple[Array, Array]:
        """Spatial inertia times a motion ``(lin, ang)``, about the link's frame origin."""
        c = self.coms[i]
        h = self.masses[i] * (lin - jnp.cross(c, ang))
        return h, self.inertias[i] @ ang + jnp.cross(c, h)

    def _backward(self, frames, force, dtype) -> Vec:
        force = list(force)
        tau = [jnp.zeros((), dtype)] * len(self.parents)
        for i in reversed(range(len(self.parents))):
            Sv, Sw = self.motion_subspace(i)
            f, m = force[i]
            tau[i] = Sv @ f + Sw @ m
            parent = self.parents[i]
            if parent >= 0:
                E, p = frames[i]
                Ef = E @ f
                pf, pm = force[parent]
                force[parent] = (pf + Ef, pm + E @ m + jnp.cross(p, Ef))
        return jnp.stack(tau)

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return jnp.zeros_like(qd) if self.friction_model is None else self.friction_model(qd)

    def mass_matrix(self, q: Vec) -> Mat:
        eye = jnp.eye(q.shape[0], dtype=q.dtype)
        zero = jnp.zeros_like(q)
        cols = jax.vmap(lambda e: self.rnea(q, zero, e, gravity=False))(eye)
        M = cols.T
        return 0.5 * (M + M.T) + jnp.diag(self.armature.astype(q.dtype))

    def potential_energy(self, q: Vec) -> Scalar:
        g = self.gravity_vector.astype(q.dtype)
        frames = self.link_frames(q)
        heights = [self.masses[i] * g @ (R @ self.coms[i] + p) for i, (R, p) in enumerate(frames)]
        return -jnp.sum(jnp.stack(heights))

    def gravity(self, q: Vec) -> Vec:
        zero = jnp.zeros_like(q)
        return self.rnea(q, zero, zero)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        return self.rnea(q, qd, qdd) + self.armature.astype(q.dtype) * qdd + self.friction(q, qd)

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        bias = self.rnea(q, qd, jnp.zeros_like(q)) + self.friction(q, qd)
        factor = jax.scipy.linalg.cho_factor(self.mass_matrix(q), lower=True)
        return jax.scipy.linalg.cho_solve(factor, tau - bias)

    def with_payload(self, mass: float, offset=(0.0, 0.0, 0.0), link: int = -1) -> RigidBodyTree:
        """This robot with a point mass ``mass`` [kg] fixed at ``offset`` in link ``link``'s
        frame (default: the last link, the end effector)."""
        i = link % len(self.parents)
        m0, c0, I0 = self.masses[i], self.coms[i], self.inertias[i]
        d = jnp.asarray(offset, c0.dtype)
        m = m0 + mass
        c = (m0 * c0 + mass * d) / m
        shift = lambda mi, r: mi * (jnp.dot(r, r) * jnp.eye(3) - jnp.outer(r, r))  # noqa: E731
        inertia = I0 + shift(m0, c0 - c) + shift(mass, d - c)
        return eqx.tree_at(
            lambda s: (s.masses, s.coms, s.inertias),
            self,
            (self.masses.at[i].set(m), self.coms.at[i].set(c), self.inertias.at[i].set(inertia)),
        )


__all__ = ["RigidBodyTree", "joint_kind_and_axis"]


def plant_of(system):
    """The plant the loop integrates: a Pinocchio robot as its pure-JAX
    :class:`~lagrax.systems.rigid_body.RigidBodyTree` (same dynamics, compiles into the
    loop), anything else as it is."""
    return system.rigid_body_tree() if system.provides("rigid_body_tree") else system
