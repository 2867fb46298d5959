"""The mechanics core against closed forms, for general and structured Lagrangians."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lagrax
from lagrax.core.errors import ShapeError, SingularHessianError, UnknownNameError
from lagrax.systems.batching import batched

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


def double_pendulum_closed_form(q, qd, m1=1.0, m2=1.0, l1=1.0, l2=1.0, g=9.8):
    """Textbook accelerations of the double pendulum (absolute angles), tau = 0."""
    t1, t2 = q
    w1, w2 = qd
    d = t1 - t2
    den = 2 * m1 + m2 - m2 * np.cos(2 * d)
    a1 = (
        -g * (2 * m1 + m2) * np.sin(t1)
        - m2 * g * np.sin(t1 - 2 * t2)
        - 2 * np.sin(d) * m2 * (w2**2 * l2 + w1**2 * l1 * np.cos(d))
    ) / (l1 * den)
    a2 = (
        2 * np.sin(d) * (w1**2 * l1 * (m1 + m2) + g * (m1 + m2) * np.cos(t1) + w2**2 * l2 * m2 * np.cos(d))
    ) / (l2 * den)
    return np.array([a1, a2])


angles = st.floats(-np.pi, np.pi)
speeds = st.floats(-10, 10)


@given(st.tuples(angles, angles), st.tuples(speeds, speeds))
def test_double_pendulum_matches_closed_form(q, qd):
    dp = lagrax.system("double_pendulum")
    q, qd = np.array(q), np.array(qd)
    got = batched(dp).forward_dynamics(q, qd, np.zeros(2))
    np.testing.assert_allclose(got, double_pendulum_closed_form(q, qd), atol=1e-10, rtol=1e-10)


@given(angles, speeds, st.floats(-5, 5))
def test_pendulum_matches_closed_form(q, qd, tau):
    m, l, g = 1.3, 0.7, 9.81
    p = lagrax.system("pendulum", m=m, l=l, g=g)
    got = batched(p).forward_dynamics(np.array([q]), np.array([qd]), np.array([tau]))
    np.testing.assert_allclose(got, [(tau - m * g * l * np.sin(q)) / (m * l**2)], atol=1e-10)


def test_general_and_structured_paths_agree():
    """The same Lagrangian, given as L(q, qd) or as (M, V), gives the same mechanics."""
    dp = lagrax.system("double_pendulum")
    general = lagrax.lagrangian_system(dp.lagrangian, dof=2)
    rng = np.random.default_rng(0)
    q, qd, qdd = rng.normal(size=(3, 16, 2))
    for method, args in [
        ("forward_dynamics", (q, qd, qdd)),
        ("inverse_dynamics", (q, qd, qdd)),
        ("mass_matrix", (q,)),
        ("coriolis", (q, qd)),
        ("gravity", (q,)),
        ("energy", (q, qd)),
        ("kinetic_energy", (q, qd)),
        ("potential_energy", (q,)),
        ("momentum", (q, qd)),
    ]:
        np.testing.assert_allclose(
            getattr(batched(general), method)(*args),
            getattr(batched(dp), method)(*args),
            atol=1e-10,
            err_msg=method,
        )


def test_energy_rate_equals_power():
    dp = lagrax.system("double_pendulum", damping=0.3)
    rng = np.random.default_rng(1)
    q, qd, tau = rng.normal(size=(3, 8, 2))
    qdd = batched(dp).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(batched(dp).energy_rate(q, qd, qdd), batched(dp).power(q, qd, tau), atol=1e-10)
    # friction only removes energy
    assert np.all(np.sum(np.asarray(qd) * np.asarray(batched(dp).friction(q, qd)), axis=-1) >= 0)


def test_batched_shapes():
    dp = lagrax.system("double_pendulum")
    x = np.zeros((4, 3, 2))
    assert batched(dp).forward_dynamics(x, x, x).shape == (4, 3, 2)
    assert batched(dp).mass_matrix(x).shape == (4, 3, 2, 2)
    assert batched(dp).energy(x, x).shape == (4, 3)
    assert batched(dp).energy(x[0, 0], x[0, 0]).shape == ()


def test_bad_shapes_and_names():
    dp = lagrax.system("double_pendulum")
    with pytest.raises(ShapeError, match="2 joints"):
        batched(dp).forward_dynamics(np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ShapeError, match="batch shape"):
        batched(dp).forward_dynamics(np.zeros((4, 2)), np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(UnknownNameError, match="double_pendulum"):
        lagrax.system("double_pendulumm")
    with pytest.raises(UnknownNameError, match="Allowed"):
        lagrax.system("pendulum", mass=3)


def test_singular_hessian_is_reported_not_nan():
    # L does not depend on qd[1]: the Hessian is singular
    sys = lagrax.lagrangian_system(lambda q, qd: qd[0] ** 2 - jnp.cos(q[0]) - jnp.cos(q[1]), dof=2)
    with pytest.raises(SingularHessianError, match="singular"):
        batched(sys).forward_dynamics(np.ones(2), np.ones(2), np.ones(2))


def test_large_batches_are_chunked_and_equal_per_sample():
    """Batches above BATCH_CHUNK go through lax.map in chunks (with a remainder); the result
    is the same as sample by sample."""
    from lagrax.systems.batching import BATCH_CHUNK

    dp = lagrax.system("double_pendulum")
    rng = np.random.default_rng(3)
    q, qd, tau = rng.normal(size=(3, BATCH_CHUNK * 2 + 7, 2))
    qdd = np.asarray(batched(dp).forward_dynamics(q, qd, tau))
    for i in (0, BATCH_CHUNK, len(q) - 1):
        np.testing.assert_allclose(
            qdd[i], batched(dp).forward_dynamics(q[i], qd[i], tau[i]), rtol=1e-12, atol=1e-12
        )
    M = batched(dp).mass_matrix(q.reshape(-1, 3, 2)[:100])  # leading axes (100, 3) keep their shape
    assert M.shape == (100, 3, 2, 2)
