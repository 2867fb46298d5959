"""Bad input through every command and the Python API, and kills at any moment: tables of outcomes.

    python -m benchmarks.bad_inputs --work DIR --md docs/results/bad_inputs.md   # ~20 min, 2 cores
    python -m benchmarks.bad_inputs --kills 20 --no-cases --work DIR2             # the random kills
    python -m benchmarks.bad_inputs --quick --work DIR                            # the smoke test's

Each case runs in-process through ``lagrax.cli.app.main`` (or a library call; settings that
could take many gigabytes or hours run in a child process limited to 8 GiB) and is classified:

* ``clean``: exit code 2 and exactly one line ``error: ...`` (a named LagraxError in Python);
* ``warned``: exit 0 with a ``warning:`` line (e.g. evaluating a run on another system's
  data warns and writes its own file under ``evaluations/``);
* ``traceback``: an exception escaped;
* ``wrong``: another exit code, a crash, a time-out, or a multi-line or unlabelled message;
* ``accepted``: exit 0 where an error was expected, or files of a run changed (silent garbage).

The cases: the original commands' datasets, options, configs, overwrites and resumes;
every command (``import``, ``control``, ``rollout``, ``sweep``, ``generate --shard-size``,
``train --ensemble``, ``train --devices``) with bad values (negative, zero, NaN, inf, huge,
a word, a wrong length); damaged files (truncated, random bytes, a flipped byte, a text
file, empty, missing) as logs, datasets, search spaces, run directories and shard
directories; files of the wrong kind (another system's model, data in another joint order);
and the public Python entry points. ``--kills N`` kills ``train`` (single, ensemble,
streamed), ``sweep``, ``generate --shard-size`` and ``import`` with SIGKILL at N random
points each, then resumes or re-runs them and counts partial files, lost work and results
that differ from the uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

GEN = ["--trajectories", 3, "--duration", 0.5, "--dt", 0.05]
FAST = ["--epochs", 2, "--lbfgs-epochs", 0, "--width", 8, "--no-progress"]


def call(argv) -> tuple[str, str]:
    """Run ``lagrax ARGV`` in-process; ``(outcome, message)``."""
    from lagrax.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    except BaseException as e:  # noqa: BLE001 (what the sweep looks for)
        return "traceback", f"{type(e).__name__}: {str(e)[:100]}"
    return classify(code, err.getvalue())


def must_pass(argv) -> None:
    outcome, message = call(argv)
    if outcome not in ("accepted", "warned"):
        raise SystemExit(f"setup step failed: lagrax {' '.join(map(str, argv))}: {message}")


def make_inputs(d: dict) -> dict[str, str]:
    """Damaged and malformed copies of the dataset arrays ``d``: name -> file."""
    raw = Path("dp.npz").read_bytes()
    Path("trunc.npz").write_bytes(raw[: len(raw) // 2])
    flip = bytearray(raw)
    flip[len(raw) // 2] ^= 0xFF
    Path("flip.npz").write_bytes(bytes(flip))
    Path("empty.npz").write_bytes(b"")
    Path("text.npz").write_text("hello, this is not a dataset\n")
    Path("dirdata.npz").mkdir(exist_ok=True)
    meta = json.loads(str(d["metadata"]))
    variants = {
        "int_q": dict(q=d["q"].astype(int)),
        "bool_q": dict(q=d["q"] > 0),
        "str_q": dict(q=d["q"].astype(str)),
        "complex_q": dict(q=d["q"] + 1j),
        "meta_list": dict(metadata=np.array("[1, 2]")),
        "meta_num": dict(metadata=np.array("3")),
        "meta_bad": dict(metadata=np.array("{not json")),
        "neg_dt": dict(metadata=np.array(json.dumps({**meta, "dt": -0.05}))),
        "nan_q": dict(q=np.where(np.arange(d["q"].size).reshape(d["q"].shape) == 3, np.nan, d["q"])),
        "no_q": dict(q=None),
        "short_tau": dict(tau=d["tau"][:-1]),
        "joints3": dict(q=np.c_[d["q"], d["q"][:, :1]]),
    }
    files = {k: f"{k}.npz" for k in ("trunc", "flip", "empty", "text")}
    files.update({"dir": "dirdata.npz", "missing": "missing.npz"})
    for name, changes in variants.items():
        arrays = {k: v for k, v in d.items() if changes.get(k, 0) is not None}
        arrays.update({k: v for k, v in changes.items() if v is not None})
        np.savez(f"{name}.npz", **arrays)
        files[name] = f"{name}.npz"
    return files


def dataset_cases(files: dict[str, str]) -> list[tuple[str, list]]:
    cases = []
    for name, f in files.items():
        cases.append(
            (f"train --data {name}", ["train", "--model", "delan", "--data", f, "--out", f"r_{name}", *FAST])
        )
        cases.append((f"plot {name}", ["plot", f, "--out", f"p_{name}.png"]))
        cases.append((f"evaluate --data {name}", ["evaluate", "run", "--data", f, "--no-rollout"]))
    return cases


TRAIN_OPTIONS = [
    ["-O", "nope=3"],
    ["--width", 0],
    ["--width", -4],
    ["--depth", -1],
    ["--seed", -1],
    ["--lr", "inf"],
    ["--lr", "nan"],
    ["--lr", 0],
    ["--lr", -1],
    ["--weight-decay", -1],
    ["--max-seconds", -1],
    ["--patience", -1],
    ["--val-fraction", -0.1],
    ["--val-fraction", 1],
    ["--test-fraction", 1.5],
    ["--batch-size", -3],
    ["--epochs", -2],
    ["--lbfgs-epochs", -1],
    ["--schedule", "nope"],
    ["--dtype", "float16"],
    ["--loss", "nope=1"],
    ["--loss", "inverse=-1"],
    ["--activation", "nope"],
    ["-O", "width=abc"],
    ["-O", "=3"],
    ["--model", "nope"],
    ["--test-labels", "zz"],
]
TOML_FILES = {
    "bad_type.toml": '[train]\nepochs = "two"\n',
    "bad_key.toml": "[train]\nepoch = 3\n",
    "syntax.toml": "[train\n",
}
GENERATE_OPTIONS = [
    ["--duration", "inf"],
    ["--duration", -1],
    ["--duration", "nan"],
    ["--dt", 0],
    ["--dt", -0.1],
    ["--noise", "nan", *GEN],
    ["--noise", -1, *GEN],
    ["--trajectories", 0],
    ["--trajectories", -1],
    ["--rate", 0],
    ["--kind", "nope"],
    ["-p", "m=-1", *GEN],
    ["-p", "m=0", *GEN],
    ["-p", "l=0", *GEN],
    ["-p", "m=nan", *GEN],
    ["-p", "m=abc", *GEN],
    ["-p", "nope=1", *GEN],
    ["--savgol-window", 2, "--measured", "q,tau", *GEN],
]


def option_cases() -> list[tuple[str, list]]:
    train = ["train", "--model", "delan", "--data", "dp.npz", *FAST]
    cases = [
        (f"train {' '.join(map(str, o))}", [*train, "--out", f"t_opt{i}", *o])
        for i, o in enumerate(TRAIN_OPTIONS)
    ]
    cases.append(
        (
            "train passive data (tau = 0) --loss inverse=1",
            [
                "train",
                "--model",
                "delan",
                "--data",
                "passive.npz",
                "--out",
                "t_p",
                *FAST,
                "--loss",
                "inverse=1",
            ],
        )
    )
    for name, text in TOML_FILES.items():
        Path(name).write_text(text)
    Path("bin.toml").write_bytes(bytes(range(256)))
    Path("dir.toml").mkdir(exist_ok=True)
    for name in [*TOML_FILES, "bin.toml", "dir.toml", "nope.toml"]:
        cases.append((f"train --config {name}", [*train, "--out", f"t_{name}", "--config", name]))
    cases += [
        (f"generate {' '.join(map(str, o[:2]))}", ["generate", "-s", "pendulum", "--out", f"g{i}.npz", *o])
        for i, o in enumerate(GENERATE_OPTIONS)
    ]
    return cases


def misc_cases() -> list[tuple[str, list]]:
    Path("afile").write_text("x")
    Path("bad.urdf").write_text("<robot name='x'><link name='a'></robot>")
    return [
        (
            "train --out below a file",
            ["train", "--model", "delan", "--data", "dp.npz", "--out", "afile/run", *FAST],
        ),
        ("generate --out below a file", ["generate", "--system", "pendulum", "--out", "afile/x.npz", *GEN]),
        ("generate --out a directory", ["generate", "--system", "pendulum", "--out", "dirdata.npz", *GEN]),
        ("plot --out a directory", ["plot", "dp.npz", "--out", "dirdata.npz"]),
        ("plot --out x.xyz", ["plot", "dp.npz", "--out", "x.xyz"]),
        ("generate system nope", ["generate", "--system", "nope", "--out", "g_nope.npz"]),
        (
            "generate urdf: a bad URDF",
            ["generate", "--system", "urdf", "-p", "path=bad.urdf", "--out", "g_urdf.npz", *GEN],
        ),
        ("demo --epochs 0", ["demo", "--out", "demo0", "--epochs", 0]),
        ("demo --seconds -1", ["demo", "--out", "demo1", "--seconds", -1]),
        ("bench --data missing", ["bench", "delan-character", "--quick", "--data", "missing.npz"]),
        ("bench nope", ["bench", "nope"]),
        ("evaluate a missing run", ["evaluate", "norun"]),
        ("evaluate --split nope", ["evaluate", "run", "--split", "nope"]),
    ]


def changes(run: str, argv) -> tuple[str, str]:
    """Outcome of ``argv``, ``accepted`` if any file under ``run`` changed."""
    from lagrax.core.fileio import tree_digest

    before = tree_digest(run)
    outcome, message = call(argv)
    return ("accepted" if tree_digest(run) != before else outcome), message


def overwrite_and_resume_cases() -> list[tuple[str, str, str]]:
    out = []
    must_pass(["evaluate", "run", "--data", "dp.npz", "--no-rollout"])
    out.append(("evaluate twice", *changes("run", ["evaluate", "run", "--data", "dp.npz", "--no-rollout"])))
    out.append(
        ("evaluate --data another system", *call(["evaluate", "run", "--data", "arm2.npz", "--no-rollout"]))
    )
    must_pass(["report", "run"])
    out.append(("report twice", *changes("run", ["report", "run"])))
    Path("b.md").write_text("mine")
    outcome, message = call(["bench", "delan-character", "--quick", "--epochs", 1, "--out", "b.md"])
    out.append(
        (
            "bench --out an existing file",
            "accepted" if Path("b.md").read_text() != "mine" else outcome,
            message,
        )
    )
    must_pass(["train", "--model", "delan", "--data", "dp.npz", "--out", "rr", "--test-labels", "0,1", *FAST])
    resume = ["train", "--model", "delan", "--out", "rr", *FAST, "--resume"]
    for name, extra in [
        ("labels", ["--data", "dp.npz", "--test-labels", "2"]),
        ("data", ["--data", "passive.npz"]),
        ("lr", ["--data", "dp.npz", "--lr", "0.5"]),
        ("width", ["--data", "dp.npz", "--width", "16"]),
        ("val fraction", ["--data", "dp.npz", "--val-fraction", "0.5"]),
    ]:
        out.append((f"resume with another {name}", *changes("rr", [*resume, *extra])))
    return out


def api_cases() -> list[tuple[str, str, str]]:
    import jax
    import jax.numpy as jnp

    import lagrax
    from lagrax.models import make_model
    from lagrax.systems.rollout import simulate

    info = lagrax.system("double_pendulum").info
    fd = lagrax.batched(lagrax.system("double_pendulum")).forward_dynamics
    calls = {
        f"system('pendulum', {k}={v!r})": (lambda k=k, v=v: lagrax.system("pendulum", **{k: v}))
        for k, v in [("m", -1), ("m", 0), ("l", 0), ("m", float("nan")), ("m", "abc"), ("g", float("inf"))]
    }
    calls.update(
        {
            "make_model(width=0)": lambda: make_model("delan", info, key=jax.random.PRNGKey(0), width=0),
            "make_model(nope=3)": lambda: make_model("delan", info, key=jax.random.PRNGKey(0), nope=3),
            "batched forward_dynamics, NaN q": lambda: fd(
                jnp.array([jnp.nan, 0.0]), jnp.zeros(2), jnp.zeros(2)
            ),
            "structured_system, indefinite M": lambda: lagrax.batched(
                lagrax.structured_system(lambda q: jnp.diag(jnp.array([1.0, -1.0])), lambda q: q[0], dof=2)
            ).forward_dynamics(jnp.zeros(2), jnp.zeros(2), jnp.ones(2)),
            "structured_system, M of shape (3, 3)": lambda: lagrax.structured_system(
                lambda q: jnp.eye(3), lambda q: q[0], dof=2
            ),
            "simulate, NaN q0": lambda: simulate(
                lagrax.system("pendulum"), jnp.array([jnp.nan]), jnp.zeros(1), jnp.linspace(0, 1, 5)
            ),
        }
    )
    return [(f"api {name}", *_api_outcome(fn)) for name, fn in calls.items()]


def _api_outcome(fn) -> tuple[str, str]:
    from lagrax.core.errors import LagraxError

    try:
        out = fn()
    except LagraxError as e:
        return "clean", f"{type(e).__name__}: {str(e)[:90]}"
    except Exception as e:  # noqa: BLE001
        return "traceback", f"{type(e).__name__}: {str(e)[:90]}"
    leaves = [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(out) if hasattr(x, "shape")]
    return "accepted", "returned NaN" if any(not np.isfinite(x).all() for x in leaves) else "returned"


# --------------------------------------------------------------------------------------
# Every command: bad values, damaged files, files of the wrong kind
# --------------------------------------------------------------------------------------

NEG, ZERO, NAN, INF, TYPE = -1, 0, "nan", "inf", "abc"
REAL_BAD = [NEG, ZERO, NAN, INF, TYPE]  # a positive real setting
COUNT_BAD = [NEG, ZERO, TYPE, 2.5]  # a positive whole number
SMALL = ["--duration", 0.5, "--dt", 0.1]
CONTROL = ["--system", "double_pendulum", "--duration", 0.3, "--rate", 50, "--no-baselines"]
SHARDS = ["generate", "-s", "double_pendulum", "--kind", "states", "--samples", 400, "--shard-size", 100]
SPACE = (
    '[sweep]\nmodel = "delan"\n[train]\nepochs = 2\nlbfgs_epochs = 0\nval_every = 1\n[model]\nwidth = 8\n'
    'depth = 1\n[search.lr]\ntype = "float"\nlow = 1e-3\nhigh = 1e-1\nlog = true\n'
)
# (command, the argv before --out, option, bad values): each value alone is one case
VALUE_CASES = [
    ("import", ["import", "log.csv"], "--window", [NEG, ZERO, 2, 4, TYPE, 10**6]),
    ("import", ["import", "log.csv", "--window", 5], "--polyorder", [NEG, 5, 9, TYPE, 10**6]),
    ("import", ["import", "log.csv", "--window", 5], "--joints", ["a,b,c", "nope", "q_a", "a,a", ","]),
    ("import", ["import", "log.csv", "--window", 5], "--format", ["nope", "bag"]),
    ("import", ["import", "log.csv", "--window", 5], "--prismatic", ["nope"]),
    ("control", ["control", "run", *CONTROL], "--rate", [NEG, ZERO, NAN, INF, TYPE]),
    ("control", ["control", "run", *CONTROL], "--duration", [NEG, ZERO, NAN, INF, TYPE]),
    ("control", ["control", "run", *CONTROL], "--count", COUNT_BAD),
    ("control", ["control", "run", *CONTROL], "--speed", REAL_BAD),
    ("control", ["control", "run", *CONTROL], "--substeps", COUNT_BAD),
    ("control", ["control", "run", *CONTROL], "--kp", [NEG, NAN, INF, TYPE, "1,2,3", "1,"]),
    ("control", ["control", "run", *CONTROL], "--kd", [NEG, NAN, INF, TYPE, "1,2,3"]),
    ("control", ["control", "run", *CONTROL], "--bandwidth", REAL_BAD),
    ("control", ["control", "run", *CONTROL], "--q-noise", [NEG, NAN, INF, TYPE]),
    ("control", ["control", "run", *CONTROL], "--qd-noise", [NEG, NAN, INF]),
    ("control", ["control", "run", *CONTROL], "--payload", [-5, NAN, INF, TYPE]),
    ("control", ["control", "run", *CONTROL, "--payload", 0.1], "--payload-at", [NEG, NAN, INF, 100]),
    ("control", ["control", "run", *CONTROL, "--online"], "--online-lr", [NEG, ZERO, NAN, INF]),
    ("control", ["control", "run", *CONTROL, "--online"], "--online-every", COUNT_BAD[:3]),
    ("control", ["control", "run", *CONTROL, "--online"], "--online-steps", COUNT_BAD[:3]),
    ("control", ["control", "run", *CONTROL, "--online"], "--online-batch", COUNT_BAD[:3]),
    ("control", ["control", "run", *CONTROL, "--online"], "--scratch", ["nope"]),
    ("control", ["control", "run", *CONTROL], "--controller", ["nope"]),
    ("control", ["control", "run", *CONTROL], "--task", ["nope", "swing-up"]),
    ("control", ["control", "run", *CONTROL], "--seed", [NEG, TYPE]),
    ("control", ["control", "run", *CONTROL], "--param", ["m1=-1", "m1=nan", "nope=1", "m1"]),
    (
        "control",
        ["control", "run", *CONTROL],
        "--trajectory",
        ["nope.npz", "arm2.npz", "text.npz", "trunc.npz"],
    ),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL], "--random", COUNT_BAD),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, "--dt", 0.1],
        "--duration",
        REAL_BAD,
    ),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, "--duration", 0.5],
        "--dt",
        REAL_BAD,
    ),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL],
        "--rtol",
        [NEG, ZERO, NAN],
    ),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL], "--atol", [NEG, NAN, INF]),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL], "--step", REAL_BAD),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL],
        "--solver",
        ["nope", "rk4"],
    ),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL],
        "--energy-scale",
        REAL_BAD,
    ),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", *SMALL],
        "--initial-states",
        ["abc", "1,2,3", "nan,0,0,0"],
    ),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL], "--seed", [NEG, TYPE]),
    ("rollout", ["rollout", "--random", 2, *SMALL], "--system", ["nope", ""]),
    (
        "rollout",
        ["rollout", "--system", "double_pendulum", "--random", 2, *SMALL],
        "--param",
        ["m1=-1", "nope=1"],
    ),
    ("sweep", ["sweep", "space.toml", "--data", "dp.npz", "--no-progress"], "--trials", [NEG, ZERO, TYPE]),
    ("sweep", ["sweep", "space.toml", "--data", "dp.npz", "--no-progress"], "--workers", [NEG, ZERO, TYPE]),
    ("sweep", ["sweep", "space.toml", "--data", "dp.npz", "--no-progress"], "--seed", [NEG, TYPE]),
    (
        "sweep",
        ["sweep", "space.toml", "--data", "dp.npz"],
        "--storage",
        ["nope", "sqlite:////nonexistent/x/s.db"],
    ),
    ("generate --shard-size", SHARDS[:-1], "--shard-size", COUNT_BAD),
    ("generate --shard-size", SHARDS[:-4] + SHARDS[-2:], "--samples", COUNT_BAD),
    ("generate --shard-size", SHARDS, "--dtype", ["float16", "int32", "nope"]),
    ("generate --shard-size", SHARDS, "--q-range", ["1,0", "nan,1", "a,b", "1,2,3", "-inf,inf"]),
    ("generate --shard-size", SHARDS, "--qd-range", ["1,0", "nan,1", "1,2,3"]),
    ("generate --shard-size", SHARDS, "--qdd-range", ["1,0", "inf,1"]),
    ("generate --shard-size", SHARDS, "--seed", [NEG, TYPE]),
    ("generate --shard-size", SHARDS[:3] + SHARDS[-2:], "--kind", ["excitation", "passive"]),
    ("export", ["export", "run", "--format", "stablehlo"], "--batch", COUNT_BAD),
    ("export", ["export", "run", "--format", "stablehlo"], "--member", [NEG, 5, TYPE]),
    ("export", ["export", "run"], "--format", ["nope", ""]),
    ("export", ["export", "run", "--format", "stablehlo"], "--functions", ["nope", ","]),
    ("export", ["export", "run", "--format", "stablehlo"], "--data", ["nope.npz", "text.npz", "arm2.npz"]),
    ("train --ensemble", ["train", "--model", "delan", "--data", "dp.npz", *FAST], "--ensemble", COUNT_BAD),
    (
        "train --devices",
        ["train", "--model", "delan", "--data", "dp.npz", *FAST],
        "--devices",
        [NEG, ZERO, TYPE, 9],
    ),
    (
        "train --devices",
        ["train", "--model", "delan", "--data", "dp.npz", *FAST, "--ensemble", 2],
        "--devices",
        [2],
    ),
]
# the same, each run in a child process with a memory limit: an accepted value may take
# many gigabytes or hours (the process aborts)
ISOLATED_CASES = [
    ("control", ["control", "run", *CONTROL[:-5], "--no-baselines"], "--duration", [1e7]),
    ("control", ["control", "run", *CONTROL], "--count", [10**9]),
    ("control", ["control", "run", *CONTROL], "--rate", [1e9]),
    ("control", ["control", "run", *CONTROL], "--substeps", [10**9]),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, "--dt", 0.1], "--duration", [1e12]),
    ("rollout", ["rollout", "--system", "double_pendulum", "--random", 2, "--duration", 1], "--dt", [1e-12]),
    ("rollout", ["rollout", "--system", "double_pendulum", *SMALL], "--random", [10**9]),
    ("train --ensemble", ["train", "--model", "delan", "--data", "dp.npz", *FAST], "--ensemble", [10**6]),
    ("train", ["train", "--model", "delan", "--data", "dp.npz", *FAST[:-3]], "--width", [10**9]),
    ("generate --shard-size", SHARDS[:-4] + SHARDS[-2:], "--samples", [10**13]),
    ("import", ["import", "hugetime.csv"], "--window", [5]),
]


def value_cases(table, prefix: str = "v") -> list[tuple[str, list]]:
    """One case per bad value of ``table`` (see :data:`VALUE_CASES`), each into its own
    --out (``PREFIX<row>_<value>``)."""
    cases = []
    for k, (command, argv, option, values) in enumerate(table):
        for j, value in enumerate(values):
            suffix = {"import": ".npz", "control": ".npz", "rollout": ".npz", "export": ".mlir"}.get(
                command, ""
            )
            out = f"{prefix}{k}_{j}{suffix}"
            cases.append((f"{command} {option} {value}", [*argv, option, value, "--out", out]))
    return cases


def damaged(path: Path, stem: str) -> dict[str, Path]:
    """Damaged copies of the file ``path``: truncated, random bytes, a flipped byte, a text
    file and an empty file, each under ``stem`` and the same suffix."""
    raw = path.read_bytes()
    flip = bytearray(raw)
    flip[len(raw) // 2] ^= 0xFF
    variants = {
        "truncated": raw[: len(raw) // 2],
        "random bytes": np.random.default_rng(len(raw)).bytes(max(len(raw), 64)),
        "a flipped byte": bytes(flip),
        "a text file": b"hello, this is not the file you are looking for\n",
        "empty": b"",
    }
    out = {}
    for kind, data in variants.items():
        f = Path(f"{stem}-{kind.replace(' ', '_')}{path.suffix}")
        f.write_bytes(data)
        out[kind] = f
    return out


def damaged_dirs(folder: Path, member: str, stem: str) -> dict[str, Path]:
    """Copies of the directory ``folder`` whose ``member`` is damaged (see :func:`damaged`),
    or missing."""
    dirs = {}
    for kind, f in {**damaged(folder / member, f"{stem}-src"), "missing": None}.items():
        copy = Path(f"{stem}-{kind.replace(' ', '_')}")
        shutil.copytree(folder, copy)
        if f is None:
            (copy / member).unlink()
        else:
            (copy / member).write_bytes(f.read_bytes())
        dirs[f"{member} {kind}"] = copy
    return dirs


def csv_files() -> dict[str, str]:
    """A good log ``log.csv`` (the double pendulum's data as a CSV), its damaged copies and
    malformed logs: name -> file."""
    d = dict(np.load("dp.npz"))
    rows = np.column_stack([d["t"], d["trajectory"], d["q"], d["tau"]])
    header = "t,trajectory,q_a,q_b,tau_a,tau_b"
    np.savetxt("log.csv", rows, delimiter=",", header=header, comments="")
    files = {f"import a log, {k}": str(f) for k, f in damaged(Path("log.csv"), "log").items()}
    text = Path("log.csv").read_text().splitlines()
    bad = {
        "a NaN q": [*text[:3], text[3].replace(text[3].split(",")[2], "nan", 1), *text[4:]],
        "an inf tau": [*text[:3], ",".join(text[3].split(",")[:-1] + ["inf"]), *text[4:]],
        "a word as q": [
            *text[:3],
            ",".join(text[3].split(",")[:2] + ["abc"] + text[3].split(",")[3:]),
            *text[4:],
        ],
        "no t column": [text[0].replace("t,", "time,", 1), *text[1:]],
        "no q column": [text[0].replace("q_", "x_"), *text[1:]],
        "a header only": text[:1],
        "one row": text[:2],
        "a short row": [*text[:3], ",".join(text[3].split(",")[:3]), *text[4:]],
        "times that go back": [text[0], *text[1:][::-1]],
        "huge time stamps": [
            text[0],
            *(f"{1e300 * (i + 1)!r}," + ",".join(r.split(",")[1:]) for i, r in enumerate(text[1:])),
        ],
    }
    for k, lines in bad.items():
        name = "log_" + k.replace(" ", "_") + ".csv"
        Path(name).write_text("\n".join(lines) + "\n")
        files[f"import a log with {k}"] = name
    Path("hugetime.csv").write_text(Path(files["import a log with huge time stamps"]).read_text())
    Path("csvdir.csv").mkdir(exist_ok=True)
    files.update({"import a directory": "csvdir.csv", "import a missing file": "missing.csv"})
    return files


def file_cases(data_files: dict[str, str]) -> list[tuple[str, list]]:
    """Damaged logs into ``import``, damaged datasets into ``rollout``, ``control``,
    ``sweep`` and ``train --ensemble``, damaged search spaces into ``sweep``."""
    cases = [
        (name, ["import", f, "--out", f"i{k}.npz", "--window", 5])
        for k, (name, f) in enumerate(csv_files().items())
    ]
    Path("space.toml").write_text(SPACE)
    spaces = {k: str(f) for k, f in damaged(Path("space.toml"), "space").items()}
    spaces.update({"missing": "nospace.toml", "a directory": "dirdata.npz"})
    for k, (name, f) in enumerate(spaces.items()):
        cases.append((f"sweep a search space, {name}", ["sweep", f, "--data", "dp.npz", "--out", f"ss{k}"]))
    for k, (name, f) in enumerate(data_files.items()):
        cases.append(
            (f"rollout --data {name}", ["rollout", "run", "--data", f, "--out", f"rd{k}.npz", "--random", 1])
        )
        cases.append((f"sweep --data {name}", ["sweep", "space.toml", "--data", f, "--out", f"sd{k}"]))
        cases.append(
            (
                f"control --trajectory {name}",
                ["control", "run", *CONTROL, "--trajectory", f, "--out", f"cd{k}.npz"],
            )
        )
        cases.append(
            (
                f"train --ensemble 2 --data {name}",
                ["train", "--model", "delan", "--data", f, "--out", f"ed{k}", *FAST, "--ensemble", 2],
            )
        )
    return cases


def run_dir_cases() -> list[tuple[str, list]]:
    """Run directories with a damaged or missing file, and runs of the wrong kind, into
    every command that reads a run (``evaluate``, ``report``, ``rollout``, ``control``,
    ``train --resume``)."""
    run = Path("run")
    dirs = {}
    for member in ("model.eqx", "model.json", "config.json", "split.json"):
        dirs.update(damaged_dirs(run, member, f"run_{member.replace('.', '_')}"))
    dirs.update(damaged_dirs(run, "checkpoints/last.ckpt", "run_ckpt"))
    unsummed = Path("run_no_sha")  # the case: no model_sha256, and a flipped model.eqx
    shutil.copytree(run, unsummed)
    meta = json.loads((run / "model.json").read_text())
    meta.pop("model_sha256", None)
    (unsummed / "model.json").write_text(json.dumps(meta))
    raw = bytearray((run / "model.eqx").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (unsummed / "model.eqx").write_bytes(bytes(raw))
    dirs["model.json without model_sha256, model.eqx flipped"] = unsummed
    dirs["a file, not a run"] = Path("afile")
    cases = []
    for k, (name, d) in enumerate(dirs.items()):
        if name.startswith("checkpoints"):
            resume = ["train", "--model", "delan", "--data", "dp.npz", "--out", d, *FAST, "--resume"]
            cases.append((f"train --resume, {name}", resume))
            continue
        cases.append(
            (f"evaluate a run, {name}", ["evaluate", d, "--data", "dp.npz", "--no-rollout", "--force"])
        )
        cases.append((f"report a run, {name}", ["report", d, "--force"]))
        cases.append((f"rollout a run, {name}", ["rollout", d, "--out", f"rr{k}.npz", "--random", 1, *SMALL]))
        cases.append((f"control with a run, {name}", ["control", d, *CONTROL, "--out", f"cr{k}.npz"]))
        export = ["export", d, "--format", "stablehlo", "--out", f"ex{k}.mlir"]
        cases.append((f"export a run, {name}", export))
    return cases + wrong_kind_cases()


def wrong_kind_cases() -> list[tuple[str, list]]:
    """Another system's model (a two-link arm's run on the double pendulum) and a dataset
    of the same system in another joint order."""
    d = dict(np.load("dp.npz"))
    meta = json.loads(str(d["metadata"]))
    meta["system"]["joint_names"] = meta["system"]["joint_names"][::-1]
    swapped = {k: (v[:, ::-1] if k in ("q", "qd", "qdd", "tau") else v) for k, v in d.items()}
    swapped["metadata"] = np.array(json.dumps(meta))
    np.savez("swapped.npz", **swapped)
    resume_other = Path("resume_other")
    shutil.copytree("runarm", resume_other)
    return [
        (
            "rollout a two-link arm's run on double-pendulum data",
            ["rollout", "runarm", "--data", "dp.npz", "--out", "w1.npz", "--random", 1],
        ),
        (
            "control the double pendulum with a two-link arm's run",
            ["control", "runarm", *CONTROL, "--out", "w2.npz"],
        ),
        (
            "report a two-link arm's run on double-pendulum data",
            ["report", "runarm", "--data", "dp.npz", "--force"],
        ),
        (
            "train --resume a two-link arm's run on double-pendulum data",
            ["train", "--model", "delan", "--data", "dp.npz", "--out", resume_other, *FAST, "--resume"],
        ),
        (
            "evaluate on data in another joint order",
            ["evaluate", "run", "--data", "swapped.npz", "--no-rollout", "--force"],
        ),
        (
            "rollout on data in another joint order",
            ["rollout", "run", "--data", "swapped.npz", "--out", "w3.npz", "--random", 1],
        ),
        (
            "control with references in another joint order",
            ["control", "run", *CONTROL, "--trajectory", "swapped.npz", "--out", "w4.npz"],
        ),
        (
            "train --resume on data in another joint order",
            ["train", "--model", "delan", "--data", "swapped.npz", "--out", "rr", *FAST, "--resume"],
        ),
    ]


def shard_cases() -> list[tuple[str, list]]:
    """Shard directories with a damaged or missing manifest or shard file, into ``train``
    (streamed) and ``plot``."""
    must_pass([*SHARDS, "--out", "shards"])
    dirs = damaged_dirs(Path("shards"), "shards.json", "sh_manifest")
    dirs.update(damaged_dirs(Path("shards"), "shard-00001.q.npy", "sh_q"))
    extra = Path("sh_extra_rows")
    shutil.copytree("shards", extra)
    np.save(extra / "shard-00001.tau.npy", np.zeros((101, 2), np.float32))
    dirs["a shard file with more rows"] = extra
    cases = []
    for k, (name, d) in enumerate(dirs.items()):
        cases.append(
            (f"train on shards, {name}", ["train", "--model", "delan", "--data", d, "--out", f"ts{k}", *FAST])
        )
        cases.append(
            (
                f"rollout --data shards, {name}",
                ["rollout", "run", "--data", d, "--out", f"rs{k}.npz", "--random", 1],
            )
        )
    return cases


def api_more_cases() -> list[tuple[str, str, str]]:
    """The Python API's public entry points: ``lagrax.system`` (every family's first three
    numeric parameters at NaN, inf and a word), ``lagrax.make_model`` (every kind, bad
    options), ``lagrax.batched`` (no samples, a wrong length, NaN, inf, complex) and the
    loaders of datasets, models and shard directories on damaged files."""
    import jax
    import jax.numpy as jnp

    import lagrax

    calls = {}
    for name, _ in lagrax.list_systems():
        if name in ("urdf", "mjcf", "panda", "ur5", "pusher", "inverted_double_pendulum"):
            continue
        params = dict(lagrax.system(name).info.params or {})
        numeric = [k for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)][
            :3
        ]
        for k in numeric:
            for v in (float("nan"), float("inf"), "abc"):
                calls[f"system({name!r}, {k}={v!r})"] = lambda n=name, k=k, v=v: lagrax.system(n, **{k: v})
    info = lagrax.system("double_pendulum").info
    for kind in ("delan", "lnn", "mlp", "hnn"):
        for option, value in [
            ("width", 0),
            ("width", -3),
            ("width", "abc"),
            ("depth", -1),
            ("activation", "nope"),
        ]:
            calls[f"make_model({kind!r}, {option}={value!r})"] = lambda kind=kind, o=option, v=value: (
                lagrax.make_model(kind, info, key=jax.random.PRNGKey(0), **{o: v})
            )
    fd = lagrax.batched(lagrax.system("double_pendulum")).forward_dynamics
    for label, q in [
        ("no samples", jnp.zeros((0, 2))),
        ("q of length 3", jnp.zeros(3)),
        ("inf q", jnp.array([jnp.inf, 0.0])),
        ("complex q", jnp.array([1j, 0.0])),
        ("a batch with one NaN row", jnp.array([[0.0, 0.0], [jnp.nan, 0.0]])),
    ]:
        calls[f"batched forward_dynamics, {label}"] = lambda q=q: fd(
            q, jnp.zeros_like(q.real), jnp.zeros_like(q.real)
        )
    return [(f"api {name}", *_api_outcome(fn)) for name, fn in calls.items()] + loader_cases()


def loader_cases() -> list[tuple[str, str, str]]:
    """``load_dataset``, ``load_model`` and ``open_shards`` on the damaged files and
    directories that the command cases made."""
    import lagrax
    from lagrax.data.dataset import load_dataset
    from lagrax.data.shards import open_shards

    calls = {}
    for f in sorted(Path(".").glob("*.npz")):
        if f.stem in ("trunc", "flip", "empty", "text") or f.stem.startswith(
            ("nan_", "short_", "str_", "meta_")
        ):
            calls[f"load_dataset({f.name!r})"] = lambda f=f: load_dataset(f)
    for d in sorted(Path(".").glob("run_model_*")):
        calls[f"load_model({d.name!r})"] = lambda d=d: lagrax.load_model(d)
    calls["load_model(run_no_sha)"] = lambda: lagrax.load_model("run_no_sha")
    for d in sorted(Path(".").glob("sh_*")):
        if d.is_dir():
            calls[f"open_shards({d.name!r}).check()"] = lambda d=d: open_shards(d).check()
    return [(f"api {name}", *_api_outcome(fn)) for name, fn in calls.items()]


# a child's first statement: at most 8 GiB of address space (an accepted huge setting fails
# fast); set by the child itself, as a preexec_fn would run Python in a forked JAX process
LIMIT_MEMORY = "import resource; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"


def classify(code: int | None, err: str) -> tuple[str, str]:
    """The outcome of a finished command from its exit code and stderr (see the docstring)."""
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("warning:")]
    if "Traceback (most recent call last)" in err:
        return "traceback", (lines[-1] if lines else "")[:100]
    if code == 0:
        # a lagrax warning line, or lagrax's own Python warning (numpy's are no warning to a user)
        warned = any(x.startswith("warning:") or "DataMismatchWarning: " in x for x in err.splitlines())
        return ("warned" if warned else "accepted"), err.strip()[:100]
    if code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "clean", lines[0][:100]
    return "wrong", f"exit {code}: {err.strip()[-100:]}"


def isolated(argv, env, timeout: float = 90) -> tuple[str, str]:
    """``lagrax ARGV`` in a child with a memory limit and a time limit."""
    code = LIMIT_MEMORY + (argv if isinstance(argv, str) else CHILD)
    args = [] if isinstance(argv, str) else [str(a) for a in argv]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "wrong", f"still running after {timeout:.0f} s (killed)"
    if isinstance(argv, str) and proc.returncode == 0:
        return "accepted", proc.stdout.strip()[:100]
    return classify(proc.returncode, proc.stderr)


ISOLATED_API = (
    "import jax, lagrax; from lagrax.core.errors import LagraxError\n"
    "info = lagrax.system('double_pendulum').info\n"
    "try:\n"
    "    lagrax.make_model('delan', info, key=jax.random.PRNGKey(0), width=10**9)\n"
    "except LagraxError as e:\n"
    "    import sys; print('error:', e, file=sys.stderr); sys.exit(2)\n"
)


def isolated_cases(env) -> list[tuple[str, str, str]]:
    """:data:`ISOLATED_CASES` and ``make_model(width=10**9)``, each in a child process."""
    results = []
    for name, argv in value_cases(ISOLATED_CASES, "iso"):
        results.append((name, *isolated(argv, env)))
        print(f"[isolated] {' | '.join(results[-1])}", flush=True)
    return results + [("api make_model('delan', width=10**9)", *isolated(ISOLATED_API, env))]


def setup(work: Path) -> dict[str, str]:
    """The working folder's inputs: datasets, two trained runs, damaged dataset files."""
    os.chdir(work)
    for name, system, kind in [
        ("dp", "double_pendulum", "excitation"),
        ("arm2", "two_link_arm", "excitation"),
        ("passive", "double_pendulum", "passive"),
    ]:
        if not Path(f"{name}.npz").exists():
            must_pass(
                ["generate", "--system", system, "--out", f"{name}.npz", "--kind", kind, *GEN, "--seed", 4]
            )
    for run, data in (("run", "dp.npz"), ("runarm", "arm2.npz")):
        if not Path(run).exists():
            must_pass(
                ["train", "--model", "delan", "--data", data, "--out", run, "--test-labels", "0", *FAST]
            )
    return make_inputs(dict(np.load("dp.npz")))


