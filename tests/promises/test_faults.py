"""Faults at any moment (issue 25): ``kill -9`` in the middle of ``train``, ``generate
--shard-size``, ``import`` and ``sweep``, then resume or run again: nothing is lost, no
partial file is ever taken for a whole one, and a resumed run is bit-identical to an
uninterrupted one.

The killed commands run in child processes (a kill needs one), started together and
killed at seeded random moments after they began writing; the continuations and the
uninterrupted references run in this process, compiled as the children compile. The
benchmark (``python -m benchmarks.bad_inputs --kills 20``) kills each command at 20
random points; these tests at a few.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bad_inputs import (
    SWEEP_SPACE,
    dataset_digest,
    dataset_partial,
    partial_json_files,
    run_digest,
    shards_digest,
    shards_partial,
    study_trials,
    sweep_verdict,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("cheap_compilation")

CHILD = "import sys; from lagrax.cli.app import main; sys.exit(main(sys.argv[1:]))"
TRAIN = [
    "--config",
    "ck.toml",
    "--epochs",
    150,
    "--lbfgs-epochs",
    0,
    "--width",
    8,
    "--depth",
    1,
    "--no-progress",
]
STATES = ["generate", "-s", "double_pendulum", "--kind", "states", "--samples", 2000, "--shard-size", 100]


def start(argv, cwd: Path) -> subprocess.Popen:
    """``lagrax ARGV`` in a child process compiled as this one compiles (cheap compilation)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1", "PYTHONPATH": path}
    env.pop("PYTEST_XDIST_WORKER", None)
    args = [sys.executable, "-c", CHILD, *map(str, argv)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_after(proc: subprocess.Popen, started, delay: float, timeout: float = 240) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after ``started()`` (it began writing) is true;
    whether it was killed before it ended by itself."""
    deadline = time.monotonic() + timeout
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    killed = proc.poll() is None
    proc.kill()
    _, err = proc.communicate()
    assert killed or proc.returncode == 0, err.decode()[-2000:]
    return killed


def hidden(folder: Path, prefix: str):
    """True once a temporary file or folder ``.PREFIX...`` exists in ``folder`` (a write began)."""
    return lambda: any(p.name.startswith(f".{prefix}") for p in folder.iterdir())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_run):
    """A folder with the shared run's data (``dp.npz``), ``ck.toml`` (a checkpoint each
    epoch), a 20,000-row log ``big.csv`` and the tiny search space ``kspace.toml``."""
    root = tmp_path_factory.mktemp("faults")
    (root / "dp.npz").symlink_to(tiny_run[0])
    (root / "ck.toml").write_text("[train]\ncheckpoint_every = 1\nval_every = 1\n")
    (root / "kspace.toml").write_text(SWEEP_SPACE)
    t = np.arange(20000) * 0.001
    q = np.stack([np.sin(3 * t), np.cos(2 * t)], axis=1)
    np.savetxt(
        root / "big.csv",
        np.column_stack([t, q, 0.1 * q]),
        delimiter=",",
        header="t,q_a,q_b,tau_a,tau_b",
        comments="",
    )
    return root


def test_killed_train_generate_and_import_leave_whole_files_and_continue_identically(
    inputs, cli, monkeypatch
):
    """Three commands killed at once, each at a random moment after it began writing."""
    monkeypatch.chdir(inputs)
    rng = np.random.default_rng(25)
    train = ["train", "--model", "delan", "--data", "dp.npz", *TRAIN]
    shards, imported = inputs / "shards", inputs / "imported.npz"
    procs = {
        "train": start([*train, "--out", "killed"], inputs),
        "generate": start([*STATES, "--out", shards], inputs),
        "import": start(["import", "big.csv", "--out", imported, "--window", 5], inputs),
    }
    checkpoint = inputs / "killed" / "checkpoints" / "last.ckpt"
    killed = {
        "train": kill_after(procs["train"], checkpoint.exists, rng.uniform(0, 0.2)),
        "generate": kill_after(procs["generate"], hidden(inputs, "shards"), rng.uniform(0, 0.3)),
        "import": kill_after(procs["import"], hidden(inputs, "imported"), rng.uniform(0, 0.05)),
    }
    assert killed["train"], "the training ended before the kill: give it more epochs"
    # what a kill leaves under the final names is whole (or absent)
    assert partial_json_files(inputs / "killed") == []
    assert shards_partial(shards) == [] and dataset_partial(imported) == []

    code, _, err = cli(*train, "--out", "killed", "--resume")
    assert code == 0, err
    code, _, err = cli(*train, "--out", "straight")
    assert code == 0, err
    assert run_digest(inputs / "killed") == run_digest(inputs / "straight")  # bit for bit

    for argv, out, digest in (
        ([*STATES, "--out"], shards, shards_digest),
        (["import", "big.csv", "--window", 5, "--out"], imported, dataset_digest),
    ):
        code, _, err = cli(*argv, out, "--force")
        assert code == 0, err
        code, _, err = cli(*argv, out.with_name("fresh" + out.suffix))
        assert code == 0, err
        assert digest(out) == digest(out.with_name("fresh" + out.suffix))


@pytest.mark.slow
def test_a_killed_sweep_keeps_its_work_and_completes(inputs, cli, monkeypatch):
    """A sweep killed during its second trial keeps the first and completes its trials.
    (A killed ensemble's resume is tests/models/test_ensemble.py's, and the benchmark's
    ``--kills`` kill ensembles at random points.)"""
    monkeypatch.chdir(inputs)
    rng = np.random.default_rng(52)
    sweep = ["sweep", "kspace.toml", "--data", "dp.npz", "--out", "sweep", "--trials", 3, "--no-progress"]
    proc = start(sweep, inputs)
    second_trial = inputs / "sweep" / "trials" / "0001"
    assert kill_after(proc, second_trial.exists, rng.uniform(0, 1.0))

    assert partial_json_files(inputs / "sweep") == []
    before = study_trials(inputs / "sweep")
    assert any(t.state.name == "COMPLETE" for t in before)
    code, _, err = cli(*sweep, "--resume")
    assert code == 0, err
    assert sweep_verdict(before, inputs / "sweep") == (False, False)  # nothing lost, complete


def test_the_bad_inputs_benchmark_quick_subset(tmp_path, tiny_run, monkeypatch):
    """``python -m benchmarks.bad_inputs --quick``: every case of the subset is clean."""
    from benchmarks import bad_inputs

    (tmp_path / "dp.npz").symlink_to(tiny_run[0])
    monkeypatch.chdir(tmp_path)
    results = bad_inputs.quick_cases(tmp_path)
    assert len(results) >= 20
    report = bad_inputs.tables(results, [], "python -m benchmarks.bad_inputs --quick")
    assert f"**{len(results)} cases: clean " in report
    outcomes = {name: (outcome, message) for name, outcome, message in results}
    assert {o for o, _ in outcomes.values()} <= {"clean", "warned", "traceback", "wrong", "accepted"}
    for name in ("import a log, random bytes", "import a log with no t column", "sweep --trials abc"):
        assert outcomes[name][0] == "clean", (name, outcomes[name])
