"""Run directories: what ``lagrax train`` writes, and :func:`run_training` that writes it.

A run directory holds :data:`RUN_FILES`: ``config.json`` (the resolved settings, model,
options, data path and split), ``split.json``, ``metrics.jsonl`` (one line per epoch),
``checkpoints/``, the model (``model.eqx``, ``model.json``), ``summary.json`` and, with a
test split, ``metrics.json``. This module prepares a directory (refusing a non-empty one
unless resuming or forcing, and then removing only the run's own files), resolves a
run's settings (preset, saved run, overrides), splits the dataset, and writes the
config, split and summary.

It does not train (that is :func:`lagrax.training.trainer.train`) nor compute test
metrics (:func:`lagrax.evaluation.evaluate`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..errors import DatasetError, FileExistsLagraxError, LagraxError, ShapeError, UnknownNameError
from . import losses as L
from .checkpoint import CheckpointError, atomic_write_text
from .config import TrainConfig, recipe
from .trainer import TrainResult, train

# What a run directory holds; --force removes these (and nothing else) before a new run.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "metrics.json",
    "split.json",
    "model.eqx",
    "model.json",
    "summary.json",
    "checkpoints",
)


def prepare_run_dir(out_dir: Path, force: bool, resume: bool) -> None:
    """Make ``out_dir`` ready for a run: resuming needs its checkpoints; a new run needs it
    empty, or ``force``, which removes the :data:`RUN_FILES` (and nothing else)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsLagraxError(f"{out_dir} exists and is not a directory")
    existing = list(out_dir.iterdir()) if out_dir.exists() else []
    if resume:
        if not (out_dir / "checkpoints").exists():
            raise CheckpointError(
                f"nothing to resume in {out_dir}: it has no checkpoints/ (train without --resume)"
            )
        return
    if existing and not force:
        raise FileExistsLagraxError(
            f"run directory {out_dir} exists and is not empty; use --resume to continue that run "
            "or --force to replace its run files"
        )
    for name in RUN_FILES:  # only what a run writes: --force never deletes anything else
        p = out_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def resolve_settings(
    out_dir: Path, resume: bool, config, model_options, model_name: str, dataset=None
) -> tuple[TrainConfig, dict, dict]:
    """The run's ``(config, model options, saved config.json)``: the saved run's settings when
    resuming, else the model's recipe for ``dataset`` (:func:`~lagrax.training.config.recipe`),
    with ``config`` / ``model_options`` on top (a :class:`TrainConfig` is used as it is)."""
    saved = {}
    if resume and (out_dir / "config.json").exists():
        saved = json.loads((out_dir / "config.json").read_text())
    preset, preset_options = recipe(model_name, dataset)
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        base = saved.get("train") if saved else preset
        cfg = TrainConfig.from_dict({**base, **dict(config or {})})
    base_options = saved.get("model_options") if saved else preset_options
    options = {**base_options, **dict(model_options or {})}
    return cfg, options, saved


def split_record(ds, train_ids, test_ids, val_ids) -> dict:
    """``split.json``: the trajectory ids and labels of each part."""

    def describe(ids):
        return {"ids": [int(i) for i in ids], "labels": [ds.label(i) for i in ids]}

    return {"train": describe(train_ids), "validation": describe(val_ids), "test": describe(test_ids)}


def _trajectory_ids(ds) -> list[int]:
    return [] if ds is None else sorted(int(i) for i in np.unique(ds.trajectory))


def split_dataset(ds, cfg: TrainConfig, data_path, test_labels, test_fraction, val_fraction: float):
    """``(train, test or None, validation or None)`` parts of ``ds``, split by trajectory."""
    if test_labels is not None or test_fraction is not None:
        train_ds, test_ds = ds.split(test_labels=test_labels, test_fraction=test_fraction, seed=cfg.seed)
        if len(test_ds) == 0:
            raise DatasetError(f"the test split of {data_path} is empty")
    else:
        train_ds, test_ds = ds, None
    val_ds = None
    if val_fraction > 0:
        train_ds, val_ds = train_ds.split(test_fraction=val_fraction, seed=cfg.seed)
    return train_ds, test_ds, val_ds


