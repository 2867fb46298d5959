"""Checks of the physical parameters that system factories take (shared by every family)."""

from __future__ import annotations

import math

import numpy as np

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


def check_all_finite(system: str, **params) -> None:
    """Raise :class:`ParameterError` naming every numeric parameter (a number, or a list or
    array of numbers) that holds NaN or inf; other values (names, paths, flags) pass.

    :func:`lagrax.systems.system` applies it to every system's parameters, so no factory
    can forget it."""
    bad = [f"{k}={v!r}" for k, v in params.items() if not _finite_if_numeric(v)]
    if bad:
        raise ParameterError(f"{system}: parameters must be finite numbers, got {', '.join(bad)}")


def check_numbers_where_numbers(system: str, defaults: dict, params: dict) -> None:
    """Raise :class:`ParameterError` for a text value given where the factory's default is
    a number (``system("cartpole", mp="abc")``), naming the parameter; lists and arrays
    (per-joint values) are left to :func:`check_all_finite` and the factory."""
    for k, v in params.items():
        default = defaults.get(k)
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and isinstance(v, (str, bytes)):
            raise ParameterError(f"{system}: parameter {k}={v!r} must be a number")


def _finite_if_numeric(v) -> bool:
    """False only for a number, or numbers, with a NaN or an inf among them."""
    if isinstance(v, (str, bytes, bool)) or v is None:
        return True
    try:
        values = np.asarray(v)
    except (ValueError, TypeError):  # ragged or odd objects: the factory judges them
        return True
    if values.dtype.kind not in "fc":
        return True
    return bool(np.all(np.isfinite(values)))


def _is_number(v) -> bool:
    """A finite real number (not a bool, not a string, not NaN or inf)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
