"""DeLaN and LNN models and model save/load: structural guarantees, mechanics identities,
agreement with known Lagrangians, and round trips."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lagrax
from lagrax.core import mechanics
from lagrax.core.errors import LagraxError, ShapeError, SingularHessianError, UnknownNameError
from lagrax.models.friction import LearnedFriction
from lagrax.models.nets import lnn_init_std
from lagrax.systems.rollout import simulate
from lagrax.systems.batching import batched
from lagrax.core.options import FrictionKind, Precision

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

MIXED = lagrax.SystemInfo.make("mixed", 3, joint_types=("revolute", "prismatic", "revolute"))
SMALL = dict(width=16, depth=2)


def delan(key=0, info=MIXED, **kw):
    return lagrax.make_model("delan", info, key=jax.random.PRNGKey(key), dtype="float64", **{**SMALL, **kw})


def lnn(key=0, info=MIXED, **kw):
    return lagrax.make_model("lnn", info, key=jax.random.PRNGKey(key), dtype="float64", **{**SMALL, **kw})


def states(n=3, batch=8, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [scale * x for x in rng.normal(size=(3, batch, n))]


# --------------------------------------------------------------------------------------
# DeLaN structure
# --------------------------------------------------------------------------------------


@given(
    seed=st.integers(0, 2**31 - 1),
    shared=st.booleans(),
    angles=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
    position=st.floats(-10.0, 10.0),
)
def test_delan_mass_matrix_is_spd(seed, shared, angles, position):
    """M = L L^T with a positive diagonal of L: symmetric, positive definite, at any angle
    of the revolute joints and metres of travel of the prismatic one. (A prismatic joint
    enters the network unscaled, so at hundreds of metres M stays SPD by construction but
    its condition number passes 1/eps and no float64 eigenvalue check can confirm it.)"""
    model = delan(seed, shared=shared)
    q = np.array([angles[0], position, angles[1]])
    M = np.asarray(batched(model).mass_matrix(q))
    L = np.asarray(model.cholesky_and_potential(jnp.asarray(q))[0])
    np.testing.assert_array_equal(M, M.T)
    assert np.all(np.diag(L) >= 1e-2)  # softplus(...) + epsilon
    assert np.all(np.triu(L, 1) == 0)
    np.testing.assert_allclose(M, L @ L.T, rtol=1e-12, atol=1e-14 * np.abs(M).max())
    assert np.linalg.eigvalsh(M).min() > 0


def test_delan_epsilon_must_be_positive():
    with pytest.raises(LagraxError, match="epsilon"):
        delan(epsilon=0.0)


@pytest.mark.parametrize("shared, depth", [(False, 2), (True, 2), (True, 1)])
def test_delan_fused_terms_match_generic_core(shared, depth):
    """The Cholesky-based _terms (the fast path) equals mechanics.structured_terms on M and V."""
    model = delan(1, shared=shared, depth=depth)
    q, qd, _ = states(seed=1)
    for i in range(3):
        fast = model.terms(jnp.asarray(q[i]), jnp.asarray(qd[i]))
        generic = mechanics.structured_terms(model.mass_matrix, model.potential_energy, q[i], qd[i])
        for a, b in zip(fast, generic):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared", [False, True])
def test_delan_passivity_mdot_minus_2c_is_skew(shared):
    """Mdot - 2C is skew-symmetric (C from Christoffel symbols), C qd = c, and so qd^T (Mdot qd - 2c) = 0."""
    model = delan(2, shared=shared)
    q, qd, _ = states(seed=2)
    C = np.asarray(batched(model).coriolis_matrix(q, qd))
    c = np.asarray(batched(model).coriolis(q, qd))
    Mdot = np.asarray(jax.vmap(lambda a, b: jax.jvp(model.mass_matrix, (a,), (b,))[1])(q, qd))
    S = Mdot - 2 * C
    np.testing.assert_allclose(S, -np.swapaxes(S, -1, -2), atol=1e-12)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", C, qd), c, atol=1e-12)
    Mdot_qd = np.einsum("bij,bj->bi", Mdot, qd)
    np.testing.assert_allclose(np.einsum("bi,bi->b", qd, Mdot_qd - 2 * c), 0.0, atol=1e-11)


@pytest.mark.parametrize(
    "build", [lambda: delan(3, friction="stribeck"), lambda: delan(3, shared=True), lambda: lnn(3)]
)
def test_inverse_of_forward_is_identity(build):
    model = build()
    q, qd, tau = states(seed=3)
    qdd = batched(model).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(batched(model).inverse_dynamics(q, qd, qdd), tau, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("build", [lambda: delan(4, friction="coulomb"), lambda: lnn(4, friction="viscous")])
def test_decomposition_sums_to_torque(build):
    model = build()
    q, qd, qdd = states(seed=4)
    parts = batched(model).decomposition(q, qd, qdd)
    total = parts["inertial"] + parts["coriolis"] + parts["gravity"] + parts["friction"]
    np.testing.assert_allclose(total, batched(model).inverse_dynamics(q, qd, qdd), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(parts["gravity"], batched(model).gravity(q), atol=1e-12)
    assert np.any(np.abs(parts["friction"]) > 0)


@given(
    kind=st.sampled_from(["viscous", "coulomb", "stribeck"]),
    raw=st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    qd=st.lists(st.floats(-50, 50), min_size=3, max_size=3),
)
def test_learned_friction_is_dissipative(kind, raw, qd):
    """Any raw parameters give non-negative friction parameters, so qd . f >= 0 per joint."""
    f = LearnedFriction(3, FrictionKind.parse(kind), precision=Precision.FLOAT64)
    f = eqx.tree_at(
        lambda m: (m.raw_viscous, m.raw_coulomb, m.raw_stribeck, m.raw_stribeck_velocity),
        f,
        tuple(jnp.full(3, r) for r in raw),
    )
    qd = jnp.asarray(qd)
    force = np.asarray(f(qd))
    assert np.all(np.asarray(qd) * force >= 0)
    jf = f.joint_friction()
    for p in (jf.viscous, jf.coulomb, jf.stribeck, jf.stribeck_velocity):
        assert np.all(np.asarray(p) >= 0)


def test_unknown_friction_and_dtype_are_named():
    with pytest.raises(UnknownNameError, match="friction"):
        delan(friction="sticky")
    with pytest.raises(UnknownNameError, match="dtype"):
        lagrax.make_model("delan", MIXED, key=jax.random.PRNGKey(0), dtype="float16")


# --------------------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------------------


def perturbed_double_pendulum_lnn(seed):
    """An LNN whose network is the double pendulum's Lagrangian plus a random untrained MLP:
    a random Lagrangian with a well-conditioned Hessian."""
    dp = lagrax.system("double_pendulum")
    model = lnn(seed, info=dp.info)

    class Perturbed(eqx.Module):
        net: eqx.Module

        def __call__(self, q, qd):
            return dp.lagrangian(q, qd) + 0.3 * self.net(q, qd)

    return eqx.tree_at(lambda m: m.network, model, Perturbed(model.network))


@pytest.mark.parametrize("build", [lambda: delan(5, friction="stribeck"), lambda: lnn(5, friction="coulomb")])
def test_energy_rate_is_power(build):
    """Along the model's own dynamics dE/dt = qd . (tau - friction), pointwise."""
    model = build()
    q, qd, tau = states(seed=5)
    qdd = batched(model).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(
        batched(model).energy_rate(q, qd, qdd), batched(model).power(q, qd, tau), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: delan(6, info=lagrax.SystemInfo.make("rp", 2, joint_types=("revolute", "prismatic"))),
        lambda: perturbed_double_pendulum_lnn(6),
    ],
)
def test_passive_rollout_conserves_energy(build):
    model = build()
    q0 = np.array([[0.3, -0.2], [1.0, 0.5]])
    qd0 = np.array([[0.5, 0.1], [-0.3, 0.2]])
    r = simulate(model, q0, qd0, np.linspace(0.0, 1.0, 6), solver="tsit5", rtol=1e-10, atol=1e-10)
    E = np.asarray(batched(model).energy(r.q, r.qd))
    assert np.all(np.abs(r.q[:, -1] - q0) > 1e-3)  # it moved
    np.testing.assert_allclose(E, E[:, :1] * np.ones_like(E), rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------------------
# LNN
# --------------------------------------------------------------------------------------


def test_lnn_with_true_lagrangian_reproduces_the_system():
    dp = lagrax.system("double_pendulum")
    model = eqx.tree_at(lambda m: m.network, lnn(info=dp.info), dp.lagrangian)
    q, qd, tau = states(n=2, batch=16, seed=7, scale=2.0)
    np.testing.assert_allclose(
        batched(model).forward_dynamics(q, qd, tau),
        batched(dp).forward_dynamics(q, qd, tau),
        atol=1e-10,
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        batched(model).inverse_dynamics(q, qd, tau),
        batched(dp).inverse_dynamics(q, qd, tau),
        atol=1e-10,
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        batched(model).energy(q, qd), batched(dp).energy(q, qd), atol=1e-10, rtol=1e-10
    )
    assert int(model.singular_count(q, qd, tau)) == 0


def test_lnn_singular_hessian_raises_and_is_counted():
    """A Lagrangian without velocity dependence has d^2L/dqd^2 = 0: the public solve
    raises, the training solve regularises and never raises, singular_count counts it."""
    model = eqx.tree_at(lambda m: m.network, lnn(info=MIXED), lambda q, qd: -jnp.sum(jnp.cos(q)))
    q, qd, tau = states(seed=8)
    with pytest.raises(SingularHessianError):
        batched(model).forward_dynamics(q, qd, tau)
    assert int(model.singular_count(q, qd, tau)) == len(q)
    qdd, singular = jax.vmap(lambda a, b, c: model.solve_forward_dynamics(a, b, c, 1e-3))(q, qd, tau)
    assert np.all(np.isfinite(qdd)) and not np.any(singular)
    np.testing.assert_allclose(
        qdd, (tau + np.sin(q)) / 1e-3, rtol=1e-9
    )  # (lambda I) qdd = dL/dq + tau = sin q + tau


def test_lnn_regularisation_is_small():
    model = lnn(9)
    q, qd, tau = states(seed=9)
    exact = batched(model).forward_dynamics(q, qd, tau)
    reg = jax.vmap(lambda a, b, c: model.solve_forward_dynamics(a, b, c, 1e-6)[0])(q, qd, tau)
    more = jax.vmap(lambda a, b, c: model.solve_forward_dynamics(a, b, c, 1e-2)[0])(q, qd, tau)
    np.testing.assert_allclose(reg, exact, rtol=1e-3)
    assert not np.allclose(more, exact, rtol=1e-3)
    assert np.any(reg != exact)


def test_lnn_init_scheme_follows_the_paper():
    # free_particle=0: the paper's plain network (the default starts at the free particle)
    model = lagrax.make_model(
        "lnn", MIXED, key=jax.random.PRNGKey(0), width=256, depth=3, init="lnn", free_particle=0.0
    )
    layers = model.network.net.layers
    for i, layer in enumerate(layers):
        expected = lnn_init_std(i, len(layers), 256)
        assert np.std(np.asarray(layer.weight)) == pytest.approx(expected, rel=0.15)
        assert np.all(np.asarray(layer.bias) == 0)
    assert lnn_init_std(0, 4, 100) == pytest.approx(0.22)
    assert lnn_init_std(2, 4, 100) == pytest.approx(0.116)
    assert lnn_init_std(3, 4, 100) == pytest.approx(10.0)


def test_the_lnn_starts_as_the_free_particle_with_scaled_velocities():
    """Default LNN: the output layer starts at zero, so L = |qd / s|^2 / 2 and the Hessian is
    I / s^2, positive definite; ``with_data_statistics`` sets s to the data's RMS velocity."""
    model = lagrax.make_model("lnn", lagrax.system("double_pendulum").info, key=jax.random.PRNGKey(0))
    qd = np.array([[3.0, -4.0], [0.0, 0.0]])
    model = model.with_data_statistics(np.zeros((2, 2)), qd)
    s = model.spec.velocity_scale
    assert s == pytest.approx(2.5)  # sqrt(mean(9, 16, 0, 0))
    q, v = np.array([0.3, -0.2]), np.array([1.0, 2.0])
    assert float(model.lagrangian(q, v)) == pytest.approx(0.5 * (v @ v) / s**2, rel=1e-6)
    hessian = np.asarray(model.terms(q, v).hessian)
    np.testing.assert_allclose(hessian, np.eye(2) / s**2, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Batching, dtypes, gradients
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [lambda: delan(10, shared=True, friction="viscous"), lambda: lnn(10)])
def test_batched_equals_per_sample(build):
    model = build()
    q, qd, tau = states(batch=4, seed=10)
    qdd_b = batched(model).forward_dynamics(q, qd, tau)
    tau_b = batched(model).inverse_dynamics(q, qd, qdd_b)
    for i in range(4):  # the edge against the per-sample protocol called directly
        np.testing.assert_allclose(
            qdd_b[i], model.forward_dynamics(q[i], qd[i], tau[i]), rtol=1e-6, atol=1e-6
        )
        np.testing.assert_allclose(
            tau_b[i], model.inverse_dynamics(q[i], qd[i], qdd_b[i]), rtol=1e-6, atol=1e-6
        )
    q3 = q.reshape(2, 2, 3)
    np.testing.assert_allclose(
        batched(model).mass_matrix(q3).reshape(4, 3, 3), batched(model).mass_matrix(q), rtol=1e-12
    )


@pytest.mark.parametrize(
    "kind,kw", [("delan", {}), ("delan", dict(shared=True, friction="stribeck")), ("lnn", {})]
)
def test_float32_and_float64_models_agree(kind, kw):
    q, qd, tau = states(batch=8, seed=11)
    m64 = lagrax.make_model(kind, MIXED, key=jax.random.PRNGKey(0), dtype="float64", **kw)
    m32 = lagrax.make_model(kind, MIXED, key=jax.random.PRNGKey(0), dtype="float32", **kw)
    tau64, tau32 = batched(m64).inverse_dynamics(q, qd, tau), batched(m32).inverse_dynamics(q, qd, tau)
    np.testing.assert_allclose(tau32, tau64, rtol=1e-4, atol=1e-4 * np.abs(tau64).max())
    qdd64, qdd32 = batched(m64).forward_dynamics(q, qd, tau), batched(m32).forward_dynamics(q, qd, tau)
    np.testing.assert_allclose(qdd32, qdd64, rtol=1e-3, atol=1e-3 * np.abs(qdd64).max())
    # float32 states into a float64 model work too
    np.testing.assert_allclose(
        batched(m64).inverse_dynamics(q.astype(np.float32), qd, tau), tau64, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("kind", ["delan", "lnn"])
def test_training_gradient_is_finite_under_jit_and_vmap(kind):
    model = lagrax.make_model(kind, MIXED, key=jax.random.PRNGKey(0))
    q, qd, qdd = (jnp.asarray(x, jnp.float32) for x in states(batch=16, seed=12))
    tau = jnp.ones_like(q)

    @eqx.filter_jit
    def loss(m):
        pred = jax.vmap(m.inverse_dynamics)(q, qd, qdd)
        return jnp.mean((pred - tau) ** 2)

    value, grads = eqx.filter_value_and_grad(loss)(model)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in leaves)


# --------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,kw",
    [
        ("delan", dict(shared=True, friction="stribeck")),
        ("delan", dict(dtype="float64")),
        ("lnn", {}),
        ("mlp", {}),
    ],
)
def test_save_load_round_trip(tmp_path, kind, kw):
    info = MIXED
    model = lagrax.make_model(kind, info, key=jax.random.PRNGKey(3), **{**SMALL, **kw})
    # perturb the leaves so that a fresh skeleton could not pass by accident
    model = jax.tree_util.tree_map(lambda x: x * 1.1 if eqx.is_inexact_array(x) else x, model)
    lagrax.save_model(model, tmp_path / "run")
    loaded = lagrax.load_model(tmp_path / "run", system=info)
    q, qd, qdd = states(seed=13)
    np.testing.assert_array_equal(
        batched(model).inverse_dynamics(q, qd, qdd), batched(loaded).inverse_dynamics(q, qd, qdd)
    )
    assert loaded.kind == kind and loaded.spec == model.spec and loaded.info == info
    assert loaded.info == lagrax.load_model(tmp_path / "run" / "model.json").info


