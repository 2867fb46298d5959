"""The report of a trained model: figures (PNG) and a one-page ``report.md``.

* :func:`plot_torque_decomposition`: ``tau``, ``M qdd``, ``c``, ``g`` per joint, true
  against predicted, on the test trajectories laid end to end (DeLaN, Lutter et al.
  2019, Fig. 2);
* :func:`plot_learning_curves`: training and validation losses per epoch from
  ``metrics.jsonl`` (log scale);
* :func:`plot_rollouts`: rollouts from the first state of a few test trajectories
  under the recorded torques, positions and energy against the recording;
* :func:`write_report`: all of the above, the metrics table and a model, data and
  configuration summary into a run directory.

:func:`report_run` evaluates a run directory (:func:`lagrax.analysis.metrics.evaluate_run`)
and writes its report. Plotting uses matplotlib's Agg backend (files only, no display).
This module computes no metric of its own (see :mod:`lagrax.analysis.metrics`), trains
nothing and does not run the end-to-end demo (see :mod:`lagrax.cli.demo`). What a model
can give is asked with :meth:`~lagrax.systems.System.provides`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lagrax.data.dataset import Dataset, has_motion  # noqa: E402
from lagrax.core.errors import FileExistsLagraxError, NotProvidedError  # noqa: E402
from lagrax.analysis.metrics import ENSEMBLE_KEYS, METRIC_KEYS, TrajectoryRollout  # noqa: E402
from lagrax.systems.batching import batched
from lagrax.core.fileio import atomic_write, atomic_write_text  # noqa: E402
from lagrax.training.rundir import REPORT_FILES, RunDir  # noqa: E402

TRUE_STYLE = dict(color="black", lw=1.6, label="true")
PRED_STYLE = dict(color="tab:red", lw=1.2, ls="--", label="predicted")

METRIC_DESCRIPTIONS = {
    "torque_mse": "inverse dynamics: sum over joints of squared torque error, mean over samples",
    "torque_nmse": "per-joint torque MSE / variance of the true torque, mean over joints",
    "inertial_mse": "same as torque_mse for the inertial torque M(q) qdd",
    "coriolis_mse": "same for the Coriolis/centrifugal torque c(q, qd)",
    "gravity_mse": "same for the gravity torque g(q)",
    "power_mse": "squared error of the power balance dE/dt + qd^T friction = qd^T tau",
    "qdd_mse": "forward dynamics: sum over joints of squared acceleration error, mean over samples",
    "valid_prediction_time": (
        "s, mean over test trajectories until the rollout's normalised position error exceeds 1e-2"
    ),
    "rollout_error": "geometric mean over time and trajectories of |z_hat - z| / (|z_hat| + |z|), z = q, qd",
    "energy_error": "|E(t_end) - E(0)| / scale of the true energy along the rollouts, mean over them",
    "train_seconds": "training wall time, s",
    "steps": "optimiser steps",
    "eval_samples_per_second": "batched inverse dynamics throughput on the test set",
}


def format_value(value: Any) -> str:
    """A metric value for a table: integers as such, floats to three significant digits."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v == 0 or not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if 1e-2 <= abs(v) < 1e4 else f"{v:.3e}"
    return str(value)


def _concatenated(dataset: Dataset) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """A running sample index over the trajectories and ``(start, stop, label)`` of each."""
    spans, start = [], 0
    for tid in dataset.trajectory_ids:
        n = int(np.sum(dataset.trajectory == tid))
        spans.append((start, start + n, dataset.label(tid)))
        start += n
    order = np.concatenate([np.flatnonzero(dataset.trajectory == tid) for tid in dataset.trajectory_ids])
    return order, spans


Row = tuple[str, "np.ndarray | None", "np.ndarray | None"]  # (title, true, predicted)


def _decomposition_rows(model, dataset: Dataset, order: np.ndarray) -> list[Row]:
    """``(title, true, predicted)`` for ``tau`` and each term that either side has."""
    q, qd, qdd = dataset.q[order], dataset.qd[order], dataset.qdd[order]
    rows: list[Row] = []
    if dataset.tau is not None:
        pred = None
        if model.provides("inverse_dynamics"):
            pred = np.asarray(batched(model).inverse_dynamics(q, qd, qdd))
        rows.append((r"$\tau$", dataset.tau[order], pred))
    terms = {}
    if model.provides("decomposition"):
        terms = {k: np.asarray(v) for k, v in batched(model).decomposition(q, qd, qdd).items()}
    for key, title in (
        ("inertial", r"$M(q)\,\ddot q$"),
        ("coriolis", r"$c(q, \dot q)$"),
        ("gravity", r"$g(q)$"),
    ):
        true = getattr(dataset, key)
        true = None if true is None else true[order]
        if true is not None or key in terms:
            rows.append((title, true, terms.get(key)))
    if not rows:
        raise NotProvidedError("nothing to plot: the dataset has no torques and the model no decomposition")
    return rows


