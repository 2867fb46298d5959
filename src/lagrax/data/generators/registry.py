"""The kinds of generated data, by name, and the entry point :func:`generate`.

:data:`KINDS` maps each kind's name to its :class:`Kind`: the kind's settings class (a
frozen dataclass holding only the options that kind takes, checked on construction) and
its ``simulate(system, settings, seed, progress)``, which returns the raw sample arrays.
:func:`generate` resolves a kind by name and builds its settings from keyword options, or
takes a settings object directly; then it adds the ground truth the system provides and
the sensor model (:class:`lagrax.data.sensors.Sensors`), and returns a
:class:`~lagrax.data.dataset.Dataset`.

This module does not simulate anything itself (the kinds' modules do) and does not write
files (:mod:`lagrax.data.dataset`).
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.core.version import __version__
from lagrax.data.dataset import Dataset
from lagrax.data.generators import characters, excitation, passive, states
from lagrax.data.generators.characters import CharacterSettings
from lagrax.data.generators.common import Progress, ground_truth, say
from lagrax.data.generators.excitation import ExcitationSettings
from lagrax.data.generators.passive import PassiveSettings
from lagrax.data.sensors import Sensors
from lagrax.data.generators.states import StatesSettings

#: the settings of any kind
KindSettings = PassiveSettings | ExcitationSettings | CharacterSettings | StatesSettings


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of generated data: its ``name``, its ``settings`` class and its ``simulate``
    function ``(system, settings, seed, progress) -> raw sample arrays``."""

    name: str
    settings: type
    simulate: Callable[..., dict]

    @property
    def options(self) -> tuple[str, ...]:
        """The options the kind takes: the fields of its settings class."""
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def check_options(self, names) -> None:
        """An :class:`~lagrax.core.errors.UnknownNameError` naming any of ``names`` that the kind
        does not take, the kind and the options it takes."""
        unknown = sorted(set(names) - set(self.options))
        if unknown:
            close = difflib.get_close_matches(unknown[0], self.options, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown option(s) {unknown} for kind {self.name!r}.{hint} "
                f"Allowed: {', '.join(self.options)}."
            )

    def make_settings(self, options: Mapping[str, Any]) -> KindSettings:
        """The kind's settings from keyword ``options`` (checked by :meth:`check_options`)."""
        self.check_options(options)
        return self.settings(**options)


KINDS: Mapping[str, Kind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            Kind("passive", PassiveSettings, passive.simulate),
            Kind("excitation", ExcitationSettings, excitation.simulate),
            Kind("characters", CharacterSettings, characters.simulate),
            Kind("states", StatesSettings, states.simulate),
        )
    }
)
_BY_SETTINGS = {kind.settings: kind for kind in KINDS.values()}


def sample_period(dt: float | None, rate: float | None) -> float | None:
    """The sample period from ``dt`` [s] or ``rate`` [Hz] (not both); None if neither is given."""
    if dt is not None and rate is not None:
        raise LagraxError(f"give the sample period dt or the sample rate, not both (dt={dt}, rate={rate})")
    if rate is None:
        return dt
    if not (np.isfinite(rate) and rate > 0):
        raise LagraxError(f"rate must be a positive number of samples per second, got {rate}")
    return 1.0 / rate


# options every kind with a time axis takes; given as None, they keep the kind's default
TIMING = ("trajectories", "duration", "dt")


def resolve(kind: str | KindSettings, options: Mapping[str, Any], rate: float | None = None):
    """``(Kind, settings)`` from a kind's name and its keyword ``options`` (those of
    :data:`TIMING` given as None keep the kind's defaults; ``rate`` [Hz] gives ``dt``), or
    from a settings object (then with no options)."""
    options = {k: v for k, v in options.items() if v is not None or k not in TIMING}
    if not isinstance(kind, str):
        found = _BY_SETTINGS.get(type(kind))
        if found is None:
            raise LagraxError(f"kind must be a name ({', '.join(KINDS)}) or a kind's settings, got {kind!r}")
        extra = sorted(options) + (["rate"] if rate is not None else [])
        if extra:
            raise LagraxError(
                f"generate takes the options of kind {found.name!r} in its settings object; "
                f"got also {', '.join(extra)}"
            )
        return found, kind
    if kind not in KINDS:
        raise UnknownNameError.for_name("dataset kind", kind, KINDS)
    found = KINDS[kind]
    if rate is not None:
        if "dt" not in found.options:
            found.check_options(["rate"])  # a kind without a time axis takes no rate
        options["dt"] = sample_period(options.get("dt"), rate)
    return found, found.make_settings(options)


