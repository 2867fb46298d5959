"""Hyper-parameter sweeps on Optuna: what ``lagrax sweep SPACE.toml`` runs.

A sweep trains one run per trial with :func:`lagrax.training.run_training` and minimises
a metric of the run (its best validation loss by default) with Optuna's seeded TPE
sampler; a median pruner stops trials whose per-epoch validation loss falls behind. The
study lives in a database (``OUT/study.db``, SQLite, by default; any SQLAlchemy URL with
``storage``), so workers in several processes, or on several machines, share one study
with no server to start. Optuna is an optional extra: ``pip install 'lagrax[sweep]'``.

The search space (``SPACE.toml``)::

    [sweep]
    model = "delan"            # required: any of lagrax.models.MODELS
    metric = "best_val_loss"   # minimised: best_val_loss (default) | final_loss (training loss)
    val_fraction = 0.25        # training trajectories held out for validation (default 0.25)
    study = "pendulum-delan"   # the study's name in the storage (default: the file's stem)
    startup_trials = 10        # random trials before TPE models the results (default 10)
    pruner = "median"          # median (default) | none
    prune_after_trials = 5     # trials finished before any is pruned (default 5)
    prune_warmup_epochs = 0    # epochs of each trial never pruned (default 0)

    [train]                    # fixed training settings: TrainConfig fields and loss
    epochs = 30                # weights, the table of `lagrax train --config`
    lbfgs_epochs = 0
    val_every = 5              # validations are what the pruner sees

    [model]                    # fixed model options (as `lagrax train --option`)
    depth = 2

    [search.lr]                # a searched training setting
    type = "float"
    low = 1e-4
    high = 1e-2
    log = true
    [search.width]             # a searched model option
    type = "int"
    low = 32
    high = 128
    step = 32
    [search.forward]           # a searched loss weight
    type = "float"
    low = 0.0
    high = 1.0
    [search.activation]
    type = "categorical"
    choices = ["tanh", "softplus"]

Each ``[search.NAME]`` is ``float`` or ``int`` (``low`` <= ``high``, optional ``step`` > 0
or ``log = true`` with ``low`` > 0, not both) or ``categorical`` (a non-empty list of
``choices``). A name that is a :class:`~lagrax.training.TrainConfig` field or a loss
weight (:data:`~lagrax.training.config.LOSS_NAMES`) is a training setting; any other
name is a model option. Settings not given come from the model's recipe for the data,
as in ``lagrax train``. Every name, table, type and bound is checked before anything is
written; a bad one is a :class:`SweepError` naming it.

``run_sweep`` writes to ``OUT``: ``study.db`` (unless ``storage`` is given),
``trials/NNNN/`` (each trial's run directory), ``trials.csv`` (number, state, value,
seconds, parameters, error), ``best.toml`` (the best trial's settings, a file
``lagrax train --config`` reads), ``history.png`` (each trial's value, the best so far,
pruned trials marked) and ``sweep.json`` (a summary).

``trials`` counts every trial of the study (running, complete, pruned or failed), so W
workers, or machines that run the same command against one ``--storage`` (e.g.
``postgresql://user@host/db``; each with its own ``--out``), stop together at ``trials``
(a worker checks the count before it starts a trial: in a rare race between machines
the study may get up to one trial per extra worker more). ``--resume`` continues the
study in ``OUT`` up to ``trials``. A trial interrupted by Ctrl-C, or left running by a
killed process (on resume: any running trial of the sweep's own ``study.db``; in a shared
storage: one whose process on this machine is gone), is marked failed with the error
``interrupted`` and does not count. Each trial's sampler is seeded from ``seed``, the
worker and the trial's number, so a resumed sweep never repeats the parameters of the
trials before it. One sweep at a time writes to ``OUT``: a second is refused, naming the
first (its lock file ``OUT/.lagrax.lock``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lagrax.core.errors import FileExistsLagraxError, LagraxError, UnknownNameError
from lagrax.core.locks import LOCK_NAME, DirectoryLock, check_unlocked
from lagrax.training.rundir import RunDir

OPTUNA_MISSING = "lagrax sweep needs Optuna: pip install 'lagrax[sweep]'"
# what a sweep writes into its directory; --force removes these (and nothing else)
SWEEP_FILES = (
    "study.db",
    "study.db-journal",
    "study.db-wal",
    "study.db-shm",
    "trials",
    "trials.csv",
    "best.toml",
    "history.png",
    "sweep.json",
)
# the metric (a summary.json key) -> the per-epoch record key the pruner sees
METRICS = {"best_val_loss": "val_loss", "final_loss": "loss"}
PRUNERS = ("median", "none")
PARAM_TYPES = {
    "float": {"type", "low", "high", "step", "log"},
    "int": {"type", "low", "high", "step", "log"},
    "categorical": {"type", "choices"},
}
SWEEP_DEFAULTS: dict[str, Any] = {
    "model": None,
    "metric": "best_val_loss",
    "val_fraction": 0.25,
    "study": None,
    "startup_trials": 10,
    "pruner": "median",
    "prune_after_trials": 5,
    "prune_warmup_epochs": 0,
}
TABLES = ("sweep", "train", "model", "search")
# each worker process of a multi-worker sweep runs XLA on one thread, so W workers share
# the cores instead of each spreading over all of them
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class SweepError(LagraxError, ValueError):
    """A sweep's search space, storage or output directory is wrong."""


