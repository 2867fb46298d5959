"""Training configuration: one dataclass, resolvable from defaults, a TOML file and overrides.

:class:`TrainConfig` holds every setting of a run (optimiser, schedule, loss weights,
validation, early stopping, checkpoints, budgets). It is saved with each run
(``config.json``) so a run can be repeated or resumed. Named presets hold settings that
were tuned for a model (see :data:`PRESETS`).

This module does not train anything (see :mod:`lagrax.training.trainer`).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from pathlib import Path
from typing import Any


from lagrax.data.dataset import is_passive
from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.core.options import Option, Precision, Schedule

SCHEDULES = tuple(s.value for s in Schedule)
LOSS_NAMES = ("inverse", "forward", "power", "rollout", "canonical")


class ConfigError(LagraxError, ValueError):
    """A training setting is unknown or out of range."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run.

    Loss weights (``inverse``, ``forward``, ``power``, ``rollout``, ``canonical``): a
    weight of 0 switches the term off. ``inverse`` and ``forward`` are the torque and
    acceleration residuals normalised per joint by the training-set variance (Lutter &
    Peters 2023, eq. 29); ``power`` compares ``dE/dt`` with ``qd^T (tau - friction)``;
    ``rollout`` integrates the model ``rollout_horizon`` steps from states of the data
    (RK4, ``rollout_substeps`` sub-steps per sample interval) and compares positions and
    velocities; ``canonical`` fits ``(qd, pdot)`` for Hamiltonian models.

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

    def __post_init__(self):
        # names become options here, once; nothing downstream branches on a string
        self.schedule = Schedule.parse(self.schedule)
        self.dtype = Precision.parse(self.dtype)
        self._check_types()
        self.validate()

    def _check_types(self) -> None:
        """Whole numbers where counts are meant, finite real numbers elsewhere (e.g. from TOML)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, hint = getattr(self, f.name), str(hints[f.name])
            if value is None and "None" in hint:
                continue
            if "int" in hint and "float" not in hint:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{f.name} must be a whole number, got {value!r}")
            elif "float" in hint:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
                setattr(self, f.name, float(value))

    def validate(self) -> "TrainConfig":
        """Check every setting's range; raise :class:`ConfigError` naming the first bad one."""
        for name in (
            "epochs",
            "val_every",
            "checkpoint_every",
            "rollout_horizon",
            "rollout_substeps",
            "rollout_batch_size",
            "max_bad_epochs",
            "lbfgs_steps",
            "lbfgs_memory",
        ):
            if int(getattr(self, name)) < 1:
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
        return self

    def _check_ranges(self) -> None:
        """The settings that may not be negative, and the fractions."""
        checks = {
            "weight_decay": self.weight_decay >= 0,
            "max_seconds": self.max_seconds is None or self.max_seconds > 0,
            "patience": self.patience is None or self.patience >= 1,
            "seed": 0 <= self.seed < 2**32,
            "clip_norm": self.clip_norm is None or self.clip_norm > 0,
            "b1": 0 <= self.b1 < 1,
            "b2": 0 <= self.b2 < 1,
            "final_lr_fraction": 0 <= self.final_lr_fraction <= 1,
            "regularization": self.regularization >= 0,
        }
        ranges = {"max_seconds": "positive", "patience": "at least 1", "seed": "in [0, 2**32)"}
        for name, ok in checks.items():
            if not ok:
                what = ranges.get(name, "in [0, 1)" if name in ("b1", "b2") else "non-negative")
                if name == "final_lr_fraction":
                    what = "in [0, 1]"
                elif name == "clip_norm":
                    what = "positive (or none)"
                raise ConfigError(f"{name} must be {what}, got {getattr(self, name)!r}")

    def loss_weights(self) -> dict[str, float]:
        """The weight of each loss term by name (``inverse``, ``forward``, ...)."""
        return {name: float(getattr(self, name)) for name in LOSS_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """Every setting, options written as their names (what ``config.json`` holds)."""
        return {k: (v.value if isinstance(v, Option) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Settings by name (as :meth:`to_dict` writes them); an unknown name is refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UnknownNameError.for_name("training option", unknown[0], known)
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Settings from a TOML file (top level or a ``[train]`` table), then ``overrides``.

        A ``[model]`` table is ignored here; :func:`read_toml` returns it.
        """
        train, _ = read_toml(path)
        return cls.from_dict({**train, **overrides})

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (and checked)."""
        return self.from_dict({**self.to_dict(), **changes})


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
    """``"inverse=1,forward=0.1"`` -> ``{"inverse": 1.0, "forward": 0.1}``; unnamed terms get 0."""
    weights = {name: 0.0 for name in LOSS_NAMES}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in LOSS_NAMES:
            raise UnknownNameError.for_name("loss", name, LOSS_NAMES)
        try:
            weights[name] = float(value) if sep else 1.0
        except ValueError:
            raise ConfigError(f"loss weight for {name!r} must be a number, got {value!r}") from None
    return weights


# Settings tuned on the DeLaN character benchmark (benchmarks/delan_character.py; the
# sweep is summarised in the README): 1,000 AdamW steps at a high learning rate bring
# the model near the solution, then 2,500 full-batch L-BFGS iterations with a long
# memory refine it. On the reference split this measured (DeLaN, 64x2 tanh, shared
# trunk, seed 0): test torque MSE 2e-7 after ~60 s, 1.35e-5 after ~11 s, on a busy
# 2-core machine; L-BFGS memory 20 / 50 / 100 / 200 gave 3e-6 / 7e-7 / 2e-7 / 1.8e-7.
# The baselines get the same optimiser recipe, so the comparison is of models only.
_RECIPE = dict(
    epochs=200, batch_size=512, lr=1e-2, schedule="cosine", lbfgs_epochs=100, lbfgs_steps=25, lbfgs_memory=100
)
# The LNN (issue 11, benchmarks/lnn_double_pendulum.py): AdamW at 3e-3 to a loss of ~1e-2,
# then full-batch L-BFGS, which does most of the fitting (double pendulum, 20,000 states,
# 64x2: normalised loss 8e-4 after ~5 min, 9e-5 after ~23 min on a busy 2-core machine).
# With the free-particle start (LNNSpec.free_particle) the Hessian stays definite.
_LNN = dict(
    epochs=200, batch_size=512, lr=3e-3, schedule="cosine", lbfgs_epochs=30, lbfgs_steps=25, lbfgs_memory=100
)
PRESETS: dict[str, dict[str, Any]] = {
    "delan": dict(_RECIPE, inverse=1.0),
    "clnn": dict(_RECIPE, inverse=1.0),
    "lnn": dict(_LNN, inverse=1.0),
    "mlp": dict(_RECIPE, inverse=1.0, forward=1.0),  # both heads: rollouts use the forward one
    "hnn_structured": dict(_RECIPE, inverse=0.0, canonical=1.0),
}
PRESET_MODEL_OPTIONS: dict[str, dict[str, Any]] = {}

# From this many joints on, a dataset is an arm's, and the arm recipes below apply.
ARM_DOF = 4
# The 7-DoF recipe (issue 9; benchmarks/robot_models.py). On arms the inverse-only loss
# leaves the directions of M that the data excite little unconstrained, and forward
# dynamics divides by them: training both directions fixes that (smallest eigenvalue of
# M within ~1 % of the truth). Full-batch L-BFGS costs seconds per epoch at 7 DoF and
# paid off late if at all, so AdamW alone, sized to about two minutes on 2 cores (about
# 19 ms per step for the 128-wide DeLaN with both losses). Learned viscous + Coulomb
# friction: every geared arm has it, and the coefficients go to ~0 where there is none.
# The MLP baseline gets the same optimiser recipe, so the comparison is of models only.
_ARM = dict(epochs=150, batch_size=512, lr=1e-2, schedule="cosine", lbfgs_epochs=0)
ARM_PRESETS: dict[str, dict[str, Any]] = {
    "delan": dict(_ARM, inverse=1.0, forward=1.0),
    "mlp": dict(_ARM, inverse=1.0, forward=1.0),
}
ARM_MODEL_OPTIONS: dict[str, dict[str, Any]] = {"delan": dict(width=128, friction="coulomb")}


# the loss terms whose target is the torque: meaningless on passive (torque-free) data
TORQUE_LOSSES = ("inverse", "power")


def recipe(model_name: str, dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default ``(training settings, model options)`` of ``model_name`` on ``dataset``.

    Arms (at least :data:`ARM_DOF` joints) get :data:`ARM_PRESETS` /
    :data:`ARM_MODEL_OPTIONS` where a model has one; everything else the presets tuned
    on the DeLaN character data (:data:`PRESETS`, :data:`PRESET_MODEL_OPTIONS`). On
    passive data (:func:`lagrax.data.dataset.is_passive`) the torque losses are off and the forward
    (acceleration) loss is on, for every model.
    """
    if dataset is not None and dataset.dof >= ARM_DOF and model_name in ARM_PRESETS:
        settings, options = dict(ARM_PRESETS[model_name]), dict(ARM_MODEL_OPTIONS.get(model_name, {}))
    else:
        settings = dict(PRESETS.get(model_name, {}))
        options = dict(PRESET_MODEL_OPTIONS.get(model_name, {}))
    if dataset is not None and is_passive(dataset):
        settings.update({name: 0.0 for name in TORQUE_LOSSES})
        settings["forward"] = settings.get("forward") or 1.0
    return settings, options
