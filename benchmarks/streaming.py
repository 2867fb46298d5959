"""Streaming a dataset larger than memory: generate sharded states, then read one epoch.

    python -m benchmarks.streaming                      # 10M Panda states -> /tmp/panda10m
    python -m benchmarks.streaming --quick              # 20k states, seconds
    python -m benchmarks.streaming --reuse --out /tmp/panda10m   # measure reading only

Generation (:func:`lagrax.data.shards.generate_shards`: uniform ``q, qd, qdd``, ``tau`` by the
pure-JAX inverse dynamics, stored as float32) runs in this process; reading runs in a fresh
subprocess, so its peak RSS (``VmHWM``) is that of a reader alone: one full epoch of
:meth:`lagrax.data.shards.ShardedDataset.chunks`, then a 100k-sample
:meth:`~lagrax.data.shards.ShardedDataset.sample`. Prints a markdown table (and ``--json``).
The file pages are usually still in the OS cache after generation: the read figures are
warm-cache ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    """This process's peak RSS [MB]: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which a
    child started by a big parent inherits), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def read_epoch(out: str, chunk_size: int, seed: int = 0, epoch: int = 0) -> dict:
    """Iterate one epoch of ``chunks`` and draw one ``sample``; timings and peak RSS."""
    import numpy as np

    from lagrax.data.shards import ShardedDataset

    t0 = time.perf_counter()
    data = ShardedDataset.open(out)
    opened = time.perf_counter() - t0
    rows, checksum = 0, 0.0
    t0 = time.perf_counter()
    for chunk in data.chunks(seed, epoch, chunk_size):
        rows += len(chunk["q"])
        checksum += float(chunk["tau"][0, 0])  # touch the data
    epoch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample = data.sample(min(100_000, len(data)), seed=1)
    sample_s = time.perf_counter() - t0
    return dict(
        samples=len(data),
        shards=data.n_shards,
        open_s=opened,
        epoch_rows=rows,
        epoch_s=epoch_s,
        read_samples_per_s=rows / epoch_s,
        sample_n=len(sample),
        sample_s=sample_s,
        read_peak_rss_mb=_peak_rss_mb(),
        dtype=str(np.asarray(chunk["q"]).dtype),
    )


def generate(args) -> dict:
    """Write the dataset; its time, size and this process's peak RSS."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from lagrax.data.shards import generate_shards
    from lagrax.systems import system

    t0 = time.perf_counter()
    generate_shards(
        system(args.system),
        args.out,
        args.samples,
        shard_size=args.shard_size,
        seed=args.seed,
        dtype=args.dtype,
        force=args.force,
        progress=not args.no_progress,
    )
    return dict(generation_s=time.perf_counter() - t0, generation_peak_rss_mb=_peak_rss_mb())


def _table(r: dict) -> str:
    rows = [
        ("system / samples / shards", f"{r['system']} / {r['samples']:,} / {r['shards']}"),
        ("stored dtype", r["dtype"]),
        ("disk size", f"{r['disk_bytes'] / 1e6:,.1f} MB ({r['out']})"),
    ]
    if "generation_s" in r:
        rows += [
            (
                "generation time",
                f"{r['generation_s']:.1f} s ({r['samples'] / r['generation_s']:,.0f} samples/s)",
            ),
            ("generation peak RSS", f"{r['generation_peak_rss_mb']:.0f} MB"),
        ]
    rows += [
        ("open (manifest, file sizes)", f"{r['open_s'] * 1e3:.1f} ms"),
        (
            f"one epoch of chunks ({r['chunk_size']:,} rows)",
            f"{r['epoch_s']:.1f} s, {r['read_samples_per_s']:,.0f} samples/s",
        ),
        (f"sample({r['sample_n']:,}, seed)", f"{r['sample_s']:.2f} s"),
        ("reader peak RSS (VmHWM)", f"{r['read_peak_rss_mb']:.0f} MB"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Parse the arguments, generate (unless ``--reuse``), measure reading, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=10_000_000)
    p.add_argument("--out", default=None, help="shard directory (default /tmp/panda10m, quick: a temp one)")
    p.add_argument("--system", default="panda")
    p.add_argument("--shard-size", type=int, default=1_000_000)
    p.add_argument("--chunk-size", type=int, default=65_536)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="20k samples")
    p.add_argument("--reuse", action="store_true", help="read an existing --out, do not generate")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.shard_size, args.chunk_size = 20_000, 5_000, 4_096
        args.out, args.force = args.out or "/tmp/lagrax-streaming-quick", True
    args.out = args.out or "/tmp/panda10m"
    if args.read_only:
        print(json.dumps(read_epoch(args.out, args.chunk_size, args.seed)))
        return {}
    result = dict(system=args.system, out=args.out, chunk_size=args.chunk_size)
    if not args.reuse:
        result.update(generate(args))
    reader = [
        sys.executable,
        __file__,
        "--read-only",
        "--out",
        args.out,
        "--chunk-size",
        str(args.chunk_size),
    ]
    done = subprocess.run(reader, check=True, capture_output=True, text=True)
    result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    result["disk_bytes"] = sum(f.stat().st_size for f in Path(args.out).iterdir())
    print(_table(result))
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
