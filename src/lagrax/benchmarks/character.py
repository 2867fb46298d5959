"""The DeLaN character benchmark: lagrax models against the published reference numbers.

Trains each model (DeLaN, the feed-forward MLP baseline, the structured HNN, and
optionally the LNN) on the DeLaN reference character data
(``../shared/data/delan_character_trajectories.npz``) with the reference split (test
characters e, q, v) for several seeds, evaluates on the test characters with
:func:`lagrax.analysis.metrics.evaluate`, and prints a markdown table of mean +- std over
seeds next to the reference numbers of ``../shared/reference/RESULTS.md``.

    lagrax bench delan-character --seeds 0,1,2 --out note.md    # ~10 min on 2 cores
    lagrax bench delan-character --quick                        # a one-minute smoke run
    python -m benchmarks.delan_character --quick                # the same code, from a checkout

Training settings are the training module's presets where they exist
(:func:`lagrax.training.recipe`), else the defaults below; epochs are cut to fit the
time budget (the reference trains 5,000 epochs of AdamW; here each model trains for its
preset's AdamW epochs and L-BFGS refinement epochs, or ``EPOCHS`` without a preset). The
benchmark skips with a message (exit code 0) when the data file is absent: give it
with ``--data``; the default is ``shared/data/delan_character_trajectories.npz`` next to
the source checkout, or under the working directory's parent. It does not tune anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError
from lagrax.core.fileio import atomic_write_text

DATA_FILE = Path("shared") / "data" / "delan_character_trajectories.npz"
# src/lagrax/benchmarks/character.py -> the folder that holds the checkout (and shared/)
DEFAULT_DATA = Path(__file__).resolve().parents[4] / DATA_FILE
TEST_LABELS = ("e", "q", "v")
DEFAULT_MODELS = ("delan", "mlp", "hnn_structured")

# Loss terms per model when the training module has no preset: DeLaN and the MLP fit
# torques and accelerations (the MLP's forward head is what its rollouts use); the
# structured HNN fits the canonical time derivative (qd, pdot), as in the reference.
LOSSES = {
    "delan": dict(inverse=1.0, forward=1.0),
    "lnn": dict(inverse=1.0, forward=1.0),
    "mlp": dict(inverse=1.0, forward=1.0),
    "hnn_structured": dict(inverse=0.0, canonical=1.0),
}
EPOCHS = 1000  # without a preset: 5 minibatches of 512 per epoch on the 2,459 training samples
QUICK_EPOCHS = 20  # --quick: this many AdamW epochs and as many L-BFGS epochs
MAX_SECONDS = 120.0  # per run, a guard for slow machines (the table reports the stop)

# The reference numbers of ../shared/reference/RESULTS.md: (torque MSE, valid time mean, std).
REFERENCE = {
    "delan": ("DeLaN structured, 10 seeds", 2.2e-5, 2.32, 0.37),
    "lnn": ("DeLaN black-box Lagrangian", 2.8e-5, 2.76, 0.68),
    "hnn_structured": ("HNN structured", 5.4e-6, 2.90, 0.68),
    "mlp": ("feed-forward network", 6.2e-4, 1.81, 0.49),
}
TARGET_TORQUE_MSE = 1.35e-5  # the reference's seed-0 result, reached after 135 s of training
REFERENCE_DELAN_SEED0 = dict(
    torque_mse=1.35e-5, inertial_mse=2.26e-5, coriolis_mse=6.8e-6, gravity_mse=9.0e-6
)

COLUMNS = (
    ("torque_mse", "torque MSE"),
    ("inertial_mse", "inertial"),
    ("coriolis_mse", "Coriolis"),
    ("gravity_mse", "gravity"),
    ("qdd_mse", "qdd MSE"),
    ("valid_prediction_time", "valid time [s]"),
    ("seconds_to_target", "time to 1.35e-5 [s]"),
    ("train_seconds", "train [s]"),
    ("steps", "steps"),
)


def train_config(model_name: str, seed: int, epochs: int | None, max_seconds: float, quick: bool = False):
    """The model's preset (else ``LOSSES`` and ``EPOCHS``); ``epochs`` overrides the AdamW epochs."""
    from lagrax.training import TrainConfig, recipe

    base = recipe(model_name, None)[0] or {**LOSSES.get(model_name, {}), "epochs": EPOCHS}
    if quick:
        base.update(epochs=QUICK_EPOCHS, lbfgs_epochs=min(base.get("lbfgs_epochs", 0), QUICK_EPOCHS))
    if epochs is not None:
        base["epochs"] = epochs
    return TrainConfig.from_dict({**base, "max_seconds": max_seconds, "seed": seed})