def test_save_refuses_to_overwrite_without_force(tmp_path):
    a, b = delan(0), delan(1)
    lagrax.save_model(a, tmp_path)
    with pytest.raises(lagrax.LagraxError, match="exists"):
        lagrax.save_model(b, tmp_path)
    lagrax.save_model(b, tmp_path, force=True)
    q = states(seed=14)[0]
    np.testing.assert_array_equal(
        batched(lagrax.load_model(tmp_path)).mass_matrix(q), batched(b).mass_matrix(q)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.eqx", "model.json"]  # no temp files left


def test_load_for_another_system_fails_clearly(tmp_path):
    lagrax.save_model(delan(0), tmp_path)
    with pytest.raises(ShapeError, match=r"'mixed' \(3 DoF.*'double_pendulum' \(2 DoF"):
        lagrax.load_model(tmp_path, system=lagrax.system("double_pendulum"))
    other = lagrax.SystemInfo.make("all_revolute", 3)
    with pytest.raises(ShapeError, match="prismatic"):
        lagrax.load_model(tmp_path, system=other)


def test_load_missing_or_corrupt_gives_clear_errors(tmp_path):
    with pytest.raises(LagraxError, match="does not exist"):
        lagrax.load_model(tmp_path / "nothing")
    lagrax.save_model(delan(0), tmp_path / "run")
    (tmp_path / "run" / "model.eqx").write_bytes(b"not a model")
    with pytest.raises(LagraxError, match="corrupt"):
        lagrax.load_model(tmp_path / "run")
    (tmp_path / "run" / "model.json").write_text("{")
    with pytest.raises(LagraxError, match="not valid JSON"):
        lagrax.load_model(tmp_path / "run")
    (tmp_path / "run" / "model.json").unlink()
    with pytest.raises(LagraxError, match="model.json is missing"):
        lagrax.load_model(tmp_path / "run")


def test_save_rejects_non_models(tmp_path):
    with pytest.raises(LagraxError, match="only lagrax models"):
        lagrax.save_model(lagrax.system("pendulum"), tmp_path)
