"""lagrax: physically consistent dynamics models of mechanical systems, learned from data.

Flow: systems -> datasets -> models -> training -> evaluation, rollout, control.
"""

from lagrax.systems.batching import batched
from lagrax.core.errors import LagraxError
from lagrax.core.version import __version__
from lagrax.models import make_model
from lagrax.models.io import load_model, save_model
from lagrax.systems import (
    LagrangianSystem,
    StructuredSystem,
    System,
    SystemInfo,
    lagrangian_system,
    list_systems,
    structured_system,
    system,
)


__all__ = [
    "LagraxError",
    "__version__",
    "batched",
    "System",
    "SystemInfo",
    "StructuredSystem",
    "LagrangianSystem",
    "system",
    "list_systems",
    "lagrangian_system",
    "structured_system",
    "make_model",
    "save_model",
    "load_model",
]
