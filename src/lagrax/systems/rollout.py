"""Rollouts and integration: the one module that integrates a system's equations of motion.

Every rollout in lagrax comes from here, for ground-truth systems and learned models
alike (anything with per-sample ``solve_forward_dynamics`` or
``canonical_time_derivative``):

* :func:`simulate`: ``(q, qd)`` under ``qdd = forward_dynamics(q, qd, tau)``, with
  diffrax (adaptive Tsit5 / Dormand-Prince by default, or fixed steps ``dt=...``);
* :func:`simulate_canonical`: ``(q, p)`` under Hamilton's equations, the same way;
* :func:`rk4_step`: one classical RK4 step, pure and per sample, and
  :func:`rk4_rollout`, those steps as a single ``lax.scan`` with no checks.

**One integrator library.** Diffrax integrates (:func:`simulate`, with the classical
RK4 tableau :class:`RK4` among its solvers). The fixed-step :func:`rk4_step` exists for
use *inside* ``lax.scan``, ``jit`` and ``grad``: the rollout loss differentiates through
it, the valid prediction time scans it and the control loop's plant
(:func:`lagrax.control.laws.plant_step`) steps it once per tick, where diffrax's
save-time bookkeeping and checks would cost several times more. A singular solve gives
NaN states there; ``tests/systems/test_rollout.py`` checks that it agrees with
:func:`simulate`.

:func:`simulate` and :func:`simulate_canonical` are the checked edge: they share one
validation of the initial states, times and torques, take a solver as a diffrax solver
object or a name (:class:`SolverName`, parsed once by :func:`parse_solver`), and raise
:class:`~lagrax.core.errors.SingularHessianError` when the solve becomes singular (the
integration stops at the first such step instead of rejecting steps until
``max_steps``) or :class:`~lagrax.core.errors.NumericalError` when it does not reach the last
time, never handing back a NaN trajectory.

This module does not generate datasets (see :mod:`lagrax.data.generators`) or score
rollouts (see :mod:`lagrax.analysis.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from lagrax.core.errors import (
    NonFiniteInputError,
    NotProvidedError,
    NumericalError,
    OutOfRangeError,
    ShapeError,
    SingularHessianError,
)
from lagrax.core.options import Option


class RK4(diffrax.AbstractERK):
    """The classical 4th-order Runge-Kutta method (fixed step only: no error estimate).

    Diffrax ships no classical RK4; the DeLaN papers' valid-prediction-time metric
    uses it, so it is defined here from its Butcher tableau.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        c=np.array([0.5, 0.5, 1.0]),
    )
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


class SolverName(Option):
    """The solvers known by name; :func:`parse_solver` turns one into a diffrax solver."""

    TSIT5 = "tsit5"
    DOPRI5 = "dopri5"
    DOPRI8 = "dopri8"
    RK4 = "rk4"

    @classmethod
    def label(cls) -> str:
        return "solver"


_SOLVER_CLASSES: dict[SolverName, type[diffrax.AbstractSolver]] = {
    SolverName.TSIT5: diffrax.Tsit5,
    SolverName.DOPRI5: diffrax.Dopri5,
    SolverName.DOPRI8: diffrax.Dopri8,
    SolverName.RK4: RK4,
}


def parse_solver(solver: diffrax.AbstractSolver | SolverName | str) -> diffrax.AbstractSolver:
    """A diffrax solver object from itself, a :class:`SolverName` or its name (``"tsit5"``,
    ``"dopri5"``, ``"dopri8"``, ``"rk4"``); an unknown name raises ``UnknownNameError``."""
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    return _SOLVER_CLASSES[SolverName.parse(solver)]()


def _has_error_estimate(solver: diffrax.AbstractSolver) -> bool:
    return isinstance(solver, diffrax.AbstractAdaptiveSolver) and not isinstance(solver, RK4)


class Stepping(eqx.Module):
    """How to integrate: a diffrax solver and adaptive tolerances, or a fixed step ``dt``."""

    solver: diffrax.AbstractSolver
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    @classmethod
    def make(cls, solver, rtol: float, atol: float, dt: float | None, max_steps: int) -> "Stepping":
        """Parse ``solver`` and check that adaptive stepping has an error estimate."""
        solver = parse_solver(solver)
        if dt is None and not _has_error_estimate(solver):
            raise OutOfRangeError(
                f"solver {type(solver).__name__} has no error estimate for adaptive steps: "
                "give a fixed step dt=..."
            )
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise OutOfRangeError(f"the fixed step dt must be a positive finite number, got {dt}")
        if not (rtol > 0 and atol > 0 and int(max_steps) >= 1):
            raise OutOfRangeError(
                f"rtol and atol must be positive and max_steps >= 1, got {rtol}, {atol}, {max_steps}"
            )
        return cls(solver, float(rtol), float(atol), None if dt is None else float(dt), int(max_steps))

    def controller(self) -> diffrax.AbstractStepSizeController:
        if self.dt is None:
            return diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        return diffrax.ConstantStepSize()