def require_optuna():
    """The ``optuna`` module, or a :class:`SweepError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SweepError(OPTUNA_MISSING) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial gets our own line
    return optuna


# --------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched name: its Optuna distribution and the table (train or model) it goes to."""

    name: str
    type: str
    table: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna ``trial``."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def values_to_check(self) -> list:
        """The values checked before a sweep starts: the bounds, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


@dataclasses.dataclass(frozen=True)
class Space:
    """A parsed ``SPACE.toml``: the ``[sweep]`` settings, fixed tables and searched params."""

    path: str
    model: str
    metric: str
    val_fraction: float
    study: str
    startup_trials: int
    pruner: str
    prune_after_trials: int
    prune_warmup_epochs: int
    train: dict
    model_options: dict
    params: tuple[Param, ...]

    def settings(self, values: Mapping[str, Any]) -> tuple[dict, dict]:
        """``(training overrides, model options)`` of a trial with searched ``values``."""
        train, model = dict(self.train), dict(self.model_options)
        for p in self.params:
            if p.name in values:
                (train if p.table == "train" else model)[p.name] = values[p.name]
        return train, model

    def to_json(self) -> dict:
        """Everything but the file's path (stored with the study to recognise it)."""
        d = dataclasses.asdict(self)
        d.pop("path")
        d["params"] = [{k: (list(v) if k == "choices" else v) for k, v in p.items()} for p in d["params"]]
        return d


def train_names() -> set[str]:
    """The names that are training settings: TrainConfig's fields and the loss weights."""
    from lagrax.training.config import LOSS_NAMES, TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} | set(LOSS_NAMES)


def _read_space_file(path: Path) -> dict:
    from lagrax.training.config import load_toml

    data = load_toml(path, "search space", SweepError)
    for key, value in data.items():
        if key not in TABLES:
            raise SweepError(f"{path}: unknown table [{key}]; a search space has [{'], ['.join(TABLES)}]")
        if not isinstance(value, dict):
            raise SweepError(f"{path}: {key} must be a table ([{key}])")
    return data


