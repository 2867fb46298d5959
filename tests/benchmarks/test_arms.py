"""The 7-DoF recipe's parts (benchmarks.robot_models): DeLaN's armature prior, both dynamics directions
from one pass, the data-aware recipe, out-of-distribution excitation, and the robot
benchmark's table (run with tiny data)."""

from __future__ import annotations


import equinox as eqx
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
    raw = jnp.linspace(-1.0, 2.0, 4)
    q, qd, qdd, _ = _state(seed)
    M, L, terms_M, qdd_again = (
        np.asarray(x) for x in _armature_quantities(jax.random.PRNGKey(seed), raw, q, qd, qdd)
    )
    a = np.asarray(jax.nn.softplus(raw))
    assert np.allclose(M, L @ L.T + np.diag(a), atol=1e-12)
    assert np.linalg.eigvalsh(M)[0] >= a.min() - 1e-12
    assert np.allclose(terms_M, M, atol=1e-12)
    assert np.allclose(qdd_again, qdd, atol=1e-9)


@jax.jit
def _armature_quantities(key, raw, q, qd, qdd):
    """A DeLaN with armature ``softplus(raw)``: ``M(q)``, its Cholesky factor ``L``, the mass
    matrix of ``terms``, and the forward dynamics of its own inverse dynamics of ``qdd``
    (one compiled program: run op by op, these took seconds of small compilations)."""
    model = make_model("delan", ARM, key=key, armature="true", dtype="float64")
    model = eqx.tree_at(lambda m: m.raw_armature, model, raw)
    tau = model.inverse_dynamics(q, qd, qdd)
    return (
        model.mass_matrix(q),
        model.network.cholesky(q),
        model.terms(q, qd).mass_matrix,
        model.forward_dynamics(q, qd, tau),
    )


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
    inv, fwd, singular, inv_alone, fwd_alone = _one_call_and_two(build, _state(7))
    assert np.allclose(inv, inv_alone, rtol=1e-5, atol=1e-6)
    assert np.allclose(fwd, fwd_alone, rtol=1e-5, atol=1e-6)
    assert not bool(singular)


@eqx.filter_jit
def _one_call_and_two(build, state):
    """The model of ``build`` and its inverse and forward dynamics at ``state`` in one call,
    then in two, as one compiled program (op by op, these were seconds of small compilations)."""
    model = build()
    q, qd, qdd, tau = (x[: model.dof] for x in state)
    inv, (fwd, singular) = model.inverse_and_forward_dynamics(q, qd, qdd, tau)
    return (
        inv,
        fwd,
        singular,
        model.inverse_dynamics(q, qd, qdd),
        model.solve_forward_dynamics(q, qd, tau).qdd,
    )


def test_shared_loss_equals_the_separate_terms():
    ds = generate(lagrax.system("double_pendulum"), "excitation", trajectories=2, duration=1.0, dt=0.05)
    scales = data_scales(ds, jnp.float64)
    s = {k: jnp.asarray(getattr(ds, k)[5]) for k in ("q", "qd", "qdd", "tau")}
    (inv, fwd, singular), inv_alone, fwd_alone = _shared_and_separate_losses(ds.info, s, scales)
    assert np.isclose(inv, inv_alone)
    assert np.isclose(fwd, fwd_alone)
    assert not bool(singular)


@eqx.filter_jit
def _shared_and_separate_losses(info, sample, scales):
    """A DeLaN with viscous friction, and its two losses from one pass, then each alone (one
    compiled program: op by op, the model's construction alone took seconds of compilations)."""
    model = make_model("delan", info, key=jax.random.PRNGKey(0), friction="viscous", dtype="float64")
    together = inverse_and_forward_loss(model, sample, scales)
    return together, inverse_loss(model, sample, scales), forward_loss(model, sample, scales)[0]


def test_recipe_gives_arms_the_arm_recipe_and_small_systems_the_character_one():
    arm = generate(lagrax.system("ur5"), "excitation", trajectories=1, duration=0.5, dt=0.05)
    small = generate(lagrax.system("pendulum"), "excitation", trajectories=1, duration=0.5, dt=0.05)
    settings_, options = recipe("delan", arm)
    assert settings_ == dict(DeLaNSpec.RECIPE.arm.settings)
    assert settings_["forward"] > 0 and settings_["inverse"] > 0
    assert options["friction"] == "coulomb"
    assert recipe("delan", small) == (dict(DeLaNSpec.RECIPE.settings), {})
    assert recipe("lnn", arm)[0] == dict(LNNSpec.RECIPE.settings)


def test_many_driven_samples_of_a_small_system_get_the_arm_recipe_and_passive_ones_do_not():
    from lagrax.training.config import LARGE_DATA

    pendulum = lagrax.system("pendulum")
    driven = generate(pendulum, "excitation", trajectories=LARGE_DATA // 100, duration=0.99, dt=0.01)
    fewer = generate(pendulum, "excitation", trajectories=LARGE_DATA // 100 - 1, duration=0.99, dt=0.01)
    passive = generate(pendulum, "passive", trajectories=LARGE_DATA // 100, duration=0.99, dt=0.01)
    assert len(driven) == LARGE_DATA and len(fewer) < LARGE_DATA and len(passive) == LARGE_DATA
    assert recipe("delan", driven) == (
        dict(DeLaNSpec.RECIPE.arm.settings),
        dict(DeLaNSpec.RECIPE.arm.options),
    )
    assert recipe("delan", fewer) == (dict(DeLaNSpec.RECIPE.settings), {})
    assert recipe("delan", passive)[1] == {}  # passive data: the small-system recipe's options


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
