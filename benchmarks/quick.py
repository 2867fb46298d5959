"""``--quick`` runs of the benchmarks: smoke runs whose time is nearly all XLA compilation.

A quick run trains for a few steps and rolls out for a few seconds: every program runs
once or twice on tiny arrays, and compiling it costs far more than running it. Inside
:func:`quick_compilation`, XLA compiles without most of its optimisations
(``jax_disable_most_optimizations``): a quarter to a third less compilation time for a
rollout or a training epoch, and slower programs (the double pendulum's quick table came
out the same to the last digit). A full run compiles as usual.

    with quick_compilation(args.quick):
        table, rows = run(args)

(``benchmarks/scale.py``, which also runs as a script, sets the same flag itself, and
``JAX_DISABLE_MOST_OPTIMIZATIONS=1`` in the environment of its child process.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

FLAG = "jax_disable_most_optimizations"


@contextlib.contextmanager
def quick_compilation(quick: bool = True) -> Iterator[None]:
    """Within the block, when ``quick``, XLA compiles without most optimisations; the
    setting before it comes back afterwards (programs compiled inside keep theirs)."""
    import jax

    before = bool(jax.config.read(FLAG))
    jax.config.update(FLAG, before or quick)
    try:
        yield
    finally:
        jax.config.update(FLAG, before)


__all__ = ["FLAG", "quick_compilation"]
