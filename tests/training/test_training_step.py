"""Tests of the training parts on their own: the state, the step, the epoch.

They check what the next users of the step rely on: an ensemble stepped under ``vmap``
equals its members stepped alone; an online learner steps inside ``lax.scan`` one sample
at a time with a loss written against the public per-sample protocol only; non-finite
steps leave the state as it was; the same ``make_step`` drives optax's L-BFGS exactly as
optax's own loop does; an epoch's minibatches are a permutation of the samples.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lagrax
from lagrax.core.errors import UnknownNameError
from lagrax.core.options import Precision, Schedule
from lagrax.training import (
    TrainConfig,
    TrainState,
    learning_rate_schedule,
    make_epoch,
    make_optimizer,
    make_step,
)
from lagrax.training.batches import Batching
from lagrax.training.step import has_line_search
from tests.helpers import TRUE_GRAVITY, TRUE_INERTIA, pendulum_data, pendulum_model

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def data():
    return pendulum_data()


def arrays(ds, dtype=jnp.float64) -> dict:
    return {k: jnp.asarray(getattr(ds, k), dtype) for k in ("q", "qd", "qdd", "tau")}


def inverse_mse(params, static):
    """A loss written against the public per-sample protocol only."""

    def loss(p, batch):
        model = eqx.combine(p, static)
        tau = jax.vmap(model.inverse_dynamics)(batch["q"], batch["qd"], batch["qdd"])
        return jnp.mean(jnp.sum((tau - batch["tau"]) ** 2, axis=-1))

    return loss


def stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


# --------------------------------------------------------------------------------------
# Ensembles: vmap over the step
# --------------------------------------------------------------------------------------


def test_an_ensemble_under_vmap_equals_its_members_stepped_alone(data):
    models = [
        lagrax.make_model("delan", data.info, key=jax.random.PRNGKey(i), width=8, depth=1, dtype="float64")
        for i in range(3)
    ]
    parts = [eqx.partition(m, eqx.is_inexact_array) for m in models]
    static = parts[0][1]
    optimizer = make_optimizer(TrainConfig(lr=1e-2, dtype="float64"), total_steps=10)
    step = jax.jit(make_step(inverse_mse(None, static), optimizer))
    batch = arrays(data)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)

    ensemble = jax.vmap(lambda p, k: TrainState.create(p, optimizer, k))(stack([p for p, _ in parts]), keys)
    ensemble_step = jax.jit(jax.vmap(make_step(inverse_mse(None, static), optimizer), in_axes=(0, None)))
    alone = [TrainState.create(p, optimizer, k) for (p, _), k in zip(parts, keys)]
    for _ in range(5):
        ensemble, info = ensemble_step(ensemble, batch)
        alone = [step(s, batch)[0] for s in alone]
    assert info.loss.shape == (3,) and bool(jnp.all(info.finite))
    assert [int(s) for s in ensemble.step] == [5, 5, 5]
    for i, solo in enumerate(alone):
        for x, y in zip(jax.tree_util.tree_leaves(member(ensemble, i)), jax.tree_util.tree_leaves(solo)):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    # the members were different models and stayed different
    first = jax.tree_util.tree_leaves(member(ensemble.params, 0))
    second = jax.tree_util.tree_leaves(member(ensemble.params, 1))
    assert any(not np.allclose(x, y) for x, y in zip(first, second))


# --------------------------------------------------------------------------------------
# An online learner: the step inside lax.scan, one sample at a time
# --------------------------------------------------------------------------------------


def test_an_online_learner_identifies_the_pendulum_inside_lax_scan(data):
    params, static = eqx.partition(pendulum_model(1.0, 5.0), eqx.is_inexact_array)

    def sample_loss(p, s):  # one state: (n,) arrays, the per-sample protocol only
        model = eqx.combine(p, static)
        return jnp.sum((model.inverse_dynamics(s["q"], s["qd"], s["qdd"]) - s["tau"]) ** 2)

    optimizer = optax.adam(0.05)
    step = make_step(sample_loss, optimizer)
    buffer = arrays(data)

    @jax.jit
    def learn(state, buffer):
        return jax.lax.scan(step, state, buffer)

    state = TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    first_losses = None
    for _ in range(4):  # four passes over the buffer, one compiled scan each
        state, info = learn(state, buffer)
        first_losses = info.loss if first_losses is None else first_losses
    model = eqx.combine(state.params, static)
    assert float(jnp.exp(model.log_a)) == pytest.approx(TRUE_INERTIA, rel=2e-2)
    assert float(jnp.exp(model.log_b)) == pytest.approx(TRUE_GRAVITY, rel=2e-2)
    assert int(state.step) == 4 * len(data)
    assert float(jnp.mean(info.loss)) < 1e-3 * float(jnp.mean(first_losses))

    # the scan is the same computation as stepping sample by sample
    eager = TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    jit_step = jax.jit(step)
    for k in range(20):
        eager, _ = jit_step(eager, member(buffer, k))
    scanned, _ = learn(
        TrainState.create(params, optimizer, jax.random.PRNGKey(0)), member(buffer, slice(0, 20))
    )
    for x, y in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(scanned)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_a_non_finite_step_leaves_the_state_as_it_was(data):
    params, static = eqx.partition(pendulum_model(), eqx.is_inexact_array)
    optimizer = optax.adam(0.1)
    step = jax.jit(make_step(inverse_mse(None, static), optimizer))
    state = TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    good = arrays(data)
    bad = dict(good, tau=good["tau"].at[3].set(jnp.nan))
    state, _ = step(state, good)
    after, info = step(state, bad)
    assert not bool(info.finite) and not bool(jnp.isfinite(info.loss))
    assert int(after.step) == int(state.step) == 1
    for x, y in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(x, y)
    moved, info = step(after, good)
    assert bool(info.finite) and int(moved.step) == 2
    assert float(moved.params.log_a) != float(after.params.log_a)


def test_has_aux_passes_the_loss_auxiliary_output_through(data):
    params, static = eqx.partition(pendulum_model(), eqx.is_inexact_array)
    mse = inverse_mse(None, static)
    step = make_step(lambda p, b: (mse(p, b), {"twice": 2 * mse(p, b)}), optax.sgd(1e-3), has_aux=True)
    _, info = step(TrainState.create(params, optax.sgd(1e-3), jax.random.PRNGKey(0)), arrays(data))
    assert float(info.aux["twice"]) == pytest.approx(2 * float(info.loss))


# --------------------------------------------------------------------------------------
# L-BFGS through the same make_step
# --------------------------------------------------------------------------------------


def test_make_step_runs_lbfgs_as_optax_documents_it():
    """The step of :func:`make_step` equals optax's documented L-BFGS loop, bit for bit."""
    target = jnp.array([1.0, -2.0, 3.0])

    def value_fn(x):
        return jnp.sum((x - target) ** 2 * jnp.array([1.0, 10.0, 100.0])) + jnp.sum(x**4)

    solver = optax.lbfgs(memory_size=5)
    x0 = jnp.zeros(3)
    assert has_line_search(solver.init(x0)) and not has_line_search(optax.adam(1e-3).init(x0))

    step = jax.jit(make_step(lambda x, _: value_fn(x), solver))
    state = TrainState.create(x0, solver, jax.random.PRNGKey(0))
    x, opt_state = x0, solver.init(x0)
    value_and_grad = optax.value_and_grad_from_state(value_fn)

    @jax.jit
    def reference(x, opt_state):
        value, grad = value_and_grad(x, state=opt_state)
        updates, opt_state = solver.update(grad, opt_state, x, value=value, grad=grad, value_fn=value_fn)
        return optax.apply_updates(x, updates), opt_state

    for _ in range(15):
        state, info = step(state, None)
        x, opt_state = reference(x, opt_state)
        np.testing.assert_array_equal(state.params, x)
    assert bool(info.finite) and int(state.step) == 15
    grad = jax.grad(value_fn)(state.params)
    assert float(jnp.linalg.norm(grad)) < 1e-4


