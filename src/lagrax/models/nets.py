"""Network building blocks shared by every model: input features and MLPs.

Revolute joints enter a network as ``(cos q, sin q)`` so that a model is periodic in
the angle without any ``q mod 2 pi``; prismatic (non-periodic) coordinates enter as
they are. The joint types come from the system's metadata, never hard-coded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..errors import UnknownNameError

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
}


def activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise UnknownNameError.for_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


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


INITS = ("default", "xavier", "orthogonal", "lnn")


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


def mlp(
    in_size: int,
    out_size: int | str,
    width: int,
    depth: int,
    act: str,
    *,
    key: PRNGKeyArray,
    init: str = "default",
    dtype=None,
) -> eqx.nn.MLP:
    """An ``eqx.nn.MLP`` with ``depth`` hidden layers of ``width`` units.

    ``init``: ``"default"`` (equinox's LeCun-uniform), ``"xavier"`` (Glorot normal
    weights, zero biases), ``"orthogonal"`` or ``"lnn"`` (normal weights with the
    per-layer std of :func:`lnn_init_std`, zero biases).
    """
    if init not in INITS:
        raise UnknownNameError.for_name("initialisation", init, INITS)
    net = eqx.nn.MLP(in_size, out_size, width, depth, activation=activation(act), key=key, dtype=dtype)
    if init == "default":
        return net
    initializer = (
        jax.nn.initializers.glorot_normal() if init == "xavier" else jax.nn.initializers.orthogonal()
    )
    keys = jax.random.split(key, len(net.layers))
    layers = []
    for i, (k, layer) in enumerate(zip(keys, net.layers)):
        if init == "lnn":
            std = lnn_init_std(i, len(net.layers), width)
            w = std * jax.random.normal(k, layer.weight.shape, layer.weight.dtype)
        else:
            w = initializer(k, layer.weight.shape, layer.weight.dtype)
        layer = eqx.tree_at(lambda l: l.weight, layer, w)
        if layer.bias is not None:
            layer = eqx.tree_at(lambda l: l.bias, layer, jnp.zeros_like(layer.bias))
        layers.append(layer)
    return eqx.tree_at(lambda m: m.layers, net, tuple(layers))
