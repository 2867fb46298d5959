"""Reliability (issue 25, part A): each case a new user hit is one ``error:`` line and exit 2,
or a ``warning:`` line, never a traceback, an abort or silent garbage; runs that share a
directory are refused while another holds it; a full disk leaves no partial file."""

import errno
import io
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from tests.helpers import assert_clean_error, workspace_with

import lagrax
from lagrax.core.errors import LagraxError, OutOfRangeError, ShapeError

pytestmark = pytest.mark.usefixtures("cheap_compilation")

CONTROL = ["control", "--system", "two_link_arm", "--no-baselines"]
GEN = ["--trajectories", "2", "--duration", "0.2", "--dt", "0.05"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_run):
    """The shared double-pendulum data (``dp.npz``) and a copy of its trained run (``run``)."""
    return workspace_with(tmp_path_factory.mktemp("reliability"), tiny_run)


# ---- tracebacks, aborts and silent garbage: one line each -----------------------------------


def test_generate_refuses_a_negative_seed(cli, tmp_path):
    for extra in ([], ["--kind", "states", "--samples", "8", "--shard-size", "4"]):
        code, _, err = cli("generate", "--system", "pendulum", "--out", tmp_path / "x", "--seed", -1, *extra)
        assert_clean_error(code, err, "--seed", "non-negative")
    assert list(tmp_path.iterdir()) == []


def test_import_refuses_time_stamps_too_large_to_differentiate_by(cli, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("t,q_0\n" + "".join(f"{1e300 * (i + 1)},{0.01 * i}\n" for i in range(20)))
    code, _, err = cli("import", log, "--out", tmp_path / "x.npz")
    assert_clean_error(code, err, "sample period", "seconds")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--rate", "0"], ["control rate must be a positive"]),
        (["--duration", "1e7"], ["memory", "--duration"]),  # 74.5 GiB of references alone
        (["--duration", "1000", "--count", "100000"], ["memory", "--count"]),  # was an XLA abort
        (["--duration", "nan"], ["--duration must be a positive"]),
    ],
)
def test_control_refuses_settings_it_cannot_honour(cli, tmp_path, args, fragments):
    code, _, err = cli(*CONTROL, "--out", tmp_path / "c.npz", *args)
    assert_clean_error(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "samples, args, fragments",
    [
        (1, [], ["at least 2 samples"]),  # every RMSE over one sample would be 0
        (3, ["--payload", "-5"], ["payload must be a mass >= 0"]),  # its loops diverged
    ],
)
def test_control_refuses_a_one_sample_reference_and_a_negative_payload(
    cli, tmp_path, samples, args, fragments
):
    zeros = np.zeros((samples, 2))
    np.savez(tmp_path / "ref.npz", q=zeros, qd=zeros, qdd=zeros)
    code, _, err = cli(*CONTROL, "--trajectory", tmp_path / "ref.npz", "--out", tmp_path / "c.npz", *args)
    assert_clean_error(code, err, *fragments)
    assert not (tmp_path / "c.npz").exists()


def test_a_shard_with_a_flipped_byte_fails_its_checksum(cli, tmp_path):
    from lagrax.core.errors import DatasetError
    from lagrax.data.shards import generate_shards, open_shards

    shards = tmp_path / "shards"
    generate_shards(lagrax.system("pendulum"), shards, 16, 8, chunk=16, progress=False)
    victim = shards / "shard-00001.tau.npy"
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0x10  # a value, not the header: the file still parses, sizes match
    victim.write_bytes(bytes(raw))
    data = open_shards(shards)
    data.arrays(0)  # an intact shard reads
    with pytest.raises(DatasetError, match="SHA-256"):
        data.arrays(1)
    code, _, err = cli("train", "--model", "delan", "--data", shards, "--out", tmp_path / "run")
    assert_clean_error(code, err, "shard-00001", "SHA-256")
    assert not (tmp_path / "run").exists()


