"""The constrained Lagrangian network (Finzi et al. 2020's CLNN in joint coordinates):
with the true masses and potential it is the chain pendulum; its closed-form terms are
the generic mechanics'; its mass matrix is SPD; it needs known kinematics; it saves."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lagrax
from lagrax.core import mechanics
from lagrax.systems.batching import batched
from lagrax.models.spec import SpecError
from lagrax.systems.rollout import simulate
from lagrax.systems import kinematics_of

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

MASSES, LENGTHS = (1.0, 0.8, 1.3), (0.9, 1.1, 0.7)
CHAIN = lagrax.system("chain_pendulum", n=3, masses=MASSES, lengths=LENGTHS)
angles = st.lists(st.floats(-10.0, 10.0), min_size=3, max_size=3).map(jnp.asarray)
rates = st.lists(st.floats(-8.0, 8.0), min_size=3, max_size=3).map(jnp.asarray)


def clnn(system=CHAIN, key=0, **kw):
    return lagrax.make_model(
        "clnn", system.info, key=jax.random.PRNGKey(key), dtype="float64", width=16, **kw
    )


def with_true_parameters(model, masses, g=9.81):
    """The CLNN that is the chain: ``M_x = diag(masses)``, ``V = g sum m_i y_i``, network off."""
    masses = jnp.asarray(masses)
    raw = jnp.concatenate([jnp.log(jnp.expm1(jnp.sqrt(masses) - model.spec.epsilon)), jnp.zeros(3)])
    linear = jnp.stack([jnp.zeros_like(masses), g * masses], -1).ravel()
    last = model.potential_net.layers[-1]
    return eqx.tree_at(
        lambda m: (m.raw_mass, m.linear, m.potential_net.layers[-1].weight, m.potential_net.layers[-1].bias),
        model,
        (raw, linear, jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )


def random_parameters(model, seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    return eqx.tree_at(
        lambda m: (m.raw_mass, m.linear),
        model,
        (jax.random.normal(keys[0], model.raw_mass.shape), jax.random.normal(keys[1], model.linear.shape)),
    )


@settings(max_examples=25, deadline=None)
@given(q=angles, qd=rates)
@pytest.mark.slow
def test_with_the_true_masses_and_potential_it_is_the_chain_pendulum(q, qd):
    model = with_true_parameters(clnn(), MASSES)
    np.testing.assert_allclose(model.mass_matrix(q), CHAIN.mass_matrix(q), rtol=1e-12, atol=1e-12)
    assert float(model.potential_energy(q)) == pytest.approx(float(CHAIN.potential_energy(q)), abs=1e-12)
    tau = jnp.zeros(3)
    np.testing.assert_allclose(
        model.forward_dynamics(q, qd, tau), CHAIN.forward_dynamics(q, qd, tau), rtol=1e-9, atol=1e-9
    )


@settings(max_examples=25, deadline=None)
@given(q=angles, qd=rates, seed=st.integers(0, 2**31 - 1))
def test_closed_form_terms_match_the_generic_mechanics(q, qd, seed):
    model = random_parameters(clnn(key=seed % 7), seed)
    fast = model.terms(q, qd)
    slow = mechanics.structured_terms(model.mass_matrix, model.potential_energy, q, qd)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(q=angles, seed=st.integers(0, 2**31 - 1))
def test_the_mass_matrix_is_symmetric_positive_definite(q, seed):
    model = random_parameters(clnn(), seed)
    M = np.asarray(model.mass_matrix(q))
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    assert np.linalg.eigvalsh(M).min() > 0


@pytest.mark.slow
def test_a_passive_rollout_conserves_the_models_energy():
    model = random_parameters(clnn(), 3)
    q0, qd0 = np.array([[1.0, -0.5, 2.0]]), np.array([[0.5, 1.0, -1.0]])
    result = simulate(model, q0, qd0, np.linspace(0.0, 3.0, 61), rtol=1e-10, atol=1e-10)
    energy = batched(model).energy(result.q[0], result.qd[0])
    assert np.ptp(energy) < 1e-7 * max(1.0, np.abs(energy).max())


def test_kinematics_are_those_of_the_system_the_info_names():
    assert kinematics_of(CHAIN.info).lengths == LENGTHS
    double = lagrax.system("double_pendulum", l1=0.5, l2=2.0)
    x = kinematics_of(double.info).positions(jnp.array([np.pi / 2, 0.0]))
    np.testing.assert_allclose(x, [[0.5, 0.0], [0.5, -2.0]], atol=1e-12)
    assert clnn(double).kinematics.bodies == 2


@pytest.mark.parametrize("info", [lagrax.system("cartpole").info, lagrax.SystemInfo.make("logged_system", 2)])
def test_a_system_without_known_kinematics_is_a_clean_error(info):
    with pytest.raises(SpecError, match=r"clnn.*known kinematics.*chain_pendulum"):
        lagrax.make_model("clnn", info, key=jax.random.PRNGKey(0))


def test_save_load_round_trip(tmp_path):
    model = random_parameters(clnn(), 5)
    lagrax.save_model(model, tmp_path / "run")
    loaded = lagrax.load_model(tmp_path / "run", system=CHAIN.info)
    q, qd, tau = (np.random.default_rng(0).normal(size=(4, 3)) for _ in range(3))
    np.testing.assert_array_equal(
        batched(model).forward_dynamics(q, qd, tau), batched(loaded).forward_dynamics(q, qd, tau)
    )
    assert loaded.kind == "clnn" and loaded.kinematics == model.kinematics
