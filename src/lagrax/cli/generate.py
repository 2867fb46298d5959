"""``lagrax generate``: a ground-truth system's motion, or its states, as a dataset file.

The work is :func:`lagrax.data.generators.generate` (one ``.npz`` file) and, with
``--shard-size``, :func:`lagrax.data.shards.generate_shards` (a directory of shards).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from lagrax.cli.command import as_command, option, request
from lagrax.cli.common import console, enable_x64
from lagrax.cli.params import parse_params
from lagrax.core.errors import LagraxError

_RANGE_HELP = "states, passive: {} range, once for all joints or once per joint"


@request
class GenerateRequest:
    """What ``lagrax generate`` was asked: the system, the kind of data, sampling, noise, output."""

    system: str = option(..., "--system", "-s", metavar="NAME", help="registry name, see `lagrax systems`")
    out: Path = option(..., "--out", "-o", help="output dataset file (.npz)")
    kind: str = option("excitation", help="passive | excitation | characters | states")
    trajectories: int | None = option(None, help="number of trajectories (default per kind)")
    duration: float | None = option(None, help="seconds per trajectory (default per kind)")
    dt: float | None = option(None, help="sample period in seconds (default per kind)")
    rate: float | None = option(None, metavar="HZ", help="or: sample rate in Hz (e.g. 500, 1000)")
    noise: float = option(0.0, help="std of Gaussian sensor noise added to q and tau")
    q_noise: float | None = option(None, help="std of the noise on q (default: --noise)")
    tau_noise: float | None = option(None, help="std of the noise on tau (default: --noise)")
    measured: str = option(
        "all",
        metavar="SIGNALS",
        help="what the robot logs: all, or e.g. q,tau (qd, qdd then estimated from the noisy q)",
    )
    savgol_window: int = option(11, help="samples of the Savitzky-Golay filter estimating qd, qdd")
    seed: int = option(0, help="random seed")
    letters: str | None = option(None, help="characters kind: which letters to draw")
    samples: int | None = option(None, help="states kind: how many states (default 10000)")
    q_range: list[str] | None = option(None, metavar="LO,HI", help=_RANGE_HELP.format("position"))
    qd_range: list[str] | None = option(None, metavar="LO,HI", help=_RANGE_HELP.format("velocity"))
    qdd_range: list[str] | None = option(None, metavar="LO,HI", help="--shard-size: qdd range")
    shard_size: int | None = option(None, help="states: write --out as a directory of N-sample shards")
    dtype: str | None = option(None, help="--shard-size: stored float type (default float32)")
    params: list[str] | None = option(
        None,
        "--param",
        "-p",
        help="system parameter NAME=VALUE (repeatable): numbers, true/false, or per-joint lists 0.1,0.2,...",
    )
    force: bool = option(False, "--force", help="overwrite an existing output file")


# the options of one kind only: option -> the kinds it belongs to
_KIND_OPTIONS = {
    "letters": ("characters",),
    "samples": ("states",),
    "q_range": ("states", "passive"),
    "qd_range": ("states", "passive"),
}
# what --shard-size cannot honour (each must keep its default)
_NOT_SHARDED = (
    "trajectories", "duration", "dt", "rate", "noise", "q_noise", "tau_noise", "measured", "savgol_window",
    "letters",
)  # fmt: skip
_SHARDED_ONLY = ("qdd_range", "dtype")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run(request: GenerateRequest) -> None:
    """Generate --system's motion (or, --kind states, its states) as one .npz file (--shard-size: shards)."""
    if request.seed < 0:  # numpy's SeedSequence takes non-negative integers only
        raise LagraxError(f"--seed must be a non-negative integer, got {request.seed}")
    if request.shard_size is not None:
        _generate_shards(request)
        return
    for name in _SHARDED_ONLY:
        if getattr(request, name) is not None:
            raise LagraxError(f"{_flag(name)} is an option of --shard-size")
    if request.dt is not None and request.rate is not None:
        raise LagraxError(
            "--dt and --rate both set the sample rate: give one "
            f"(got --dt {request.dt}, --rate {request.rate})"
        )
    from lagrax.data.dataset import check_writable

    check_writable(request.out, request.force)  # fail before spending minutes on generation
    enable_x64()
    from lagrax.systems import system

    truth = system(request.system, **parse_params(request.params))
    start = time.perf_counter()
    ds = _generate_file(request, truth, _kind_options(request))
    console.print(
        f"wrote {request.out}: {len(ds)} samples, {ds.n_trajectories} trajectories, "
        f"{ds.dof} joints, {request.kind}, in {time.perf_counter() - start:.1f} s",
        soft_wrap=True,
    )


