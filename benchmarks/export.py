"""Exported models outside JAX: onnxruntime on one thread against JAX's jitted call.

For DeLaN, the MLP and ``rigid_body`` on a 2-DoF arm (example-robot-data's ``twodof``)
and the 7-DoF Panda, each model's inverse dynamics is exported to ONNX
(:func:`lagrax.analysis.export.export_model`, checked to 1e-6 relative on 1,000 states)
and timed:

* single-sample latency: the median of ``--calls`` calls of one state, onnxruntime with
  ``intra_op_num_threads=1`` against ``jax.jit(model.inverse_dynamics)``;
* batched throughput: states per second through a ``--batch`` export against the jitted
  ``vmap``.

The models are untrained (``lagrax.make_model`` with its default sizes: DeLaN and MLP
width 64, depth 2; ``rigid_body`` from the arm's URDF): timing does not depend on the
weights. The states are drawn from +-1 in every input.

Then the closed loop: computed torque at 1 kHz on the 2-DoF arm's plant (a pure-JAX rigid
body tree), the controller's model the ``rigid_body`` model, once as JAX's jitted loop
(:func:`lagrax.control.laws.track`) and once from a plain Python loop that calls the
ONNX file's inverse dynamics through onnxruntime each tick; the tracking RMSE must match.

    python -m benchmarks.export                  # a few minutes on 2 cores
    python -m benchmarks.export --quick          # the 2-DoF arm, DeLaN and rigid_body, short loop
    python -m benchmarks.export --out docs/results/export.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.arms import arm
from benchmarks.showcase import check_out, markdown_table, say, write_results

ARMS = {2: "twodof", 7: "panda"}
KINDS = ("delan", "mlp", "rigid_body")
RANGES = {k: [[-1.0, 1.0]] for k in ("q", "qd", "qdd", "tau")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the 2-DoF arm, DeLaN and rigid_body, a short loop")
    p.add_argument("--calls", type=int, default=2000, help="timed single-sample calls")
    p.add_argument("--batch", type=int, default=256, help="states per batched call")
    p.add_argument("--loop-seconds", type=float, default=2.0, help="closed-loop duration at 1 kHz")
    p.add_argument("--out", type=Path, default=None, help="also write the table (.md) and numbers (.json)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.batch, args.loop_seconds = 200, 32, 0.2
    return args


def median_seconds(call, calls: int) -> float:
    """The median wall time of ``call()`` over ``calls`` calls (after 20 warm-up calls)."""
    for _ in range(20):
        call()
    times = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter()
        call()
        times[k] = time.perf_counter() - start
    return float(np.median(times))


def exported_session(model, batch: int | None, folder: Path):
    """An onnxruntime session (one thread) of ``model``'s exported inverse dynamics."""
    from lagrax.analysis.export import export_model, onnx_session

    path = folder / f"{model.kind}-{model.info.dof}-{batch}.onnx"
    ranges = {k: v * model.info.dof for k, v in RANGES.items()}
    export_model(
        model, path, fmt="onnx", ranges=ranges, functions=["inverse_dynamics"], batch=batch, force=True
    )
    return onnx_session(path.read_bytes(), threads=1)


