"""Ground-truth systems and the registry behind :func:`lagrax.system`."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownNameError
from .base import (
    FunctionLagrangianSystem,
    FunctionStructuredSystem,
    LagrangianSystem,
    StructuredSystem,
    System,
    SystemInfo,
    lagrangian_system,
    structured_system,
)
from . import classic

# name -> (factory, one-line description, dof or None if it depends on parameters)
REGISTRY: dict[str, tuple[Callable[..., System], str]] = {
    "pendulum": (classic.pendulum, "simple pendulum (1 DoF)"),
    "double_pendulum": (classic.double_pendulum, "double pendulum, LNN paper parameters (2 DoF)"),
}


def register(name: str, factory: Callable[..., System], description: str) -> None:
    """Add a system factory to the registry used by :func:`system`."""
    REGISTRY[name] = (factory, description)


def system(name: str, **params) -> System:
    """A ground-truth system by name, e.g. ``system("double_pendulum", g=9.81)``.

    Raises :class:`~lagrax.errors.UnknownNameError` for an unknown name and
    ``TypeError`` naming the bad parameter for an unknown parameter.
    """
    if name not in REGISTRY:
        raise UnknownNameError.for_name("system", name, REGISTRY)
    factory, _ = REGISTRY[name]
    try:
        return factory(**params)
    except TypeError as e:
        import inspect

        allowed = list(inspect.signature(factory).parameters)
        raise UnknownNameError(f"bad parameters for system {name!r}: {e}. Allowed: {', '.join(allowed)}") from e


def list_systems() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered system."""
    return [(name, desc) for name, (_, desc) in REGISTRY.items()]


__all__ = [
    "System",
    "SystemInfo",
    "StructuredSystem",
    "LagrangianSystem",
    "FunctionLagrangianSystem",
    "FunctionStructuredSystem",
    "lagrangian_system",
    "structured_system",
    "system",
    "list_systems",
    "register",
    "REGISTRY",
]
