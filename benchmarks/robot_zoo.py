"""The robot zoo: lagrax's defaults on many arms, none of them tuned for.

For each arm of :mod:`benchmarks.arms` (URDF arms through Pinocchio with friction and
armature on every joint; MJCF arms through MuJoCo), with the defaults and no per-arm
setting:

1. Data: excitation at 50 Hz, ``--samples`` samples for training (seed 0, 30,000 by
   default), half from trajectories of 1.6 s and half from trajectories of 5 s; 4,000
   held out (seed 1) and 4,000 at twice the speed (seed 2), mixed the same way. Many
   short trajectories from many centres cover the configuration space better than a few
   long ones (on the UR5, 300 x 1.6 s against 60 x 8 s, the same 24,000 samples, took the
   held-out torque nMSE of the same DeLaN from 8.3e-3 to 2.8e-3), but short ones are fast
   and narrow, while the tracking references below are slow and wide: with 1.6 s
   trajectories alone, the Panda's DeLaN had a torque nMSE of 5.4e-4 held out but 1.9e-2
   along the references. Half of the samples from 5 s trajectories took that to 3.1e-3
   (held out 4.0e-4) and its computed-torque error from 1.5e-3 to 3.6e-4 rad.
2. Models: DeLaN and the MLP, each with its default recipe for the data
   (:func:`lagrax.training.recipe`) within ``--seconds`` of training.
3. Accuracy: torque nMSE (per joint, and the mean over joints) and the worst joint's
   acceleration nMSE, held out and 2x faster.
4. Tracking: ``--references`` unseen references (seed 100) of ``--duration`` s at 1 kHz,
   computed torque and feed-forward PD (computed torque alone with ``--quick``) with
   each model, the analytic model and PD alone, all with the default (automatic) gains.
5. Online learning from scratch: ``lagrax control --online --scratch delan``'s defaults
   (a new DeLaN, feed-forward PD) over a ``--online-seconds`` reference that does not
   repeat (seed 200), against PD alone and the offline DeLaN on the same reference.
6. Wall times of training and of the loops.

It prints one table (and writes, with ``--out``, the per-joint nMSE and the targets'
verdicts next to it) and draws one figure: the tracking error per arm and controller.

    python -m benchmarks.robot_zoo                          # every arm, about 40 min on 2 cores
    python -m benchmarks.robot_zoo --quick                  # one small arm (URDF), tiny sizes (CI)
    python -m benchmarks.robot_zoo --out docs/results/robot_zoo.md --figures docs/figures
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.arms import KNOWN, arm
from benchmarks.quick import quick_compilation
from benchmarks.showcase import check_out, fmt, markdown_table, say, write_results

ZOO = ("panda", "ur3", "ur5", "ur10", "z1", "xarm7", "pusher", "reacher")
QUICK_ZOO = ("twodof",)
MODELS = ("delan", "mlp")
RATE = 1000.0
# the excitation's trajectory lengths [s], each with an equal share of the samples (see the
# module docstring), its sample period [s], and the size of each test set
TRAJECTORY_SECONDS = (1.6, 5.0)
DT = 0.02
TEST_SAMPLES = 4_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one small arm, tiny data and loops (CI)")
    p.add_argument("--arms", default=None, help=f"comma-separated, from {', '.join(KNOWN)}")
    p.add_argument("--seconds", type=float, default=180.0, help="training budget of each model")
    p.add_argument("--samples", type=int, default=30_000, help="training samples (50 Hz)")
    p.add_argument("--references", type=int, default=8, help="tracking references per arm")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each tracking reference")
    p.add_argument("--online-seconds", type=float, default=60.0, help="length of the online run")
    p.add_argument("--out", type=Path, default=None, help="also write the tables (.md) and numbers (.json)")
    p.add_argument("--figures", type=Path, default=None, help="folder for the figure")
    p.add_argument("--force", action="store_true", help="overwrite --out and the figure")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.samples, args.references = 2.0, 300, 2
        args.duration, args.online_seconds = 0.5, 1.2
    chosen = args.arms.split(",") if args.arms else list(QUICK_ZOO if args.quick else ZOO)
    unknown = sorted(set(chosen) - set(KNOWN))
    if unknown:
        p.error(f"unknown arms {unknown}; choose from {', '.join(KNOWN)}")
    args.arms = chosen
    return args


def excitation(
    truth,
    samples: int,
    seed: int,
    quick: bool = False,
    lengths=TRAJECTORY_SECONDS,
    trajectories=None,
    **options,
):
    """About ``samples`` samples of excitation at 50 Hz: an equal share from trajectories of
    each of ``lengths`` seconds (seeds ``seed``, ``seed + 100``, ...; ``quick``: 1 and 2 s),
    or, given ``trajectories``, that many trajectories of each length."""
    from lagrax.data.dataset import concatenate
    from lagrax.data.generators import generate

    lengths = (1.0, 2.0) if quick else tuple(lengths)
    parts = []
    for i, seconds in enumerate(lengths):
        count = trajectories or max(1, round(samples / len(lengths) / round(seconds / DT)))
        common = dict(trajectories=count, seed=seed + 100 * i, duration=seconds, dt=DT)
        parts.append(generate(truth, "excitation", **common, **options))
    return concatenate(parts)


def evaluation_sets(truth, quick: bool = False, lengths=TRAJECTORY_SECONDS) -> dict:
    """The held-out (seed 1) and 2x-faster (seed 2) sets: 4,000 samples each (200 quick)."""
    n = 200 if quick else TEST_SAMPLES
    return {
        "held out": excitation(truth, n, seed=1, quick=quick, lengths=lengths),
        "2x faster": excitation(truth, n, seed=2, quick=quick, lengths=lengths, speed=2.0),
    }


def datasets(truth, args) -> dict:
    """Training data (``args.samples``, seed 0) and :func:`evaluation_sets`."""
    return {
        "train": excitation(truth, args.samples, seed=0, quick=args.quick),
        **evaluation_sets(truth, args.quick),
    }


def train(kind: str, data: dict, args):
    """One model with its default recipe within ``args.seconds``; ``(model, seconds)``."""
    import jax

    from lagrax.models import make_model
    from lagrax.training import TrainConfig, recipe
    from lagrax.training import train as fit

    settings, options = recipe(kind, data["train"])
    settings.update(max_seconds=args.seconds, **(dict(epochs=2, lbfgs_epochs=0) if args.quick else {}))
    tr = data["train"]
    model = make_model(kind, tr.info, key=jax.random.PRNGKey(0), **options)
    model = model.with_data_statistics(tr.q, tr.qd, tr.qdd, tr.tau)
    result = fit(model, tr, None, TrainConfig.from_dict(settings), progress=False)
    return result.model, result.train_seconds


def nmse(pred, true) -> np.ndarray:
    """Per joint: MSE over the joint's variance."""
    return np.mean((np.asarray(pred) - true) ** 2, axis=0) / np.var(true, axis=0)