def _generate_file(request: GenerateRequest, truth, kind_options: dict):
    """The dataset of ``truth`` (a System), written to ``request.out``."""
    from lagrax.data.dataset import save_dataset
    from lagrax.data.generators import generate

    name, kind = request.system, request.kind
    with console.status(f"generating {kind} data for {name} ...") as status:
        ds = generate(
            truth,
            kind=kind,
            trajectories=request.trajectories,
            duration=request.duration,
            dt=request.dt,
            noise=request.noise,
            seed=request.seed,
            progress=lambda msg: status.update(f"{name} ({kind}): {msg} ..."),
            rate=request.rate,
            q_noise=request.q_noise,
            tau_noise=request.tau_noise,
            measured=request.measured,
            savgol_window=request.savgol_window,
            **kind_options,
        )
        save_dataset(ds, request.out, force=request.force)
    return ds


def _generate_shards(request: GenerateRequest) -> None:
    """``--shard-size``: independent states as a shard directory."""
    if request.kind != "states":
        raise LagraxError(
            f"--shard-size writes independent states: use --kind states, not --kind {request.kind}"
        )
    defaults = {f.name: f.default for f in dataclasses.fields(request)}
    for name in _NOT_SHARDED:
        if getattr(request, name) != defaults[name]:
            raise LagraxError(f"{_flag(name)} is not supported with --shard-size")
    from lagrax.data.dataset import check_writable

    check_writable(request.out, request.force)  # fail before spending minutes on generation
    enable_x64()
    from lagrax.data.shards import generate_shards
    from lagrax.systems import system

    ranges = {name: _ranges(request, name) for name in ("q_range", "qd_range", "qdd_range")}
    truth = system(request.system, **parse_params(request.params))
    start = time.perf_counter()
    data = generate_shards(
        truth,
        request.out,
        request.samples or 10_000,
        request.shard_size,
        request.seed,
        **ranges,
        dtype=request.dtype or "float32",
        force=request.force,
    )
    console.print(
        f"wrote {request.out}/: {len(data)} samples in {data.n_shards} shards, {data.dof} joints, "
        f"states, in {time.perf_counter() - start:.1f} s",
        soft_wrap=True,
    )


def _ranges(request: GenerateRequest, name: str):
    """Option ``name``'s ``(lo, hi)``: one pair for all joints, a list of pairs, or None."""
    pairs = _pairs(getattr(request, name), _flag(name))
    return pairs[0] if pairs is not None and len(pairs) == 1 else pairs


def _pairs(values: list[str] | None, option: str) -> list[tuple[float, float]] | None:
    """``["lo,hi", ...]`` -> ``[(lo, hi), ...]``; a LagraxError naming ``option`` otherwise."""
    if not values:
        return None
    pairs = []
    for text in values:
        parts = text.replace(" ", "").split(",")
        try:
            lo, hi = (float(x) for x in parts)
        except ValueError:
            raise LagraxError(f"{option} takes LO,HI (two numbers), got {text!r}") from None
        pairs.append((lo, hi))
    return pairs


def _kind_options(request: GenerateRequest) -> dict:
    """The options of ``--kind`` that were given; an error for options of another kind."""
    given = {name: getattr(request, name) for name in _KIND_OPTIONS}
    given.update({name: _ranges(request, name) for name in ("q_range", "qd_range")})
    options = {name: value for name, value in given.items() if value is not None}
    for name in options:
        if request.kind not in _KIND_OPTIONS[name]:
            raise LagraxError(
                f"{_flag(name)} is an option of --kind {' or '.join(_KIND_OPTIONS[name])}, "
                f"not of --kind {request.kind}"
            )
    return options


command = as_command(GenerateRequest, run)