def _sweep_settings(table: Mapping, path: Path) -> dict:
    """The ``[sweep]`` table with its defaults, each value checked."""
    from lagrax.models import MODELS

    unknown = sorted(set(table) - set(SWEEP_DEFAULTS))
    if unknown:
        raise UnknownNameError.for_name(f"[sweep] setting in {path}:", unknown[0], SWEEP_DEFAULTS)
    s = {**SWEEP_DEFAULTS, "study": path.stem, **table}
    if s["model"] is None:
        raise SweepError(f"{path}: [sweep] needs model = one of {', '.join(sorted(MODELS))}")
    if s["model"] not in MODELS:
        raise UnknownNameError.for_name("model", str(s["model"]), MODELS)
    if s["metric"] not in METRICS:
        raise UnknownNameError.for_name("sweep metric", str(s["metric"]), METRICS)
    if s["pruner"] not in PRUNERS:
        raise UnknownNameError.for_name("sweep pruner", str(s["pruner"]), PRUNERS)
    vf = s["val_fraction"]
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
        raise SweepError(f"{path}: [sweep] val_fraction must be in [0, 1), got {vf!r}")
    if s["metric"] == "best_val_loss" and vf == 0:
        raise SweepError(f"{path}: metric best_val_loss needs a validation split: val_fraction > 0")
    for key in ("startup_trials", "prune_after_trials", "prune_warmup_epochs"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 0:
            raise SweepError(f"{path}: [sweep] {key} must be a whole number >= 0, got {s[key]!r}")
    if not isinstance(s["study"], str) or not s["study"]:
        raise SweepError(f"{path}: [sweep] study must be a non-empty name, got {s['study']!r}")
    return s


def _number(value, what: str, whole: bool) -> float | int:
    ok = isinstance(value, int) if whole else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise SweepError(f"{what} must be {'a whole number' if whole else 'a finite number'}, got {value!r}")
    return value if whole else float(value)


def parse_param(name: str, spec: Mapping, where: str, train: set[str]) -> Param:
    """One ``[search.NAME]`` table as a :class:`Param` (``where`` names it in errors)."""
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise SweepError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}, got {kind!r}")
    unknown = sorted(set(spec) - PARAM_TYPES[kind])
    if unknown:
        raise SweepError(
            f"{where}: unknown key {unknown[0]!r} for a {kind} parameter "
            f"(known: {', '.join(sorted(PARAM_TYPES[kind]))})"
        )
    table = "train" if name in train else "model"
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepError(f"{where}: choices must be a non-empty list, got {choices!r}")
        if any(isinstance(c, (list, dict)) for c in choices):
            raise SweepError(f"{where}: choices must be strings, numbers or booleans, got {choices!r}")
        return Param(name, kind, table, choices=tuple(choices))
    return _numeric_param(name, kind, table, spec, where)