def plot_torque_decomposition(
    model, dataset: Dataset, path: str | Path, max_samples: int | None = None
) -> Path:
    """True against predicted ``tau``, ``M qdd``, ``c``, ``g`` (rows) per joint (columns).

    Test trajectories are drawn end to end over a running sample index, separated by
    vertical lines and labelled. Rows the model cannot provide (a black box has no
    ``M``) or the dataset has no ground truth for are left out.
    """
    order, spans = _concatenated(dataset)
    if max_samples is not None:
        order = order[:max_samples]
        spans = [(a, min(b, max_samples), s) for a, b, s in spans if a < max_samples]
    rows = _decomposition_rows(model, dataset, order)
    n = dataset.dof
    names = dataset.info.joint_names if "system" in dataset.metadata else tuple(f"q{i}" for i in range(n))
    fig, axes = plt.subplots(
        len(rows), n, figsize=(4.2 * n + 1, 2.0 * len(rows) + 0.8), squeeze=False, sharex=True
    )
    x = np.arange(len(order))
    for r, (title, true, pred) in enumerate(rows):
        for j in range(n):
            _draw_true_and_predicted(axes[r, j], x, true, pred, j, spans)
            if j == 0:
                ax = axes[r, j]
                ax.set_ylabel(title + " [Nm]")
    for j in range(n):
        axes[0, j].set_title(f"joint {j} ({names[j]})", fontsize=10, pad=16)
        _label_spans(axes[0, j], spans)
        axes[-1, j].set_xlabel("sample (test trajectories end to end)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=9)
    fig.suptitle("Torque decomposition on the test trajectories", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def _draw_true_and_predicted(ax, x, true, pred, j: int, spans) -> None:
    """Joint ``j`` of one row: true (black) and predicted (red dashed), trajectory separators."""
    if true is not None:
        ax.plot(x, true[:, j], **TRUE_STYLE)
    if pred is not None:
        ax.plot(x, pred[:, j], **PRED_STYLE)
    for a, _, _ in spans[1:]:
        ax.axvline(a, color="0.6", lw=0.8)
    ax.grid(alpha=0.3)


def _label_spans(ax, spans) -> None:
    """Each trajectory's label above its span of the axis."""
    for a, b, label in spans:
        ax.text(
            (a + b) / 2,
            1.02,
            label,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
            color="0.3",
        )


LOSS_SKIP = {
    "epoch",
    "seconds",
    "lr",
    "learning_rate",
    "step",
    "steps",
    "skipped",
    "skipped_steps",
    "grad_norm",
    "optimizer",
    "singular",
}


def plot_learning_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Training (solid) and validation (dashed) losses against epoch, log scale.

    Left: the total loss; right: each loss term (keys ``<name>`` and ``val_<name>`` of the
    per-epoch records in ``metrics.jsonl``).
    """
    if not history:
        raise ValueError("no training history to plot")
    epochs = np.array([rec.get("epoch", i + 1) for i, rec in enumerate(history)], dtype=float)
    keys = [k for k in history[0] if k not in LOSS_SKIP and not k.startswith("val_")]
    keys += [k[4:] for rec in history for k in rec if k.startswith("val_") and k[4:] not in keys]
    keys = list(dict.fromkeys(k for k in keys if k not in LOSS_SKIP))

    def series(key):
        ep = [e for e, rec in zip(epochs, history) if _positive(rec.get(key))]
        return np.array(ep), np.array([rec[key] for rec in history if _positive(rec.get(key))], dtype=float)

    terms = [k for k in keys if k != "loss"]
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(11 if terms else 6, 3.8), squeeze=False)
    ax = axes[0, 0]
    for key, style in (
        ("loss", dict(color="tab:blue", label="train")),
        ("val_loss", dict(color="tab:orange", label="validation")),
    ):
        e, v = series(key)
        if v.size:
            ax.plot(e, v, marker="o" if v.size < 20 else None, ms=3, **style)
    lbfgs = [e for e, rec in zip(epochs, history) if rec.get("optimizer") == "lbfgs"]
    if lbfgs:  # where the full-batch L-BFGS refinement took over from AdamW
        ax.axvline(lbfgs[0] - 0.5, color="0.5", ls=":", lw=1)
        ax.text(
            lbfgs[0], 0.98, " L-BFGS", transform=ax.get_xaxis_transform(), va="top", fontsize=8, color="0.4"
        )
    ax.set(yscale="log", xlabel="epoch", ylabel="loss", title="total loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    if terms:
        ax = axes[0, 1]
        for i, key in enumerate(terms):
            color = f"C{i}"
            for k, ls, suffix in ((key, "-", "train"), (f"val_{key}", "--", "val")):
                e, v = series(k)
                if v.size:
                    ax.plot(e, v, color=color, ls=ls, label=f"{key} ({suffix})")
        ax.set(yscale="log", xlabel="epoch", title="loss terms")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _energies_along(model, rollouts: Sequence[TrajectoryRollout]) -> list[tuple] | None:
    """The model's energy along the recorded and the predicted states of each rollout, or
    None for a model without an energy. One batched call for all (one compilation)."""
    if not model.provides("energy"):
        return None
    q_all = np.concatenate([x for r in rollouts for x in (r.q, r.q_pred)])
    qd_all = np.concatenate([x for r in rollouts for x in (r.qd, r.qd_pred)])
    # a diverged rollout has NaN states: the checked edge refuses them, so they get NaN energy
    finite = np.isfinite(q_all).all(axis=-1) & np.isfinite(qd_all).all(axis=-1)
    e_all = np.full(len(q_all), np.nan)
    if finite.any():
        e_all[finite] = np.asarray(batched(model).energy(q_all[finite], qd_all[finite]))
    energies, start = [], 0
    for r in rollouts:
        T = len(r.t)
        energies.append((e_all[start : start + T], e_all[start + T : start + 2 * T]))
        start += 2 * T
    return energies


def plot_rollouts(
    model,
    rollouts: Sequence[TrajectoryRollout],
    path: str | Path,
    max_trajectories: int = 3,
    threshold: float = 1e-2,
) -> Path:
    """Recorded against predicted positions (one row per joint) and the model's energy
    along both (last row), for the first ``max_trajectories`` rollouts (columns).

    A dotted vertical line marks each rollout's valid prediction time.
    """
    rollouts = list(rollouts)[:max_trajectories]
    if not rollouts:
        raise ValueError("no rollouts to plot")
    n = rollouts[0].q.shape[1]
    energies = _energies_along(model, rollouts)
    has_energy = energies is not None
    energies = energies or [(None, None)] * len(rollouts)
    nrows = n + int(has_energy)
    fig, axes = plt.subplots(
        nrows,
        len(rollouts),
        figsize=(4.2 * len(rollouts) + 0.8, 2.1 * nrows + 0.8),
        squeeze=False,
        sharex="col",
    )
    for c, (r, (e_true, e_pred)) in enumerate(zip(rollouts, energies)):
        t = r.t - r.t[0]
        for j in range(n):
            ax = axes[j, c]
            ax.plot(t, r.q[:, j], **TRUE_STYLE)
            ax.plot(t, np.where(np.isfinite(r.q_pred[:, j]), r.q_pred[:, j], np.nan), **PRED_STYLE)
            if c == 0:
                ax.set_ylabel(f"$q_{j}$ [rad]")
        if has_energy:
            ax = axes[n, c]
            ax.plot(t, e_true, color="black", lw=1.6, label="model energy, recorded states")
            ax.plot(t, e_pred, color="tab:red", lw=1.2, ls="--", label="model energy, rollout")
            if c == 0:
                ax.set_ylabel("energy [J]")
        label = r.label if r.label is not None else str(r.trajectory)
        axes[0, c].set_title(f"{label}: valid for {r.valid_time:.2f} s", fontsize=10)
        for row in range(nrows):
            axes[row, c].axvline(r.valid_time, color="0.5", ls=":", lw=1)
            axes[row, c].grid(alpha=0.3)
        axes[-1, c].set_xlabel("time [s]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if has_energy:
        h2, l2 = axes[n, 0].get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=8)
    fig.suptitle(
        f"Rollouts under the recorded torques (RK4, dotted: error > {threshold:g})",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110))
    finally:
        plt.close(fig)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """The metrics as a markdown table, in the contract's order, with a short meaning each;
    an ensemble's (:data:`~lagrax.analysis.metrics.ENSEMBLE_KEYS`) follow as :func:`members_table`."""
    lines = ["| metric | value | meaning |", "|---|---|---|"]
    keys = [k for k in METRIC_KEYS if k in metrics] + [k for k in metrics if k not in METRIC_KEYS]
    for key in (k for k in keys if k not in ENSEMBLE_KEYS):
        lines.append(f"| {key} | {format_value(metrics[key])} | {METRIC_DESCRIPTIONS.get(key, '')} |")
    table = "\n".join(lines)
    return table if "members" not in metrics else f"{table}\n\n{members_table(metrics)}"


def members_table(metrics: Mapping[str, Any]) -> str:
    """An ensemble's metrics (values above are of the members' mean prediction): mean ± std
    over the members, then each member's value."""
    k = metrics["ensemble"]
    lines = [
        f"Each of the {k} members (the table above is their mean prediction's):",
        "",
        "| metric | mean ± std | " + " | ".join(f"#{i}" for i in range(k)) + " |",
        "|---|---|" + "---|" * k,
    ]
    for key, mean in metrics["member_mean"].items():
        each = " | ".join(format_value(m.get(key)) for m in metrics["members"])
        lines.append(
            f"| {key} | {format_value(mean)} ± {format_value(metrics['member_std'][key])} | {each} |"
        )
    return "\n".join(lines)


def _parameter_count(model) -> int:
    import equinox as eqx
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))))


