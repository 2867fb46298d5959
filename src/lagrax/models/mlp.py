"""The black-box feed-forward baseline of the DeLaN papers (Lutter et al. 2019, sec. 5).

:class:`MLPModel` maps ``(features(q), qd, tau) -> qdd`` with a forward head and
``(features(q), qd, qdd) -> tau`` with an inverse head, each a plain MLP. It is a
:class:`~lagrax.systems.System`, so rollouts and evaluation use it like any other
model, but it is *not* Lagrangian: it has no mass matrix, energies, momentum,
Coriolis, gravity or friction terms, and asking for them raises
:class:`~lagrax.core.errors.NotProvidedError`. Nothing in it conserves energy.

**The spec.** :class:`MLPSpec` holds the hyper-parameters (width, depth, activation,
initialisation, which :class:`Heads`, precision) and the data :class:`Normalization`.
Raw accelerations and torques differ in scale by orders of magnitude between joints,
so a fair baseline standardises its inputs and outputs: :meth:`MLPModel.with_data_statistics`
fixes per-channel mean/std from training data by setting ``spec.normalization``. The
scales are static data of the spec, not array leaves, so an optimiser can never move
them and ``lagrax.models.io`` rebuilds them with the skeleton.

This module does not train anything (see the training module).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from lagrax.core.errors import NotProvidedError, ShapeError, UnknownNameError
from lagrax.core.options import Activation, Init, Option, Precision
from lagrax.systems.base import CAPABILITIES, System, SystemInfo, Vec
from lagrax.models.nets import feature_size, joint_features, network
from lagrax.models.spec import (
    ARM_OPTIMISER,
    CHARACTER_OPTIMISER,
    Codec,
    ModelSpec,
    Recipe,
    Specified,
    check_at_least,
)


class Heads(Option):
    """Which heads an MLP baseline has: forward (``-> qdd``), inverse (``-> tau``), or both."""

    BOTH = "both"
    FORWARD = "forward"
    INVERSE = "inverse"

    @classmethod
    def label(cls) -> str:
        return "MLP heads option"


#: The standardised channels, in order: each has a per-channel (mean, std).
NORMALIZED = ("features", "qd", "qdd", "tau")
Stats = tuple[tuple[float, ...], tuple[float, ...]]


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Per-channel ``(mean, std)`` of the joint features, ``qd``, ``qdd`` and ``tau``.

    Hashable (tuples of floats), so it is part of the static :class:`MLPSpec`.
    """

    features: Stats
    qd: Stats
    qdd: Stats
    tau: Stats

    def __post_init__(self):
        for name in NORMALIZED:
            mean, std = getattr(self, name)
            if len(mean) != len(std):
                raise ShapeError(f"normalization[{name!r}] has {len(mean)} means and {len(std)} stds")
            if not all(math.isfinite(x) for x in (*mean, *std)):
                raise ShapeError(
                    f"normalization[{name!r}] has a mean or std that is not finite: {mean}, {std}"
                )
            if not all(x > 0.0 for x in std):
                raise ShapeError(f"normalization[{name!r}] has a non-positive std: {std}")

    @classmethod
    def parse(cls, value: Any) -> "Normalization | None":
        """From ``None``, a :class:`Normalization`, or a mapping ``name -> (mean, std)`` or
        ``name -> {"mean": ..., "std": ...}`` (the JSON form) with every name of :data:`NORMALIZED`."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ShapeError(f"normalization must be a mapping of {NORMALIZED}, got {type(value).__name__}")
        unknown = [k for k in value if k not in NORMALIZED]
        if unknown:
            raise UnknownNameError.for_name("normalization entry", str(unknown[0]), NORMALIZED)
        missing = [k for k in NORMALIZED if k not in value]
        if missing:
            raise ShapeError(
                f"normalization is missing {missing[0]!r}; give mean and std for each of {NORMALIZED}"
            )
        stats = {}
        for name in NORMALIZED:
            try:
                entry = value[name]
                mean, std = (entry["mean"], entry["std"]) if isinstance(entry, Mapping) else entry
                stats[name] = (tuple(float(x) for x in mean), tuple(float(x) for x in std))
            except (KeyError, TypeError, ValueError):
                raise ShapeError(
                    f"normalization[{name!r}] must be (mean, std) or {{'mean': [...], 'std': [...]}} "
                    f"of numbers, got {value[name]!r}"
                ) from None
        return cls(**stats)

    def to_json(self) -> dict:
        """``{name: {"mean": [...], "std": [...]}}``."""
        return {n: {"mean": list(getattr(self, n)[0]), "std": list(getattr(self, n)[1])} for n in NORMALIZED}

    def check_sizes(self, info: SystemInfo) -> None:
        """Raise a :class:`~lagrax.core.errors.ShapeError` unless every channel fits ``info``."""
        sizes = {"features": feature_size(info.joint_types), "qd": info.dof, "qdd": info.dof, "tau": info.dof}
        for name in NORMALIZED:
            if len(getattr(self, name)[0]) != sizes[name]:
                raise ShapeError(
                    f"normalization[{name!r}] has {len(getattr(self, name)[0])} channels, "
                    f"expected {sizes[name]} for {info.name!r}"
                )

    def standardize(self, name: str, x: Float[Array, " k"]) -> Float[Array, " k"]:
        """``(x - mean) / std`` of channel ``name``, in ``x``'s dtype."""
        mean, std = getattr(self, name)
        return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)

    def unstandardize(self, name: str, y: Float[Array, " k"]) -> Float[Array, " k"]:
        """``y * std + mean`` of channel ``name``, in ``y``'s dtype."""
        mean, std = getattr(self, name)
        return y * jnp.asarray(std, y.dtype) + jnp.asarray(mean, y.dtype)

    @classmethod
    def from_data(cls, info: SystemInfo, q, qd, qdd=None, tau=None, *, min_std: float = 1e-6):
        """Per-channel mean and std of ``(..., n)`` samples (see :meth:`MLPModel.with_data_statistics`)."""
        q = np.asarray(q, dtype=np.float64).reshape(-1, info.dof)
        feats = np.asarray(jax.vmap(lambda q_: joint_features(q_, info.joint_types))(jnp.asarray(q)))

        def stats(x):
            if x is None:
                return (0.0,) * info.dof, (1.0,) * info.dof
            x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
            if not np.all(np.isfinite(x)):
                raise ShapeError("with_data_statistics: the data contain NaN or infinite values")
            std = x.std(axis=0)
            return tuple(map(float, x.mean(axis=0))), tuple(map(float, np.where(std < min_std, 1.0, std)))

        return cls(features=stats(feats), qd=stats(qd), qdd=stats(qdd), tau=stats(tau))


