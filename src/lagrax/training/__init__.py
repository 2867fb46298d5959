"""Training: losses, the jitted training loop, checkpoints, and the run-directory entry point.

``train(model, train_ds, val_ds, config)`` fits any lagrax model; ``run_training`` is
what ``lagrax train`` calls. See :mod:`lagrax.training.trainer`.
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import PRESETS, ConfigError, TrainConfig, parse_loss_weights, read_toml
from .losses import LossUnavailableError
from .trainer import TrainingError, TrainResult, learning_rate_schedule, make_optimizer, run_training, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "run_training",
    "TrainingError",
    "LossUnavailableError",
    "CheckpointError",
    "ConfigError",
    "PRESETS",
    "parse_loss_weights",
    "read_toml",
    "save_checkpoint",
    "load_checkpoint",
    "make_optimizer",
    "learning_rate_schedule",
]