def _numeric_param(name: str, kind: str, table: str, spec: Mapping, where: str) -> Param:
    for key in ("low", "high"):
        if key not in spec:
            raise SweepError(f"{where}: a {kind} parameter needs low and high")
    whole = kind == "int"
    low, high = _number(spec["low"], f"{where}: low", whole), _number(spec["high"], f"{where}: high", whole)
    if low > high:
        raise SweepError(f"{where}: low ({low}) is greater than high ({high})")
    step = spec.get("step")
    if step is not None and _number(step, f"{where}: step", whole) <= 0:
        raise SweepError(f"{where}: step must be positive, got {step!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SweepError(f"{where}: a log-scaled range needs low > 0, got {low}")
    if log and step is not None:
        raise SweepError(f"{where}: give either step or log = true, not both")
    return Param(name, kind, table, low, high, step, log)


def load_space(path: str | Path) -> Space:
    """Read and check a ``SPACE.toml`` (see the module docstring); nothing is written."""
    path = Path(path)
    data = _read_space_file(path)
    s = _sweep_settings(data.get("sweep", {}), path)
    names = train_names()
    search = data.get("search", {})
    if not search:
        raise SweepError(f"{path}: nothing to search: add a [search.NAME] table")
    params = []
    for name, spec in search.items():
        if not isinstance(spec, dict):
            raise SweepError(f"{path}: search.{name} must be a table ([search.{name}])")
        params.append(parse_param(name, spec, f"{path}: [search.{name}]", names))
    fixed_train, fixed_model = dict(data.get("train", {})), dict(data.get("model", {}))
    for p in params:
        if p.name in fixed_train or p.name in fixed_model:
            raise SweepError(f"{path}: {p.name!r} is both fixed (in [train] or [model]) and searched")
    s["val_fraction"] = float(s["val_fraction"])
    space = Space(str(path), train=fixed_train, model_options=fixed_model, params=tuple(params), **s)
    check_space_values(space)
    return space


def check_space_values(space: Space) -> None:
    """Every fixed setting, and every searched bound or choice, is a valid setting of the
    model (checked on the model's recipe, the searched loss weights at their largest)."""
    from lagrax.models import make_spec
    from lagrax.training.config import LOSS_NAMES, TrainConfig, recipe

    base = {**recipe(space.model, None)[0], **space.train}
    for p in space.params:
        if p.name in LOSS_NAMES:
            base[p.name] = max(v for v in p.values_to_check() if not isinstance(v, str))
    TrainConfig.from_dict(base)
    make_spec(space.model, **space.model_options)
    for p in space.params:
        for value in p.values_to_check():
            try:
                if p.table == "train":
                    TrainConfig.from_dict({**base, p.name: value})
                else:
                    make_spec(space.model, **{**space.model_options, p.name: value})
            except LagraxError as e:
                raise SweepError(f"{space.path}: [search.{p.name}] value {value!r}: {e}") from None


# --------------------------------------------------------------------------------------
# The study: storage, sampler, pruner, objective
# --------------------------------------------------------------------------------------


def storage_url(out_dir: Path, storage: str | None) -> str:
    """``storage``, or the sweep's own SQLite file ``OUT/study.db``."""
    return storage if storage else f"sqlite:///{(out_dir / 'study.db').resolve()}"


def shown_url(url: str) -> str:
    """``url`` with any password hidden (for messages and ``sweep.json``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise SweepError(f"--storage {url!r} is not a database URL (e.g. sqlite:///study.db)") from None


def open_storage(url: str, attempts: int = 5):
    """An Optuna RDB storage at ``url`` (SQLite waits up to 60 s for another worker's lock).
    Workers that start at once race to create the tables of a new storage: the loser sees
    "table ... already exists" or a duplicate schema version, and opens it again."""
    optuna = require_optuna()
    from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (OperationalError, IntegrityError) as e:
            raced = "already exists" in str(e) or "UNIQUE constraint" in str(e)
            if not raced or attempt == attempts - 1:
                raise SweepError(f"cannot open the study storage {shown_url(url)}: {_reason(e)}") from None
            time.sleep(0.2 * (attempt + 1))
        except (SQLAlchemyError, ImportError) as e:
            raise SweepError(f"cannot open the study storage {shown_url(url)}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    """A database error in one line: SQLAlchemy's message without its SQL and its link."""
    return (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]


def make_sampler(space: Space, seed: int):
    """Optuna's TPE sampler, seeded; ``startup_trials`` random trials first."""
    optuna = require_optuna()
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=space.startup_trials)


def make_pruner(space: Space):
    """A median pruner (per-epoch metric against the other trials' median), or none."""
    optuna = require_optuna()
    if space.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=space.prune_after_trials, n_warmup_steps=space.prune_warmup_epochs
    )


def open_study(space: Space, url: str, seed: int = 0, create: bool = False):
    """The study ``space.study`` in ``url`` (created if ``create``); a study made from
    another search space is refused."""
    optuna = require_optuna()
    storage = open_storage(url)
    sampler, pruner = make_sampler(space, seed), make_pruner(space)
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=space.study,
            direction="minimize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    else:
        study = optuna.load_study(study_name=space.study, storage=storage, sampler=sampler, pruner=pruner)
    saved = study.user_attrs.get("space")
    if saved is None and create:
        study.set_user_attr("space", space.to_json())
    elif saved is not None and saved != json.loads(json.dumps(space.to_json())):
        raise SweepError(
            f"study {space.study!r} in {shown_url(url)} was made from another search space; "
            "name another study ([sweep] study = ...) or use another storage"
        )
    return study


class PruningCallback:
    """A training callback (``callback(epoch, model, record)``) that reports the epoch's
    metric to an Optuna trial and stops training (returns True) when it should be pruned."""

    def __init__(self, trial, key: str):
        self.trial, self.key = trial, key
        self.pruned_at: int | None = None

    def __call__(self, epoch: int, model, record: Mapping) -> bool:
        value = record.get(self.key)
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    """What a worker needs (picklable, for spawned worker processes)."""

    space: Space
    data: str
    out_dir: str
    url: str
    trials: int
    workers: int
    seed: int
    progress: bool
    start: float
    x64: bool = False


