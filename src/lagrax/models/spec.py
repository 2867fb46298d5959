"""Model specs: the one source of a model's hyper-parameters.

A spec is a frozen dataclass, one per model kind (:class:`~lagrax.models.delan.DeLaNSpec`,
:class:`~lagrax.models.lnn.LNNSpec`, ...). Its fields *are* the hyper-parameters, holding
typed values: numbers, booleans and :class:`~lagrax.core.options.Option` members (never the
strings they are spelled with). :class:`ModelSpec` gives every spec the same four doors:

* ``spec.build(info, *, key)``: the model for a system, with freshly drawn weights
  (the model keeps the spec as its static field ``model.spec``);
* ``spec.to_json()``: a dict of plain JSON types, and ``Spec.from_json(d)``, its strict
  inverse: an unknown or a missing field is an error that names it, never a default;
* ``Spec.from_options(**options)``: the string edge. CLI ``-O key=value`` values, TOML
  tables and ``make_model(name, info, key=..., **options)`` arrive as strings and
  numbers; they are parsed here once (``dtype`` is accepted for ``precision``), and an
  unknown option gets "did you mean ...?".

Construction checks types and ranges (``__post_init__``), so a spec that exists is a
valid one. Not here: the networks and models themselves (one module per model kind),
and saving (:mod:`lagrax.models.io`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.core.options import Option


class SpecError(LagraxError, ValueError):
    """A model spec got a value of the wrong type or out of range, or a JSON spec is incomplete."""


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise SpecError(f"{where} must be true or false, got {value!r}")


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpecError(f"{where} must be an integer, got {value!r}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(float(value))
    raise SpecError(f"{where} must be an integer, got {value!r}")


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise SpecError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise SpecError(f"{where} must be a number, got {value!r}")


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


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Base of every model spec: typed fields, ``build``, JSON and string parsing.

    Subclasses are frozen dataclasses that set ``kind`` (the model's registry name),
    implement :meth:`build` and, for range checks, :meth:`validate`.
    """

    kind: ClassVar[str] = ""
    #: option names accepted by :meth:`from_options` for a field (``dtype`` for ``precision``)
    ALIASES: ClassVar[Mapping[str, str]] = {"dtype": "precision"}
    #: fields added after models were first saved: a saved spec without them gets the default
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ()

    # ---- construction: types, then ranges ------------------------------------------------
    def __post_init__(self):
        for field, hint in self._hints().items():
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, self._checked(field, hint, value))
        self.validate()

    def validate(self) -> None:
        """Range checks of a subclass (raise :class:`SpecError` naming the field)."""

    @classmethod
    def _hints(cls) -> dict[dataclasses.Field, Any]:
        hints = typing.get_type_hints(cls)
        return {f: hints[f.name] for f in dataclasses.fields(cls)}

    def _checked(self, field: dataclasses.Field, hint: Any, value: Any) -> Any:
        """``value`` if it has the field's type (ints widen to float); else a SpecError."""
        where = f"{type(self).__name__}.{field.name}"
        codec = field.metadata.get("codec")
        if codec is not None:
            ok = codec.check(value)
        elif isinstance(hint, type) and issubclass(hint, Option):
            ok = isinstance(value, hint)
            if not ok and isinstance(value, str):
                raise SpecError(
                    f"{where} must be a {hint.__name__} (e.g. {hint.__name__}.{next(iter(hint)).name}), "
                    f"got the string {value!r}; parse strings with {type(self).__name__}.from_options"
                )
        elif hint is bool:
            ok = isinstance(value, bool)
        elif hint is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif hint is float:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        else:  # pragma: no cover - a spec field of a type this module does not know
            raise TypeError(f"{where}: unsupported field type {hint!r}; give it a Codec")
        if not ok:
            raise SpecError(f"{where} must be {_describe(hint)}, got {value!r}")
        return value

    # ---- the string and JSON edges --------------------------------------------------------
    @classmethod
    def _parse_field(cls, field: dataclasses.Field, hint: Any, value: Any) -> Any:
        """A string, number or JSON value -> the field's typed value."""
        where = f"{cls.kind} option {field.name!r}"
        codec = field.metadata.get("codec")
        if codec is not None:
            return codec.parse(value)
        if isinstance(hint, type) and issubclass(hint, Option):
            return hint.parse(value)
        if hint is bool:
            return _as_bool(value, where)
        if hint is int:
            return _as_int(value, where)
        if hint is float:
            return _as_float(value, where)
        raise TypeError(f"{where}: unsupported field type {hint!r}")  # pragma: no cover

    @classmethod
    def from_options(cls, **options: Any) -> "ModelSpec":
        """The spec from option values as given at the CLI or in TOML (strings, numbers,
        booleans or option members); options not given keep their defaults. An unknown
        option is an :class:`~lagrax.core.errors.UnknownNameError` with "did you mean ...?"."""
        hints = {f.name: (f, h) for f, h in cls._hints().items()}
        values: dict[str, Any] = {}
        for name, value in options.items():
            target = cls.ALIASES.get(name, name)
            if target not in hints:
                raise UnknownNameError.for_name(f"{cls.kind} option", name, [*hints, *cls.ALIASES])
            if target in values:
                raise SpecError(f"{cls.kind}: {target!r} is given twice (once as {name!r})")
            values[target] = cls._parse_field(*hints[target], value)
        return cls(**values)

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
    def from_json(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """The spec written by :meth:`to_json`. Strict: every field must be there and no
        other (a :class:`SpecError` or :class:`~lagrax.core.errors.UnknownNameError` names it)."""
        if not isinstance(d, Mapping):
            raise SpecError(f"a {cls.kind} spec must be a JSON object, got {type(d).__name__}")
        hints = {f.name: (f, h) for f, h in cls._hints().items()}
        unknown = [k for k in d if k not in hints]
        if unknown:
            raise UnknownNameError.for_name(f"{cls.kind} spec field", str(unknown[0]), hints)
        missing = [k for k in hints if k not in d and k not in cls.ADDED_FIELDS]
        if missing:
            raise SpecError(f"the {cls.kind} spec lacks the field(s) {', '.join(map(repr, missing))}")
        return cls(**{k: cls._parse_field(*hints[k], v) for k, v in d.items()})

    def replace(self, **changes: Any) -> "ModelSpec":
        """A copy with some fields changed (typed values, checked as in construction)."""
        return dataclasses.replace(self, **changes)

    # ---- the model ----------------------------------------------------------------------------
    def build(self, info, *, key):
        """The model for the system described by ``info`` (a SystemInfo), weights drawn from ``key``."""
        raise NotImplementedError


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a finite number"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def check_positive(spec: ModelSpec, *names: str) -> None:
    """Raise a :class:`SpecError` unless each named field is > 0."""
    for name in names:
        if not getattr(spec, name) > 0:
            raise SpecError(f"{type(spec).__name__}.{name} must be > 0, got {getattr(spec, name)!r}")


def check_at_least(spec: ModelSpec, name: str, low: int) -> None:
    """Raise a :class:`SpecError` unless field ``name`` is >= ``low``."""
    if not getattr(spec, name) >= low:
        raise SpecError(f"{type(spec).__name__}.{name} must be >= {low}, got {getattr(spec, name)!r}")


__all__ = ["ModelSpec", "SpecError", "Codec", "check_positive", "check_at_least"]


class Specified:
    """Mixin of every model built from a spec (a static ``spec`` field): its kind and settings."""

    spec: ModelSpec

    @property
    def kind(self) -> str:
        """The model kind, ``spec.kind``."""
        return self.spec.kind

    def settings(self) -> dict[str, Any]:
        """The model's spec as JSON (what :func:`lagrax.save_model` writes)."""
        return self.spec.to_json()