def timing_row(kind: str, dof: int, args, folder: Path) -> dict:
    """Latency and throughput of one model's inverse dynamics, onnxruntime against JAX."""
    import jax

    from lagrax.analysis.export import in_float64
    from lagrax.models import make_model

    truth = arm(ARMS[dof])
    model = in_float64(make_model(kind, truth.info, key=jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)
    x = {k: rng.uniform(-1, 1, dof) for k in ("q", "qd", "qdd")}
    X = {k: rng.uniform(-1, 1, (args.batch, dof)) for k in ("q", "qd", "qdd")}
    start = time.perf_counter()
    one, many = exported_session(model, None, folder), exported_session(model, args.batch, folder)
    export_seconds = time.perf_counter() - start
    # the parameters closed over: constants of the program, as in the exported file
    jitted = jax.jit(lambda q, qd, qdd: model.inverse_dynamics(q, qd, qdd))
    batched = jax.jit(jax.vmap(lambda q, qd, qdd: model.inverse_dynamics(q, qd, qdd)))
    xs, Xs = [jax.numpy.asarray(x[k]) for k in x], [jax.numpy.asarray(X[k]) for k in X]
    ort_one = median_seconds(lambda: one.run(None, x), args.calls)
    jax_one = median_seconds(lambda: jitted(*xs).block_until_ready(), args.calls)
    batch_calls = max(args.calls // 10, 20)
    ort_many = median_seconds(lambda: many.run(None, X), batch_calls)
    jax_many = median_seconds(lambda: batched(*Xs).block_until_ready(), batch_calls)
    return dict(
        model=kind,
        arm=f"{ARMS[dof]} ({dof} DoF)",
        nodes=node_count(folder / f"{kind}-{dof}-None.onnx"),
        ort_us=1e6 * ort_one,
        jax_us=1e6 * jax_one,
        ort_per_s=args.batch / ort_many,
        jax_per_s=args.batch / jax_many,
        export_s=export_seconds,
    )


def node_count(path: Path) -> int:
    """The number of nodes of an ONNX file's graph."""
    import onnx

    return len(onnx.load(str(path)).graph.node)


def reference(dof: int, ticks: int, rate: float = 1000.0):
    """A smooth reference ``(1, T, n)`` q, qd, qdd: a sine of 0.3 rad about zero, per joint."""
    t = np.arange(ticks)[None, :, None] / rate
    w = 2 * np.pi * (0.5 + 0.25 * np.arange(dof))
    return 0.3 * np.sin(w * t), 0.3 * w * np.cos(w * t), -0.3 * w**2 * np.sin(w * t)


def python_loop(session, plant, gains, ref, dt: float) -> np.ndarray:
    """Computed torque from a plain Python loop: onnxruntime's inverse dynamics each tick,
    the plant stepped by a jitted RK4 step; the positions ``(T, n)``."""
    import jax

    from lagrax.control.laws import plant_step

    step = jax.jit(lambda q, qd, tau: plant_step(plant, q, qd, tau, dt))
    kp, kd = np.asarray(gains.kp), np.asarray(gains.kd)
    q, qd = ref[0][0, 0].copy(), ref[1][0, 0].copy()
    out = np.empty_like(ref[0][0])
    for k in range(ref[0].shape[1]):
        out[k] = q
        feedback = kp * (ref[0][0, k] - q) + kd * (ref[1][0, k] - qd)
        (tau,) = session.run(None, {"q": q, "qd": qd, "qdd": ref[2][0, k] + feedback})
        q, qd = (np.asarray(v) for v in step(q, qd, tau))
    return out


def closed_loop_rows(args, folder: Path) -> list[dict]:
    """The 2-DoF arm tracked with the rigid_body model: JAX's loop against the ONNX one."""
    import jax

    from lagrax.analysis.export import in_float64
    from lagrax.control.laws import Controller, LoopSettings, default_gains, track
    from lagrax.models import make_model

    truth = arm(ARMS[2])
    plant, settings = truth.rigid_body_tree(), LoopSettings(1000.0)
    model = in_float64(make_model("rigid_body", truth.info, key=jax.random.PRNGKey(0)))
    ref = reference(2, int(round(args.loop_seconds * 1000)))
    gains = default_gains(Controller.COMPUTED_TORQUE, plant, ref[0][0, 0])
    start = time.perf_counter()
    trace = track(plant, model, Controller.COMPUTED_TORQUE, gains, ref, settings)
    jax_seconds = time.perf_counter() - start
    session = exported_session(model, None, folder)
    start = time.perf_counter()
    q_onnx = python_loop(session, plant, gains, ref, settings.dt)
    onnx_seconds = time.perf_counter() - start
    q_jax = np.asarray(trace.q)[0]
    rmse = lambda q: float(np.sqrt(np.mean((ref[0][0] - q) ** 2)))  # noqa: E731
    return [
        dict(loop="JAX (jitted scan)", rmse=rmse(q_jax), seconds=jax_seconds, max_dq=0.0),
        dict(
            loop="Python loop, onnxruntime",
            rmse=rmse(q_onnx),
            seconds=onnx_seconds,
            max_dq=float(np.max(np.abs(q_onnx - q_jax))),
        ),
    ]


def run_all(args, folder: Path) -> tuple[list[dict], list[dict]]:
    dofs, kinds = ((2,), ("delan", "rigid_body")) if args.quick else ((2, 7), KINDS)
    rows = []
    for dof in dofs:
        for kind in kinds:
            say(f"{kind} on {ARMS[dof]}: exporting and timing ...")
            rows.append(timing_row(kind, dof, args, folder))
    say("the closed loop ...")
    return rows, closed_loop_rows(args, folder)


def report(rows: list[dict], loops: list[dict], args) -> str:
    columns = [("model", "model", "s"), ("arm", "arm", "s"), ("nodes", "ONNX nodes", "g")]
    columns += [("ort_us", "onnxruntime, 1 state [µs]", "g"), ("jax_us", "JAX jit, 1 state [µs]", "g")]
    columns += [
        ("ort_per_s", f"onnxruntime, batch {args.batch} [states/s]", "g"),
        ("jax_per_s", f"JAX jit+vmap, batch {args.batch} [states/s]", "g"),
        ("export_s", "export + check [s]", "g"),
    ]
    loop_columns = [("loop", f"computed torque, {args.loop_seconds:g} s at 1 kHz (twodof)", "s")]
    loop_columns += [("rmse", "RMSE [rad]", "e"), ("max_dq", "max abs(q - q_JAX) [rad]", "e")]
    loop_columns += [("seconds", "wall [s]", "g")]
    return markdown_table(rows, columns) + "\n\n" + markdown_table(loops, loop_columns)


def main(argv=None) -> int:
    import tempfile

    import jax

    jax.config.update("jax_enable_x64", True)
    args = parse_args(argv)
    check_out(args.out, args.force)
    start = time.time()
    with tempfile.TemporaryDirectory() as folder:
        rows, loops = run_all(args, Path(folder))
    text = report(rows, loops, args)
    print(text)
    print(f"\n(total {time.time() - start:.0f} s)")
    write_results(args.out, text, rows + loops, {k: str(v) for k, v in vars(args).items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
