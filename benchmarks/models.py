"""Speed of the learned models: latency, throughput and the cost of a training step.

The measurement functions behind ``benchmarks/run.py`` (docs/results/performance.md). Each
takes a model built by :func:`lagrax.models.make_model` and returns one number:

* :func:`single_sample_latency`: one ``(q, qd, qdd) -> tau`` (or ``(q, qd, tau) -> qdd``)
  call of the jitted per-sample method, median over many calls, in microseconds;
* :func:`batched_throughput`: samples per second of a jitted ``vmap`` of the per-sample
  method over the whole batch (``path="vmap"``) or over chunks of :data:`CHUNK` samples
  (``path="chunked"``, ``jax.lax.map``), or of the public batched method
  (``path="public"``, which adds the shape checks of :mod:`lagrax.systems.base`);
* :func:`gradient_step_time`: one ``value_and_grad`` of the normalised inverse-dynamics
  MSE (:func:`lagrax.training.losses.inverse_loss`) over a batch, in milliseconds.

Every timing is taken after a warm-up call (compilation is not counted), with
``block_until_ready`` on the result, and the median over repetitions is reported, so
that one slow call on a shared machine does not move the number. The model's
parameters are arguments of the jitted function, not baked-in constants, as in a
training loop or a controller that reloads weights.

This module does not train, does not check accuracy, and sets no JAX or XLA options
(``benchmarks/run.py`` does, before JAX starts: synchronous CPU dispatch, which is what
single-sample latency needs).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import lagrax
from lagrax.models import make_model
from lagrax.systems.base import SystemInfo
from lagrax.training.losses import Scales, inverse_loss
from lagrax.systems.batching import batched

WIDTH, DEPTH = 64, 2
MODELS = ("delan", "lnn")
SYSTEMS = ("two_link_arm", "panda7")
BATCHES = (1024, 65536)
GRAD_BATCH = 512
CHUNK = 256  # path="chunked": vmap over chunks this big, so intermediates stay in cache
# (measured on 2 cores: 128-256 best, 4x a whole-batch vmap at 65,536 for the 2-DoF DeLaN)

# Performance targets (2-DoF DeLaN, 2 cores) and the reference implementations' numbers
# (../shared/reference/RESULTS.md).
TARGET_LATENCY_US = 20.0
TARGET_THROUGHPUT = 1_000_000.0
REFERENCE_PYTORCH_LATENCY_US = 660.0
REFERENCE_JAX_BATCHED_US = 90.0


def system_info(name: str) -> SystemInfo:
    """``"two_link_arm"`` (the registered system) or ``"panda7"`` (a 7-DoF revolute info
    with the Panda's shape, so that Pinocchio is not needed)."""
    if name == "panda7":
        return SystemInfo.make("panda", 7)
    return lagrax.system(name).info


def build_model(kind: str, info: SystemInfo, seed: int = 0):
    """A ``64x2`` float32 model with the factory's defaults otherwise."""
    return make_model(kind, info, key=jax.random.PRNGKey(seed), width=WIDTH, depth=DEPTH, dtype="float32")


def random_states(n: int, batch: int | None, seed: int = 0):
    """``(q, qd, qdd, tau)`` in float32: angles uniform on ``[-pi, pi)``, the rest standard normal.

    ``batch=None`` gives single samples of shape ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    shape = (n,) if batch is None else (batch, n)
    q = rng.uniform(-np.pi, np.pi, shape)
    qd, qdd, tau = (rng.standard_normal(shape) for _ in range(3))
    return tuple(jnp.asarray(x, jnp.float32) for x in (q, qd, qdd, tau))


def _median_seconds(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``call()`` (which must return a JAX value) after ``warmup`` calls."""
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _per_sample_fn(model, which: str) -> Callable:
    """``(model, q, qd, x) -> y`` for ``which`` in ``{"inverse", "forward"}``."""
    if which == "inverse":
        return lambda m, q, qd, qdd: m.inverse_dynamics(q, qd, qdd)
    if which == "forward":
        return lambda m, q, qd, tau: m.forward_dynamics(q, qd, tau)
    raise ValueError(f"which must be 'inverse' or 'forward', got {which!r}")


def _jit_with_params(model, fn: Callable, batched: bool | int):
    """``jax.jit`` of ``fn`` with the model's arrays as arguments, passed as a flat list:
    JAX flattens a list of arrays in C++, but an equinox module through Python callbacks
    (~30 us per call for a DeLaN, more than the computation)."""
    leaves, treedef = jax.tree_util.tree_flatten(eqx.filter(model, eqx.is_array))
    static = eqx.filter(model, eqx.is_array, inverse=True)
    if batched is True:

        def inner(m, q, qd, x):
            return jax.vmap(lambda a, b, c: fn(m, a, b, c))(q, qd, x)
    elif batched:  # an int: vmap over chunks of that many samples, one chunk after the other

        def inner(m, q, qd, x):
            return jax.lax.map(lambda abc: fn(m, *abc), (q, qd, x), batch_size=int(batched))
    else:
        inner = fn

    @jax.jit
    def run(p, q, qd, x):
        return inner(eqx.combine(jax.tree_util.tree_unflatten(treedef, p), static), q, qd, x)

    return run, leaves


def single_sample_latency(model, which: str = "inverse", repeats: int = 2000) -> float:
    """Median microseconds of one jitted per-sample inverse (or forward) dynamics call."""
    run, params = _jit_with_params(model, _per_sample_fn(model, which), batched=False)
    q, qd, qdd, tau = random_states(model.dof, None)
    x = qdd if which == "inverse" else tau
    return 1e6 * _median_seconds(lambda: run(params, q, qd, x), repeats, warmup=100)


def batched_throughput(
    model, which: str = "inverse", batch: int = 1024, repeats: int = 20, path: str = "vmap"
) -> float:
    """Samples per second of batched inverse (or forward) dynamics.

    ``path="vmap"``: ``jax.jit(jax.vmap(model.inverse_dynamics))`` with the parameters as
    arguments; ``path="chunked"``: the same per-sample function under
    ``jax.lax.map(..., batch_size=CHUNK)`` (a vmap over chunks, one after the other);
    ``path="public"``: ``batched(model).inverse_dynamics(q, qd, qdd)`` on ``(batch, n)`` arrays, i.e.
    what a user calls (shape checks + ``eqx.filter_jit`` + one vmap).
    """
    q, qd, qdd, tau = random_states(model.dof, batch)
    x = qdd if which == "inverse" else tau
    if path == "vmap":
        run, params = _jit_with_params(model, _per_sample_fn(model, which), batched=True)
        call = lambda: run(params, q, qd, x)  # noqa: E731
    elif path == "chunked":
        run, params = _jit_with_params(model, _per_sample_fn(model, which), batched=min(CHUNK, batch))
        call = lambda: run(params, q, qd, x)  # noqa: E731
    elif path == "public":
        method = batched(model).inverse_dynamics if which == "inverse" else batched(model).forward_dynamics
        call = lambda: method(q, qd, x)  # noqa: E731
    else:
        raise ValueError(f"path must be 'vmap', 'chunked' or 'public', got {path!r}")
    return batch / _median_seconds(call, repeats)


def gradient_step_time(model, batch: int = GRAD_BATCH, repeats: int = 20) -> float:
    """Median milliseconds of one jitted ``value_and_grad`` of the normalised
    inverse-dynamics MSE (:func:`lagrax.training.losses.inverse_loss`) over ``batch`` samples."""
    n = model.dof
    q, qd, qdd, tau = random_states(n, batch)
    one = jnp.ones((n,), jnp.float32)
    scales = Scales(tau=one, qdd=one, q=one, qd=one, power=jnp.ones((), jnp.float32), pdot=one)
    samples = {"q": q, "qd": qd, "qdd": qdd, "tau": tau}
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, s):
        m = eqx.combine(p, static)
        return jnp.mean(jax.vmap(lambda x: inverse_loss(m, x, scales))(s))

    step = jax.jit(jax.value_and_grad(loss))
    return 1e3 * _median_seconds(lambda: step(params, samples), repeats)


