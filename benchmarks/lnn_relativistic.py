"""Relativistic particle (c = 1, uniform field): the LNN paper's three-way comparison.

A Lagrangian network learns ``L(q, qd)`` from ``(q, qd) -> qdd`` alone. A Hamiltonian
network needs canonical coordinates: fed ``p = qd`` (the naive choice, wrong when
``p = gamma m qd``) it cannot fit the flow; fed the true canonical momentum it can
(Cranmer et al. 2020, sec. 5 and Fig. 3). For both Lagrangians the ground truth offers,

* ``textbook``: ``L = -m c^2 sqrt(1 - qd^2 / c^2) + m c^2 - m g q`` (``p = gamma m qd``),
* ``lnn``: the paper's code, ``L = (1 - qd^2)^(-1/2) + g q``,

each model is trained on the same independent states (``q ~ U[-1, 1]``,
``qd ~ U[-0.9, 0.9]``; analytic accelerations; canonical momenta where the HNN uses
them) and rolled out from 20 new states over ``t in [0, 2]`` (adaptive Tsit5). The
table gives the final validation loss (its own loss: comparable within a model only),
the rollout error (geometric mean over time and states of
``|z_hat - z| / (|z_hat| + |z|)``, ``z`` the model's coordinates ``(q, qd)`` or ``(q, p)``)
and the mean valid prediction time.

    python -m benchmarks.lnn_relativistic                 # about 6 min on 2 cores
    python -m benchmarks.lnn_relativistic --quick         # a smoke run (textbook only)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quick import quick_compilation
from benchmarks.showcase import Contender, check_out, fit, markdown_table, say, write_results

VARIANTS = ("textbook", "lnn")
COLUMNS = [
    ("variant", "Lagrangian", ""),
    ("label", "model", ""),
    ("coordinates", "fed", ""),
    ("train_seconds", "train [s]", "s"),
    ("val_loss", "final val loss", "e"),
    ("rollout_error", "rollout error", "e"),
    ("valid_prediction_time", "valid time [s] (of 2)", "g"),
]


def contenders(seconds: float) -> list[Contender]:
    hnn = dict(width=128, depth=2)
    return [
        Contender("LNN", "lnn", dict(width=128, depth=2), {}, seconds),
        Contender("HNN", "hnn", dict(hnn, momentum="velocity"), dict(forward=0.0, canonical=1.0), seconds),
        Contender("HNN", "hnn", dict(hnn, momentum="canonical"), dict(forward=0.0, canonical=1.0), seconds),
    ]


def _data(truth, samples: int, seed: int):
    from lagrax.data.generators import generate

    return generate(
        truth, kind="states", samples=samples, q_range=(-1.0, 1.0), qd_range=(-0.9, 0.9), seed=seed
    )


def _fed(ds, contender: Contender):
    """The HNN fed ``p = qd`` sees ``qd`` as its momentum and ``qdd`` as its rate."""
    if contender.options.get("momentum") == "velocity":
        return dataclasses.replace(ds, p=ds.qd, pdot=ds.qdd)
    return ds


def _rollout(model, truth, contender: Contender, q0, qd0, ts):
    """The model's rollout and the truth's, both in the model's coordinates."""
    from lagrax.systems.batching import batched
    from lagrax.systems.rollout import simulate, simulate_canonical

    ref = simulate(truth, q0, qd0, ts, rtol=1e-10, atol=1e-10)
    momentum = contender.options.get("momentum")
    if momentum is None:
        try:
            r = simulate(model, q0, qd0, ts, rtol=1e-7, atol=1e-7)
            return (np.asarray(r.q), np.asarray(r.qd)), (np.asarray(ref.q), np.asarray(ref.qd)), "(q, qd)"
        except Exception as e:  # a failed rollout scores as diverged
            return (np.full_like(ref.q, np.nan),) * 2, (np.asarray(ref.q), np.asarray(ref.qd)), f"(q, qd) {e}"
    p_true = np.asarray(batched(truth).momentum(ref.q.reshape(-1, 1), ref.qd.reshape(-1, 1))).reshape(
        ref.q.shape
    )
    p_ref = np.asarray(ref.qd) if momentum == "velocity" else p_true
    try:
        r = simulate_canonical(model, q0, p_ref[:, 0], ts, rtol=1e-7, atol=1e-7)
        pred = (np.asarray(r.q), np.asarray(r.p))
    except Exception:
        pred = (np.full_like(ref.q, np.nan),) * 2
    return pred, (np.asarray(ref.q), p_ref), "(q, p = qd)" if momentum == "velocity" else "(q, p canonical)"


def _scores(pred, ref, ts) -> dict:
    from lagrax.analysis.metrics import (
        first_exceedance,
        geometric_mean,
        normalised_position_error,
        rollout_relative_error,
    )

    z = lambda a: np.concatenate(a, -1)  # noqa: E731
    valid = [first_exceedance(ts, normalised_position_error(a, b), 1e-2) for a, b in zip(pred[0], ref[0])]
    return dict(
        rollout_error=geometric_mean(rollout_relative_error(z(pred), z(ref))),
        valid_prediction_time=float(np.mean(valid)),
    )


def run(args) -> tuple[str, list[dict]]:
    import lagrax

    ts = np.linspace(0.0, 2.0, 81)
    rng = np.random.default_rng(7)
    q0, qd0 = rng.uniform(-1, 1, (20, 1)), rng.uniform(-0.5, 0.5, (20, 1))
    rows = []
    for variant in VARIANTS[:1] if args.quick else VARIANTS:
        truth = lagrax.system("relativistic_particle", variant=variant)
        train_ds, val_ds = _data(truth, args.samples, 0), _data(truth, max(args.samples // 10, 200), 1)
        for contender in contenders(args.seconds):
            say(f"{variant}: training {contender.label} {contender.options.get('momentum', '')}")
            result = fit(contender, _fed(train_ds, contender), _fed(val_ds, contender), quick=args.quick)
            pred, ref, coords = _rollout(result.model, truth, contender, q0, qd0, ts)
            val = [h["val_loss"] for h in result.history if "val_loss" in h]
            rows.append(
                dict(
                    variant=variant,
                    label=contender.label,
                    coordinates=coords,
                    train_seconds=result.train_seconds,
                    val_loss=val[-1] if val else None,
                    **_scores(pred, ref, ts),
                )
            )
    return markdown_table(rows, COLUMNS), rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data and seconds of training (CI)")
    p.add_argument("--seconds", type=float, default=60.0, help="training budget of each model")
    p.add_argument("--samples", type=int, default=20_000, help="training states")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.samples = 2.0, 200  # as many as the validation set: one shape to compile for
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
