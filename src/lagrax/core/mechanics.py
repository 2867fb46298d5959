"""The mechanics core: everything about a system derived from its Lagrangian.

Two forms of Lagrangian are supported, and every quantity lagrax reports is derived
here, once, for ground-truth systems and trained networks alike:

* **structured**: ``L(q, qd) = 1/2 qd^T M(q) qd - V(q)`` given by the two callables
  ``mass_matrix(q) -> (n, n)`` and ``potential_energy(q) -> ()``;
* **general**: an arbitrary scalar ``L(q, qd)`` (Cranmer et al. 2020).

Non-conservative generalised forces (friction, dissipation) enter as a vector
``friction(q, qd)`` that the joint torques must overcome, so that the equation of
motion everywhere in lagrax reads

    tau = M(q) qdd + c(q, qd) + g(q) + friction(q, qd)        (DeLaN, Lutter 2019 eq. 5)

with ``tau`` the generalised joint forces of shape ``(n,)``. Under-actuation is a
property of the *input* (which joints ``tau`` may drive, see ``System.actuation_matrix``),
not of this equation.

All functions here work on a single state (arrays of shape ``(n,)``); batching is done
with ``jax.vmap`` at the edge (``lagrax.systems.base``). Derivatives of the mass
matrix and potential are taken in forward mode: one ``jvp`` pass with ``n`` tangents
gives ``dM/dq`` for ``Mdot qd`` and for ``d(qd^T M qd)/dq`` at once, which is the
cheap direction for the small ``n`` of mechanical systems and lets callbacks with
custom JVP rules (Pinocchio) take part.

This module does not know about networks, datasets or integration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, lu_factor, lu_solve
from jaxtyping import Array, Bool, Float, Scalar

from lagrax.core.errors import ShapeError

MassFn = Callable[[Float[Array, " n"]], Float[Array, "n n"]]
PotentialFn = Callable[[Float[Array, " n"]], Scalar]
LagrangianFn = Callable[[Float[Array, " n"], Float[Array, " n"]], Scalar]


BATCH_HINT = (
    "per-sample functions take one state, arrays of shape (n,); for a batch (N, n) wrap the "
    "system at the edge, lagrax.batched(system).method(...), or map it with jax.vmap"
)


def check_per_sample(**arrays) -> None:
    """A :class:`~lagrax.core.errors.ShapeError` naming ``lagrax.batched`` and ``jax.vmap``
    unless every array is one state, of shape ``(n,)`` (static shapes: free at trace time)."""
    for name, a in arrays.items():
        if jnp.ndim(a) != 1:
            raise ShapeError(f"{name} has shape {jnp.shape(a)}: {BATCH_HINT}")


def value_and_jacfwd(f: Callable, x: Float[Array, " n"]):
    """``f(x)`` and its Jacobian by forward mode (one ``jvp`` with ``n`` tangents).

    The derivative direction is the *last* axis of every output leaf:
    ``jac[..., k] = d f(x)[...] / d x_k``.
    """
    check_per_sample(q=x)
    basis = jnp.eye(x.shape[-1], dtype=x.dtype)

    def push(v):
        return jax.jvp(f, (x,), (v,))

    y, dy = jax.vmap(push, out_axes=(None, -1))(basis)
    return y, dy


# --------------------------------------------------------------------------------------
# Structured Lagrangian  L = 1/2 qd^T M(q) qd - V(q)
# --------------------------------------------------------------------------------------


class StructuredTerms(NamedTuple):
    """The terms of ``tau = M qdd + c + g`` at one state (DeLaN eq. 5)."""

    mass_matrix: Float[Array, "n n"]
    coriolis: Float[Array, " n"]  # c = Mdot qd - 1/2 d(qd^T M qd)/dq
    gravity: Float[Array, " n"]  # g = dV/dq
    potential_energy: Scalar


def structured_terms(
    mass_fn: MassFn, potential_fn: PotentialFn, q: Float[Array, " n"], qd: Float[Array, " n"]
) -> StructuredTerms:
    """``M(q)``, ``c(q, qd)``, ``g(q)`` and ``V(q)`` from one forward-mode pass."""

    def mv(q_):
        return mass_fn(q_), potential_fn(q_)

    (M, V), (dM, dV) = value_and_jacfwd(mv, q)
    # dM[i, j, k] = dM_ij / dq_k
    Mdot_qd = jnp.einsum("ijk,k,j->i", dM, qd, qd)
    dT_dq = 0.5 * jnp.einsum("ijk,i,j->k", dM, qd, qd)
    return StructuredTerms(M, Mdot_qd - dT_dq, dV, V)


def coriolis_matrix(mass_fn: MassFn, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Float[Array, "n n"]:
    """The Coriolis matrix ``C(q, qd)`` from Christoffel symbols of the first kind.

    ``C_ij = sum_k Gamma_ijk qd_k`` with ``Gamma_ijk = 1/2 (dM_ij/dq_k + dM_ik/dq_j - dM_jk/dq_i)``
    (Spong, Hutchinson, Vidyasagar, Robot Modeling and Control, ch. 7). Of the many
    ``C`` with ``C qd = c`` this is the one for which ``Mdot - 2C`` is skew-symmetric.
    """
    _, dM = value_and_jacfwd(mass_fn, q)  # dM[i, j, k] = dM_ij / dq_k
    return 0.5 * (
        jnp.einsum("ijk,k->ij", dM, qd) + jnp.einsum("ikj,k->ij", dM, qd) - jnp.einsum("jki,k->ij", dM, qd)
    )


def structured_inverse_dynamics(terms: StructuredTerms, qdd, friction):
    """``tau = M qdd + c + g + friction``."""
    return terms.mass_matrix @ qdd + terms.coriolis + terms.gravity + friction


def structured_forward_dynamics(terms: StructuredTerms, tau, friction):
    """``qdd = M^-1 (tau - c - g - friction)`` by a Cholesky solve (M is SPD)."""
    chol = jnp.linalg.cholesky(terms.mass_matrix)
    rhs = tau - terms.coriolis - terms.gravity - friction
    return cho_solve((chol, True), rhs)


def structured_kinetic_energy(mass_fn: MassFn, q, qd) -> Scalar:
    return 0.5 * qd @ mass_fn(q) @ qd


# --------------------------------------------------------------------------------------
# General Lagrangian  L(q, qd)   (Cranmer et al. 2020, eq. 6)
# --------------------------------------------------------------------------------------


class GeneralTerms(NamedTuple):
    """Derivatives of a general Lagrangian at one state."""

    hessian: Float[Array, "n n"]  # d^2 L / dqd^2
    mixed_qd: Float[Array, " n"]  # (d^2 L / dq dqd^T) qd, i.e. d/dt of p along q only
    dL_dq: Float[Array, " n"]
    momentum: Float[Array, " n"]  # p = dL/dqd


def general_terms(lagrangian: LagrangianFn, q, qd) -> GeneralTerms:
    """Hessian, mixed term, ``dL/dq`` and ``p`` with one forward-over-reverse pass.

    The gradient ``(dL/dq, dL/dqd)`` is pushed forward along ``n + 1`` tangents:
    ``(0, e_i)`` give the columns of ``d^2L/dqd^2`` and ``(qd, 0)`` gives the mixed
    term ``(d^2 L/ dqd dq) qd``.
    """
    check_per_sample(q=q, qd=qd)
    n = q.shape[-1]
    grad_fn = jax.grad(lagrangian, argnums=(0, 1))
    eye = jnp.eye(n, dtype=q.dtype)
    t_q = jnp.concatenate([jnp.zeros_like(eye), qd[None, :]], axis=0)
    t_qd = jnp.concatenate([eye, jnp.zeros_like(qd)[None, :]], axis=0)

    def push(tq, tqd):
        return jax.jvp(grad_fn, (q, qd), (tq, tqd))

    (dL_dq, p), (_, dp) = jax.vmap(push, out_axes=((None, None), (0, 0)))(t_q, t_qd)
    # dp[i] = directional derivative of p along tangent i
    hessian = dp[:n].T  # column i = d p / d qd_i; symmetric anyway
    mixed = dp[n]
    return GeneralTerms(hessian, mixed, dL_dq, p)


def general_inverse_dynamics(terms: GeneralTerms, qdd, friction):
    """``tau = H qdd + (d^2L/dqd dq) qd - dL/dq + friction``."""
    return terms.hessian @ qdd + terms.mixed_qd - terms.dL_dq + friction


class SolveResult(NamedTuple):
    qdd: Float[Array, " n"]
    singular: Bool[Array, ""]


def general_forward_dynamics(terms: GeneralTerms, tau, friction, regularization: float = 0.0) -> SolveResult:
    """``qdd = H^-1 [dL/dq - (d^2L/dqd dq) qd + tau - friction]`` by an LU solve.

    ``regularization`` adds ``lambda * I`` to the Hessian (Tikhonov). The returned
    ``singular`` flag is true where the Hessian's LU pivots indicate a reciprocal
    condition number below ``n * eps`` or the result is not finite; callers decide
    whether to raise (public API) or count it (training).
    """
    n = tau.shape[-1]
    H = terms.hessian + regularization * jnp.eye(n, dtype=terms.hessian.dtype)
    rhs = terms.dL_dq - terms.mixed_qd + tau - friction
    lu, piv = lu_factor(H)
    qdd = lu_solve((lu, piv), rhs)
    pivots = jnp.abs(jnp.diagonal(lu))
    eps = jnp.finfo(H.dtype).eps
    singular = (jnp.min(pivots) <= n * eps * jnp.max(pivots)) | ~jnp.all(jnp.isfinite(qdd))
    return SolveResult(qdd, singular)


def definite(matrix: Float[Array, "n n"]) -> Bool[Array, ""]:
    """Whether the symmetric ``matrix`` is positive or negative definite (``-L`` has the same
    motion as ``L``, so a negative definite Hessian of a Lagrangian is as good)."""
    eig = jnp.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return jnp.all(eig > 0) | jnp.all(eig < 0)


def general_energy(lagrangian: LagrangianFn, q, qd) -> Scalar:
    """Energy function (Hamiltonian by the Legendre transform) ``E = p . qd - L``."""
    L, p = jax.value_and_grad(lagrangian, argnums=1)(q, qd)
    return p @ qd - L


def general_potential_energy(lagrangian: LagrangianFn, q) -> Scalar:
    """``V(q) = -L(q, 0)``: the part of the energy present at rest."""
    return -lagrangian(q, jnp.zeros_like(q))


def general_gravity(lagrangian: LagrangianFn, q) -> Float[Array, " n"]:
    """``g(q) = dV/dq = -dL/dq (q, 0)``."""
    return jax.grad(general_potential_energy, argnums=1)(lagrangian, q)


def energy_rate(energy_fn: Callable, q, qd, qdd) -> Scalar:
    """``dE/dt`` along a motion ``(q, qd, qdd)``: one jvp of the energy."""
    check_per_sample(q=q, qd=qd, qdd=qdd)
    return jax.jvp(energy_fn, (q, qd), (qd, qdd))[1]
