"""Checks of the physical parameters that system factories take (shared by every family)."""

from __future__ import annotations

from ..errors import LagraxError


class ParameterError(LagraxError, ValueError):
    """A physical parameter or a task-space target is invalid (negative mass, unreachable point)."""


def check_positive(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every parameter that is not a positive number."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not (isinstance(v, (int, float)) and v > 0)]
    if bad:
        raise ParameterError(f"{system}: parameters must be positive numbers, got {', '.join(bad)}")


def check_nonnegative(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every parameter that is not a number >= 0."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not (isinstance(v, (int, float)) and v >= 0)]
    if bad:
        raise ParameterError(f"{system}: parameters must be non-negative numbers, got {', '.join(bad)}")
