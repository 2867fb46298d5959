"""Double pendulum, the LNN paper's protocol (Cranmer et al. 2020, sec. 6 and Fig. 4).

Training data: independent states ``theta ~ U[0, 2 pi)^2``, ``omega ~ U[-10, 10]^2``
with their analytic accelerations (``lagrax generate --kind states``); for the
"trajectories" row, passive trajectories of the same system instead. Every model is
trained on the forward (acceleration) loss, the default on unforced data, within a
wall-time budget. Evaluation: 40 initial conditions ``theta ~ U[0, 2 pi)``,
``omega ~ U[0, 0.1)``, integrated over ``t in [0, 100]`` (adaptive Tsit5) and saved at
10 fps; the metric is the drift of the *true* energy along the model's motion,
``|E(t_end) - E(0)| / 29.4`` (29.4 J = the largest potential energy, m = l = 1, g = 9.8),
mean and median over the 40. The paper reports 0.43 % for the LNN and 7.4 % for its
black-box baseline (600,000 steps of a 3x600 network on a GPU).

    python -m benchmarks.lnn_double_pendulum                 # about 30 min on 2 cores
    python -m benchmarks.lnn_double_pendulum --quick         # a smoke run, about a minute
    python -m benchmarks.lnn_double_pendulum --out docs/results/double_pendulum.md --figures docs/figures

Prints a markdown table; ``--out`` also writes it with a ``.json`` of the numbers,
``--figures`` the energy-over-time figure (truth, LNN, MLP: the paper's Fig. 4) and the
LNN's time-to-accuracy curve (energy error against training time).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quick import quick_compilation
from benchmarks.showcase import Contender, check_out, fit, markdown_table, say, score, write_results

# the LNN: its default recipe, with L-BFGS until the budget runs out
LNN_LONG = dict(lbfgs_epochs=10_000)
HNN_LOSS = dict(forward=0.0, canonical=1.0)  # (qd, pdot) from the data's canonical momentum
SCALE = 29.4  # J: the energy scale of the paper's metric
HORIZON, FPS, INITIAL_STATES = 100.0, 10, 40
SOLVER = dict(solver="tsit5", rtol=1e-7, atol=1e-7, max_steps=1_000_000)
COLUMNS = [
    ("label", "model", ""),
    ("data", "training data", ""),
    ("train_seconds", "train [s]", "s"),
    ("steps", "steps", "g"),
    ("val_loss", "val loss", "e"),
    ("energy_error", "energy error (mean)", "%"),
    ("energy_error_median", "energy error (median)", "%"),
    ("rollout_error", "rollout error (geo. mean)", "e"),
    ("stopped", "stopped early", "g"),
]


def contenders(lnn_seconds: float, other_seconds: float) -> list[tuple[Contender, str]]:
    """``(contender, training data)``: the LNN on states and on trajectories, and the baselines."""
    return [
        (Contender("LNN", "lnn", {}, LNN_LONG, lnn_seconds), "states"),
        (Contender("LNN", "lnn", {}, LNN_LONG, other_seconds), "trajectories"),
        (
            Contender("MLP (qdd)", "mlp", dict(heads="forward", width=128, depth=3), {}, other_seconds),
            "states",
        ),
        (Contender("DeLaN", "delan", dict(width=128), {}, other_seconds), "states"),
        (
            Contender(
                "HNN (canonical p)", "hnn", dict(momentum="canonical", width=128), HNN_LOSS, other_seconds
            ),
            "states",
        ),
    ]


def datasets(truth, samples: int, quick: bool, horizon: float) -> dict:
    """Training and validation states and trajectories. ``quick``: every set has the
    shape of the evaluation's rollouts (``INITIAL_STATES`` of ``horizon`` s at ``FPS``),
    so the truth's rollout and its energies compile once."""
    from lagrax.data.generators import generate

    states = dict(samples=samples, q_range=(0.0, 2 * math.pi), qd_range=(-10.0, 10.0))
    out = {}
    for part, seed in (("train", 0), ("val", 1)):
        n = samples if part == "train" or quick else max(samples // 10, 200)
        out["states", part] = generate(truth, kind="states", seed=seed, **dict(states, samples=n))
        # trajectories of 5 s at 100 Hz, the same number of samples
        passive = dict(trajectories=max(2, n // 501), duration=5.0, dt=0.01)
        if quick:
            passive = dict(trajectories=INITIAL_STATES, duration=horizon, dt=1 / FPS)
        out["trajectories", part] = generate(truth, kind="passive", seed=seed, **passive)
    return out


def evaluation_states(seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2 * np.pi, (INITIAL_STATES, 2)), rng.uniform(0, 0.1, (INITIAL_STATES, 2))


def _curve_callback(state: dict, every: float, evaluate) -> callable:
    """A training callback that records (training seconds, energy error) every ``every`` s."""

    def callback(epoch, model, record):
        if record.get("seconds", 0.0) >= state["next"]:
            state["next"] += every
            state["curve"].append((record["seconds"], evaluate(model)))
        return None

    return callback


def run(args) -> tuple[str, list[dict]]:
    import lagrax
    from lagrax.analysis.prediction import predict

    truth = lagrax.system("double_pendulum")
    ts = np.linspace(0.0, args.horizon, int(round(args.horizon * FPS)) + 1)
    q0, qd0 = evaluation_states()
    say("integrating the truth")
    reference = predict(truth, q0, qd0, ts, truth=truth, name="truth", solver="tsit5", rtol=1e-10, atol=1e-10)
    data = datasets(truth, args.samples, args.quick, args.horizon)
    rows = []
    for contender, kind in contenders(args.lnn_minutes * 60, args.minutes * 60):
        say(f"training {contender.label} on {kind} for up to {contender.seconds:.0f} s")
        every = 0.0 if args.quick else contender.seconds / 3
        curve = {"next": every, "curve": []}
        evaluate = lambda m: score(m, truth, q0, qd0, ts, reference, SCALE, "lnn", **SOLVER)["energy_error"]  # noqa: E731
        track = contender.name == "lnn" and kind == "states" and args.curve
        result = fit(
            contender,
            data[kind, "train"],
            data[kind, "val"],
            callback=_curve_callback(curve, every, evaluate) if track else None,
            quick=args.quick,
        )
        say(f"rolling out {contender.label} ({result.stopped_reason}, {result.steps} steps)")
        name = contender.name if kind == "states" else f"{contender.name}_trajectories"
        scores = score(result.model, truth, q0, qd0, ts, reference, SCALE, name, **SOLVER)
        val = [h["val_loss"] for h in result.history if "val_loss" in h]
        rows.append(
            dict(
                label=contender.label,
                data=kind,
                train_seconds=result.train_seconds,
                steps=result.steps,
                val_loss=min(val) if val else None,
                curve=curve["curve"],
                **scores,
            )
        )
    return markdown_table(rows, COLUMNS), rows, reference


def figures(folder: Path, rows: list[dict], reference, force: bool) -> list[Path]:
    from lagrax.analysis import plotting

    folder.mkdir(parents=True, exist_ok=True)
    shown = [reference] + [
        r["prediction"] for r in rows if r["data"] == "states" and r["label"] in ("LNN", "MLP (qdd)")
    ]
    paths = [
        plotting.plot_energy(
            shown,
            folder / "double_pendulum_energy.png",
            force,
            "double pendulum: true energy along 40 rollouts of 100 s",
        )
    ]
    lnn = next((r for r in rows if r["label"] == "LNN" and r["data"] == "states"), None)
    curve = [] if lnn is None else [*lnn["curve"], (lnn["train_seconds"], lnn["energy_error"])]
    if curve:
        paths.append(_plot_curve(curve, folder / "double_pendulum_time_to_accuracy.png", force))
    return paths


def _plot_curve(curve, path: Path, force: bool) -> Path:
    import matplotlib.pyplot as plt

    from lagrax.analysis.plotting import check_figure_path

    check_figure_path(path, force)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    t, e = zip(*curve)
    ax.semilogy(t, 100 * np.asarray(e), "o-", label="LNN")
    ax.axhline(0.43, color="grey", ls="--", label="LNN paper (0.43 %)")
    ax.axhline(0.2, color="red", ls=":", label="target (0.2 %)")
    ax.set(xlabel="training time [s] (2 cores)", ylabel="energy error [%]", title="time to accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data, seconds of training, a 2 s horizon (CI)")
    p.add_argument("--lnn-minutes", type=float, default=15.0, help="training budget of the LNN on states")
    p.add_argument("--minutes", type=float, default=2.5, help="training budget of every other row")
    p.add_argument(
        "--samples", type=int, default=100_000, help="training states (and about as many trajectory samples)"
    )
    p.add_argument("--horizon", type=float, default=HORIZON, help="seconds of each evaluation rollout")
    p.add_argument("--no-curve", dest="curve", action="store_false", help="skip the time-to-accuracy curve")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--figures", type=Path, default=None, help="folder for the figures")
    p.add_argument("--force", action="store_true", help="overwrite --out and figures")
    args = p.parse_args(argv)
    if args.quick:  # the samples of INITIAL_STATES rollouts of 2 s (see datasets)
        args.lnn_minutes, args.minutes, args.horizon = 0.1, 0.05, 2.0
        args.samples = INITIAL_STATES * (int(round(args.horizon * FPS)) + 1)
    return args


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    start = time.time()
    with quick_compilation(args.quick):
        table, rows, reference = run(args)
    print(table)
    print(f"\n(total {time.time() - start:.0f} s; LNN paper: LNN 0.43 %, baseline 7.4 %)")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_results(args.out, table, rows, settings)
    if args.figures is not None:
        for path in figures(args.figures, rows, reference, args.force):
            say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
