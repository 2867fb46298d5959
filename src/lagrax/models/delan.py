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
thing done here for speed is :meth:`DeLaN.terms`: one forward-mode pass through the
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
from jax.scipy.linalg import cho_solve
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


def cholesky_from_raw(raw: Float[Array, " m"], n: int, shift: float, epsilon: float) -> Float[Array, "n n"]:
    """Lower-triangular ``L`` from ``n(n+1)/2`` raw outputs; diagonal ``softplus(raw + shift) + epsilon``."""
    rows, cols = _tril_indices(n)
    diag = jax.nn.softplus(raw[:n] + shift) + epsilon
    entries = jnp.concatenate([diag, raw[n:]])
    return jnp.zeros((n, n), dtype=raw.dtype).at[rows, cols].set(entries)


def _check_epsilon(epsilon: float) -> None:
    if not epsilon > 0:
        raise LagraxError(f"epsilon must be > 0 so that M is positive definite, got {epsilon}")


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
        _check_epsilon(epsilon)
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift = float(shift)
        self.epsilon = float(epsilon)
        self.net = init_in_dtype(
            mlp(
                feature_size(self.joint_types),
                n * (n + 1) // 2,
                width,
                depth,
                activation,
                key=key,
                init=init,
                dtype=jnp.float32,
            ),
            dtype,
        )

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
        self.net = init_in_dtype(
            mlp(
                feature_size(self.joint_types),
                "scalar",
                width,
                depth,
                activation,
                key=key,
                init=init,
                dtype=jnp.float32,
            ),
            dtype,
        )

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
        _check_epsilon(epsilon)
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift, self.epsilon = float(shift), float(epsilon)
        k_trunk, k_l, k_v = jax.random.split(key, 3)
        dt = jnp.float32  # drawn in float32, cast below (see init_in_dtype)
        # depth hidden layers = depth - 1 hidden-to-hidden maps after the input map;
        # the final activation makes the trunk's output the last hidden layer.
        self.trunk = mlp(
            feature_size(self.joint_types),
            width,
            width,
            max(depth - 1, 0),
            activation,
            key=k_trunk,
            init=init,
            dtype=dt,
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

    def __init__(
        self,
        dof: int,
        kind: str,
        *,
        dtype: str = "float32",
        init_value: float = 0.01,
        smoothing: float = 1e-2,
    ):
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


# ---- the fast path: value and Jacobian through the networks in one pass ---------------------
# A jvp with n tangents (vmapped over a basis) runs every layer twice (one matmul for the
# value, one for the tangents) and splits each activation into several small kernels; for
# single samples on a CPU the per-kernel cost dominates. Here the value and its n tangents
# travel as the rows of one (1 + n, width) matrix, so each layer is one matmul (and, under
# vmap, one (batch (1 + n), width) GEMM).


def _features_value_and_jac(q: Float[Array, " n"], joint_types: tuple[str, ...]) -> Float[Array, "1+n f"]:
    """``[joint_features(q); d joint_features / dq^T]`` in closed form, all joints at once
    (a jvp through :func:`joint_features`'s per-joint slices costs kernels per joint)."""
    n = len(joint_types)
    source, joint = [], []  # per feature: index into [cos q, sin q, q], and its joint
    for i, t in enumerate(joint_types):
        source += [i, n + i] if t == "revolute" else [2 * n + i]
        joint += [i, i] if t == "revolute" else [i]
    source = np.asarray(source)
    values = jnp.concatenate([jnp.cos(q), jnp.sin(q), q])[source]
    slopes = jnp.concatenate([-jnp.sin(q), jnp.cos(q), jnp.ones_like(q)])[source]
    own_joint = np.arange(n)[:, None] == np.asarray(joint)[None, :]  # (n, f)
    return jnp.concatenate([values[None, :], jnp.where(own_joint, slopes[None, :], 0.0)], axis=0)


def _activation_value_and_jac(act, z, dz):
    """``[act(z); act'(z) dz]`` for an elementwise activation (``dz``: ``(n, k)``)."""
    a, slope = jax.jvp(act, (z,), (jnp.ones_like(z),))
    return jnp.concatenate([a[None, :], slope * dz], axis=0)


def _mlp_value_and_jac(net: eqx.nn.MLP, x_dx: Float[Array, "1+n f"]) -> Float[Array, "1+n k"]:
    """``[net(x); d net / dq^T]`` from ``[x; dx/dq^T]``, layer by layer as ``eqx.nn.MLP.__call__``."""
    h = x_dx
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        y = h @ layer.weight.T
        z, dz = y[0], y[1:]
        if layer.bias is not None:
            z = z + layer.bias
        if i < last:
            h = _activation_value_and_jac(net.activation, z, dz)
        elif last == 0:  # eqx.nn.MLP skips final_activation when depth == 0
            h = jnp.concatenate([z[None, :], dz], axis=0)
        else:
            h = _activation_value_and_jac(net.final_activation, z, dz)
    return h


def _linear_value_and_jac(layer: eqx.nn.Linear, h: Float[Array, "1+n k"]) -> Float[Array, "1+n m"]:
    y = h @ layer.weight.T
    if layer.bias is None:
        return y
    return jnp.concatenate([(y[0] + layer.bias)[None, :], y[1:]], axis=0)


def _cholesky_value_and_jac(raw_draw, n: int, shift: float, epsilon: float):
    """``L`` and ``dL[k, i, j] = dL_ij / dq_k`` from the raw outputs and their Jacobian
    (``(1 + n, n(n+1)/2)``), as :func:`cholesky_from_raw`; placed by a gather with constant
    indices (a scatter's jvp costs extra kernels)."""
    raw, draw = raw_draw[0], raw_draw[1:]
    diag = _activation_value_and_jac(jax.nn.softplus, raw[:n] + shift, draw[:, :n])
    diag = diag + epsilon * (jnp.arange(n + 1) == 0)[:, None].astype(diag.dtype)
    entries = jnp.concatenate([diag, raw_draw[:, n:], jnp.zeros((n + 1, 1), raw_draw.dtype)], axis=1)
    rows, cols = _tril_indices(n)
    index = np.full((n, n), len(rows))  # -> the zero column
    index[rows, cols] = np.arange(len(rows))
    L_dL = entries[:, index]  # (1 + n, n, n)
    return L_dL[0], L_dL[1:]


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
        return (
            net.trunk.layers[0].weight.dtype if self.network is not None else net.net.layers[0].weight.dtype
        )

    def cholesky_and_potential(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))`` for one configuration, in the parameters' dtype."""
        q = q.astype(self.dtype)
        if self.network is not None:
            return self.network(q)
        return self.mass_net.cholesky(q), self.potential_net(q)

    # ---- per-sample hooks ---------------------------------------------------------------
    def mass_matrix(self, q):
        L = (
            self.cholesky_and_potential(q)[0]
            if self.network is not None
            else self.mass_net.cholesky(q.astype(self.dtype))
        )
        return L @ L.T

    def potential_energy(self, q):
        return (
            self.cholesky_and_potential(q)[1]
            if self.network is not None
            else self.potential_net(q.astype(self.dtype))
        )

    def friction(self, q, qd):
        if self.friction_model is None:
            return jnp.zeros_like(qd, dtype=self.dtype)
        return self.friction_model(qd)

    def terms(self, q, qd) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g``, ``V`` from one forward-mode pass through the network(s).

        Same quantities as :func:`lagrax.mechanics.structured_terms`, but the derivative
        is taken of the Cholesky factor (``n^2`` outputs, half of them zero) rather than
        of ``M`` and assembled in closed form:
        ``Mdot qd = Ldot (L^T qd) + L (Ldot^T qd)`` and
        ``1/2 d(qd^T M qd)/dq_k = sum_ij dL_ij/dq_k qd_i (L^T qd)_j``.
        """
        return self._cholesky_terms(q, qd)[1]

    def _cholesky_and_potential_jac(self, q):
        """``(L, dL, V, dV)`` with ``dL[k, i, j] = dL_ij / dq_k``: one pass, value and tangents
        together (see :func:`_mlp_value_and_jac`)."""
        n = len(self.info.joint_types)
        x_dx = _features_value_and_jac(q, self.info.joint_types)
        if self.network is not None:
            net = self.network
            h = _mlp_value_and_jac(net.trunk, x_dx)
            raw = _linear_value_and_jac(net.cholesky_head, h)
            v = _linear_value_and_jac(net.potential_head, h)
            shift, epsilon = net.shift, net.epsilon
        else:
            raw = _mlp_value_and_jac(self.mass_net.net, x_dx)
            v = _mlp_value_and_jac(self.potential_net.net, x_dx)
            shift, epsilon = self.mass_net.shift, self.mass_net.epsilon
        L, dL = _cholesky_value_and_jac(raw, n, shift, epsilon)
        v = v.reshape(-1)  # scalar head: (1 + n, 1) or (1 + n,)
        return L, dL, v[0], v[1:]

    def _cholesky_terms(self, q, qd) -> tuple[Float[Array, "n n"], mechanics.StructuredTerms]:
        """``L`` and the :class:`~lagrax.mechanics.StructuredTerms`.

        The small contractions are written as broadcast products and sums rather than
        matmuls: XLA fuses those into a few kernels, where each matmul of a 2-vector would
        be a call of its own.
        """
        q, qd = q.astype(self.dtype), qd.astype(self.dtype)
        L, dL, V, dV = self._cholesky_and_potential_jac(q)
        Lt_qd = jnp.sum(L * qd[:, None], axis=0)  # L^T qd
        Ldot = jnp.sum(dL * qd[:, None, None], axis=0)  # dL/dt along qd, (n, n)
        Mdot_qd = jnp.sum(Ldot * Lt_qd, axis=1) + jnp.sum(L * jnp.sum(Ldot * qd[:, None], axis=0), axis=1)
        dT_dq = jnp.sum(dL * (qd[:, None] * Lt_qd[None, :]), axis=(1, 2))
        M = jnp.sum(L[:, None, :] * L[None, :, :], axis=-1)
        return L, mechanics.StructuredTerms(M, Mdot_qd - dT_dq, dV, V)

    def forward_dynamics(self, q, qd, tau):
        """As :meth:`StructuredSystem.forward_dynamics`, solving with the network's own
        Cholesky factor ``L`` instead of factorising ``M = L L^T`` again."""
        L, terms = self._cholesky_terms(q, qd)
        rhs = tau.astype(self.dtype) - terms.coriolis - terms.gravity - self.friction(q, qd)
        return cho_solve((L, True), rhs)

    def gravity(self, q):
        return mechanics.value_and_jacfwd(self.potential_energy, q.astype(self.dtype))[1]


def make_delan(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "tanh",
    init: str = "xavier",
    shared: bool = True,
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
        shared: one trunk with a Cholesky head and a potential head (default), or two
            networks. The defaults (tanh, shared) measured best on the DeLaN character
            data: tanh reached 3x lower torque error than softplus for the same steps,
            and the shared trunk is ~30% cheaper per step at the same accuracy.
        shift, epsilon: diagonal of ``L`` is ``softplus(raw + shift) + epsilon``.
        friction: ``None``, ``"viscous"``, ``"coulomb"`` or ``"stribeck"`` (learned, >= 0).
        dtype: ``"float32"`` or ``"float64"`` parameters (inputs are cast to it).
    """
    if friction not in FRICTIONS:
        raise UnknownNameError.for_name("friction", str(friction), [str(f) for f in FRICTIONS])
    hyper = dict(
        width=int(width),
        depth=int(depth),
        activation=activation,
        init=init,
        shared=bool(shared),
        shift=float(shift),
        epsilon=float(epsilon),
        friction=friction,
        dtype=dtype,
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
        info=info,
        network=network,
        mass_net=mass_net,
        potential_net=potential_net,
        friction_model=friction_model,
        kind="delan",
        hyperparameters=tuple(hyper.items()),
    )
