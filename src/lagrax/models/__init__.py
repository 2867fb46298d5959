"""Learnable models. Each is a :class:`~lagrax.systems.System`, so a trained model is
used exactly like a ground-truth system.

``make_model(name, info, key=..., **hyperparameters)`` builds one by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..errors import UnknownNameError

# name -> ("module:factory", one-line description); factories are
# ``factory(info: SystemInfo, *, key, **hyperparameters) -> System``.
MODELS: dict[str, tuple[str, str]] = {
    "delan": ("lagrax.models.delan:make_delan", "Deep Lagrangian Network: learned M(q) = L L^T and V(q)"),
    "lnn": ("lagrax.models.lnn:make_lnn", "Lagrangian Neural Network: black-box L(q, qd)"),
    "mlp": ("lagrax.models.mlp:make_mlp", "feed-forward baseline: forward and inverse heads"),
    "hnn": ("lagrax.models.hnn:make_hnn", "Hamiltonian Neural Network: black-box H(q, p)"),
    "hnn_structured": (
        "lagrax.models.hnn:make_structured_hnn",
        "structured HNN: H = 1/2 p^T M^-1(q) p + V(q)",
    ),
}


def model_factory(name: str) -> Callable:
    if name not in MODELS:
        raise UnknownNameError.for_name("model", name, MODELS)
    module, func = MODELS[name][0].split(":")
    return getattr(importlib.import_module(module), func)


def make_model(name: str, info, *, key, **hyperparameters):
    """Build model ``name`` for a system described by ``info`` (a SystemInfo)."""
    return model_factory(name)(info, key=key, **hyperparameters)