def run_one(
    model_name: str, seed: int, train_ds, test_ds, epochs: int | None, max_seconds: float, quick: bool = False
) -> dict:
    """Train one model with one seed and evaluate it on the test characters."""
    import jax

    from lagrax.analysis.metrics import evaluate
    from lagrax.models import make_model
    from lagrax.training import train
    from lagrax.training import recipe

    config = train_config(model_name, seed, epochs, max_seconds, quick)
    options = {"dtype": config.dtype.value, **recipe(model_name, None)[1]}
    model = make_model(model_name, train_ds.info, key=jax.random.PRNGKey(seed), **options)
    model = model.with_data_statistics(train_ds.q, train_ds.qd, train_ds.qdd, train_ds.tau)
    test_mse = _test_torque_mse(test_ds)
    reached = {}

    def time_to_accuracy(epoch, model, record):
        # outside the timed region: the test error after each epoch, for time-to-accuracy
        if "seconds" not in reached and test_mse(model) <= TARGET_TORQUE_MSE:
            reached.update(seconds=record["seconds"], steps=record["step"])

    result = train(model, train_ds, None, config, progress=False, callback=time_to_accuracy)
    metrics = evaluate(
        result.model, test_ds, training={"train_seconds": result.train_seconds, "steps": result.steps}
    )
    metrics["stopped_reason"] = result.stopped_reason
    metrics["seconds_to_target"] = reached.get("seconds")
    metrics["steps_to_target"] = reached.get("steps")
    return metrics


