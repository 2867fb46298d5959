"""Named options as objects: strings are parsed once, at the edges (CLI, JSON, TOML).

Each option is an :class:`Option` (a string-valued :class:`enum.Enum`): hashable, so it
can be a static field of an equinox module or a frozen spec, written to JSON as its
``value`` and read back with :meth:`Option.parse`, which accepts a member or its name
and names the known values (with "did you mean ...?") for anything else. Numerical code
only ever sees the members: an :class:`Activation` is called, a :class:`Precision` gives
its dtype, and nothing is branched on a string inside ``jit``.

This module defines the options shared by several parts of lagrax; an option that
belongs to one model or module lives there, built on :class:`Option`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

from lagrax.core.errors import UnknownNameError

O = TypeVar("O", bound="Option")  # noqa: E741


class Option(enum.Enum):
    """Base of every named option: ``parse`` at the edge, ``value`` in JSON."""

    @classmethod
    def label(cls) -> str:
        """What the option is called in error messages (``"activation"``, ...)."""
        return cls.__name__.lower()

    @classmethod
    def parse(cls: type[O], value: Any) -> O:
        """The member for ``value`` (a member, or its string value); else UnknownNameError."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise UnknownNameError.for_name(cls.label(), str(value), [m.value for m in cls]) from None

    def __str__(self) -> str:
        return str(self.value)


class Activation(Option):
    """An elementwise activation; the member is the function (``Activation.TANH(x)``)."""

    TANH = "tanh"
    SOFTPLUS = "softplus"
    RELU = "relu"
    ELU = "elu"
    GELU = "gelu"
    SILU = "silu"
    SWISH = "swish"
    SIGMOID = "sigmoid"

    def __call__(self, x: jax.Array) -> jax.Array:
        return _ACTIVATIONS[self](x)


_ACTIVATIONS: dict[Activation, Callable] = {
    Activation.TANH: jnp.tanh,
    Activation.SOFTPLUS: jax.nn.softplus,
    Activation.RELU: jax.nn.relu,
    Activation.ELU: jax.nn.elu,
    Activation.GELU: jax.nn.gelu,
    Activation.SILU: jax.nn.silu,
    Activation.SWISH: jax.nn.silu,
    Activation.SIGMOID: jax.nn.sigmoid,
}


class Init(Option):
    """Weight initialisation of a network (see :func:`lagrax.models.nets.mlp`)."""

    DEFAULT = "default"
    XAVIER = "xavier"
    ORTHOGONAL = "orthogonal"
    LNN = "lnn"

    @classmethod
    def label(cls) -> str:
        return "initialisation"


class Precision(Option):
    """The floating-point type of parameters and states; ``.dtype`` is the JAX dtype."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @classmethod
    def label(cls) -> str:
        return "dtype"

    @property
    def dtype(self):
        """The dtype (float64 needs ``jax.config.update("jax_enable_x64", True)``)."""
        return jnp.float32 if self is Precision.FLOAT32 else jnp.float64

    def cast(self, tree):
        """``tree`` with every floating-point array cast to this precision."""
        import equinox as eqx

        return jax.tree_util.tree_map(lambda x: x.astype(self.dtype) if eqx.is_inexact_array(x) else x, tree)


class FrictionKind(Option):
    """Joint friction model: none, viscous, viscous + Coulomb, or + Stribeck."""

    NONE = "none"
    VISCOUS = "viscous"
    COULOMB = "coulomb"
    STRIBECK = "stribeck"

    @classmethod
    def label(cls) -> str:
        return "friction"

    @classmethod
    def parse(cls, value: Any) -> "FrictionKind":
        return cls.NONE if value is None else super().parse(value)


class Schedule(Option):
    """Learning-rate schedule of the AdamW phase."""

    COSINE = "cosine"
    ONECYCLE = "onecycle"
    CONSTANT = "constant"

    @classmethod
    def label(cls) -> str:
        return "learning-rate schedule"


__all__ = ["Option", "Activation", "Init", "Precision", "FrictionKind", "Schedule"]