def accuracy(model, data: dict) -> dict:
    from lagrax import batched

    b, out = batched(model), {}
    for split, key in (("held out", "held"), ("2x faster", "fast")):
        ds = data[split]
        per_joint = nmse(b.inverse_dynamics(ds.q, ds.qd, ds.qdd), ds.tau)
        out[f"tau_{key}"] = float(np.mean(per_joint))
        out[f"tau_{key}_joints"] = per_joint.tolist()
        out[f"qdd_{key}"] = float(np.max(nmse(b.forward_dynamics(ds.q, ds.qd, ds.tau), ds.qdd)))
    return out


def tracking(truth, models: dict, args) -> dict:
    """RMSE (or the divergence text) of every controller row: ``{(row, controller): value}``."""
    from lagrax.control.laws import Controller, LoopSettings
    from lagrax.control.tracking import ControlJob, run_control
    from lagrax.data.generators import reference_trajectories

    ref = reference_trajectories(truth.info, args.duration, 1.0 / RATE, args.references, seed=100)
    out, seconds = {}, {}
    for controller in ("computed-torque",) if args.quick else ("computed-torque", "feedforward-pd"):
        job = ControlJob(
            Path("unused.npz"),
            truth,
            ref,
            list(models.items()),
            Controller.parse(controller),
            settings=LoopSettings(RATE),
        )
        start = time.perf_counter()
        results = run_control(job)
        seconds[controller] = time.perf_counter() - start
        for name, r in results.items():
            if name == "pd" and controller != "computed-torque":
                continue
            m = r["metrics"]
            out[(name, controller)] = m["rmse_all"] if m["finite"] else _diverged(m)
    return dict(rmse=out, seconds=seconds)


