"""Plotting of datasets (matplotlib, Agg backend: works without a display).

:func:`plot_dataset` draws ``q``, ``qd`` and ``tau`` of every joint with the
trajectories laid end to end on one time axis, alternate trajectories shaded and
labelled, which stays legible for dozens of trajectories; for a two-link arm it adds
the end-effector paths (the drawn characters). It never overwrites a file unless
asked. It does not plot training curves or evaluation results.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lagrax.data.dataset import Dataset, check_writable, has_motion  # noqa: E402
from lagrax.core.errors import LagraxError  # noqa: E402
from lagrax.core.fileio import atomic_write  # noqa: E402

MAX_LABELLED = 40  # above this many trajectories, bands are shaded but not labelled


def end_effector_paths(ds: Dataset, system=None) -> np.ndarray | None:
    """End-effector positions ``(N, 2)`` from ``system.forward_kinematics`` (default: the
    dataset's registered system, rebuilt from its metadata), or ``None`` if it has none."""
    from lagrax.core.errors import LagraxError
    from lagrax.systems import REGISTRY
    from lagrax.systems import system as make_system

    try:
        s = system
        if s is None:
            info = ds.info
            if info.name not in REGISTRY:
                return None
            s = make_system(info.name, **dict(info.params))
        if not s.provides("forward_kinematics"):
            return None
        xy = np.asarray(s.forward_kinematics(ds.q))
    except (LagraxError, ImportError, AttributeError, TypeError, ValueError):
        return None
    return xy if xy.shape == (len(ds), 2) else None


FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "webp", "tif", "tiff")


def check_figure_path(path, force: bool = False) -> str:
    """The figure format of ``path``'s suffix (png without one); a LagraxError for an unknown
    format, an existing file without ``force``, or a directory."""
    path = Path(path)
    if path.is_dir():
        raise LagraxError(f"{path} is a directory: give a figure file name such as {path / 'figure.png'}")
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in FIGURE_FORMATS:
        raise LagraxError(f"cannot write a figure as .{fmt} ({path}): use one of {', '.join(FIGURE_FORMATS)}")
    check_writable(path, force)
    return fmt


def _save(fig, path: Path, force: bool) -> None:
    """Write atomically (temp file + rename) in the format given by the suffix."""
    try:
        fmt = check_figure_path(path, force)
    except LagraxError:
        plt.close(fig)
        raise
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))
    finally:
        plt.close(fig)


def _time_axis(ds: Dataset):
    """A global time axis on which each trajectory starts where the previous one ended:
    sample order, time of each sample, ``(start, stop, label)`` spans, total length, and
    the positions in that order where a new trajectory begins (to break lines there)."""
    ids = ds.trajectory_ids
    order = np.concatenate([np.flatnonzero(ds.trajectory == i) for i in ids])
    spans, offset = [], 0.0
    moving = has_motion(ds)
    t_global = np.empty(len(ds))
    for i in ids:
        m = np.flatnonzero(ds.trajectory == i)
        # independent states have no time: each is one step of a running sample index
        t = ds.t[m] - ds.t[m].min() if moving else np.arange(len(m), dtype=float)
        t_global[m] = offset + t
        step = (ds.dt or (float(np.median(np.diff(t))) if len(t) > 1 else 1.0)) if moving else 1.0
        spans.append((offset, offset + t.max() + step, ds.label(i)))
        offset += t.max() + step
    gaps = np.flatnonzero(np.diff(ds.trajectory[order]) != 0) + 1
    return order, t_global, spans, offset, gaps


