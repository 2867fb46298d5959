"""DeLaN against the MLP baseline on robot arms, in and out of the training distribution.

For each arm (Panda and UR5 from URDF through Pinocchio, with the realistic friction
and armature preset; gymnasium's Pusher, a 7-DoF MJCF arm stepped by MuJoCo with its
damping and armature, gravity on) it generates excitation data with lagrax's
generator, trains each model with its default recipe for arm data
(:func:`lagrax.training.recipe`), and prints one markdown table:

    python -m benchmarks.robot_models                    # everything (about 25 min on 2 cores)
    python -m benchmarks.robot_models --quick            # tiny data and epochs, < 2 min (CI)
    python -m benchmarks.robot_models --systems pusher --out robots.md

Data (per arm): training, ``--trajectories`` excitation trajectories of 8 s at 50 Hz
(seed 0); "held out", 10 more from the same distribution (seed 1); "2x faster", 10
trajectories of the same extent at twice the frequency and velocity cap (four times the
accelerations); "other region", 10 trajectories centred towards the joints' upper
limits, where the training set never centres (:data:`lagrax.data.generators.REGIONS`).

Models: ``delan`` (the default recipe: inverse and forward losses, learned viscous +
Coulomb friction), ``delan-nofriction`` (the same without friction) and ``mlp`` (the
black-box baseline, forward and inverse heads, the same optimiser recipe).

Columns: torque nMSE (per-joint MSE over the joint's torque variance, mean over joints);
acceleration nMSE of the worst joint; the errors of ``M qdd``, ``c`` and ``g`` against
the ground truth (MSE over the mean torque variance); the median relative error of the
smallest eigenvalue of ``M``; valid rollout time [s] (see
:func:`lagrax.analysis.metrics.valid_prediction_time`; held-out set only); training time [s].
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.quick import quick_compilation

SYSTEMS = {
    "panda": dict(realistic=True),
    "ur5": dict(realistic=True),
    "pusher": {},
}
MODELS = {"delan": {}, "delan-nofriction": {"friction": "none"}, "mlp": {}}
SPLITS = ("held out", "2x faster", "other region")
DURATION, DT = 8.0, 0.02


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data and epochs (a smoke test, < 2 min)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated: {','.join(SYSTEMS)}")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {','.join(MODELS)}")
    p.add_argument("--trajectories", type=int, default=60, help="training trajectories per arm")
    p.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and results (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    for name, known in (("systems", SYSTEMS), ("models", MODELS)):
        chosen = [x.strip() for x in getattr(args, name).split(",") if x.strip()]
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            p.error(f"unknown {name} {unknown}; choose from {', '.join(known)}")
        setattr(args, name, chosen)
    if args.out is not None and not args.force:
        for path in (args.out, args.out.with_suffix(".json")):
            if path.exists():
                p.error(f"{path} exists; give --force to overwrite it")
    return args


def datasets(system, quick: bool, trajectories: int) -> dict:
    """Training, held-out and out-of-distribution excitation data of one arm."""
    from lagrax.data.generators import generate

    n_train, n_test, duration = (4, 2, 2.0) if quick else (trajectories, 10, DURATION)
    common = dict(duration=duration, dt=DT)
    return {
        "train": generate(system, "excitation", trajectories=n_train, seed=0, **common),
        "held out": generate(system, "excitation", trajectories=n_test, seed=1, **common),
        "2x faster": generate(system, "excitation", trajectories=n_test, seed=2, speed=2.0, **common),
        "other region": generate(system, "excitation", trajectories=n_test, seed=3, region="upper", **common),
    }


def _nmse(pred, true) -> np.ndarray:
    return np.mean((np.asarray(pred) - true) ** 2, axis=0) / np.var(true, axis=0)


def measures(model, ds, rollout: bool) -> dict:
    """The table's measures of one model on one dataset."""
    from lagrax import batched
    from lagrax.analysis.metrics import valid_prediction_time

    b = batched(model)
    var = float(np.mean(np.var(ds.tau, axis=0)))
    out = {"torque_nmse": float(np.mean(_nmse(b.inverse_dynamics(ds.q, ds.qd, ds.qdd), ds.tau)))}
    out["qdd_nmse_worst"] = float(np.max(_nmse(b.forward_dynamics(ds.q, ds.qd, ds.tau), ds.qdd)))
    if model.provides("mass_matrix"):
        parts = b.decomposition(ds.q, ds.qd, ds.qdd)
        for name in ("inertial", "coriolis", "gravity"):
            out[f"{name}_error"] = float(np.mean((np.asarray(parts[name]) - getattr(ds, name)) ** 2) / var)
        learned = np.linalg.eigvalsh(np.asarray(b.mass_matrix(ds.q)))[:, 0]
        true = np.linalg.eigvalsh(ds.mass_matrix)[:, 0]
        out["eigmin_error"] = float(np.median(np.abs(learned - true) / true))
    if rollout:
        out["valid_rollout_s"] = float(valid_prediction_time(model, ds).mean)
    return out


