"""Deep Lagrangian Networks (Lutter, Ritter & Peters, ICLR 2019; Lutter & Peters, IJRR 2023).

DeLaN learns the two functions of a structured Lagrangian
``L = 1/2 qd^T M(q) qd - V(q)``:

* :class:`CholeskyMassNetwork` maps ``q`` to a lower-triangular Cholesky factor
  ``L(q)`` with a strictly positive diagonal, so ``M = L L^T`` is symmetric positive
  definite by construction (ICLR 2019, eq. 8);
* :class:`PotentialNetwork` maps ``q`` to the scalar ``V(q)``.

Both may share one trunk (``shared=True``, the reference implementation's layout) or
be separate networks. Optional learned per-joint friction (viscous, Coulomb,
Stribeck; :class:`lagrax.friction.JointFriction`) has positive parameters.

The model is a :class:`~lagrax.systems.StructuredSystem`, so the equation of motion,
``c``, ``g``, energies and power all come from :mod:`lagrax.mechanics`. The only
thing done here for speed is :meth:`DeLaN._terms`: one forward-mode pass through the
network gives ``L``, ``dL/dq``, ``V`` and ``dV/dq`` together, and ``M``, ``Mdot qd``
and ``d(qd^T M qd)/dq`` are assembled from the Cholesky factor (the tests check it
against the generic core path). Training is not done here (see ``lagrax.training``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .. import mechanics
from ..errors import LagraxError, UnknownNameError
from ..friction import JointFriction
from ..systems.base import StructuredSystem, SystemInfo
from .nets import activation as _activation
from .nets import feature_size, joint_features, mlp

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
FRICTIONS = (None, "viscous", "coulomb", "stribeck")


def resolve_dtype(dtype: str):
    """``"float32" | "float64"`` -> the jnp dtype (float64 needs ``jax_enable_x64``)."""
    if dtype not in DTYPES:
        raise UnknownNameError.for_name("dtype", str(dtype), DTYPES)
    return DTYPES[dtype]


def init_in_dtype(module, dtype: str):
    """Cast a module initialised in float32 to ``dtype``.

    Networks are always *drawn* in float32 and then cast: ``jax.random`` gives different
    numbers for different dtypes, and float32 and float64 models built with the same key
    must be the same model (up to float32 rounding).
    """
    dt = resolve_dtype(dtype)
    return jax.tree_util.tree_map(lambda x: x.astype(dt) if eqx.is_inexact_array(x) else x, module)


def _tril_indices(n: int):
    """Where the ``n(n+1)/2`` network outputs go: first the diagonal, then the strict lower part."""
    rows, cols = np.tril_indices(n, k=-1)
    diag = np.arange(n)
    return np.concatenate([diag, rows]), np.concatenate([diag, cols])


def cholesky_from_raw(
    raw: Float[Array, " m"], n: int, shift: float, epsilon: float
) -> Float[Array, "n n"]:
    """Lower-triangular ``L`` from ``n(n+1)/2`` raw outputs; diagonal ``softplus(raw + shift) + epsilon``."""
    rows, cols = _tril_indices(n)
    diag = jax.nn.softplus(raw[:n] + shift) + epsilon
    entries = jnp.concatenate([diag, raw[n:]])
    return jnp.zeros((n, n), dtype=raw.dtype).at[rows, cols].set(entries)


class CholeskyMassNetwork(eqx.Module):
    """``q -> M(q) = L(q) L(q)^T``, SPD by construction (``M >= epsilon^2 I`` in the sense of ``L``'s diagonal).

    Call it with one configuration ``q`` of shape ``(n,)``; :meth:`cholesky` gives ``L``.
    """

    net: eqx.nn.MLP
    joint_types: tuple[str, ...] = eqx.field(static=True)
    shift: float = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)

    def __init__(
        self,
        joint_types: Sequence[str],
        *,
        key: PRNGKeyArray,
        width: int = 64,
        depth: int = 2,
        activation: str = "softplus",
        init: str = "xavier",
        shift: float = 0.0,
        epsilon: float = 1e-2,
        dtype: str = "float32",
    ):
        if epsilon <= 0:
            raise LagraxError(f"epsilon must be > 0 so that M is positive definite, got {epsilon}")
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift = float(shift)
        self.epsilon = float(epsilon)
        self.net = init_in_dtype(mlp(
            feature_size(self.joint_types), n * (n + 1) // 2, width, depth, activation,
            key=key, init=init, dtype=jnp.float32,
        ), dtype)

    def cholesky(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        n = len(self.joint_types)
        q = q.astype(self.net.layers[0].weight.dtype)
        return cholesky_from_raw(self.net(joint_features(q, self.joint_types)), n, self.shift, self.epsilon)

    def __call__(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        L = self.cholesky(q)
        return L @ L.T


class PotentialNetwork(eqx.Module):
    """``q -> V(q)``, a scalar potential energy."""

    net: eqx.nn.MLP
    joint_types: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        joint_types: Sequence[str],
        *,
        key: PRNGKeyArray,
        width: int = 64,
        depth: int = 2,
        activation: str = "softplus",
        init: str = "xavier",
        dtype: str = "float32",
    ):
        self.joint_types = tuple(joint_types)
        self.net = init_in_dtype(mlp(
            feature_size(self.joint_types), "scalar", width, depth, activation,
            key=key, init=init, dtype=jnp.float32,
        ), dtype)

    def __call__(self, q: Float[Array, " n"]) -> Scalar:
        q = q.astype(self.net.layers[0].weight.dtype)
        return self.net(joint_features(q, self.joint_types))


class SharedDeLaNNetwork(eqx.Module):
    """One trunk, two linear heads: ``q -> (L(q), V(q))`` (the reference implementation's layout)."""

    trunk: eqx.nn.MLP  # features -> width (activation on the last layer too)
    cholesky_head: eqx.nn.Linear
    potential_head: eqx.nn.Linear
    joint_types: tuple[str, ...] = eqx.field(static=True)
    shift: float = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)

    def __init__(
        self,
        joint_types: Sequence[str],
        *,
        key: PRNGKeyArray,
        width: int = 64,
        depth: int = 2,
        activation: str = "softplus",
        init: str = "xavier",
        shift: float = 0.0,
        epsilon: float = 1e-2,
        dtype: str = "float32",
    ):
        if epsilon <= 0:
            raise LagraxError(f"epsilon must be > 0 so that M is positive definite, got {epsilon}")
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift, self.epsilon = float(shift), float(epsilon)
        k_trunk, k_l, k_v = jax.random.split(key, 3)
        dt = jnp.float32  # drawn in float32, cast below (see init_in_dtype)
        # depth hidden layers = depth - 1 hidden-to-hidden maps after the input map;
        # the final activation makes the trunk's output the last hidden layer.
        self.trunk = mlp(
            feature_size(self.joint_types), width, width, max(depth - 1, 0), activation,
            key=k_trunk, init=init, dtype=dt,
        )
        self.trunk = eqx.tree_at(lambda m: m.final_activation, self.trunk, _activation(activation))
        head_l = mlp(width, n * (n + 1) // 2, width, 0, activation, key=k_l, init=init, dtype=dt)
        head_v = mlp(width, "scalar", width, 0, activation, key=k_v, init=init, dtype=dt)
        self.cholesky_head, self.potential_head = head_l.layers[0], head_v.layers[0]
        self.trunk = init_in_dtype(self.trunk, dtype)
        self.cholesky_head = init_in_dtype(self.cholesky_head, dtype)
        self.potential_head = init_in_dtype(self.potential_head, dtype)

    @property
    def dtype(self):
        return self.trunk.layers[0].weight.dtype

    def __call__(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))``."""
        q = q.astype(self.dtype)
        h = self.trunk(joint_features(q, self.joint_types))
        L = cholesky_from_raw(self.cholesky_head(h), len(self.joint_types), self.shift, self.epsilon)
        return L, self.potential_head(h)


def _inverse_softplus(y: float) -> float:
    return float(np.log(np.expm1(y)))


class LearnedFriction(eqx.Module):
    """Per-joint friction with positive learned parameters (softplus of raw ones).

    ``kind``: ``"viscous"`` (``d qd``), ``"coulomb"`` (viscous + Coulomb), or
    ``"stribeck"`` (viscous + Coulomb + Stribeck); see :class:`lagrax.friction.JointFriction`.
    """

    raw_viscous: Float[Array, " n"]
    raw_coulomb: Float[Array, " n"]
    raw_stribeck: Float[Array, " n"]
    raw_stribeck_velocity: Float[Array, " n"]
    kind: str = eqx.field(static=True)
    smoothing: float = eqx.field(static=True)

    def __init__(self, dof: int, kind: str, *, dtype: str = "float32", init_value: float = 0.01, smoothing: float = 1e-2):
        if kind not in FRICTIONS[1:]:
            raise UnknownNameError.for_name("friction", str(kind), [f for f in FRICTIONS if f])
        dt = resolve_dtype(dtype)
        self.kind, self.smoothing = kind, float(smoothing)
        self.raw_viscous = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_coulomb = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_stribeck = jnp.full((dof,), _inverse_softplus(init_value), dtype=dt)
        self.raw_stribeck_velocity = jnp.full((dof,), _inverse_softplus(0.1), dtype=dt)

    def joint_friction(self) -> JointFriction:
        """The current parameters as a :class:`JointFriction` (all >= 0)."""
        sp = jax.nn.softplus
        zero = jnp.zeros_like(self.raw_viscous)
        coulomb = sp(self.raw_coulomb) if self.kind in ("coulomb", "stribeck") else zero
        stribeck = sp(self.raw_stribeck) if self.kind == "stribeck" else zero
        # + small floor: the Stribeck velocity divides
        velocity = sp(self.raw_stribeck_velocity) + 1e-3
        return JointFriction(sp(self.raw_viscous), coulomb, stribeck, velocity, self.smoothing)

    def __call__(self, qd: Float[Array, " n"]) -> Float[Array, " n"]:
        return self.joint_friction()(qd.astype(self.raw_viscous.dtype))


class DeLaN(StructuredSystem):
    """A Deep Lagrangian Network; used exactly like a ground-truth :class:`StructuredSystem`.

    Exactly one of ``network`` (shared trunk) or the pair ``mass_net``/``potential_net``
    is set. ``friction_model`` is ``None`` or a :class:`LearnedFriction`.
    """

    network: SharedDeLaNNetwork | None
    mass_net: CholeskyMassNetwork | None
    potential_net: PotentialNetwork | None
    friction_model: LearnedFriction | None
    kind: str = eqx.field(static=True)
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    @property
    def dtype(self):
        net = self.network if self.network is not None else self.mass_net
        return net.trunk.layers[0].weight.dtype if self.network is not None else net.net.layers[0].weight.dtype

    def cholesky_and_potential(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))`` for one configuration, in the parameters' dtype."""
        q = q.astype(self.dtype)
        if self.network is not None:
            return self.network(q)
        return self.mass_net.cholesky(q), self.potential_net(q)

    # ---- per-sample hooks ---------------------------------------------------------------
    def _mass_matrix(self, q):
        L = self.cholesky_and_potential(q)[0] if self.network is not None else self.mass_net.cholesky(q.astype(self.dtype))
        return L @ L.T

    def _potential_energy(self, q):
        return self.cholesky_and_potential(q)[1] if self.network is not None else self.potential_net(q.astype(self.dtype))

    def _friction(self, q, qd):
        if self.friction_model is None:
            return jnp.zeros_like(qd, dtype=self.dtype)
        return self.friction_model(qd)

    def _terms(self, q, qd) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g``, ``V`` from one forward-mode pass through the network(s).

        Same quantities as :func:`lagrax.mechanics.structured_terms`, but the derivative
        is taken of the Cholesky factor (``n^2`` outputs, half of them zero) rather than
        of ``M`` and assembled in closed form:
        ``Mdot qd = Ldot (L^T qd) + L (Ldot^T qd)`` and
        ``1/2 d(qd^T M qd)/dq_k = sum_ij dL_ij/dq_k qd_i (L^T qd)_j``.
        """
        q, qd = q.astype(self.dtype), qd.astype(self.dtype)
        (L, V), (dL, dV) = mechanics.value_and_jacfwd(self.cholesky_and_potential, q)
        Lt_qd = L.T @ qd
        Ldot = dL @ qd  # dL/dt along qd, (n, n)
        Mdot_qd = Ldot @ Lt_qd + L @ (Ldot.T @ qd)
        dT_dq = jnp.einsum("ijk,i,j->k", dL, qd, Lt_qd)
        return mechanics.StructuredTerms(L @ L.T, Mdot_qd - dT_dq, dV, V)

    def _gravity(self, q):
        return mechanics.value_and_jacfwd(self._potential_energy, q.astype(self.dtype))[1]


def make_delan(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "softplus",
    init: str = "xavier",
    shared: bool = False,
    shift: float = 0.0,
    epsilon: float = 1e-2,
    friction: str | None = None,
    dtype: str = "float32",
) -> DeLaN:
    """A DeLaN for the system described by ``info``.

    Args:
        width, depth: hidden units per layer and number of hidden layers.
        activation: a name in :data:`lagrax.models.nets.ACTIVATIONS` (smooth ones:
            the dynamics use the network's derivatives).
        init: ``"xavier"``, ``"orthogonal"`` or ``"default"`` weight initialisation.
        shared: one trunk with a Cholesky head and a potential head, or two networks.
        shift, epsilon: diagonal of ``L`` is ``softplus(raw + shift) + epsilon``.
        friction: ``None``, ``"viscous"``, ``"coulomb"`` or ``"stribeck"`` (learned, >= 0).
        dtype: ``"float32"`` or ``"float64"`` parameters (inputs are cast to it).
    """
    if friction not in FRICTIONS:
        raise UnknownNameError.for_name("friction", str(friction), [str(f) for f in FRICTIONS])
    hyper = dict(
        width=int(width), depth=int(depth), activation=activation, init=init, shared=bool(shared),
        shift=float(shift), epsilon=float(epsilon), friction=friction, dtype=dtype,
    )
    common = dict(width=width, depth=depth, activation=activation, init=init, dtype=dtype)
    k_mass, k_pot = jax.random.split(key)
    if shared:
        network = SharedDeLaNNetwork(info.joint_types, key=key, shift=shift, epsilon=epsilon, **common)
        mass_net = potential_net = None
    else:
        network = None
        mass_net = CholeskyMassNetwork(info.joint_types, key=k_mass, shift=shift, epsilon=epsilon, **common)
        potential_net = PotentialNetwork(info.joint_types, key=k_pot, **common)
    friction_model = None if friction is None else LearnedFriction(info.dof, friction, dtype=dtype)
    return DeLaN(
        info=info, network=network, mass_net=mass_net, potential_net=potential_net,
        friction_model=friction_model, kind="delan", hyperparameters=tuple(hyper.items()),
    )
