"""The edge: checked, batched calls of a system's per-sample protocol.

``lagrax.batched(system)`` wraps any :class:`~lagrax.systems.System` (a ground truth or a
trained model) so that each method of the protocol

* accepts one state ``(n,)`` or a batch with any leading axes ``(..., n)`` (arrays,
  lists, integers) and returns the matching shape;
* checks the number of joints and the batch shapes, naming the bad argument;
* runs jitted, ``vmap``-ed in chunks of :data:`BATCH_CHUNK` samples;
* raises instead of handing back NaN: :class:`~lagrax.core.errors.SingularHessianError` where
  a forward-dynamics solve is flagged singular, :class:`~lagrax.core.errors.NotProvidedError`
  for a quantity the system does not provide, and
  :class:`~lagrax.core.errors.NumericalError` where a result is not finite for finite inputs.

This is the only place that checks inputs; the per-sample methods never do, so
controllers, losses and learners call them inside ``jit`` and ``lax.scan`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from lagrax.core.errors import NonFiniteInputError, NumericalError, ShapeError, SingularHessianError
from lagrax.systems.base import System

BATCH_CHUNK = 256  # samples per vmapped chunk of a large batch


def _real_finite(system: System, method: str, name: str, a: Any) -> jax.Array:
    """``a`` as a real floating array, or a NonFiniteInputError naming the argument."""
    raw = np.asarray(a)
    if raw.dtype.kind not in "fiu":
        raise NonFiniteInputError(
            f"{system.info.name}.{method}: {name} has dtype {raw.dtype}; real numbers are needed"
        )
    bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
    if bad:
        raise NonFiniteInputError(f"{system.info.name}.{method}: {name} holds {bad} NaN or inf values")
    a = jnp.asarray(a)
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.result_type(float))


def _check_args(system: System, method: str, names: Sequence[str], args: Sequence[Any]):
    """Arrays of a common floating dtype and their batch shape, or a ShapeError naming the argument."""
    n = system.info.dof
    arrays: list[jax.Array] = []
    batch_shape: tuple[int, ...] = ()
    for name, a in zip(names, args):
        a = _real_finite(system, method, name, a)
        if a.ndim == 0 or a.shape[-1] != n:
            raise ShapeError(
                f"{system.info.name}.{method}: {name} has shape {tuple(a.shape)}, expected (n,) "
                f"or (batch, n) with n = {n} joints ({', '.join(system.info.joint_names)})"
            )
        if not arrays:
            batch_shape = a.shape[:-1]
        elif a.shape[:-1] != batch_shape:
            raise ShapeError(
                f"{system.info.name}.{method}: {name} has batch shape {tuple(a.shape[:-1])}, "
                f"but {names[0]} has {tuple(batch_shape)}"
            )
        arrays.append(a)
    if 0 in batch_shape:  # an empty batch has nothing to compute (and a vmap over it cannot reshape)
        raise ShapeError(
            f"{system.info.name}.{method}: {names[0]} has batch shape {tuple(batch_shape)}, with no "
            "samples; give at least one state"
        )
    # A common dtype (so that float32 parameters meet float64 states consistently).
    dtype = jnp.result_type(*arrays)
    return [a.astype(dtype) for a in arrays], batch_shape


@eqx.filter_jit
def _batched_call(system: eqx.Module, method: str, args: tuple, batch_shape: tuple):
    fn = getattr(system, method)
    if batch_shape == ():
        return fn(*args)
    flat = [a.reshape(-1, a.shape[-1]) for a in args]
    if flat[0].shape[0] <= BATCH_CHUNK:
        out = jax.vmap(fn)(*flat)
    else:
        # vmap over chunks, a loop over the chunks: the intermediates of a chunk stay in
        # cache (measured 4-5x the throughput of one vmap over 65,536 samples on a CPU)
        out = jax.lax.map(lambda xs: fn(*xs), tuple(flat), batch_size=BATCH_CHUNK)
    return jax.tree_util.tree_map(lambda o: o.reshape(batch_shape + o.shape[1:]), out)


def _finite(tree, batch_shape: tuple) -> np.ndarray:
    """Per-sample finiteness of every leaf: a boolean array of ``batch_shape``."""
    ok = np.ones(batch_shape, bool)
    for x in jax.tree_util.tree_leaves(tree):
        x = np.isfinite(np.asarray(x))
        ok &= x.reshape(batch_shape + (-1,)).all(axis=-1)
    return ok


class Batched:
    """The checked, batched edge over ``system``'s per-sample methods (see the module docstring).

    Every method has the per-sample method's name and arguments; each argument may be
    ``(n,)`` or ``(..., n)``. ``batched.system`` is the wrapped system.
    """

    def __init__(self, system: System):
        if not isinstance(system, System):
            raise TypeError(f"lagrax.batched expects a lagrax System, got {type(system).__name__}")
        self.system = system

    def __repr__(self) -> str:
        return f"batched({self.system!r})"

    def _call(self, method: str, names: Sequence[str], args: Sequence[Any], out_method: str | None = None):
        system = self.system
        arrays, batch_shape = _check_args(system, method, names, args)
        out = _batched_call(system, out_method or method, tuple(arrays), batch_shape)
        return _finite(arrays, batch_shape), out

    def _checked(self, method: str, names: Sequence[str], args: Sequence[Any]):
        inputs_ok, out = self._call(method, names, args)
        bad = inputs_ok & ~_finite(out, inputs_ok.shape)
        if np.any(bad):
            name = self.system.info.name
            if method in type(self.system).SINGULAR_METHODS:
                raise SingularHessianError(f"{name}.{method}: {type(self.system).SINGULAR_MESSAGE}")
            raise NumericalError(
                f"{name}.{method} is not finite at {int(np.sum(bad))} of {bad.size} samples with finite "
                "inputs (the state is outside the system's domain, or the model has diverged)"
            )
        return out

    # ---- dynamics ---------------------------------------------------------------------
    def forward_dynamics(self, q, qd, tau):
        """Accelerations ``qdd``; raises :class:`SingularHessianError` where the solve is singular."""
        inputs_ok, (qdd, singular) = self._call(
            "forward_dynamics", ("q", "qd", "tau"), (q, qd, tau), out_method="solve_forward_dynamics"
        )
        # a flagged solve, or (a Cholesky of an indefinite M) a silent NaN: both are singular
        singular = (np.asarray(singular) | ~_finite(qdd, inputs_ok.shape)) & inputs_ok
        if np.any(singular):
            raise SingularHessianError(
                f"{self.system.info.name}.forward_dynamics at {int(np.sum(singular))} of "
                f"{singular.size} samples: {type(self.system).SINGULAR_MESSAGE}"
            )
        return qdd

    def solve_forward_dynamics(self, q, qd, tau, regularization: float = 0.0):
        """``(qdd, singular)`` for a batch; never raises for singular states."""
        system = self.system
        arrays, batch_shape = _check_args(system, "solve_forward_dynamics", ("q", "qd", "tau"), (q, qd, tau))
        lam = jnp.asarray(regularization, arrays[0].dtype)
        return _batched_call(_Regularised(system, lam), "solve", tuple(arrays), batch_shape)

    def inverse_dynamics(self, q, qd, qdd):
        """Generalised joint forces ``tau = M qdd + c + g + friction``."""
        return self._checked("inverse_dynamics", ("q", "qd", "qdd"), (q, qd, qdd))

    def mass_matrix(self, q):
        """``M(q)``, shape ``(..., n, n)``."""
        return self._checked("mass_matrix", ("q",), (q,))

    def coriolis(self, q, qd):
        """Coriolis and centrifugal forces ``c(q, qd)``."""
        return self._checked("coriolis", ("q", "qd"), (q, qd))

    def coriolis_matrix(self, q, qd):
        """``C(q, qd)``, shape ``(..., n, n)``."""
        return self._checked("coriolis_matrix", ("q", "qd"), (q, qd))

    def gravity(self, q):
        """Gravity forces ``g(q) = dV/dq``."""
        return self._checked("gravity", ("q",), (q,))

    def friction(self, q, qd):
        """Dissipative generalised forces."""
        return self._checked("friction", ("q", "qd"), (q, qd))

    def decomposition(self, q, qd, qdd):
        """Dict of ``inertial``, ``coriolis``, ``gravity``, ``friction`` torques."""
        return self._checked("decomposition", ("q", "qd", "qdd"), (q, qd, qdd))

    # ---- energies ---------------------------------------------------------------------
    def kinetic_energy(self, q, qd):
        return self._checked("kinetic_energy", ("q", "qd"), (q, qd))

    def potential_energy(self, q):
        return self._checked("potential_energy", ("q",), (q,))

    def energy(self, q, qd):
        """Total energy of states ``(q, qd)``."""
        return self._checked("energy", ("q", "qd"), (q, qd))

    def lagrangian(self, q, qd):
        return self._checked("lagrangian", ("q", "qd"), (q, qd))

    def momentum(self, q, qd):
        """Canonical momentum ``p = dL/dqd``."""
        return self._checked("momentum", ("q", "qd"), (q, qd))

    def hamiltonian(self, q, p):
        """``H(q, p)`` of canonical states."""
        return self._checked("hamiltonian", ("q", "p"), (q, p))

    def canonical_time_derivative(self, q, p, tau):
        """``(qdot, pdot)`` from Hamilton's equations."""
        return self._checked("canonical_time_derivative", ("q", "p", "tau"), (q, p, tau))

    def power(self, q, qd, tau):
        """Power into the system, ``qd^T (tau - friction)``."""
        return self._checked("power", ("q", "qd", "tau"), (q, qd, tau))

    def energy_rate(self, q, qd, qdd):
        """``dE/dt`` along a motion, from the system's own energy."""
        return self._checked("energy_rate", ("q", "qd", "qdd"), (q, qd, qdd))


class _Regularised(eqx.Module):
    """``system.solve_forward_dynamics`` with a fixed regularisation, as a per-sample method."""

    system: System
    regularization: jax.Array

    def solve(self, q, qd, tau):
        return self.system.solve_forward_dynamics(q, qd, tau, self.regularization)


def batched(system: System) -> Batched:
    """The checked, batched edge of ``system`` (see :class:`Batched`).

    Example::

        dp = lagrax.system("double_pendulum")
        M = lagrax.batched(dp).mass_matrix(np.zeros((1000, 2)))   # (1000, 2, 2)
    """
    return Batched(system)


__all__ = ["BATCH_CHUNK", "Batched", "batched"]