def _figures(run_dir: RunDir, model, test: Dataset, rollouts, history) -> tuple[list, list]:
    """Draw the figures the pieces allow: ``(caption, file)`` of each, and notes on those skipped."""
    figures: list[tuple[str, str]] = []
    notes: list[str] = []
    try:
        plot_torque_decomposition(model, test, run_dir.figure_path("torque_decomposition.png"))
        figures.append(
            (
                "Torque decomposition on the test trajectories (true: black, predicted: red dashed)",
                "torque_decomposition.png",
            )
        )
    except NotProvidedError as e:
        notes.append(f"No torque decomposition figure: {e}")
    if history:
        plot_learning_curves(history, run_dir.figure_path("learning_curves.png"))
        figures.append(("Learning curves (log scale)", "learning_curves.png"))
    else:
        notes.append("No learning curves: the run has no metrics.jsonl.")
    if rollouts:
        plot_rollouts(model, rollouts, run_dir.figure_path("rollouts.png"))
        figures.append(("Rollouts from the first state of test trajectories", "rollouts.png"))
    elif not has_motion(test):
        notes.append("No rollouts: the data are independent states (kind 'states'), not motion in time.")
    return figures, notes


def _model_lines(model) -> tuple[str, list[str]]:
    """The model's kind and its section of the report."""
    kind = model.kind
    # without the MLP's data normalisation (long, and not a choice of the user)
    hyper = {k: v for k, v in model.settings().items() if k != "normalization"}
    info = model.info
    lines = [f"- kind: `{kind}` ({type(model).__name__}), {_parameter_count(model):,} parameters"]
    if hyper:
        lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in hyper.items()))
    lines.append(
        f"- system: {info.name}, {info.dof} joints ({', '.join(info.joint_names)}), "
        f"types {', '.join(sorted(set(info.joint_types)))}, actuated: "
        + (", ".join(j for j, on in zip(info.joint_names, info.actuated) if on) or "none")
    )
    return kind, lines


