"""Training as a state and a step: the pure, jittable pieces every learner reuses.

* :class:`TrainState` is a pytree: the trainable parameters, the optimiser state, the
  number of applied updates and a PRNG key. It goes through ``jit``, ``vmap`` (an
  ensemble is a state with stacked leaves) and ``lax.scan`` (an online learner's carry).
* :func:`make_step` turns ``loss_fn(params, batch)`` and an optax optimiser into
  ``step(state, batch) -> (state, StepInfo)``: ``value_and_grad``, the optax update, and
  a non-finite step skipped (parameters and optimiser state unchanged, flagged). The
  same step serves first-order optimisers and optax's L-BFGS, whose line search needs
  the value, the gradient and the loss function (``GradientTransformationExtraArgs``).
* :func:`make_epoch` scans a step over the batches a ``draw`` function picks from the
  data (e.g. minibatches by permutation).

This module knows nothing about lagrax models, datasets, losses, files or time: the
loop that runs epochs, validates and checkpoints is :mod:`lagrax.training.trainer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int, PRNGKeyArray, PyTree, Scalar


class TrainState(eqx.Module):
    """Everything a step changes: ``params`` (a pytree of arrays, or a whole model),
    ``opt_state`` (the optimiser's), ``step`` (updates applied so far; skipped steps do
    not count) and ``key`` (the run's PRNG key, from which epochs fold their own)."""

    params: PyTree
    opt_state: PyTree
    step: Int[Array, ""]
    key: PRNGKeyArray

    @classmethod
    def create(cls, params: PyTree, optimizer: optax.GradientTransformation, key: PRNGKeyArray) -> TrainState:
        """The state before the first step: ``optimizer.init`` of the trainable arrays of ``params``."""
        return cls(
            params, optimizer.init(eqx.filter(params, eqx.is_inexact_array)), jnp.zeros((), jnp.int32), key
        )


class StepInfo(NamedTuple):
    """What a step reports: the loss before the update, whether the update was applied
    (``finite``: loss, gradient and new parameters all finite) and the loss's auxiliary
    output (``None`` without ``has_aux``)."""

    loss: Scalar
    finite: Bool[Array, ""]
    aux: Any


Step = Callable[[TrainState, Any], tuple[TrainState, StepInfo]]


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every floating-point array of ``tree`` is finite (True for no arrays)."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def tree_where(pred: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    """``new`` where ``pred``, else ``old``, array by array (other leaves from ``new``)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b) if eqx.is_array(a) else a, new, old)


def has_line_search(opt_state: PyTree) -> bool:
    """Whether ``opt_state`` holds a line search's ``value`` and ``grad`` (optax's L-BFGS):
    then a step passes ``value``, ``grad`` and ``value_fn`` to the update and reuses the
    stored value and gradient."""
    try:
        return (
            optax.tree.get(opt_state, "value") is not None and optax.tree.get(opt_state, "grad") is not None
        )
    except (KeyError, ValueError):
        return False


def _update(optimizer, loss_fn, params, batch, opt_state, has_aux: bool):
    """``(loss, aux, grads, updates, new optimiser state)`` of one step."""
    trainable = eqx.filter(params, eqx.is_inexact_array)
    if not has_line_search(opt_state):
        (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, new_opt_state = optimizer.update(grads, opt_state, trainable)
        return loss, aux, grads, updates, new_opt_state

    def value_fn(p):
        return loss_fn(p, batch)[0]

    # the line search evaluated value and gradient at these parameters last step: reuse them
    loss, grads = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
    updates, new_opt_state = optimizer.update(
        grads, opt_state, trainable, value=loss, grad=grads, value_fn=value_fn
    )
    return loss, None, grads, updates, new_opt_state


def make_step(
    loss_fn: Callable[[PyTree, Any], Any],
    optimizer: optax.GradientTransformation,
    *,
    has_aux: bool = False,
) -> Step:
    """``step(state, batch) -> (state, StepInfo)``, pure and jittable.

    Args:
        loss_fn: ``loss_fn(params, batch)`` -> a scalar (or ``(scalar, aux)`` with
            ``has_aux``); ``params`` is ``state.params`` (its floating-point arrays are
            differentiated, so it may be a whole equinox model).
        optimizer: an optax transformation. One with a line search (optax's L-BFGS, a
            ``GradientTransformationExtraArgs``, see :func:`has_line_search`) gets
            ``value``, ``grad`` and ``value_fn``, and the value and gradient its line
            search stored are reused; ``aux`` is then ``None`` and ``params`` must be a
            pytree of arrays (e.g. ``eqx.partition(model, eqx.is_inexact_array)[0]``).
        has_aux: whether ``loss_fn`` returns ``(loss, aux)``.

    A step whose loss, gradient or new parameters are not finite leaves the parameters
    and optimiser state exactly as they were and reports ``finite = False``.
    """

    def with_aux(params, batch):
        out = loss_fn(params, batch)
        return out if has_aux else (out, None)

    def step(state: TrainState, batch) -> tuple[TrainState, StepInfo]:
        loss, aux, grads, updates, new_opt_state = _update(
            optimizer, with_aux, state.params, batch, state.opt_state, has_aux
        )
        new_params = eqx.combine(
            optax.apply_updates(eqx.filter(state.params, eqx.is_inexact_array), updates), state.params
        )
        finite = jnp.isfinite(loss) & all_finite(grads) & all_finite(new_params)
        new_state = TrainState(
            params=tree_where(finite, new_params, state.params),
            opt_state=tree_where(finite, new_opt_state, state.opt_state),
            step=state.step + finite.astype(state.step.dtype),
            key=state.key,
        )
        return new_state, StepInfo(loss, finite, aux)

    return step


def make_epoch(
    step: Step,
    draw: Callable[[PRNGKeyArray, Any], PyTree],
    gather: Callable[[Any, Any], Any],
) -> Callable[[TrainState, Any, PRNGKeyArray], tuple[TrainState, StepInfo]]:
    """``epoch(state, data, key) -> (state, infos)``: one ``lax.scan`` of ``step``.

    ``draw(key, data)`` picks the epoch's batches as a pytree with one row per step
    (e.g. minibatch indices from a permutation); ``gather(data, row)`` makes a step's
    batch from one row. ``infos`` stacks each step's :class:`StepInfo`.
    """

    def epoch(state: TrainState, data, key: PRNGKeyArray):
        return jax.lax.scan(lambda s, row: step(s, gather(data, row)), state, draw(key, data))

    return epoch
