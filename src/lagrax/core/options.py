"""Named options as objects: strings are parsed once, at the edges (CLI, JSON, TOML).

Each option is an :class:`Option` (a string-valued :class:`enum.Enum`): hashable, so it
can be a static field of an equinox module or a frozen spec, written to JSON as its
``value`` and read back with :meth:`Option.parse`, which accepts a member or its name
and names the known values (with "did you mean ...?") for anything else. Numerical code
only ever sees the members: an :class:`Activation` is called, a :class:`Precision` gives
its dtype, and nothing is branched on a string inside ``jit``.

This module defines the options shared by several parts of lagrax; an option that
belongs to one model or module lives there, built on :class:`Option`.

:class:`Settings` is the one mechanism for a record of such typed settings (a model's
spec, :class:`~lagrax.models.spec.ModelSpec`; a training run's config,
:class:`~lagrax.training.config.TrainConfig`): a frozen dataclass whose annotations are
the types, checked on construction, with the string edge (:meth:`Settings.from_options`)
and the JSON edge (:meth:`Settings.to_json`, :meth:`Settings.from_json`) derived from
the fields. What a record's settings mean is its own module's business, not this one's.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp

from lagrax.core.errors import LagraxError, UnknownNameError

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


# --------------------------------------------------------------------------------------
# Records of typed settings
# --------------------------------------------------------------------------------------


class SettingsError(LagraxError, ValueError):
    """A setting got a value of the wrong type or out of range, or a saved record is incomplete."""


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_NONE = ("none", "null")


def as_bool(value: Any, where: str, error: type[Exception] = SettingsError) -> bool:
    """``value`` (a bool, or ``true/false/yes/no/1/0/on/off``) as a bool; else ``error`` naming ``where``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise error(f"{where} must be true or false, got {value!r}")


def as_int(value: Any, where: str, error: type[Exception] = SettingsError) -> int:
    """``value`` (a whole number, or a string of one) as an int; else ``error`` naming ``where``."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise error(f"{where} must be an integer, got {value!r}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(float(value))
    raise error(f"{where} must be an integer, got {value!r}")


def as_float(value: Any, where: str, error: type[Exception] = SettingsError) -> float:
    """``value`` (a real number, or a string of one) as a float; else ``error`` naming ``where``."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise error(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise error(f"{where} must be a number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Codec:
    """How a field that is not a number, a bool or an :class:`Option` is read and written.

    ``parse(value)`` turns a JSON or option value into the field's value (or raises a
    :class:`~lagrax.core.errors.LagraxError`); ``to_json(value)`` is its inverse. Attach one with
    ``dataclasses.field(metadata={"codec": Codec(...)})``.
    """

    parse: Callable[[Any], Any]
    to_json: Callable[[Any], Any]
    check: Callable[[Any], bool]  # is this already a valid field value?


def optional_of(hint: Any) -> tuple[Any, bool]:
    """``(T, True)`` for a hint ``T | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def describe_type(hint: Any) -> str:
    """How a field's type reads in an error message (``"an integer"``, ``"a finite number or none"``)."""
    inner, optional = optional_of(hint)
    names = {bool: "true or false", int: "an integer", float: "a finite number"}
    text = names.get(inner, f"a {getattr(inner, '__name__', inner)}")
    return f"{text} or none" if optional else text


def _is_option(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Option)


