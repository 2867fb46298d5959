"""Training losses: per-sample residuals of a model against recorded motion, as objects.

A loss term is a small frozen object (:class:`Term`): its name, its weight, the dataset
fields it reads, the field it fits (its target), the quantities the model must provide
(names from :data:`lagrax.systems.base.QUANTITIES`, asked with ``model.provides``) and its
per-sample residual, normalised per joint by the training set's variance so that joints
with large torques do not dominate (Lutter & Peters 2023, eq. 29). Terms compose as
Optax's transformations chain: ``combine(Inverse(1.0), Power(0.1))`` is a :class:`Loss`,
the weighted sum, which batches each term with ``vmap`` and checks a model and a dataset
against what its terms need. The terms:

* ``inverse``: ``tau_model(q, qd, qdd) - tau``;
* ``forward``: ``qdd_model(q, qd, tau) - qdd`` (LNNs: the Hessian solve's singular
  samples are masked out and counted, never turned into NaN);
* ``power``: ``dE/dt - qd^T (tau - friction)``, energy conservation with friction;
* ``rollout``: positions and velocities after integrating the model a few steps
  from a recorded state under the recorded torques (the evaluation's RK4 scan);
* ``canonical``: Hamiltonian models' ``(qd, pdot)`` against the data's ``(qd, pdot)``.

The per-sample terms are public and use only the public per-sample protocol of
:class:`~lagrax.systems.base.System` (``inverse_dynamics``, ``solve_forward_dynamics``,
``energy_rate``, ``power``, ``canonical_time_derivative``, ``provides``), so a learner
outside the trainer (an online one in a control loop, an ensemble) can reuse them.

A term whose quantity the model cannot provide raises :class:`LossUnavailableError`
naming the term and the model, before any training starts (:meth:`Loss.check_model`,
:meth:`Loss.check_traced`); a dataset that lacks a field, or whose target is constant,
a :class:`~lagrax.core.errors.DatasetError` (:meth:`Loss.check_data`). The string edge
is :func:`parse_loss` (``"inverse=1,power=0.1"``) and :meth:`Loss.of` (weights by name).

This module does not optimise anything (see :mod:`lagrax.training.step`) and does not
choose batches (see :mod:`lagrax.training.batches`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Scalar

from lagrax.data.dataset import has_motion, unactuated_joints
from lagrax.core.errors import DatasetError, LagraxError, NotProvidedError, OutOfRangeError, UnknownNameError
from lagrax.systems.rollout import rk4_rollout
from lagrax.systems.base import QUANTITIES, System

Sample = Mapping[str, Float[Array, " n"]]
Window = Mapping[str, Array]  # q, qd, tau: (H + 1, n); dt: scalar

# how messages name a dataset field
FIELD_NAMES = {
    "tau": "joint torques 'tau'",
    "p": "momenta 'p'",
    "pdot": "momentum rates 'pdot'",
    "qdd": "accelerations 'qdd'",
}


class LossUnavailableError(LagraxError, ValueError):
    """A loss term needs a quantity that the model or the dataset does not provide."""


class LossWeightError(LagraxError, ValueError):
    """A loss weight is not a number."""


class Scales(NamedTuple):
    """Inverse variances of the training targets (per joint), the losses' normalisers."""

    tau: Float[Array, " n"]
    qdd: Float[Array, " n"]
    q: Float[Array, " n"]
    qd: Float[Array, " n"]
    power: Scalar
    pdot: Float[Array, " n"]


# The most a normaliser ever multiplies a loss term by: 1 / var is capped here, so a
# (nearly) constant channel, e.g. an unactuated joint's zero torque, cannot blow a
# loss up by 1e24 (it did on passive data before); variances below 1e-6 count as 1e-6.
MAX_NORMALISER = 1e6
# ... and a channel's variance counts as at least this fraction of its mean square: a
# constant but non-zero target (the momentum rate of a particle in a uniform field) is
# weighed like a varying one of its size, not a million times more than the rest.
MIN_VARIANCE_FRACTION = 1e-3


