"""Checks of the physical parameters that system factories take (shared by every family)."""

from __future__ import annotations

import math

from lagrax.core.errors import LagraxError


class ParameterError(LagraxError, ValueError):
    """A physical parameter or a task-space target is invalid (negative mass, unreachable point)."""


def check_positive(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every parameter that is not a positive number."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not (_is_number(v) and v > 0)]
    if bad:
        raise ParameterError(f"{system}: parameters must be positive finite numbers, got {', '.join(bad)}")


def check_nonnegative(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every parameter that is not a number >= 0."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not (_is_number(v) and v >= 0)]
    if bad:
        raise ParameterError(
            f"{system}: parameters must be non-negative finite numbers, got {', '.join(bad)}"
        )


def check_finite(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every parameter that is not a finite number."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not _is_number(v)]
    if bad:
        raise ParameterError(f"{system}: parameters must be finite numbers, got {', '.join(bad)}")


def _is_number(v) -> bool:
    """A finite real number (not a bool, not a string, not NaN or inf)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
