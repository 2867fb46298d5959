"""Ground-truth systems and the registry behind :func:`lagrax.system`."""

from __future__ import annotations

from collections.abc import Callable

from lagrax.core.errors import UnknownNameError
from lagrax.systems.base import (
    FunctionLagrangianSystem,
    FunctionStructuredSystem,
    LagrangianSystem,
    StructuredSystem,
    System,
    SystemInfo,
    lagrangian_system,
    structured_system,
)
from lagrax.systems import classic

# name -> (factory or "module:function" imported on first use, one-line description)
REGISTRY: dict[str, tuple[Callable[..., System] | str, str]] = {
    "pendulum": (classic.pendulum, "simple pendulum (1 DoF)"),
    "double_pendulum": (classic.double_pendulum, "double pendulum, LNN paper parameters (2 DoF)"),
    "chain_pendulum": (classic.chain_pendulum, "chain of n pendulums, Finzi et al. 2020 (n DoF, -p n=5)"),
    "two_link_arm": (
        "lagrax.systems.classic:two_link_arm",
        "planar 2-link arm in the vertical plane, DeLaN's simulated robot (2 DoF)",
    ),
    "cartpole": ("lagrax.systems.classic:cartpole", "cart-pole, only the cart actuated (2 DoF)"),
    "furuta": (
        "lagrax.systems.classic:furuta",
        "Furuta pendulum, Quanser Qube-Servo 2, only the arm actuated (2 DoF)",
    ),
    "relativistic_particle": (
        "lagrax.systems.particles:relativistic_particle",
        "relativistic particle in a potential (1 DoF)",
    ),
    "charged_particle": (
        "lagrax.systems.particles:charged_particle",
        "2-D charged particle in a uniform magnetic field (2 DoF)",
    ),
    "panda": ("lagrax.systems.robots:panda", "Franka Emika Panda arm via Pinocchio (7 DoF)"),
    "ur5": ("lagrax.systems.robots:ur5", "Universal Robots UR5 via Pinocchio (6 DoF)"),
    "urdf": ("lagrax.systems.robots:urdf", "any URDF via Pinocchio (path=...)"),
    "mjcf": ("lagrax.systems.mjcf:mjcf", "any MJCF model via MuJoCo (path=...)"),
    "pusher": (
        "lagrax.systems.mjcf:pusher",
        "gymnasium Pusher's arm via MuJoCo, object and goal joints removed; gravity (0, 0, -9.81) "
        "by default, the file has none (7 DoF)",
    ),
}


def _factory(name: str) -> Callable[..., System]:
    factory, _ = REGISTRY[name]
    if isinstance(factory, str):
        import importlib

        module, func = factory.split(":")
        factory = getattr(importlib.import_module(module), func)
    return factory


def register(name: str, factory: Callable[..., System], description: str) -> None:
    """Add a system factory to the registry used by :func:`system`."""
    REGISTRY[name] = (factory, description)


def system(name: str, /, **params) -> System:
    """A ground-truth system by name, e.g. ``system("double_pendulum", g=9.81)``.

    Raises :class:`~lagrax.core.errors.UnknownNameError` for an unknown name and
    ``TypeError`` naming the bad parameter for an unknown parameter.
    """
    if name not in REGISTRY:
        raise UnknownNameError.for_name("system", name, REGISTRY)
    factory = _factory(name)
    try:
        return factory(**params)
    except TypeError as e:
        import inspect

        allowed = list(inspect.signature(factory).parameters)
        raise UnknownNameError(
            f"bad parameters for system {name!r}: {e}. Allowed: {', '.join(allowed)}"
        ) from e


def kinematics_of(info: SystemInfo):
    """The known kinematics (e.g. :class:`~lagrax.systems.classic.PlanarChain`) of the
    registered system that ``info`` describes, rebuilt from its name and parameters.

    Raises :class:`~lagrax.core.errors.NotProvidedError` naming the system when it is not a
    registered system or has no kinematics (only the planar point-mass chains do).
    """
    from lagrax.core.errors import NotProvidedError

    with_kinematics = classic.WITH_KINEMATICS
    if info.name not in REGISTRY:
        raise NotProvidedError(
            f"no known kinematics for system {info.name!r}: it is not a registered system "
            f"(kinematics are known for {', '.join(with_kinematics)})"
        )
    truth = system(info.name, **dict(info.params))
    if not hasattr(truth, "kinematics"):
        raise NotProvidedError(
            f"no known kinematics for system {info.name!r} (known for {', '.join(with_kinematics)})"
        )
    if truth.dof != info.dof:
        raise NotProvidedError(f"system {info.name!r} has {truth.dof} joints, its info says {info.dof}")
    return truth.kinematics()


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