def quick_cases(work: Path) -> list[tuple[str, str, str]]:
    """A subset for the smoke test: no trained run, nothing that compiles (about 5 s)."""
    os.chdir(work)
    if not Path("dp.npz").exists():
        must_pass(["generate", "--system", "double_pendulum", "--out", "dp.npz", *GEN, "--seed", 4])
    Path("dirdata.npz").mkdir(exist_ok=True)
    Path("space.toml").write_text(SPACE)
    table = [row for row in VALUE_CASES if row[0] in ("import", "sweep", "generate --shard-size")]
    cases = [c for c in value_cases(table) if "--samples" not in c[0]][::3]
    cases += [
        (n, ["import", f, "--out", f"iq{k}.npz", "--window", 5])
        for k, (n, f) in enumerate(csv_files().items())
    ]
    return [(name, *call(argv)) for name, argv in cases]


def run_cases(work: Path) -> list[tuple[str, str, str]]:
    """Every case (about 2 x 10 minutes on 2 cores: most fail fast, some compile)."""
    files = setup(work)
    results = [(name, *call(argv)) for name, argv in dataset_cases(files) + option_cases() + misc_cases()]
    results += overwrite_and_resume_cases() + api_cases()
    new = value_cases(VALUE_CASES) + file_cases(files) + run_dir_cases() + shard_cases()
    for k, (name, argv) in enumerate(new):
        results.append((name, *call(argv)))
        print(f"[{k + 1}/{len(new)}] {' | '.join(results[-1])}", flush=True)
    results += api_more_cases()
    return results + isolated_cases(child_env(work))


