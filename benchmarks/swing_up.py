"""Energy-based swing-up of under-actuated systems with learned Lagrangians (issue 26).

For each system (``cartpole``, ``furuta``, ``inverted_double_pendulum``):

1. Data: excitation through the driven joint only (random cosine-series torques, the
   other joints free) at 500 Hz, ``--trajectories`` of ``--duration`` s from the nominal
   plant with viscous + Coulomb + Stribeck friction
   (:data:`lagrax.control.swing_up.PLANT_FRICTION`). The unactuated joints start anywhere
   on the circle: the excitation draws start states within half of a joint's range, and
   the swing-up needs data near the top.
2. Models, with the training defaults (``lagrax.training.recipe``) within ``--seconds``
   each: DeLaN with learned Stribeck friction, DeLaN without friction, the MLP.
3. Plants: ``--plants`` random plants, masses, lengths and every friction coefficient
   each scaled by a factor in [0.9, 1.1]; ``--count`` random hanging starts in all.
4. Rows: the true model (the perturbed plant itself), the "identified" analytic model
   (nominal parameters, friction ignored), the two DeLaNs, and the MLP: it has no
   energies, so it cannot swing up; its linearisation balances only. Columns: swing-up
   success, time to upright, the energy error when the LQR takes over, and balance
   success from ``--count`` states near the top (the LQR of each model alone).

    python -m benchmarks.swing_up                     # all three systems
    python -m benchmarks.swing_up --systems cartpole  # one
    python -m benchmarks.swing_up --quick             # a smoke test (CI)
    python -m benchmarks.swing_up --out docs/results/swing_up_table.md
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quick import quick_compilation
from benchmarks.showcase import Contender, check_out, fit, markdown_table, say, write_results

SYSTEMS = ("cartpole", "furuta", "inverted_double_pendulum")
CONTENDERS = [
    Contender("DeLaN", "delan", dict(friction="stribeck")),
    Contender("DeLaN without friction", "delan", dict(friction="none")),
    Contender("MLP", "mlp", {}),
]
#: The parameters perturbed by +-10 % (the classic systems; MuJoCo's: every body's mass,
#: inertia and position).
PERTURBED = {"cartpole": ("mc", "mp", "l"), "furuta": ("Mr", "Lr", "Mp", "Lp")}
PERTURBATION = 0.1
COLUMNS = [
    ("row", "model", "s"),
    ("success", "swing-up success", "%"),
    ("time", "time to upright [s]", "g"),
    ("energy_error", "energy error at the switch", "%"),
    ("balance", "balance from near the top", "%"),
    ("note", "note", "s"),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="cartpole, DeLaN alone, tiny data and training, short runs (CI)"
    )
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    p.add_argument("--seconds", type=float, default=90.0, help="training budget of each model")
    p.add_argument("--trajectories", type=int, default=20, help="excitation trajectories")
    p.add_argument("--duration", type=float, default=6.0, help="seconds of each excitation trajectory")
    p.add_argument("--count", type=int, default=30, help="random hanging starts (and near-top states)")
    p.add_argument("--plants", type=int, default=3, help="random perturbed plants the starts share")
    p.add_argument("--run-seconds", type=float, default=10.0, help="seconds of each swing-up")
    p.add_argument("--out", type=Path, default=None, help="also write the tables (.md) and numbers (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument(
        "--analytic-only",
        action="store_true",
        help="the true and identified models only (no data, no training)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.systems, args.seconds, args.trajectories, args.duration = "cartpole", 5.0, 2, 1.0
        args.count, args.plants, args.run_seconds = 1, 1, 1.5
    return args


# ---- plants ---------------------------------------------------------------------------


def nominal(name: str):
    """The nominal plant: the system with the swing-up's plant friction."""
    import lagrax
    from lagrax.control.swing_up import with_plant_friction

    return with_plant_friction(lagrax.system(name))


def perturbed(name: str, rng: np.random.Generator):
    """A plant with masses, lengths and friction each scaled by ``1 +- PERTURBATION``."""
    import equinox as eqx
    import jax.numpy as jnp
    import lagrax
    from lagrax.control.swing_up import with_plant_friction

    def factor(size=None):
        return rng.uniform(1 - PERTURBATION, 1 + PERTURBATION, size)

    if name in PERTURBED:
        base = lagrax.system(name)
        params = {k: dict(base.info.params)[k] * factor() for k in PERTURBED[name]}
        plant = with_plant_friction(lagrax.system(name, **params))
    else:
        plant = with_plant_friction(_perturbed_mujoco(lagrax.system(name), factor))
    friction = plant.friction_model
    scaled = tuple(
        getattr(friction, k) * jnp.asarray(factor(plant.dof)) for k in ("viscous", "coulomb", "stribeck")
    )
    friction = eqx.tree_at(lambda f: (f.viscous, f.coulomb, f.stribeck), friction, scaled)
    return eqx.tree_at(lambda s: s.friction_model, plant, friction)


def _perturbed_mujoco(system, factor):
    """A MuJoCo system whose bodies' masses, inertias and positions are scaled at random."""
    from lagrax.systems.mjcf import MujocoModel

    m = copy.copy(system.engine.model)
    nb = m.nbody
    mass, length = factor(nb), factor(nb)
    m.body_mass[:] = m.body_mass * mass
    m.body_inertia[:] = m.body_inertia * (mass * length**2)[:, None]
    m.body_pos[:] = m.body_pos * length[:, None]
    m.body_ipos[:] = m.body_ipos * length[:, None]
    return dataclasses.replace(system, engine=MujocoModel(m))


