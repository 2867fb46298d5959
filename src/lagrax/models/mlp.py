"""The black-box feed-forward baseline of the DeLaN papers (Lutter et al. 2019, sec. 5).

:class:`MLPModel` maps ``(features(q), qd, tau) -> qdd`` with a forward head and
``(features(q), qd, qdd) -> tau`` with an inverse head, each a plain MLP. It is a
:class:`~lagrax.systems.System`, so rollouts and evaluation use it like any other
model, but it is *not* Lagrangian: it has no mass matrix, energies, momentum,
Coriolis, gravity or friction terms, and asking for them raises
:class:`~lagrax.errors.NotProvidedError`. Nothing in it conserves energy.

Raw accelerations and torques differ in scale by orders of magnitude between joints,
so a fair baseline standardises its inputs and outputs: :meth:`MLPModel.with_data_statistics`
fixes per-channel mean/std from training data. The scales are static metadata (part
of ``hyperparameters``), not array leaves, so an optimiser can never move them and
``lagrax.models.io`` rebuilds them with the skeleton.

This module does not train anything (see the training module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..errors import NotProvidedError, ShapeError, UnknownNameError
from ..systems.base import System, SystemInfo
from .nets import feature_size, joint_features, mlp

HEADS = ("both", "forward", "inverse")
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
# name -> what it standardises; each entry is a (mean, std) pair of per-channel tuples.
NORMALIZED = ("features", "qd", "qdd", "tau")


def _param_dtype(dtype: str):
    if dtype not in DTYPES:
        raise UnknownNameError.for_name("dtype", dtype, DTYPES)
    return DTYPES[dtype]


def _freeze_normalization(normalization, info: SystemInfo) -> tuple | None:
    """A hashable, JSON-friendly ``((name, (mean...), (std...)), ...)`` from a mapping,
    a list of triples (as read back from JSON) or ``None``."""
    if normalization is None:
        return None
    items = normalization.items() if isinstance(normalization, Mapping) else normalization
    frozen = {}
    for entry in items:
        name, *stats = entry
        if len(stats) == 1:  # mapping form: name -> (mean, std)
            stats = stats[0]
        mean, std = stats
        frozen[name] = (tuple(float(x) for x in mean), tuple(float(x) for x in std))
    sizes = {"features": feature_size(info.joint_types), "qd": info.dof, "qdd": info.dof, "tau": info.dof}
    for name in NORMALIZED:
        if name not in frozen:
            raise ShapeError(f"normalization is missing {name!r}; give mean and std for each of {NORMALIZED}")
        mean, std = frozen[name]
        if len(mean) != sizes[name] or len(std) != sizes[name]:
            raise ShapeError(
                f"normalization[{name!r}] has {len(mean)} means and {len(std)} stds, expected {sizes[name]}"
            )
        if min(std) <= 0.0:
            raise ShapeError(f"normalization[{name!r}] has a non-positive std: {std}")
    unknown = set(frozen) - set(NORMALIZED)
    if unknown:
        raise UnknownNameError.for_name("normalization entry", sorted(unknown)[0], NORMALIZED)
    return tuple((name, *frozen[name]) for name in NORMALIZED)


class MLPModel(System):
    """Feed-forward forward/inverse dynamics model (a black box).

    Attributes:
        forward_net: ``[features(q), qd, tau] -> qdd`` (standardised), or ``None``.
        inverse_net: ``[features(q), qd, qdd] -> tau`` (standardised), or ``None``.
        heads: ``"both"``, ``"forward"`` or ``"inverse"``.
        normalization: ``((name, mean, std), ...)`` for ``features, qd, qdd, tau``,
            or ``None`` (identity).
    """

    forward_net: eqx.nn.MLP | None
    inverse_net: eqx.nn.MLP | None
    kind: str = eqx.field(static=True, default="mlp")
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())
    heads: str = eqx.field(static=True, default="both")
    normalization: tuple | None = eqx.field(static=True, default=None)

    # ---- what a black box cannot give ------------------------------------------------
    def provides(self, quantity: str) -> bool:
        """Forward and inverse dynamics, as far as the heads it was built with go; nothing else."""
        super().provides(quantity)  # an unknown name is an error
        heads = {
            "both": ("forward_dynamics", "inverse_dynamics"),
            "forward": ("forward_dynamics",),
            "inverse": ("inverse_dynamics",),
        }[self.heads]
        return quantity in heads

    def not_provided(self, what: str) -> NotProvidedError:
        return NotProvidedError(
            f"{type(self).__name__} ({self.info.name}): the MLP baseline is a black box: "
            f"it has no Lagrangian, so it cannot provide {what}"
        )

    def friction(self, q, qd):
        raise self.not_provided("a friction force")

    def _missing_head(self, which: str):
        return NotProvidedError(
            f"{type(self).__name__} ({self.info.name}) was built with heads={self.heads!r}, so it has no "
            f"{which} head; build it with heads='both' or heads={which!r} to get "
            f"{'forward' if which == 'forward' else 'inverse'} dynamics"
        )

    # ---- standardisation -------------------------------------------------------------
    def _dtype(self):
        net = self.forward_net if self.forward_net is not None else self.inverse_net
        return net.layers[0].weight.dtype

    def _stats(self, name: str):
        if self.normalization is None:
            return None
        for entry_name, mean, std in self.normalization:
            if entry_name == name:
                dtype = self._dtype()
                return jnp.asarray(mean, dtype), jnp.asarray(std, dtype)
        raise KeyError(name)  # unreachable: _freeze_normalization checked the names

    def _standardize(self, name: str, x):
        stats = self._stats(name)
        return x if stats is None else (x - stats[0]) / stats[1]

    def _unstandardize(self, name: str, y):
        stats = self._stats(name)
        return y if stats is None else y * stats[1] + stats[0]

    def _inputs(self, q, qd, x, x_name: str):
        dtype = self._dtype()
        q, qd, x = (a.astype(dtype) for a in (q, qd, x))
        return jnp.concatenate(
            [
                self._standardize("features", joint_features(q, self.info.joint_types)),
                self._standardize("qd", qd),
                self._standardize(x_name, x),
            ]
        )

    # ---- per-sample dynamics -----------------------------------------------------------
    def forward_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        if self.forward_net is None:
            raise self._missing_head("forward")
        out = self.forward_net(self._inputs(q, qd, tau, "tau"))
        return self._unstandardize("qdd", out).astype(jnp.result_type(q, qd, tau))

    def inverse_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], qdd: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        if self.inverse_net is None:
            raise self._missing_head("inverse")
        out = self.inverse_net(self._inputs(q, qd, qdd, "qdd"))
        return self._unstandardize("tau", out).astype(jnp.result_type(q, qd, qdd))

    # ---- normalisation from data --------------------------------------------------------
    def with_data_statistics(
        self,
        q: Float[Array, "N n"],
        qd: Float[Array, "N n"],
        qdd: Float[Array, "N n"] | None = None,
        tau: Float[Array, "N n"] | None = None,
        *,
        min_std: float = 1e-6,
    ) -> "MLPModel":
        """A copy with input/output scales set to the per-channel mean and std of the data.

        ``q, qd, qdd, tau`` are ``(..., n)`` training samples. A missing ``qdd`` or
        ``tau`` (e.g. a dataset without torques) leaves that channel unscaled (mean 0,
        std 1); a channel with std below ``min_std`` (a constant) gets std 1.
        """
        q = np.asarray(q, dtype=np.float64).reshape(-1, self.dof)
        feats = np.asarray(jax.vmap(lambda q_: joint_features(q_, self.info.joint_types))(jnp.asarray(q)))

        def stats(x):
            if x is None:
                return (0.0,) * self.dof, (1.0,) * self.dof
            x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
            if not np.all(np.isfinite(x)):
                raise ShapeError("with_data_statistics: the data contain NaN or infinite values")
            std = x.std(axis=0)
            return tuple(x.mean(axis=0)), tuple(np.where(std < min_std, 1.0, std))

        normalization = {"features": stats(feats), "qd": stats(qd), "qdd": stats(qdd), "tau": stats(tau)}
        frozen = _freeze_normalization(normalization, self.info)
        hp = dict(self.hyperparameters)
        hp["normalization"] = frozen
        return _replace(self, normalization=frozen, hyperparameters=tuple(hp.items()))


def _replace(model: MLPModel, **changes) -> MLPModel:
    # Static fields are not leaves, so eqx.tree_at cannot set them; rebuild instead.
    fields = {
        "info": model.info,
        "forward_net": model.forward_net,
        "inverse_net": model.inverse_net,
        "kind": model.kind,
        "hyperparameters": model.hyperparameters,
        "heads": model.heads,
        "normalization": model.normalization,
    }
    fields.update(changes)
    return MLPModel(**fields)


def make_mlp(
    info: SystemInfo,
    *,
    key: PRNGKeyArray,
    width: int = 64,
    depth: int = 2,
    activation: str = "softplus",
    init: str = "default",
    dtype: str = "float32",
    heads: str = "both",
    normalization: Mapping | Sequence | None = None,
) -> MLPModel:
    """The feed-forward baseline for the system described by ``info``.

    Args:
        width, depth: hidden units per layer and number of hidden layers of each head.
        activation: a name from :data:`lagrax.models.nets.ACTIVATIONS`.
        init: ``"default"``, ``"xavier"`` or ``"orthogonal"``.
        dtype: parameter dtype, ``"float32"`` or ``"float64"``.
        heads: ``"both"`` (forward and inverse), ``"forward"`` or ``"inverse"``.
        normalization: fixed scales, normally set by :meth:`MLPModel.with_data_statistics`.
    """
    if heads not in HEADS:
        raise UnknownNameError.for_name("MLP heads option", heads, HEADS)
    param_dtype = _param_dtype(dtype)
    frozen = _freeze_normalization(normalization, info)
    in_size = feature_size(info.joint_types) + 2 * info.dof
    k_fwd, k_inv = jax.random.split(key)

    def head(k):
        # initialised in float32 and cast: float64 draws are different numbers, and a
        # float32 and a float64 model built with one key should agree
        net = mlp(in_size, info.dof, width, depth, activation, key=k, init=init, dtype=jnp.float32)
        return jax.tree_util.tree_map(lambda x: x.astype(param_dtype) if eqx.is_inexact_array(x) else x, net)

    hyperparameters = (
        ("width", width),
        ("depth", depth),
        ("activation", activation),
        ("init", init),
        ("dtype", dtype),
        ("heads", heads),
        ("normalization", frozen),
    )
    return MLPModel(
        info=info,
        forward_net=head(k_fwd) if heads in ("both", "forward") else None,
        inverse_net=head(k_inv) if heads in ("both", "inverse") else None,
        kind="mlp",
        hyperparameters=hyperparameters,
        heads=heads,
        normalization=frozen,
    )