def group(name: str) -> str:
    """The command (or ``api``) a case belongs to, for the summary table."""
    words = name.split()
    if words[0] == "api":
        return "api " + words[1].split("(")[0]
    if (
        words[0] in ("generate", "train")
        and len(words) > 1
        and words[1] in ("--shard-size", "--ensemble", "--devices", "--resume")
    ):
        return " ".join(words[:2])
    if words[0] == "train" and "shards" in name:
        return "train (shards)"
    return words[0] if words[0] in COMMAND_NAMES else "other"


COMMAND_NAMES = (
    "export",
    "import",
    "control",
    "rollout",
    "sweep",
    "generate",
    "train",
    "plot",
    "evaluate",
    "report",
    "demo",
    "bench",
)
OUTCOMES = ("clean", "warned", "traceback", "wrong", "accepted")


def tables(results, kills, command: str) -> str:
    """The markdown of ``docs/results/bad_inputs.md``: outcomes per command, every case that
    is not clean, and the random-kill counts."""
    counts = Counter(outcome for _, outcome, _ in results)
    lines = [
        "# Bad inputs and faults at any moment",
        "",
        f"Measured with `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        "2 shared CPU cores).",
        "",
        "Each case runs one bad input through a command (in-process through `lagrax.cli.app.main`; the "
        "huge settings in a child process limited to 8 GiB) or a public Python function. Outcomes: "
        "**clean**: exit code 2 and one line `error: ...` (in Python, a `LagraxError`); **warned**: exit 0 "
        "with a `warning:` line; **traceback**; **wrong**: another exit code, several lines, a crash "
        "or a time-out; **accepted**: exit 0 without a word (silent garbage: the input should have "
        "been refused).",
        "",
        f"**{len(results)} cases: " + ", ".join(f"{k} {counts[k]}" for k in OUTCOMES) + "**",
        "",
        "| command | cases | " + " | ".join(OUTCOMES) + " |",
        "|---|---:|" + "---:|" * len(OUTCOMES),
    ]
    by_group: dict[str, Counter] = {}
    for name, outcome, _ in results:
        by_group.setdefault(group(name), Counter())[outcome] += 1
    for g, c in sorted(by_group.items()):
        lines.append(f"| {g} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in OUTCOMES) + " |")
    bad = [(n, o, m) for n, o, m in results if o not in ("clean", "warned")]
    lines += ["", f"## The {len(bad)} cases that are not clean", ""]
    lines += ["| case | outcome | message |", "|---|---|---|"]
    lines += [f"| {n} | {o} | {m.replace('|', '/').replace(chr(10), ' ')} |" for n, o, m in bad]
    if kills:
        lines += [
            "",
            "## Random kills (`kill -9`), then resume or re-run",
            "",
            KILL_DOC,
            "",
            kill_table(kills),
        ]
        for row in kills:
            lines += [f"- `{row['command']}`: {p}" for p in row["problems"]]
    return "\n".join(lines) + "\n"


KILL_DOC = (
    "Each command is killed with SIGKILL at a random moment (uniform between 15% and 100% of its "
    "uninterrupted run's time, seeded), its files are checked (**partial**: a file under its final "
    "name that does not read whole: a JSON or JSON line cut off, an archive or shard directory that "
    "does not load or whose checksums differ), then it is continued in-process: `train` and `sweep` "
    "with `--resume`, `generate` and `import` run again with `--force` (a command killed before it "
    "had anything to resume is started again with `--force`). **lost**: the continuation failed, or a "
    "sweep lost a trial that was complete before the kill; **not identical**: a run whose model bytes "
    "or per-epoch losses differ from the uninterrupted run's, shards or a dataset whose arrays differ, "
    "or a sweep that did not complete its trials (a trial left running, or parameters drawn twice)."
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a new temporary one)"
    )
    parser.add_argument("--quick", action="store_true", help="a small subset (the smoke test's)")
    parser.add_argument("--kills", type=int, default=0, help="random kill points per command (0: none)")
    parser.add_argument("--kill-commands", default=",".join(kill_names()), help="comma-separated")
    parser.add_argument("--jobs", type=int, default=1, help="killed children at a time")
    parser.add_argument("--no-cases", action="store_true", help="only the random kills")
    parser.add_argument("--md", type=Path, default=None, help="write the tables to this markdown file")
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="lagrax-bad-inputs-"))).resolve()
    if work.exists() and any(work.iterdir()) and not args.quick:
        raise SystemExit(f"error: {work} is not empty; give an empty or new --work folder")
    work.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    md = args.md.resolve() if args.md else None
    try:
        results = [] if args.no_cases else (quick_cases(work) if args.quick else run_cases(work))
        kills = run_kills(work, args.kills, args.kill_commands.split(","), args.jobs) if args.kills else []
    finally:
        os.chdir(here)
    report = tables(results, kills, "python -m benchmarks.bad_inputs " + " ".join(argv or sys.argv[1:]))
    print(report)
    if md is not None:
        md.write_text(report)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def kill_names() -> list[str]:
    return ["train", "train --ensemble 2", "train (streamed)", "sweep", "generate --shard-size", "import"]