def _inv_var(x, axis=0):
    """``1 / var(x)`` per channel, with the variance at least :data:`MIN_VARIANCE_FRACTION`
    of the mean square and ``1 / MAX_NORMALISER``."""
    if x is None:
        return None
    # nan-aware: a corrupt sample must not poison every step through the normaliser; the
    # trainer skips the steps that contain it
    x = np.asarray(x, np.float64)
    v = np.nanvar(x, axis=axis)
    floor = np.maximum(MIN_VARIANCE_FRACTION * np.nanmean(x**2, axis=axis), 1.0 / MAX_NORMALISER)
    return 1.0 / np.maximum(v, floor)


def data_scales(ds, dtype=jnp.float32) -> Scales:
    """Per-joint ``1 / var`` of the training set's ``tau, qdd, q, qd``, of the power ``qd . tau``
    and of ``pdot`` (ones where the dataset lacks the field).

    An unactuated joint's torque (:func:`lagrax.data.dataset.unactuated_joints`) gets the
    normaliser 0: its target is zero in every sample, and weighing that channel (at
    :data:`MAX_NORMALISER`, as a constant channel would be) makes the inverse loss smallest
    where a model with a learned ``M`` and ``V`` shrinks that joint's equation to nothing.
    Its dynamics are learned through the forward loss instead (the recipe turns it on)."""
    n = ds.dof
    ones = np.ones(n)
    power = None if ds.tau is None else np.sum(np.asarray(ds.qd) * np.asarray(ds.tau), axis=-1)
    tau_scale = _inv_var(ds.tau)
    if tau_scale is not None:
        tau_scale[list(unactuated_joints(ds))] = 0.0
    parts = [
        tau_scale,
        _inv_var(ds.qdd),
        _inv_var(ds.q),
        _inv_var(ds.qd),
        _inv_var(power) if power is not None else 1.0,
        _inv_var(ds.pdot),
    ]
    parts = [ones if p is None else p for p in parts]
    return Scales(*(jnp.asarray(p, dtype) for p in parts))


# --------------------------------------------------------------------------------------
# Per-sample terms
# --------------------------------------------------------------------------------------


def inverse_loss(model: System, s: Sample, scales: Scales) -> Scalar:
    """Torque residual ``tau_model(q, qd, qdd) - tau``, squared, per joint over ``var(tau)``."""
    r = model.inverse_dynamics(s["q"], s["qd"], s["qdd"]) - s["tau"]
    return jnp.sum(r**2 * scales.tau)


def forward_loss(
    model: System, s: Sample, scales: Scales, regularization: float = 0.0
) -> tuple[Scalar, Bool[Array, ""]]:
    """Acceleration residual ``qdd_model(q, qd, tau) - qdd`` over ``var(qdd)``, and whether
    the solve was singular (then the residual is 0 and the caller counts the sample)."""
    qdd, singular = model.solve_forward_dynamics(s["q"], s["qd"], s["tau"], regularization)
    r = jnp.where(singular, 0.0, qdd - s["qdd"])  # masked, counted by the caller
    return jnp.sum(r**2 * scales.qdd), singular


def inverse_and_forward_loss(
    model: System, s: Sample, scales: Scales, regularization: float = 0.0
) -> tuple[Scalar, Scalar, Bool[Array, ""]]:
    """:func:`inverse_loss` and :func:`forward_loss` together, from one
    :meth:`~lagrax.systems.System.inverse_and_forward_dynamics` call (a structured model
    derives ``M``, ``c`` and ``g`` once for both)."""
    tau_hat, (qdd, singular) = model.inverse_and_forward_dynamics(
        s["q"], s["qd"], s["qdd"], s["tau"], regularization
    )
    r = jnp.where(singular, 0.0, qdd - s["qdd"])
    return jnp.sum((tau_hat - s["tau"]) ** 2 * scales.tau), jnp.sum(r**2 * scales.qdd), singular


def power_loss(model: System, s: Sample, scales: Scales) -> Scalar:
    """Energy balance ``dE/dt - qd^T (tau - friction)``, squared, over the power's variance."""
    # dE/dt = qd^T (tau - friction) along the recorded motion (Lutter 2019 IROS, eq. 8)
    r = model.energy_rate(s["q"], s["qd"], s["qdd"]) - model.power(s["q"], s["qd"], s["tau"])
    return r**2 * scales.power


