"""How DeLaN's torque error falls with more data: held-out nMSE against 6k ... 1M samples.

For each arm (default: the UR5 and the Panda, with the zoo's friction and armature) and
each training-set size, the zoo's data (:mod:`benchmarks.robot_zoo`: excitation at 50 Hz
from trajectories of ``--lengths`` seconds, by default the zoo's 1.6 s and 5 s, seed 10
here) trains a DeLaN with the default recipe (:func:`lagrax.training.recipe`), and the
zoo's held-out and 2x-faster sets (of the same lengths) score it.

* The recipe's epochs (150) are kept, but at most ``--steps`` minibatch steps are taken:
  a larger set trains for fewer epochs (1M samples: 8 epochs of 128-sample batches), so
  every size past about 50k samples gets the same compute and only the data differ.
* Sets of at least ``--stream-above`` samples are written as float32 shards
  (:class:`lagrax.data.shards.ShardWriter`) of 1,250 trajectories of each length, and
  trained streamed (:mod:`lagrax.training.streaming`): the set is never in memory whole.

    python -m benchmarks.data_scaling                        # ur5 and panda, ~40 min on 2 cores
    python -m benchmarks.data_scaling --quick                # a 2-DoF arm, tiny sizes (CI)
    python -m benchmarks.data_scaling --out docs/results/data_scaling.md --figures docs/figures
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.arms import KNOWN, arm
from benchmarks.quick import quick_compilation
from benchmarks.robot_zoo import DT, TRAJECTORY_SECONDS, accuracy, evaluation_sets, excitation
from benchmarks.showcase import check_out, markdown_table, say, write_results

SIZES = (6_000, 20_000, 60_000, 200_000, 1_000_000)
BLOCK = 1_250  # trajectories (of each length) generated and written at a time
COLUMNS = [
    ("arm", "arm", "g"),
    ("samples", "samples", "s"),
    ("streamed", "streamed", "g"),
    ("epochs", "epochs", "s"),
    ("steps", "steps", "s"),
    ("train_s", "training [s]", "s"),
    ("tau_held", "torque nMSE, held out", "e"),
    ("tau_fast", "torque nMSE, 2x faster", "e"),
    ("qdd_held", "worst joint's qdd nMSE, held out", "e"),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arms", default="ur5,panda", help=f"comma-separated, from {', '.join(KNOWN)}")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="training-set sizes [samples]")
    p.add_argument("--steps", type=int, default=60_000, help="most minibatch steps per model")
    p.add_argument("--seconds", type=float, default=900.0, help="most seconds of training per model")
    p.add_argument("--lengths", default=",".join(map(str, TRAJECTORY_SECONDS)), help="trajectory lengths [s]")
    p.add_argument("--stream-above", type=int, default=500_000, help="sets this large train streamed")
    p.add_argument("--shards", type=Path, default=None, help="where shards go (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="a small arm and tiny sizes (CI smoke run)")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--figures", type=Path, default=None, help="folder for the figure")
    p.add_argument("--force", action="store_true", help="overwrite --out and the figure")
    args = p.parse_args(argv)
    if args.quick:
        args.arms, args.sizes, args.steps, args.seconds, args.stream_above = "twodof", "300,600", 20, 30, 500
    args.arms = args.arms.split(",")
    try:
        args.lengths = tuple(float(x) for x in args.lengths.split(","))
    except ValueError:
        p.error(f"--lengths must be numbers separated by commas, got {args.lengths!r}")
    unknown = sorted(set(args.arms) - set(KNOWN))
    if unknown:
        p.error(f"unknown arms {unknown}; choose from {', '.join(KNOWN)}")
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes must be whole numbers separated by commas, got {args.sizes!r}")
    if min(args.sizes) < 1 or args.steps < 1 or args.seconds <= 0:
        p.error("--sizes, --steps and --seconds must be positive")
    return args


def training_set(truth, samples: int, args, folder: Path):
    """At least ``samples`` samples of the zoo's excitation (seed 10; whole trajectories,
    as many of each length): a Dataset, or, from ``--stream-above`` samples on, a
    ShardedDataset written :data:`BLOCK` trajectories of each length at a time (block ``k``
    seeded ``10,000 + k``)."""
    from lagrax.data.shards import ShardWriter, open_shards

    lengths = (1.0, 2.0) if args.quick else args.lengths
    per = sum(round(s / DT) + 1 for s in lengths)  # samples of one trajectory of each length
    trajectories = math.ceil(samples / per)
    common = dict(quick=args.quick, lengths=args.lengths)
    if samples < args.stream_above:
        return excitation(truth, 0, seed=10, trajectories=trajectories, **common)
    path = folder / f"{truth.info.name}_{samples}"
    with ShardWriter(path, truth.info, shard_size=BLOCK * per, dtype="float32", force=True) as writer:
        for block, first in enumerate(range(0, trajectories, BLOCK)):
            ds = excitation(
                truth, 0, seed=10_000 + block, trajectories=min(BLOCK, trajectories - first), **common
            )
            fields = ("t", "q", "qd", "qdd", "tau")
            writer.append(
                **{f: getattr(ds, f) for f in fields}, trajectory=ds.trajectory + first * len(lengths)
            )
            say(f"{truth.info.name}: {(first + BLOCK) * per:,} of {trajectories * per:,} samples written")
    return open_shards(path)


def fit(train_ds, reference, args) -> tuple:
    """A default-recipe DeLaN on ``train_ds`` (at most ``--steps`` steps); the model and facts."""
    import jax

    from lagrax.models import make_model
    from lagrax.training import TrainConfig, recipe
    from lagrax.training import train as fit_model

    settings, options = recipe("delan", reference)  # the recipe of the same arm's torque data
    samples, batch = len(train_ds), settings["batch_size"]
    epochs = max(1, min(settings["epochs"], round(args.steps * batch / samples)))
    settings.update(epochs=epochs, max_seconds=args.seconds)
    streamed = samples >= args.stream_above
    if streamed:  # full-batch L-BFGS needs every sample at once (the arm recipe has none)
        settings["lbfgs_epochs"] = 0
    stats = train_ds.sample(100_000, seed=0) if streamed else train_ds
    model = make_model("delan", reference.info, key=jax.random.PRNGKey(0), **options)
    model = model.with_data_statistics(stats.q, stats.qd, stats.qdd, stats.tau)
    result = fit_model(model, train_ds, None, TrainConfig.from_dict(settings), progress=False)
    facts = dict(
        samples=samples, epochs=len(result.history), steps=result.steps, train_s=result.train_seconds
    )
    return result.model, facts


def one_arm(name: str, args, folder: Path, start: float, done: list[dict]) -> list[dict]:
    """Every size on one arm: a row each (also appended to ``done``, for the ETA)."""
    truth = arm(name)
    tests = evaluation_sets(truth, args.quick, args.lengths)
    for samples in args.sizes:
        say(f"{name}: {samples:,} samples: data")
        ds = training_set(truth, samples, args, folder)
        say(f"{name}: {samples:,} samples: training (at most {args.steps:,} steps, {args.seconds:.0f} s)")
        model, facts = fit(ds, tests["held out"], args)
        row = dict(arm=name, streamed="yes" if samples >= args.stream_above else "no", **facts)
        row.update({k: v for k, v in accuracy(model, tests).items() if not k.endswith("_joints")})
        done.append(row)
        runs, spent = len(args.arms) * len(args.sizes), time.time() - start
        eta = spent / len(done) * (runs - len(done))  # rough: the sizes differ in cost
        say(
            f"{name}: {samples:,} samples: nMSE {row['tau_held']:.2e} "
            f"({len(done)} of {runs} runs, ETA ~{eta:.0f} s)"
        )
    return [r for r in done if r["arm"] == name]


def figure(rows: list[dict], path: Path) -> Path:
    """nMSE against samples (log-log): per arm, held out (solid) and 2x faster (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(dict.fromkeys(r["arm"] for r in rows)):
        mine = [r for r in rows if r["arm"] == name]
        n = [r["samples"] for r in mine]
        ax.loglog(n, [r["tau_held"] for r in mine], "o-", color=f"C{i}", label=f"{name}, held out")
        ax.loglog(
            n, [r["tau_fast"] for r in mine], "s--", color=f"C{i}", alpha=0.6, label=f"{name}, 2x faster"
        )
    ax.axhline(1e-3, color="k", lw=0.8, ls=":", label="target 1e-3")
    ax.set_xlabel("training samples")
    ax.set_ylabel("torque nMSE (mean over joints)")
    ax.set_title("DeLaN, default recipe: error against data")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    if args.figures is not None:
        from lagrax.analysis.plotting import check_figure_path

        check_figure_path(args.figures / "data_scaling.png", args.force)  # before any work
    start, rows = time.time(), []
    with tempfile.TemporaryDirectory(prefix="lagrax-scaling-") as tmp:
        folder = args.shards or Path(tmp)
        for name in args.arms:
            with quick_compilation(args.quick):
                one_arm(name, args, folder, start, rows)
            jax.clear_caches()  # each arm compiles its own programs (see robot_zoo.main)
            write_results(
                args.out, markdown_table(rows, COLUMNS), rows, {k: str(v) for k, v in vars(args).items()}
            )
    print(markdown_table(rows, COLUMNS))
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        figure(rows, args.figures / "data_scaling.png")
    print(f"\n(total {time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
