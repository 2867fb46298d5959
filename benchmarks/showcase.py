"""Shared parts of the LNN showcase benchmarks (``benchmarks/lnn_*.py``, ``chain_pendulums.py``).

Each showcase trains a few contenders (:class:`Contender`: a model, its options, its
training settings and a wall-time budget) on data of one ground-truth system with
:func:`fit` (the model's default recipe for the data, :func:`lagrax.training.recipe`,
then the contender's overrides), rolls them out far beyond the training data with
:func:`lagrax.analysis.prediction.predict` and scores the rollouts against the truth's with
:func:`lagrax.analysis.prediction.compare`. :func:`markdown_table` prints the result; every
script writes its table and a JSON of the numbers with :func:`write_results`.

Nothing here is tuned per experiment: the scripts choose the contenders.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lagrax.core.errors import FileExistsLagraxError
from lagrax.core.fileio import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Contender:
    """One row of a showcase: ``label``, model ``name``, model ``options``, training
    ``settings`` (over the recipe's) and a training budget in ``seconds``."""

    label: str
    name: str
    options: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    seconds: float = 60.0


# --quick: a few AdamW epochs and no L-BFGS phase (its program takes long to compile)
QUICK_SETTINGS = dict(epochs=3, lbfgs_epochs=0, val_every=1)


def fit(
    contender: Contender,
    train_ds,
    val_ds,
    seed: int = 0,
    callback: Callable | None = None,
    quick: bool = False,
):
    """Train ``contender`` from seed ``seed`` (``quick``: :data:`QUICK_SETTINGS` over its
    settings); returns the :class:`~lagrax.training.TrainResult`."""
    import jax

    from lagrax.models import make_model
    from lagrax.training import TrainConfig, recipe, train

    settings, options = recipe(contender.name, train_ds)
    settings.update(contender.settings)
    options.update(contender.options)
    settings.update(max_seconds=contender.seconds, seed=seed, **(QUICK_SETTINGS if quick else {}))
    model = make_model(contender.name, train_ds.info, key=jax.random.PRNGKey(seed), **options)
    model = model.with_data_statistics(train_ds.q, train_ds.qd, train_ds.qdd, train_ds.tau)
    return train(model, train_ds, val_ds, TrainConfig(**settings), progress=False, callback=callback)


def score(model, truth, q0, qd0, ts, reference, energy_scale: float | None, name: str, **solver) -> dict:
    """Roll ``model`` out from ``(q0, qd0)`` over ``ts`` and compare with ``reference``
    (the truth's rollout, a :class:`~lagrax.analysis.prediction.Prediction` with energies):
    ``rollout_error``, ``valid_prediction_time``, ``energy_error`` (mean) and its median,
    the number of rollouts that stopped early, and the prediction itself."""
    from lagrax.analysis.prediction import compare, predict

    pred = predict(model, q0, qd0, ts, truth=truth, name=name, **solver)
    out = compare(pred, reference, energy_scale, conservative=True)
    if pred.energy is not None and reference.energy is not None:
        scale = energy_scale or float(np.nanmax(np.abs(reference.energy)))
        drift = np.abs(pred.energy[:, -1] - reference.energy[:, 0]) / scale
        out["energy_error_median"] = float(np.median(np.where(np.isfinite(drift), drift, np.inf)))
    out["stopped"] = int(np.sum(~np.all(np.isfinite(pred.q), axis=(1, 2))))
    out["prediction"] = pred
    return out


def fmt(value: Any, kind: str = "g") -> str:
    """A table cell: ``%`` percentages, ``e`` scientific, ``s`` seconds, else general."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if kind == "%":
        return "diverged" if not math.isfinite(value) else f"{100 * value:.3g} %"
    if kind == "e":
        return f"{value:.2e}"
    if kind == "s":
        return f"{value:.0f}"
    return f"{value:.3g}"


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """Rows of dicts as a markdown table; ``columns``: ``(key, header, cell kind)``."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k), kind) for k, _, kind in columns) + " |")
    return "\n".join(lines)


def check_out(out: Path | None, force: bool) -> None:
    """Refuse an existing ``out`` (.md) or its ``.json`` without ``force``, before any work."""
    if out is None:
        return
    for path in (out, out.with_suffix(".json")):
        if path.exists() and not force:
            raise FileExistsLagraxError(f"{path} exists; refusing to overwrite it (use --force)")


def write_results(out: Path | None, table: str, rows: Sequence[dict], settings: dict) -> None:
    """Write the table to ``out`` and the rows (without predictions) to ``out.json``."""
    if out is None:
        return
    plain = [{k: v for k, v in row.items() if k != "prediction"} for row in rows]
    atomic_write_text(out, table + "\n")
    atomic_write_text(
        out.with_suffix(".json"), json.dumps({"settings": settings, "rows": plain}, indent=2) + "\n"
    )


def say(message: str) -> None:
    """Progress on stderr with a timestamp (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


__all__ = ["Contender", "check_out", "fit", "fmt", "markdown_table", "say", "score", "write_results"]