def test_a_model_without_its_checksum_is_refused(workspace, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    meta = json.loads((run / "model.json").read_text())
    assert lagrax.load_model(run) is not None  # as saved: loads
    del meta["model_sha256"]
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(LagraxError, match="model_sha256"):
        lagrax.load_model(run)
    code, _, err = cli("evaluate", run, "--no-rollout")
    assert_clean_error(code, err, "model_sha256")


def test_rollout_warns_of_a_model_of_another_system(workspace, tmp_path, cli, monkeypatch):
    """A model trained on double-pendulum data rolled out against the two-link arm (both 2
    joints): a ``warning:`` line, as ``evaluate`` gives. (The integration is stood in for:
    what is checked is what the command says about its inputs.)"""
    from lagrax.analysis import prediction

    def fake_predict(system, q0, qd0, t, tau=None, *, truth=None, name=None, **solver):
        states = np.zeros((len(q0), len(t), q0.shape[-1]))
        return prediction.Prediction(name or "truth", t, states + 0.1, states + 0.1)

    monkeypatch.setattr(prediction, "predict", fake_predict)
    argv = ["--random", "1", "--duration", "0.1", "--dt", "0.05", "--out", tmp_path / "r.npz"]
    code, _, err = cli("rollout", workspace / "run", "--system", "two_link_arm", *argv)
    assert code == 0, err
    assert err.startswith("warning:") and "'double_pendulum'" in err and "'two_link_arm'" in err, err
    code, _, err = cli("rollout", workspace / "run", "--system", "double_pendulum", *argv, "--force")
    assert code == 0 and "warning" not in err, err  # its own system: nothing to say


@pytest.mark.parametrize(
    "name, params",
    [
        ("charged_particle", {"B": float("nan")}),
        ("double_pendulum", {"m1": float("inf")}),
        ("two_link_arm", {"l1": np.float32("nan")}),
    ],
)
def test_a_system_with_a_non_finite_parameter_is_refused(name, params):
    from lagrax.systems.parameters import ParameterError

    with pytest.raises(ParameterError, match="finite"):
        lagrax.system(name, **params)


@pytest.mark.parametrize("name, params", [("cartpole", {"mp": "abc"}), ("furuta", {"Lr": "abc"})])
def test_text_where_a_number_belongs_is_refused_naming_the_parameter(name, params):
    from lagrax.systems.parameters import ParameterError

    (key,) = params
    with pytest.raises(ParameterError, match=f"parameter {key}=.* must be a number"):
        lagrax.system(name, **params)


@pytest.mark.parametrize("damaged", ["config.json", "split.json"])
def test_a_run_file_that_is_not_text_is_one_line(workspace, tmp_path, cli, damaged):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    (run / damaged).write_bytes(b"\xe8\xae" + (run / damaged).read_bytes())
    code, _, err = cli("evaluate", run, "--no-rollout")
    assert_clean_error(code, err, damaged, "not UTF-8")


def test_bench_checks_its_arguments_without_the_data(cli, tmp_path, monkeypatch):
    from lagrax.benchmarks import character

    monkeypatch.setattr(character, "default_data", lambda: tmp_path / "absent.npz")
    code, out, _ = cli("bench", "delan-character", "--seeds", "0")
    assert code == 0 and "skipped" in out  # the data absent: skipped, as before
    code, _, err = cli("bench", "delan-character", "--seeds", "a,b")
    assert_clean_error(code, err, "--seeds")
    code, _, err = cli("bench", "delan-character", "--models", "delann")
    assert_clean_error(code, err, "did you mean 'delan'")


def test_a_model_too_large_for_memory_is_refused_before_xla():
    info = lagrax.system("double_pendulum").info
    with pytest.raises(OutOfRangeError, match="memory.*smaller width"):
        lagrax.make_model("delan", info, key=jax.random.PRNGKey(0), width=10**9)
    assert lagrax.make_model("delan", info, key=jax.random.PRNGKey(0), width=8, depth=1) is not None


def test_train_refuses_an_ensemble_too_large_for_memory(workspace, tmp_path, cli):
    out = tmp_path / "run"
    argv = ["train", "--model", "delan", "--data", workspace / "dp.npz", "--out", out, "--width", "256"]
    code, _, err = cli(*argv, "--ensemble", "1000000")
    assert_clean_error(code, err, "ensemble of 1000000 members", "memory", "--ensemble")
    assert not out.exists()


def test_batched_refuses_an_empty_batch():
    dp = lagrax.batched(lagrax.system("double_pendulum"))
    with pytest.raises(ShapeError, match="no samples"):
        dp.mass_matrix(np.zeros((0, 2)))
    with pytest.raises(ShapeError, match="no samples"):
        dp.inverse_dynamics(np.zeros((3, 0, 2)), np.zeros((3, 0, 2)), np.zeros((3, 0, 2)))


# ---- runs that share a directory -------------------------------------------------------------


def test_a_second_training_into_a_locked_directory_is_refused_naming_the_first(workspace, tmp_path, cli):
    from lagrax.core.locks import LOCK_NAME, DirectoryLock

    out = tmp_path / "run"
    argv = ["train", "--model", "delan", "--data", workspace / "dp.npz", "--out", out]
    with DirectoryLock(out, what="train"):  # what a training running there holds
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["what"] == "lagrax train"
        for extra in ([], ["--force"], ["--resume"]):
            code, _, err = cli(*argv, *extra)
            assert_clean_error(code, err, "in use by lagrax train", f"pid {os.getpid()}", holder["host"])
        with pytest.raises(LagraxError, match="in use by"):  # also within one process
            DirectoryLock(out, what="train").acquire()
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not out.exists()  # the lock made the folder, and removed it again


def test_generating_shards_into_a_locked_directory_is_refused(tmp_path):
    from lagrax.core.locks import DirectoryLock
    from lagrax.data.shards import generate_shards

    out = tmp_path / "shards"
    with DirectoryLock.beside(out, "generate"):
        with pytest.raises(LagraxError, match="in use by lagrax generate"):
            generate_shards(lagrax.system("pendulum"), out, 16, 8, chunk=16, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path):
    import socket

    from lagrax.core.locks import LOCK_NAME, DirectoryLock

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)  # a process of this host that has exited
    record = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00+00:00",
        "what": "train",
    }
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    said = []
    with DirectoryLock(tmp_path, "train", report=said.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(said) == 1 and "stale lock" in said[0] and f"pid {pid}" in said[0], said
    assert "no longer running" in said[0]
    assert not (tmp_path / LOCK_NAME).exists()


# ---- a full disk -------------------------------------------------------------------------------


class _FullDisk(io.FileIO):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    room = 0

    def write(self, data):
        if len(data) > _FullDisk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _FullDisk.room -= len(data)
        return super().write(data)


def _fill_disk(monkeypatch, room: int) -> None:
    """Every atomic write (lagrax.core.fileio) meets a disk with ``room`` bytes left."""
    _FullDisk.room = room
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="rb", *a, **k: io.BufferedWriter(_FullDisk(fd, "wb")))