def generate(
    system,
    kind: str | KindSettings = "excitation",
    *,
    seed: int = 0,
    progress: Progress = None,
    noise: float = 0.0,
    q_noise: float | None = None,
    tau_noise: float | None = None,
    measured: str | Sequence[str] = "all",
    savgol_window: int = 11,
    savgol_polyorder: int = 3,
    rate: float | None = None,
    **options,
) -> Dataset:
    """A :class:`~lagrax.data.dataset.Dataset` of ``system``'s motion, with ground truth.

    Args:
        system: a ground-truth :class:`~lagrax.systems.System`.
        kind: a name in :data:`KINDS` -- ``"passive"`` (:class:`PassiveSettings`),
            ``"excitation"`` (:class:`ExcitationSettings`), ``"characters"``
            (:class:`CharacterSettings`, two-link arm only) or ``"states"``
            (:class:`StatesSettings`) -- or a settings object of one of them.
        options: the kind's settings by name (e.g. ``trajectories=``, ``duration=``,
            ``dt=``, ``harmonics=``, ``letters=``); ``trajectories``, ``duration`` and
            ``dt`` given as None keep the kind's defaults. ``duration`` is per trajectory
            (for characters, per letter).
        seed: seeds the initial states / coefficients / letter placement and the noise.
        progress: optional ``callback(message)`` called as stages begin.
        noise: std of additive Gaussian sensor noise on both ``q`` and ``tau`` (shorthand
            for ``q_noise`` and ``tau_noise`` where those are not given).
        q_noise, tau_noise: std of the noise on ``q`` [rad or m] and ``tau`` [N m or N].
        measured: the signals a robot logs: ``"all"`` (default: ``qd, qdd`` are the exact
            ones, as a simulator knows them) or e.g. ``"q,tau"``: the others are then
            estimated from the noisy ``q`` by Savitzky-Golay differentiation per trajectory
            (``savgol_window`` samples, polynomials of degree ``savgol_polyorder``).
        rate: the sample rate [Hz], instead of ``dt`` (``dt = 1 / rate``; not both).

    ``tau`` is the system's inverse dynamics along the true motion: for a robot with
    friction and rotor inertia, the torque the drives deliver. Noise is added after the
    ground truth (``mass_matrix``, torque terms, energy, momentum) is computed from the
    true ``q, qd, qdd``: those fields stay clean, and the metadata records the sensors
    (``"sensors"``: measured and estimated signals, noise levels, derivative filter).
    """
    found, settings = resolve(kind, options, rate)
    sensors = Sensors.from_options(noise, q_noise, tau_noise, measured, savgol_window, savgol_polyorder)
    if sensors.estimated and not settings.TIME_AXIS:
        raise LagraxError(
            f"kind {found.name!r} has no time axis to differentiate along: every signal must be measured"
        )
    start = time.perf_counter()
    raw = found.simulate(system, settings, seed, progress)
    record, labels = raw.pop("settings"), raw.pop("labels", None)
    say(progress, "ground truth")
    truth = ground_truth(system, raw["q"], raw["qd"], raw["qdd"])
    raw = sensors.measure(raw, seed, settings.dt)
    metadata = _metadata(system, found, settings, raw, seed, noise, sensors, record, start)
    ds = Dataset(**raw, **truth, labels=labels, metadata=metadata)
    return ds.validate(source=f"generated {found.name} data for {system.info.name}")


def _metadata(system, kind: Kind, settings, raw: dict, seed, noise, sensors: Sensors, record, start) -> dict:
    """What :func:`generate` records of a dataset's making (``record``: the kind's own)."""
    return dict(
        system=system.info.to_json(),
        dt=settings.dt,
        rate=1.0 / settings.dt,
        kind=kind.name,
        trajectories=int(np.unique(raw["trajectory"]).size),
        duration=settings.duration,
        seed=seed,
        noise=noise,
        sensors=sensors.to_json(),
        generator=record,
        lagrax_version=__version__,
        generation_seconds=round(time.perf_counter() - start, 3),
    )


__all__ = ["KINDS", "TIMING", "Kind", "KindSettings", "generate", "resolve", "sample_period"]
