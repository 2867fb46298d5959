"""Network building blocks shared by every model: input features and MLPs.

Revolute joints enter a network as ``(cos q, sin q)`` so that a model is periodic in
the angle without any ``q mod 2 pi``; prismatic (non-periodic) coordinates enter as
they are. The joint types come from the system's metadata, never hard-coded.

:func:`network` is the one place where weights are drawn: always in float32, then cast
to the spec's :class:`~lagrax.core.options.Precision` (``jax.random`` gives different numbers
in float64, and a float32 and a float64 model built with one key must be the same model
up to rounding). Activations and initialisations are :mod:`lagrax.core.options` members; the
activation member is the function the network calls.

Not here: what the networks mean (the model modules), friction (:mod:`.friction`).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from lagrax.core.options import Activation, Init, Precision


def feature_size(joint_types: Sequence[str]) -> int:
    """Length of :func:`joint_features` for these joint types."""
    return sum(2 if t == "revolute" else 1 for t in joint_types)


def joint_features(q: Float[Array, " n"], joint_types: Sequence[str]) -> Float[Array, " f"]:
    """``[cos q_i, sin q_i]`` for revolute joints and ``q_i`` for the others, concatenated."""
    parts = []
    for i, t in enumerate(joint_types):
        if t == "revolute":
            parts += [jnp.cos(q[i : i + 1]), jnp.sin(q[i : i + 1])]
        else:
            parts.append(q[i : i + 1])
    return jnp.concatenate(parts)


def lnn_init_std(layer: int, n_layers: int, width: int) -> float:
    """Weight std of layer ``layer`` (0-based) of ``n_layers`` in Cranmer et al. 2020, Appendix
    ("optimal initialisation", fitted so that the accelerations of an untrained LNN are ~N(0, 1)):
    ``2.2 / sqrt(w)`` for the first layer, ``0.58 i / sqrt(w)`` for hidden layer ``i`` and
    ``w / sqrt(w)`` for the output layer, with ``w`` the hidden width."""
    if layer == 0:
        scale = 2.2
    elif layer == n_layers - 1:
        scale = float(width)
    else:
        scale = 0.58 * layer
    return scale / width**0.5


def _initialised(net: eqx.nn.MLP, init: Init, width: int, key: PRNGKeyArray) -> eqx.nn.MLP:
    """``net`` with weights redrawn by ``init`` (one key per layer) and zero biases."""
    initializer = (
        jax.nn.initializers.glorot_normal() if init is Init.XAVIER else jax.nn.initializers.orthogonal()
    )
    keys = jax.random.split(key, len(net.layers))
    layers = []
    for i, (k, layer) in enumerate(zip(keys, net.layers)):
        if init is Init.LNN:
            std = lnn_init_std(i, len(net.layers), width)
            w = std * jax.random.normal(k, layer.weight.shape, layer.weight.dtype)
        else:
            w = initializer(k, layer.weight.shape, layer.weight.dtype)
        layer = eqx.tree_at(lambda l: l.weight, layer, w)
        if layer.bias is not None:
            layer = eqx.tree_at(lambda l: l.bias, layer, jnp.zeros_like(layer.bias))
        layers.append(layer)
    return eqx.tree_at(lambda m: m.layers, net, tuple(layers))


def mlp(
    in_size: int,
    out_size: int | str,
    width: int,
    depth: int,
    activation: Activation,
    *,
    key: PRNGKeyArray,
    init: Init = Init.DEFAULT,
    final_activation: Activation | None = None,
    dtype=None,
) -> eqx.nn.MLP:
    """An ``eqx.nn.MLP`` with ``depth`` hidden layers of ``width`` units, in ``dtype``.

    ``init``: ``DEFAULT`` (equinox's LeCun-uniform), ``XAVIER`` (Glorot normal weights,
    zero biases), ``ORTHOGONAL`` or ``LNN`` (normal weights with the per-layer std of
    :func:`lnn_init_std`, zero biases). ``final_activation`` (default none) follows the
    output layer. Models use :func:`network`, which fixes the dtype rule.
    """
    extra = {} if final_activation is None else {"final_activation": final_activation}
    net = eqx.nn.MLP(in_size, out_size, width, depth, activation=activation, key=key, dtype=dtype, **extra)
    return net if init is Init.DEFAULT else _initialised(net, init, width, key)


def network(
    in_size: int,
    out_size: int | str,
    width: int,
    depth: int,
    activation: Activation,
    *,
    key: PRNGKeyArray,
    init: Init,
    precision: Precision,
    final_activation: Activation | None = None,
) -> eqx.nn.MLP:
    """:func:`mlp` drawn in float32 and cast to ``precision`` (see the module docstring)."""
    net = mlp(
        in_size,
        out_size,
        width,
        depth,
        activation,
        key=key,
        init=init,
        final_activation=final_activation,
        dtype=jnp.float32,
    )
    return precision.cast(net)
