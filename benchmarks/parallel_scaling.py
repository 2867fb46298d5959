"""Data-parallel training throughput over 1, 2, 4, 8 devices (lagrax.training.parallel).

Trains DeLaN (forward-dynamics loss: the states are unforced) on random states of a
7-DoF chain pendulum with ``train(..., devices=N)`` and reports training samples per
second (``steps * batch_size / train_seconds``; the trainer excludes compilation) and
the speed-up over one device. Each device count runs in its own subprocess, because the
number of CPU devices is fixed when JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). On a GPU host, pass
``--platform gpu``: the counts are then real GPUs (``CUDA_VISIBLE_DEVICES`` decides).

CPU "devices" made by that flag share the same physical cores: on a machine with
2 cores, 8 devices cannot be faster than 1 (each device is a thread pool over the same
cores, plus the cost of the all-reduce), so this measures the overhead of the sharded
program, not a speed-up. Real speed-ups need real devices (several GPUs, or hosts).

    python -m benchmarks.parallel_scaling [--devices 1,2,4,8] [--samples 8192]
        [--batch-size 512] [--epochs 3] [--width 64]

:func:`scaling_table` returns the markdown table (for benchmarks/run.py or a scale report).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DEFAULT_DEVICES = (1, 2, 4, 8)


def measure(devices: int, samples: int, batch_size: int, epochs: int, width: int) -> dict:
    """In this process (started with enough devices): one warm-up epoch is compiled by the
    trainer; returns ``{"devices", "samples_per_s", "train_seconds", "steps"}``."""
    import jax

    from lagrax.models import make_model
    from lagrax.systems import system
    from lagrax.training import TrainConfig, train
    from lagrax.data.generators import generate

    ds = generate(system("chain_pendulum", n=7), kind="states", trajectories=8, samples=samples, seed=0)
    model = make_model("delan", ds.info, key=jax.random.PRNGKey(0), width=width, depth=2)
    model = model.with_data_statistics(ds.q, ds.qd, ds.qdd, ds.tau)
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=1e-3, lbfgs_epochs=0, seed=0, inverse=0.0, forward=1.0
    )
    result = train(model, ds, None, config, progress=False, devices=devices)
    return {
        "devices": devices,
        "platform": jax.default_backend(),
        "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds,
        "steps": result.steps,
        "samples_per_s": result.steps * batch_size / result.train_seconds,
    }


def run_one(devices: int, args: argparse.Namespace) -> dict:
    """:func:`measure` in a subprocess with ``devices`` CPU devices (or the platform's own)."""
    env = dict(os.environ)
    if args.platform == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    sizes = ["--samples", args.samples, "--batch-size", args.batch_size, "--epochs", args.epochs]
    cmd = [sys.executable, __file__, "--child", devices, *sizes, "--width", args.width]
    cmd = [str(c) for c in cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{devices} devices failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling_table(rows: list[dict]) -> str:
    """A markdown table: devices, samples/s, speed-up over the first row."""
    base = rows[0]["samples_per_s"]
    lines = ["| devices | samples/s | speed-up |", "|---:|---:|---:|"]
    lines += [
        f"| {r['devices']} | {r['samples_per_s']:,.0f} | {r['samples_per_s'] / base:.2f}x |" for r in rows
    ]
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default=",".join(map(str, DEFAULT_DEVICES)))
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--platform", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    """Measure every device count in its own subprocess and print the table."""
    args = parse(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child, args.samples, args.batch_size, args.epochs, args.width)))
        return
    t0 = time.perf_counter()
    rows = [run_one(int(d), args) for d in args.devices.split(",")]
    print(scaling_table(rows))
    print(
        f"\nDeLaN width {args.width}, 7-DoF chain pendulum, {args.samples} samples, batch "
        f"{args.batch_size}, {args.epochs} epochs, {rows[0]['platform']}, {os.cpu_count()} CPU cores; "
        f"{time.perf_counter() - t0:.0f} s in all"
    )


if __name__ == "__main__":
    main()