def _data_lines(test: Dataset, data_path, split: Mapping[str, Any] | None) -> list[str]:
    """The data section: file, test set, sample period, training and validation trajectories."""
    lines = [] if data_path is None else [f"- file: `{data_path}`"]
    labels = [test.label(i) for i in test.trajectory_ids]
    lines.append(
        f"- test set: {len(test)} samples in {test.n_trajectories} trajectories ({', '.join(labels)})"
    )
    if test.dt is not None:
        lines.append(f"- sample period: {test.dt:g} s")
    for part in ("train", "validation"):
        entry = (split or {}).get(part)
        labels_ = entry.get("labels", entry.get("ids")) if isinstance(entry, dict) else entry
        if labels_:
            lines.append(f"- {part} trajectories: {len(labels_)} ({', '.join(map(str, labels_))})")
    return lines


CONFIG_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "inverse",
    "forward",
    "power",
    "rollout",
    "lbfgs_epochs",
    "lbfgs_steps",
    "lbfgs_memory",
    "seed",
    "dtype",
    "max_seconds",
)


def _config_lines(config: Mapping[str, Any]) -> list[str]:
    """The training configuration section: the main settings and how training ended."""
    flat = config.get("config", config)
    shown = [f"{k}={flat[k]}" for k in CONFIG_KEYS if k in flat]
    lines = ["- " + (", ".join(shown) if shown else json.dumps(flat)[:400])]
    lines += [f"- {key}: {config[key]}" for key in ("stopped_reason", "best_epoch") if key in config]
    return lines


