"""Ensembles: K models of one structure whose parameters are stacked on a leading axis.

An :class:`Ensemble` is what ``lagrax train --ensemble K`` (``train(..., ensemble)``)
fits in one ``vmap``-ped program. It is itself a :class:`~lagrax.systems.System`: its
per-sample methods give the **mean of the members' predictions** (dynamics, mass
matrix, forces, energies), so rollout, evaluation and control take it like any model.
:meth:`Ensemble.predict_with_uncertainty` gives the spread as well, and
:meth:`Ensemble.member` one member as a plain model.

    ens = Ensemble.build(lambda key: make_model("delan", info, key=key), seeds=range(10))
    spread = ens.predict_with_uncertainty(q, qd, qdd=qdd, tau=tau)   # one state or (N, n)
    ens.member(3)                                                     # a DeLaN

Member ``k`` of an ensemble built by the trainer has seed ``seed + k``: its initial
parameters come from ``PRNGKey(seed + k)`` and it trains on its own shuffles, exactly
as a run with that seed alone would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from lagrax.core.errors import LagraxError, ShapeError
from lagrax.core.mechanics import SolveResult
from lagrax.systems.base import System

Vec = Float[Array, " n"]


def stack_models(models: list) -> Any:
    """One model whose array leaves are the ``models``' leaves stacked on a new axis 0.

    The models must share their structure (same kind, spec and system), as members of
    one ensemble do; anything but their arrays is taken from the first.
    """
    if not models:
        raise LagraxError("an ensemble needs at least one member")
    params = [eqx.filter(m, eqx.is_array) for m in models]
    structures = {jax.tree_util.tree_structure(p) for p in params}
    if len(structures) != 1:
        raise LagraxError("ensemble members must have the same structure (model kind, options and system)")
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params)
    return eqx.combine(stacked, eqx.filter(models[0], eqx.is_array, inverse=True))


class Ensemble(System):
    """K members with stacked parameters; as a system, the mean of their predictions."""

    members: Any  # one model whose array leaves have a leading axis of size ``size``
    size: int = eqx.field(static=True)

    def __init__(self, members: Any, size: int | None = None):
        leaves = jax.tree_util.tree_leaves(eqx.filter(members, eqx.is_array))
        if not leaves or any(leaf.ndim == 0 for leaf in leaves):
            raise ShapeError("Ensemble(members): the members' array leaves need a leading member axis")
        k = leaves[0].shape[0]
        if (size is not None and size != k) or any(leaf.shape[0] != k for leaf in leaves):
            raise ShapeError(f"Ensemble(members): every array leaf needs the same leading size ({k})")
        self.members = members
        self.size = k
        self.info = members.info

    @classmethod
    def build(cls, make: Callable[[Array], Any], seeds: Iterable[int]) -> Ensemble:
        """``make(PRNGKey(seed))`` for each seed, stacked."""
        return cls(stack_models([make(jax.random.PRNGKey(int(s))) for s in seeds]))

    @classmethod
    def of(cls, models: list) -> Ensemble:
        """The ensemble of ``models`` (same structure), in order."""
        return cls(stack_models(list(models)))

    # ---- members ------------------------------------------------------------------------
    def member(self, i: int) -> Any:
        """Member ``i`` as a plain model."""
        if not -self.size <= i < self.size:
            raise LagraxError(f"member {i} out of range: the ensemble has {self.size} members")
        params, static = eqx.partition(self.members, eqx.is_array)
        return eqx.combine(jax.tree_util.tree_map(lambda a: a[i], params), static)

    def each(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(member, *args)`` for every member, stacked (one ``vmap``, not a loop)."""
        params, static = eqx.partition(self.members, eqx.is_array)
        return jax.vmap(lambda p: fn(eqx.combine(p, static), *args))(params)

    def _mean(self, name: str, *args: Any) -> Any:
        return jax.tree_util.tree_map(
            lambda a: jnp.mean(a, axis=0), self.each(lambda m, *a: getattr(m, name)(*a), *args)
        )

    @property
    def spec(self):
        """The members' spec (every member has the same)."""
        return self.members.spec

    @property
    def kind(self) -> str:
        return self.members.kind

    def settings(self) -> dict[str, Any]:
        return {**self.members.settings(), "ensemble": self.size}

    def provides(self, quantity: str) -> bool:
        return self.members.provides(quantity)

    def not_provided_reason(self) -> str:
        return self.members.not_provided_reason()

    # ---- uncertainty ----------------------------------------------------------------------
    def predict_with_uncertainty(self, q, qd, qdd=None, tau=None) -> dict[str, Array]:
        """The members' mean and standard deviation of the torques (with ``qdd``) and the
        accelerations (with ``tau``), at one state ``(n,)`` or a batch ``(N, n)``.

        Returns ``{"tau_mean", "tau_std", "qdd_mean", "qdd_std"}`` (those that apply), and
        ``"tau_members"`` / ``"qdd_members"`` with the member axis first.
        """
        q = jnp.asarray(q)
        if q.ndim == 2:
            return jax.vmap(lambda *a: self.predict_with_uncertainty(*a))(q, qd, qdd, tau)
        if q.ndim != 1 or q.shape[0] != self.dof:
            raise ShapeError(f"q must have shape ({self.dof},) or (N, {self.dof}), got {q.shape}")
        if qdd is None and tau is None:
            raise LagraxError("predict_with_uncertainty needs qdd (for torques) or tau (for accelerations)")
        out: dict[str, Array] = {}
        for name, given, method in (("tau", qdd, "inverse_dynamics"), ("qdd", tau, "forward_dynamics")):
            if given is not None:
                values = self.each(lambda m, a, b, c, f=method: getattr(m, f)(a, b, c), q, qd, given)
                out.update(
                    {f"{name}_mean": values.mean(0), f"{name}_std": values.std(0), f"{name}_members": values}
                )
        return out

    # ---- the system protocol: the members' mean --------------------------------------------
    def solve_forward_dynamics(self, q: Vec, qd: Vec, tau: Vec, regularization: float = 0.0) -> SolveResult:
        res = self.each(lambda m: m.solve_forward_dynamics(q, qd, tau, regularization))
        return SolveResult(jnp.mean(res.qdd, axis=0), jnp.any(res.singular))

    def forward_dynamics(self, q: Vec, qd: Vec, tau: Vec) -> Vec:
        return self._mean("forward_dynamics", q, qd, tau)

    def inverse_dynamics(self, q: Vec, qd: Vec, qdd: Vec) -> Vec:
        return self._mean("inverse_dynamics", q, qd, qdd)

    def inverse_and_forward_dynamics(self, q, qd, qdd, tau, regularization: float = 0.0):
        tau_hat, res = self.each(lambda m: m.inverse_and_forward_dynamics(q, qd, qdd, tau, regularization))
        return jnp.mean(tau_hat, axis=0), SolveResult(jnp.mean(res.qdd, axis=0), jnp.any(res.singular))

    def mass_matrix(self, q: Vec, *args: Any) -> Any:
        return self._mean("mass_matrix", q, *args)

    def coriolis(self, q: Vec, qd: Vec) -> Vec:
        return self._mean("coriolis", q, qd)

    def coriolis_matrix(self, q: Vec, qd: Vec) -> Any:
        return self._mean("coriolis_matrix", q, qd)

    def gravity(self, q: Vec) -> Vec:
        return self._mean("gravity", q)

    def friction(self, q: Vec, qd: Vec) -> Vec:
        return self._mean("friction", q, qd)

    def kinetic_energy(self, q: Vec, qd: Vec) -> Any:
        return self._mean("kinetic_energy", q, qd)

    def potential_energy(self, q: Vec) -> Any:
        return self._mean("potential_energy", q)

    def energy(self, q: Vec, qd: Vec) -> Any:
        return self._mean("energy", q, qd)

    def lagrangian(self, q: Vec, qd: Vec) -> Any:
        return self._mean("lagrangian", q, qd)

    def momentum(self, q: Vec, qd: Vec) -> Vec:
        return self._mean("momentum", q, qd)

    def hamiltonian(self, q: Vec, p: Vec) -> Any:
        return self._mean("hamiltonian", q, p)

    def canonical_time_derivative(self, q: Vec, p: Vec, tau: Vec) -> Any:
        return self._mean("canonical_time_derivative", q, p, tau)

    def decomposition(self, q: Vec, qd: Vec, qdd: Vec) -> dict[str, Vec]:
        return self._mean("decomposition", q, qd, qdd)

    def __repr__(self):
        return f"Ensemble({self.size} x {type(self.members).__name__}, name={self.info.name!r})"
