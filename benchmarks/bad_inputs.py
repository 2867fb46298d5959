"""A sweep of bad input through the command line and the Python API, with a table of outcomes.

    python -m benchmarks.bad_inputs [--work DIR]      # about 2 minutes on 2 cores

Each case runs in-process through ``lagrax.cli.app.main`` (or a library call) and is classified:

* ``clean``: exit code 2 and exactly one line ``error: ...`` (a named LagraxError in Python);
* ``traceback``: an exception escaped;
* ``wrong``: another exit code, or a multi-line or unlabelled message;
* ``accepted``: exit 0 where an error was expected, or files of a run changed.

The README's promises (section "Promises") say every case is ``clean``; one case is
``accepted`` by design: evaluating a run on another system's data warns and writes its own
file under ``evaluations/`` (the run's own files are left as they are).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

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
    lines = [x for x in err.getvalue().splitlines() if x.strip() and not x.startswith("warning:")]
    if code == 0:
        return "accepted", err.getvalue().strip()[:100]
    if code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "clean", lines[0][:100]
    return "wrong", f"exit {code}: {err.getvalue().strip()[:100]}"


def must_pass(argv) -> None:
    outcome, message = call(argv)
    if outcome != "accepted":
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


def run_sweep(work: Path) -> list[tuple[str, str, str]]:
    os.chdir(work)
    for name, system, kind in [
        ("dp", "double_pendulum", "excitation"),
        ("arm2", "two_link_arm", "excitation"),
        ("passive", "double_pendulum", "passive"),
    ]:
        must_pass(["generate", "--system", system, "--out", f"{name}.npz", "--kind", kind, *GEN, "--seed", 4])
    must_pass(["train", "--model", "delan", "--data", "dp.npz", "--out", "run", "--test-labels", "0", *FAST])
    files = make_inputs(dict(np.load("dp.npz")))
    results = [(name, *call(argv)) for name, argv in dataset_cases(files) + option_cases() + misc_cases()]
    return results + overwrite_and_resume_cases() + api_cases()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a new temporary one)"
    )
    args = parser.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="lagrax-bad-inputs-"))).resolve()
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"error: {work} is not empty; give an empty or new --work folder")
    work.mkdir(parents=True, exist_ok=True)
    results = run_sweep(work)
    counts = Counter(outcome for _, outcome, _ in results)
    print(
        f"\n{len(results)} cases: "
        + ", ".join(f"{k} {counts[k]}" for k in ("clean", "traceback", "wrong", "accepted"))
    )
    print("\n| case | outcome | message |\n|---|---|---|")
    for name, outcome, message in results:
        print(f"| {name} | {outcome} | {message.replace('|', '/').replace(chr(10), ' ')} |")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