def worker_name() -> str:
    """``host:pid`` of this process, recorded with each trial it runs (see :func:`fail_stale_trials`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_gone(worker: str) -> bool:
    """Whether the process ``host:pid`` is known to be gone (only a local one can be known)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def interrupted_numbers(study) -> set[int]:
    """The trials interrupted by Ctrl-C or a killed process: failed, and not counted."""
    marked = {int(k.split(":")[1]) for k in study.user_attrs if k.startswith("interrupted:")}
    return marked | {t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("interrupted")}


def counted_trials(study) -> int:
    """The trials that count toward ``--trials``: all but the interrupted ones."""
    return len(study.get_trials(deepcopy=False)) - len(interrupted_numbers(study))


def fail_stale_trials(study, unowned: bool) -> list[int]:
    """Mark failed (``interrupted``) the running trials whose process is gone: those of a
    process on this machine that no longer exists, and with ``unowned`` (a resumed sweep in
    its own ``study.db``, which nothing else uses) those that never recorded a process."""
    optuna = require_optuna()
    stale = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if (worker is None and unowned) or (worker is not None and _process_is_gone(worker)):
            who = f"process {worker}" if worker else "its process"
            study.set_user_attr(f"interrupted:{t.number}", f"interrupted: {who} was killed")
            with contextlib.suppress(ValueError, RuntimeError):  # another worker marked it first
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            stale.append(t.number)
    return stale


def trial_seed(seed: int, worker: int, number: int) -> int:
    """The sampler's seed for the trial after ``number`` trials, in worker ``worker``: a
    resumed sweep (more trials in its study) never draws the earlier trials' values again."""
    import numpy as np

    return int(np.random.SeedSequence([seed, worker, number]).generate_state(1)[0])


def objective(trial, job: WorkerJob) -> float:
    """Train one trial into ``OUT/trials/NNNN``; its metric, or :class:`optuna.TrialPruned`.
    A :class:`LagraxError` of the run (e.g. it diverged) propagates: the trial fails; so does
    Ctrl-C, after marking the trial ``interrupted``."""
    trial.set_user_attr("worker", worker_name())
    try:
        return _train_trial(trial, job)
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        trial.set_user_attr("error", "interrupted (Ctrl-C)")
        raise


def _train_trial(trial, job: WorkerJob) -> float:
    optuna = require_optuna()
    from lagrax.training import run_training

    space = job.space
    train, model = space.settings({p.name: p.suggest(trial) for p in space.params})
    run_dir = Path(job.out_dir) / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    prune = PruningCallback(trial, METRICS[space.metric])
    t0 = time.perf_counter()
    try:
        run_training(
            space.model,
            job.data,
            run_dir,
            train,
            model,
            force=True,
            val_fraction=space.val_fraction,
            progress=False,
            callback=prune,
        )
    except LagraxError as e:
        if prune.pruned_at is None:
            trial.set_user_attr("error", str(e))
            raise
    finally:
        trial.set_user_attr("seconds", time.perf_counter() - t0)
    if prune.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned at epoch {prune.pruned_at}")
    value = RunDir(run_dir).read_summary().get(space.metric)
    if value is None or not math.isfinite(value):
        trial.set_user_attr("error", f"the run has no finite {space.metric} ({value})")
        raise SweepError(f"trial {trial.number}: the run has no finite {space.metric} ({value})")
    return float(value)


def state_word(state: str) -> str:
    """An Optuna trial state's name (``COMPLETE``, ``FAIL`` ...) as shown to users."""
    return {"FAIL": "failed"}.get(state, state.lower())


