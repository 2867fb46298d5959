"""Closed-loop tracking control and online learning on robot arms (Panda, UR5).

For each arm (Pinocchio's dynamics with the realistic friction and armature preset, as
a pure-JAX plant, :meth:`~lagrax.systems.robots.PinocchioRobot.rigid_body_tree`):

1. Offline models, trained within ``--seconds`` each on excitation data (the arm
   recipe): ``DeLaN`` (no friction), ``DeLaN+friction`` (learned viscous + Coulomb)
   and ``MLP`` (the black-box baseline).
2. Tracking: ``--references`` new references (Fourier series, seed 100, never seen in
   training) over ``--duration`` s at ``--rate`` Hz, all at once (one ``vmap``ped
   scan). Computed torque with each model and with the analytic (true) model, and PD
   alone. Columns: joint-position RMSE, the worst joint's max error, effort.
3. Speed (the first arm): wall time of 10 s at 1 kHz with the DeLaN in the loop (compiled), and
   of 16 references at once; one online update step (mean and 99th percentile of
   jitted calls), and its cost inside the loop (the loop with learning every tick
   against the loop without, per tick).
4. Online learning (the first arm, feed-forward PD, one reference repeated): a new DeLaN from
   scratch against the offline DeLaN+friction never updated; then a 2 kg payload added
   to the end effector a third of the way in, with and without online updates.

    python -m benchmarks.robot_control                       # about 25 min on 2 cores
    python -m benchmarks.robot_control --quick               # a smoke test (CI)
    python -m benchmarks.robot_control --out docs/results/robot_control.md --figures docs/figures
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quick import quick_compilation
from benchmarks.arms import arm
from benchmarks.showcase import Contender, check_out, fit, fmt, markdown_table, say, write_results

CONTENDERS = [
    Contender("DeLaN", "delan", dict(friction="none")),
    Contender("DeLaN+friction", "delan", dict(friction="coulomb")),
    Contender("MLP", "mlp", {}),
]
PAYLOAD = 2.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="DeLaN+friction only, tiny data, seconds of training, short loops (CI)",
    )
    p.add_argument("--robots", default="panda,ur5", help="comma-separated arms (benchmarks.arms)")
    p.add_argument("--seconds", type=float, default=150.0, help="training budget of each offline model")
    p.add_argument("--trajectories", type=int, default=60, help="training trajectories of 8 s")
    p.add_argument("--references", type=int, default=8, help="test references")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each reference")
    p.add_argument("--rate", type=float, default=1000.0, help="control rate [Hz]")
    p.add_argument("--online-seconds", type=float, default=30.0, help="length of each online run")
    p.add_argument("--out", type=Path, default=None, help="also write the tables (.md) and numbers (.json)")
    p.add_argument("--figures", type=Path, default=None, help="folder for the figures")
    p.add_argument("--force", action="store_true", help="overwrite --out and figures")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.trajectories, args.references = 3.0, 4, 2
        args.duration, args.online_seconds, args.rate = 0.5, 0.6, 500.0
    return args


def train_models(truth, args) -> dict:
    from lagrax.data.generators import generate

    data = dict(duration=8.0, dt=0.02)
    train = generate(truth, "excitation", trajectories=args.trajectories, seed=0, **data)
    val = generate(truth, "excitation", trajectories=max(args.trajectories // 10, 2), seed=1, **data)
    models = {}
    for c in CONTENDERS[1:2] if args.quick else CONTENDERS:
        say(f"{truth.info.name}: training {c.label} for up to {args.seconds:.0f} s")
        contender = Contender(c.label, c.name, c.options, c.settings, args.seconds)
        models[c.label] = fit(contender, train, val, quick=args.quick).model
    return models


def tracking(truth, models: dict, args, figures: Path | None) -> list[dict]:
    from lagrax.control.laws import LoopSettings
    from lagrax.control.tracking import ControlJob, metrics_rows, run_control, write_control
    from lagrax.data.generators import reference_trajectories

    ref = reference_trajectories(truth.info, args.duration, 1.0 / args.rate, args.references, seed=100)
    out = (figures or Path(".")) / f"control_{truth.info.name}.npz"
    job = ControlJob(
        out, truth, ref, list(models.items()), settings=LoopSettings(args.rate), force=args.force
    )
    say(f"{truth.info.name}: tracking {args.references} references with {len(models) + 2} controllers")
    results = run_control(job)
    if figures is not None:
        write_control(job, results)
    return [dict(robot=truth.info.name, **row) for row in metrics_rows(results)]


def _timed(fn, repeats: int = 3) -> float:
    import jax

    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def loop_speed(truth, model, args) -> dict:
    from lagrax.control.laws import Gains, LoopSettings, track
    from lagrax.data.generators import reference_trajectories

    plant, seconds = truth.rigid_body_tree(), 1.0 if args.quick else 10.0
    gains = Gains.critical(plant.info.dof, 10.0)
    one = reference_trajectories(plant.info, seconds, 1e-3, 1, seed=5)
    many = reference_trajectories(plant.info, seconds, 1e-3, 16, seed=5)
    say(f"timing {seconds:.0f} s at 1 kHz with the DeLaN in the loop")
    return dict(
        simulated_seconds=seconds,
        one_reference=_timed(
            lambda: track(plant, model, "computed-torque", gains, one, LoopSettings(1000.0))
        ),
        sixteen_references=_timed(
            lambda: track(plant, model, "computed-torque", gains, many, LoopSettings(1000.0)), repeats=1
        ),
    )


def in_loop_update_speed(truth, model, args) -> dict:
    """Per-update cost inside the loop: (online loop - the same loop without learning) /
    ticks, both compiled, feed-forward PD, one step of batch 32 per tick."""
    from lagrax.control.laws import Controller, LoopSettings, default_gains, track
    from lagrax.control.online import OnlineSettings, online_track

    plant, seconds = truth.rigid_body_tree(), 1.0 if args.quick else 10.0
    ref = repeated_reference(plant.info, seconds, 1000.0, seconds)
    settings = LoopSettings(1000.0)
    gains = default_gains(Controller.FEEDFORWARD_PD, plant, ref[0][0, 0], rate=settings.rate)
    static = _timed(lambda: track(plant, model, "feedforward-pd", gains, ref, settings), repeats=2)
    learning = _timed(
        lambda: online_track(plant, model, "feedforward-pd", gains, ref, settings, OnlineSettings())[0],
        repeats=2,
    )
    ticks = ref[0].shape[1]
    return dict(
        loop_seconds=static, online_loop_seconds=learning, in_loop_update_ms=1e3 * (learning - static) / ticks
    )


def update_speed(truth, model, calls: int) -> dict:
    import equinox as eqx
    import jax

    from lagrax.control.online import OnlineSettings, Replay, make_update, torque_scales
    from lagrax.training.step import TrainState

    online = OnlineSettings()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    update = jax.jit(make_update(static, torque_scales(truth.info), online))
    rng, n = np.random.default_rng(0), truth.info.dof
    buf = Replay.empty(online.capacity, n)
    for _ in range(200):
        buf = buf.add(*(rng.uniform(-1, 1, n) for _ in range(4)))
    state = TrainState.create(params, online.optimizer(), jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), calls + 1)
    state = jax.block_until_ready(update(state, buf, keys[0]))[0]
    times = []
    for k in keys[1:]:
        start = time.perf_counter()
        state = jax.block_until_ready(update(state, buf, k))[0]
        times.append(time.perf_counter() - start)
    ms = 1e3 * np.asarray(times)
    return dict(update_ms_mean=float(np.mean(ms)), update_ms_p99=float(np.percentile(ms, 99)), calls=calls)


def repeated_reference(info, seconds: float, rate: float, period: float):
    from lagrax.data.generators import reference_trajectories

    one = reference_trajectories(info, period, 1.0 / rate, 1, seed=7)
    reps = int(np.ceil(seconds / period))
    return tuple(np.concatenate([r[:, :-1]] * reps + [r[:, -1:]], axis=1) for r in one)


def online_runs(truth, models: dict, args) -> tuple[list[dict], dict]:
    import jax

    from lagrax.control.laws import Controller, LoopSettings, PlantChange, default_gains, track
    from lagrax.models import make_model
    from lagrax.control.online import OnlineSettings, online_track

    plant, settings = truth.rigid_body_tree(), LoopSettings(args.rate)
    period = min(10.0, args.online_seconds / 3)
    ref = repeated_reference(plant.info, args.online_seconds, args.rate, period)
    gains = default_gains(Controller.FEEDFORWARD_PD, plant, ref[0][0, 0], rate=settings.rate)
    scratch = make_model("delan", plant.info, key=jax.random.PRNGKey(0), width=64, friction="coulomb")
    offline = models["DeLaN+friction"]
    heavy = PlantChange(plant.with_payload(PAYLOAD, (0.0, 0.0, 0.1)), int(round(period * args.rate)))
    runs, series = [], {}
    for label, model, change, learn in [
        ("new DeLaN, never updated", scratch, None, False),
        ("new DeLaN, online", scratch, None, True),
        ("offline DeLaN+friction", offline, None, False),
        ("offline DeLaN+friction, payload", offline, heavy, False),
        ("offline DeLaN+friction, payload, online", offline, heavy, True),
    ]:
        if args.quick and not learn:  # the smoke run: the online loops only (tracking runs `track`)
            continue
        say(f"online: {label}")
        if learn:
            trace = online_track(
                plant, model, "feedforward-pd", gains, ref, settings, OnlineSettings(), change=change
            )[0]
            q = np.asarray(trace.q)
        else:
            q = np.asarray(track(plant, model, "feedforward-pd", gains, ref, settings, change=change).q[0])
        runs.append(dict(run=label, **_windows(ref[0][0], q, args.rate, period)))
        series[label] = q
    return runs, dict(t=np.arange(ref[0].shape[1]) / args.rate, ref=ref[0][0], series=series, period=period)


def _windows(ref: np.ndarray, q: np.ndarray, rate: float, period: float) -> dict:
    """Position RMSE over the first period, the period after it and the last period."""
    k = int(round(period * rate))
    rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    return dict(
        first=rmse(ref[:k], q[:k]), second=rmse(ref[k : 2 * k], q[k : 2 * k]), last=rmse(ref[-k:], q[-k:])
    )


def online_figure(trace: dict, path: Path, force: bool) -> Path:
    from lagrax.analysis.plotting import plot_tracking_errors

    return plot_tracking_errors(trace["t"], trace["ref"], trace["series"], path, force)


def run_all(args) -> tuple[list[dict], dict]:
    """Every arm's tracking rows, and speed and online learning on the first: ``(rows, extra)``."""
    rows, extra = [], {}
    for i, name in enumerate(args.robots.split(",")):
        truth = arm(name)
        models = train_models(truth, args)
        rows += tracking(truth, models, args, args.figures)
        if i == 0:  # speed and online learning on the first arm
            delan = models.get("DeLaN", models["DeLaN+friction"])
            extra["speed"] = update_speed(truth, delan, 50 if args.quick else 1000)
            if not args.quick:  # a smoke run's timings mean nothing, and compiling them is most of it
                extra["speed"].update(
                    loop_speed(truth, delan, args), **in_loop_update_speed(truth, delan, args)
                )
            extra["online"], trace = online_runs(truth, models, args)
            if args.figures is not None:
                online_figure(trace, args.figures / f"control_online_{name}.png", args.force)
            extra["first"] = name
    return rows, extra


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    start = time.time()
    with quick_compilation(args.quick):  # a --quick run is nearly all compilation
        rows, extra = run_all(args)
    text = report(rows, extra)
    print(text)
    print(f"\n(total {time.time() - start:.0f} s)")
    settings = {k: str(v) for k, v in vars(args).items()}
    write_results(args.out, text, rows + extra.get("online", []), {"speed": extra.get("speed"), **settings})
    return 0


