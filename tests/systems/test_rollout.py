"""The rollout module: solver names and objects, the shared validation, singular solves,
and the one fixed-step RK4 step against diffrax.

(The fixed-step RK4 scan against diffrax's RK4 is checked in test_evaluation.py.)
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.core.errors import (
    NotProvidedError,
    NumericalError,
    ShapeError,
    SingularHessianError,
    UnknownNameError,
)
from lagrax.systems.rollout import RK4, SolverName, parse_solver, rk4_step, simulate, simulate_canonical

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

TS = np.linspace(0.0, 0.5, 6)


@pytest.fixture(scope="module")
def pendulum():
    return lagrax.system("double_pendulum")


def test_parse_solver_accepts_names_members_and_objects():
    assert isinstance(parse_solver("tsit5"), diffrax.Tsit5)
    assert isinstance(parse_solver(SolverName.DOPRI8), diffrax.Dopri8)
    assert isinstance(parse_solver("rk4"), RK4)
    solver = diffrax.Heun()
    assert parse_solver(solver) is solver
    with pytest.raises(UnknownNameError, match="unknown solver 'tsit'. Did you mean 'tsit5'"):
        parse_solver("tsit")


def test_a_solver_object_gives_the_same_rollout_as_its_name(pendulum):
    q0, qd0 = np.array([0.3, -0.2]), np.array([0.5, 1.0])
    by_name = simulate(pendulum, q0, qd0, TS, solver="dopri5", rtol=1e-10, atol=1e-10)
    by_object = simulate(pendulum, q0, qd0, TS, solver=diffrax.Dopri5(), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(by_name.q, by_object.q)
    # a fixed-step solver that diffrax ships, not known by name, works as well
    heun = simulate(pendulum, q0, qd0, TS, solver=diffrax.Heun(), dt=1e-4)
    np.testing.assert_allclose(heun.q, by_name.q, atol=1e-6)


def test_adaptive_steps_need_an_error_estimate(pendulum):
    with pytest.raises(ValueError, match="no error estimate.*dt="):
        simulate(pendulum, np.zeros(2), np.zeros(2), TS, solver="rk4")
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        simulate(pendulum, np.zeros(2), np.zeros(2), TS, solver="rk4", dt=0.0)


@pytest.mark.parametrize("rollout", [simulate, simulate_canonical])
def test_both_rollouts_share_one_validation(pendulum, rollout):
    """The same bad input gets the same message from both rollouts (one validation)."""
    hnn = lagrax.make_model("hnn_structured", pendulum.info, key=jax.random.PRNGKey(0), width=8)
    system = pendulum if rollout is simulate else hnn
    with pytest.raises(ShapeError, match=r"shape \(2,\) or \(B, 2\)"):
        rollout(system, np.zeros(3), np.zeros(3), TS)
    with pytest.raises(ShapeError, match="ts must be a 1-D array"):
        rollout(system, np.zeros(2), np.zeros(2), [0.0])
    with pytest.raises(ShapeError, match=r"tau must be None, a callable, or of shape \(2,\) or \(6, 2\)"):
        rollout(system, np.zeros(2), np.zeros(2), TS, np.zeros((5, 2)))


@pytest.mark.slow
def test_batched_torque_samples_drive_each_initial_state(pendulum):
    q0, qd0 = np.array([[0.1, 0.2], [0.3, -0.1]]), np.zeros((2, 2))
    tau = np.stack([np.full((6, 2), 0.5), np.full((6, 2), -0.5)])
    batch = simulate(pendulum, q0, qd0, TS, tau)
    for k in range(2):
        alone = simulate(pendulum, q0[k], qd0[k], TS, tau[k, 0])
        np.testing.assert_allclose(batch.q[k], alone.q, atol=1e-7)


def test_canonical_rollout_needs_a_canonical_model(pendulum):
    with pytest.raises(NotProvidedError, match="canonical time derivative"):
        simulate_canonical(pendulum, np.zeros(2), np.zeros(2), TS)


@pytest.mark.parametrize("options", [{}, {"solver": "rk4", "dt": 0.01}])
@pytest.mark.slow
def test_a_singular_hessian_ends_the_rollout_with_a_clear_error(options):
    """L = qd0^2 - cos q0 - cos q1 has no qd1 term: its Hessian is singular everywhere. The
    adaptive solve must not reject steps until max_steps, the fixed one not return NaN."""
    system = lagrax.lagrangian_system(lambda q, qd: qd[0] ** 2 - jnp.cos(q[0]) - jnp.cos(q[1]), dof=2)
    with pytest.raises(SingularHessianError, match="Hessian d\\^2L/dqd\\^2 is singular"):
        simulate(system, np.zeros(2), np.ones(2), TS, **options)
    with pytest.raises(SingularHessianError, match=r"initial states \[0, 1\]"):
        simulate(system, np.zeros((2, 2)), np.ones((2, 2)), TS, **options)


@pytest.mark.slow
def test_a_hessian_that_becomes_singular_is_named_with_its_time_and_state():
    """L = qd0^2/2 - qd0^4/12 + q0 + qd1^2/2: the Hessian diag(1 - qd0^2, 1) is singular at
    qd0 = 1 and indefinite beyond. From rest, qdd0 = 1 / (1 - qd0^2), so qd0 - qd0^3/3 = t
    and qd0 reaches 1 at t = 2/3. The error names that time and the state, and carries
    the trajectory computed so far (finite before, NaN after)."""

    def L(q, qd):
        return 0.5 * qd[0] ** 2 - qd[0] ** 4 / 12 + q[0] + 0.5 * qd[1] ** 2

    system = lagrax.lagrangian_system(L, dof=2)
    ts = np.linspace(0.0, 2.0, 41)
    for options in ({}, {"solver": "rk4", "dt": 1e-3}):
        with pytest.raises(SingularHessianError, match=r"at t = [0-9.]+, q = \[.*indefinite") as info:
            simulate(system, np.zeros(2), np.zeros(2), ts, **options)
        err = info.value
        assert abs(err.time - 2 / 3) < 0.02
        assert abs(float(err.state[1][0]) - 1.0) < 0.1  # qd0 at the singular set
        qd = np.asarray(err.partial.qd)[:, 0]
        before = ts < err.time - 1e-9
        assert np.all(np.isfinite(qd[before])) and np.all(np.isnan(qd[~before]))
        assert np.all(qd[before] < 1.0)


def test_a_rollout_that_blows_up_stops_with_the_part_computed_so_far():
    """qdd = q^3 (V = -q^4/4) from q = qd = 1 escapes to infinity in finite time (t < 2)."""
    system = lagrax.lagrangian_system(lambda q, qd: 0.5 * qd[0] ** 2 + 0.25 * q[0] ** 4, dof=1)
    ts = np.linspace(0.0, 3.0, 31)
    with pytest.raises(NumericalError, match=r"(blew up|did not reach the last time).*") as info:
        simulate(system, np.ones(1), np.ones(1), ts, max_steps=4096)
    err = info.value
    assert 0.5 < err.time < 2.0
    q = np.asarray(err.partial.q)[:, 0]
    assert np.isfinite(q[0]) and q[0] == 1.0 and np.isnan(q[-1])
    assert np.all(np.diff(q[np.isfinite(q)]) > 0)  # the computed part: an accelerating escape


# --------------------------------------------------------------------------------------
# The one fixed-step RK4 step (rollout loss, valid prediction time, control plant)
# --------------------------------------------------------------------------------------


def _rk4_steps(system, q0, qd0, tau, h, steps):
    """``steps`` scanned :func:`rk4_step` under a constant torque; the states after each."""

    def step(state, _):
        state = rk4_step(system, state, (tau, tau, tau), h)
        return state, state

    _, (q, qd) = jax.lax.scan(step, (q0, qd0), None, length=steps)
    return q, qd


@pytest.mark.parametrize("name", ["pendulum", "double_pendulum"])
@pytest.mark.slow
def test_the_rk4_step_agrees_with_diffrax(name):
    """Scanned, the one RK4 step is diffrax's RK4 tableau (to rounding) and close to an
    adaptive Tsit5 reference (to RK4's truncation error)."""
    system = lagrax.system(name, damping=0.1)
    n = system.dof
    q0, qd0 = jnp.linspace(0.4, -0.3, n), jnp.linspace(-0.5, 1.0, n)
    tau = jnp.linspace(0.2, -0.1, n)
    h, steps = 1e-3, 400
    ts = h * np.arange(steps + 1)
    q, qd = eqx.filter_jit(_rk4_steps)(system, q0, qd0, tau, h, steps)
    fixed = simulate(system, q0, qd0, ts, tau, solver="rk4", dt=h)
    np.testing.assert_allclose(q, fixed.q[1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(qd, fixed.qd[1:], rtol=0, atol=1e-12)
    adaptive = simulate(system, q0, qd0, ts, tau, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q, adaptive.q[1:], rtol=0, atol=1e-10)
    np.testing.assert_allclose(qd, adaptive.qd[1:], rtol=0, atol=1e-10)


def test_the_rk4_step_gives_nan_states_at_a_singular_solve():
    """Per sample and unchecked: a singular Hessian ends in NaN states, not an exception."""
    free = lagrax.lagrangian_system(lambda q, qd: 0.0 * qd @ qd - q @ q, dof=2)
    q, qd = rk4_step(free, (jnp.ones(2), jnp.ones(2)), (jnp.zeros(2),) * 3, 0.01)
    assert np.all(np.isnan(q)) and np.all(np.isnan(qd))
