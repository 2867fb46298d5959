"""The 7-DoF recipe's parts (benchmarks.robot_models): DeLaN's armature prior, both dynamics directions
from one pass, the data-aware recipe, out-of-distribution excitation, and the robot
benchmark's table (run with tiny data)."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lagrax
from lagrax.core.errors import LagraxError, UnknownNameError
from lagrax.models import make_model
from lagrax.data.generators import REGIONS, generate
from lagrax.models import DeLaNSpec, LNNSpec
from lagrax.training import recipe
from lagrax.training.losses import data_scales, forward_loss, inverse_and_forward_loss, inverse_loss

jax.config.update("jax_enable_x64", True)
ARM = lagrax.SystemInfo.make("arm4", 4, joint_types=("revolute",) * 4)


def _state(seed, n=4):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    return tuple(jax.random.normal(ki, (n,), jnp.float64) for ki in k)


@given(seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_armature_is_a_positive_diagonal_under_every_quantity(seed):
    """M = L L^T + diag(a): the smallest eigenvalue is at least min(a); forward inverts inverse."""
    model = make_model("delan", ARM, key=jax.random.PRNGKey(seed), armature="true", dtype="float64")
    model = jax.tree_util.tree_map(lambda x: x, model)
    raw = jnp.linspace(-1.0, 2.0, 4)
    model = eqx_set(model, raw)
    q, qd, qdd, _ = _state(seed)
    M = model.mass_matrix(q)
    L = model.network.cholesky(q)
    assert np.allclose(M, L @ L.T + jnp.diag(jax.nn.softplus(raw)), atol=1e-12)
    assert np.linalg.eigvalsh(np.asarray(M))[0] >= float(jax.nn.softplus(raw).min()) - 1e-12
    assert np.allclose(model.terms(q, qd).mass_matrix, M, atol=1e-12)
    tau = model.inverse_dynamics(q, qd, qdd)
    assert np.allclose(model.forward_dynamics(q, qd, tau), qdd, atol=1e-9)


def eqx_set(model, raw):
    import equinox as eqx

    return eqx.tree_at(lambda m: m.raw_armature, model, raw)


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_model("delan", ARM, key=jax.random.PRNGKey(1), dtype="float64"),
        lambda: make_model("delan", ARM, key=jax.random.PRNGKey(2), armature="true", friction="coulomb"),
        lambda: make_model("lnn", lagrax.system("double_pendulum").info, key=jax.random.PRNGKey(3)),
        lambda: lagrax.system("double_pendulum"),
        lambda: make_model("mlp", ARM, key=jax.random.PRNGKey(4)),
    ],
)
def test_inverse_and_forward_in_one_call_equal_the_two_calls(build):
    model = build()
    n = model.dof
    q, qd, qdd, tau = (x[:n] for x in _state(7))
    inv, (fwd, singular) = model.inverse_and_forward_dynamics(q, qd, qdd, tau)
    assert np.allclose(inv, model.inverse_dynamics(q, qd, qdd), rtol=1e-5, atol=1e-6)
    assert np.allclose(fwd, model.solve_forward_dynamics(q, qd, tau).qdd, rtol=1e-5, atol=1e-6)
    assert not bool(singular)


def test_shared_loss_equals_the_separate_terms():
    ds = generate(lagrax.system("double_pendulum"), "excitation", trajectories=2, duration=1.0, dt=0.05)
    model = make_model("delan", ds.info, key=jax.random.PRNGKey(0), friction="viscous", dtype="float64")
    scales = data_scales(ds, jnp.float64)
    s = {k: jnp.asarray(getattr(ds, k)[5]) for k in ("q", "qd", "qdd", "tau")}
    inv, fwd, singular = inverse_and_forward_loss(model, s, scales)
    assert np.isclose(inv, inverse_loss(model, s, scales))
    assert np.isclose(fwd, forward_loss(model, s, scales)[0])
    assert not bool(singular)


def test_recipe_gives_arms_the_arm_recipe_and_small_systems_the_character_one():
    arm = generate(lagrax.system("ur5"), "excitation", trajectories=1, duration=0.5, dt=0.05)
    small = generate(lagrax.system("pendulum"), "excitation", trajectories=1, duration=0.5, dt=0.05)
    settings_, options = recipe("delan", arm)
    assert settings_ == dict(DeLaNSpec.RECIPE.arm.settings)
    assert settings_["forward"] > 0 and settings_["inverse"] > 0
    assert options["friction"] == "coulomb"
    assert recipe("delan", small) == (dict(DeLaNSpec.RECIPE.settings), {})
    assert recipe("lnn", arm)[0] == dict(LNNSpec.RECIPE.settings)


def test_faster_and_other_region_excitation_leave_the_training_distribution():
    arm = lagrax.system("ur5")
    common = dict(trajectories=6, duration=4.0, dt=0.02)
    base = generate(arm, "excitation", seed=0, **common)
    fast = generate(arm, "excitation", seed=0, speed=2.0, **common)
    upper = generate(arm, "excitation", seed=0, region="upper", **common)
    # the same coefficients twice as fast: velocities about x2, accelerations about x4
    assert np.max(np.abs(fast.qd)) > 1.5 * np.max(np.abs(base.qd))
    assert np.max(np.abs(fast.qdd)) > 3.0 * np.max(np.abs(base.qdd))
    lo, hi = np.asarray(arm.info.position_limits).T
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    # a trajectory's mean over its whole period is its centre
    ids = np.unique(base.trajectory)

    def centres(ds):
        return np.stack([(ds.q[ds.trajectory == i].mean(axis=0) - centre) / half for i in ids])

    assert np.all(np.abs(centres(base)) <= REGIONS["middle"][1] + 1e-2)
    assert np.all(centres(upper) >= REGIONS["upper"][0] - 1e-2)
    # the torques stay those of the system's own inverse dynamics
    tau = lagrax.batched(arm).inverse_dynamics(fast.q, fast.qd, fast.qdd)
    assert np.allclose(tau, fast.tau, atol=1e-8)


@pytest.mark.parametrize("bad", [dict(speed=0.0), dict(speed=float("nan")), dict(region="left")])
def test_bad_speed_or_region_is_named(bad):
    with pytest.raises((LagraxError, UnknownNameError), match="speed|region"):
        generate(lagrax.system("pendulum"), "excitation", trajectories=1, duration=1.0, **bad)


@pytest.mark.slow
def test_robot_benchmark_prints_a_row_per_model_and_data_split(tmp_path, capsys):
    from benchmarks import robot_models

    out = tmp_path / "robots.md"
    assert robot_models.main(["--quick", "--systems", "ur5", "--models", "delan,mlp", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ur5 |")]
    assert len(rows) == 2 * len(robot_models.SPLITS)
    assert "learned friction, ur5" in table and out.read_text().startswith("| arm |")
    with pytest.raises(SystemExit):  # no silent overwrite
        robot_models.parse_args(["--out", str(out)])