# --------------------------------------------------------------------------------------
# The whole table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    system: str
    model: str
    metric: str
    value: float
    unit: str
    reference: str = ""


@dataclass(frozen=True)
class Settings:
    latency_repeats: int = 2000
    batch_repeats: int = 20
    grad_repeats: int = 20
    batches: tuple[int, ...] = BATCHES
    grad_batch: int = GRAD_BATCH
    paths: tuple[str, ...] = ("vmap", "chunked", "public")  # batched paths timed; the fastest is reported


QUICK = Settings(latency_repeats=300, batch_repeats=5, grad_repeats=5, batches=(1024,), paths=("chunked",))


def _reference(system: str, kind: str, metric: str) -> str:
    """The target or reference number a row is read against (the performance targets, RESULTS.md)."""
    two_link_delan = system == "two_link_arm" and kind == "delan"
    if metric.startswith("inverse dynamics, 1 sample"):
        ref = f"PyTorch DeLaN {REFERENCE_PYTORCH_LATENCY_US:.0f} us"
        return f"target <= {TARGET_LATENCY_US:.0f} us; {ref}" if two_link_delan else ref
    if metric.startswith("forward dynamics, 1 sample"):
        return f"target <= {TARGET_LATENCY_US:.0f} us" if two_link_delan else ""
    if metric.startswith("inverse dynamics, batch"):
        per_second = 1e6 / REFERENCE_JAX_BATCHED_US
        ref = f"reference JAX {REFERENCE_JAX_BATCHED_US:.0f} us/sample ({per_second:,.0f}/s)"
        return f"target >= {TARGET_THROUGHPUT:,.0f}/s; {ref}" if two_link_delan else ref
    if metric.startswith("forward dynamics, batch"):
        return f"target >= {TARGET_THROUGHPUT:,.0f}/s" if two_link_delan else ""
    return ""


