"""Rollouts: integrate any system's forward dynamics with diffrax.

Works for ground-truth systems and learned models alike (anything with a per-sample
``_forward_dynamics``). Adaptive Tsit5 / Dormand-Prince with settable tolerances by
default; a fixed step (``dt=...``) for cheap differentiable rollouts in training.

This module does not generate datasets (see :mod:`lagrax.trajectories`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .errors import NotProvidedError, ShapeError, UnknownNameError


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


SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8, "rk4": RK4}


class Rollout(NamedTuple):
    """States at the requested times: ``t (T,)``, ``q, qd, qdd (..., T, n)``."""

    t: Float[Array, " T"]
    q: Float[Array, "*batch T n"]
    qd: Float[Array, "*batch T n"]
    qdd: Float[Array, "*batch T n"]


def _torque_fn(tau, ts, n, dtype) -> Callable:
    """``tau(t, q, qd)`` from None (passive), a constant ``(n,)``, samples ``(T, n)`` at ``ts``
    (linearly interpolated), or a callable."""
    if tau is None:
        return lambda t, q, qd: jnp.zeros(n, dtype)
    if callable(tau):
        return tau
    tau = jnp.asarray(tau, dtype)
    if tau.shape == (n,):
        return lambda t, q, qd: tau
    if tau.shape == (ts.shape[0], n):
        interp = diffrax.LinearInterpolation(ts=ts, ys=tau)
        return lambda t, q, qd: interp.evaluate(t)
    raise ShapeError(f"tau must be None, a callable, shape ({n},) or ({ts.shape[0]}, {n}); got {tau.shape}")


def solve(field, y0, ts, solver_name: str, rtol: float, atol: float, dt: float | None, max_steps: int):
    """``diffrax.diffeqsolve`` of ``dy/dt = field(t, y, args)`` from ``ts[0]``, saved at ``ts``:
    adaptive steps with tolerances ``rtol, atol``, or fixed steps ``dt``. Shared by the
    Lagrangian rollouts here and the canonical ones of :mod:`lagrax.models.hnn`."""
    adaptive = dt is None
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        SOLVERS[solver_name](),
        t0=ts[0],
        t1=ts[-1],
        dt0=dt,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol)
        if adaptive
        else diffrax.ConstantStepSize(),
        max_steps=max_steps,
    )
    return sol.ys


@eqx.filter_jit
def _simulate_one(system, q0, qd0, ts, tau_fn, solver_name, rtol, atol, dt, max_steps):
    def field(t, y, args):
        q, qd = y
        return qd, system.forward_dynamics(q, qd, tau_fn(t, q, qd))

    q, qd = solve(field, (q0, qd0), ts, solver_name, rtol, atol, dt, max_steps)
    qdd = jax.vmap(lambda t, q_, qd_: system.forward_dynamics(q_, qd_, tau_fn(t, q_, qd_)))(ts, q, qd)
    return q, qd, qdd


def simulate(
    system,
    q0,
    qd0,
    ts,
    tau=None,
    *,
    solver: str = "tsit5",
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
        solver: ``"tsit5"`` (default), ``"dopri5"`` (Dormand-Prince), ``"dopri8"``, ``"rk4"``.
        rtol, atol: tolerances of the adaptive step-size controller.
        dt: a fixed step instead of adaptive stepping.
    """
    if solver not in SOLVERS:
        raise UnknownNameError.for_name("solver", solver, SOLVERS)
    if solver == "rk4" and dt is None:
        raise ValueError("solver 'rk4' has no error estimate: give a fixed step dt=...")
    n = system.dof
    q0 = jnp.asarray(q0)
    dtype = q0.dtype if jnp.issubdtype(q0.dtype, jnp.floating) else jnp.result_type(float)
    q0 = q0.astype(dtype)
    qd0 = jnp.asarray(qd0, dtype)
    ts = jnp.asarray(ts, dtype)
    if q0.shape[-1] != n or qd0.shape != q0.shape or q0.ndim > 2:
        raise ShapeError(
            f"q0 and qd0 must both have shape ({n},) or (B, {n}); got {q0.shape} and {qd0.shape}"
        )
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ShapeError(f"ts must be a 1-D array of at least two times; got shape {ts.shape}")
    args = (solver, rtol, atol, dt, max_steps)
    if q0.ndim == 1:
        q, qd, qdd = _simulate_one(system, q0, qd0, ts, _torque_fn(tau, ts, n, dtype), *args)
        return Rollout(ts, q, qd, qdd)
    batch_tau = tau is not None and not callable(tau) and jnp.ndim(tau) == 3

    def one(q0_, qd0_, tau_):
        return _simulate_one(system, q0_, qd0_, ts, _torque_fn(tau_, ts, n, dtype), *args)

    if batch_tau:
        q, qd, qdd = jax.vmap(one)(q0, qd0, jnp.asarray(tau, dtype))
    else:
        q, qd, qdd = jax.vmap(lambda a, b: one(a, b, tau))(q0, qd0)
    return Rollout(ts, q, qd, qdd)


