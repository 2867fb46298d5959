"""Ground-truth systems and the registry behind :func:`lagrax.system`.

The registry holds the factories themselves. Importing it stays cheap: the factories
of :mod:`~lagrax.systems.robots` (Pinocchio) and :mod:`~lagrax.systems.mjcf` (MuJoCo)
import their optional engines only when they build a system.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from lagrax.core.errors import NotProvidedError, UnknownNameError
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
from lagrax.systems import classic, mjcf, particles, robots
from lagrax.systems.parameters import check_all_finite, check_numbers_where_numbers

# name -> (factory, one-line description)
REGISTRY: dict[str, tuple[Callable[..., System], str]] = {
    "pendulum": (classic.pendulum, "simple pendulum (1 DoF)"),
    "double_pendulum": (classic.double_pendulum, "double pendulum, LNN paper parameters (2 DoF)"),
    "chain_pendulum": (classic.chain_pendulum, "chain of n pendulums, Finzi et al. 2020 (n DoF, -p n=5)"),
    "two_link_arm": (
        classic.two_link_arm,
        "planar 2-link arm in the vertical plane, DeLaN's simulated robot (2 DoF)",
    ),
    "cartpole": (classic.cartpole, "cart-pole, only the cart actuated (2 DoF)"),
    "furuta": (classic.furuta, "Furuta pendulum, Quanser Qube-Servo 2, only the arm actuated (2 DoF)"),
    "relativistic_particle": (
        particles.relativistic_particle,
        "relativistic particle in a potential (1 DoF)",
    ),
    "charged_particle": (
        particles.charged_particle,
        "2-D charged particle in a uniform magnetic field (2 DoF)",
    ),
    "panda": (robots.panda, "Franka Emika Panda arm via Pinocchio (7 DoF)"),
    "ur5": (robots.ur5, "Universal Robots UR5 via Pinocchio (6 DoF)"),
    "urdf": (robots.urdf, "any URDF via Pinocchio (path=...)"),
    "mjcf": (mjcf.mjcf, "any MJCF model via MuJoCo (path=...)"),
    "pusher": (
        mjcf.pusher,
        "gymnasium Pusher's arm via MuJoCo, object and goal joints removed; gravity (0, 0, -9.81) "
        "by default, the file has none (7 DoF)",
    ),
    "inverted_double_pendulum": (
        mjcf.inverted_double_pendulum,
        "gymnasium's double pendulum on a cart via MuJoCo, only the cart actuated (3 DoF)",
    ),
}


def check_parameters(name: str, factory: Callable[..., System], params: dict) -> None:
    """Raise :class:`~lagrax.core.errors.UnknownNameError` unless ``factory`` (registered as
    ``name``) accepts ``params`` by name and they include every parameter it requires."""
    signature = inspect.signature(factory)
    accepted = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return
    named = [k for k, p in accepted.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in params if k not in named]
    missing = [k for k in named if accepted[k].default is accepted[k].empty and k not in params]
    if unknown or missing:
        close = difflib.get_close_matches(unknown[0], named, n=1) if unknown else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problem = f"unknown parameter {unknown[0]!r}{hint}" if unknown else f"missing {missing[0]!r}"
        raise UnknownNameError(
            f"bad parameters for system {name!r}: {problem}. Allowed: {', '.join(named) or '(none)'}"
        )
    check_numbers_where_numbers(name, {k: accepted[k].default for k in named}, params)


def register(name: str, factory: Callable[..., System], description: str) -> None:
    """Add a system factory to the registry used by :func:`system`."""
    REGISTRY[name] = (factory, description)


def system(name: str, /, **params) -> System:
    """A ground-truth system by name, e.g. ``system("double_pendulum", g=9.81)``.

    Raises :class:`~lagrax.core.errors.UnknownNameError` for an unknown name, and for an
    unknown or missing parameter (naming it and the allowed ones), checked against the
    factory's signature before it runs: an error raised inside the factory (a
    ``TypeError`` included) reaches the caller as it is. A parameter holding NaN or inf
    is a :class:`~lagrax.systems.parameters.ParameterError`, for every system.
    """
    if name not in REGISTRY:
        raise UnknownNameError.for_name("system", name, REGISTRY)
    factory, _ = REGISTRY[name]
    check_parameters(name, factory, params)
    check_all_finite(name, **params)
    return factory(**params)


def kinematics_of(info: SystemInfo):
    """The known kinematics (e.g. :class:`~lagrax.systems.classic.PlanarChain`) of the
    registered system that ``info`` describes, rebuilt from its name and parameters.

    Raises :class:`~lagrax.core.errors.NotProvidedError` naming the system when it is not a
    registered system or has no kinematics (only the planar point-mass chains do).
    """
    with_kinematics = classic.WITH_KINEMATICS
    if info.name not in REGISTRY:
        raise NotProvidedError(
            f"no known kinematics for system {info.name!r}: it is not a registered system "
            f"(kinematics are known for {', '.join(with_kinematics)})"
        )
    truth = system(info.name, **dict(info.params))
    if not truth.provides("kinematics"):
        raise NotProvidedError(
            f"no known kinematics for system {info.name!r} (known for {', '.join(with_kinematics)})"
        )
    if truth.dof != info.dof:
        raise NotProvidedError(f"system {info.name!r} has {truth.dof} joints, its info says {info.dof}")
    return truth.kinematics()  # type: ignore[attr-defined]  # a capability, checked above


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
