"""The host bridge: numpy kernels of a simulator on the host as JAX functions.

The ground-truth engines (Pinocchio in :mod:`lagrax.systems.robots`, MuJoCo in
:mod:`lagrax.systems.mjcf`) run on the host. Each wraps its model in an *engine*
object (hashable by identity, with the number of coordinates ``nv``) whose **kernels**
are batched numpy methods: ``(B, n)`` arrays in, a tuple of ``(B, ...)`` arrays out.
This module turns them into per-sample JAX functions:

* :func:`host_call` runs a kernel through ``jax.pure_callback``; under ``vmap`` the
  kernel sees every batch axis at once, so a batch is one Python call, not one per sample;
* :func:`host_function` makes ``f(engine, *xs)``, the kernel's first output, a
  ``jax.custom_jvp`` function differentiated by the host's own derivatives: a rule from
  :func:`by_jacobians` (a kernel that returns the value and its Jacobians), from
  :func:`by_tangent` (a kernel that returns the directional derivative) or a hand-written
  rule ``rule(engine, primals, tangents) -> (value, tangent)``.

First derivatives work in forward and reverse mode; second derivatives are not defined
(the learned models never differentiate the ground truth twice). This module does not
know any engine.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

#: A batched numpy method of an engine class: ``kernel(engine, *arrays)``, ``(B, n)`` arrays in,
#: a tuple of ``(B, ...)`` arrays out.
Kernel = Callable[..., Sequence[np.ndarray]]
#: The per-sample shape of one kernel output for an engine with ``n`` coordinates.
Shape = Callable[[int], tuple[int, ...]]
#: A JVP rule ``rule(engine, primals, tangents) -> (value, tangent)``.
Rule = Callable[[Any, tuple, tuple], tuple[Array, Array]]


def scalar(n: int) -> tuple[int, ...]:
    """The shape of a scalar output (an energy)."""
    return ()


def vector(n: int) -> tuple[int, ...]:
    """The shape ``(n,)`` of a generalised force or acceleration."""
    return (n,)


def matrix(n: int) -> tuple[int, ...]:
    """The shape ``(n, n)`` of a mass or Coriolis matrix."""
    return (n, n)


def host_call(kernel: Callable, out_shapes: Sequence[tuple[int, ...]], *args: Array) -> tuple[Array, ...]:
    """Run a batched numpy ``kernel`` (a bound method) on per-sample JAX arrays via ``pure_callback``.

    Under ``vmap`` the callback sees every batch axis at once (``broadcast_all``): a batch
    of states is one Python call and one loop in numpy, not one call per sample. The
    kernel computes in float64; its outputs have ``out_shapes`` and the inputs' dtype.
    """
    dtype = jnp.result_type(*args)
    shapes = tuple(jax.ShapeDtypeStruct(s, dtype) for s in out_shapes)

    def host(*xs):
        xs = [np.asarray(x, dtype=np.float64) for x in xs]
        batch = xs[0].shape[:-1]
        outs = kernel(*(x.reshape(-1, x.shape[-1]) for x in xs))
        return tuple(np.asarray(o, dtype=dtype).reshape(batch + s) for o, s in zip(outs, out_shapes))

    return jax.pure_callback(host, shapes, *args, vmap_method="broadcast_all")


def engine_call(engine, kernel: Kernel, shapes: Sequence[Shape], *args: Array) -> tuple[Array, ...]:
    """:func:`host_call` of ``engine``'s ``kernel`` (an unbound method) whose outputs have
    ``shapes`` for the engine's number of coordinates ``engine.nv``."""
    n = engine.nv
    return host_call(functools.partial(kernel, engine), [shape(n) for shape in shapes], *args)


def host_function(kernel: Kernel, shapes: Sequence[Shape], rule: Rule) -> Callable:
    """``f(engine, *xs)``: the first output of ``kernel`` (whose outputs have ``shapes``),
    differentiated by the JVP ``rule``.

    ``engine`` is static (a non-differentiable argument, hashed by identity); ``xs`` are
    per-sample arrays.
    """

    def value(engine, *xs):
        return engine_call(engine, kernel, shapes, *xs)[0]

    f = jax.custom_jvp(value, nondiff_argnums=(0,))
    f.defjvp(rule)
    return f


def by_jacobians(kernel: Kernel, shape: Shape) -> Rule:
    """A JVP rule from a kernel that returns the value (of ``shape``) and then its Jacobian
    with respect to each argument in order (``shape + (n,)``): the tangent is ``sum_i J_i @ t_i``."""

    def rule(engine, primals, tangents):
        jacobian = lambda n: shape(n) + (n,)  # noqa: E731
        value, *jacobians = engine_call(engine, kernel, [shape] + [jacobian] * len(primals), *primals)
        return value, functools.reduce(operator.add, [J @ t for J, t in zip(jacobians, tangents)])

    return rule


def by_tangent(kernel: Kernel, shapes: Sequence[Shape], tangent: Kernel, shape: Shape) -> Rule:
    """A JVP rule from a kernel ``tangent(engine, *primals, *tangents)`` that returns the
    directional derivative (of ``shape``). The value is ``kernel``'s (outputs of ``shapes``)
    on the primals alone: ``jacfwd`` vmaps a rule over tangents with unbatched primals."""

    def rule(engine, primals, tangents):
        value = engine_call(engine, kernel, shapes, *primals)[0]
        return value, engine_call(engine, tangent, [shape], *primals, *tangents)[0]

    return rule


__all__ = [
    "Kernel",
    "Rule",
    "Shape",
    "by_jacobians",
    "by_tangent",
    "engine_call",
    "host_call",
    "host_function",
    "matrix",
    "scalar",
    "vector",
]
