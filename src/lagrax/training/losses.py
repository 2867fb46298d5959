"""Training losses: per-sample residuals of a model against recorded motion.

Each term is a per-sample function of the model and one sample (a dict of ``(n,)``
arrays), normalised per joint by the training set's variance so that joints with
large torques do not dominate (Lutter & Peters 2023, eq. 29), and batched with
``vmap`` by :func:`batch_losses`. The terms:

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
naming the term and the model, before any training starts (:func:`check_losses`).

This module does not optimise anything (see :mod:`lagrax.training.step`) and does not
choose batches (see :mod:`lagrax.training.batches`).
"""

from __future__ import annotations

import warnings

import typing

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Scalar

from lagrax.data.dataset import has_motion
from lagrax.core.errors import DatasetError, LagraxError, NotProvidedError
from lagrax.systems.rollout import rk4_rollout
from lagrax.systems.base import System

Sample = Mapping[str, Float[Array, " n"]]
Window = Mapping[str, Array]  # q, qd, tau: (H + 1, n); dt: scalar

# which dataset fields each term reads, and what it needs from the model
NEEDS_DATA = {
    "inverse": ("q", "qd", "qdd", "tau"),
    "forward": ("q", "qd", "qdd", "tau"),
    "power": ("q", "qd", "qdd", "tau"),
    "rollout": ("q", "qd", "tau"),
    "canonical": ("q", "qd", "p", "pdot", "tau"),
}
NEEDS_MODEL = {
    "inverse": "inverse dynamics",
    "forward": "forward dynamics",
    "power": "an energy",
    "rollout": "forward dynamics",
    "canonical": "Hamilton's equations (canonical_time_derivative)",
}
FIELD_NAMES = {
    "tau": "joint torques 'tau'",
    "p": "momenta 'p'",
    "pdot": "momentum rates 'pdot'",
    "qdd": "accelerations 'qdd'",
}