def canonical_loss(model: System, s: Sample, scales: Scales) -> Scalar:
    """Hamiltonian models: ``(dq/dt, dp/dt) = canonical_time_derivative(q, p, tau)`` vs ``(qd, pdot)``."""
    qd_hat, pdot_hat = model.canonical_time_derivative(s["q"], s["p"], s["tau"])
    return jnp.sum((qd_hat - s["qd"]) ** 2 * scales.qd) + jnp.sum((pdot_hat - s["pdot"]) ** 2 * scales.pdot)


def rollout_loss(
    model: System, w: Window, scales: Scales, substeps: int = 1
) -> tuple[Scalar, Bool[Array, ""]]:
    """One window ``w`` (``q, qd, tau`` of shape ``(H + 1, n)``, ``dt`` scalar): integrate
    from its first state under its torques (RK4, linear torque interpolation, the
    evaluation's integrator) and compare the ``H`` later positions and velocities.

    A singular LNN Hessian gives NaN states; the window is flagged (and its NaN gradient
    makes the trainer skip the step rather than poison the parameters)."""
    q, qd = rk4_rollout(model, w["q"][0], w["qd"][0], w["tau"], w["dt"], substeps)
    err = (q[1:] - w["q"][1:]) ** 2 * scales.q + (qd[1:] - w["qd"][1:]) ** 2 * scales.qd
    total = jnp.sum(err) / (q.shape[0] - 1)
    bad = ~jnp.isfinite(total)
    return jnp.where(bad, 0.0, total), bad


# --------------------------------------------------------------------------------------
# Terms as objects
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Term:
    """One weighted loss term. A weight of 0 switches it off.

    Class attributes say what the term is: ``name``; ``fields``, the dataset fields it
    reads; ``target``, the field it fits (a constant target leaves nothing to learn);
    ``needs``, the quantities the model must provide; ``needs_text``, how messages say
    that; ``windows``, whether it reads rollout windows (whole trajectories) instead of
    samples. :meth:`per_sample` is its residual on one sample (or window), and
    :meth:`batch` its mean over a batch with the number of samples it had to mask.
    """

    weight: float = 1.0

    name: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ("q", "qd", "qdd", "tau")
    target: ClassVar[str | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    needs_text: ClassVar[str] = ""
    hint: ClassVar[str] = ""  # what the term is for, when a model lacks what it needs
    windows: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = [q for q in cls.needs if q not in QUANTITIES]
        if unknown:
            raise TypeError(f"loss term {cls.__name__} needs unknown quantities {unknown}; see QUANTITIES")

    def __post_init__(self):
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w >= 0):
            raise OutOfRangeError(f"loss {self.name!r}: the weight must be a finite number >= 0, got {w!r}")
        object.__setattr__(self, "weight", float(w))

    @property
    def active(self) -> bool:
        """Whether the term counts (a positive weight)."""
        return self.weight > 0

    def per_sample(self, model: System, s: Mapping, scales: Scales) -> Any:
        """The residual on one sample ``s`` (one window for a window term)."""
        raise NotImplementedError

    def batch(self, model: System, batch: Mapping, windows: Mapping | None, scales: Scales):
        """``(mean over the batch, singular samples or None)``; ``(None, None)`` when a
        window term gets no windows."""
        return jnp.mean(jax.vmap(lambda s: self.per_sample(model, s, scales))(batch)), None

    # ---- checks, from what the term declares ----------------------------------------------
    def check_model(self, model: System) -> None:
        """Raise :class:`LossUnavailableError` unless ``model`` provides every quantity needed."""
        for quantity in self.needs:
            if not model.provides(quantity):
                why = self.hint or f"it does not provide {quantity}"
                raise LossUnavailableError(
                    f"loss {self.name!r} needs {self.needs_text}; the {model.kind} model has none ({why})"
                )

    def check_data(self, ds, what: str) -> None:
        """Raise :class:`~lagrax.core.errors.DatasetError` if ``ds`` (the ``what``) lacks a field
        the term reads, or holds a constant target."""
        for field in self.fields:
            if getattr(ds, field, None) is None:
                raise DatasetError(
                    f"loss {self.name!r} needs {FIELD_NAMES.get(field, repr(field))}, but the {what} has "
                    "none; set its weight to 0 or use a dataset that has it"
                )
        _check_target_varies(ds, self, what)
        if self.windows and not has_motion(ds):
            raise DatasetError(
                f"loss {self.name!r} needs trajectories in time, but the {what} holds independent states "
                "(kind 'states'); set its weight to 0"
            )

    def check_traced(self, model: System, sample: Mapping, window: Mapping | None, scales: Scales) -> None:
        """Trace :meth:`per_sample` once (no computation), so that a quantity the model cannot
        give after all fails now, naming the term and the model."""
        s = (window or {}) if self.windows else sample
        try:
            jax.eval_shape(lambda: self.per_sample(model, s, scales))
        except NotProvidedError as e:
            raise LossUnavailableError(
                f"loss {self.name!r} needs {self.needs_text}; the {model.kind} model has none ({e})"
            ) from None


