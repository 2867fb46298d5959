"""Online learning in the control loop: the model keeps learning while the robot runs.

Each control tick of :func:`lagrax.control.laws.closed_loop` becomes, here, also a learning
tick (:func:`online_closed_loop`, one ``lax.scan``):

1. the controller computes its torque with the *latest* parameters;
2. the plant moves one control period;
3. the finished period gives a measured sample: the midpoint state of the two
   (noisy) measurements, the acceleration ``(qd_k - qd_{k-1}) / dt`` (the mean
   acceleration over the period, second-order accurate at the midpoint) and the torque
   that was held; it goes into a bounded ring :class:`Replay` buffer;
4. every ``every`` ticks, once the buffer holds ``warmup`` samples, ``steps`` optimiser
   steps on minibatches drawn from the buffer.

The update is the training module's step (:func:`lagrax.training.make_step`) on the
training module's loss terms (a :class:`lagrax.training.losses.Loss`, the inverse-dynamics
term by default): the same code as offline training, not a second copy.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Int, PRNGKeyArray

from lagrax.control.laws import (
    Controller,
    Gains,
    LoopSettings,
    PlantChange,
    Tick,
    Trace,
    apply_limit,
    check_model_matches,
    check_reference,
    controller_torque,
    guarded_step,
    measure,
    plant_at,
    plant_step,
)
from lagrax.core.errors import OutOfRangeError
from lagrax.systems import System
from lagrax.training import losses as L
from lagrax.training.step import TrainState, make_step


REPLAY_FIELDS = ("q", "qd", "qdd", "tau")  # what a measured sample holds


class Replay(eqx.Module):
    """A ring buffer of measured samples ``q, qd, qdd, tau`` (each ``(capacity, n)``);
    ``count`` samples were added so far (the oldest are overwritten)."""

    q: Array
    qd: Array
    qdd: Array
    tau: Array
    count: Int[Array, ""]

    @classmethod
    def empty(cls, capacity: int, dof: int, dtype=jnp.float64) -> Replay:
        z = jnp.zeros((capacity, dof), dtype)
        return cls(z, z, z, z, jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.q.shape[0]

    def add(self, q, qd, qdd, tau) -> Replay:
        """The buffer with one more sample, in place of the oldest when full."""
        i = self.count % self.capacity
        return Replay(
            self.q.at[i].set(q),
            self.qd.at[i].set(qd),
            self.qdd.at[i].set(qdd),
            self.tau.at[i].set(tau),
            self.count + 1,
        )

    def draw(self, key: PRNGKeyArray, size: int) -> dict:
        """``size`` samples drawn uniformly (with replacement) from those held."""
        held = jnp.maximum(jnp.minimum(self.count, self.capacity), 1)
        idx = jax.random.randint(key, (size,), 0, held)
        return {"q": self.q[idx], "qd": self.qd[idx], "qdd": self.qdd[idx], "tau": self.tau[idx]}


@dataclasses.dataclass(frozen=True)
class OnlineSettings:
    """Online learning: ``steps`` optimiser steps on minibatches of ``batch_size`` every
    ``every`` ticks, once ``warmup`` samples are held, from a buffer of ``capacity``
    samples; AdamW at ``lr``; the loss ``losses``, the training module's terms
    (``losses.combine(losses.Inverse(1.0), ...)``; the buffer holds ``q, qd, qdd, tau``,
    so terms that read other fields or whole trajectories are refused)."""

    every: int = 1
    steps: int = 1
    batch_size: int = 32
    capacity: int = 5000
    warmup: int = 64
    lr: float = 1e-3
    losses: L.Loss = L.combine(L.Inverse(1.0))

    def __post_init__(self):
        for name in ("every", "steps", "batch_size", "capacity", "warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise OutOfRangeError(f"online {name} must be a whole number >= 1, got {value!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise OutOfRangeError(f"online lr must be positive, got {self.lr}")
        if not isinstance(self.losses, L.Loss):
            raise OutOfRangeError(f"online losses must be a lagrax.training.losses.Loss, got {self.losses!r}")
        for term in self.losses.active:
            if term.windows or not set(term.fields) <= set(REPLAY_FIELDS):
                raise OutOfRangeError(
                    f"online loss {term.name!r} reads {', '.join(term.fields)}"
                    f"{' as whole trajectories' if term.windows else ''}; the replay buffer holds "
                    f"single samples of {', '.join(REPLAY_FIELDS)}"
                )

    def optimizer(self) -> optax.GradientTransformation:
        return optax.adamw(self.lr, weight_decay=0.0)


def torque_scales(info, dtype=jnp.float64) -> L.Scales:
    """Loss normalisers without a dataset: torques over a quarter of each joint's torque
    limit (ones where the robot has none); the other channels unit."""
    ones = np.ones(info.dof)
    tau = ones if info.torque_limits is None else 1.0 / (0.25 * np.asarray(info.torque_limits, float)) ** 2
    return L.Scales(*(jnp.asarray(x, dtype) for x in (tau, ones, ones, ones, 1.0, ones)))


class Learning(NamedTuple):
    """Per tick: the minibatch loss before the update (NaN on ticks without one) and
    whether parameters were updated."""

    loss: Array
    updated: Array


def make_update(static, scales: L.Scales, online: OnlineSettings):
    """``update(state, replay, key) -> (state, loss, updated)``: ``online.steps`` steps of
    the training module's step on minibatches drawn from ``replay``."""

    def loss_fn(params, batch):
        return online.losses(eqx.combine(params, static), batch, None, scales)[0]

    step = make_step(loss_fn, online.optimizer())

    def update(state: TrainState, replay: Replay, key):
        def one(s, k):
            s, info = step(s, replay.draw(k, online.batch_size))
            return s, (info.loss, info.finite)

        state, (loss, finite) = jax.lax.scan(one, state, jax.random.split(key, online.steps))
        return state, loss[0], jnp.any(finite)

    return update