class Torque(eqx.Module):
    """Joint forces ``tau(t, x, v)`` of one rollout: zero, constant ``(n,)``, samples
    ``(T, n)`` at the save times (linearly interpolated) or a callable."""

    values: Array | None
    ts: Array
    fn: Callable | None = eqx.field(static=True)

    def __call__(self, t, x, v):
        if self.fn is not None:
            return self.fn(t, x, v)
        if self.values.ndim == 1:
            return self.values
        return diffrax.LinearInterpolation(ts=self.ts, ys=self.values).evaluate(t)


# --------------------------------------------------------------------------------------
# Shared validation (the checked edge of both rollouts)
# --------------------------------------------------------------------------------------


class _Inputs(NamedTuple):
    x0: Array
    v0: Array
    ts: Array
    torque: Torque
    batch_torque: bool  # one torque sample array per initial state


def _torque(tau, ts, n: int, batch: int | None, dtype) -> tuple[Torque, bool]:
    """The :class:`Torque` for ``tau`` and whether it holds one sample array per state."""
    if tau is None:
        return Torque(jnp.zeros(n, dtype), ts, None), False
    if callable(tau):
        return Torque(None, ts, tau), False
    tau = jnp.asarray(tau, dtype)
    T = ts.shape[0]
    if tau.shape in ((n,), (T, n)):
        return Torque(tau, ts, None), False
    if batch is not None and tau.shape == (batch, T, n):
        return Torque(tau, ts, None), True
    shapes = f"({n},) or ({T}, {n})" + ("" if batch is None else f" or ({batch}, {T}, {n})")
    raise ShapeError(f"tau must be None, a callable, or of shape {shapes}; got {tau.shape}")


def _check_finite(name: str, a) -> None:
    """A NonFiniteInputError for NaN or inf in a concrete input (traced ones cannot be checked)."""
    if a is None or callable(a) or isinstance(a, jax.core.Tracer):
        return
    raw = np.asarray(a)
    if raw.dtype.kind == "c":
        raise NonFiniteInputError(f"{name} is complex; real numbers are needed")
    bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
    if bad:
        raise NonFiniteInputError(f"{name} holds {bad} NaN or inf values")


def _validate(system, x0, v0, ts, tau, names: tuple[str, str]) -> _Inputs:
    """Initial states of a common float dtype, times and torque, or a ShapeError naming them."""
    n = system.dof
    for name, a in ((names[0], x0), (names[1], v0), ("ts", ts), ("tau", tau)):
        _check_finite(name, a)
    x0 = jnp.asarray(x0)
    dtype = x0.dtype if jnp.issubdtype(x0.dtype, jnp.floating) else jnp.result_type(float)
    x0, v0, ts = x0.astype(dtype), jnp.asarray(v0, dtype), jnp.asarray(ts, dtype)
    if x0.ndim not in (1, 2) or x0.shape[-1] != n or v0.shape != x0.shape:
        a, b = names
        raise ShapeError(
            f"{a} and {b} must both have shape ({n},) or (B, {n}); got {x0.shape} and {v0.shape}"
        )
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ShapeError(f"ts must be a 1-D array of at least two times; got shape {ts.shape}")
    if not isinstance(ts, jax.core.Tracer) and not bool(jnp.all(jnp.diff(ts) > 0)):
        raise OutOfRangeError("ts must be strictly increasing times")
    torque, batch_torque = _torque(tau, ts, n, x0.shape[0] if x0.ndim == 2 else None, dtype)
    return _Inputs(x0, v0, ts, torque, batch_torque)


class Stop(NamedTuple):
    """Where each integration ended: flags, and the time and state it stopped at."""

    ok: Array  # reached the last time
    stopped: Array  # stopped at a failed solve (singular, or non-finite accelerations)
    t: Array  # the time it ended (the last time when ok)
    x: Array  # the state there
    v: Array


def _format_state(x, v, names: tuple[str, str]) -> str:
    fmt = lambda a: np.array2string(np.asarray(a, np.float64), precision=4, separator=", ")  # noqa: E731
    return f"{names[0]} = {fmt(x)}, {names[1]} = {fmt(v)}"