def run_ensemble(
    model_name: str, seeds: list[int], train_ds, test_ds, epochs: int | None, max_seconds: float, quick=False
) -> list[dict]:
    """Train one model per seed (consecutive seeds) as one ensemble, a single ``vmap``-ped
    program (:func:`lagrax.training.train` with ``ensemble``); evaluate each member as
    :func:`run_one` evaluates its one model. Member ``k`` is the run of seed ``seeds[k]``."""
    import jax

    from lagrax.analysis.metrics import evaluate
    from lagrax.models import make_model
    from lagrax.training import recipe, train

    # the time budget is per run: the ensemble holds len(seeds) runs
    config = train_config(model_name, seeds[0], epochs, max_seconds * len(seeds), quick)
    options = {"dtype": config.dtype.value, **recipe(model_name, None)[1]}
    model = make_model(model_name, train_ds.info, key=jax.random.PRNGKey(seeds[0]), **options)
    test_mse = _test_torque_mse(test_ds, members=True)
    reached: dict[int, tuple[float, int]] = {}

    def time_to_accuracy(epoch, ensemble, record):
        for k, mse in enumerate(test_mse(ensemble)):
            if k not in reached and mse <= TARGET_TORQUE_MSE:
                reached[k] = (record["seconds"], record["step"] // len(seeds))

    result = train(
        model, train_ds, None, config, progress=False, callback=time_to_accuracy, ensemble=len(seeds)
    )
    runs = []
    for k in range(len(seeds)):
        steps = result.steps // len(seeds)
        metrics = evaluate(
            result.model.member(k), test_ds, training={"train_seconds": result.train_seconds, "steps": steps}
        )
        seconds, at = reached.get(k, (None, None))
        runs.append({**metrics, "stopped_reason": result.stopped_reason, "seconds_to_target": seconds})
        runs[-1]["steps_to_target"] = at
    return runs


def _test_torque_mse(test_ds, members: bool = False) -> Callable:
    """``model -> torque MSE`` on the test set (jitted; inf for a model without inverse dynamics)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    q, qd, qdd, tau = (jnp.asarray(getattr(test_ds, k)) for k in ("q", "qd", "qdd", "tau"))

    def one(model):
        return jnp.mean(jnp.sum((jax.vmap(model.inverse_dynamics)(q, qd, qdd) - tau) ** 2, axis=-1))

    mse = eqx.filter_jit(lambda ensemble: ensemble.each(one)) if members else eqx.filter_jit(one)

    def safe(model):
        from lagrax.core.errors import NotProvidedError

        try:
            return jax.device_get(mse(model)).tolist()
        except NotProvidedError:
            return [math.inf] * model.size if members else math.inf

    return safe


def _reached(metrics: dict) -> str:
    t = metrics.get("seconds_to_target")
    return "never reached" if t is None else f"reached at {t:.1f} s"


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return mean, std


def _cell(key: str, values: list[float]) -> str:
    if not values:
        return "-"
    mean, std = _mean_std(values)
    if not math.isfinite(mean):
        return "-"
    if key in ("valid_prediction_time", "train_seconds", "seconds_to_target"):
        return f"{mean:.2f} ± {std:.2f}"
    if key == "steps":
        return f"{mean:.0f}"
    return f"{mean:.2e} ± {std:.1e}"


def format_table(results: dict[str, list[dict]], seeds: list[int]) -> str:
    """Markdown: one row per model (mean ± std over seeds) and its reference row."""
    header = "| model | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, runs in results.items():
        cells = [_cell(key, [r[key] for r in runs if r.get(key) is not None]) for key, _ in COLUMNS]
        reached = sum(r.get("seconds_to_target") is not None for r in runs)
        if reached < len(runs):  # time to target: mean over the seeds that reached it
            i = [key for key, _ in COLUMNS].index("seconds_to_target")
            cells[i] = f"{cells[i]} ({reached}/{len(runs)} reached)" if reached else f"never (0/{len(runs)})"
        lines.append(f"| **{name}** (lagrax, {len(runs)} seeds) | " + " | ".join(cells) + " |")
        if name in REFERENCE:
            label, torque, vpt, vpt_std = REFERENCE[name]
            ref = {"torque_mse": f"{torque:.1e}", "valid_prediction_time": f"{vpt:.2f} ± {vpt_std:.2f}"}
            lines.append(
                f"| {label} (reference) | " + " | ".join(ref.get(key, "") for key, _ in COLUMNS) + " |"
            )
        if name == "delan":
            ref = {k: f"{v:.2e}" for k, v in REFERENCE_DELAN_SEED0.items()}
            ref.update(train_seconds="135", steps="25000", seconds_to_target="135")
            lines.append(
                "| DeLaN seed 0, reference code measured (reference) | "
                + " | ".join(ref.get(key, "") for key, _ in COLUMNS)
                + " |"
            )
    stops = sorted({r.get("stopped_reason", "?") for runs in results.values() for r in runs})
    lines += [
        "",
        f"Seeds {', '.join(map(str, seeds))}; test characters {', '.join(TEST_LABELS)} "
        f"(sum over joints of squared error, mean over test samples; valid time: RK4 at dt/20, "
        f"threshold 1e-2; time to 1.35e-5: training wall time, compilation excluded, until the test "
        f"torque MSE "
        f"checked after each epoch first falls to the reference's seed-0 result). "
        f"Training stopped by: {', '.join(stops)}.",
    ]
    return "\n".join(lines)


def default_data() -> Path:
    """The character file next to the source checkout, else under the working directory's parent."""
    for candidate in (DEFAULT_DATA, Path.cwd().parent / DATA_FILE):
        if candidate.exists():
            return candidate
    return DEFAULT_DATA


def _model_names(models: str | None) -> list[str]:
    from lagrax.core.errors import UnknownNameError
    from lagrax.models import MODELS

    names = [m.strip() for m in (models or ",".join(DEFAULT_MODELS)).split(",") if m.strip()]
    for name in names:
        if name not in MODELS:
            raise UnknownNameError.for_name("model", name, MODELS)
    return names


def _seed_list(seeds: str, quick: bool) -> list[int]:
    """``"0,1,2"`` or ranges ``"0-9"`` (and mixes: ``"0-4,7"``) -> the seeds."""
    from lagrax.core.errors import LagraxError

    seed_list: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in str(seeds).split(","))):
            first, dash, last = part.partition("-")
            seed_list += list(range(int(first), int(last) + 1)) if dash and first else [int(part)]
    except ValueError:
        raise LagraxError(
            f"--seeds expects comma-separated integers or ranges (0-9), got {seeds!r}"
        ) from None
    if not seed_list:
        raise LagraxError(f"--seeds names no seed: {seeds!r}")
    return seed_list[:1] if quick else seed_list


def consecutive(seeds: list[int]) -> bool:
    """Whether ``seeds`` are ``s, s + 1, ...`` (an ensemble's member seeds), at least two."""
    return len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds)))


def _run_all(
    names, seed_list, train_ds, test_ds, epochs, budget, quick, say, ensemble=True
) -> dict[str, list[dict]]:
    """Every model with every seed; one progress line per run. Consecutive seeds train as
    one ensemble (``ensemble``), else one run after another."""
    results: dict[str, list[dict]] = {}
    for name in names:
        if ensemble and consecutive(seed_list):
            t0 = time.perf_counter()
            results[name] = run_ensemble(name, seed_list, train_ds, test_ds, epochs, budget, quick)
            for seed, metrics in zip(seed_list, results[name]):
                say(f"  {name} seed {seed} (ensemble member): {_line(metrics)}")
            say(f"  {name}: {len(seed_list)} seeds as one ensemble in {time.perf_counter() - t0:.0f} s")
            continue
        for seed in seed_list:
            t0 = time.perf_counter()
            metrics = run_one(name, seed, train_ds, test_ds, epochs, budget, quick)
            results.setdefault(name, []).append(metrics)
            say(f"  {name} seed {seed}: {_line(metrics)} ({time.perf_counter() - t0:.0f} s in all)")
    return results


