"""Foundation figures: energy drift of every ground-truth system, the mechanics core against
Pinocchio's RNEA, and the time to generate 100 Panda excitation trajectories.

    python -m benchmarks.foundation            # ~1-2 minutes on 2 cores
    python -m benchmarks.foundation --quick    # fewer states and trajectories

Prints markdown tables. Energy drift: passive rollouts (Tsit5, rtol = atol = 1e-12,
float64) of ``duration`` seconds from random states, ``max_t |E(t) - E(0)| / |E(0)|``
(max over the batch; for systems whose energy can be near zero the denominator is
``max(|E(0)|, max_t |KE|)``). Pinocchio: ``max |core - rnea|`` over random states, where
"core" is lagrax.core.mechanics' structured derivation from Pinocchio's ``M(q)`` (crba) and
``g(q)`` alone. The robot rows are skipped without Pinocchio.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import lagrax  # noqa: E402
from lagrax.systems.batching import batched  # noqa: E402
from lagrax.systems.rollout import simulate  # noqa: E402
from lagrax.data.generators import generate, position_ranges, velocity_ranges  # noqa: E402

SYSTEMS = (
    "pendulum",
    "double_pendulum",
    "two_link_arm",
    "cartpole",
    "furuta",
    "relativistic_particle",
    "charged_particle",
)
ROBOTS = ("panda", "ur5")


def random_states(system, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    lo, hi = position_ranges(system.info)
    vmax = velocity_ranges(system.info)
    q = rng.uniform(lo, hi, size=(batch, system.dof))
    qd = rng.uniform(-0.5, 0.5, size=(batch, system.dof)) * vmax
    return q, qd


def energy_drift(name: str, duration: float, batch: int) -> float:
    system = lagrax.system(name)
    q0, qd0 = random_states(system, batch, seed=0)
    ts = np.linspace(0.0, duration, 201)
    r = simulate(system, q0, qd0, ts, rtol=1e-12, atol=1e-12)
    E = np.asarray(batched(system).energy(r.q.reshape(-1, system.dof), r.qd.reshape(-1, system.dof))).reshape(
        batch, -1
    )
    KE = np.asarray(batched(system).kinetic_energy(r.q.reshape(-1, system.dof), r.qd.reshape(-1, system.dof)))
    scale = np.maximum(np.abs(E[:, 0]), np.abs(KE.reshape(batch, -1)).max(1))
    return float(np.max(np.abs(E - E[:, :1]).max(1) / scale))


def pinocchio_agreement(name: str, batch: int) -> tuple[float, float]:
    import pinocchio as pin

    robot = lagrax.system(name)
    core = robot.core_system()
    rng = np.random.default_rng(1)
    q, qd = random_states(robot, batch, seed=1)
    qdd = rng.normal(size=q.shape)
    m = robot.pinocchio_model
    d = m.createData()
    tau = np.stack([pin.rnea(m, d, *x) for x in zip(q, qd, qdd)])
    err = float(np.max(np.abs(np.asarray(batched(core).inverse_dynamics(q, qd, qdd)) - tau)))
    return err, float(np.max(np.abs(tau)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer states, 10 Panda trajectories")
    args = parser.parse_args(argv)
    batch, duration, n_panda = (4, 2.0, 10) if args.quick else (16, 10.0, 100)

    print(
        f"## Energy drift of passive rollouts ({duration:g} s, {batch} random states, "
        "Tsit5 rtol=atol=1e-12)\n"
    )
    print("| system | dof | max relative energy drift |\n|---|---|---|")
    for name in SYSTEMS:
        print(
            f"| {name} | {lagrax.system(name).dof} | {energy_drift(name, duration, batch):.1e} |", flush=True
        )

    try:
        import pinocchio  # noqa: F401
    except ModuleNotFoundError:
        print("\nPinocchio is not installed: robot rows skipped (pip install 'lagrax[robots]')")
        return 0
    print(
        f"\n## Mechanics core (from crba M(q) and g(q)) against Pinocchio rnea ({10 * batch} random states)\n"
    )
    print("| robot | dof | max abs error [N m] | max abs torque [N m] |\n|---|---|---|---|")
    for name in ROBOTS:
        err, scale = pinocchio_agreement(name, 10 * batch)
        print(f"| {name} | {lagrax.system(name).dof} | {err:.1e} | {scale:.1f} |", flush=True)

    panda = lagrax.system("panda")
    generate(panda, kind="excitation", trajectories=2, seed=1)  # compile and load once
    start = time.perf_counter()
    ds = generate(panda, kind="excitation", trajectories=n_panda, seed=0)
    seconds = time.perf_counter() - start
    print(
        f"\n## Generating {n_panda} Panda excitation trajectories (default duration and rate, ground truth)\n"
    )
    print(
        f"{len(ds)} samples of {ds.n_trajectories} trajectories in {seconds:.1f} s "
        f"({len(ds) / seconds:,.0f} samples/s; after a warm-up call that compiles)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