def test_a_full_disk_leaves_no_partial_file_and_the_previous_one_intact(cli, tmp_path, monkeypatch):
    import jax.numpy as jnp

    from lagrax.data.shards import generate_shards
    from lagrax.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "ckpt", {"w": jnp.arange(3.0)}, {"epoch": 1})
    previous = (tmp_path / "ckpt" / CHECKPOINT_NAME).read_bytes()
    (tmp_path / "x.npz").write_bytes(b"the user's data")
    with monkeypatch.context() as m:
        _fill_disk(m, room=100)
        with pytest.raises(OSError) as caught:  # a checkpoint: the previous one stays
            save_checkpoint(tmp_path / "ckpt", {"w": jnp.arange(1000.0)}, {"epoch": 2})
        assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith(CHECKPOINT_NAME)
        code, _, err = cli("generate", "--system", "pendulum", "--out", tmp_path / "x.npz", "--force", *GEN)
        with pytest.raises(OSError):  # shards: no directory under the final name
            generate_shards(lagrax.system("pendulum"), tmp_path / "shards", 64, 16, chunk=64, progress=False)
    assert_clean_error(code, err, "no space left on device", "x.npz")
    assert (tmp_path / "x.npz").read_bytes() == b"the user's data"
    state, meta = load_checkpoint(tmp_path / "ckpt", {"w": jnp.zeros(3)})
    assert meta == {"epoch": 1} and np.array_equal(state["w"], np.arange(3.0))
    assert (tmp_path / "ckpt" / CHECKPOINT_NAME).read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "x.npz"]  # no temporary left
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [CHECKPOINT_NAME]
