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
valid one. The machinery is :class:`~lagrax.core.options.Settings`, which the training
config shares. Each kind also carries the training :class:`Recipe` it was tuned with
(``Spec.RECIPE``, plain values: models sit below training). Not here: the networks and
models themselves (one module per model kind), and saving (:mod:`lagrax.models.io`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from lagrax.core.options import Codec, Settings, SettingsError


class SpecError(SettingsError):
    """A model spec got a value of the wrong type or out of range, or a JSON spec is incomplete."""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The training a model kind was tuned with: plain values, which the training layer
    turns into a :class:`~lagrax.training.config.TrainConfig` (models do not import it).

    ``settings`` maps TrainConfig field names (loss weights included) to values, and
    ``options`` the model's own options (its spec's fields) to values; ``arm`` is the
    variant for arms (datasets of many joints), where the kind has one.
    """

    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    arm: Recipe | None = None

    def __post_init__(self):
        object.__setattr__(self, "settings", _frozen(self.settings))
        object.__setattr__(self, "options", _frozen(self.options))


# The optimiser recipe tuned on the DeLaN character benchmark (benchmarks/delan_character.py;
# the sweep is summarised in the README): 1,000 AdamW steps at a high learning rate bring
# the model near the solution, then 2,500 full-batch L-BFGS iterations with a long
# memory refine it. On the reference split this measured (DeLaN, 64x2 tanh, shared
# trunk, seed 0): test torque MSE 2e-7 after ~60 s, 1.35e-5 after ~11 s, on a busy
# 2-core machine; L-BFGS memory 20 / 50 / 100 / 200 gave 3e-6 / 7e-7 / 2e-7 / 1.8e-7.
# The baselines get the same optimiser recipe, so the comparison is of models only.
CHARACTER_OPTIMISER: Mapping[str, Any] = _frozen(
    dict(
        epochs=200,
        batch_size=512,
        lr=1e-2,
        schedule="cosine",
        lbfgs_epochs=100,
        lbfgs_steps=25,
        lbfgs_memory=100,
    )
)
# The arm recipe (benchmarks/robot_zoo.py): full-batch L-BFGS costs seconds per epoch at
# 7 DoF and paid off late if at all, so AdamW alone. Minibatches of 128: four times the
# steps of 512 for the same epochs at under twice the time. On the UR5 (24,000 samples,
# tanh DeLaN) the training nMSE went 3.6e-3 -> 2.0e-3 from 7k to 21k steps of 512, while 128
# alone gave no better; with the softplus DeLaN (delan.py) 128 reaches 1e-4. The MLP
# baseline gets the same optimiser recipe, so the comparison is of models only.
ARM_OPTIMISER: Mapping[str, Any] = _frozen(
    dict(epochs=150, batch_size=128, lr=1e-2, schedule="cosine", lbfgs_epochs=0)
)


@dataclasses.dataclass(frozen=True)
class ModelSpec(Settings):
    """Base of every model spec: typed fields (:class:`~lagrax.core.options.Settings`),
    ``build``, and the training :class:`Recipe` the kind was tuned with.

    Subclasses are frozen dataclasses that set ``kind`` (the model's registry name),
    implement :meth:`build`, for range checks :meth:`validate`, and may set ``RECIPE``.
    """

    kind: ClassVar[str] = ""
    ERROR: ClassVar[type[SettingsError]] = SpecError
    NOUN: ClassVar[str] = "spec"
    #: option names accepted by :meth:`from_options` for a field (``dtype`` for ``precision``)
    ALIASES: ClassVar[Mapping[str, str]] = {"dtype": "precision"}
    #: the training settings tuned for this kind (none: the TrainConfig defaults)
    RECIPE: ClassVar[Recipe] = Recipe()

    @classmethod
    def label(cls) -> str:
        """The model kind, as messages name it."""
        return cls.kind

    # ---- the model ----------------------------------------------------------------------------
    def build(self, info, *, key):
        """The model for the system described by ``info`` (a SystemInfo), weights drawn from ``key``."""
        raise NotImplementedError


def check_positive(spec: ModelSpec, *names: str) -> None:
    """Raise a :class:`SpecError` unless each named field is > 0."""
    for name in names:
        if not getattr(spec, name) > 0:
            raise SpecError(f"{type(spec).__name__}.{name} must be > 0, got {getattr(spec, name)!r}")


def check_at_least(spec: ModelSpec, name: str, low: int) -> None:
    """Raise a :class:`SpecError` unless field ``name`` is >= ``low``."""
    if not getattr(spec, name) >= low:
        raise SpecError(f"{type(spec).__name__}.{name} must be >= {low}, got {getattr(spec, name)!r}")


__all__ = [
    "ModelSpec",
    "SpecError",
    "Codec",
    "Recipe",
    "CHARACTER_OPTIMISER",
    "ARM_OPTIMISER",
    "check_positive",
    "check_at_least",
]


class Specified:
    """Mixin of every model built from a spec (a static ``spec`` field): its kind and settings."""

    spec: ModelSpec
    #: A learned model is built from its spec (``spec.build(info, key=...)``).
    CAPABLE_OF: ClassVar[frozenset[str]] = frozenset({"spec"})

    @property
    def kind(self) -> str:
        """The model kind, ``spec.kind``."""
        return self.spec.kind

    def settings(self) -> dict[str, Any]:
        """The model's spec as JSON (what :func:`lagrax.save_model` writes)."""
        return self.spec.to_json()
