"""Run directories: one typed record, :class:`RunDir`, for every file of a training run.

A run directory holds :data:`RUN_FILES`:

* ``config.json``: the resolved settings, model and options, data path and split
  (:meth:`RunDir.write_config`, :meth:`RunDir.read_config`);
* ``split.json``: the trajectory ids and labels of each part (:meth:`RunDir.read_split`);
* ``metrics.jsonl``: one record per epoch (:meth:`RunDir.open_history`, :meth:`RunDir.read_history`);
* ``checkpoints/`` (:mod:`lagrax.training.checkpoint`);
* the model, ``model.eqx`` and ``model.json`` (:mod:`lagrax.models.io`);
* ``summary.json``: how training went, with the test metrics when there is a test split;
* ``metrics.json``: the test metrics, with a test split;
* ``identification.json``: the report of a model's prefit (the rigid-body model's
  least-squares identification: rank, conditioning, base and unidentifiable parameters);
* what ``lagrax evaluate`` and ``lagrax report`` add: ``evaluations/`` and :data:`REPORT_FILES`.

Every reader and writer of these files goes through :class:`RunDir`; :meth:`RunDir.load`
gives a finished run back as a :class:`Run`. This module knows where files lie and how
they are written (atomically, JSON with two-space indent); it does not train
(:func:`lagrax.training.run.run_training`) nor compute metrics (:mod:`lagrax.analysis.metrics`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from lagrax.core.errors import DatasetError, FileExistsLagraxError, LagraxError
from lagrax.core.fileio import atomic_write_text
from lagrax.core.locks import LOCK_NAME
from lagrax.models.io import META_FILE, MODEL_FILE, load_model, save_model
from lagrax.training.checkpoint import CheckpointError

CONFIG = "config.json"
SPLIT = "split.json"
HISTORY = "metrics.jsonl"
METRICS = "metrics.json"
SUMMARY = "summary.json"
IDENTIFICATION = "identification.json"
CHECKPOINTS = "checkpoints"
# evaluations of a run (lagrax evaluate) go here, one file per data file and split
EVALUATIONS = "evaluations"
REPORT = "report.md"
REPORT_METRICS = "report.json"
FIGURES = ("torque_decomposition.png", "learning_curves.png", "rollouts.png")
# what `lagrax report` writes into a run directory (never replaced without force)
REPORT_FILES = (REPORT, REPORT_METRICS, *FIGURES)
# What a run directory holds; --force removes these (and nothing else) before a new run:
# a new run's directory must not show an old run's evaluations or report.
RUN_FILES = (CONFIG, HISTORY, METRICS, SPLIT, MODEL_FILE, META_FILE, SUMMARY, CHECKPOINTS, EVALUATIONS)
RUN_FILES += (IDENTIFICATION,)
RUN_FILES += REPORT_FILES


def _json_text(record: Any) -> str:
    return json.dumps(record, indent=2) + "\n"


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; a :class:`DatasetError` naming the file if it is not
    JSON (or not text: a damaged file's bytes need not be UTF-8)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path} is not valid JSON: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished run, loaded: the trained model and its records.

    ``config`` (``config.json``: model name and options, training settings, data path,
    split), ``split`` (``split.json``: trajectory ids and labels per part), ``summary``
    (``summary.json``: steps, train seconds, stop reason), ``history`` (``metrics.jsonl``,
    one record per epoch), ``metrics`` (``metrics.json``: the test metrics; empty without
    a test split).
    """

    path: Path
    model: Any
    config: dict
    split: dict
    summary: dict
    history: list[dict]
    metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def training(self) -> dict:
        """``train_seconds`` and ``steps`` of the summary (those it has)."""
        return {k: self.summary[k] for k in ("train_seconds", "steps") if k in self.summary}


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The run directory at ``path``: where each file lies, and typed reads and writes.

    Reads of optional records (config, split, summary, history, metrics) give an empty
    record when the file is absent; a file that is not JSON is a :class:`DatasetError`.
    """

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    # -- where the files lie ------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def split_path(self) -> Path:
        return self.path / SPLIT

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    @property
    def identification_path(self) -> Path:
        return self.path / IDENTIFICATION

    @property
    def checkpoints_path(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def model_meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def evaluations_path(self) -> Path:
        return self.path / EVALUATIONS

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    @property
    def report_metrics_path(self) -> Path:
        return self.path / REPORT_METRICS

    def figure_path(self, name: str) -> Path:
        """Where the report's figure ``name`` (one of :data:`FIGURES`) goes."""
        if name not in FIGURES:
            raise LagraxError(f"{name!r} is not a report figure (known: {', '.join(FIGURES)})")
        return self.path / name

    def evaluation_path(self, data: str | Path | None, split: str = "test") -> Path:
        """``evaluations/<data file stem>-<split>.json``; ``data`` defaults to the run's
        recorded data file (``data`` if none is recorded)."""
        if data is None:
            data = self.read_config().get("data") or "data"
        return self.evaluations_path / f"{Path(data).stem}-{split}.json"

    # -- preparing a directory for a run ------------------------------------------------

    def remove_stale_temp_files(self) -> list[Path]:
        """Remove what an interrupted atomic write left (``.NAME.XXXX.tmp``, see lagrax.core.fileio)."""
        dirs = (self.path, self.checkpoints_path)
        stale = [p for d in dirs if d.is_dir() for p in d.glob(".*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def prepare(self, force: bool, resume: bool) -> None:
        """Make the directory ready for a run: resuming needs its checkpoints; a new run needs
        it empty, or ``force``, which removes the :data:`RUN_FILES` (and nothing else)."""
        out_dir = self.path
        if out_dir.exists() and not out_dir.is_dir():
            raise FileExistsLagraxError(f"{out_dir} exists and is not a directory")
        existing = [p for p in out_dir.iterdir() if p.name != LOCK_NAME] if out_dir.exists() else []
        if resume:
            if not self.checkpoints_path.exists():
                raise CheckpointError(
                    f"nothing to resume in {out_dir}: it has no checkpoints/ (train without --resume)"
                )
            self.remove_stale_temp_files()
            return
        if existing and not force:
            raise FileExistsLagraxError(
                f"run directory {out_dir} exists and is not empty; use --resume to continue that run "
                "or --force to replace its run files"
            )
        self.remove_stale_temp_files()
        for name in RUN_FILES:  # only what a run writes: --force never deletes anything else
            p = out_dir / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    # -- the records --------------------------------------------------------------------

    def _read_optional(self, path: Path) -> dict:
        return read_json(path) if path.exists() else {}

    def write_config(self, record: Mapping[str, Any]) -> None:
        """``config.json`` and ``split.json`` (``record["split"]``), atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, _json_text(dict(record)))
        atomic_write_text(self.split_path, _json_text(record["split"]))

    def read_config(self) -> dict:
        """``config.json`` as written by :meth:`write_config` (``{}`` if absent): the one
        place a run's settings are read back."""
        return self._read_optional(self.config_path)

    def read_split(self) -> dict:
        """``split.json``; for runs without one, the split recorded in ``config.json``."""
        if self.split_path.exists():
            return read_json(self.split_path)
        return self.read_config().get("split", {})

    def write_summary(self, record: Mapping[str, Any]) -> Path:
        return atomic_write_text(self.summary_path, _json_text(dict(record)))

    def read_summary(self) -> dict:
        return self._read_optional(self.summary_path)

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """``metrics.json``: training's own test metrics."""
        return atomic_write_text(self.metrics_path, _json_text(dict(metrics)))

    def read_metrics(self) -> dict:
        return self._read_optional(self.metrics_path)

    def write_identification(self, report: Mapping[str, Any]) -> Path:
        """``identification.json``: the report of the model's prefit (its identification)."""
        return atomic_write_text(self.identification_path, _json_text(dict(report)))

    def read_identification(self) -> dict:
        return self._read_optional(self.identification_path)

    def write_evaluation(self, path: Path, metrics: Mapping[str, Any]) -> Path:
        """An evaluation's metrics at ``path`` (from :meth:`evaluation_path`)."""
        if path.parent != self.evaluations_path:
            raise LagraxError(f"{path} is not in {self.evaluations_path}")
        return atomic_write_text(path, _json_text(dict(metrics)))

    def write_report_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """``report.json``: the metrics ``report.md`` shows."""
        return atomic_write_text(self.report_metrics_path, _json_text(dict(metrics)))

    def read_report_metrics(self) -> dict:
        return read_json(self.report_metrics_path)

    def open_history(self, history: Sequence[Mapping[str, Any]]) -> TextIO:
        """``metrics.jsonl`` rewritten with ``history`` (one JSON line per epoch), open for
        appending the next epochs' records."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.history_path, "".join(json.dumps(r) + "\n" for r in history))
        return self.history_path.open("a")

    def read_history(self) -> list[dict]:
        """The per-epoch records of ``metrics.jsonl`` (``[]`` if absent)."""
        if not self.history_path.exists():
            return []
        return [json.loads(line) for line in self.history_path.read_text().splitlines() if line.strip()]

    # -- the model ----------------------------------------------------------------------

    def write_model(self, model) -> None:
        """The trained model (``model.eqx``, ``model.json``), replacing an earlier one."""
        save_model(model, self.path, force=True)

    def has_model(self) -> bool:
        return self.model_meta_path.exists() or self.model_path.is_dir()

    def read_model(self):
        """The trained model (a model saved into ``model.eqx/`` sits one level down)."""
        return load_model(self.model_path if self.model_path.is_dir() else self.path)

    def load(self) -> Run:
        """The model and records of a finished run; a LagraxError naming what is missing."""
        if not self.path.is_dir():
            raise LagraxError(f"run directory {self.path} does not exist (train one with `lagrax train`)")
        if not self.has_model():
            raise LagraxError(
                f"{self.path} holds no trained model (model.json is missing): is it a run directory?"
            )
        model = self.read_model()
        config, split = self.read_config(), self.read_split()
        return Run(
            self.path, model, config, split, self.read_summary(), self.read_history(), self.read_metrics()
        )


def load_run(run_dir: str | Path) -> Run:
    """``RunDir(run_dir).load()``: the model and records of a run directory."""
    return RunDir(run_dir).load()


__all__ = [
    "RunDir",
    "Run",
    "load_run",
    "read_json",
    "RUN_FILES",
    "REPORT_FILES",
    "FIGURES",
    "EVALUATIONS",
]