# --------------------------------------------------------------------------------------
# Epochs: a scan of the step over drawn minibatches
# --------------------------------------------------------------------------------------


def test_an_epoch_scans_minibatches_that_permute_the_samples(data):
    n = len(data)
    cfg = TrainConfig(batch_size=n // 5, steps_per_epoch=5)
    batching = Batching.of(cfg, n, rollout=False)
    idx, windows = batching.draw(jax.random.PRNGKey(3), {})
    assert idx.shape == (5, n // 5) and windows.shape == (5, 0)
    assert sorted(np.asarray(idx).ravel().tolist()) == list(range(n))  # every sample once
    other, _ = batching.draw(jax.random.PRNGKey(4), {})
    assert not np.array_equal(idx, other)  # a fresh permutation per epoch key

    params, static = eqx.partition(pendulum_model(1.0, 5.0), eqx.is_inexact_array)
    optimizer = optax.adam(0.05)
    epoch = jax.jit(
        make_epoch(make_step(inverse_mse(None, static), optimizer), batching.draw, gather_samples)
    )
    state = TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    state, info = epoch(state, arrays(data), jax.random.PRNGKey(3))
    assert info.loss.shape == (5,) and int(state.step) == 5

    # the same as five steps on the drawn minibatches, one after the other
    step = jax.jit(make_step(inverse_mse(None, static), optimizer))
    manual = TrainState.create(params, optimizer, jax.random.PRNGKey(0))
    for row in idx:
        manual, _ = step(manual, member(arrays(data), row))
    for x, y in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(manual)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def gather_samples(data, row):
    idx, _ = row
    return member(data, idx)


# --------------------------------------------------------------------------------------
# Options as objects
# --------------------------------------------------------------------------------------


def test_schedule_and_dtype_are_options_written_back_as_names():
    cfg = TrainConfig(schedule="onecycle", dtype="float64")
    assert cfg.schedule is Schedule.ONECYCLE and cfg.dtype is Precision.FLOAT64
    assert cfg.to_dict()["schedule"] == "onecycle" and cfg.to_dict()["dtype"] == "float64"
    assert TrainConfig(schedule=Schedule.ONECYCLE, dtype=Precision.FLOAT64) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UnknownNameError, match="unknown dtype 'float16'"):
        TrainConfig(dtype="float16")


@pytest.mark.parametrize("schedule", list(Schedule))
def test_each_schedule_starts_ends_and_warms_up_as_configured(schedule):
    cfg = TrainConfig(lr=0.1, schedule=schedule, warmup=0.2, final_lr_fraction=0.01)
    lr = learning_rate_schedule(cfg, 100)
    assert float(lr(0)) == pytest.approx(0.0 if schedule is not Schedule.ONECYCLE else 0.1 / 25, abs=1e-9)
    assert float(lr(20)) == pytest.approx(0.1, rel=1e-6)  # peak after the warm-up
    end = {Schedule.COSINE: 1e-3, Schedule.ONECYCLE: 0.1 / 25 / (25 / 0.01), Schedule.CONSTANT: 0.1}
    assert float(lr(100)) == pytest.approx(end[schedule], rel=1e-4)


def test_a_normaliser_never_multiplies_a_loss_by_more_than_its_cap():
    """A constant (or almost constant) channel gets the cap, not 1 / 1e-24 (the losses' MAX_NORMALISER)."""
    from lagrax.training.losses import MAX_NORMALISER, data_scales

    from lagrax.data.generators import generate

    ds = generate(lagrax.system("pendulum"), kind="passive", trajectories=2, duration=0.5, dt=0.05)
    scales = data_scales(ds)
    assert float(scales.tau[0]) == pytest.approx(MAX_NORMALISER)  # tau == 0 everywhere
    assert 0 < float(scales.qdd[0]) < MAX_NORMALISER
    assert float(scales.qdd[0]) == pytest.approx(1 / np.var(ds.qdd[:, 0]), rel=1e-5)


def test_a_constant_nonzero_target_is_weighed_by_its_size():
    """pdot = -m g everywhere (a particle in a uniform field): the normaliser is
    1 / (1e-3 * mean square), not the cap."""
    from lagrax.training.losses import MIN_VARIANCE_FRACTION, data_scales
    from lagrax.data.generators import generate

    ds = generate(
        lagrax.system("relativistic_particle", g=2.0), kind="states", samples=200, qd_range=(-0.5, 0.5)
    )
    assert np.ptp(ds.pdot) < 1e-9  # the rate of the momentum is the field's force
    assert float(data_scales(ds).pdot[0]) == pytest.approx(1 / (MIN_VARIANCE_FRACTION * 4.0), rel=1e-5)