def _check_outcome(system, what: str, stop: Stop, partial, error: type[NumericalError], message: str) -> None:
    """Raise where an integration stopped at a failed solve or did not reach the last time.

    The error names the first failing initial state, the time and the state at which it
    stopped, and carries the part computed so far as ``error.partial`` (NaN after the stop).
    """
    if isinstance(stop.ok, jax.core.Tracer):  # traced by an outer jit: nothing can be raised here
        return
    ok, stopped = np.atleast_1d(np.asarray(stop.ok)), np.atleast_1d(np.asarray(stop.stopped))
    failed = np.flatnonzero(stopped | ~ok)
    if failed.size == 0:
        return
    k = int(failed[0])
    batch = ok.size > 1 or np.ndim(stop.t) > 0
    pick = (lambda a: np.asarray(a)[k]) if batch else np.asarray  # noqa: E731
    which = f" (initial states {failed.tolist()})" if batch else ""
    names = ("q", "p") if what.startswith("the canonical") else ("q", "qd")
    at = f"at t = {float(pick(stop.t)):.6g}, {_format_state(pick(stop.x), pick(stop.v), names)}"
    finite = np.all(np.isfinite(pick(stop.x))) and np.all(np.isfinite(pick(stop.v)))
    if stopped[k]:
        reason = message if finite else "the state became non-finite (the motion blew up)"
        err = error(f"{system.info.name}: {what} stopped early{which} {at}: {reason}")
    else:
        err = NumericalError(
            f"{system.info.name}: {what} did not reach the last time{which}; it ended {at}: the step "
            "size collapsed (max_steps reached; the motion is stiff, diverges or leaves the system's domain)"
        )
    err.partial = partial
    err.time, err.state = float(pick(stop.t)), (pick(stop.x), pick(stop.v))
    raise err


# --------------------------------------------------------------------------------------
# One diffrax solve, shared by both rollouts
# --------------------------------------------------------------------------------------


def _integrate(flow: Callable, y0, ts: Array, stepping: Stepping):
    """Integrate ``dy/dt`` of ``flow(t, y) -> (dy, bad)`` from ``ts[0]``, saved at ``ts``.

    Where ``bad`` (a singular solve, non-finite accelerations), the field is zero instead
    of NaN, so the step is accepted and the solve stops there (an event) rather than
    rejecting steps until ``max_steps``. Returns the states at ``ts`` (NaN after a stop)
    and a :class:`Stop`.
    """

    def field(t, y, args):
        dy, bad = flow(t, y)
        return jax.tree_util.tree_map(lambda d: jnp.where(bad, jnp.zeros_like(d), d), dy)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        stepping.solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=stepping.dt,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts, t1=True),
        stepsize_controller=stepping.controller(),
        event=diffrax.Event(lambda t, y, args, **kwargs: flow(t, y)[1]),
        max_steps=stepping.max_steps,
        throw=False,
    )
    # diffrax saves the times of ts that were reached, then the end time, then infs
    last = jnp.sum(jnp.isfinite(sol.ts)) - 1
    reached = jnp.arange(ts.shape[0]) < last
    reached = reached | (sol.result == diffrax.RESULTS.successful)
    ys = jax.tree_util.tree_map(lambda y: jnp.where(reached[:, None], y[:-1], jnp.nan), sol.ys)
    end = jax.tree_util.tree_map(lambda y: y[last], sol.ys)
    ok, stopped = sol.result == diffrax.RESULTS.successful, sol.result == diffrax.RESULTS.event_occurred
    return ys, Stop(ok, stopped, sol.ts[last], *end)


def _over_batch(one: Callable, inputs: _Inputs):
    """``one(x0, v0, torque)`` for one initial state, or vmapped over a batch of them."""
    x0, v0, _, torque, batch_torque = inputs
    if x0.ndim == 1:
        return one(x0, v0, torque)
    if not batch_torque:
        return jax.vmap(lambda a, b: one(a, b, torque))(x0, v0)
    with_values = lambda values: eqx.tree_at(lambda tq: tq.values, torque, values)  # noqa: E731
    return jax.vmap(lambda a, b, values: one(a, b, with_values(values)))(x0, v0, torque.values)


# --------------------------------------------------------------------------------------
# Lagrangian rollouts
# --------------------------------------------------------------------------------------


class Rollout(NamedTuple):
    """States at the requested times: ``t (T,)``, ``q, qd, qdd (..., T, n)``."""

    t: Float[Array, " T"]
    q: Float[Array, "*batch T n"]
    qd: Float[Array, "*batch T n"]
    qdd: Float[Array, "*batch T n"]