def _diverged(metrics: dict) -> str:
    from lagrax.control.laws import describe_divergence

    return describe_divergence(metrics["diverged"])


def online(truth, offline, args) -> dict:
    """``lagrax control --online --scratch delan``'s defaults (a new DeLaN on feed-forward
    PD with the automatic gains) over one reference that does not repeat, with the
    offline DeLaN never updated and PD alone on the same reference: each row's RMSE per
    window of a sixth of the run (or its divergence)."""
    import jax

    from lagrax.control.laws import Controller, LoopSettings
    from lagrax.control.online import OnlineSettings
    from lagrax.control.tracking import ControlJob, run_control
    from lagrax.data.generators import reference_trajectories
    from lagrax.models import make_model

    ref = reference_trajectories(truth.info, args.online_seconds, 1.0 / RATE, 1, seed=200)
    scratch = make_model("delan", truth.info, key=jax.random.PRNGKey(0))
    models = [("delan (new)", scratch), ("offline DeLaN", offline)]
    job = ControlJob(
        Path("unused.npz"),
        truth,
        ref,
        models,
        Controller.FEEDFORWARD_PD,
        settings=LoopSettings(RATE),
        online=OnlineSettings(),
    )
    start = time.perf_counter()
    results = run_control(job)
    seconds = time.perf_counter() - start
    k = max(int(round(args.online_seconds / 6 * RATE)), 1)
    windows = {}
    for name, r in results.items():
        if not r["metrics"]["finite"]:
            windows[name] = _diverged(r["metrics"])
            continue
        e = np.asarray(r["trace"].q)[0] - ref[0][0]
        windows[name] = [float(np.sqrt(np.mean(e[i : i + k] ** 2))) for i in range(0, e.shape[0] - k + 1, k)]
    return dict(windows=windows, window_seconds=k / RATE, seconds=seconds)


def one_arm(name: str, args) -> dict:
    truth = arm(name)
    say(f"{name}: data")
    data = datasets(truth, args)
    row, models = dict(arm=name, dof=truth.info.dof, samples=int(data["train"].q.shape[0])), {}
    for kind in MODELS:
        say(f"{name}: training {kind} for up to {args.seconds:.0f} s")
        models[kind], row[f"{kind}_train_s"] = train(kind, data, args)
        row[kind] = accuracy(models[kind], data)
    say(f"{name}: tracking {args.references} references")
    row["tracking"] = tracking(truth, {"DeLaN": models["delan"], "MLP": models["mlp"]}, args)
    say(f"{name}: online learning from scratch over {args.online_seconds:.0f} s")
    row["online"] = online(truth, models["delan"], args)
    row["targets"] = verdicts(row)
    return row


def _rmse(row: dict, name: str, controller: str = "computed-torque"):
    """A row's RMSE, its divergence text, or None where it was not run (--quick)."""
    return row["tracking"]["rmse"].get((name, controller))


