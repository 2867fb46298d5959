"""Constrained Lagrangian network (Finzi, Wang & Wilson, NeurIPS 2020), in joint coordinates.

Finzi et al.'s CLNN writes a system in the Cartesian coordinates ``x`` of its bodies,
where the kinetic energy is ``1/2 xd^T M_x xd`` with a *constant* mass matrix and the
potential ``V(x)`` is simple (linear, for gravity), and it enforces the known
constraints (rod lengths) with Lagrange multipliers. The same prior, known constraints,
can be written without multipliers: if the constraints are known, so is the map
``x = phi(q)`` from joint coordinates to the bodies' positions, and the Lagrangian in
``q`` is

    L(q, qd) = 1/2 qd^T J(q)^T M_x J(q) qd - V(phi(q)),   J = d phi / d q.

This module learns ``M_x = B B^T (x) I_d`` (``B`` lower-triangular over the bodies, its
diagonal ``softplus + epsilon``, so ``M_x`` is symmetric positive definite and so is
``M(q) = J^T M_x J`` wherever ``J`` has full column rank) and ``V(x)``, a network over
the bodies' positions with a linear path beside it. The model is a
:class:`~lagrax.systems.StructuredSystem`, so :mod:`lagrax.core.mechanics` derives its
dynamics, energies and momenta exactly as for DeLaN or a textbook pendulum.

The kinematics ``phi`` come from the system the data describe
(:func:`lagrax.systems.kinematics_of`: the planar point-mass chains ``pendulum``,
``double_pendulum`` and ``chain_pendulum``); the masses and the potential are learned.
A model for a system without known kinematics is a clean error.
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
from lagrax.core.errors import NotProvidedError
from lagrax.core.options import Activation, Init, Precision
from lagrax.systems import kinematics_of
from lagrax.systems.base import StructuredSystem, SystemInfo
from lagrax.systems.classic import PlanarChain
from lagrax.models.delan import cholesky_from_raw
from lagrax.models.nets import network
from lagrax.models.spec import (
    CHARACTER_OPTIMISER,
    ModelSpec,
    Recipe,
    SpecError,
    Specified,
    check_at_least,
    check_positive,
)


@dataclasses.dataclass(frozen=True)
class CLNNSpec(ModelSpec):
    """The hyper-parameters of a :class:`CLNN`.

    Attributes:
        width, depth, activation, init: the potential network over the bodies' positions.
        epsilon: the floor of the bodies' mass Cholesky diagonal (``softplus(raw) + epsilon``).
        precision: parameter dtype; inputs are cast to it.
    """

    kind: ClassVar[str] = "clnn"
    RECIPE = Recipe({**CHARACTER_OPTIMISER, "inverse": 1.0})  # DeLaN's, for a comparison of models

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.TANH
    init: Init = Init.XAVIER
    epsilon: float = 1e-3
    precision: Precision = Precision.FLOAT32

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        check_positive(self, "epsilon")

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "CLNN":
        """A CLNN for the system described by ``info`` (whose kinematics must be known)."""
        try:
            kinematics = kinematics_of(info)
        except NotProvidedError as e:
            raise SpecError(f"model 'clnn' needs the bodies' positions as known kinematics: {e}") from None
        k = kinematics.bodies
        dtype = self.precision.dtype
        raw_diagonal = float(np.log(np.expm1(1.0 - self.epsilon)))  # M_x = I at the start
        raw_mass = jnp.concatenate([jnp.full((k,), raw_diagonal), jnp.zeros((k * (k - 1) // 2,))]).astype(
            dtype
        )
        size = k * kinematics.dim
        net = network(
            size,
            "scalar",
            self.width,
            self.depth,
            self.activation,
            key=key,
            init=self.init,
            precision=self.precision,
        )
        return CLNN(
            info=info,
            raw_mass=raw_mass,
            linear=jnp.zeros((size,), dtype),
            potential_net=net,
            kinematics=kinematics,
            spec=self,
        )


class CLNN(Specified, StructuredSystem):
    """A constrained Lagrangian network; used exactly like a ground-truth system.

    Attributes:
        raw_mass: the bodies' mass Cholesky factor before its softplus diagonal,
            ``k(k+1)/2`` numbers for ``k`` bodies (diagonal first).
        linear: the linear path of the potential, one weight per position coordinate.
        potential_net: positions ``(k * d,)`` to a scalar.
        kinematics: the known map from ``q`` to the bodies' positions (static).
        spec: the :class:`CLNNSpec` it was built from (static).
    """

    raw_mass: Float[Array, " m"]
    linear: Float[Array, " kd"]
    potential_net: eqx.nn.MLP
    kinematics: PlanarChain = eqx.field(static=True)
    spec: CLNNSpec = eqx.field(static=True, kw_only=True)

    @property
    def dtype(self):
        """The parameters' dtype (``spec.precision``)."""
        return self.spec.precision.dtype

    def body_mass_matrix(self) -> Float[Array, "k k"]:
        """The learned constant mass matrix over the bodies, ``B B^T`` (the same in each axis)."""
        B = cholesky_from_raw(self.raw_mass, self.kinematics.bodies, 0.0, self.spec.epsilon)
        return B @ B.T

    def positions(self, q: Float[Array, " n"]) -> Float[Array, "k d"]:
        """The bodies' Cartesian positions (the known kinematics)."""
        return self.kinematics.positions(q.astype(self.dtype))

    def mass_matrix(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``M(q) = J(q)^T (M_x (x) I_d) J(q)`` with ``J`` the kinematics' Jacobian."""
        J = jax.jacfwd(self.positions)(q.astype(self.dtype))  # (k, d, n)
        return jnp.einsum("adi,ab,bdj->ij", J, self.body_mass_matrix(), J)

    def potential_energy(self, q: Float[Array, " n"]) -> Scalar:
        """``V(phi(q))``: the network plus the linear path, over the bodies' positions."""
        return self.potential_of_positions(self.positions(q))

    def terms(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g``, ``V`` in closed form from the kinematics' derivatives.

        With ``x = phi(q)``, ``J = dx/dq`` and the bias acceleration ``a = Jdot qd`` (one
        nested ``jvp``): ``M = J^T M_x J``, ``c = J^T M_x a`` (the ``Jdot^T M_x J qd``
        parts of ``Mdot qd`` and of ``1/2 d(qd^T M qd)/dq`` cancel) and
        ``g = J^T dV/dx``. The tests check it against the generic path.
        """
        q, qd = q.astype(self.dtype), qd.astype(self.dtype)
        J = jax.jacfwd(self.positions)(q)  # (k, d, n)

        def velocity(q_):
            return jax.jvp(self.positions, (q_,), (qd,))[1]

        bias = jax.jvp(velocity, (q,), (qd,))[1]  # (k, d): Jdot qd
        mass = self.body_mass_matrix()
        x = self.positions(q)
        V, dV = jax.value_and_grad(self.potential_of_positions)(x)
        M = jnp.einsum("adi,ab,bdj->ij", J, mass, J)
        c = jnp.einsum("adi,ab,bd->i", J, mass, bias)
        return mechanics.StructuredTerms(M, c, jnp.einsum("adi,ad->i", J, dV), V)

    def potential_of_positions(self, x: Float[Array, "k d"]) -> Scalar:
        """``V(x)``: the network plus the linear path, over the bodies' positions."""
        flat = x.ravel()
        return self.potential_net(flat) + self.linear @ flat

    def friction(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """No friction: a constrained Lagrangian network is conservative."""
        return jnp.zeros_like(qd)
