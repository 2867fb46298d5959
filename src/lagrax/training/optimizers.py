"""The optimisers a run uses, built from its :class:`~lagrax.training.config.TrainConfig`.

* :func:`learning_rate_schedule`: the AdamW learning rate per step, chosen by the
  config's :class:`~lagrax.core.options.Schedule` member;
* :func:`make_optimizer`: global-norm clipping, then AdamW on that schedule;
* :func:`make_lbfgs`: optax's L-BFGS (zoom line search) of the refinement phase.

This module only builds optax transformations; stepping them is
:func:`lagrax.training.step.make_step`.
"""

from __future__ import annotations

import optax

from lagrax.core.options import Schedule
from lagrax.training.config import TrainConfig


def _cosine(config: TrainConfig, total: int, warmup: int) -> optax.Schedule:
    if warmup == 0:
        return optax.cosine_decay_schedule(config.lr, total, alpha=config.final_lr_fraction)
    end = config.lr * config.final_lr_fraction
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total, end)


def _onecycle(config: TrainConfig, total: int, warmup: int) -> optax.Schedule:
    pct = config.warmup if config.warmup > 0 else 0.3
    return optax.cosine_onecycle_schedule(
        total, config.lr, pct_start=pct, div_factor=25.0, final_div_factor=25.0 / config.final_lr_fraction
    )


def _constant(config: TrainConfig, total: int, warmup: int) -> optax.Schedule:
    if warmup == 0:
        return optax.constant_schedule(config.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, warmup), optax.constant_schedule(config.lr)], [warmup]
    )


SCHEDULE_BUILDERS = {Schedule.COSINE: _cosine, Schedule.ONECYCLE: _onecycle, Schedule.CONSTANT: _constant}


def learning_rate_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    """The learning rate per optimiser step for ``config.schedule`` over ``total_steps``
    (``config.warmup`` of them warming up linearly from 0)."""
    total = max(int(total_steps), 1)
    return SCHEDULE_BUILDERS[config.schedule](config, total, int(config.warmup * total))


def make_optimizer(config: TrainConfig, total_steps: int, decay_mask=None) -> optax.GradientTransformation:
    """AdamW with the configured schedule, after global-norm gradient clipping.

    ``decay_mask``: a pytree of booleans shaped as the parameters (or ``None``: every
    parameter), the ones weight decay applies to (a model's ``decay_mask()``)."""
    adamw = optax.adamw(
        learning_rate_schedule(config, total_steps),
        b1=config.b1,
        b2=config.b2,
        weight_decay=config.weight_decay,
        mask=decay_mask,
    )
    if config.clip_norm is None or config.clip_norm <= 0:
        return adamw
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)


def make_lbfgs(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """Full-batch L-BFGS with ``config.lbfgs_memory`` stored pairs and a zoom line search."""
    return optax.lbfgs(memory_size=config.lbfgs_memory)