@eqx.filter_jit
def _simulate(system, inputs: _Inputs, stepping: Stepping):
    ts = inputs.ts

    def one(q0, qd0, torque):
        def flow(t, y):
            q, qd = y
            qdd, bad = system.solve_motion(q, qd, torque(t, q, qd))
            return (qd, qdd), bad

        (q, qd), stop = _integrate(flow, (q0, qd0), ts, stepping)
        qdd = jax.vmap(lambda t, a, b: system.forward_dynamics(a, b, torque(t, a, b)))(ts, q, qd)
        return q, qd, qdd, stop

    return _over_batch(one, inputs)


def simulate(
    system,
    q0,
    qd0,
    ts,
    tau=None,
    *,
    solver: diffrax.AbstractSolver | SolverName | str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 200_000,
) -> Rollout:
    """Integrate ``system`` from ``(q0, qd0)`` and return the states at times ``ts``.

    Args:
        system: any :class:`~lagrax.systems.System` with forward dynamics.
        q0, qd0: initial state, ``(n,)`` or a batch ``(B, n)`` (each is integrated).
        ts: increasing save times ``(T,)``; integration starts at ``ts[0]``.
        tau: ``None`` (passive), constant ``(n,)``, samples ``(T, n)`` at ``ts``
            (linearly interpolated; with a batch also ``(B, T, n)``), or ``tau(t, q, qd)``.
        solver: a diffrax solver (e.g. ``diffrax.Tsit5()``) or a name: ``"tsit5"``
            (default), ``"dopri5"`` (Dormand-Prince), ``"dopri8"``, ``"rk4"`` (fixed step only).
        rtol, atol: tolerances of the adaptive step-size controller.
        dt: a fixed step instead of adaptive stepping.
        max_steps: the most steps of one integration.

    Raises:
        SingularHessianError: the forward-dynamics solve became singular on the way.
        NumericalError: the integration did not reach ``ts[-1]`` (``max_steps``).
    """
    stepping = Stepping.make(solver, rtol, atol, dt, max_steps)
    inputs = _validate(system, q0, qd0, ts, tau, ("q0", "qd0"))
    q, qd, qdd, stop = _simulate(system, inputs, stepping)
    result = Rollout(inputs.ts, q, qd, qdd)
    _check_outcome(system, "the rollout", stop, result, SingularHessianError, system.SINGULAR_MESSAGE)
    return result


# --------------------------------------------------------------------------------------
# Rollouts in canonical coordinates
# --------------------------------------------------------------------------------------


class CanonicalRollout(NamedTuple):
    """States at the requested times: ``t (T,)``, ``q, p (..., T, n)``."""

    t: Float[Array, " T"]
    q: Float[Array, "*batch T n"]
    p: Float[Array, "*batch T n"]


NOT_FINITE = "the canonical time derivative is not finite at a state on the way"


@eqx.filter_jit
def _simulate_canonical(model, inputs: _Inputs, stepping: Stepping):
    def one(q0, p0, torque):
        def flow(t, y):
            q, p = y
            dy = model.canonical_time_derivative(q, p, torque(t, q, p))
            bad = ~jnp.all(jnp.array([jnp.all(jnp.isfinite(d)) for d in dy]))
            return dy, bad

        (q, p), stop = _integrate(flow, (q0, p0), inputs.ts, stepping)
        return q, p, stop

    return _over_batch(one, inputs)


def simulate_canonical(
    model,
    q0,
    p0,
    ts,
    tau=None,
    *,
    solver: diffrax.AbstractSolver | SolverName | str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 200_000,
) -> CanonicalRollout:
    """Integrate ``(qdot, pdot) = model.canonical_time_derivative(q, p, tau)`` from ``(q0, p0)``.

    ``model`` is any system that provides ``canonical_time_derivative`` (an HNN).
    ``q0, p0``: ``(n,)`` or a batch ``(B, n)``; ``ts (T,)`` increasing save times.
    ``tau``: ``None``, constant ``(n,)``, samples ``(T, n)`` (or ``(B, T, n)``) at ``ts``,
    or a callable ``tau(t, q, p)``. Solver options and errors as in :func:`simulate`.
    """
    if not model.provides("canonical_time_derivative"):
        raise NotProvidedError(
            f"{type(model).__name__} has no canonical time derivative; use lagrax.systems.rollout.simulate"
        )
    stepping = Stepping.make(solver, rtol, atol, dt, max_steps)
    inputs = _validate(model, q0, p0, ts, tau, ("q0", "p0"))
    q, p, stop = _simulate_canonical(model, inputs, stepping)
    result = CanonicalRollout(inputs.ts, q, p)
    _check_outcome(model, "the canonical rollout", stop, result, NumericalError, NOT_FINITE)
    return result


