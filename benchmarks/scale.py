"""Scaling out, measured: ensembles, data-parallel devices, a sweep, streamed training.

    python -m benchmarks.scale --out docs/results/scale.md      # ~20 min on 2 cores
    python -m benchmarks.scale --quick                          # ~2 min (CI runs it)
    python -m benchmarks.scale --only ensemble,stream           # some sections

Sections (each prints a markdown table; ``--out`` writes them all, ``.json`` beside):

* **ensemble**: the DeLaN character benchmark's recipe (the shared character data when
  present, else a generated two-link-arm set) with K seeds: one seed alone, the K seeds
  one after another, and the K seeds as one ensemble (``train(..., ensemble=K)``), with
  the largest parameter difference between each member and its seed trained alone;
* **parallel**: training throughput on 1, 2, 4 and 8 CPU devices
  (``benchmarks/parallel_scaling.py``, each count in its own process);
* **sweep**: a ``lagrax sweep`` on Optuna with 2 workers on a generated double pendulum;
* **stream**: one epoch of DeLaN training streamed from a sharded 7-DoF Panda dataset
  (10M samples; generated into ``--shards`` unless it is there), in a fresh process whose
  peak memory (``VmHWM``) is reported with the samples per second (``--quick``: 20,000
  states of the two-link arm, the same path at a fraction of the compilation).

``--quick`` also compiles without most of XLA's optimisations (``benchmarks/quick.py``):
its programs run for a second or two, and compiling them is most of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTIONS = ("ensemble", "parallel", "sweep", "stream")
CHARACTER = HERE.parents[1] / "shared" / "data" / "delan_character_trajectories.npz"
# --quick: XLA without most optimisations (as benchmarks/quick.py; this file also runs as a script)
QUICK_FLAG, QUICK_ENV = "jax_disable_most_optimizations", {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def _say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------
# Ensembles
# --------------------------------------------------------------------------------------


def _character_split(quick: bool):
    from lagrax.benchmarks.character import TEST_LABELS
    from lagrax.data.dataset import load_dataset
    from lagrax.systems import system
    from lagrax.data.generators import generate

    if CHARACTER.exists() and not quick:
        return load_dataset(CHARACTER).split(test_labels=list(TEST_LABELS)), "DeLaN character data"
    ds = generate(system("two_link_arm"), kind="excitation", trajectories=6, duration=1.0, seed=0)
    return ds.split(test_fraction=0.34, seed=0), "generated two-link arm (6 trajectories)"


def _leaves(model):
    import equinox as eqx
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))]


def _max_rel_diff(a, b) -> float:
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)) for x, y in zip(a, b))


def ensemble_section(seeds: int, quick: bool, dtype: str | None = None) -> tuple[str, dict]:
    """One seed alone, ``seeds`` seeds one after another, and the same seeds as one ensemble
    (``dtype``: the recipe's, or float32 / float64 for models and training)."""
    import dataclasses

    import equinox as eqx
    import jax

    from lagrax.benchmarks.character import train_config
    from lagrax.models import make_model
    from lagrax.training import TrainConfig, train

    (train_ds, test_ds), what = _character_split(quick)
    config = train_config("delan", 0, 5 if quick else None, 1e9, quick)
    config = dataclasses.replace(config, lbfgs_epochs=2 if quick else config.lbfgs_epochs)
    if dtype is not None:
        config = TrainConfig.from_dict({**config.to_dict(), "dtype": dtype})

    def model(seed):
        m = make_model("delan", train_ds.info, key=jax.random.PRNGKey(seed), dtype=config.dtype.value)
        return m.with_data_statistics(train_ds.q, train_ds.qd, train_ds.qdd, train_ds.tau)

    alone, walls = [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        alone.append(
            train(model(seed), train_ds, None, dataclasses.replace(config, seed=seed), progress=False)
        )
        walls.append(time.perf_counter() - t0)
        _say(f"  seed {seed} alone: {alone[-1].train_seconds:.1f} s training, {walls[-1]:.1f} s in all")
    # the noise floor: seed 0 alone again, each initial parameter moved by one unit in the last place
    nudged = jax.tree_util.tree_map(
        lambda a: jax.numpy.nextafter(a, jax.numpy.inf) if eqx.is_inexact_array(a) else a, model(0)
    )
    perturbed = train(nudged, train_ds, None, config, progress=False)
    t0 = time.perf_counter()
    together = train(model(0), train_ds, None, config, progress=False, ensemble=seeds)
    wall = time.perf_counter() - t0
    diffs = [_max_rel_diff(_leaves(together.model.member(k)), _leaves(alone[k].model)) for k in range(seeds)]
    mse = _test_torque_mse(test_ds)
    mse_alone = [mse(r.model) for r in alone]
    mse_members = [mse(together.model.member(k)) for k in range(seeds)]
    record = {
        "data": what,
        "dtype": config.dtype.value,
        "seeds": seeds,
        "epochs": config.epochs,
        "lbfgs_epochs": config.lbfgs_epochs,
        "one_train_s": alone[0].train_seconds,
        "one_wall_s": walls[0],
        "sequential_train_s": sum(r.train_seconds for r in alone),
        "sequential_wall_s": sum(walls),
        "ensemble_train_s": together.train_seconds,
        "ensemble_wall_s": wall,
        "max_member_rel_diff": max(diffs),
        "test_torque_mse_alone": mse_alone,
        "test_torque_mse_members": mse_members,
        "perturbed_rel_diff": _max_rel_diff(_leaves(perturbed.model), _leaves(alone[0].model)),
        "perturbed_test_torque_mse": mse(perturbed.model),
    }
    return _ensemble_table(record), record


def _test_torque_mse(test_ds):
    import jax
    import jax.numpy as jnp

    q, qd, qdd, tau = (jnp.asarray(getattr(test_ds, k)) for k in ("q", "qd", "qdd", "tau"))

    def mse(model) -> float:
        pred = jax.jit(jax.vmap(model.inverse_dynamics))(q, qd, qdd)
        return float(jnp.mean(jnp.sum((pred - tau) ** 2, axis=-1)))

    return mse


def _ensemble_table(r: dict) -> str:
    one = r["one_train_s"]
    rows = [
        ("one seed alone", r["one_train_s"], r["one_wall_s"]),
        (f"{r['seeds']} seeds one after another", r["sequential_train_s"], r["sequential_wall_s"]),
        (f"{r['seeds']} seeds as one ensemble", r["ensemble_train_s"], r["ensemble_wall_s"]),
    ]
    lines = ["| run | training [s] | x one seed | with compilation [s] |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {t:.1f} | {t / one:.1f}x | {w:.1f} |" for name, t, w in rows]
    alone, members = np.array(r["test_torque_mse_alone"]), np.array(r["test_torque_mse_members"])
    lines += [
        "",
        "| test torque MSE | mean | std | min | max |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {v.mean():.2e} | {v.std():.1e} | {v.min():.2e} | {v.max():.2e} |"
            for name, v in (("seeds alone", alone), ("ensemble members", members))
        ),
        "",
        f"DeLaN recipe ({r['epochs']} AdamW + {r['lbfgs_epochs']} L-BFGS epochs, {r['dtype']}) on the "
        f"{r['data']}. "
        f"Largest relative parameter difference between a member and its seed trained alone: "
        f"{r['max_member_rel_diff']:.1e}; largest relative difference of their test torque MSE: "
        f"{np.max(np.abs(members - alone) / alone):.1e}. The noise floor: seed 0 alone with each "
        f"initial parameter moved by one unit in the last place ends "
        f"{r['perturbed_rel_diff']:.1e} away in its parameters, with a test torque MSE of "
        f"{r['perturbed_test_torque_mse']:.2e} against {alone[0]:.2e}.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Data-parallel devices, sweeps
# --------------------------------------------------------------------------------------


def parallel_section(quick: bool) -> tuple[str, dict]:
    """``benchmarks/parallel_scaling.py`` (one process per device count)."""
    sizes = ["--devices", "1,2", "--samples", "1024", "--epochs", "1"] if quick else []
    out = subprocess.run(
        [sys.executable, str(HERE / "parallel_scaling.py"), *sizes],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return out.stdout.strip(), {"output": out.stdout}


SPACE = """\
[sweep]
model = "delan"
val_fraction = 0.25
prune_after_trials = 3
[train]
epochs = {epochs}
batch_size = 256
lbfgs_epochs = 0
val_every = 5
[model]
depth = 2
[search.lr]
type = "float"
low = 1e-4
high = 3e-2
log = true
[search.width]
type = "int"
low = 16
high = 64
step = 16
"""


def sweep_section(quick: bool, trials: int) -> tuple[str, dict]:
    """A 2-worker sweep of lr and width on a generated double pendulum."""
    from lagrax.data.dataset import save_dataset
    from lagrax.training.sweep import run_sweep
    from lagrax.systems import system
    from lagrax.data.generators import generate

    tmp = Path(tempfile.mkdtemp(prefix="lagrax-scale-sweep-"))
    ds = generate(system("double_pendulum"), kind="excitation", trajectories=8, duration=2.0, seed=3)
    save_dataset(ds, tmp / "dp.npz")
    (tmp / "space.toml").write_text(SPACE.format(epochs=5 if quick else 40))
    n = 2 if quick else trials
    result = run_sweep(tmp / "space.toml", tmp / "dp.npz", tmp / "sweep", n, workers=2, progress=False)
    best = result.best or {}
    record = {"trials": n, "workers": 2, "wall_s": result.wall_seconds, "counts": result.counts, "best": best}
    table = "\n".join(
        [
            "| trials | workers | wall [s] | complete | pruned | best val loss | best params |",
            "|---:|---:|---:|---:|---:|---:|---|",
            f"| {n} | 2 | {result.wall_seconds:.0f} | {result.counts.get('COMPLETE', 0)} | "
            f"{result.counts.get('PRUNED', 0)} | {best.get('value', float('nan')):.3g} | "
            f"{best.get('params', {})} |",
        ]
    )
    return table, record


# --------------------------------------------------------------------------------------
# Streamed training
# --------------------------------------------------------------------------------------


def stream_child(path: str, batch: int, width: int) -> dict:
    """In a fresh process: one epoch of DeLaN (inverse + forward losses) over every shard."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from lagrax.models import make_model
    from lagrax.data.shards import ShardedDataset
    from lagrax.training import TrainConfig, train

    data = ShardedDataset.open(path)
    config = TrainConfig(epochs=1, batch_size=batch, lr=3e-3, lbfgs_epochs=0, inverse=1.0, forward=1.0)
    s = data.sample(100_000, seed=0)
    model = make_model("delan", data.info, key=jax.random.PRNGKey(0), width=width)
    model = model.with_data_statistics(s.q, s.qd, s.qdd, s.tau)
    result = train(model, data, None, config, progress=False)
    peak = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
    return {
        "samples": len(data),
        "steps": result.steps,
        "batch": batch,
        "width": width,
        "train_s": result.train_seconds,
        "samples_per_s": result.steps * batch / result.train_seconds,
        "peak_mb": peak / 1024,
        "final_loss": result.history[-1]["loss"],
    }


def stream_section(quick: bool, shards: Path, samples: int) -> tuple[str, dict]:
    """Generate the shards if needed, then train one epoch over them in a fresh process."""
    from lagrax.data.shards import generate_shards, is_sharded
    from lagrax.systems import system

    arm = "panda"
    if quick:  # the same path on a small arm
        arm, samples = "two_link_arm", 20_000
        shards = Path(tempfile.mkdtemp(prefix="lagrax-scale-shards-")) / arm
    if not is_sharded(shards):
        _say(f"  generating {samples:,} {arm} states into {shards} ...")
        sizes = dict(shard_size=min(samples, 1_000_000), chunk=min(samples, 1 << 16))
        generate_shards(system(arm), shards, samples, progress=False, **sizes)
    cmd = [sys.executable, __file__, "--stream-child", str(shards), "--batch", "256" if quick else "1024"]
    env = {**os.environ, **(QUICK_ENV if quick else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    table = "\n".join(
        [
            "| samples | batch | DeLaN width | steps | training [s] | samples/s | peak memory [MB] |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r['samples']:,} | {r['batch']} | {r['width']} | {r['steps']:,} | {r['train_s']:.0f} | "
            f"{r['samples_per_s']:,.0f} | {r['peak_mb']:,.0f} |",
        ]
    )
    return table, r


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated of {','.join(SECTIONS)}")
    p.add_argument("--seeds", type=int, default=10, help="ensemble members (default 10)")
    p.add_argument("--dtype", default=None, help="ensemble: float32 or float64 (default: the recipe's)")
    p.add_argument("--trials", type=int, default=8, help="sweep trials (default 8)")
    p.add_argument("--shards", type=Path, default=Path("/tmp/panda10m"), help="sharded Panda data")
    p.add_argument("--samples", type=int, default=10_000_000, help="samples to generate if absent")
    p.add_argument("--out", type=Path, default=None, help="write the tables here (and .json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--stream-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1024, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _run_sections(args) -> tuple[list[str], dict]:
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"error: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    runs = {
        "ensemble": lambda: ensemble_section(2 if args.quick else args.seeds, args.quick, args.dtype),
        "parallel": lambda: parallel_section(args.quick),
        "sweep": lambda: sweep_section(args.quick, args.trials),
        "stream": lambda: stream_section(args.quick, args.shards, args.samples),
    }
    parts, records = [], {}
    for i, name in enumerate(wanted):
        t0 = time.perf_counter()
        _say(f"[{i + 1}/{len(wanted)}] {name} ...")
        table, records[name] = runs[name]()
        _say(f"{table}\n({time.perf_counter() - t0:.0f} s)\n")
        parts.append(f"## {name}\n\n{table}\n")
    return parts, records


def main(argv=None) -> int:
    args = parse(argv)
    if args.stream_child is not None:
        print(json.dumps(stream_child(args.stream_child, args.batch, 64)))
        return 0
    if args.out is not None and args.out.exists() and not args.force:
        print(f"error: {args.out} exists; use --force to overwrite it", file=sys.stderr)
        return 2
    import jax

    jax.config.update("jax_enable_x64", True)
    t0 = time.perf_counter()
    before = bool(jax.config.read(QUICK_FLAG))
    jax.config.update(QUICK_FLAG, before or args.quick)
    try:
        parts, records = _run_sections(args)
    finally:
        jax.config.update(QUICK_FLAG, before)
    footer = f"{os.cpu_count()} CPU cores, {jax.default_backend()}; {time.perf_counter() - t0:.0f} s in all"
    _say(footer)
    if args.out is not None:
        args.out.write_text("# Scaling out (benchmarks/scale.py)\n\n" + "\n".join(parts) + f"\n{footer}\n")
        args.out.with_suffix(".json").write_text(json.dumps(records, indent=2, default=str) + "\n")
        _say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