_NORMALIZATION = Codec(
    parse=Normalization.parse,
    to_json=lambda n: None if n is None else n.to_json(),
    check=lambda n: n is None or isinstance(n, Normalization),
)


@dataclasses.dataclass(frozen=True)
class MLPSpec(ModelSpec):
    """The hyper-parameters of an :class:`MLPModel`.

    Attributes:
        width, depth: hidden units per layer and number of hidden layers of each head.
        activation, init: of both heads (equinox's default initialisation by default).
        heads: ``BOTH`` (forward and inverse), ``FORWARD`` or ``INVERSE``.
        normalization: fixed scales (``None``: identity), normally set by
            :meth:`MLPModel.with_data_statistics`.
        precision: parameter dtype; inputs are cast to it.
    """

    kind: ClassVar[str] = "mlp"
    # DeLaN's optimiser recipes, for a comparison of models; both heads, as rollouts use the forward one
    RECIPE = Recipe(
        {**CHARACTER_OPTIMISER, "inverse": 1.0, "forward": 1.0},
        arm=Recipe({**ARM_OPTIMISER, "inverse": 1.0, "forward": 1.0}),
    )

    width: int = 64
    depth: int = 2
    activation: Activation = Activation.SOFTPLUS
    init: Init = Init.DEFAULT
    heads: Heads = Heads.BOTH
    normalization: Normalization | None = dataclasses.field(default=None, metadata={"codec": _NORMALIZATION})
    precision: Precision = Precision.FLOAT32

    def validate(self) -> None:
        check_at_least(self, "width", 1)
        check_at_least(self, "depth", 0)

    def build(self, info: SystemInfo, *, key: PRNGKeyArray) -> "MLPModel":
        """The feed-forward baseline for the system described by ``info``, weights drawn from ``key``."""
        if self.normalization is not None:
            self.normalization.check_sizes(info)
        in_size = feature_size(info.joint_types) + 2 * info.dof
        k_fwd, k_inv = jax.random.split(key)

        def head(k):
            return network(
                in_size,
                info.dof,
                self.width,
                self.depth,
                self.activation,
                key=k,
                init=self.init,
                precision=self.precision,
            )

        has = {Heads.BOTH: (True, True), Heads.FORWARD: (True, False), Heads.INVERSE: (False, True)}
        forward, inverse = has[self.heads]
        return MLPModel(
            info=info,
            forward_net=head(k_fwd) if forward else None,
            inverse_net=head(k_inv) if inverse else None,
            spec=self,
        )


