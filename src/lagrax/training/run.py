"""A training run: :func:`run_training` trains a model on a dataset file into a run directory.

It resolves a run's settings (the model's recipe, a saved run, overrides), splits the
dataset by trajectory, prepares the directory (:class:`~lagrax.training.rundir.RunDir`:
refusing a non-empty one unless resuming or forcing), writes the config and split,
trains (:func:`lagrax.training.trainer.train`), and writes the model and the summary
(and ``identification.json``, the report of a model that was prefit, e.g. identified).
A run whose loss diverged is marked so and raises.

It does not score the model on the test split itself: the caller passes an
:class:`Evaluator` (``lagrax train`` passes :func:`lagrax.analysis.metrics.held_out_metrics`),
whose metrics go to ``metrics.json`` and into the summary. Scoring is analysis, a layer
above training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np

from lagrax.core.errors import DatasetError, LagraxError, NumericalError, ShapeError, UnknownNameError
from lagrax.core.fileio import file_sha256
from lagrax.core.locks import DirectoryLock, check_unlocked
from lagrax.training import losses as L
from lagrax.training.checkpoint import CheckpointError
from lagrax.training.config import ConfigError, TrainConfig, recipe
from lagrax.training.parallel import is_writer
from lagrax.training.rundir import RunDir
from lagrax.training.streaming import STATISTICS_SAMPLES, Stream, is_streamed
from lagrax.training.trainer import TrainResult, check_ensemble_fits, train
from lagrax.models import make_spec, parameter_bytes

# a final normalised loss above this means nothing was learned: each term is scaled by the
# training set's variance, so an untrained model starts near 1 per active term
DIVERGED_LOSS = 1e6
# ... or a final loss this many times the first epoch's (noise moves it by far less)
DIVERGED_GROWTH = 10.0


class Evaluator(Protocol):
    """Scores a trained model on the held-out test split.

    ``evaluate(model, test_ds, training) -> metrics``: ``test_ds`` a
    :class:`~lagrax.data.dataset.Dataset`, ``training`` the run's ``{"train_seconds",
    "steps"}``; the metrics a flat JSON-serialisable dict (written to ``metrics.json`` and
    under ``"test"`` in ``summary.json``).
    """

    def __call__(self, model, test_ds, training: Mapping[str, Any]) -> dict[str, Any]: ...


def resolve_settings(
    out_dir: Path, resume: bool, config, model_options, model_name: str, dataset=None, streamed=False
) -> tuple[TrainConfig, dict, dict]:
    """The run's ``(config, model options, saved config.json)``: the saved run's settings when
    resuming, else the model's recipe for ``dataset`` (:func:`~lagrax.training.config.recipe`;
    ``streamed`` data: without its L-BFGS epochs), with ``config`` / ``model_options`` on
    top (a :class:`TrainConfig` is used as it is)."""
    saved = RunDir(out_dir).read_config() if resume else {}
    preset, preset_options = recipe(model_name, dataset)
    preset = {**preset, "lbfgs_epochs": 0} if streamed else preset
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
    if ds is None or is_streamed(ds):  # streamed: no split, every shard trains
        return []
    return sorted(int(i) for i in np.unique(ds.trajectory))


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
        **({"members": result.members} if result.members else {}),
        **({"prefit": prefit_summary(result)} if result.prefit is not None else {}),
    }


#: What the summary repeats of a prefit's report (the whole report is identification.json).
PREFIT_SUMMARY = ("rank", "parameters", "condition_number", "torque_nmse", "unidentifiable")


def prefit_summary(result: TrainResult) -> dict[str, Any]:
    """The summary's ``prefit``: the identification's rank, conditioning, torque nMSE on the
    training set and unidentifiable parameters, and whether its parameters were kept over
    the refined ones (``kept``)."""
    report = result.prefit or {}
    return {**{k: report[k] for k in PREFIT_SUMMARY if k in report}, "kept": result.kept_prefit}


def check_fractions(test_fraction, val_fraction) -> None:
    """``test_fraction`` in (0, 1) and ``val_fraction`` in [0, 1), each named when wrong."""
    if test_fraction is not None and not (0 < test_fraction < 1):
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if val_fraction is not None and not (0 <= val_fraction < 1):
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")


def _differences(saved: Mapping, now: Mapping, keys) -> list[str]:
    return [f"{k} (was {saved.get(k)!r}, now {now.get(k)!r})" for k in keys if saved.get(k) != now.get(k)]


def check_same_run(saved: dict, record: dict, out_dir: Path) -> None:
    """Refuse to resume ``saved`` (the run's config.json) with another run's ``record``:
    another dataset (by content), model, model options, split or training setting."""
    if not saved:
        return
    diffs = []
    if saved.get("data_sha256") and saved["data_sha256"] != record["data_sha256"]:
        diffs.append(
            f"the data ({record['data']} is not the file the run was trained on: its SHA-256 differs)"
        )
    diffs += _differences(saved, record, ("model", "dof", "ensemble"))
    diffs += _differences(saved.get("model_options", {}), record["model_options"], record["model_options"])
    train = saved.get("train", {})
    diffs += _differences(train, record["train"], sorted(set(train) | set(record["train"])))
    if saved.get("split") is not None and saved["split"] != record["split"]:
        diffs.append(
            "the split (test/validation trajectories: --test-labels, --test-fraction, --val-fraction)"
        )
    if diffs:
        raise CheckpointError(
            f"cannot resume {out_dir}: this is not the same run; it differs in "
            + "; ".join(diffs)
            + ". Resume with the run's own settings (see its config.json), or start a new run "
            "(another --out, or --force)"
        )


def _check_resumed_dof(saved: dict, ds, data_path) -> None:
    if saved and saved.get("dof") not in (None, ds.dof):
        raise ShapeError(
            f"cannot resume: the run's model has {saved['dof']} joints but {data_path} has {ds.dof}"
        )


def divergence(history: list[dict]) -> str | None:
    """Why a run's per-epoch ``history`` shows that nothing was learned, or ``None``.

    The final loss is not finite, above :data:`DIVERGED_LOSS` (losses are normalised by
    the data's variance, so an untrained model starts near 1 per term), or more than
    :data:`DIVERGED_GROWTH` times the first epoch's.
    """
    if not history:
        return None
    first, final = history[0]["loss"], history[-1]["loss"]
    if not math.isfinite(final):
        return f"the final loss is {final}"
    if final > DIVERGED_LOSS:
        return f"the final loss {final:.3g} is above {DIVERGED_LOSS:g}: nothing was learned"
    if math.isfinite(first) and final > DIVERGED_GROWTH * first:
        return f"the final loss {final:.3g} is more than {DIVERGED_GROWTH:g}x the first epoch's ({first:.3g})"
    return None


def _finish(
    run_dir: RunDir, model_name: str, result: TrainResult, test_ds, evaluate: Evaluator | None
) -> None:
    """Save the model, score it on the test split (if any, with ``evaluate``) and write the summary."""
    run_dir.write_model(result.model)
    if result.prefit is not None:
        run_dir.write_identification(result.prefit)
    record = summary(model_name, result)
    why = divergence(result.history)
    if why:
        record["stopped_reason"] = "diverged"
        run_dir.write_summary(record)
        raise NumericalError(
            f"training diverged: {why}; lower --lr or check the data. The run in {run_dir.path} is "
            "marked 'diverged'"
        )
    if test_ds is not None and evaluate is not None:
        metrics = evaluate(
            result.model, test_ds, {"train_seconds": result.train_seconds, "steps": result.steps}
        )
        run_dir.write_metrics(metrics)
        record["test"] = metrics
    run_dir.write_summary(record)


def _initial_model(model_name: str, train_ds, cfg: TrainConfig, options: dict):
    from lagrax.models import make_model

    stats = Stream.of(train_ds, cfg.loss_weights(), cfg).sample() if is_streamed(train_ds) else train_ds
    model = make_model(model_name, train_ds.info, key=jax.random.PRNGKey(cfg.seed), **options)
    return model.with_data_statistics(stats.q, stats.qd, stats.qdd, stats.tau)


def _load(data_path: Path):
    """``(dataset, what to check it by)``: a ``.npz`` dataset twice, or a sharded directory
    (streamed, :mod:`lagrax.training.streaming`) and a seeded sample of it."""
    from lagrax.data.dataset import load_dataset
    from lagrax.data.shards import is_sharded, open_shards

    if not is_sharded(data_path):
        ds = load_dataset(data_path)
        return ds, ds
    ds = open_shards(data_path)
    return ds, ds.sample(STATISTICS_SAMPLES, seed=0)


def _identity(data_path: Path) -> Path:
    """The file whose SHA-256 identifies a dataset: the ``.npz``, or a shard directory's
    manifest (which records each shard file's SHA-256)."""
    from lagrax.data.shards import MANIFEST, is_sharded

    return data_path / MANIFEST if is_sharded(data_path) else data_path


def _check_no_split(data_path: Path, labels, test_fraction, val_fraction) -> None:
    if labels is not None or test_fraction is not None or val_fraction:
        raise DatasetError(
            f"{data_path} is a sharded dataset, streamed whole: it cannot be split into test or "
            "validation trajectories; evaluate the run on another dataset (lagrax evaluate RUN --data FILE)"
        )


def _plan_run(
    model_name, data_path: Path, out_dir, resume, config, model_options, labels, test_fraction, val_fraction
):
    """Load and check everything a run needs, before any file is touched: ``(dataset, config,
    model options, saved config.json, (train, test, validation), the config.json to write)``."""
    ds, checked = _load(data_path)
    cfg, options, saved = resolve_settings(
        out_dir, resume, config, model_options, model_name, checked, streamed=ds is not checked
    )
    if saved and saved.get("model") not in (None, model_name):
        raise CheckpointError(f"cannot resume: {out_dir} holds a {saved['model']!r} run, not {model_name!r}")
    if resume and saved and labels is None and test_fraction is None and val_fraction is None:
        labels, test_fraction = saved.get("test_labels"), saved.get("test_fraction")
        val_fraction = saved.get("val_fraction")
    val_fraction = val_fraction or 0.0
    L.check_data(checked, cfg.loss_weights(), f"dataset {data_path}")
    _check_resumed_dof(saved, ds, data_path)
    if ds is not checked:  # streamed: every shard trains
        _check_no_split(data_path, labels, test_fraction, val_fraction)
        parts = (ds, None, None)
    else:
        parts = split_dataset(ds, cfg, data_path, labels, test_fraction, val_fraction)
    labels = labels if isinstance(labels, (str, type(None))) else list(labels)
    record = {
        "model": model_name,
        "model_options": {"dtype": cfg.dtype.value, **options},
        "train": cfg.to_dict(),
        "data": str(data_path.resolve()),
        "data_sha256": file_sha256(_identity(data_path)),
        "data_name": ds.metadata.get("system", {}).get("name"),
        "dof": ds.dof,
        "test_labels": labels,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "split": split_record(ds, *(_trajectory_ids(d) for d in parts)),
    }
    return ds, cfg, record["model_options"], saved, parts, record


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
    val_fraction: float | None = None,
    progress: bool = True,
    callback=None,
    devices: int | None = None,
    ensemble: int | None = None,
    evaluate: Evaluator | None = None,
) -> Path:
    """Train ``model_name`` on a dataset file and write the run directory ``out_dir``.

    The directory gets ``config.json`` (resolved config, model and options, data path,
    split), ``split.json`` (train/validation/test trajectory ids and labels),
    ``metrics.jsonl`` (one line per epoch), ``checkpoints/``, the model (``model.eqx``
    via :func:`lagrax.models.io.save_model`), ``summary.json`` and, with a test split
    and an ``evaluate`` (:class:`Evaluator`, e.g.
    :func:`lagrax.analysis.metrics.held_out_metrics`), ``metrics.json``: its metrics of the
    trained model on the test split, also under ``"test"`` in the summary. Without
    ``evaluate`` the test split is held out and recorded but not scored
    (``lagrax evaluate RUN`` scores it later).

    ``config`` / ``model_options`` given as mappings are overrides: on top of the
    saved run's settings when resuming, of the model's preset otherwise (a
    :class:`TrainConfig` is used as it is). ``val_fraction`` of
    the training trajectories is held out for validation and early stopping.
    An existing non-empty ``out_dir`` is refused unless ``resume`` or ``force``
    (which removes only the files a run writes, see :data:`~lagrax.training.rundir.RUN_FILES`).

    ``resume`` continues the same run or refuses (:func:`check_same_run`): the same data
    (by content), model, options, split and settings; split arguments left out are the
    saved run's. A run whose final loss is not finite or above :data:`DIVERGED_LOSS`
    is marked ``diverged`` and raises :class:`~lagrax.core.errors.NumericalError`.

    ``callback(epoch, model, record)`` is passed to :func:`~lagrax.training.trainer.train`:
    called after each epoch; returning True stops training (e.g. a sweep's pruning).

    ``devices``: data-parallel over that many devices (``train``'s); in a multi-process run
    only process 0 prepares and writes ``out_dir`` (:mod:`lagrax.training.parallel`).
    ``ensemble``: train that many members (seeds ``seed``, ``seed + 1``, ...) as one
    program (``train``'s); the split is the same for all, from ``seed``.
    """
    from lagrax.models import MODELS

    if model_name not in MODELS:
        raise UnknownNameError.for_name("model", model_name, MODELS)
    run_dir = RunDir(out_dir)
    out_dir = run_dir.path
    check_unlocked(out_dir)  # another process writing there is named before anything else
    if resume and force:
        raise LagraxError("give either --resume (continue the run) or --force (start it again), not both")
    check_fractions(test_fraction, val_fraction)
    plan = (out_dir, resume, config, model_options, test_labels, test_fraction, val_fraction)
    ds, cfg, options, saved, parts, record = _plan_run(model_name, Path(data_path), *plan)
    record["ensemble"] = ensemble
    if resume:
        check_same_run(saved, record, out_dir)
    writer = is_writer()  # False only on processes 1, 2, ... of a multi-process run
    if ensemble is not None:  # a million members: refused before anything is built or written
        check_ensemble_fits(parameter_bytes(make_spec(model_name, **options), parts[0].info) or 0, ensemble)
    model = _initial_model(model_name, parts[0], cfg, options)  # e.g. no kinematics: fails here
    options = dict(resume=resume, progress=progress, callback=callback, devices=devices, ensemble=ensemble)
    # one writer at a time: a second `train --out` here is refused, naming this process
    with DirectoryLock(out_dir, "train") if writer else contextlib.nullcontext():
        if writer:
            run_dir.prepare(force, resume)  # only after every input check passed
        if writer and not (resume and saved):
            run_dir.write_config(record)
        result = train(model, parts[0], parts[2], cfg, run_dir=out_dir, **options)
        if writer:
            _finish(run_dir, model_name, result, parts[1], evaluate)
    return out_dir