def _has_type(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the (non-optional) field type ``hint``; ints pass as floats."""
    if _is_option(hint):
        return isinstance(value, hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    raise TypeError(f"unsupported field type {hint!r}; give the field a Codec")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of a frozen record of typed settings: its fields *are* the settings.

    Each field's annotation is its type: ``bool``, ``int``, ``float`` (finite; an int
    widens), an :class:`Option`, any of those ``| None``, or any type with a :class:`Codec`.
    Construction checks the types (raising :attr:`ERROR` naming the field), then
    :meth:`validate` the ranges, so a record that exists is a valid one; changes go
    through :meth:`replace` (or ``dataclasses.replace``), which checks again.

    Subclasses are frozen dataclasses; they name themselves in messages with
    :meth:`label` and :attr:`NOUN` and choose their error class with :attr:`ERROR`.
    """

    #: the error a bad value raises (a subclass of :class:`SettingsError`)
    ERROR: ClassVar[type[SettingsError]] = SettingsError
    #: what a record is, in messages ("the delan spec lacks ...")
    NOUN: ClassVar[str] = "settings"
    #: option names accepted by :meth:`from_options` for a field
    ALIASES: ClassVar[Mapping[str, str]] = {}
    #: fields added after records were first saved: a saved record without them gets the default
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: whether construction accepts an option's name for an :class:`Option` field (and parses it)
    OPTION_NAMES: ClassVar[bool] = False

    @classmethod
    def label(cls) -> str:
        """What the record is called in messages (a model's kind, ``"training"``)."""
        return cls.__name__

    # ---- construction: types, then ranges ------------------------------------------------
    def __post_init__(self):
        for field, hint in self.hints().items():
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, self._checked(field, hint, value))
        self.validate()

    def validate(self) -> None:
        """Range checks of a subclass (raise :attr:`ERROR` naming the field)."""

    @classmethod
    def hints(cls) -> dict[dataclasses.Field, Any]:
        """Each field and its type (the evaluated annotation)."""
        hints = typing.get_type_hints(cls)
        return {f: hints[f.name] for f in dataclasses.fields(cls)}

    def _checked(self, field: dataclasses.Field, hint: Any, value: Any) -> Any:
        """``value`` if it has the field's type (ints widen to float); else :attr:`ERROR`."""
        where = f"{type(self).__name__}.{field.name}"
        codec = field.metadata.get("codec")
        if codec is not None:
            if not codec.check(value):
                raise self.ERROR(f"{where} must be {describe_type(hint)}, got {value!r}")
            return value
        inner, optional = optional_of(hint)
        if value is None and optional:
            return None
        if _is_option(inner) and isinstance(value, str):
            if self.OPTION_NAMES:
                return inner.parse(value)
            raise self.ERROR(
                f"{where} must be a {inner.__name__} (e.g. {inner.__name__}.{next(iter(inner)).name}), "
                f"got the string {value!r}; parse strings with {type(self).__name__}.from_options"
            )
        if not _has_type(inner, value):
            raise self.ERROR(f"{where} must be {describe_type(hint)}, got {value!r}")
        return float(value) if inner is float else value

    # ---- the string and JSON edges --------------------------------------------------------
    @classmethod
    def parse_field(cls, field: dataclasses.Field, hint: Any, value: Any) -> Any:
        """A string, number or JSON value -> the field's typed value (``none``: None where allowed)."""
        where = f"{cls.label()} option {field.name!r}"
        codec = field.metadata.get("codec")
        if codec is not None:
            return codec.parse(value)
        inner, optional = optional_of(hint)
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
            return None
        if _is_option(inner):
            return inner.parse(value)
        parse = {bool: as_bool, int: as_int, float: as_float}.get(inner)
        if parse is None:  # pragma: no cover - a field of a type this module does not know
            raise TypeError(f"{where}: unsupported field type {hint!r}")
        return parse(value, where, cls.ERROR)

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Option values (strings, numbers, booleans or members) -> typed values by field name;
        an unknown option is an :class:`~lagrax.core.errors.UnknownNameError` with "did you mean"."""
        hints = {f.name: (f, h) for f, h in cls.hints().items()}
        values: dict[str, Any] = {}
        for name, value in options.items():
            target = cls.ALIASES.get(name, name)
            if target not in hints:
                raise UnknownNameError.for_name(f"{cls.label()} option", name, [*hints, *cls.ALIASES])
            if target in values:
                raise cls.ERROR(f"{cls.label()}: {target!r} is given twice (once as {name!r})")
            values[target] = cls.parse_field(*hints[target], value)
        return values

    @classmethod
    def from_options(cls, **options: Any):
        """The record from option values as given at the CLI or in TOML (strings, numbers,
        booleans or option members); options not given keep their defaults."""
        return cls(**cls.parse_options(options))

    def to_json(self) -> dict[str, Any]:
        """Every field as a plain JSON value (options as their string ``value``)."""
        out = {}
        for field in dataclasses.fields(self):
            value, codec = getattr(self, field.name), field.metadata.get("codec")
            if codec is not None:
                value = codec.to_json(value)
            elif isinstance(value, Option):
                value = value.value
            out[field.name] = value
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]):
        """The record written by :meth:`to_json`. Strict: every field must be there and no
        other (:attr:`ERROR` or :class:`~lagrax.core.errors.UnknownNameError` names it)."""
        if not isinstance(d, Mapping):
            raise cls.ERROR(f"a {cls.label()} {cls.NOUN} must be a JSON object, got {type(d).__name__}")
        hints = {f.name: (f, h) for f, h in cls.hints().items()}
        unknown = [k for k in d if k not in hints]
        if unknown:
            raise UnknownNameError.for_name(f"{cls.label()} {cls.NOUN} field", str(unknown[0]), hints)
        missing = [k for k in hints if k not in d and k not in cls.ADDED_FIELDS]
        if missing:
            names = ", ".join(map(repr, missing))
            raise cls.ERROR(f"the {cls.label()} {cls.NOUN} lacks the field(s) {names}")
        return cls(**{k: cls.parse_field(*hints[k], v) for k, v in d.items()})

    def replace(self, **changes: Any):
        """A copy with some fields changed (typed values, checked as in construction)."""
        return dataclasses.replace(self, **changes)


__all__ = [
    "Option",
    "Activation",
    "Init",
    "Precision",
    "FrictionKind",
    "Schedule",
    "Settings",
    "SettingsError",
    "Codec",
    "as_bool",
    "as_int",
    "as_float",
    "optional_of",
    "describe_type",
]