def write_report(
    run_dir: str | Path,
    model,
    test: Dataset,
    metrics: Mapping[str, Any],
    *,
    rollouts: Sequence[TrajectoryRollout] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    config: Mapping[str, Any] | None = None,
    data_path: str | Path | None = None,
    split: Mapping[str, Any] | None = None,
) -> Path:
    """Write the figures and ``report.md`` into ``run_dir``; returns the report's path.

    ``rollouts`` come from :func:`lagrax.analysis.metrics.valid_prediction_time`; ``history``
    is the per-epoch records of ``metrics.jsonl``; ``config`` the run's ``config.json``.
    Missing pieces are skipped (and said so in the report), never faked.
    """
    run_dir = RunDir(run_dir)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    figures, notes = _figures(run_dir, model, test, rollouts, history)
    kind, model_lines = _model_lines(model)
    lines = [f"# lagrax report: {kind} on {model.info.name}", ""]
    lines += ["## Metrics (test set)", "", metrics_table(metrics), ""]
    lines += ["## Model", ""] + model_lines
    lines += ["", "## Data", ""] + _data_lines(test, data_path, split)
    if config:
        lines += ["", "## Training configuration", ""] + _config_lines(config)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Figures", ""]
    for caption, file in figures:
        lines += [f"### {caption}", "", f"![{caption}]({file})", ""]
    return atomic_write_text(run_dir.report_path, "\n".join(lines) + "\n")


def check_report_writable(run_dir: str | Path, force: bool = False) -> None:
    """Refuse to replace an earlier report (a user may have edited it) unless ``force``."""
    existing = [name for name in REPORT_FILES if (RunDir(run_dir).path / name).exists()]
    if existing and not force:
        raise FileExistsLagraxError(
            f"{run_dir} already has a report ({', '.join(existing)}); use --force to replace it"
        )


def report_run(
    run_dir: str | Path, data: str | Path | None = None, *, force: bool = False
) -> tuple[Path, dict]:
    """Evaluate a run directory's model on its test trajectories and write the report.

    ``data`` defaults to the dataset recorded in the run; without a test split the
    whole dataset is used (and the report says so). Writes :data:`REPORT_FILES`
    (``report.md``, its figures and ``report.json``, the metrics it shows), refusing to
    replace an earlier report unless ``force``; the training-time ``metrics.json`` is
    left as it is. Returns ``report.md``'s path and the metrics.
    """
    from lagrax.analysis.metrics import evaluate_run

    check_report_writable(run_dir, force)
    split = "test"
    part = RunDir(run_dir).read_split().get("test", {})
    if not (part.get("ids") if isinstance(part, dict) else part):
        split = "all"
    metrics, run, ds, prediction = evaluate_run(run_dir, data, split, write=False)
    config = dict(run.config.get("train", {}))
    config.update({k: run.summary[k] for k in ("stopped_reason", "best_epoch") if k in run.summary})
    path = write_report(
        run.path,
        run.model,
        ds,
        metrics,
        rollouts=None if prediction is None else prediction.rollouts,
        history=run.history,
        config=config,
        data_path=data or run.config.get("data"),
        split=run.split,
    )
    if split != "test":
        note = "\nThe run has no test split: the metrics are on the whole dataset (training data).\n"
        atomic_write_text(path, path.read_text() + note)
    RunDir(run.path).write_report_metrics(metrics)
    return path, metrics


__all__ = [
    "REPORT_FILES",
    "check_report_writable",
    "metrics_table",
    "report_run",
    "format_value",
    "METRIC_DESCRIPTIONS",
    "plot_learning_curves",
    "plot_rollouts",
    "plot_torque_decomposition",
    "write_report",
]