# --------------------------------------------------------------------------------------
# A fixed-step RK4 scan (training losses, valid prediction time)
# --------------------------------------------------------------------------------------


def _accelerations(model, q, qd, tau):
    """Per-sample forward dynamics; a singular Lagrangian Hessian gives NaN accelerations,
    which end the rollout's valid time instead of raising mid-scan."""
    qdd, singular = model.solve_forward_dynamics(q, qd, tau)
    qdd = jnp.where(singular, jnp.nan, qdd)
    # the state keeps its dtype whatever the model's parameters are (scan carries are typed)
    return qdd.astype(q.dtype)


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

    The same integration as ``simulate(..., solver="rk4", dt=dt/substeps)``
    with torque samples; this second path exists because one ``lax.scan`` without
    diffrax's save-time bookkeeping is several times faster, and a singular Hessian
    gives NaN instead of an exception. ``tests/test_evaluation.py`` checks they agree.
    """
    h = dt / substeps
    frac = jnp.arange(substeps + 1, dtype=q0.dtype) / substeps

    def f(state, u):
        q, qd = state
        return qd, _accelerations(model, q, qd, u)

    def axpy(a, x, y):
        return jax.tree_util.tree_map(lambda xi, yi: yi + a * xi, x, y)

    def sample_interval(state, taus):
        tau_a, tau_b = taus
        u = tau_a + frac[:, None] * (tau_b - tau_a)  # torques at the substep nodes
        u_mid = 0.5 * (u[:-1] + u[1:])

        def substep(s, us):
            u0, um, u1 = us
            k1 = f(s, u0)
            k2 = f(axpy(h / 2, k1, s), um)
            k3 = f(axpy(h / 2, k2, s), um)
            k4 = f(axpy(h, k3, s), u1)
            incr = jax.tree_util.tree_map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
            return axpy(h, incr, s), None

        state, _ = jax.lax.scan(substep, state, (u[:-1], u_mid, u[1:]))
        return state, state

    _, (q, qd) = jax.lax.scan(sample_interval, (q0, qd0), (tau[:-1], tau[1:]))
    return jnp.concatenate([q0[None], q]), jnp.concatenate([qd0[None], qd])


# --------------------------------------------------------------------------------------
# Rollouts in canonical coordinates
# --------------------------------------------------------------------------------------


class CanonicalRollout(NamedTuple):
    """States at the requested times: ``t (T,)``, ``q, p (..., T, n)``."""

    t: Float[Array, " T"]
    q: Float[Array, "*batch T n"]
    p: Float[Array, "*batch T n"]


@eqx.filter_jit
def _canonical_one(model, q0, p0, ts, tau_fn, solver_name, rtol, atol, dt, max_steps):
    def field(t, y, args):
        q, p = y
        return model.canonical_time_derivative(q, p, tau_fn(t, q, p))

    return solve(field, (q0, p0), ts, solver_name, rtol, atol, dt, max_steps)


def simulate_canonical(
    model,
    q0,
    p0,
    ts,
    tau=None,
    *,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 200_000,
) -> CanonicalRollout:
    """Integrate ``(qdot, pdot) = model.canonical_time_derivative(q, p, tau)`` from ``(q0, p0)``.

    ``model`` is an :class:`HNN` or :class:`StructuredHNN` (any system that provides
    ``canonical_time_derivative``). ``q0, p0``: ``(n,)`` or a batch ``(B, n)``; ``ts (T,)``
    increasing save times. ``tau``: ``None``, constant ``(n,)``, samples ``(T, n)``
    at ``ts`` or a callable ``tau(t, q, p)``. Solver options as in
    :func:`lagrax.rollout.simulate`.
    """
    if not model.provides("canonical_time_derivative"):
        raise NotProvidedError(
            f"{type(model).__name__} has no canonical time derivative; use lagrax.rollout.simulate"
        )
    if solver not in SOLVERS:
        raise UnknownNameError.for_name("solver", solver, SOLVERS)
    if solver == "rk4" and dt is None:
        raise ValueError("solver 'rk4' has no error estimate: give a fixed step dt=...")
    n = model.dof
    q0 = jnp.asarray(q0)
    dtype = q0.dtype if jnp.issubdtype(q0.dtype, jnp.floating) else jnp.result_type(float)
    q0, p0, ts = q0.astype(dtype), jnp.asarray(p0, dtype), jnp.asarray(ts, dtype)
    if q0.shape[-1] != n or p0.shape != q0.shape or q0.ndim > 2:
        raise ShapeError(f"q0 and p0 must both have shape ({n},) or (B, {n}); got {q0.shape} and {p0.shape}")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ShapeError(f"ts must be a 1-D array of at least two times; got shape {ts.shape}")
    tau_fn = _torque_fn(tau, ts, n, dtype)
    args = (ts, tau_fn, solver, rtol, atol, dt, max_steps)
    if q0.ndim == 1:
        q, p = _canonical_one(model, q0, p0, *args)
    else:
        q, p = jax.vmap(lambda a, b: _canonical_one(model, a, b, *args))(q0, p0)
    return CanonicalRollout(ts, q, p)