def _progress_line(study, trial, job: WorkerJob) -> str:
    """One line per finished trial: number, state, value, seconds, count, elapsed, ETA."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    seconds = [t.user_attrs.get("seconds", 0.0) for t in finished]
    mean = sum(seconds) / max(len(seconds), 1)
    eta = mean * max(job.trials - len(finished), 0) / job.workers
    value = f"{trial.value:.4g}" if trial.value is not None else "-"
    line = (
        f"trial {trial.number:4d} {state_word(trial.state.name):8s} {job.space.metric} {value:>10s}  "
        f"{trial.user_attrs.get('seconds', 0.0):6.1f} s  [{len(finished)}/{job.trials} done, "
        f"elapsed {time.time() - job.start:.0f} s, ETA {eta:.0f} s]"
    )
    error = trial.user_attrs.get("error")
    return f"{line}  {error.splitlines()[0][:120]}" if error else line


def optimise(study, job: WorkerJob, worker: int = 0) -> None:
    """Run trials of ``study`` until it holds ``job.trials`` (running ones included,
    interrupted ones not); each trial's sampler seeded by :func:`trial_seed`."""

    def report(study, trial) -> None:
        if job.progress:
            print(_progress_line(study, trial, job), flush=True)

    run_trial = functools.partial(objective, job=job)
    while counted_trials(study) < job.trials:
        number = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(job.space, trial_seed(job.seed, worker, number))
        study.optimize(run_trial, n_trials=1, catch=(LagraxError,), callbacks=[report])


def worker_main(job: WorkerJob, index: int) -> None:
    """A worker process: load the study (sampler seeded ``job.seed + index``) and optimise."""
    if job.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    try:
        optimise(open_study(job.space, job.url, job.seed + index), job, index)
    except KeyboardInterrupt:  # Ctrl-C: the trial is marked failed; the parent says so
        raise SystemExit(130) from None


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """Single-threaded XLA in the processes started inside (they copy the environment)."""
    before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{before} {WORKER_XLA_FLAGS}" if before else WORKER_XLA_FLAGS
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


def run_workers(job: WorkerJob, workers: int) -> None:
    """``workers`` spawned processes (JAX is never forked), each running :func:`worker_main`."""
    context = multiprocessing.get_context("spawn")
    with _worker_environment():
        processes = [context.Process(target=worker_main, args=(job, k)) for k in range(workers)]
        for p in processes:
            p.start()
    try:
        for p in processes:
            p.join()
    finally:
        for p in processes:
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [k for k, p in enumerate(processes) if p.exitcode != 0]
    if failed:
        codes = ", ".join(f"worker {k}: exit code {processes[k].exitcode}" for k in failed)
        raise SweepError(f"sweep workers stopped with an error ({codes}); see their messages above")


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepResult:
    """What :func:`run_sweep` did: the study, one row per trial, the best trial."""

    out_dir: Path
    study: str
    storage: str
    metric: str
    rows: list[dict]
    best: dict | None
    counts: dict[str, int]
    wall_seconds: float
    param_names: list[str]


def trial_rows(study, space: Space) -> list[dict]:
    """One row per trial: number, state, value (a pruned trial's last reported value),
    seconds, each searched parameter, and the error of a failed trial."""
    rows, marks = [], study.user_attrs
    for t in study.get_trials(deepcopy=False):
        value = t.value
        if value is None and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        row = {"number": t.number, "state": t.state.name, "value": value, "seconds": seconds}
        row.update({p.name: t.params.get(p.name) for p in space.params})
        row["error"] = t.user_attrs.get("error") or marks.get(f"interrupted:{t.number}", "")
        rows.append(row)
    return rows


def write_trials_csv(rows: Sequence[dict], path: Path, param_names: Sequence[str]) -> None:
    """``trials.csv``: the rows of :func:`trial_rows`."""
    columns = ["number", "state", "value", "seconds", *param_names, "error"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})