def online_closed_loop(
    plant: System,
    model: System,
    controller: Controller,
    gains: Gains,
    reference: Tick,
    settings: LoopSettings,
    online: OnlineSettings,
    scales: L.Scales,
    key: PRNGKeyArray,
    state: TrainState | None = None,
    replay: Replay | None = None,
    change: PlantChange | None = None,
):
    """Track ``reference`` (``(T, n)`` arrays) from its first state while learning; returns
    ``(trace, learning, state, replay)``: the closed loop's :class:`Trace`, a
    :class:`Learning` record, the final :class:`TrainState` (``eqx.combine(state.params,
    static)`` is the model) and buffer. Pass ``state``/``replay`` back in to continue."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if state is None:
        state = TrainState.create(params, online.optimizer(), key)
    replay = replay if replay is not None else Replay.empty(online.capacity, model.info.dof)
    update = make_update(static, scales, online)
    limit = None if settings.torque_limit is None else jnp.asarray(settings.torque_limit, reference.q.dtype)
    dt = settings.dt

    def tick(carry, xs):
        q, qd, fault, state, replay, prev = carry
        ref, k, t = xs
        k_meas, k_learn = jax.random.split(k)
        qm, qdm = measure(q, qd, settings, k_meas)
        replay = _record(replay, prev, qm, qdm, dt, (t > 0) & (fault == 0))
        held = jnp.minimum(replay.count, replay.capacity)
        ready = (t % online.every == 0) & (held >= online.warmup) & (fault == 0)
        state, loss, updated = jax.lax.cond(
            ready,
            lambda s: update(s, replay, k_learn),
            lambda s: (s, jnp.full((), jnp.nan, reference.q.dtype), jnp.zeros((), bool)),
            state,
        )
        current = eqx.combine(state.params, static)
        tau = apply_limit(controller_torque(controller, current, gains, qm, qdm, ref), limit)

        def step(u):
            return plant_step(plant_at(plant, change, t), q, qd, u, dt, settings.substeps)

        q1, qd1, after, now, tau = guarded_step(step, q, qd, tau, fault)
        carry = (q1, qd1, after, state, replay, (qm, qdm, tau))
        return carry, (Trace(q, qd, tau, now), Learning(loss, updated))

    T = reference.q.shape[0]
    zero = jnp.zeros_like(reference.q[0])
    carry = (reference.q[0], reference.qd[0], jnp.zeros((), jnp.int32), state, replay, (zero, zero, zero))
    xs = (reference, jax.random.split(key, T), jnp.arange(T))
    (_, _, _, state, replay, _), (trace, learning) = jax.lax.scan(tick, carry, xs)
    return trace, learning, state, replay


def _record(replay: Replay, prev, qm, qdm, dt: float, valid) -> Replay:
    """Add the period that just ended: midpoint state, mean acceleration, held torque."""
    q0, qd0, tau = prev
    added = replay.add(0.5 * (q0 + qm), 0.5 * (qd0 + qdm), (qdm - qd0) / dt, tau)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), added, replay)


def online_track(
    plant: System,
    model: System,
    controller: Controller | str,
    gains: Gains,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: LoopSettings | None = None,
    online: OnlineSettings | None = None,
    seed: int = 0,
    scales: L.Scales | None = None,
    change: PlantChange | None = None,
):
    """The checked edge of :func:`online_closed_loop` for one reference ``(T, n)`` (or
    ``(1, T, n)``); returns ``(trace, learning, model)`` with the final model."""
    settings, online = settings or LoopSettings(), online or OnlineSettings()
    controller = Controller.parse(controller)
    check_model_matches(model, plant)
    online.losses.check_model(model)
    q, qd, qdd = (np.asarray(a, dtype=np.float64).reshape((-1,) + np.shape(a)[-2:]) for a in reference)
    check_reference(plant.info, q, qd, qdd)
    if q.shape[0] != 1:
        raise OutOfRangeError(f"online learning follows one reference at a time, got {q.shape[0]}")
    scales = scales if scales is not None else torque_scales(plant.info)
    ref = Tick(jnp.asarray(q[0]), jnp.asarray(qd[0]), jnp.asarray(qdd[0]))
    run = eqx.filter_jit(online_closed_loop)
    key = jax.random.PRNGKey(seed)
    trace, learning, state, _ = run(
        plant, model, controller, gains, ref, settings, online, scales, key, None, None, change
    )
    _, static = eqx.partition(model, eqx.is_inexact_array)
    return trace, learning, eqx.combine(state.params, static)


__all__ = [
    "Learning",
    "OnlineSettings",
    "Replay",
    "make_update",
    "online_closed_loop",
    "online_track",
    "torque_scales",
]
