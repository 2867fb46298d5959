"""The model performance benchmark (``make bench``): latency, throughput, training-step cost.

Times DeLaN and the LNN (64x2, float32) on the 2-DoF arm (``two_link_arm``) and on a
7-DoF Panda-shaped system (7 revolute joints; no Pinocchio needed) and prints one
markdown table, with the machine and the exact command:

    python -m benchmarks.run                  # the full table (a few minutes on 2 cores)
    python -m benchmarks.run --quick          # fewer repetitions and sizes, < 1 minute
    python -m benchmarks.run --out perf.md    # also write the table to a file

Metrics (see ``benchmarks/models.py``): single-sample inverse and forward dynamics
latency under ``jax.jit`` (median, microseconds); batched throughput (samples/s) of
the jitted ``vmap`` of the per-sample method and of the public batched method, the
faster of the two reported and named; and one ``value_and_grad`` of the normalised
inverse-dynamics MSE over a batch of 512 (milliseconds). Targets (docs/results/performance.md) are for the
2-DoF DeLaN on 2 cores: <= 20 us single-sample, >= 1,000,000 samples/s batched; the
references are the PyTorch DeLaN (660 us single-sample) and the reference JAX code
(90 us per sample batched).

JAX options: the script turns off JAX's asynchronous CPU dispatch
(``jax_cpu_enable_async_dispatch=False``): with it, every call hands the computation to
a worker thread and waits for it, which costs more than a small model's whole
computation (measured: ~135 -> ~45 us single-sample on a busy 2-core machine).
``--async-dispatch`` keeps JAX's default. Unless ``XLA_FLAGS`` is already set, the script
sets :data:`XLA_FLAGS` (before JAX starts). The report prints what it ran with.

Accuracy benchmarks live elsewhere: ``lagrax bench delan-character`` trains models on
the DeLaN character data for minutes and is not run from here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

# XLA flags set when the environment has none (none measurably helped on 2 cores).
XLA_FLAGS = ""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Targets: docs/results/performance.md."
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (< 1 minute)")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown report to this file")
    p.add_argument("--systems", default=None, help="comma-separated subset of: two_link_arm,panda7")
    p.add_argument("--models", default=None, help="comma-separated subset of: delan,lnn")
    p.add_argument("--async-dispatch", action="store_true", help="keep JAX's asynchronous CPU dispatch")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if "XLA_FLAGS" not in os.environ and XLA_FLAGS:
        os.environ["XLA_FLAGS"] = XLA_FLAGS
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", bool(args.async_dispatch))

    from benchmarks import models as perf  # (after XLA_FLAGS are set)

    settings = perf.QUICK if args.quick else perf.Settings()
    systems = args.systems.split(",") if args.systems else perf.SYSTEMS
    kinds = args.models.split(",") if args.models else perf.MODELS
    for s in systems:
        if s not in perf.SYSTEMS:
            print(f"error: unknown system {s!r}; choose from {', '.join(perf.SYSTEMS)}", file=sys.stderr)
            return 2
    for k in kinds:
        if k not in perf.MODELS:
            print(f"error: unknown model {k!r}; choose from {', '.join(perf.MODELS)}", file=sys.stderr)
            return 2

    command = "python " + " ".join(
        shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]
    )
    t0 = time.perf_counter()
    rows = perf.measure_all(
        systems, kinds, settings, log=lambda line: print(line, file=sys.stderr, flush=True)
    )
    elapsed = time.perf_counter() - t0
    report = "\n".join(
        [
            "## Model performance" + (" (--quick)" if args.quick else ""),
            "",
            f"Machine: {perf.machine_description()}",
            f"Command: `{command}` ({elapsed:.0f} s including compilation)",
            "Models (64x2, float32, factory defaults otherwise): "
            + "; ".join(perf.model_description(k) for k in kinds)
            + ".",
            "",
            "Latency: median of "
            f"{settings.latency_repeats} jitted single-sample calls; batched: median of "
            f"{settings.batch_repeats} calls, the fastest of jit(vmap(per-sample method)) over the whole "
            f"batch (vmap), over chunks of {perf.CHUNK} (chunked, jax.lax.map) and the public batched "
            "method (public), named in the metric "
            f"(timed: {', '.join(settings.paths)}); "
            f"gradient: median of {settings.grad_repeats} jitted value_and_grad calls.",
            "",
            perf.markdown_table(rows),
            "",
        ]
    )
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
