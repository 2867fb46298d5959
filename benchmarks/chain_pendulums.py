"""Chain pendulums with N = 1, 2, 3 and 5 links, the protocol of Finzi et al. 2020.

Finzi, Wang & Wilson (NeurIPS 2020, "Simplifying Hamiltonian and Lagrangian neural
networks via explicit constraints") train on trajectories of 3 s sampled every 0.03 s,
on short windows of them, and report the rollout relative error
``|z_hat - z| / (|z_hat| + |z|)`` as a geometric mean over time and 100 test
trajectories. Their numbers (CLNN / DeLaN / HNN / neural ODE) are in :data:`FINZI`.

Here, for each N: ``chain_pendulum`` with masses and lengths drawn from U[0.6, 1.4]
(seed 0, as their ChainPendulum), ``g = 9.81``; ``--trajectories`` training
trajectories of 3 s at 0.03 s from ``q ~ U[-1.5, 1.5]``, ``qd ~ U[-1.5, 1.5]`` per
link (passive, exact accelerations); each model trained within ``--seconds`` on
windows of ``--window`` steps (the rollout loss: RK4 through the model from each
window's first state, the evaluation's integrator) plus, with ``--loss forward``, the
recorded accelerations; evaluation: 100 new trajectories over ``--horizon`` seconds
(default 10x the 3 s training trajectories), adaptive Tsit5.

    python benchmarks/chain_pendulums.py                    # about 30 min on 2 cores
    python benchmarks/chain_pendulums.py --links 1,2 --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from lagrax.benchmarks.showcase import Contender, check_out, fit, fmt, say, score, write_results

# Finzi et al. 2020, rollout relative error (geometric mean): CLNN, DeLaN, HNN, neural ODE
FINZI = {
    1: (5.2e-5, 2.5e-4, 1.2e-4, 3.8e-4),
    2: (1.1e-4, 1.3e-3, 1.9e-3, 6.5e-2),
    3: (3.3e-4, 4.1e-2, 4.7e-2, 0.27),
    5: (9.3e-4, 0.33, 0.34, 0.44),
}
DT, DURATION = 0.03, 3.0


def contenders(seconds: float, loss: str, window: int) -> list[Contender]:
    losses = dict(rollout=1.0, rollout_horizon=window, forward=1.0 if loss == "forward" else 0.0)
    return [
        Contender("DeLaN", "delan", dict(width=128), dict(losses), seconds),
        Contender("LNN", "lnn", dict(width=128, depth=2), dict(losses), seconds),
    ]


def chain(n: int):
    import lagrax

    rng = np.random.default_rng(0)
    masses, lengths = (list(0.6 + 0.8 * rng.random(n)) for _ in range(2))
    return lagrax.system("chain_pendulum", n=n, masses=masses, lengths=lengths)


def run_links(n: int, args) -> list[dict]:
    from lagrax.prediction import predict
    from lagrax.trajectories import generate

    truth = chain(n)
    box = dict(q_range=(-1.5, 1.5), qd_range=(-1.5, 1.5), duration=DURATION, dt=DT)
    train_ds = generate(truth, kind="passive", trajectories=args.trajectories, seed=0, **box)
    val_ds = generate(truth, kind="passive", trajectories=max(args.trajectories // 10, 2), seed=1, **box)
    rng = np.random.default_rng(2)
    q0, qd0 = rng.uniform(-1.5, 1.5, (args.test, n)), rng.uniform(-1.5, 1.5, (args.test, n))
    ts = np.arange(int(round(args.horizon / DT)) + 1) * DT
    reference = predict(truth, q0, qd0, ts, truth=truth, name="truth", rtol=1e-10, atol=1e-10)
    rows = []
    for contender in contenders(args.seconds, args.loss, args.window):
        say(f"N = {n}: training {contender.label} for up to {contender.seconds:.0f} s")
        result = fit(contender, train_ds, val_ds, quick=args.quick)
        s = score(result.model, truth, q0, qd0, ts, reference, None, contender.name, rtol=1e-8, atol=1e-8)
        rows.append(
            dict(links=n, label=contender.label, train_seconds=result.train_seconds, steps=result.steps, **s)
        )
    return rows


def table(rows: list[dict]) -> str:
    header = ["N", "ours: DeLaN", "ours: LNN", "Finzi CLNN", "Finzi DeLaN", "Finzi HNN", "Finzi NODE"]
    header += ["best ours beats CLNN", "our DeLaN beats theirs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n in sorted({r["links"] for r in rows}):
        ours = {r["label"]: r["rollout_error"] for r in rows if r["links"] == n}
        ref = FINZI.get(n, (None,) * 4)
        best = min(ours.values())
        beats = "-" if ref[0] is None else ("yes" if best < ref[0] else "no")
        delan = "-" if ref[1] is None or "DeLaN" not in ours else ("yes" if ours["DeLaN"] < ref[1] else "no")
        cells = [
            fmt(ours.get("DeLaN"), "e"),
            fmt(ours.get("LNN"), "e"),
            *(fmt(x, "e") for x in ref),
            beats,
            delan,
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data, seconds of training, a 1 s horizon (CI)")
    p.add_argument("--links", default="1,2,3,5", help="comma-separated numbers of links")
    p.add_argument("--seconds", type=float, default=200.0, help="training budget of each model")
    p.add_argument("--trajectories", type=int, default=200, help="training trajectories of 3 s")
    p.add_argument("--test", type=int, default=100, help="test trajectories")
    p.add_argument("--horizon", type=float, default=10 * DURATION, help="seconds of each test rollout")
    p.add_argument("--window", type=int, default=5, help="steps of each training window")
    p.add_argument(
        "--loss",
        choices=("rollout", "forward"),
        default="forward",
        help="windows only, or also accelerations",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.trajectories, args.test, args.horizon = 2.0, 6, 4, 1.0
    return args


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    start = time.time()
    rows = []
    for n in (int(x) for x in args.links.split(",")):
        rows += run_links(n, args)
    text = table(rows)
    print(text)
    print(f"\n(total {time.time() - start:.0f} s)")
    write_results(args.out, text, rows, {k: str(v) for k, v in vars(args).items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