def _window(row: dict, name: str, i: int):
    w = row["online"]["windows"][name]
    return w if isinstance(w, str) else w[i]


def verdicts(row: dict) -> dict:
    """The issue's targets on this arm: ``{target: bool}``."""
    d, m = row["delan"], row["mlp"]
    ct, exact = _rmse(row, "DeLaN"), _rmse(row, "analytic")
    on, pd = row["online"]["windows"]["delan (new) online"], row["online"]["windows"]["pd"]
    early = (
        not isinstance(on, str)
        and not isinstance(pd, str)
        and any(a <= 0.1 * b for a, b in zip(on[:3], pd[:3]))
    )
    on_last, off_last = _window(row, "delan (new) online", -1), _window(row, "offline DeLaN", -1)
    numbers = lambda *x: all(isinstance(v, float) for v in x)  # noqa: E731
    return {
        "DeLaN beats the MLP (held out, 2x faster)": d["tau_held"] < m["tau_held"]
        and d["tau_fast"] < m["tau_fast"],
        "DeLaN torque nMSE <= 1e-3": d["tau_held"] <= 1e-3,
        "computed torque within 10x of analytic": numbers(ct, exact) and ct <= 10 * exact,
        "online does not diverge": not isinstance(row["online"]["windows"]["delan (new) online"], str),
        "online 10x below PD (first half)": early,
        "online within 3x of offline (last sixth)": numbers(on_last, off_last) and on_last <= 3 * off_last,
    }


def _pair(a, b, kind: str = "e") -> str:
    return f"{fmt(a, kind)} / {fmt(b, kind)}"


COLUMNS = [
    ("arm", "arm", "s"),
    ("dof", "DoF", "g"),
    ("tau", "torque nMSE held out, DeLaN / MLP", "s"),
    ("fast", "torque nMSE 2x faster, DeLaN / MLP", "s"),
    ("train", "training [s], DeLaN / MLP", "s"),
    ("ct", "computed torque RMSE [rad]: analytic / DeLaN / MLP", "s"),
    ("ff", "feed-forward PD RMSE: DeLaN / MLP", "s"),
    ("pd", "PD alone", "s"),
    ("online", "online from scratch: first / third / last sixth (PD, offline DeLaN last)", "s"),
    ("met", "targets met", "s"),
]


def table_row(row: dict) -> dict:
    d, m = row["delan"], row["mlp"]
    r = lambda name, c="computed-torque": fmt(_rmse(row, name, c), "e")  # noqa: E731
    w = row["online"]["windows"]
    on, offline = w["delan (new) online"], "offline DeLaN"
    on_text = on if isinstance(on, str) else " / ".join(fmt(on[i], "e") for i in (0, 2, -1))
    return dict(
        arm=row["arm"],
        dof=row["dof"],
        tau=_pair(d["tau_held"], m["tau_held"]),
        fast=_pair(d["tau_fast"], m["tau_fast"]),
        train=_pair(row["delan_train_s"], row["mlp_train_s"], "s"),
        ct=f"{r('analytic')} / {r('DeLaN')} / {r('MLP')}",
        ff=f"{r('DeLaN', 'feedforward-pd')} / {r('MLP', 'feedforward-pd')}",
        pd=r("pd"),
        online=f"{on_text} ({fmt(_window(row, 'pd', -1), 'e')}, {fmt(_window(row, offline, -1), 'e')})",
        met=f"{sum(row['targets'].values())} / {len(row['targets'])}",
    )


def per_joint_table(rows: list[dict]) -> str:
    lines = ["| arm | model | held-out torque nMSE per joint |", "|---|---|---|"]
    for row in rows:
        for kind in MODELS:
            cells = " ".join(f"{x:.1e}" for x in row[kind]["tau_held_joints"])
            lines.append(f"| {row['arm']} | {kind} | {cells} |")
    return "\n".join(lines)