def train_one(model_name: str, options: dict, data: dict, epochs: int | None, quick: bool):
    """Train one model on ``data["train"]`` with its recipe; returns ``(model, seconds)``."""
    from lagrax.models import make_model
    from lagrax.training import TrainConfig, recipe, train

    kind = "mlp" if model_name == "mlp" else "delan"
    settings, model_options = recipe(kind, data["train"])
    if quick:
        settings["epochs"] = 2
    if epochs is not None:
        settings["epochs"] = epochs
    model = make_model(kind, data["train"].info, key=jax.random.PRNGKey(0), **{**model_options, **options})
    tr = data["train"]
    model = model.with_data_statistics(tr.q, tr.qd, tr.qdd, tr.tau)
    result = train(model, tr, None, TrainConfig.from_dict(settings), progress=sys.stderr.isatty())
    return result.model, result.train_seconds


def learned_friction(model) -> dict | None:
    """The learned friction coefficients, rounded, or None."""
    joint_friction = getattr(getattr(model, "friction_model", None), "joint_friction", None)
    if joint_friction is None:
        return None
    f = joint_friction()
    return {
        "viscous": np.round(np.asarray(f.viscous), 3).tolist(),
        "coulomb": np.round(np.asarray(f.coulomb), 3).tolist(),
    }


COLUMNS = (
    ("torque_nmse", "torque nMSE", "{:.2e}"),
    ("qdd_nmse_worst", "qdd nMSE (worst joint)", "{:.2e}"),
    ("inertial_error", "M qdd err", "{:.1e}"),
    ("coriolis_error", "c err", "{:.1e}"),
    ("gravity_error", "g err", "{:.1e}"),
    ("eigmin_error", "eig_min(M) rel. err", "{:.3f}"),
    ("valid_rollout_s", "valid rollout [s]", "{:.2f}"),
)


def table(rows: list[dict]) -> str:
    """The markdown table of every ``(system, model, split)`` row."""
    head = ["arm", "model", "data"] + [title for _, title, _ in COLUMNS] + ["train [s]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["system"], r["model"], r["split"]]
        cells += [fmt.format(r[key]) if key in r else "–" for key, _, fmt in COLUMNS]
        cells.append(f"{r['train_seconds']:.0f}" if r["split"] == SPLITS[0] else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args) -> tuple[list[dict], list[dict]]:
    """Every system and model: the table rows and the learned friction coefficients."""
    import lagrax

    rows, frictions = [], []
    for system_name in args.systems:
        start = time.perf_counter()
        system = lagrax.system(system_name, **SYSTEMS[system_name])
        data = datasets(system, args.quick, args.trajectories)
        print(f"{system_name}: data in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        for model_name in args.models:
            model, seconds = train_one(model_name, MODELS[model_name], data, args.epochs, args.quick)
            for split in SPLITS:
                m = measures(model, data[split], rollout=split == SPLITS[0])
                rows.append(
                    dict(system=system_name, model=model_name, split=split, train_seconds=seconds, **m)
                )
            friction = learned_friction(model)
            if friction is not None and model_name == "delan":
                frictions.append(dict(system=system_name, **friction))
            print(f"{system_name} {model_name}: trained in {seconds:.0f} s", file=sys.stderr, flush=True)
    return rows, frictions


def main(argv=None) -> int:
    args = parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    with quick_compilation(args.quick):
        rows, frictions = run(args)
    command = "python -m benchmarks.robot_models " + " ".join(argv if argv is not None else sys.argv[1:])
    report = f"{table(rows)}\n\ncommand: `{command.strip()}`\n"
    for f in frictions:
        report += f"\nlearned friction, {f['system']}: viscous {f['viscous']}, Coulomb {f['coulomb']}"
    print(report)
    if args.out is not None:
        from lagrax.core.fileio import atomic_write_text

        atomic_write_text(args.out, report + "\n")
        atomic_write_text(
            args.out.with_suffix(".json"), json.dumps({"rows": rows, "friction": frictions}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