def _line(metrics: dict) -> str:
    return (
        f"torque MSE {metrics.get('torque_mse', math.nan):.2e}, "
        f"valid time {metrics.get('valid_prediction_time', math.nan):.2f} s, "
        f"{metrics['steps']} steps in {metrics['train_seconds']:.0f} s, 1.35e-5 {_reached(metrics)}"
    )


def check_outputs(out: str | Path | None, force: bool) -> None:
    """Refuse to replace ``out`` or its ``.json`` twin unless ``force`` (before any training)."""
    if out is None:
        return
    out = Path(out)
    existing = [str(p) for p in (out, out.with_suffix(".json")) if p.exists()]
    if existing and not force:
        raise FileExistsLagraxError(f"{' and '.join(existing)} exist(s); refusing to overwrite (use --force)")


def _check_settings(epochs, max_seconds) -> None:
    if epochs is not None and epochs < 1:
        raise LagraxError(f"epochs must be at least 1, got {epochs}")
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise LagraxError(f"max_seconds must be a positive finite number, got {max_seconds}")


def _write(out: str | Path, table: str, seed_list, epochs, quick, results, say) -> None:
    out = Path(out)
    atomic_write_text(out, table + "\n")
    record = {"seeds": seed_list, "epochs": epochs, "quick": quick, "results": results}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    say(f"wrote {out} and {out.with_suffix('.json')}")


def main(
    seeds: str = "0,1,2",
    models: str | None = None,
    quick: bool = False,
    epochs: int | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    max_seconds: float | None = None,
    say: Callable[[str], None] = print,
    force: bool = False,
    sequential: bool = False,
) -> int:
    """Run the benchmark and print (and with ``out``, write) the markdown table.

    Consecutive seeds (``0-9``) train as one ensemble unless ``sequential``.
    An existing ``out`` is refused unless ``force``. Without ``data``, a missing default
    file skips the benchmark (exit code 0); a ``data`` file given but missing is an error.
    """
    check_outputs(out, force)
    _check_settings(epochs, max_seconds)
    seed_list = _seed_list(seeds, quick)  # bad arguments are errors, with or without the data
    names = _model_names(models)
    if data is not None and not Path(data).is_file():
        raise DatasetError(f"the DeLaN character file {data} does not exist (or is not a file)")
    data = Path(data) if data is not None else default_data()
    if not data.exists():
        say(f"skipped: the DeLaN character file is not at {data} (give --data FILE)")
        return 0
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 states; models keep float32 parameters
    from lagrax.data.dataset import load_dataset

    budget = max_seconds if max_seconds is not None else MAX_SECONDS
    train_ds, test_ds = load_dataset(data).split(test_labels=list(TEST_LABELS))
    say(
        f"DeLaN character benchmark: {len(train_ds)} training / {len(test_ds)} test samples; "
        f"models {', '.join(names)}; seeds {', '.join(map(str, seed_list))}; "
        f"{'preset' if epochs is None else epochs} epochs{' (quick)' if quick else ''}, "
        f"at most {budget:g} s per run"
    )
    start = time.perf_counter()
    results = _run_all(names, seed_list, train_ds, test_ds, epochs, budget, quick, say, not sequential)
    table = format_table(results, seed_list)
    say("")
    say(table)
    say(f"\ntotal {time.perf_counter() - start:.0f} s")
    if out is not None:
        _write(out, table, seed_list, epochs, quick, results, say)
    return 0


def cli(argv=None, default_data_path: Path | None = None) -> int:
    """The command line of ``benchmarks/delan_character.py``: options as ``lagrax bench``,
    errors as one ``error: ...`` line and exit code 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds or a range, 0-9 (default 0,1,2)"
    )
    parser.add_argument(
        "--models", default=None, help=f"comma-separated (default {','.join(DEFAULT_MODELS)})"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs, first seed only")
    parser.add_argument(
        "--epochs", type=int, default=None, help="AdamW epochs per run (default: the model's preset)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help=f"per-run cap (default {MAX_SECONDS:g})"
    )
    parser.add_argument(
        "--data", default=None, help=f"character file (default {default_data_path or DEFAULT_DATA})"
    )
    parser.add_argument("--out", default=None, help="also write the markdown table (and .json) here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument(
        "--sequential", action="store_true", help="train seeds one after another, not as one ensemble"
    )
    args = parser.parse_args(argv)
    from lagrax.core.errors import LagraxError

    try:
        data = args.data
        if data is None and default_data_path is not None and Path(default_data_path).exists():
            data = default_data_path  # (absent: main skips, as without --data)
        return main(
            args.seeds,
            args.models,
            args.quick,
            args.epochs,
            data,
            args.out,
            args.max_seconds,
            force=args.force,
            sequential=args.sequential,
        )
    except LagraxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
