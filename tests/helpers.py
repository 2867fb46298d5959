"""Helpers shared by the tests: paths, the clean-error check, and a learnable pendulum.

Test modules import from here, never from each other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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


@contextlib.contextmanager
def cheap_compilation():
    """XLA compiles without its costly optimisations inside (in the processes started
    inside too): JAX's ``jax_disable_most_optimizations``, LLVM at -O0 and none of its
    expensive passes. Where a program compiles once and runs for moments, as in most tests,
    compiling is most of the time, and this cuts it by about a third (the CPU time of
    tests/training/test_training.py: 66 s, 47 s with it); the programs compute the same,
    only less fast. (Programs compiled inside stay in JAX's caches for the process.)"""
    name, variable = "jax_disable_most_optimizations", "JAX_DISABLE_MOST_OPTIMIZATIONS"
    before, environment = jax.config.values[name], os.environ.get(variable)
    jax.config.update(name, True)
    os.environ[variable] = "1"
    try:
        yield
    finally:
        jax.config.update(name, before)
        if environment is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = environment


# The shared trained run (the session fixture ``tiny_run`` in tests/conftest.py): a small
# double-pendulum dataset and the settings of a quick DeLaN training (``lagrax train``).
TINY_DATA = ["--trajectories", "4", "--duration", "0.5", "--dt", "0.05", "--seed", "4"]
TINY_TRAIN = ["--epochs", "2", "--lbfgs-epochs", "0", "--width", "8", "--depth", "1", "--no-progress"]


def workspace_with(root: Path, tiny_run: tuple[Path, Path]) -> Path:
    """``root`` holding the shared run's data as ``dp.npz`` (a link: the data never change,
    and a run records its data's resolved path) and a copy of the run as ``run``."""
    data, run = tiny_run
    (root / "dp.npz").symlink_to(data)
    shutil.copytree(run, root / "run")
    return root


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
