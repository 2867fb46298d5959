"""Training configuration: one frozen record of typed settings, from defaults, TOML and overrides.

:class:`TrainConfig` holds every setting of a run (optimiser, schedule, loss weights,
validation, early stopping, checkpoints, budgets). It is built on the same machinery as
the model specs (:class:`~lagrax.core.options.Settings`): the annotations are the types,
checked on construction, and a config, once made, is never changed; ``config.replace(...)``
(or ``dataclasses.replace``) gives a checked copy. It is saved with each run
(``config.json``) so a run can be repeated or resumed. The loss weights become loss term
objects with :meth:`TrainConfig.loss` (:mod:`lagrax.training.losses`).

The settings tuned for a model kind live with the model (``Spec.RECIPE``, a
:class:`~lagrax.models.spec.Recipe`); :func:`recipe` looks them up through the model registry.

This module does not train anything (see :mod:`lagrax.training.trainer`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from lagrax.core.errors import UnknownNameError
from lagrax.core.options import Precision, Schedule, Settings, SettingsError
from lagrax.data.dataset import is_passive, unactuated_joints
from lagrax.models import spec_class
from lagrax.training import losses as L

SCHEDULES = tuple(s.value for s in Schedule)
LOSS_NAMES = L.LOSS_NAMES


class ConfigError(SettingsError):
    """A training setting is unknown, of the wrong type or out of range."""


# the counts that must be at least 1
POSITIVE_COUNTS = (
    "epochs",
    "val_every",
    "checkpoint_every",
    "rollout_horizon",
    "rollout_substeps",
    "rollout_batch_size",
    "max_bad_epochs",
    "lbfgs_steps",
    "lbfgs_memory",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Settings):
    """Every setting of a training run (frozen; change it with :meth:`replace`).

    Loss weights (``inverse``, ``forward``, ``power``, ``rollout``, ``canonical``): a
    weight of 0 switches the term off. ``inverse`` and ``forward`` are the torque and
    acceleration residuals normalised per joint by the training-set variance (Lutter &
    Peters 2023, eq. 29); ``power`` compares ``dE/dt`` with ``qd^T (tau - friction)``;
    ``rollout`` integrates the model ``rollout_horizon`` steps from states of the data
    (RK4, ``rollout_substeps`` sub-steps per sample interval) and compares positions and
    velocities; ``canonical`` fits ``(qd, pdot)`` for Hamiltonian models. :meth:`loss`
    gives them as one :class:`~lagrax.training.losses.Loss`.

    ``schedule`` is a :class:`~lagrax.core.options.Schedule` and ``dtype`` a
    :class:`~lagrax.core.options.Precision`; their names (``"cosine"``, ``"float64"``) are
    parsed on construction, and :meth:`to_dict` writes the names back.

    ``batch_size = 0`` means full batch. ``epochs`` counts passes over the training set;
    ``steps_per_epoch`` overrides the number of minibatch steps per jitted call.

    ``lbfgs_epochs`` full-batch L-BFGS epochs (``lbfgs_steps`` iterations each, optax's
    L-BFGS with a zoom line search and ``lbfgs_memory`` stored pairs) follow the AdamW
    epochs. On small, smooth problems such as the DeLaN character data this refinement
    reaches in seconds the precision AdamW needs tens of thousands of steps for; it needs
    the whole training set in one batch, so it suits datasets of up to some 10^5 samples.
    """

    ERROR: ClassVar[type[SettingsError]] = ConfigError
    NOUN: ClassVar[str] = "config"
    OPTION_NAMES: ClassVar[bool] = True  # TrainConfig(schedule="cosine"), as TOML writes it

    epochs: int = 1000
    batch_size: int = 512
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    schedule: Schedule = Schedule.COSINE
    warmup: float = 0.0  # fraction of all steps spent warming up linearly
    final_lr_fraction: float = 1e-2  # cosine/one-cycle end at lr * this
    clip_norm: float | None = 1.0
    b1: float = 0.9
    b2: float = 0.999
    inverse: float = 1.0
    forward: float = 0.0
    power: float = 0.0
    rollout: float = 0.0
    canonical: float = 0.0
    rollout_horizon: int = 4
    rollout_substeps: int = 1
    rollout_batch_size: int = 64
    regularization: float = 1e-6  # Tikhonov lambda of Hessian solves (LNN); SPD models ignore it
    val_every: int = 10
    patience: int | None = None  # validations without improvement before stopping
    checkpoint_every: int = 100
    max_bad_epochs: int = 3  # consecutive epochs with every step non-finite -> stop
    seed: int = 0
    dtype: Precision = Precision.FLOAT32
    max_seconds: float | None = None
    target_val_loss: float | None = None
    lbfgs_epochs: int = 0
    lbfgs_steps: int = 50
    lbfgs_memory: int = 20

    @classmethod
    def label(cls) -> str:
        """How messages name these settings ("unknown training option ...")."""
        return "training"

    def validate(self) -> None:
        """Check every setting's range; raise :class:`ConfigError` naming the first bad one."""
        for name in POSITIVE_COUNTS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.lbfgs_epochs < 0:
            raise ConfigError(f"lbfgs_epochs must be >= 0, got {self.lbfgs_epochs}")
        if self.batch_size < 0:
            raise ConfigError(f"batch_size must be >= 0 (0 = full batch), got {self.batch_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        self._check_ranges()
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup is a fraction of all steps in [0, 1), got {self.warmup}")
        weights = self.loss_weights()
        if any(w < 0 for w in weights.values()):
            raise ConfigError(f"loss weights must be >= 0, got {weights}")
        if not any(w > 0 for w in weights.values()):
            raise ConfigError(f"at least one loss weight must be positive, got {weights}")

    def _check_ranges(self) -> None:
        """The settings that may not be negative, and the fractions: ``(ok, what it must be)``."""
        checks = {
            "weight_decay": (self.weight_decay >= 0, "non-negative"),
            "max_seconds": (self.max_seconds is None or self.max_seconds > 0, "positive"),
            "patience": (self.patience is None or self.patience >= 1, "at least 1"),
            "seed": (0 <= self.seed < 2**32, "in [0, 2**32)"),
            "clip_norm": (self.clip_norm is None or self.clip_norm > 0, "positive (or none)"),
            "b1": (0 <= self.b1 < 1, "in [0, 1)"),
            "b2": (0 <= self.b2 < 1, "in [0, 1)"),
            "final_lr_fraction": (0 <= self.final_lr_fraction <= 1, "in [0, 1]"),
            "regularization": (self.regularization >= 0, "non-negative"),
        }
        for name, (ok, what) in checks.items():
            if not ok:
                raise ConfigError(f"{name} must be {what}, got {getattr(self, name)!r}")

    # ---- the losses ------------------------------------------------------------------------
    def loss_weights(self) -> dict[str, float]:
        """The weight of each loss term by name (``inverse``, ``forward``, ...)."""
        return {name: float(getattr(self, name)) for name in LOSS_NAMES}

    def loss(self) -> L.Loss:
        """The active loss terms as one :class:`~lagrax.training.losses.Loss` (the forward
        term with ``regularization``, the rollout term with ``rollout_substeps``)."""
        return L.Loss.of(
            self.loss_weights(), regularization=self.regularization, substeps=self.rollout_substeps
        )

    # ---- the edges: JSON, TOML, strings -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every setting, options written as their names (what ``config.json`` holds)."""
        return self.to_json()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Settings by name, typed as JSON and TOML hold them (options by name); those not
        given keep their defaults, and an unknown name is refused."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise UnknownNameError.for_name("training option", unknown[0], known)
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> TrainConfig:
        """Settings from a TOML file (top level or a ``[train]`` table), then ``overrides``.

        A ``[model]`` table is ignored here; :func:`read_toml` returns it.
        """
        train, _ = read_toml(path)
        return cls.from_dict({**train, **overrides})

    @classmethod
    def parse_overrides(cls, items: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
        """Typed settings by name from ``key=value`` strings (the CLI's ``-O``) or a mapping of
        strings: ``["epochs=5", "lr=1e-3", "patience=none"]`` -> ``{"epochs": 5, "lr": 0.001,
        "patience": None}``. A bad name or value is an error naming the setting."""
        return cls.parse_options(items if isinstance(items, Mapping) else split_pairs(items))

    @classmethod
    def from_strings(
        cls, items: Iterable[str] | Mapping[str, Any], base: Mapping[str, Any] | None = None
    ) -> TrainConfig:
        """The config of ``base`` (typed settings by name) with :meth:`parse_overrides` of
        ``items`` on top."""
        return cls.from_dict({**dict(base or {}), **cls.parse_overrides(items)})


def split_pairs(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; an item without ``=`` is a :class:`ConfigError`."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"a training option must be written key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def load_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The parsed TOML file ``path`` (``what`` it is, for messages), or ``error`` naming the
    problem: a directory, a missing file, invalid TOML or text."""
    if path.is_dir():
        raise error(f"{what} {str(path)!r} is a directory, not a TOML file")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{what} {str(path)!r} is not valid TOML: {e}") from None


def read_toml(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(train settings, model options)`` from a TOML file.

    The file may put training settings at the top level or under ``[train]``, and
    model options under ``[model]``.
    """
    path = Path(path)
    data = load_toml(path, "config file", ConfigError)
    for table in ("model", "train"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"config file {str(path)!r}: {table} must be a table ([{table}])")
    model = dict(data.pop("model", {}))
    train = dict(data.pop("train", {}))
    train.update(data)
    return train, model


def parse_loss_weights(spec: str) -> dict[str, float]:
    """``"inverse=1,forward=0.1"`` -> ``{"inverse": 1.0, "forward": 0.1, ...}``, every term's
    weight by name (unnamed terms 0): TrainConfig settings. The names are those of the loss
    term objects (:data:`lagrax.training.losses.TERMS`; :func:`lagrax.training.losses.parse_loss`
    gives the terms themselves), an unknown one an error with "did you mean"."""
    try:
        return L.parse_weights(spec)
    except L.LossWeightError as e:
        raise ConfigError(str(e)) from None


# --------------------------------------------------------------------------------------
# Recipes: each model kind's tuned settings live with the model (Spec.RECIPE)
# --------------------------------------------------------------------------------------

# From this many joints on, a dataset is an arm's, and a kind's arm recipe applies.
ARM_DOF = 4
# From this many samples of driven (torque) data on, the arm recipe applies whatever the
# joints: full-batch L-BFGS squeezes the most out of few samples (the character benchmark's
# 2,459), but past some 10,000 each of its epochs costs seconds, and minibatch AdamW with
# learned friction is the better use of the time. Measured on gymnasium's 2-DoF Reacher
# (30,000 samples, MuJoCo's joint damping carries its torques): held-out torque nMSE
# 5.9e-3 with the character recipe (180 s, the budget), 1.5e-10 with the arm recipe (137 s).
LARGE_DATA = 10_000
# the loss terms whose target is the torque: meaningless on passive (torque-free) data
TORQUE_LOSSES = tuple(name for name, term in L.TERMS.items() if term.target == "tau")


def _arm_sized(dataset) -> bool:
    """Whether the arm recipe fits ``dataset``: an arm's, or many samples of driven data."""
    return dataset.dof >= ARM_DOF or (len(dataset) >= LARGE_DATA and not is_passive(dataset))


def recipe(model_name: str, dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default ``(training settings, model options)`` of ``model_name`` on ``dataset``.

    The model kind's :class:`~lagrax.models.spec.Recipe` (``Spec.RECIPE``, looked up in the
    model registry): its ``arm`` variant on arms (at least :data:`ARM_DOF` joints) where the
    kind has one, and on driven data of at least :data:`LARGE_DATA` samples. On passive
    data (:func:`lagrax.data.dataset.is_passive`) the torque losses are off and the forward
    (acceleration) loss is on, for every model. On driven data of an under-actuated system
    (:func:`lagrax.data.dataset.unactuated_joints`) the forward loss is on as well: the
    inverse loss leaves out the unactuated joints' torques, which are zero in every sample
    (:func:`lagrax.training.losses.data_scales`), and their dynamics are learned through the
    accelerations. Measured on the cart-pole (``benchmarks/swing_up.py``, 30 starts on
    perturbed plants): DeLaN with the inverse loss on every joint swung up 0 %.
    """
    tuned = spec_class(model_name).RECIPE
    if tuned.arm is not None and dataset is not None and _arm_sized(dataset):
        tuned = tuned.arm
    settings, options = dict(tuned.settings), dict(tuned.options)
    if dataset is not None and is_passive(dataset):
        settings.update({name: 0.0 for name in TORQUE_LOSSES})
    if dataset is not None and (is_passive(dataset) or unactuated_joints(dataset)):
        settings["forward"] = settings.get("forward") or 1.0
    return settings, options
