"""The energy-based swing-up and LQR balance (issue 26): the true model swings the true plant
up, learned dissipation never adds energy, the LQR of a linearisation balances the plant, and
bad input gets one error line."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from lagrax.control import swing_up as su
from lagrax.core.options import FrictionKind, Precision
from lagrax.models import make_model
from lagrax.models.friction import learned_friction
from tests.helpers import assert_clean_error, workspace_with

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def x64():
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def test_the_true_model_swings_the_true_furuta_pendulum_up(x64):
    """Short and deterministic: two hanging starts, the plant with dry friction, 2.5 s."""
    plant = su.with_plant_friction(lagrax.system("furuta"))
    settings = su.SwingUpSettings(duration=2.5, hold=0.5)
    law = su.swing_up_law(plant, settings)
    q0, qd0 = su.initial_states(plant.info, 2, seed=0)
    assert np.all(np.abs(q0[:, 1]) < 0.35)  # hanging (alpha = 0 is down)
    trace = su.swing_up(plant, plant, law, q0, qd0, settings)
    m = su.swing_up_metrics(plant, law, trace, settings)
    assert m["success"] == [True, True] and m["faults"] == 0
    assert all(0.1 < t < 2.0 for t in m["time_to_upright"])
    assert m["mean_energy_error"] < 0.2  # the energy law aims 10 % above the top
    tau = np.asarray(trace.tau)
    assert np.all(tau[..., 1] == 0.0)  # the pendulum is never driven
    assert np.abs(tau[..., 0]).max() <= law.torque_limit + 1e-12
    again = su.swing_up(plant, plant, law, q0, qd0, settings)
    np.testing.assert_array_equal(np.asarray(again.q), np.asarray(trace.q))


def test_learned_dissipation_is_non_negative(x64):
    """Whatever its raw parameters, DeLaN's learned friction (the module ``make_model("delan",
    ..., friction="stribeck")`` builds) only removes energy: qd . f >= 0."""
    info = lagrax.system("cartpole").info
    friction = learned_friction(FrictionKind.STRIBECK, info.dof, Precision.FLOAT32)
    raw = ("raw_viscous", "raw_coulomb", "raw_stribeck", "raw_stribeck_velocity")

    @jax.jit
    def least_power(values, qd):
        f = eqx.tree_at(lambda m: [getattr(m, name) for name in raw], friction, list(values))
        return jnp.min(jnp.sum(qd * jax.vmap(f)(qd), axis=-1))

    for k in jax.random.split(jax.random.PRNGKey(1), 5):
        values = (jax.random.normal(k, (len(raw), info.dof)) * 3.0).astype(jnp.float32)
        qd = (jax.random.normal(k, (256, info.dof)) * 2.0).astype(jnp.float32)
        assert float(least_power(values, qd)) >= 0.0
    # and the plant's dissipation the swing-up fights is too
    plant = su.with_plant_friction(lagrax.system("cartpole"))
    qd = np.random.default_rng(2).normal(size=(64, 2))
    assert np.all(np.einsum("bi,bi->b", qd, jax.vmap(plant.friction_model)(jnp.asarray(qd))) >= 0)


def test_lqr_of_a_linearisation_balances_the_true_plant_near_the_top(x64):
    """The identified model (nominal parameters, friction ignored) linearised by jax.jacfwd:
    its discrete LQR balances the cart-pole with dry friction and 10 % heavier pole."""
    model = lagrax.system("cartpole")
    plant = su.with_plant_friction(lagrax.system("cartpole", mp=0.127 * 1.1))
    settings = su.SwingUpSettings(duration=1.5, hold=0.5)
    law = su.balance_law(model, settings)
    A, B = su.linearisation(model, np.array(su.UPRIGHT["cartpole"]), 0)
    closed = np.linalg.eigvals(A - B @ np.asarray(law.lqr_gain)[None])
    assert np.linalg.eigvals(A).real.max() > 1.0 and closed.real.max() < 0  # unstable open, stable closed
    q0, qd0 = su.near_top_states(plant.info, 3, seed=0, spread=0.08)
    m = su.swing_up_metrics(plant, law, su.swing_up(plant, model, law, q0, qd0, settings), settings)
    assert m["success"] == [True, True, True]


def test_bad_input(x64, cli, tmp_path, tiny_run):
    with pytest.raises(su.SwingUpError, match="every joint of double_pendulum is actuated"):
        su.swing_up_law(lagrax.system("double_pendulum"))
    ws = workspace_with(tmp_path, tiny_run)
    out = str(tmp_path / "s.npz")
    code, _, err = cli("control", "--system", "two_link_arm", "--task", "swing-up", "--out", out)
    assert_clean_error(code, err, "needs an under-actuated system", "two_link_arm")
    code, _, err = cli("control", ws / "run", "--system", "cartpole", "--task", "swing-up", "--out", out)
    assert_clean_error(code, err, "trained on double_pendulum", "not on cartpole")
    code, _, err = cli("control", "--system", "cartpole", "--task", "swingup", "--out", out)
    assert_clean_error(code, err, "unknown task 'swingup'", "swing-up")
    code, _, err = cli("control", "--system", "cartpole", "--task", "swing-up", "--count", "0", "--out", out)
    assert_clean_error(code, err, "--count must be at least 1")
    assert not list(tmp_path.glob("s*"))
    with pytest.raises(su.SwingUpError, match="cannot provide"):
        mlp = make_model("mlp", lagrax.system("cartpole").info, key=jax.random.PRNGKey(0), width=8, depth=1)
        su.check_swing_up_model(mlp, lagrax.system("cartpole"))