# --------------------------------------------------------------------------------------
# Faults at any moment: kill -9 at random points, then resume or re-run
# --------------------------------------------------------------------------------------

CHILD = "import sys; from lagrax.cli.app import main; sys.exit(main(sys.argv[1:]))"
KILL_TRAIN = ["--epochs", 30, "--lbfgs-epochs", 0, "--width", 8, "--depth", 1, "--no-progress"]
SWEEP_SPACE = """[sweep]
model = "delan"
startup_trials = 50
[train]
epochs = 2
lbfgs_epochs = 0
val_every = 1
[model]
width = 8
depth = 1
[search.lr]
type = "float"
low = 1e-3
high = 1e-1
log = true
"""


def child_env(work: Path) -> dict[str, str]:
    """The environment of a killed child and of this process's continuation: the same XLA
    settings (so that their numbers agree bit for bit) and a shared compilation cache."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
        "JAX_COMPILATION_CACHE_DIR": str(work / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def use_child_settings(work: Path) -> None:
    """This process compiles as the children do (see :func:`child_env`)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_disable_most_optimizations", True)
    jax.config.update("jax_compilation_cache_dir", str(work / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_child(argv, env, kill_after: float | None = None, timeout: float = 900) -> tuple[int | None, float]:
    """``lagrax ARGV`` in a new process: ``(exit code, or None if killed with SIGKILL; seconds)``."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, argv)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=timeout if kill_after is None else kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - start
    return proc.returncode, time.monotonic() - start


def sha(path: Path) -> str:
    from lagrax.core.fileio import file_sha256

    return file_sha256(path)


def partial_json_files(out: Path) -> list[str]:
    """Files under final names (``*.json``, ``*.jsonl``, ``*.npz``, ``*.csv``, ``model.eqx``)
    that are not whole: a JSON that does not parse, a JSON line cut off, an archive that
    does not load, a model whose checksum differs from the one recorded with it."""
    bad = []
    for f in sorted(out.rglob("*")) if out.is_dir() else []:
        if f.name.startswith(".") or not f.is_file():
            continue
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".jsonl":
                [json.loads(line) for line in f.read_text().splitlines()]
            elif f.suffix == ".npz":
                dict(np.load(f))
            elif f.suffix == ".csv":
                list(csv.DictReader(f.open()))
            elif f.name == "model.eqx" and (f.parent / "model.json").exists():
                recorded = json.loads((f.parent / "model.json").read_text()).get("model_sha256")
                if recorded is not None and recorded != sha(f):
                    raise ValueError("checksum")
        except Exception:  # noqa: BLE001 (any failure to read is a partial file)
            bad.append(str(f.relative_to(out)))
    return bad


def run_digest(out: Path):
    """What a resumed run must share with the uninterrupted one: the model's bytes and
    each epoch's loss."""
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return sha(out / "model.eqx"), [(m.get("epoch"), m.get("loss")) for m in metrics if "loss" in m]


def shards_digest(out: Path):
    from lagrax.data.shards import open_shards

    open_shards(out).check()  # every checksum
    return json.loads((out / "shards.json").read_text())["shards"]


def shards_partial(out: Path) -> list[str]:
    from lagrax.core.errors import LagraxError
    from lagrax.data.shards import open_shards

    if not out.exists():
        return []
    try:
        open_shards(out).check()
    except LagraxError as e:
        return [f"{out.name}: {e}"]
    return []


def dataset_digest(out: Path):
    return {k: v.tobytes() for k, v in np.load(out).items()}


def dataset_partial(out: Path) -> list[str]:
    from lagrax.data.dataset import load_dataset

    if not out.exists():
        return []
    try:
        load_dataset(out)
    except Exception as e:  # noqa: BLE001
        return [f"{out.name}: {e}"]
    return []


def study_trials(out: Path) -> list:
    """The trials of the sweep's study in ``out`` (none if it has no study yet)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if not (out / "study.db").exists():
        return []
    try:
        return optuna.load_study(study_name="kspace", storage=f"sqlite:///{out / 'study.db'}").trials
    except Exception:  # noqa: BLE001 (killed before the study was made)
        return []


@dataclasses.dataclass
class KillCommand:
    """A command killed at random points: how to start it into ``out``, how to continue
    after a kill, what must not be partial, and what must equal the uninterrupted run."""

    name: str
    argv: Callable[[Path], list]
    resume: Callable[[Path], list] | None
    partial: Callable[[Path], list[str]]
    digest: Callable[[Path], Any] | None


def kill_commands() -> dict[str, KillCommand]:
    """The commands of the random-kill mode (inputs made by :func:`make_kill_inputs`)."""
    train = ["train", "--model", "delan", "--config", "ck.toml", *KILL_TRAIN]
    states = ["generate", "-s", "double_pendulum", "--kind", "states", "--samples", 20000, "--seed", 1]

    def resumed(argv):
        return lambda out: [*argv(out), "--resume"]

    def again(argv):
        return lambda out: [*argv(out), "--force"]

    commands = [
        KillCommand(
            "train", lambda o: [*train, "--data", "dp.npz", "--out", o], None, partial_json_files, run_digest
        ),
        KillCommand(
            "train --ensemble 2",
            lambda o: [*train, "--data", "dp.npz", "--out", o, "--ensemble", 2],
            None,
            partial_json_files,
            run_digest,
        ),
        KillCommand(
            "train (streamed)",
            lambda o: [*train, "--data", "shards", "--out", o],
            None,
            partial_json_files,
            run_digest,
        ),
        KillCommand(
            "sweep",
            lambda o: [
                "sweep",
                "kspace.toml",
                "--data",
                "dp.npz",
                "--out",
                o,
                "--trials",
                3,
                "--no-progress",
            ],
            None,
            partial_json_files,
            None,
        ),
        KillCommand(
            "generate --shard-size",
            lambda o: [*states, "--shard-size", 2000, "--out", o],
            None,
            shards_partial,
            shards_digest,
        ),
        KillCommand(
            "import",
            lambda o: ["import", "big.csv", "--out", o, "--window", 5],
            None,
            dataset_partial,
            dataset_digest,
        ),
    ]
    for c in commands:
        c.resume = resumed(c.argv) if c.name.startswith(("train", "sweep")) else again(c.argv)
    return {c.name: c for c in commands}


def make_kill_inputs() -> None:
    """In the working folder: ``ck.toml`` (a checkpoint every epoch), ``kspace.toml`` (a
    tiny sweep), ``big.csv`` (a 60,000-row log) and ``shards`` (a small shard directory)."""
    if not Path("dp.npz").exists():
        must_pass(["generate", "--system", "double_pendulum", "--out", "dp.npz", *GEN, "--seed", 4])
    Path("ck.toml").write_text("[train]\ncheckpoint_every = 1\nval_every = 1\n")
    Path("kspace.toml").write_text(SWEEP_SPACE)
    t = np.arange(60000) * 0.001
    q = np.stack([np.sin(t * 3.0), np.cos(t * 2.0)], axis=1)
    table = np.column_stack([t, q, 0.1 * q])
    header = "t,q_a,q_b,tau_a,tau_b"
    np.savetxt("big.csv", table, delimiter=",", header=header, comments="")
    if not Path("shards").exists():
        must_pass(
            [
                "generate",
                "-s",
                "double_pendulum",
                "--kind",
                "states",
                "--samples",
                400,
                "--shard-size",
                100,
                "--out",
                "shards",
            ]
        )


def continue_after_kill(command: KillCommand, out: Path) -> tuple[str, str]:
    """Resume (or re-run) ``command`` into ``out`` in this process; a command killed before
    it had anything to resume is started again with ``--force``."""
    outcome, message = call(command.resume(out))
    if outcome not in ("accepted", "warned") and (
        "nothing to resume" in message or "--force" in message or "no checkpoint" in message
    ):
        outcome, message = call([*command.argv(out), "--force"])
    return outcome, message


def sweep_verdict(before: list, out: Path) -> tuple[bool, bool]:
    """``(lost, incomplete)`` of a resumed sweep: a trial complete before the kill that is
    not after; fewer than 3 counted trials, one still running, or parameters drawn twice."""
    after = {t.number: t for t in study_trials(out)}
    lost = any(
        after.get(t.number) is None
        or after[t.number].state.name != "COMPLETE"
        or after[t.number].value != t.value
        for t in before
        if t.state.name == "COMPLETE"
    )
    states = [t.state.name for t in after.values()]
    failed_interrupted = sum(1 for t in after.values() if t.state.name == "FAIL")
    params = [t.params.get("lr") for t in after.values() if t.state.name == "COMPLETE"]
    incomplete = "RUNNING" in states or len(after) - failed_interrupted < 3 or len(set(params)) < len(params)
    return lost, incomplete


def kill_child(command: KillCommand, out: Path, delay: float, env) -> dict:
    """Kill ``command`` into ``out`` after ``delay`` seconds and check the files it left."""
    code, _ = run_child(command.argv(out), env, kill_after=delay)
    row = {"killed": code is None, "partial": command.partial(out)}
    row["before"] = study_trials(out) if command.name == "sweep" else []
    return row


def continue_and_compare(command: KillCommand, out: Path, row: dict, reference) -> dict:
    """Continue the killed ``command`` in ``out`` (in this process) and compare."""
    outcome, message = continue_after_kill(command, out)
    row["lost"] = outcome not in ("accepted", "warned")
    row["message"] = "" if not row["lost"] else message
    if command.name == "sweep":
        lost, incomplete = sweep_verdict(row["before"], out)
        if lost and not row["lost"]:
            row["message"] = f"{out.name}: a trial complete before the kill is not complete after"
        row["lost"] = row["lost"] or lost
        row["different"] = incomplete
    elif not row["lost"]:
        row["different"] = command.digest(out) != reference
    else:
        row["different"] = False
    return row


def run_kills(work: Path, n: int, names: Sequence[str], jobs: int = 1, seed: int = 0) -> list[dict]:
    """``n`` random kill points for each command in ``names`` (``jobs`` children at a time;
    the continuations run one by one in this process): one row per command with the counts
    of kills that left a partial file, lost work, or differ from the uninterrupted run."""
    from concurrent.futures import ThreadPoolExecutor

    os.chdir(work)
    use_child_settings(work)
    env = child_env(work)
    make_kill_inputs()
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        command = kill_commands()[name]
        ref = work / f"ref-{name.split()[0]}-{len(rows)}"
        code, seconds = run_child(command.argv(ref), env)
        if code != 0:
            raise SystemExit(f"the uninterrupted `lagrax {name}` failed (exit {code})")
        reference = command.digest(ref) if command.digest else None
        outs = [work / f"kill-{len(rows)}-{k}" for k in range(n)]
        delays = rng.uniform(0.15, 1.0, n) * seconds
        with ThreadPoolExecutor(jobs) as pool:
            killed = list(pool.map(lambda a: kill_child(command, *a, env), zip(outs, delays)))
        results = [continue_and_compare(command, out, row, reference) for out, row in zip(outs, killed)]
        rows.append(kill_summary(name, seconds, results))
        print(kill_table([rows[-1]]).splitlines()[-1], flush=True)
    return rows


def kill_summary(name: str, seconds: float, results: list[dict]) -> dict:
    """One row of the kill table: counts over the kills of one command."""
    problems = [r["message"] or ", ".join(r["partial"]) for r in results if r["lost"] or r["partial"]]
    return {
        "command": name,
        "kills": len(results),
        "killed": sum(r["killed"] for r in results),
        "seconds": seconds,
        "partial": sum(bool(r["partial"]) for r in results),
        "lost": sum(r["lost"] for r in results),
        "different": sum(r["different"] for r in results),
        "problems": problems[:3],
    }


def kill_table(rows: list[dict]) -> str:
    lines = [
        "| command | kill points | killed before it ended | uninterrupted run [s] | partial files | lost | "
        "not identical |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['command']}` | {r['kills']} | {r['killed']} | {r['seconds']:.1f} | {r['partial']} | "
            f"{r['lost']} | {r['different']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
