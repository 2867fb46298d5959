"""Memory estimates checked up front: work that cannot fit is refused before it starts.

A control run of a long duration, a model of a billion units or an ensemble of a million
members asks XLA (or NumPy) for more memory than the machine has; what follows is an
allocation error deep in a library or an abort of the whole process, never a message a
user can act on. The callers estimate what the work needs, at least (its arrays, in
bytes), and :func:`check_fits` refuses an estimate above the machine's physical memory
with an :class:`~lagrax.core.errors.OutOfRangeError` that says how to make it smaller.

This module does not measure memory while work runs, and its budget is the whole
machine's memory, not what is free now: an estimate is a lower bound, so work it passes
may still not fit.
"""

from __future__ import annotations

import os

from lagrax.core.errors import OutOfRangeError

_UNKNOWN_MEMORY = 1 << 40  # bytes: the budget where the system does not say (1 TiB)


def physical_memory() -> int:
    """The machine's physical memory in bytes (1 TiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return _UNKNOWN_MEMORY


def format_bytes(nbytes: float) -> str:
    """``80e9`` -> ``'74.5 GiB'``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{value:.0f} B"
        value /= 1024
    raise AssertionError("unreachable")


def check_fits(nbytes: float, what: str, advice: str) -> None:
    """Raise :class:`OutOfRangeError` if ``nbytes`` (an estimate of what ``what`` needs)
    exceeds the machine's physical memory; the message ends with ``advice``."""
    budget = physical_memory()
    if not nbytes <= budget:  # also a NaN or an inf estimate
        raise OutOfRangeError(
            f"{what} needs at least {format_bytes(nbytes)} of memory, more than this machine's "
            f"{format_bytes(budget)}; {advice}"
        )


__all__ = ["check_fits", "format_bytes", "physical_memory"]
