"""Exceptions raised by lagrax.

Every error a user can cause derives from :class:`LagraxError`, so the command line
can turn it into a one-line message and a non-zero exit code, and library users can
catch one type. Each subclass also derives from the builtin it refines
(``ValueError``, ``KeyError`` ...) so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations

from typing import Any

import difflib
from collections.abc import Iterable


class LagraxError(Exception):
    """Base class of every error lagrax raises on bad input."""


class ShapeError(LagraxError, ValueError):
    """An array has the wrong shape (e.g. a wrong number of joints)."""


class UnknownNameError(LagraxError, ValueError):
    """An unknown system, model, kind or option name was given."""

    @classmethod
    def for_name(cls, what: str, name: str, known: Iterable[str]) -> "UnknownNameError":
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return cls(f"unknown {what} {name!r}.{hint} Known: {', '.join(known)}.")


class DatasetError(LagraxError, ValueError):
    """A dataset is malformed: missing keys, NaNs, inconsistent lengths or joints."""


class NonFiniteInputError(LagraxError, ValueError):
    """An input array holds NaN or inf (or complex values) where real, finite numbers are needed."""


class OutOfRangeError(LagraxError, ValueError):
    """A setting is out of its allowed range (e.g. a non-positive time step)."""


class NumericalError(LagraxError, ArithmeticError):
    """A computation gave a non-finite result for finite inputs.

    A rollout that stops sets ``partial`` (what was computed, NaN after the stop),
    ``time`` and ``state`` (where it stopped); they are None otherwise.
    """

    partial: Any = None
    time: float | None = None
    state: Any = None


class SingularHessianError(NumericalError):
    """The Hessian d^2L/dqd^2 of a Lagrangian is singular, so accelerations are undefined."""


class NotProvidedError(LagraxError, NotImplementedError):
    """A model cannot provide a quantity (e.g. a black-box MLP has no mass matrix)."""


class FileExistsLagraxError(LagraxError, FileExistsError):
    """An output path exists and would be overwritten without ``force``."""
