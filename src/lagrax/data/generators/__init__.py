"""Generators: datasets simulated from a ground-truth system, one module per kind of motion.

* :mod:`~lagrax.data.generators.passive` -- free rollouts (``tau = 0``) from random or
  given initial states (:class:`PassiveSettings`);
* :mod:`~lagrax.data.generators.excitation` -- finite Fourier series joint trajectories
  (Swevers et al. 1997), torques from inverse dynamics; under-actuated systems driven by
  random torques on their actuated joints (:class:`ExcitationSettings`);
* :mod:`~lagrax.data.generators.characters` -- a two-link arm drawing lowercase letters
  (:class:`CharacterSettings`);
* :mod:`~lagrax.data.generators.states` -- independent random states with their
  accelerations, the LNN paper's data (:class:`StatesSettings`).

Each kind has a frozen settings dataclass holding only the options it takes, and a
``simulate(system, settings, seed, progress)`` returning raw sample arrays;
:mod:`~lagrax.data.generators.registry` holds them by name (:data:`KINDS`) and the one
entry point :func:`generate`, which adds the ground truth
(:func:`~lagrax.data.generators.common.ground_truth`) and the sensor model
(:mod:`lagrax.data.sensors`)::

    generate(system, "excitation", trajectories=6, duration=1.0)
    generate(system, ExcitationSettings(trajectories=6, duration=1.0), seed=1, noise=0.01)

Everything is batched over trajectories (vmap / batched system calls); the only Python
loops run over trajectories or letters, never over samples. This package does not define
the file format (:mod:`lagrax.data.dataset`) or plot (:mod:`lagrax.analysis.plotting`).
"""

from lagrax.data.generators.characters import LETTERS, CharacterSettings
from lagrax.data.generators.common import (
    DEFAULT_VELOCITY,
    PRISMATIC_RANGE,
    ground_truth,
    joint_ranges,
    position_ranges,
    velocity_ranges,
)
from lagrax.data.generators.excitation import (
    LIMIT_MARGIN,
    REGIONS,
    ExcitationSettings,
    fourier_joint_trajectory,
    reference_trajectories,
)
from lagrax.data.generators.passive import PassiveSettings
from lagrax.data.generators.registry import KINDS, Kind, KindSettings, generate
from lagrax.data.generators.states import StatesSettings
from lagrax.data.sensors import MEASURABLE, Sensors, measured_signals

__all__ = [
    "DEFAULT_VELOCITY",
    "KINDS",
    "LETTERS",
    "LIMIT_MARGIN",
    "MEASURABLE",
    "PRISMATIC_RANGE",
    "REGIONS",
    "CharacterSettings",
    "ExcitationSettings",
    "Kind",
    "KindSettings",
    "PassiveSettings",
    "Sensors",
    "StatesSettings",
    "fourier_joint_trajectory",
    "generate",
    "ground_truth",
    "joint_ranges",
    "measured_signals",
    "position_ranges",
    "reference_trajectories",
    "velocity_ranges",
]