def misses(rows: list[dict]) -> list[str]:
    return [f"{row['arm']}: {target}" for row in rows for target, ok in row["targets"].items() if not ok]


def figure(rows: list[dict], path: Path, force: bool) -> Path:
    """Grouped bars (log scale): each arm's tracking RMSE per controller; a diverged
    loop is a hatched bar at the top, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lagrax.analysis.plotting import check_figure_path

    check_figure_path(path, force)
    bars = [
        ("analytic, CT", lambda r: _rmse(r, "analytic")),
        ("DeLaN, CT", lambda r: _rmse(r, "DeLaN")),
        ("MLP, CT", lambda r: _rmse(r, "MLP")),
        ("DeLaN, FF-PD", lambda r: _rmse(r, "DeLaN", "feedforward-pd")),
        ("MLP, FF-PD", lambda r: _rmse(r, "MLP", "feedforward-pd")),
        ("PD", lambda r: _rmse(r, "pd")),
        ("online from scratch, last sixth", lambda r: _window(r, "delan (new) online", -1)),
    ]
    values = [[get(r) for r in rows] for _, get in bars]
    top = 10 * max([v for vs in values for v in vs if isinstance(v, float)] + [1e-3])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(rows) + 2), 4.2))
    width = 0.8 / len(bars)
    for i, ((label, _), vs) in enumerate(zip(bars, values)):
        x = np.arange(len(rows)) + (i - len(bars) / 2 + 0.5) * width
        ok = [v if isinstance(v, float) else np.nan for v in vs]  # None: not run
        ax.bar(x, ok, width, label=label, color=f"C{i}")
        for xi, v in zip(x, vs):
            if isinstance(v, str):
                ax.bar(xi, top, width, color=f"C{i}", alpha=0.3, hatch="//")
                ax.text(xi, top, "diverged", rotation=90, fontsize=6, ha="center", va="top")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(rows)), [r["arm"] for r in rows])
    ax.set_ylabel("joint-position RMSE [rad]")
    ax.set_title("tracking error per arm and controller (defaults, no per-arm settings)")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=7, ncol=2)
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

        check_figure_path(args.figures / "robot_zoo.png", args.force)  # before any work
    start, rows = time.time(), []
    for i, name in enumerate(args.arms, start=1):
        with quick_compilation(args.quick):  # a --quick run is nearly all compilation
            rows.append(one_arm(name, args))
        # each arm compiles its own programs: drop them, or the process runs out of memory
        # mappings for compiled code after four or five arms (LLVM "Cannot allocate memory")
        jax.clear_caches()
        spent = time.time() - start
        left = spent / i * (len(args.arms) - i)
        say(f"{name}: done, arm {i} of {len(args.arms)} ({spent:.0f} s so far, ETA about {left:.0f} s more)")
        report(rows, args, final=False)  # a crash later keeps the arms done so far
    report(rows, args, final=True)
    print(f"\n(total {time.time() - start:.0f} s)")
    return 0


def report(rows: list[dict], args, final: bool) -> None:
    """Print (``final``) and write the table, the per-joint errors, the misses and the figure."""
    table = markdown_table([table_row(r) for r in rows], COLUMNS)
    missed = misses(rows)
    listed = "\n".join(f"- {m}" for m in missed) or "- none"
    if final:
        print(table)
        print("\nMissed targets:\n" + listed)
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        figure(rows, args.figures / "robot_zoo.png", force=True)  # checked in main, then ours
    text = "\n\n".join([table, per_joint_table(rows), "Missed targets:\n\n" + listed])
    plain = [_jsonable(r) for r in rows]
    write_results(args.out, text, plain, {k: str(v) for k, v in vars(args).items()})


def _jsonable(row: dict) -> dict:
    out = dict(row)
    out["tracking"] = dict(
        rmse={f"{name} | {c}": v for (name, c), v in row["tracking"]["rmse"].items()},
        seconds=row["tracking"]["seconds"],
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
