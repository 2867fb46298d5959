"""Training as composable parts: a state and a step, epochs, losses, checkpoints, run directories.

* :mod:`~lagrax.training.step`: :class:`TrainState` (a pytree), :func:`make_step`
  (``step(state, batch) -> (state, StepInfo)``, pure and jittable, for AdamW and
  L-BFGS alike), :func:`make_epoch` (a ``lax.scan`` of the step);
* :mod:`~lagrax.training.losses`: the loss terms as objects (``Inverse``, ``Forward``,
  ``Power``, ``Rollout``, ``Canonical``) and their weighted sum (``combine``), against
  the public per-sample protocol only;
* :mod:`~lagrax.training.batches`: data on the device, minibatches and rollout windows;
* :mod:`~lagrax.training.optimizers`: the AdamW schedule and chain, L-BFGS;
* :mod:`~lagrax.training.trainer`: ``train(model, train_ds, val_ds, config)``, the loop
  (validation, early stopping, checkpoints, budgets) over those parts;
* :mod:`~lagrax.training.checkpoint`: atomic checkpoints and bit-identical resume;
* :mod:`~lagrax.training.rundir`: :class:`RunDir`, the files of a run directory, read
  and written in one place;
* :mod:`~lagrax.training.run`: ``run_training`` (what ``lagrax train`` calls);
* :mod:`~lagrax.training.config`: :class:`TrainConfig` (frozen, typed) and ``recipe``,
  which looks up the settings each model kind was tuned with (``Spec.RECIPE``).
"""

from lagrax.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lagrax.training.config import (
    ConfigError,
    TrainConfig,
    parse_loss_weights,
    read_toml,
    recipe,
)
from lagrax.training.losses import Loss, LossUnavailableError, combine, parse_loss
from lagrax.training.optimizers import learning_rate_schedule, make_optimizer
from lagrax.training.run import Evaluator, run_training
from lagrax.training.rundir import RUN_FILES, Run, RunDir, load_run
from lagrax.training.step import StepInfo, TrainState, has_line_search, make_epoch, make_step
from lagrax.training.trainer import TrainingError, TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "run_training",
    "Evaluator",
    "RUN_FILES",
    "RunDir",
    "Run",
    "load_run",
    "TrainState",
    "StepInfo",
    "make_step",
    "make_epoch",
    "has_line_search",
    "TrainingError",
    "LossUnavailableError",
    "CheckpointError",
    "ConfigError",
    "recipe",
    "parse_loss_weights",
    "parse_loss",
    "Loss",
    "combine",
    "read_toml",
    "save_checkpoint",
    "load_checkpoint",
    "make_optimizer",
    "learning_rate_schedule",
]
