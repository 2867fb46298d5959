"""``lagrax train``: train a model on a dataset and write its run directory.

The work is :func:`lagrax.training.run_training`; the held-out test split is scored by
:func:`lagrax.analysis.metrics.held_out_metrics`. Settings come from the model's recipe,
then a TOML file (``--config``), then the options given. ``--urdf FILE`` gives the models
with known kinematics (``rigid_body``, ``hybrid``) their kinematic tree (``-O urdf=FILE``);
their identification (the prefit) is summarised in one more line, with a ``warning:`` line
naming the parameters the data do not identify.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from lagrax.cli.command import as_command, given, option, request
from lagrax.cli.common import console, enable_x64, err_console
from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError
from lagrax.models import MODELS  # (already imported by the lagrax package)

_TRAIN, _MODEL = "train", "model"  # the groups of training settings and model options


@request
class TrainRequest:
    """What ``lagrax train`` was asked: model, data, split, settings, model options, run handling."""

    model: str = option(..., "--model", "-m", help=" | ".join(MODELS))
    data: Path = option(..., "--data", "-d", help="dataset file (.npz), ours or the DeLaN character file")
    out: Path = option(..., "--out", "-o", help="run directory to write")
    test_labels: str | None = option(
        None, help="held-out trajectory labels, comma-separated, e.g. e,q,v (ids 0,1,... without labels)"
    )
    test_fraction: float | None = option(None, help="or: fraction of trajectories held out for testing")
    val_fraction: float | None = option(
        None, help="fraction of training trajectories for validation/early stopping (default 0)"
    )
    config: Path | None = option(None, "--config", "-c", help="TOML file with train and model tables")
    epochs: int | None = option(None, group=_TRAIN, help="passes over the training set")
    batch_size: int | None = option(None, group=_TRAIN, help="minibatch size (0 = full batch)")
    steps_per_epoch: int | None = option(None, group=_TRAIN, help="optimiser steps per compiled epoch")
    lr: float | None = option(None, group=_TRAIN, help="peak learning rate")
    schedule: str | None = option(None, group=_TRAIN, help="cosine | onecycle | constant")
    weight_decay: float | None = option(None, group=_TRAIN, help="AdamW weight decay")
    loss: str | None = option(None, help="loss weights, e.g. inverse=1,forward=0.1 (others 0)")
    lbfgs_epochs: int | None = option(
        None, group=_TRAIN, help="full-batch L-BFGS epochs after the AdamW ones (0 = none)"
    )
    lbfgs_steps: int | None = option(None, group=_TRAIN, help="L-BFGS iterations per L-BFGS epoch")
    lbfgs_memory: int | None = option(None, group=_TRAIN, help="L-BFGS memory (stored update pairs)")
    patience: int | None = option(None, group=_TRAIN, help="validations without improvement before stopping")
    max_seconds: float | None = option(None, group=_TRAIN, help="stop after this much training time")
    dtype: str | None = option(None, group=_TRAIN, help="float32 | float64")
    seed: int | None = option(None, group=_TRAIN, help="random seed (model, shuffling, split)")
    width: int | None = option(None, group=_MODEL, help="hidden units per layer")
    depth: int | None = option(None, group=_MODEL, help="hidden layers")
    activation: str | None = option(None, group=_MODEL, help="tanh | softplus | ...")
    options: list[str] | None = option(None, "--option", "-O", help="model option NAME=VALUE (repeatable)")
    urdf: Path | None = option(
        None, help="kinematics of rigid_body / hybrid (-O urdf=FILE); default: the dataset's system's URDF"
    )
    mjcf: Path | None = option(None, help="MJCF kinematics of rigid_body / hybrid (not supported yet)")
    resume: bool = option(False, "--resume", help="continue the run in --out from its last checkpoint")
    force: bool = option(False, "--force", help="replace the run files in an existing --out")
    progress: bool = option(True, help="show a progress bar")
    devices: str | None = option(
        None, help="data-parallel over N devices or 'all' (multi-process: LAGRAX_COORDINATOR etc.)"
    )
    ensemble: int | None = option(
        None, min=1, help="train K members (seeds seed..seed+K-1) as one vmapped program"
    )


def run(request: TrainRequest) -> None:
    """Train a model on a dataset; write config, metrics, checkpoints and the model to --out.

    Settings not given come from the model's recipe for the data (lagrax.training.recipe).
    Arms (4 joints or more), delan and mlp: 150 AdamW epochs at lr 1e-2 with the inverse
    and forward losses; delan 128 wide with learned viscous + Coulomb friction. Smaller
    systems, delan, mlp and hnn_structured: 200 AdamW epochs at lr 1e-2, then 100 L-BFGS
    epochs. Otherwise the TrainConfig defaults.
    """
    enable_x64()
    from lagrax.training.parallel import is_writer, resolve_devices
    from lagrax.training.trainer import PrefitWarning

    n_devices = resolve_devices(request.devices)  # joins a multi-process run if LAGRAX_COORDINATOR is set
    overrides, model_options = settings(request)
    if not request.resume:
        train_config(overrides)  # a bad option fails before any file is touched
    labels = request.test_labels
    with warnings.catch_warnings():  # said once, as a `warning:` line of the summary
        warnings.simplefilter("ignore", PrefitWarning)
        path = _train(request, overrides, model_options, n_devices, labels)
    if is_writer():
        _print_summary(request.model, path)


def _train(request: TrainRequest, overrides: dict, model_options: dict, n_devices, labels) -> Path:
    from lagrax.analysis.metrics import held_out_metrics
    from lagrax.training import run_training

    return run_training(
        request.model,
        request.data,
        request.out,
        overrides,
        model_options,
        evaluate=held_out_metrics,
        force=request.force,
        resume=request.resume,
        progress=request.progress,
        devices=n_devices,
        ensemble=request.ensemble,
        test_labels=None if labels is None else [x.strip() for x in labels.split(",") if x.strip()],
        test_fraction=request.test_fraction,
        val_fraction=request.val_fraction,
    )


def train_config(overrides: dict):
    """The :class:`~lagrax.training.TrainConfig` of ``overrides`` (the one place the command
    builds one: a bad setting is an error naming it)."""
    from lagrax.training import TrainConfig

    return TrainConfig.from_dict(overrides)


def settings(request: TrainRequest) -> tuple[dict, dict]:
    """Training overrides and model options: the TOML file's, then the command line's."""
    from lagrax.training import parse_loss_weights, read_toml

    overrides, model_options = {}, {}
    if request.config is not None:
        overrides, model_options = read_toml(request.config)
        train_config(overrides)  # the file's own values are checked, even those overridden
    overrides.update(given(request, _TRAIN))
    if request.loss is not None:
        overrides.update(parse_loss_weights(request.loss))
    model_options.update(given(request, _MODEL))
    model_options.update(parse_params(request.options, "--option"))
    if request.mjcf is not None:
        raise LagraxError(
            f"--mjcf is not supported yet: the {request.model} model takes its kinematics from a URDF "
            "(give --urdf FILE)"
        )
    if request.urdf is not None:
        if not request.urdf.is_file():
            raise LagraxError(f"--urdf {request.urdf}: no such file")
        model_options["urdf"] = str(request.urdf)
    return overrides, model_options


def _print_summary(model: str, path: Path) -> None:
    """One line: epochs, steps, time, why it stopped, the final loss and the test error."""
    from lagrax.training.rundir import RunDir

    summary = RunDir(path).read_summary()
    test = summary.get("test", {})
    tail = f"; test torque MSE {test['torque_mse']:.3g}" if "torque_mse" in test else ""
    if "ensemble" in test:
        mean, std = test["member_mean"].get("torque_mse"), test["member_std"].get("torque_mse")
        tail += f" (the {test['ensemble']} members' mean prediction)"
        tail += f"; members {mean:.3g} ± {std:.2g}" if mean is not None else ""
    prefit = summary.get("prefit")
    if prefit is not None:
        _print_prefit(prefit, path)
    console.print(
        f"trained {model} for {summary['epochs']} epochs ({summary['steps']} steps, "
        f"{summary['train_seconds']:.1f} s, {summary['stopped_reason']}); final loss "
        f"{summary['final_loss']:.3g}{tail}; wrote {path}",
        soft_wrap=True,
    )


command = as_command(TrainRequest, run)


def _print_prefit(prefit: dict, path: Path) -> None:
    """The identification's line, and a ``warning:`` line naming what it could not identify."""
    from lagrax.training.rundir import IDENTIFICATION
    from lagrax.training.trainer import unidentifiable_message

    cond = prefit.get("condition_number")
    kept = prefit.get("kept")
    which = {True: "kept (refinement did not improve it)", False: "refined"}.get(kept, "refined")
    console.print(
        f"identified: rank {prefit.get('rank')} of {prefit.get('parameters')} parameters, condition "
        f"number {cond if cond is None else format(cond, '.3g')}, training torque nMSE "
        f"{prefit.get('torque_nmse', float('nan')):.3g}; {which}; wrote {path / IDENTIFICATION}",
        soft_wrap=True,
    )
    if prefit.get("unidentifiable"):
        err_console.print(f"warning: {unidentifiable_message(prefit)}", markup=False, soft_wrap=True)