# --------------------------------------------------------------------------------------
# Fixed-step RK4 inside scan and grad (training losses, valid prediction time, control)
# --------------------------------------------------------------------------------------


def _accelerations(model, q, qd, tau):
    """Per-sample forward dynamics; a singular solve gives NaN accelerations, which end the
    rollout's valid time instead of raising mid-scan."""
    qdd, singular = model.solve_forward_dynamics(q, qd, tau)
    qdd = jnp.where(singular, jnp.nan, qdd)
    # the state keeps its dtype whatever the model's parameters are (scan carries are typed)
    return qdd.astype(q.dtype)


def _axpy(a, x, y):
    """``y + a x`` on the pytrees ``x, y``."""
    return jax.tree_util.tree_map(lambda xi, yi: yi + a * xi, x, y)


def rk4_step(
    model,
    state: tuple[Float[Array, " n"], Float[Array, " n"]],
    taus: tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " n"]],
    h: Float[Array, ""] | float,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """One classical RK4 step of ``(q, qd)`` under ``qdd = model``'s forward dynamics.

    ``state = (q, qd)``, each ``(n,)``; ``taus = (tau_start, tau_middle, tau_end)``, the
    joint forces at the step's start, middle and end (the same array three times for a
    torque held over the step); ``h`` the step. Returns ``(q, qd)`` after ``h``.
    Pure and per sample, with no checks: a body for ``lax.scan`` that ``jit``, ``vmap``
    and ``grad`` go through. A singular solve gives NaN states.
    """
    u0, um, u1 = taus
    dtype = state[0].dtype
    # The four stages as one scanned body: XLA compiles the forward dynamics once instead
    # of four times (half the compile time of a control loop), with the same arithmetic.
    stages = (
        jnp.asarray([0.0, 0.5, 0.5, 1.0], dtype),  # where each stage samples: state + c h k
        jnp.asarray([1.0, 2.0, 2.0, 1.0], dtype),  # its weight in (k1 + 2 k2 + 2 k3 + k4) / 6
        jnp.stack([u0, um, um, u1]),
    )

    def stage(carry, x):
        k, total = carry
        c, w, u = x
        q, qd = _axpy(c * h, k, state)
        k = (qd, _accelerations(model, q, qd, u))
        return (k, _axpy(w, k, total)), None

    zero = jax.tree_util.tree_map(jnp.zeros_like, state)
    (_, total), _ = jax.lax.scan(stage, (zero, zero), stages)
    return _axpy(h, jax.tree_util.tree_map(lambda a: a / 6, total), state)


def rk4_rollout(
    model,
    q0: Float[Array, " n"],
    qd0: Float[Array, " n"],
    tau: Float[Array, "T n"],
    dt: Float[Array, ""],
    substeps: int = 20,
) -> tuple[Float[Array, "T n"], Float[Array, "T n"]]:
    """Classical RK4 from ``(q0, qd0)`` with step ``dt / substeps``, the torque linearly
    interpolated between the samples ``tau`` taken every ``dt``; states at the samples.

    Per sample and unchecked (call it inside ``jit``/``vmap``): :func:`rk4_step` scanned,
    so a singular solve gives NaN states from there on. The same integration as
    ``simulate(..., solver="rk4", dt=dt/substeps)`` with torque samples
    (``tests/analysis/test_evaluation.py`` checks that the two agree).
    """
    h = dt / substeps
    frac = jnp.arange(substeps + 1, dtype=q0.dtype) / substeps

    def substep(s, us):
        return rk4_step(model, s, us, h), None

    def sample_interval(state, taus):
        tau_a, tau_b = taus
        u = tau_a + frac[:, None] * (tau_b - tau_a)  # torques at the substep nodes
        state, _ = jax.lax.scan(substep, state, (u[:-1], 0.5 * (u[:-1] + u[1:]), u[1:]))
        return state, state

    _, (q, qd) = jax.lax.scan(sample_interval, (q0, qd0), (tau[:-1], tau[1:]))
    return jnp.concatenate([q0[None], q]), jnp.concatenate([qd0[None], qd])


__all__ = [
    "RK4",
    "CanonicalRollout",
    "Rollout",
    "SolverName",
    "Stepping",
    "Torque",
    "parse_solver",
    "rk4_rollout",
    "rk4_step",
    "simulate",
    "simulate_canonical",
]