def _masked_mean(values, singular):
    """The mean over the samples that are not ``singular`` (0 if all are)."""
    return jnp.sum(values) / jnp.maximum(jnp.sum(~singular), 1)


@dataclasses.dataclass(frozen=True)
class Inverse(Term):
    """The torque residual, :func:`inverse_loss`."""

    name: ClassVar[str] = "inverse"
    target: ClassVar[str | None] = "tau"
    needs: ClassVar[tuple[str, ...]] = ("inverse_dynamics",)
    needs_text: ClassVar[str] = "inverse dynamics"

    def per_sample(self, model, s, scales):
        return inverse_loss(model, s, scales)


@dataclasses.dataclass(frozen=True)
class Forward(Term):
    """The acceleration residual, :func:`forward_loss` (singular samples masked and counted);
    ``regularization`` is the Tikhonov lambda of a Hessian solve (LNN)."""

    regularization: float = 0.0

    name: ClassVar[str] = "forward"
    target: ClassVar[str | None] = "qdd"
    needs: ClassVar[tuple[str, ...]] = ("forward_dynamics",)
    needs_text: ClassVar[str] = "forward dynamics"

    def per_sample(self, model, s, scales):
        return forward_loss(model, s, scales, self.regularization)

    def batch(self, model, batch, windows, scales):
        values, singular = jax.vmap(lambda s: self.per_sample(model, s, scales))(batch)
        return _masked_mean(values, singular), jnp.sum(singular)


@dataclasses.dataclass(frozen=True)
class Power(Term):
    """Energy balance with friction, :func:`power_loss`."""

    name: ClassVar[str] = "power"
    target: ClassVar[str | None] = "tau"
    needs: ClassVar[tuple[str, ...]] = ("energy_rate", "power")
    needs_text: ClassVar[str] = "an energy"

    def per_sample(self, model, s, scales):
        return power_loss(model, s, scales)


@dataclasses.dataclass(frozen=True)
class Canonical(Term):
    """Hamilton's equations against ``(qd, pdot)``, :func:`canonical_loss`."""

    name: ClassVar[str] = "canonical"
    fields: ClassVar[tuple[str, ...]] = ("q", "qd", "p", "pdot", "tau")
    target: ClassVar[str | None] = "pdot"
    needs: ClassVar[tuple[str, ...]] = ("canonical_time_derivative",)
    needs_text: ClassVar[str] = "Hamilton's equations (canonical_time_derivative)"
    hint: ClassVar[str] = "it is for Hamiltonian models: hnn, hnn_structured"

    def per_sample(self, model, s, scales):
        return canonical_loss(model, s, scales)


@dataclasses.dataclass(frozen=True)
class Rollout(Term):
    """Short rollouts against the recorded states, :func:`rollout_loss`, on windows of
    whole trajectories (``substeps`` RK4 sub-steps per sample interval)."""

    substeps: int = 1

    name: ClassVar[str] = "rollout"
    fields: ClassVar[tuple[str, ...]] = ("q", "qd", "tau")
    needs: ClassVar[tuple[str, ...]] = ("forward_dynamics",)
    needs_text: ClassVar[str] = "forward dynamics"
    windows: ClassVar[bool] = True

    def per_sample(self, model, s, scales):
        return rollout_loss(model, s, scales, self.substeps)

    def batch(self, model, batch, windows, scales):
        if windows is None:
            return None, None
        values, singular = jax.vmap(lambda w: self.per_sample(model, w, scales))(windows)
        return _masked_mean(values, singular), jnp.sum(singular)