def measure(
    system: str, kind: str, settings: Settings = Settings(), log: Callable[[str], None] | None = None
) -> list[Row]:
    """Every metric for one (system, model) pair."""
    info = system_info(system)
    model = build_model(kind, info)
    rows = []

    def add(metric, value, unit):
        rows.append(Row(system, kind, metric, value, unit, _reference(system, kind, metric)))
        if log:
            log(f"{system:>12} {kind:>5} {metric:<44} {format_value(value, unit)}")

    for which in ("inverse", "forward"):
        add(
            f"{which} dynamics, 1 sample (jit)",
            single_sample_latency(model, which, settings.latency_repeats),
            "us",
        )
    for which in ("inverse", "forward"):
        for batch in settings.batches:
            best, best_path = -1.0, ""
            # big batches: fewer calls (each is long enough to time on its own)
            repeats = settings.batch_repeats if batch <= 4096 else max(3, settings.batch_repeats // 4)
            for path in settings.paths:
                rate = batched_throughput(model, which, batch, repeats, path)
                if rate > best:
                    best, best_path = rate, path
            add(f"{which} dynamics, batch {batch} ({best_path})", best, "samples/s")
    add(
        f"value_and_grad inverse MSE, batch {settings.grad_batch}",
        gradient_step_time(model, settings.grad_batch, settings.grad_repeats),
        "ms",
    )
    return rows


def measure_all(
    systems: Sequence[str] = SYSTEMS,
    models: Sequence[str] = MODELS,
    settings: Settings = Settings(),
    log: Callable[[str], None] | None = None,
) -> list[Row]:
    return [row for system in systems for kind in models for row in measure(system, kind, settings, log)]


def model_description(kind: str) -> str:
    """The hyperparameters the benchmarked ``kind`` is built with (factory defaults may change)."""
    hp = build_model(kind, system_info("two_link_arm")).spec.to_json()
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in hp.items())


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return f"{value} {unit}"
    if unit == "samples/s":
        return f"{value:,.0f} {unit}"
    if unit == "us":
        return f"{value:.1f} us"
    return f"{value:.3g} {unit}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| system | model | metric | value | target / reference |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.system} | {r.model} | {r.metric} | {format_value(r.value, r.unit)} | {r.reference} |"
        )
    return "\n".join(lines)


def machine_description() -> str:
    """CPU count, JAX version and backend, XLA flags: what the numbers depend on."""
    import platform

    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"JAX {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"jax_cpu_enable_async_dispatch={jax.config.values['jax_cpu_enable_async_dispatch']}"
    )
