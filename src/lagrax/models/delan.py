"""Deep Lagrangian Networks (Lutter, Ritter & Peters, ICLR 2019; Lutter & Peters, IJRR 2023).

DeLaN learns the two functions of a structured Lagrangian
``L = 1/2 qd^T M(q) qd - V(q)``:

* :class:`CholeskyMassNetwork` maps ``q`` to a lower-triangular Cholesky factor
  ``L(q)`` with a strictly positive diagonal, so ``M = L L^T`` is symmetric positive
  definite by construction (ICLR 2019, eq. 8);
* :class:`PotentialNetwork` maps ``q`` to the scalar ``V(q)``.

Both may share one trunk (:class:`SharedDeLaNNetwork`, the reference implementation's
layout) or be separate networks (:class:`SeparateDeLaNNetwork`); the model calls either
through the same methods. Optional learned per-joint friction (viscous, Coulomb,
Stribeck; :mod:`lagrax.models.friction`) has positive parameters.

**The spec.** :class:`DeLaNSpec` holds every hyper-parameter (width, depth, activation,
initialisation, shared trunk, the Cholesky diagonal's shift and epsilon, friction,
precision); ``DeLaNSpec(...).build(info, key=key)`` draws the weights and the model keeps
the spec as ``model.spec``. Its defaults (tanh, shared trunk, Xavier) measured best on the
DeLaN character data: tanh reached 3x lower torque error than softplus for the same
steps, and the shared trunk is ~30% cheaper per step at the same accuracy.

The model is a :class:`~lagrax.systems.StructuredSystem`, so the equation of motion,
``c``, ``g``, energies and power all come from :mod:`lagrax.core.mechanics`. The only
thing done here for speed is :meth:`DeLaN.terms`: one forward-mode pass through the
network gives ``L``, ``dL/dq``, ``V`` and ``dV/dq`` together, and ``M``, ``Mdot qd``
and ``d(qd^T M qd)/dq`` are assembled from the Cholesky factor (the tests check it
against the generic core path). Training is not done here (see ``lagrax.training``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from lagrax.core import mechanics
from lagrax.core.options import Activation, FrictionKind, Init, Precision
from lagrax.systems.base import StructuredSystem, SystemInfo
from lagrax.models.friction import LearnedFriction, NoFriction, learned_friction
from lagrax.models.nets import feature_size, joint_features, network
from lagrax.models.spec import (
    ARM_OPTIMISER,
    CHARACTER_OPTIMISER,
    ModelSpec,
    Recipe,
    Specified,
    check_at_least,
    check_positive,
)


@dataclasses.dataclass(frozen=True)
class DeLaNSpec(ModelSpec):
    """The hyper-parameters of a :class:`DeLaN`.

    Attributes:
        width, depth: hidden units per layer and number of hidden layers.
        activation: a smooth activation (the dynamics use the network's derivatives).
        init: weight initialisation (``XAVIER``, ``ORTHOGONAL`` or ``DEFAULT``).
        shared: one trunk with a Cholesky head and a potential head, or two networks.
        shift, epsilon: the diagonal of ``L`` is ``softplus(raw + shift) + epsilon``;
            ``epsilon > 0`` keeps ``M`` positive definite.
        friction: learned joint friction (``NONE``, ``VISCOUS``, ``COULOMB``, ``STRIBECK``).
        armature: add a learned constant positive diagonal to the mass matrix,
            ``M(q) = L(q) L(q)^T + diag(softplus(a))``: the rotor inertia that every geared
            arm has (Pinocchio's and MuJoCo's ``armature``). It bounds the smallest
            eigenvalue of ``M`` away from zero where the data excite ``M`` little, so
            forward dynamics stays well conditioned.
        precision: parameter dtype; inputs are cast to it.
        scale: the model's inertia unit: ``M``, ``V``, the armature and the friction are
            the networks' outputs times ``scale`` (``L`` times its square root). ``1`` except
            on data whose inertia is far below unit scale (:func:`inertia_scale`), which
            :meth:`DeLaN.with_data_statistics` sets it from.
    """

    kind: ClassVar[str] = "delan"
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("scale",)
    # The character recipe with the inverse loss. On arms (benchmarks/robot_models.py) the
    # inverse-only loss leaves the directions of M that the data excite little
    # unconstrained, and forward dynamics divides by them: training both directions fixes
    # that (smallest eigenvalue of M within ~1 % of the truth). Learned viscous + Coulomb
    # friction: every geared arm has it, and the coefficients go to ~0 where there is none.
    # Softplus, not tanh, on arms: with tanh the training nMSE on the UR5 stalled at 2-4e-3
    # whatever the steps (7k-75k) or width (128, 256); softplus reached 1e-4 in 28k steps
    # and the held-out nMSE fell from 8e-3 to 6e-4 (Panda: 1.9e-2 to 1e-3); see
    # docs/results/robot_zoo.md.
    RECIPE = Recipe(
        {**CHARACTER_OPTIMISER, "inverse": 1.0},
        arm=Recipe(
            {**ARM_OPTIMISER, "inverse": 1.0, "forward": 1.0},
            dict(width=128, activation="softplus", friction="coulomb"),
        ),
    )

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.TANH
    init: Init = Init.XAVIER
    shared: bool = True
    shift: float = 0.0
    epsilon: float = 1e-2
    friction: FrictionKind = FrictionKind.NONE
    armature: bool = False
    precision: Precision = Precision.FLOAT32
    scale: float = 1.0

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)
        check_positive(self, "epsilon")
        check_positive(self, "scale")

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "DeLaN":
        """A DeLaN for the system described by ``info``, weights drawn from ``key``."""
        layout = SharedDeLaNNetwork if self.shared else SeparateDeLaNNetwork
        return DeLaN(
            info=info,
            network=layout(info.joint_types, key=key, **_network_options(self)),
            friction_model=learned_friction(self.friction, info.dof, self.precision),
            raw_armature=initial_armature(info.dof, self.precision) if self.armature else None,
            spec=self,
        )


ARMATURE_INIT = 1e-2
# Below this inertia estimate (kg m^2 or kg, from the data) DeLaN works in the data's units:
# its unit scale (weights drawn for O(1) outputs, the floor epsilon^2 = 1e-4 of M's
# eigenvalues) suits arms and the classic systems (estimates 0.4 to 0.8 on the DeLaN
# character data and the cart-pole), not the Furuta pendulum (3.5e-5, M_22 = 1.3e-4): there
# a forward-loss fit came out with M 1e4 times too large (its torque pins the scale weakly).
SMALL_INERTIA = 0.1


def inertia_scale(qdd, tau) -> float:
    """A rough inertia of driven data: the smallest ``std(tau_j) / rms(qdd_j)`` over the joints
    whose torque is not zero throughout; 1 where no joint has one (passive data)."""
    if tau is None:
        return 1.0
    tau, qdd = np.asarray(tau, np.float64), np.asarray(qdd, np.float64)
    rms = np.sqrt(np.nanmean(qdd**2, axis=0))
    driven = np.any(tau != 0, axis=0) & np.isfinite(rms) & (rms > 0)
    if not np.any(driven):
        return 1.0
    ratios = np.nanstd(tau[:, driven], axis=0) / rms[driven]
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    return float(np.min(ratios)) if ratios.size else 1.0


def initial_armature(dof: int, precision: Precision) -> Float[Array, " n"]:
    """The raw armature parameters at initialisation: ``softplus(raw) = ARMATURE_INIT``."""
    return jnp.full((dof,), float(np.log(np.expm1(ARMATURE_INIT))), dtype=precision.dtype)


def _network_options(spec) -> dict:
    """The keyword arguments of the mass/potential networks from a DeLaN-like spec."""
    return dict(
        width=spec.width,
        depth=spec.depth,
        activation=spec.activation,
        init=spec.init,
        shift=spec.shift,
        epsilon=spec.epsilon,
        precision=spec.precision,
    )


def _tril_indices(n: int):
    """Where the ``n(n+1)/2`` network outputs go: first the diagonal, then the strict lower part."""
    rows, cols = np.tril_indices(n, k=-1)
    diag = np.arange(n)
    return np.concatenate([diag, rows]), np.concatenate([diag, cols])


def lower_triangular(raw: Float[Array, " m"], n: int) -> Float[Array, "n n"]:
    """Lower-triangular ``n x n`` from ``n(n+1)/2`` entries placed as the Cholesky head's
    outputs are (the diagonal first, then the strict lower part), with no map on the
    diagonal: ``L L^T`` is positive semi-definite for any entries, and zero at zero."""
    rows, cols = _tril_indices(n)
    return jnp.zeros((n, n), dtype=raw.dtype).at[rows, cols].set(raw)


def cholesky_from_raw(raw: Float[Array, " m"], n: int, shift: float, epsilon: float) -> Float[Array, "n n"]:
    """Lower-triangular ``L`` from ``n(n+1)/2`` raw outputs; diagonal ``softplus(raw + shift) + epsilon``."""
    rows, cols = _tril_indices(n)
    diag = jax.nn.softplus(raw[:n] + shift) + epsilon
    entries = jnp.concatenate([diag, raw[n:]])
    return jnp.zeros((n, n), dtype=raw.dtype).at[rows, cols].set(entries)


class CholeskyMassNetwork(eqx.Module):
    """``q -> M(q) = L(q) L(q)^T``, SPD by construction (``L``'s diagonal is at least ``epsilon``).

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
        width: int,
        depth: int,
        activation: Activation,
        init: Init,
        shift: float,
        epsilon: float,
        precision: Precision,
    ):
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift, self.epsilon = float(shift), float(epsilon)
        self.net = network(
            feature_size(self.joint_types),
            n * (n + 1) // 2,
            width,
            depth,
            activation,
            key=key,
            init=init,
            precision=precision,
        )

    def cholesky(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``L(q)``, lower triangular with a positive diagonal."""
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
        width: int,
        depth: int,
        activation: Activation,
        init: Init,
        precision: Precision,
    ):
        self.joint_types = tuple(joint_types)
        self.net = network(
            feature_size(self.joint_types),
            "scalar",
            width,
            depth,
            activation,
            key=key,
            init=init,
            precision=precision,
        )

    def __call__(self, q: Float[Array, " n"]) -> Scalar:
        q = q.astype(self.net.layers[0].weight.dtype)
        return self.net(joint_features(q, self.joint_types))


class SeparateDeLaNNetwork(eqx.Module):
    """Two networks, ``q -> L(q)`` and ``q -> V(q)`` (keys split in two: mass, potential)."""

    mass_net: CholeskyMassNetwork
    potential_net: PotentialNetwork

    def __init__(self, joint_types: Sequence[str], *, key: PRNGKeyArray, shift, epsilon, **options):
        k_mass, k_pot = jax.random.split(key)
        self.mass_net = CholeskyMassNetwork(joint_types, key=k_mass, shift=shift, epsilon=epsilon, **options)
        self.potential_net = PotentialNetwork(joint_types, key=k_pot, **options)

    @property
    def shift(self) -> float:
        return self.mass_net.shift

    @property
    def epsilon(self) -> float:
        return self.mass_net.epsilon

    def cholesky(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``L(q)``."""
        return self.mass_net.cholesky(q)

    def potential(self, q: Float[Array, " n"]) -> Scalar:
        """``V(q)``."""
        return self.potential_net(q)

    def __call__(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))``."""
        return self.cholesky(q), self.potential(q)

    def value_and_jac(self, x_dx: Float[Array, "1+n f"]) -> tuple[Array, Array]:
        """Raw Cholesky outputs and ``V``, each with its Jacobian rows (see :func:`_mlp_value_and_jac`)."""
        return _mlp_value_and_jac(self.mass_net.net, x_dx), _mlp_value_and_jac(self.potential_net.net, x_dx)


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
        width: int,
        depth: int,
        activation: Activation,
        init: Init,
        shift: float,
        epsilon: float,
        precision: Precision,
    ):
        self.joint_types = tuple(joint_types)
        n = len(self.joint_types)
        self.shift, self.epsilon = float(shift), float(epsilon)
        k_trunk, k_l, k_v = jax.random.split(key, 3)
        common = dict(key=k_trunk, init=init, precision=precision)
        # depth hidden layers = depth - 1 hidden-to-hidden maps after the input map;
        # the final activation makes the trunk's output the last hidden layer.
        features = feature_size(self.joint_types)
        self.trunk = network(
            features, width, width, max(depth - 1, 0), activation, final_activation=activation, **common
        )
        common.update(key=k_l)
        self.cholesky_head = network(width, n * (n + 1) // 2, width, 0, activation, **common).layers[0]
        common.update(key=k_v)
        self.potential_head = network(width, "scalar", width, 0, activation, **common).layers[0]

    @property
    def dtype(self):
        return self.trunk.layers[0].weight.dtype

    def cholesky(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``L(q)``."""
        return self(q)[0]

    def potential(self, q: Float[Array, " n"]) -> Scalar:
        """``V(q)``."""
        return self(q)[1]

    def __call__(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))``."""
        q = q.astype(self.dtype)
        h = self.trunk(joint_features(q, self.joint_types))
        L = cholesky_from_raw(self.cholesky_head(h), len(self.joint_types), self.shift, self.epsilon)
        return L, self.potential_head(h)

    def value_and_jac(self, x_dx: Float[Array, "1+n f"]) -> tuple[Array, Array]:
        """Raw Cholesky outputs and ``V``, each with its Jacobian rows (see :func:`_mlp_value_and_jac`)."""
        h = _mlp_value_and_jac(self.trunk, x_dx)
        return _linear_value_and_jac(self.cholesky_head, h), _linear_value_and_jac(self.potential_head, h)


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


class DeLaN(Specified, StructuredSystem):
    """A Deep Lagrangian Network; used exactly like a ground-truth :class:`StructuredSystem`.

    Attributes:
        network: a :class:`SharedDeLaNNetwork` or a :class:`SeparateDeLaNNetwork`
            (``spec.shared``); both give ``(L(q), V(q))``.
        friction_model: :class:`~lagrax.models.friction.NoFriction` or
            :class:`~lagrax.models.friction.LearnedFriction` (``spec.friction``).
        raw_armature: the learned rotor inertia before its softplus (``spec.armature``),
            or ``None``.
        spec: the :class:`DeLaNSpec` it was built from (static).
    """

    network: SharedDeLaNNetwork | SeparateDeLaNNetwork
    friction_model: NoFriction | LearnedFriction
    raw_armature: Float[Array, " n"] | None = None
    spec: DeLaNSpec = eqx.field(static=True, kw_only=True)

    @property
    def dtype(self):
        """The parameters' dtype (``spec.precision``)."""
        return self.spec.precision.dtype

    def cholesky_and_potential(self, q: Float[Array, " n"]) -> tuple[Float[Array, "n n"], Scalar]:
        """``(L(q), V(q))`` for one configuration, in the parameters' dtype."""
        L, V = self.network(q.astype(self.dtype))
        return self._scaled(L, 0.5), self._scaled(V)

    def _scaled(self, x, power: float = 1.0):
        """``x * spec.scale ** power`` (``x`` itself at scale 1: the same program as before)."""
        return x if self.spec.scale == 1.0 else x * self.spec.scale**power

    def with_data_statistics(self, q, qd, qdd=None, tau=None) -> "DeLaN":
        """A copy in the data's inertia unit (``spec.scale``) where that is far below unit
        scale (:data:`SMALL_INERTIA`), the same weights otherwise; ``self`` elsewhere."""
        estimate = 1.0 if qdd is None else inertia_scale(qdd, tau)
        if estimate >= SMALL_INERTIA:
            return self
        return dataclasses.replace(self, spec=self.spec.replace(scale=estimate))

    # ---- per-sample protocol ------------------------------------------------------------
    def armature(self) -> Float[Array, " n"]:
        """The learned rotor inertia added to ``M``'s diagonal (zeros without ``spec.armature``)."""
        if self.raw_armature is None:
            return jnp.zeros(self.dof, self.dtype)
        return self._scaled(jax.nn.softplus(self.raw_armature))

    def mass_matrix(self, q: Float[Array, " n"]) -> Float[Array, "n n"]:
        """``M(q) = L(q) L(q)^T`` (``+ diag(armature)`` with ``spec.armature``)."""
        L = self._scaled(self.network.cholesky(q.astype(self.dtype)), 0.5)
        return self._with_armature(L @ L.T)

    def _with_armature(self, M: Float[Array, "n n"]) -> Float[Array, "n n"]:
        if self.raw_armature is None:
            return M
        return M + jnp.diag(self.armature())

    def potential_energy(self, q: Float[Array, " n"]) -> Scalar:
        """``V(q)``."""
        return self._scaled(self.network.potential(q.astype(self.dtype)))

    def friction(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> Float[Array, " n"]:
        """The learned friction force (zero without friction)."""
        return self._scaled(self.friction_model(qd))

    def terms(self, q: Float[Array, " n"], qd: Float[Array, " n"]) -> mechanics.StructuredTerms:
        """``M``, ``c``, ``g``, ``V`` from one forward-mode pass through the network(s).

        Same quantities as :func:`lagrax.core.mechanics.structured_terms`, but the derivative
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
        raw, v = self.network.value_and_jac(_features_value_and_jac(q, self.info.joint_types))
        L, dL = _cholesky_value_and_jac(raw, n, self.network.shift, self.network.epsilon)
        v = self._scaled(v.reshape(-1))  # scalar head: (1 + n, 1) or (1 + n,)
        return self._scaled(L, 0.5), self._scaled(dL, 0.5), v[0], v[1:]

    def _cholesky_terms(self, q, qd) -> tuple[Float[Array, "n n"], mechanics.StructuredTerms]:
        """``L`` and the :class:`~lagrax.core.mechanics.StructuredTerms`.

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
        M = self._with_armature(jnp.sum(L[:, None, :] * L[None, :, :], axis=-1))
        return L, mechanics.StructuredTerms(M, Mdot_qd - dT_dq, dV, V)

    def forward_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """As :meth:`StructuredSystem.forward_dynamics`, solving with the network's own
        Cholesky factor ``L`` instead of factorising ``M = L L^T`` again (with an armature,
        ``M`` is factorised: ``L L^T + D`` has no factor in closed form)."""
        L, terms = self._cholesky_terms(q, qd)
        return self._solve(L, terms, tau.astype(self.dtype) - self.friction(q, qd))

    def _solve(self, L, terms: mechanics.StructuredTerms, force) -> Float[Array, " n"]:
        """``M^-1 (force - c - g)`` with ``M``'s Cholesky factor (the network's, without armature)."""
        if self.raw_armature is not None:
            L = jnp.linalg.cholesky(terms.mass_matrix)
        return cho_solve((L, True), force - terms.coriolis - terms.gravity)

    def inverse_and_forward_dynamics(
        self,
        q: Float[Array, " n"],
        qd: Float[Array, " n"],
        qdd: Float[Array, " n"],
        tau: Float[Array, " n"],
        regularization: float = 0.0,
    ) -> tuple[Float[Array, " n"], mechanics.SolveResult]:
        """Both directions from one pass through the network (see :meth:`terms`)."""
        L, terms = self._cholesky_terms(q, qd)
        friction = self.friction(q, qd)
        forward = self._solve(L, terms, tau.astype(self.dtype) - friction)
        inverse = mechanics.structured_inverse_dynamics(terms, qdd.astype(self.dtype), friction)
        return inverse, mechanics.SolveResult(forward, ~jnp.all(jnp.isfinite(forward)))

    def gravity(self, q: Float[Array, " n"]) -> Float[Array, " n"]:
        """``g(q) = dV/dq``."""
        return mechanics.value_and_jacfwd(self.potential_energy, q.astype(self.dtype))[1]
