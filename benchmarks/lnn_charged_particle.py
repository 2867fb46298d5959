"""Charged particle in a uniform magnetic field: a Lagrangian outside DeLaN's form.

``L = 1/2 m |qd|^2 + e qd . A(q)``, ``A = B/2 (-y, x)`` (``m = e = B = 1``): the
velocity-linear term ``e qd . A`` gives the Lorentz force ``e qd x B``, which no
``1/2 qd^T M(q) qd - V(q)`` can express (its velocity forces are quadratic in ``qd``).
The LNN, DeLaN and the black-box MLP baseline are trained on the same independent states
(``q ~ U[-1, 1]^2``, ``qd ~ U[-1, 1]^2``, analytic accelerations) with the forward loss,
then rolled out from 20 new states over four cyclotron periods (``t in [0, 8 pi]``,
adaptive Tsit5). The exact motion is a circle of radius ``|v| / (e B / m)``: the
table reports the acceleration error on held-out states (DeLaN's floor), the rollout
error (geometric mean over time and states of ``|z_hat - z| / (|z_hat| + |z|)``), the
drift of the true energy ``1/2 m |v|^2`` (the magnetic force does no work) and the
orbit error (largest deviation of the distance from the true circle's centre, over the
radius, mean over states).

    python -m benchmarks.lnn_charged_particle             # about 5 min on 2 cores
    python -m benchmarks.lnn_charged_particle --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quick import quick_compilation
from benchmarks.showcase import Contender, check_out, fit, markdown_table, say, score, write_results

COLUMNS = [
    ("label", "model", ""),
    ("train_seconds", "train [s]", "s"),
    ("qdd_nmse", "held-out qdd nMSE", "e"),
    ("rollout_error", "rollout error", "e"),
    ("energy_error", "energy drift", "%"),
    ("orbit_error", "orbit error", "%"),
    ("valid_prediction_time", "valid time [s]", "g"),
]


def contenders(seconds: float) -> list[Contender]:
    return [
        Contender("LNN", "lnn", dict(width=128, depth=2), {}, seconds),
        Contender("DeLaN", "delan", dict(width=128), {}, seconds),
        Contender("MLP (qdd)", "mlp", dict(heads="forward", width=128, depth=2), {}, seconds),
    ]


def orbit_error(q: np.ndarray, q0: np.ndarray, qd0: np.ndarray, omega: float = 1.0) -> float:
    """Mean over states of ``max_t | |q(t) - c| - r | / r`` for the true circle (centre ``c``,
    radius ``r = |v| / omega``; clockwise for ``e B > 0``)."""
    r = np.linalg.norm(qd0, axis=-1) / omega
    centre = q0 + np.stack([qd0[:, 1], -qd0[:, 0]], -1) / omega  # v turned 90 degrees clockwise
    dev = np.abs(np.linalg.norm(q - centre[:, None], axis=-1) - r[:, None]) / r[:, None]
    return float(np.mean(np.where(np.isfinite(dev), dev, np.inf).max(axis=1)))


def run(args) -> tuple[str, list[dict]]:
    import lagrax
    from lagrax.analysis.metrics import normalised_mse
    from lagrax.analysis.prediction import predict
    from lagrax.data.generators import generate

    truth = lagrax.system("charged_particle")
    states = dict(q_range=(-1.0, 1.0), qd_range=(-1.0, 1.0))
    train_ds = generate(truth, kind="states", samples=args.samples, seed=0, **states)
    val_ds = generate(truth, kind="states", samples=max(args.samples // 10, 200), seed=1, **states)
    rng = np.random.default_rng(5)
    q0, qd0 = rng.uniform(-1, 1, (20, 2)), rng.uniform(-1, 1, (20, 2))
    ts = np.linspace(0.0, args.periods * 2 * np.pi, int(args.periods * 50) + 1)
    reference = predict(truth, q0, qd0, ts, truth=truth, name="truth", rtol=1e-10, atol=1e-10)
    assert orbit_error(reference.q, q0, qd0) < 1e-6  # the exact motion is the circle
    rows = []
    for contender in contenders(args.seconds):
        say(f"training {contender.label}")
        result = fit(contender, train_ds, val_ds, quick=args.quick)
        qdd = lagrax.batched(result.model).forward_dynamics(val_ds.q, val_ds.qd, val_ds.tau)
        scores = score(
            result.model, truth, q0, qd0, ts, reference, None, contender.name, rtol=1e-7, atol=1e-7
        )
        scores["orbit_error"] = orbit_error(scores["prediction"].q, q0, qd0)
        rows.append(
            dict(
                label=contender.label,
                train_seconds=result.train_seconds,
                qdd_nmse=normalised_mse(qdd, val_ds.qdd),
                **scores,
            )
        )
    return markdown_table(rows, COLUMNS), rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data and seconds of training (CI)")
    p.add_argument("--seconds", type=float, default=90.0, help="training budget of each model")
    p.add_argument("--samples", type=int, default=20_000, help="training states")
    p.add_argument("--periods", type=float, default=4.0, help="cyclotron periods of each rollout")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.samples, args.periods = 2.0, 200, 0.5  # 200: as many as the validation set
    return args


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    start = time.time()
    with quick_compilation(args.quick):
        table, rows = run(args)
    print(table)
    print(f"\n(total {time.time() - start:.0f} s)")
    write_results(args.out, table, rows, {k: str(v) for k, v in vars(args).items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
