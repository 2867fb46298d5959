"""``chain_pendulum``: N links that reduce to the pendulum (N = 1) and the double pendulum
(N = 2), conserve energy, and have a positive definite mass matrix."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lagrax
from lagrax.systems.batching import batched
from lagrax.systems.rollout import simulate
from lagrax.systems.parameters import ParameterError

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

jax.config.update("jax_enable_x64", True)
RNG = np.random.default_rng(0)


def _same_dynamics(a, b, n, samples=20):
    q, qd, tau = (RNG.uniform(-3, 3, (samples, n)) for _ in range(3))
    for method, args in (
        ("mass_matrix", (q,)),
        ("potential_energy", (q,)),
        ("forward_dynamics", (q, qd, tau)),
    ):
        np.testing.assert_allclose(
            getattr(batched(a), method)(*args), getattr(batched(b), method)(*args), rtol=1e-12, atol=1e-12
        )


def test_one_link_is_the_pendulum():
    _same_dynamics(
        lagrax.system("chain_pendulum", n=1, masses=1.3, lengths=0.7, g=9.7),
        lagrax.system("pendulum", m=1.3, l=0.7, g=9.7),
        1,
    )


def test_two_links_are_the_double_pendulum():
    chain = lagrax.system("chain_pendulum", n=2, masses=[1.5, 0.7], lengths=[0.8, 1.3], g=9.8)
    _same_dynamics(chain, lagrax.system("double_pendulum", m1=1.5, m2=0.7, l1=0.8, l2=1.3, g=9.8), 2)


def test_five_links_conserve_energy():
    chain = lagrax.system(
        "chain_pendulum", n=5, masses=[1.0, 0.8, 1.2, 0.9, 1.1], lengths=[1.0, 0.7, 1.3, 0.9, 1.1]
    )
    q0, qd0 = RNG.uniform(-1.5, 1.5, (3, 5)), RNG.uniform(-1, 1, (3, 5))
    r = simulate(chain, q0, qd0, np.linspace(0, 3, 61), rtol=1e-10, atol=1e-10)
    e = batched(chain).energy(r.q.reshape(-1, 5), r.qd.reshape(-1, 5)).reshape(3, 61)
    assert np.max(np.abs(e - e[:, :1])) < 1e-6 * np.max(np.abs(e))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_the_mass_matrix_is_symmetric_positive_definite(n, seed):
    rng = np.random.default_rng(seed)
    chain = lagrax.system(
        "chain_pendulum", n=n, masses=list(rng.uniform(0.1, 3, n)), lengths=list(rng.uniform(0.1, 3, n))
    )
    M = np.asarray(chain.mass_matrix(rng.uniform(-np.pi, np.pi, n)))
    np.testing.assert_allclose(M, M.T, atol=1e-14)
    assert np.min(np.linalg.eigvalsh(M)) > 0


@pytest.mark.parametrize(
    "params, fragment",
    [
        (dict(n=0), "n must be"),
        (dict(n=2.5), "n must be"),
        (dict(n=3, masses=[1, 1]), "one value per link"),
        (dict(n=2, lengths=[1, -1]), "positive"),
        (dict(n=2, g=-1), "non-negative"),
    ],
)
def test_bad_parameters_are_named(params, fragment):
    with pytest.raises(ParameterError, match=fragment):
        lagrax.system("chain_pendulum", **params)


def test_the_cli_takes_per_link_lists(cli, tmp_path):
    out = tmp_path / "c.npz"
    code, _, err = cli(
        "generate", "--system", "chain_pendulum", "-p", "n=3", "-p", "masses=1,2,3", "--kind", "passive",
        "--trajectories", "2", "--duration", "0.5", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    ds = lagrax.data.dataset.load_dataset(out)
    assert ds.dof == 3 and dict(ds.info.params)["masses"] == (1.0, 2.0, 3.0)