def toml_value(value: Any) -> str:
    """``value`` (a bool, number, string or list of them) as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # inf and nan are TOML too
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise SweepError(f"cannot write {value!r} to TOML")


def best_toml(space: Space, best: Mapping, study: str, storage: str) -> str:
    """``best.toml``: a comment header, then the ``[train]`` and ``[model]`` tables of the
    best trial (fixed settings and its searched values), as ``lagrax train --config`` reads."""
    train, model = space.settings(best["params"])
    lines = [
        f"# lagrax sweep: the best trial ({best['number']}) of study {study!r} in {storage}",
        f"# {space.metric} = {best['value']:.6g}; model {space.model}; search space {space.path}",
        f"# lagrax train --model {space.model} --config best.toml --val-fraction {space.val_fraction} "
        "--data DATA --out RUN",
        "",
    ]
    for name, table in (("train", train), ("model", model)):
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def plot_history(rows: Sequence[dict], path: Path, metric: str) -> None:
    """``history.png``: each trial's value, the best so far, pruned trials marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    done = [(r["number"], r["value"]) for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    pruned = [(r["number"], r["value"]) for r in rows if r["state"] == "PRUNED" and r["value"] is not None]
    if done:
        ax.plot(*zip(*done), "o", color="C0", label="complete")
        best, steps = math.inf, []
        for n, v in sorted(done):
            best = min(best, v)
            steps.append((n, best))
        ax.step(*zip(*steps), where="post", color="C1", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned), "x", color="C3", label="pruned (last reported value)")
    failed = [r["number"] for r in rows if r["state"] == "FAIL"]
    for n in failed:
        ax.axvline(n, color="0.8", lw=0.8, ls=":")
    values = [v for _, v in done + pruned]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("trial" + (" (dotted: failed)" if failed else ""))
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("optimisation history")
    if done or pruned:
        ax.legend()
    fig.savefig(path, dpi=110)


def _best(study) -> dict | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    t = min(complete, key=lambda t: t.value)
    return {
        "number": t.number,
        "value": t.value,
        "params": dict(t.params),
        "run_dir": t.user_attrs.get("run_dir"),
    }


def write_outputs(study, space: Space, out_dir: Path, url: str, summary: dict) -> SweepResult:
    """``trials.csv``, ``best.toml`` (when a trial completed), ``history.png``, ``sweep.json``."""
    from lagrax.core.fileio import atomic_write_text

    rows = trial_rows(study, space)
    names = [p.name for p in space.params]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best, shown = _best(study), shown_url(url)
    write_trials_csv(rows, out_dir / "trials.csv", names)
    if best is not None:
        atomic_write_text(out_dir / "best.toml", best_toml(space, best, space.study, shown))
    plot_history(rows, out_dir / "history.png", space.metric)
    record = {"study": space.study, "storage": shown, "model": space.model, "metric": space.metric}
    record.update(summary, counts=counts, best=best)
    atomic_write_text(out_dir / "sweep.json", json.dumps(record, indent=2) + "\n")
    return SweepResult(
        out_dir, space.study, shown, space.metric, rows, best, counts, summary["wall_seconds"], names
    )


# --------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------