def report(rows: list[dict], extra: dict) -> str:
    columns = [("robot", "robot", "s"), ("row", "controller", "s"), ("rmse", "RMSE [rad]", "e")]
    columns += [
        ("max_error", "max error [rad]", "e"),
        ("effort", "effort", "g"),
        ("diverged", "stopped", "s"),
    ]
    parts = [markdown_table(rows, columns)]
    if "speed" in extra:
        parts.append(speed_text(extra["speed"], extra["first"]))
    if "online" in extra:
        cols = [("run", f"online learning ({extra['first']})", "s"), ("first", "RMSE, 1st period", "e")]
        cols += [("second", "RMSE, 2nd period", "e"), ("last", "RMSE, last period", "e")]
        parts.append(markdown_table(extra["online"], cols))
    return "\n\n".join(parts)


def speed_text(s: dict, first: str) -> str:
    """The speed sentence: one online update, and (not with --quick) the loops' wall times."""
    update = (
        f"One online update: {fmt(s['update_ms_mean'])} ms mean, {fmt(s['update_ms_p99'])} ms 99th "
        "percentile per jitted call"
    )
    if "one_reference" not in s:
        return update + "."
    return (
        f"{first}, DeLaN in the loop, {s['simulated_seconds']:.0f} s at 1 kHz: "
        f"{fmt(s['one_reference'])} s wall (16 references at once: {fmt(s['sixteen_references'])} s). "
        f"{update}; {fmt(s['in_loop_update_ms'])} ms per update inside the loop "
        f"({fmt(s['online_loop_seconds'])} s with learning every tick against "
        f"{fmt(s['loop_seconds'])} s without)."
    )


if __name__ == "__main__":
    sys.exit(main())
