"""Signals: derivatives of logged positions (Savitzky-Golay), per trajectory.

:func:`savgol_derivatives` estimates ``qd, qdd`` from sampled positions ``q`` for logs
that hold only positions (a real robot's encoders); :meth:`lagrax.data.dataset.Dataset.from_positions`
uses it. It sits in a module of its own so that :mod:`lagrax.data.dataset` (the file format)
and :mod:`lagrax.data.generators` need not import each other.

This module does not filter noise out of ``q`` itself, and it never differentiates
across a trajectory boundary.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from lagrax.core.errors import DatasetError, LagraxError, ShapeError


def sample_period(t_or_dt, trajectory: np.ndarray) -> float:
    """The sample period: ``t_or_dt`` itself, or the median step of times ``(N,)`` within
    trajectories; raises :class:`DatasetError` if it cannot be found or is not positive."""
    if np.ndim(t_or_dt) == 0:
        dt = float(t_or_dt)
    else:
        t = np.asarray(t_or_dt, dtype=float)
        steps = np.diff(t)[trajectory[1:] == trajectory[:-1]]
        if steps.size == 0:
            raise DatasetError("cannot infer dt: no two consecutive samples of one trajectory")
        dt = float(np.median(steps))
    if not dt > 0:
        raise DatasetError(f"sample period must be positive, got {dt}")
    return dt


def savgol_derivatives(
    t_or_dt,
    q: np.ndarray,
    trajectory: np.ndarray | None = None,
    window: int = 11,
    polyorder: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay estimates of ``qd, qdd`` ``(N, n)`` from positions ``q (N, n)``.

    ``t_or_dt`` is the sample period, or the times ``(N,)`` (the period is then their
    median step within trajectories; samples must be uniformly spaced). The filter runs
    per trajectory (all joints at once) and never across trajectory boundaries; a
    trajectory shorter than ``window`` uses the longest odd window it has.
    """
    q = np.asarray(q, dtype=float)
    if q.ndim != 2:
        raise ShapeError(f"q must have shape (N, n), got {q.shape}")
    trajectory = np.zeros(len(q), np.int64) if trajectory is None else np.asarray(trajectory)
    dt = sample_period(t_or_dt, trajectory)
    if not 0.0 < dt * dt < float("inf") or not 1.0 / (dt * dt) < float("inf"):  # the filter scales by dt**-2
        raise DatasetError(
            f"sample period {dt:.6g} s is too large or too small to differentiate positions by; "
            "are the time stamps in seconds?"
        )
    if window % 2 == 0 or window <= polyorder:
        raise LagraxError(
            f"window must be odd and larger than polyorder; got window={window}, polyorder={polyorder}"
        )
    qd, qdd = np.empty_like(q), np.empty_like(q)
    for i in np.unique(trajectory):  # one filter call per trajectory, all samples at once
        m = trajectory == i
        k = int(m.sum())
        w = min(window, k if k % 2 else k - 1)
        if w <= polyorder:
            raise DatasetError(f"trajectory {i} has {k} samples, too few for polyorder={polyorder}")
        qd[m] = scipy.signal.savgol_filter(q[m], w, polyorder, deriv=1, delta=dt, axis=0, mode="interp")
        qdd[m] = scipy.signal.savgol_filter(q[m], w, polyorder, deriv=2, delta=dt, axis=0, mode="interp")
    return qd, qdd


__all__ = ["sample_period", "savgol_derivatives"]