# every term by name, in the order a Loss built from weights evaluates and sums them
TERMS: dict[str, type[Term]] = {t.name: t for t in (Inverse, Forward, Power, Canonical, Rollout)}
LOSS_NAMES = tuple(TERMS)


def _check_target_varies(ds, term: Term, what: str) -> None:
    """A term whose target is the same in every sample has nothing to learn (and its
    1/variance normaliser would blow the loss up to ~1e24)."""
    field = term.target
    if field is None:
        return
    target = getattr(ds, field, None)
    if target is None or np.size(target) == 0:
        return
    with warnings.catch_warnings():  # (an all-NaN column: the trainer skips its steps)
        warnings.simplefilter("ignore", RuntimeWarning)
        variance = np.nanvar(np.asarray(target, np.float64), axis=0)
    if np.all(variance == 0):
        hint = " (passive data?): train with --loss forward=1" if field == "tau" else ""
        raise DatasetError(
            f"loss {term.name!r} fits {FIELD_NAMES.get(field, repr(field))}, but it is the same in every "
            f"sample of the {what}, so there is nothing to learn{hint}"
        )


# --------------------------------------------------------------------------------------
# The weighted sum
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Loss:
    """The weighted sum of ``terms`` (each name at most once), in their order.

    ``loss(model, batch, windows, scales)`` is the training objective of a batch:
    ``(sum_k weight_k * mean_k, (means by name, singular samples))``, over the active
    (positive-weight) terms. When both the inverse and the forward term are active, one
    :func:`inverse_and_forward_loss` call gives both (a structured model derives ``M``,
    ``c`` and ``g`` once). Frozen and hashable, so it can be a static argument of ``jit``.
    """

    terms: tuple[Term, ...]

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(self.terms))
        names = [t.name for t in self.terms]
        for t in self.terms:
            if not isinstance(t, Term):
                raise TypeError(f"a Loss is made of loss terms (lagrax.training.losses.Term), got {t!r}")
            if names.count(t.name) > 1:
                raise LagraxError(f"loss {t.name!r} is given twice; give each term once, with its weight")

    @classmethod
    def of(cls, weights: Mapping[str, float], *, regularization: float = 0.0, substeps: int = 1) -> Loss:
        """The terms of positive weight in ``weights`` (names as in :data:`TERMS`), in the
        order of :data:`TERMS`; the forward term with ``regularization``, the rollout term
        with ``substeps``. An unknown name is an :class:`~lagrax.core.errors.UnknownNameError`."""
        for name in weights:
            if name not in TERMS:
                raise UnknownNameError.for_name("loss", str(name), TERMS)
        settings: dict[str, dict[str, Any]] = {
            "forward": {"regularization": regularization},
            "rollout": {"substeps": substeps},
        }
        return cls(
            tuple(
                term(weights[name], **settings.get(name, {}))
                for name, term in TERMS.items()
                if weights.get(name, 0) > 0
            )
        )

    @property
    def active(self) -> tuple[Term, ...]:
        """The terms of positive weight."""
        return tuple(t for t in self.terms if t.active)

    def get(self, name: str) -> Term | None:
        """The active term called ``name``, or None."""
        return next((t for t in self.active if t.name == name), None)

    def weights(self) -> dict[str, float]:
        """The weight of each term by name."""
        return {t.name: t.weight for t in self.terms}

    @property
    def reads_windows(self) -> bool:
        """Whether an active term reads rollout windows (whole trajectories)."""
        return any(t.windows for t in self.active)

    def fields(self) -> list[str]:
        """The per-sample dataset fields the active terms read (window terms aside)."""
        names: list[str] = []
        for t in self.active:
            if not t.windows:
                names += [f for f in t.fields if f not in names]
        return names

    # ---- values -----------------------------------------------------------------------------
    def per_sample(self, model: System, s: Mapping, scales: Scales) -> Scalar:
        """One per-sample loss: ``sum_k weight_k * residual_k(s)`` over the active sample terms
        (window terms read windows, not samples, and are left out)."""
        total = jnp.zeros(())
        for t in self.active:
            if not t.windows:
                value = t.per_sample(model, s, scales)
                total = total + t.weight * (value[0] if isinstance(value, tuple) else value)
        return total

    def values(self, model: System, batch: Mapping, windows: Mapping | None, scales: Scales):
        """``(means by name, singular samples)``: each active term's mean over the batch, and
        the number of samples masked as singular (excluded from the means)."""
        done: dict[str, Any] = {}
        singular = jnp.zeros((), jnp.int32)
        inv, fwd = self.get("inverse"), self.get("forward")
        if inv is not None and isinstance(fwd, Forward):
            pair = jax.vmap(lambda s: inverse_and_forward_loss(model, s, scales, fwd.regularization))
            inv_values, fwd_values, sing = pair(batch)
            done["inverse"] = (jnp.mean(inv_values), None)
            done["forward"] = (_masked_mean(fwd_values, sing), jnp.sum(sing))
        terms = {}
        for t in self.active:
            value, sing = done[t.name] if t.name in done else t.batch(model, batch, windows, scales)
            if value is None:
                continue
            terms[t.name] = value
            if sing is not None:
                singular = singular + sing
        return terms, singular

    def total(self, values: Mapping[str, Scalar]) -> Scalar:
        """``sum_k weight_k * values[k]`` over the terms in ``values``."""
        weights = self.weights()
        return sum(weights[k] * v for k, v in values.items())  # type: ignore[return-value]

    def __call__(self, model: System, batch: Mapping, windows: Mapping | None, scales: Scales):
        """The objective of a batch: ``(weighted total, (means by name, singular samples))``."""
        values, singular = self.values(model, batch, windows, scales)
        return self.total(values), (values, singular)

    # ---- checks, from the terms ---------------------------------------------------------
    def check_model(self, model: System) -> None:
        """Raise :class:`LossUnavailableError` for the first active term ``model`` cannot serve."""
        for t in self.active:
            t.check_model(model)

    def check_data(self, ds, what: str = "training set") -> None:
        """Raise :class:`~lagrax.core.errors.DatasetError` for the first active term ``ds`` cannot serve."""
        for t in self.active:
            t.check_data(ds, what)

    def check_traced(self, model: System, sample: Mapping, window: Mapping | None, scales: Scales) -> None:
        """Trace every active term once on one sample (and window), so a missing quantity fails now."""
        for t in self.active:
            t.check_traced(model, sample, window, scales)


