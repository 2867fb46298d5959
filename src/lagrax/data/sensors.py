"""Sensors: what a robot logs of simulated motion, and how it is degraded.

A :class:`Sensors` record is the sensor model of a generated dataset: Gaussian noise on
``q`` and ``tau`` (levels of their own) and which of ``q, qd, qdd, tau`` are measured.
With ``measured="q,tau"`` (what a real arm logs) :meth:`Sensors.measure` re-estimates
``qd, qdd`` from the noisy ``q`` by :func:`lagrax.data.signals.savgol_derivatives`, per
trajectory. The generators (:mod:`lagrax.data.generators`) apply it after computing the
ground truth from the true motion, and record :meth:`Sensors.to_json` in the metadata.

This module does not simulate anything, and it does not filter the noise out of ``q``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import numpy as np

from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.data.signals import savgol_derivatives

MEASURABLE = ("q", "qd", "qdd", "tau")


def measured_signals(measured: str | Sequence[str] | None = "all") -> tuple[str, ...]:
    """The signals a robot logs, from ``"all"`` (default) or names like ``"q,tau"``.

    Each of ``q, qd, qdd, tau`` may be named; ``q`` and ``tau`` must be (the estimates come
    from ``q``, and ``tau`` is what the drives log). Returned in the order of ``MEASURABLE``.
    """
    if measured is None or (isinstance(measured, str) and measured.strip().lower() == "all"):
        return MEASURABLE
    items = measured.split(",") if isinstance(measured, str) else [str(x) for x in measured]
    names = [x.strip() for x in items if x.strip()]
    for name in names:
        if name not in MEASURABLE:
            raise UnknownNameError.for_name("measured signal", name, MEASURABLE + ("all",))
    missing = [x for x in ("q", "tau") if x not in names]
    if missing:
        raise LagraxError(
            f"measured signals must include q and tau (got {', '.join(names) or 'none'}): the signals not "
            "measured are estimated from q, and tau is what the drives log"
        )
    return tuple(x for x in MEASURABLE if x in names)


def _check_level(name: str, value) -> None:
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value >= 0):
        raise LagraxError(f"{name} must be a non-negative number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Sensors:
    """The sensor model: noise std ``q_noise`` [rad or m] on ``q`` and ``tau_noise`` [N m or N]
    on ``tau``; the ``measured`` signals (a subset of :data:`MEASURABLE` holding ``q`` and
    ``tau``, or ``"all"``); the Savitzky-Golay ``window`` (odd, samples) and ``polyorder``
    that estimate the signals not measured from the noisy ``q``."""

    q_noise: float = 0.0
    tau_noise: float = 0.0
    measured: tuple[str, ...] = MEASURABLE
    window: int = 11
    polyorder: int = 3

    def __post_init__(self):
        _check_level("q_noise", self.q_noise)
        _check_level("tau_noise", self.tau_noise)
        object.__setattr__(self, "measured", measured_signals(self.measured))
        window, polyorder = self.window, self.polyorder
        if self.estimated and not (int(window) == window and window % 2 == 1 and 0 <= polyorder < window):
            raise LagraxError(
                f"the Savitzky-Golay window must be an odd number of samples larger than polyorder; got "
                f"window={window}, polyorder={polyorder}"
            )

    @classmethod
    def from_options(
        cls,
        noise: float = 0.0,
        q_noise: float | None = None,
        tau_noise: float | None = None,
        measured: str | Sequence[str] | None = "all",
        savgol_window: int = 11,
        savgol_polyorder: int = 3,
    ) -> Sensors:
        """The sensors from :func:`lagrax.data.generators.generate`'s keywords: ``noise`` is the
        level of ``q_noise`` and ``tau_noise`` where those are not given."""
        _check_level("noise", noise)
        return cls(
            q_noise=noise if q_noise is None else q_noise,
            tau_noise=noise if tau_noise is None else tau_noise,
            measured=measured,
            window=savgol_window,
            polyorder=savgol_polyorder,
        )

    @property
    def estimated(self) -> list[str]:
        """The signals not measured, in the order of :data:`MEASURABLE`."""
        return [x for x in MEASURABLE if x not in self.measured]

    def to_json(self) -> dict:
        """The record of the sensors in a dataset's metadata (under ``"sensors"``)."""
        estimated = self.estimated
        derivatives = None
        if estimated:
            derivatives = dict(method="savgol", window=int(self.window), polyorder=int(self.polyorder))
        return dict(
            measured=list(self.measured),
            estimated=estimated,
            q_noise=float(self.q_noise),
            tau_noise=float(self.tau_noise),
            derivatives=derivatives,
            ground_truth="noise-free, from the true q, qd, qdd",
        )

    def measure(self, raw: dict, seed: int, dt: float) -> dict:
        """``raw`` (flat sample arrays ``q, qd, qdd, tau (N, n)``, ``trajectory (N,)``) as logged.

        Noise comes from ``default_rng([seed, 1])``, ``q`` first, then ``tau``. ``qd, qdd`` not
        measured become Savitzky-Golay derivatives (sample period ``dt``) of the noisy ``q``,
        per trajectory. Returns a new dict; ``raw`` is left as it was.
        """
        out = dict(raw)
        rng = np.random.default_rng([seed, 1])
        if self.q_noise > 0:
            out["q"] = out["q"] + self.q_noise * rng.standard_normal(out["q"].shape)
        if self.tau_noise > 0 and out.get("tau") is not None:
            out["tau"] = out["tau"] + self.tau_noise * rng.standard_normal(out["tau"].shape)
        estimated = self.estimated
        if estimated:
            qd, qdd = savgol_derivatives(
                dt, out["q"], out["trajectory"], int(self.window), int(self.polyorder)
            )
            out.update({k: v for k, v in (("qd", qd), ("qdd", qdd)) if k in estimated})
        return out


__all__ = ["MEASURABLE", "Sensors", "measured_signals"]