class MLPModel(Specified, System):
    """Feed-forward forward/inverse dynamics model (a black box).

    Attributes:
        forward_net: ``[features(q), qd, tau] -> qdd`` (standardised), or ``None``
            without a forward head.
        inverse_net: ``[features(q), qd, qdd] -> tau`` (standardised), or ``None``.
        spec: the :class:`MLPSpec` it was built from (static), with its normalisation.
    """

    forward_net: eqx.nn.MLP | None
    inverse_net: eqx.nn.MLP | None
    spec: MLPSpec = eqx.field(static=True)

    # ---- what a black box cannot give ------------------------------------------------
    def provides(self, quantity: str) -> bool:
        """Forward and inverse dynamics, as far as the heads it was built with go; nothing else."""
        if quantity in CAPABILITIES:
            return super().provides(quantity)
        super().provides(quantity)  # an unknown name is an error
        heads = {
            Heads.BOTH: ("forward_dynamics", "inverse_dynamics"),
            Heads.FORWARD: ("forward_dynamics",),
            Heads.INVERSE: ("inverse_dynamics",),
        }[self.spec.heads]
        return quantity in heads

    def not_provided(self, what: str) -> NotProvidedError:
        return NotProvidedError(
            f"{type(self).__name__} ({self.info.name}): the MLP baseline is a black box: "
            f"it has no Lagrangian, so it cannot provide {what}"
        )

    def friction(self, q: Vec, qd: Vec) -> Vec:
        raise self.not_provided("a friction force")

    def energy(self, q: Vec, qd: Vec) -> Scalar:
        raise self.not_provided("an energy")

    def power(self, q: Vec, qd: Vec, tau: Vec) -> Scalar:
        raise self.not_provided("a power balance (it has no friction model)")

    def energy_rate(self, q: Vec, qd: Vec, qdd: Vec) -> Scalar:
        raise self.not_provided("an energy rate")

    def _missing_head(self, which: str) -> NotProvidedError:
        heads = self.spec.heads.value
        return NotProvidedError(
            f"{type(self).__name__} ({self.info.name}) was built with heads={heads!r}, so it has no "
            f"{which} head; build it with heads='both' or heads={which!r} to get {which} dynamics"
        )

    # ---- standardisation -------------------------------------------------------------
    def standardize(self, name: str, x: Float[Array, " k"]) -> Float[Array, " k"]:
        """Channel ``name`` (one of :data:`NORMALIZED`) scaled by the training statistics, in
        the parameters' precision (the identity before :meth:`with_data_statistics`)."""
        x = x.astype(self.spec.precision.dtype)
        norm = self.spec.normalization
        return x if norm is None else norm.standardize(name, x)

    def _unstandardize(self, name: str, y):
        norm = self.spec.normalization
        return y if norm is None else norm.unstandardize(name, y)

    def head_input(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], x: Float[Array, " n"], x_name: str
    ) -> Float[Array, " m"]:
        """The standardised vector ``[features(q), qd, x]`` a head sees; ``x_name`` is
        ``"tau"`` (forward head) or ``"qdd"`` (inverse head)."""
        q = q.astype(self.spec.precision.dtype)
        features = joint_features(q, self.info.joint_types)
        return jnp.concatenate(
            [self.standardize("features", features), self.standardize("qd", qd), self.standardize(x_name, x)]
        )

    # ---- per-sample dynamics -----------------------------------------------------------
    def forward_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], tau: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """``qdd`` from the forward head."""
        if self.forward_net is None:
            raise self._missing_head("forward")
        out = self.forward_net(self.head_input(q, qd, tau, "tau"))
        return self._unstandardize("qdd", out).astype(jnp.result_type(q, qd, tau))

    def inverse_dynamics(
        self, q: Float[Array, " n"], qd: Float[Array, " n"], qdd: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """``tau`` from the inverse head."""
        if self.inverse_net is None:
            raise self._missing_head("inverse")
        out = self.inverse_net(self.head_input(q, qd, qdd, "qdd"))
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
        """A copy whose ``spec.normalization`` is the per-channel mean and std of the data.

        ``q, qd, qdd, tau`` are ``(..., n)`` training samples. A missing ``qdd`` or
        ``tau`` (e.g. a dataset without torques) leaves that channel unscaled (mean 0,
        std 1); a channel with std below ``min_std`` (a constant) gets std 1.
        """
        norm = Normalization.from_data(self.info, q, qd, qdd, tau, min_std=min_std)
        spec = self.spec.replace(normalization=norm)
        # static fields are not leaves, so eqx.tree_at cannot set the spec: rebuild
        return MLPModel(info=self.info, forward_net=self.forward_net, inverse_net=self.inverse_net, spec=spec)