def combine(*terms: Term) -> Loss:
    """The weighted sum of ``terms``: ``combine(Inverse(1.0), Power(0.1))``."""
    return Loss(terms)


def as_loss(loss: Loss | Mapping[str, float]) -> Loss:
    """``loss`` itself, or the :class:`Loss` of weights by name (:meth:`Loss.of`)."""
    return loss if isinstance(loss, Loss) else Loss.of(loss)


def parse_loss(spec: str, *, regularization: float = 0.0, substeps: int = 1) -> Loss:
    """``"inverse=1,forward=0.1"`` -> ``combine(Inverse(1.0), Forward(0.1))`` (a name alone
    has weight 1); unknown names are an :class:`~lagrax.core.errors.UnknownNameError`."""
    return Loss.of(parse_weights(spec), regularization=regularization, substeps=substeps)


def parse_weights(spec: str) -> dict[str, float]:
    """``"inverse=1,forward=0.1"`` -> every term's weight by name, 0 for the terms not named."""
    weights = {name: 0.0 for name in TERMS}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in TERMS:
            raise UnknownNameError.for_name("loss", name, TERMS)
        try:
            weights[name] = float(value) if sep else 1.0
        except ValueError:
            raise LossWeightError(f"loss weight for {name!r} must be a number, got {value!r}") from None
    return weights


def check_data(ds, loss: Loss | Mapping[str, float], what: str = "training set") -> None:
    """:meth:`Loss.check_data` of ``loss`` (a :class:`Loss`, or weights by name)."""
    as_loss(loss).check_data(ds, what)


__all__ = [
    "Term",
    "Inverse",
    "Forward",
    "Power",
    "Canonical",
    "Rollout",
    "TERMS",
    "LOSS_NAMES",
    "Loss",
    "combine",
    "as_loss",
    "parse_loss",
    "parse_weights",
    "check_data",
    "Scales",
    "data_scales",
    "LossUnavailableError",
    "inverse_loss",
    "forward_loss",
    "inverse_and_forward_loss",
    "power_loss",
    "canonical_loss",
    "rollout_loss",
]