def _draw_paths(ax, ds: Dataset, xy: np.ndarray) -> None:
    """End-effector paths, each about its own mean in a cell of a grid, so letters do not overlap."""
    ids = ds.trajectory_ids
    cols = int(np.ceil(np.sqrt(len(ids))))
    cell = 1.2 * max(np.ptp(xy[ds.trajectory == i], axis=0).max() for i in ids)
    for k, i in enumerate(ids):
        p = xy[ds.trajectory == i]
        p = p - p.mean(axis=0) + cell * np.array([k % cols, -(k // cols)])
        ax.plot(p[:, 0], p[:, 1], lw=1.0, color=f"C{k % 10}")
        if len(ids) <= MAX_LABELLED:
            ax.text(*(cell * np.array([k % cols - 0.45, -(k // cols) + 0.3])), ds.label(i), fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlabel("x, about each path's mean [m]", fontsize=8)
    ax.set_ylabel("y [m]", fontsize=8)
    ax.set_title("end-effector paths", fontsize=9)
    ax.tick_params(labelsize=7)


def plot_dataset(ds: Dataset, path, force: bool = False, title: str | None = None, system=None) -> Path:
    """Figure of ``q, qd, tau`` (``qdd`` if there is no ``tau``) per joint over time.

    Trajectories are concatenated in file order on a common time axis; each one's
    span is marked by alternating shading and, up to ``MAX_LABELLED`` trajectories,
    its label. A two-link arm's dataset gets an extra panel with the end-effector paths,
    each shifted to its own cell of a grid like written text (``system`` overrides the
    system rebuilt from the metadata for forward kinematics).
    Raises :class:`~lagrax.core.errors.FileExistsLagraxError` if ``path`` exists and not ``force``.
    """
    path = Path(path)
    check_writable(path, force)  # before the (possibly slow) drawing
    n = ds.dof
    # unforced independent states: their accelerations say more than all-zero torques
    states = not has_motion(ds)
    show_tau = ds.tau is not None and not (states and not np.any(ds.tau))
    third, third_name = (ds.tau, "tau") if show_tau else (ds.qdd, "qdd")
    columns = [(ds.q, "q"), (ds.qd, "qd"), (third, third_name)]
    xy = end_effector_paths(ds, system)

    order, t_global, spans, offset, gaps = _time_axis(ds)
    # independent states (kind "states") are points, not curves, over a sample index
    style, x_label = (
        (dict(ls="none", marker=".", ms=1.5), "sample, groups of independent states end to end")
        if states
        else (dict(lw=0.7), "time, trajectories end to end [s]")
    )
    ncols = 4 if xy is not None else 3
    fig = plt.figure(figsize=(4.2 * ncols + 1, 1.7 * n + 1.6), layout="constrained")
    grid = fig.add_gridspec(n, ncols)
    names = ds.info.joint_names if "system" in ds.metadata else tuple(f"q{j}" for j in range(n))
    for c, (values, label) in enumerate(columns):
        for j in range(n):
            ax = fig.add_subplot(grid[j, c])
            y = np.insert(values[order, j].astype(float), gaps, np.nan)
            x = np.insert(t_global[order], gaps, np.nan)
            ax.plot(x, y, color="C0", **style)
            for k, (a, b, lab) in enumerate(spans):
                if k % 2:
                    ax.axvspan(a, b, color="0.92", lw=0, zorder=0)
                if j == 0 and len(spans) <= MAX_LABELLED:
                    ax.text(
                        (a + b) / 2,
                        1.02,
                        lab,
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
            ax.set_xlim(0, offset)
            ax.set_ylabel(f"{label} [{names[j]}]", fontsize=8)
            ax.tick_params(labelsize=7)
            if j == n - 1:
                ax.set_xlabel(x_label, fontsize=8)
    if xy is not None:
        _draw_paths(fig.add_subplot(grid[:, 3]), ds, xy)
    meta = ds.metadata
    fig.suptitle(
        title
        or f"{meta.get('system', {}).get('name', 'dataset')}: {meta.get('kind', '')} "
        f"({ds.n_trajectories} trajectories, {len(ds)} samples)",
        fontsize=10,
    )
    _save(fig, path, force)
    return path


# --------------------------------------------------------------------------------------
# Rollouts: energy and positions over time, and an animated pendulum
# --------------------------------------------------------------------------------------

# line styles of the predictions: the truth solid black, models in colour
_STYLES = {"truth": dict(color="black", lw=1.6), "recorded": dict(color="black", lw=1.6)}


def plot_energy(predictions, path, force: bool = False, title: str | None = None) -> Path:
    """The true energy along each prediction over time, relative to its start: the median
    over initial states, with the 10-90 % band shaded (the LNN paper's Figure 4); each
    ``Prediction`` needs ``energy``. The vertical range fits the bands, so one diverged
    rollout cannot flatten the rest (it shows as a line leaving the plot)."""
    check_figure_path(path, force)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    reach = 0.0
    for p in predictions:
        if p.energy is None:
            continue
        drift = p.energy - p.energy[:, :1]
        style = _STYLES.get(p.name, {})
        with warnings.catch_warnings():  # times after every rollout stopped are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mid, lo, hi = np.nanpercentile(np.where(np.isfinite(drift), drift, np.nan), [50, 10, 90], axis=0)
        ax.plot(p.t, mid, label=p.name, **style)
        ax.fill_between(p.t, lo, hi, alpha=0.15, color=style.get("color"))
        band = np.abs(np.concatenate([lo, hi]))
        reach = max(reach, float(np.nanmax(band)) if np.any(np.isfinite(band)) else 0.0)
    if reach > 0:
        ax.set_ylim(-1.2 * reach, 1.2 * reach)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("E(t) - E(0) (true energy)")
    ax.set_title(title or "energy along the rollouts (median, 10-90 % of initial states)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, Path(path), force)
    return Path(path)


def plot_positions(predictions, path, force: bool = False, which: int = 0) -> Path:
    """Joint positions over time of initial state ``which``, one panel per joint."""
    check_figure_path(path, force)
    n = predictions[0].q.shape[-1]
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.9 * n + 0.6), sharex=True, squeeze=False)
    for j, ax in enumerate(axes[:, 0]):
        for p in predictions:
            style = _STYLES.get(p.name, {})
            ax.plot(p.t, p.q[which, :, j], label=p.name, **({"ls": "--"} if not style else style))
        ax.set_ylabel(f"q{j + 1}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("time [s]")
    fig.suptitle(f"positions, initial state {which}")
    fig.tight_layout()
    _save(fig, Path(path), force)
    return Path(path)


def plot_tracking(t, reference, series: dict, joint_names, path, force: bool = False) -> Path:
    """Desired (black) and actual joint positions over time, one panel per joint, for
    every controller in ``series`` (``{name: q (T, n)}``)."""
    check_figure_path(path, force)
    n = reference.shape[-1]
    cols = 2 if n > 3 else 1
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 1.8 * rows + 0.8), sharex=True, squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= n:
            ax.set_visible(False)
            continue
        ax.plot(t, reference[:, j], color="black", lw=2.0, label="desired")
        for name, q in series.items():
            ax.plot(t, q[:, j], lw=1.0, ls="--", label=name)
        ax.set_ylabel(f"{joint_names[j]} [rad]", fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time [s]")
    fig.suptitle("tracking: desired and actual joint positions")
    fig.tight_layout()
    _save(fig, Path(path), force)
    return Path(path)


def plot_tracking_errors(t, reference, series: dict, path, force: bool = False) -> Path:
    """The norm of the joint-position error over time, per controller (log scale)."""
    check_figure_path(path, force)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, q in series.items():
        err = np.linalg.norm(q - reference, axis=-1)
        ax.semilogy(t[1:], np.maximum(err[1:], 1e-12), lw=1.0, label=name)  # t = 0 starts on the reference
    ax.set_xlabel("time [s]")
    ax.set_ylabel("|q_d - q| [rad]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("tracking error")
    fig.tight_layout()
    _save(fig, Path(path), force)
    return Path(path)


def pendulum_lengths(info) -> list[float] | None:
    """Link lengths of a pendulum-like system (``pendulum``, ``double_pendulum``,
    ``chain_pendulum``: absolute angles from the downward vertical), else None."""
    params = dict(info.params)
    if info.name == "pendulum":
        return [float(params.get("l", 1.0))]
    if info.name == "double_pendulum":
        return [float(params.get("l1", 1.0)), float(params.get("l2", 1.0))]
    if info.name == "chain_pendulum":
        lengths = params.get("lengths", 1.0)
        return [float(x) for x in np.broadcast_to(np.asarray(lengths, float), (info.dof,))]
    return None


def _bob_positions(q: np.ndarray, lengths) -> tuple[np.ndarray, np.ndarray]:
    """``x, y (T, n + 1)`` of the pivot and the bobs for angles ``q (T, n)``."""
    lengths = np.asarray(lengths)
    x = np.cumsum(lengths * np.sin(q), axis=-1)
    y = np.cumsum(-lengths * np.cos(q), axis=-1)
    zero = np.zeros((q.shape[0], 1))
    return np.concatenate([zero, x], -1), np.concatenate([zero, y], -1)


def animate_pendulum(predictions, lengths, path, force: bool = False, which: int = 0, fps: int = 20) -> Path:
    """An animated GIF (matplotlib's animation writer with pillow) of a pendulum-like
    system: each prediction's links for initial state ``which``, the truth in black."""
    from matplotlib import animation

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise LagraxError(f"the animation must be a .gif file, got {path}")
    check_writable(path, force)
    reach = float(np.sum(lengths)) * 1.1
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.set(xlim=(-reach, reach), ylim=(-reach, reach), aspect="equal", xticks=[], yticks=[])
    lines = []
    for p in predictions:
        style = _STYLES.get(p.name, {})
        (line,) = ax.plot([], [], "o-", label=p.name, **style)
        lines.append((line, *_bob_positions(np.nan_to_num(p.q[which]), lengths)))
    ax.legend(loc="upper right", fontsize=8)
    stamp = ax.text(0.02, 0.95, "", transform=ax.transAxes)
    t = predictions[0].t

    def draw(k):
        for line, x, y in lines:
            line.set_data(x[k], y[k])
        stamp.set_text(f"t = {t[k]:.1f} s")
        return [line for line, *_ in lines] + [stamp]

    anim = animation.FuncAnimation(fig, draw, frames=len(t), blit=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    try:
        anim.save(tmp, writer=animation.PillowWriter(fps=fps))
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
