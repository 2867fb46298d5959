"""DeLaN's inertia unit (``DeLaNSpec.scale``): a DeLaN at scale ``s`` is the same weights'
DeLaN with ``M``, ``V``, armature and friction times ``s``, through every path (the fused
Cholesky terms, the generic mechanics, both dynamics), and training data far below unit
inertia set it (the Furuta pendulum's 1e-4 kg m^2), while data near unit scale leave it 1."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import lagrax
from lagrax.core import mechanics
from lagrax.core.errors import LagraxError
from lagrax.models.delan import SMALL_INERTIA, inertia_scale

pytestmark = pytest.mark.usefixtures("cheap_compilation")

INFO = lagrax.SystemInfo.make("two", 2, joint_types=("revolute", "prismatic"))


def delan(**kw):
    options = dict(width=8, depth=1, friction="stribeck", armature=True, dtype="float64", **kw)
    return lagrax.make_model("delan", INFO, key=jax.random.PRNGKey(3), **options)


def test_a_scaled_delan_is_the_same_weights_times_the_scale_on_every_path():
    s = 3e-5
    one, scaled = delan(), delan().with_data_statistics(None, None, *_data(s))
    assert scaled.spec.scale == pytest.approx(s, rel=0.05) and one.spec.scale == 1.0
    s = scaled.spec.scale

    def quantities(model, q, qd, qdd):
        tau = model.inverse_dynamics(q, qd, qdd)
        fast = model.terms(q, qd)
        generic = mechanics.structured_terms(model.mass_matrix, model.potential_energy, q, qd)
        M, V, f = model.mass_matrix(q), model.potential_energy(q), model.friction(q, qd)
        return (M, V, f, tau, model.forward_dynamics(q, qd, tau)), fast, generic

    both = jax.jit(jax.vmap(lambda q, qd, qdd: (quantities(one, q, qd, qdd), quantities(scaled, q, qd, qdd))))
    q, qd, qdd = np.random.default_rng(0).normal(size=(3, 4, 2))
    (base, _, _), (mine, fast, generic) = both(q, qd, qdd)
    for a, b in zip(mine[:4], base[:4]):  # M, V, friction, inverse dynamics
        np.testing.assert_allclose(a, s * b, rtol=1e-10)
    np.testing.assert_allclose(mine[4], qdd, rtol=1e-8, atol=1e-10)  # forward undoes inverse
    for a, b in zip(fast, generic):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-18)


def _data(inertia: float, n: int = 500):
    rng = np.random.default_rng(1)
    qdd = rng.normal(size=(n, 2))
    tau = inertia * qdd + 0.1 * inertia * rng.normal(size=(n, 2))
    return qdd, tau


def test_only_data_far_below_unit_inertia_rescale_and_passive_data_never():
    qdd, tau = _data(1e-4)
    assert inertia_scale(qdd, tau) == pytest.approx(1e-4, rel=0.05)
    tau[:, 1] = 0.0  # an unactuated joint does not count
    assert inertia_scale(qdd, tau) == pytest.approx(1e-4, rel=0.05)
    assert inertia_scale(qdd, None) == 1.0 and inertia_scale(qdd, np.zeros_like(qdd)) == 1.0
    near_unit = _data(10 * SMALL_INERTIA)
    assert delan().with_data_statistics(None, None, *near_unit).spec.scale == 1.0
    assert delan().with_data_statistics(None, None, qdd, None).spec.scale == 1.0
    with pytest.raises(LagraxError, match="scale"):
        delan(scale=0.0)