class LossUnavailableError(LagraxError, ValueError):
    """A loss term needs a quantity that the model or the dataset does not provide."""


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
    and of ``pdot`` (ones where the dataset lacks the field)."""
    n = ds.dof
    ones = np.ones(n)
    power = None if ds.tau is None else np.sum(np.asarray(ds.qd) * np.asarray(ds.tau), axis=-1)
    parts = [
        _inv_var(ds.tau),
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
# Batched
# --------------------------------------------------------------------------------------


def batch_losses(
    model,
    batch: Mapping,
    windows: Mapping | None,
    scales: Scales,
    weights: Mapping[str, float],
    *,
    regularization: float = 0.0,
    substeps: int = 1,
):
    """Mean of each active term over a batch, and the number of singular samples.

    Returns ``(terms, singular)`` with ``terms[name]`` a scalar for each term whose
    weight is positive. Singular samples (LNN Hessian) are excluded from the mean.
    """
    terms = {}
    singular = jnp.zeros((), jnp.int32)
    both = weights.get("inverse", 0) > 0 and weights.get("forward", 0) > 0
    if both:
        pair = jax.vmap(lambda s: inverse_and_forward_loss(model, s, scales, regularization))
        inv, vals, sing = pair(batch)
        terms["inverse"] = jnp.mean(inv)
    elif weights.get("inverse", 0) > 0:
        terms["inverse"] = jnp.mean(jax.vmap(lambda s: inverse_loss(model, s, scales))(batch))
    if weights.get("forward", 0) > 0:
        if not both:
            vals, sing = jax.vmap(lambda s: forward_loss(model, s, scales, regularization))(batch)
        terms["forward"] = jnp.sum(vals) / jnp.maximum(jnp.sum(~sing), 1)
        singular = singular + jnp.sum(sing)
    if weights.get("power", 0) > 0:
        terms["power"] = jnp.mean(jax.vmap(lambda s: power_loss(model, s, scales))(batch))
    if weights.get("canonical", 0) > 0:
        terms["canonical"] = jnp.mean(jax.vmap(lambda s: canonical_loss(model, s, scales))(batch))
    if weights.get("rollout", 0) > 0 and windows is not None:
        vals, sing = jax.vmap(lambda w: rollout_loss(model, w, scales, substeps))(windows)
        terms["rollout"] = jnp.sum(vals) / jnp.maximum(jnp.sum(~sing), 1)
        singular = singular + jnp.sum(sing)
    return terms, singular


def weighted_total(terms: Mapping[str, Scalar], weights: Mapping[str, float]) -> Scalar:
    """``sum_k weights[k] * terms[k]``."""
    return typing.cast(Scalar, sum(weights[k] * v for k, v in terms.items()))


def objective(
    model: System,
    batch: Mapping,
    windows: Mapping | None,
    scales: Scales,
    weights: Mapping[str, float],
    *,
    regularization: float = 0.0,
    substeps: int = 1,
):
    """The training objective of a batch: ``(weighted total, (terms, singular))``."""
    terms, singular = batch_losses(
        model, batch, windows, scales, weights, regularization=regularization, substeps=substeps
    )
    return weighted_total(terms, weights), (terms, singular)


def check_data(ds, weights: Mapping[str, float], what: str = "training set") -> None:
    """Raise :class:`~lagrax.core.errors.DatasetError` if an active term needs a field ``ds`` lacks."""
    for name, w in weights.items():
        if w <= 0:
            continue
        for field in NEEDS_DATA[name]:
            if getattr(ds, field, None) is None:
                raise DatasetError(
                    f"loss {name!r} needs {FIELD_NAMES.get(field, repr(field))}, but the {what} has none; "
                    f"set its weight to 0 or use a dataset that has it"
                )
        _check_target_varies(ds, name, what)
    if weights.get("rollout", 0) > 0 and not has_motion(ds):
        raise DatasetError(
            f"loss 'rollout' needs trajectories in time, but the {what} holds independent states "
            "(kind 'states'); set its weight to 0"
        )


# The quantity each loss term fits: a term whose target is constant has nothing to learn
# (and its 1/variance normaliser would blow the loss up to ~1e24).
TARGETS = {"inverse": "tau", "power": "tau", "forward": "qdd", "canonical": "pdot"}


def _check_target_varies(ds, name: str, what: str) -> None:
    field = TARGETS.get(name)
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
            f"loss {name!r} fits {FIELD_NAMES.get(field, repr(field))}, but it is the same in every "
            f"sample of the {what}, so there is nothing to learn{hint}"
        )


def check_model(model, weights: Mapping[str, float]) -> None:
    """Raise :class:`LossUnavailableError` for terms that this kind of model has no hook for."""
    if weights.get("canonical", 0) > 0 and not model.provides("canonical_time_derivative"):
        kind = model.kind
        raise LossUnavailableError(
            f"loss 'canonical' needs {NEEDS_MODEL['canonical']}; the {kind} model has none "
            f"(it is for Hamiltonian models: hnn, hnn_structured)"
        )


def check_losses(
    model,
    weights: Mapping[str, float],
    sample: Mapping,
    window: Mapping | None,
    scales: Scales,
    *,
    regularization: float = 0.0,
    substeps: int = 1,
) -> None:
    """Trace every active term once (no computation) so that a term the model cannot
    provide fails now, with a message naming the term and the model."""
    check_model(model, weights)
    fns = {
        "inverse": lambda: inverse_loss(model, sample, scales),
        "forward": lambda: forward_loss(model, sample, scales, regularization),
        "power": lambda: power_loss(model, sample, scales),
        "canonical": lambda: canonical_loss(model, sample, scales),
        "rollout": lambda: rollout_loss(model, window or {}, scales, substeps),
    }
    for name, w in weights.items():
        if w <= 0:
            continue
        try:
            jax.eval_shape(fns[name])
        except NotProvidedError as e:
            kind = model.kind
            raise LossUnavailableError(
                f"loss {name!r} needs {NEEDS_MODEL[name]}; the {kind} model has none ({e})"
            ) from None
