"""Helpers shared by the tests: paths, the clean-error check, and a learnable pendulum.

Test modules import from here, never from each other.
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import lagrax
from lagrax.data.dataset import Dataset
from lagrax.systems.base import StructuredSystem

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SRC = ROOT / "src" / "lagrax"
SHARED_DATA = ROOT.parent / "shared" / "data"
CHARACTER_FILE = SHARED_DATA / "delan_character_trajectories.npz"


def assert_clean_error(code, err, *fragments):
    """The promise: exit 2 and exactly one line ``error: ...`` naming the problem."""
    assert code == 2, (code, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), (fragment, err)


TRUE_INERTIA, TRUE_GRAVITY = 1.0 * 0.8**2, 1.0 * 9.81 * 0.8  # m l^2, m g l of the data's pendulum


class LearnablePendulum(StructuredSystem):
    """``M = exp(log_a)``, ``V = -exp(log_b) cos q``: a model with two physical parameters."""

    log_a: jax.Array
    log_b: jax.Array

    def mass_matrix(self, q):
        return jnp.exp(self.log_a).reshape(1, 1).astype(q.dtype)

    def potential_energy(self, q):
        return -jnp.exp(self.log_b).astype(q.dtype) * jnp.cos(q[0])


def pendulum_model(a=2.0, b=3.0) -> LearnablePendulum:
    info = lagrax.SystemInfo.make("learnable_pendulum", 1)
    return LearnablePendulum(info=info, log_a=jnp.log(jnp.array(a)), log_b=jnp.log(jnp.array(b)))


def pendulum_data(m=1.0, l=0.8, n_traj=6, steps=25, dt=0.02, seed=0) -> Dataset:
    """Driven pendulum trajectories, integrated in closed form by NumPy RK4 (fine steps),
    so that rollout windows are real motion and nothing needs compiling."""
    g = 9.81
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, n_traj)

    def tau_at(t):
        return 2.0 * np.sin(3.0 * t + phase)

    def qdd_of(q, qd, t):
        return (tau_at(t) - m * g * l * np.sin(q)) / (m * l**2)

    q, qd = rng.uniform(-1.0, 1.0, n_traj), rng.uniform(-1.0, 1.0, n_traj)
    sub, h, rows = 20, dt / 20, []
    for k in range(steps):
        t = k * dt
        rows.append((q, qd, qdd_of(q, qd, t), tau_at(t)))
        for j in range(sub):
            s = t + j * h
            a1 = qdd_of(q, qd, s)
            a2 = qdd_of(q + h / 2 * qd, qd + h / 2 * a1, s + h / 2)
            a3 = qdd_of(q + h / 2 * (qd + h / 2 * a1), qd + h / 2 * a2, s + h / 2)
            a4 = qdd_of(q + h * (qd + h / 2 * a2), qd + h * a3, s + h)
            q, qd = (
                q + h / 6 * (qd + 2 * (qd + h / 2 * a1) + 2 * (qd + h / 2 * a2) + qd + h * a3),
                qd + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4),
            )
    q, qd, qdd, tau = (np.stack([r[i] for r in rows], axis=1).reshape(-1, 1) for i in range(4))
    info = lagrax.SystemInfo.make("pendulum", 1, params=dict(m=m, l=l, g=g))
    return Dataset(
        t=np.tile(np.arange(steps) * dt, n_traj),
        q=q,
        qd=qd,
        qdd=qdd,
        trajectory=np.repeat(np.arange(n_traj), steps),
        tau=tau,
        labels=[f"t{i}" for i in range(n_traj)],
        metadata={"system": info.to_json(), "dt": dt},
    )


def leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))]