def identified(name: str):
    """The "identified" analytic model: nominal parameters, friction ignored."""
    import lagrax

    return lagrax.system(name)


# ---- data and models ----------------------------------------------------------------


def full_circle(plant):
    """``plant`` whose unactuated revolute joints span two turns as position ranges, so
    that excitation (which starts within half of each range) starts them anywhere."""
    info = plant.info
    lo, hi = _ranges(info)
    free = [not a and t == "revolute" for a, t in zip(info.actuated, info.joint_types)]
    limits = tuple((-2 * math.pi, 2 * math.pi) if f else (a, b) for f, a, b in zip(free, lo, hi))
    return dataclasses.replace(plant, info=dataclasses.replace(info, position_limits=limits))


def _ranges(info):
    if info.position_limits is None:
        return [-math.inf] * info.dof, [math.inf] * info.dof
    return [a for a, _ in info.position_limits], [b for _, b in info.position_limits]


#: Excitation's ``speed``: at the default (1) the driving torque of a 6 s trajectory is
#: 0.07 N on the cart-pole, below the cart's dry friction, and the cart hardly moves.
SPEED = 8.0


def excitation(plant, trajectories: int, duration: float, seed: int):
    """Excitation through the driven joint only, at 500 Hz."""
    from lagrax.data.generators import generate

    wide = full_circle(plant)
    return generate(
        wide, "excitation", trajectories=trajectories, duration=duration, dt=0.002, seed=seed, speed=SPEED
    )


def train_models(name: str, args) -> dict:
    """``{label: model}`` of every contender, trained on the nominal plant's excitation."""
    plant = nominal(name)
    start = time.perf_counter()
    train = excitation(plant, args.trajectories, args.duration, seed=0)
    val = excitation(plant, max(2, args.trajectories // 10), args.duration, seed=1)
    say(f"{name}: {len(train)} samples of excitation in {time.perf_counter() - start:.0f} s")
    models = {}
    for contender in CONTENDERS[:1] if args.quick else CONTENDERS:
        start = time.perf_counter()
        if args.quick:  # DeLaN alone, a tiny network: the smoke test's time is compiling
            contender = dataclasses.replace(contender, options=dict(contender.options, width=8, depth=1))
        result = fit(dataclasses.replace(contender, seconds=args.seconds), train, val, quick=args.quick)
        models[contender.label] = result.model
        say(f"{name}: {contender.label} trained in {time.perf_counter() - start:.0f} s")
    return models


# ---- the table ----------------------------------------------------------------------


def evaluate(name: str, models: dict, args) -> list[dict]:
    """One row per model: swing-up and balance over ``args.count`` states on ``args.plants`` plants."""
    from lagrax.control import swing_up as su

    settings = su.SwingUpSettings(duration=args.run_seconds, hold=min(2.0, args.run_seconds / 3))
    rng = np.random.default_rng(0)
    plants = [perturbed(name, rng) for _ in range(args.plants)]
    per_plant = [len(x) for x in np.array_split(np.arange(args.count), args.plants)]
    rows = []
    for label, model in [
        ("true model", None),
        ("identified, friction ignored", identified(name)),
        *models.items(),
    ]:
        energy = model is None or su.has_energies(model)
        results = []
        for k, (plant, count) in enumerate(zip(plants, per_plant)):
            controller = plant if model is None else model
            law = su.swing_up_law(controller, settings, energy=energy)
            up = su.initial_states(plant.info, count, seed=k) if energy else None
            swing = su.swing_up(plant, controller, law, *up, settings) if energy else None
            near = su.near_top_states(plant.info, count, seed=100 + k)
            results.append(
                (
                    su.swing_up_metrics(plant, law, swing, settings) if energy else None,
                    su.swing_up_metrics(
                        plant, law, su.swing_up(plant, controller, law, *near, settings), settings
                    ),
                )
            )
        rows.append(_row(label, results, energy))
        say(f"{name}: {label}: {rows[-1]}")
    return rows


def _row(label: str, results, energy: bool) -> dict:
    balance = np.concatenate([b["success"] for _, b in results])
    row = dict(row=label, balance=float(balance.mean()), note="")
    if not energy:
        return dict(row, note="no energies: cannot swing up; its linearisation balances only")
    success = np.concatenate([m["success"] for m, _ in results])
    times = np.concatenate([m["time_to_upright"] for m, _ in results]).astype(float)
    energy_error = np.concatenate([m["energy_error"] for m, _ in results]).astype(float)
    return dict(
        row,
        success=float(success.mean()),
        time=float(np.nanmean(times)) if np.isfinite(times).any() else None,
        energy_error=float(np.nanmean(energy_error)) if np.isfinite(energy_error).any() else None,
    )


def run(args) -> tuple[str, dict]:
    tables, numbers = [], {}
    for name in args.systems.split(","):
        start = time.perf_counter()
        rows = evaluate(name, {} if args.analytic_only else train_models(name, args), args)
        seconds = time.perf_counter() - start
        tables.append(f"### {name}\n\n{markdown_table(rows, COLUMNS)}\n\n({seconds:.0f} s)")
        numbers[name] = dict(rows=rows, seconds=seconds)
    return "\n\n".join(tables), numbers


def main(argv=None) -> int:
    args = parse_args(argv)
    check_out(args.out, args.force)
    import jax

    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    with quick_compilation(args.quick):
        table, numbers = run(args)
    print(table)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_results(args.out, table, [dict(system=k, **v) for k, v in numbers.items()], settings)
    say(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
