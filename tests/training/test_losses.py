"""Loss terms as objects (lagrax.training.losses): what a term declares, how terms
combine into one objective, and the checks that come from the terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrax
from tests.helpers import pendulum_data, pendulum_model
from lagrax.core.errors import DatasetError, LagraxError, OutOfRangeError, UnknownNameError
from lagrax.systems.base import QUANTITIES
from lagrax.training import TrainConfig, parse_loss_weights
from lagrax.training import losses as L

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


@pytest.fixture(scope="module")
def data():
    return pendulum_data()


def _batch(ds, fields=("q", "qd", "qdd", "tau")):
    return {f: jnp.asarray(getattr(ds, f)) for f in fields}


def test_every_term_declares_its_fields_target_and_quantities():
    for name, term in L.TERMS.items():
        assert term.name == name and set(term.needs) <= set(QUANTITIES) and term.needs_text
        assert term.target is None or term.target in term.fields
    assert L.Rollout.windows and not any(t.windows for n, t in L.TERMS.items() if n != "rollout")


def test_combined_terms_are_the_weighted_sum_of_the_per_sample_functions(data):
    model, scales = pendulum_model(1.5, 2.0), L.data_scales(data, jnp.float64)
    batch = _batch(data)
    loss = L.combine(L.Inverse(1.0), L.Forward(0.5), L.Power(0.1))
    total, (values, singular) = loss(model, batch, None, scales)
    inv = jnp.mean(jax.vmap(lambda s: L.inverse_loss(model, s, scales))(batch))
    fwd = jnp.mean(jax.vmap(lambda s: L.forward_loss(model, s, scales)[0])(batch))
    pwr = jnp.mean(jax.vmap(lambda s: L.power_loss(model, s, scales))(batch))
    assert list(values) == ["inverse", "forward", "power"] and int(singular) == 0
    np.testing.assert_allclose(
        [values["inverse"], values["forward"], values["power"]], [inv, fwd, pwr], rtol=1e-12
    )
    assert float(total) == pytest.approx(float(inv + 0.5 * fwd + 0.1 * pwr), rel=1e-12)
    per_sample = jax.vmap(lambda s: loss.per_sample(model, s, scales))(batch)
    assert float(jnp.mean(per_sample)) == pytest.approx(float(total), rel=1e-12)


def test_a_zero_weight_switches_a_term_off_and_names_parse_to_terms():
    loss = L.combine(L.Inverse(1.0), L.Power(0.0))
    assert [t.name for t in loss.active] == ["inverse"] and loss.get("power") is None
    parsed = L.parse_loss("power=0.1,inverse", regularization=1e-3)
    assert parsed == L.combine(L.Inverse(1.0), L.Power(0.1))
    assert L.parse_loss("forward=2", regularization=1e-3).get("forward") == L.Forward(
        2.0, regularization=1e-3
    )
    assert TrainConfig(**parse_loss_weights("forward=1,rollout=0.5")).loss() == L.combine(
        L.Forward(1.0, regularization=1e-6), L.Rollout(0.5)
    )
    with pytest.raises(UnknownNameError, match="unknown loss 'powr'.*Did you mean 'power'"):
        L.parse_loss("powr=1")
    with pytest.raises(LagraxError, match="loss weight for 'power' must be a number"):
        parse_loss_weights("power=lots")
    with pytest.raises(LagraxError, match="'inverse' is given twice"):
        L.combine(L.Inverse(1.0), L.Inverse(2.0))
    with pytest.raises(OutOfRangeError, match="weight must be a finite number >= 0"):
        L.Power(-1.0)


def test_the_checks_come_from_the_terms(data):
    mlp = lagrax.make_model("mlp", data.info, key=jax.random.PRNGKey(0), width=8, depth=1, heads="inverse")
    with pytest.raises(L.LossUnavailableError, match="loss 'forward' needs forward dynamics; the mlp model"):
        L.combine(L.Inverse(1.0), L.Forward(1.0)).check_model(mlp)
    with pytest.raises(L.LossUnavailableError, match="loss 'canonical'.*Hamiltonian models"):
        L.combine(L.Canonical(1.0)).check_model(pendulum_model())
    L.combine(L.Inverse(1.0)).check_model(mlp)
    with pytest.raises(DatasetError, match="loss 'canonical' needs momenta 'p'"):
        L.combine(L.Canonical(1.0)).check_data(data)
    states = pendulum_data()
    states.t = np.zeros_like(states.t)
    with pytest.raises(DatasetError, match="loss 'rollout' needs trajectories in time"):
        L.combine(L.Rollout(1.0)).check_data(states)
    passive = pendulum_data()
    passive.tau = np.zeros_like(passive.tau)
    with pytest.raises(DatasetError, match="loss 'power' fits joint torques 'tau'.*passive data"):
        L.combine(L.Power(1.0)).check_data(passive)
    L.combine(L.Forward(1.0)).check_data(passive)
    assert L.combine(L.Canonical(1.0), L.Rollout(1.0)).fields() == ["q", "qd", "p", "pdot", "tau"]