def check_sweep_dir(out_dir: Path, force: bool, resume: bool, own_study: bool) -> None:
    """Refuse an ``out_dir`` a sweep may not write to (nothing is changed): a non-empty one
    needs ``force`` or ``resume``; resuming needs a sweep there (its ``study.db`` when the
    study is there, ``own_study``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsLagraxError(f"{out_dir} exists and is not a directory")
    if resume and force:
        raise SweepError("give either --resume (continue the sweep) or --force (start it again), not both")
    if resume:
        marker = "study.db" if own_study else "sweep.json"
        if not (out_dir / marker).exists():
            raise SweepError(f"nothing to resume in {out_dir}: it has no {marker} (sweep without --resume)")
    elif out_dir.exists() and any(p.name != LOCK_NAME for p in out_dir.iterdir()) and not force:
        raise FileExistsLagraxError(
            f"sweep directory {out_dir} exists and is not empty; use --resume to continue its study "
            "or --force to replace its sweep files"
        )


def prepare_sweep_dir(out_dir: Path, force: bool, resume: bool = False, own_study: bool = True) -> None:
    """Make ``out_dir`` ready (see :func:`check_sweep_dir`): ``force`` removes the
    :data:`SWEEP_FILES` (and nothing else; not ``study.db`` unless it is the sweep's
    own study, ``own_study``); ``resume`` keeps everything."""
    check_sweep_dir(out_dir, force, resume, own_study)
    for name in () if resume else SWEEP_FILES:  # only what a sweep writes: never anything else
        p = out_dir / name
        if name.startswith("study.db") and not own_study:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def check_resume_study(space: Space, out_dir: Path, url: str, own_study: bool) -> None:
    """Refuse to resume the sweep in ``out_dir`` with another search space's study: its
    ``sweep.json`` names the study, and its own ``study.db`` must hold ``space.study``."""
    optuna = require_optuna()
    try:
        recorded = json.loads((out_dir / "sweep.json").read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        recorded = None
    names = optuna.study.get_all_study_names(open_storage(url)) if own_study else [recorded]
    if not names or names == [None]:  # stopped before its study was made: nothing to keep
        raise SweepError(
            f"nothing to resume in {out_dir}: it holds no study yet; start it again with --force"
        )
    if recorded not in (None, space.study) or (own_study and space.study not in names):
        found = repr(recorded) if recorded else ", ".join(map(repr, names))
        raise SweepError(
            f"cannot resume: the sweep in {out_dir} is study {found}, not {space.study!r} (the "
            f"search space {space.path}); resume with that sweep's search space file, or sweep "
            "into another --out"
        )


def _check_arguments(data: Path, trials: int, workers: int, seed: int) -> None:
    from lagrax.data.dataset import load_dataset

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"--seed must be a whole number >= 0, got {seed!r}")
    load_dataset(data)  # a missing or malformed dataset fails here, before any file is written


def run_sweep(
    space_path: str | Path,
    data: str | Path,
    out_dir: str | Path,
    trials: int,
    workers: int = 1,
    storage: str | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    resume: bool = False,
) -> SweepResult:
    """Search the space of ``space_path`` (a ``SPACE.toml``, see the module docstring)
    with ``trials`` training runs on ``data``, ``workers`` at a time, into ``out_dir``.

    The study is ``[sweep] study`` in ``storage`` (an SQLAlchemy URL; ``OUT/study.db``
    by default); an existing study of that name is continued until it holds ``trials``
    trials, so workers started elsewhere with the same storage share the work. One
    worker runs in this process; more are spawned processes, each with single-threaded
    XLA and the TPE sampler seeded from ``seed``, the worker and the trial. A trial whose
    run raises a :class:`LagraxError` (e.g. it diverged) fails and the sweep goes on.
    Every input is checked before anything is written; a non-empty ``out_dir`` needs
    ``force``, which removes only :data:`SWEEP_FILES`, or ``resume``, which continues the
    study there (up to ``trials`` in all, running trials of killed processes marked
    failed) and keeps every file. ``out_dir`` is locked while the sweep runs.
    """
    require_optuna()
    space = load_space(space_path)
    out_dir, data = Path(out_dir), Path(data)
    _check_arguments(data, trials, workers, seed)
    url = storage_url(out_dir, storage)
    shown_url(url)
    check_unlocked(out_dir)
    check_sweep_dir(out_dir, force, resume, own_study=not storage)
    if resume:
        check_resume_study(space, out_dir, url, own_study=not storage)
    if storage:
        open_study(space, url, seed, create=True)  # a storage that cannot be used fails first
    with DirectoryLock(out_dir, "lagrax sweep"):
        prepare_sweep_dir(out_dir, force, resume, own_study=not storage)
        return _sweep(space, data, out_dir, url, trials, workers, seed, progress, resume and not storage)


def _sweep(space, data, out_dir, url, trials, workers, seed, progress, own_resume) -> SweepResult:
    """The sweep of :func:`run_sweep` in the prepared and locked ``out_dir``."""
    import jax

    from lagrax.core.fileio import atomic_write_text

    study = open_study(space, url, seed, create=True)
    record = {"study": space.study, "storage": shown_url(url), "model": space.model, "space": space.path}
    atomic_write_text(out_dir / "sweep.json", json.dumps({**record, "state": "running"}, indent=2) + "\n")
    stale = fail_stale_trials(study, unowned=own_resume)
    if stale and progress:
        print(f"marked interrupted (their processes were killed): trials {stale}", flush=True)
    start = time.time()
    workers = min(workers, trials)
    job = WorkerJob(
        space,
        str(data.resolve()),
        str(out_dir.resolve()),
        url,
        trials,
        workers,
        seed,
        progress,
        start,
        bool(jax.config.jax_enable_x64),
    )
    if workers == 1:
        optimise(study, job)
    else:
        run_workers(job, workers)
    summary = {"space": str(space.path), "trials": trials, "workers": workers, "seed": seed}
    summary["wall_seconds"] = time.time() - start
    return write_outputs(study, space, out_dir, url, summary)