def write_run_config(out_dir: Path, run_config: dict[str, Any]) -> None:
    """``config.json`` and ``split.json`` (``run_config["split"]``), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.json", json.dumps(run_config, indent=2) + "\n")
    atomic_write_text(out_dir / "split.json", json.dumps(run_config["split"], indent=2) + "\n")


def summary(model_name: str, result: TrainResult) -> dict[str, Any]:
    """``summary.json`` of a finished run (before any test metrics)."""
    return {
        "model": model_name,
        "epochs": len(result.history),
        "steps": result.steps,
        "skipped_steps": result.skipped_steps,
        "singular_samples": result.singular_samples,
        "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds,
        "stopped_reason": result.stopped_reason,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "final_loss": result.history[-1]["loss"] if result.history else None,
    }


def _check_resumed_dof(saved: dict, ds, data_path) -> None:
    if saved and saved.get("dof") not in (None, ds.dof):
        raise ShapeError(
            f"cannot resume: the run's model has {saved['dof']} joints but {data_path} has {ds.dof}"
        )


def _finish(out_dir: Path, model_name: str, result: TrainResult, test_ds) -> None:
    """Save the model, evaluate it on the test split (if any) and write the summary."""
    from ..models.io import save_model

    save_model(result.model, out_dir, force=True)
    record = summary(model_name, result)
    if test_ds is not None:
        from ..evaluation import evaluate

        metrics = evaluate(
            result.model, test_ds, training={"train_seconds": result.train_seconds, "steps": result.steps}
        )
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        record["test"] = metrics
    atomic_write_text(out_dir / "summary.json", json.dumps(record, indent=2) + "\n")


def run_training(
    model_name: str,
    data_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig | Mapping | None = None,
    model_options: Mapping | None = None,
    test_labels=None,
    test_fraction: float | None = None,
    force: bool = False,
    resume: bool = False,
    *,
    val_fraction: float = 0.0,
    progress: bool = True,
) -> Path:
    """Train ``model_name`` on a dataset file and write the run directory ``out_dir``.

    The directory gets ``config.json`` (resolved config, model and options, data path,
    split), ``split.json`` (train/validation/test trajectory ids and labels),
    ``metrics.jsonl`` (one line per epoch), ``checkpoints/``, the model (``model.eqx``
    via :func:`lagrax.models.io.save_model`) and, with a test split, ``metrics.json``
    from :func:`lagrax.evaluation.evaluate`.

    ``config`` / ``model_options`` given as mappings are overrides: on top of the
    saved run's settings when resuming, of the model's preset otherwise (a
    :class:`TrainConfig` is used as it is). ``val_fraction`` of
    the training trajectories is held out for validation and early stopping.
    An existing non-empty ``out_dir`` is refused unless ``resume`` or ``force``
    (which removes only the files a run writes, see :data:`RUN_FILES`).
    """
    from ..datasets import load_dataset
    from ..models import MODELS, make_model

    if model_name not in MODELS:
        raise UnknownNameError.for_name("model", model_name, MODELS)
    out_dir = Path(out_dir)
    if resume and force:
        raise LagraxError("give either --resume (continue the run) or --force (start it again), not both")
    ds = load_dataset(data_path)
    cfg, options, saved = resolve_settings(out_dir, resume, config, model_options, model_name, ds)
    if saved and saved.get("model") not in (None, model_name):
        raise CheckpointError(f"cannot resume: {out_dir} holds a {saved['model']!r} run, not {model_name!r}")
    L.check_data(ds, cfg.loss_weights(), f"dataset {data_path}")
    _check_resumed_dof(saved, ds, data_path)
    train_ds, test_ds, val_ds = split_dataset(ds, cfg, data_path, test_labels, test_fraction, val_fraction)
    prepare_run_dir(out_dir, force, resume)  # only after every input check passed

    options = {"dtype": cfg.dtype.value, **options}
    model = make_model(model_name, train_ds.info, key=jax.random.PRNGKey(cfg.seed), **options)
    model = model.with_data_statistics(train_ds.q, train_ds.qd, train_ds.qdd, train_ds.tau)
    labels = test_labels if isinstance(test_labels, (str, type(None))) else list(test_labels)
    write_run_config(
        out_dir,
        {
            "model": model_name,
            "model_options": options,
            "train": cfg.to_dict(),
            "data": str(data_path),
            "dof": ds.dof,
            "test_labels": labels,
            "test_fraction": test_fraction,
            "val_fraction": val_fraction,
            "split": split_record(ds, *(_trajectory_ids(d) for d in (train_ds, test_ds, val_ds))),
        },
    )
    result = train(model, train_ds, val_ds, cfg, run_dir=out_dir, resume=resume, progress=progress)
    _finish(out_dir, model_name, result, test_ds)
    return out_dir
