"""Data-parallel training (lagrax.training.parallel): over 1, 2, 4 and 8 CPU devices and
over 2 processes, the result equals single-device training; batches are really sharded;
a bad device count is a clean error.

The pytest process has already started JAX with one CPU device, so the multi-device
checks run this file as a script in subprocesses: ``devices`` mode with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, ``distributed`` mode as two
processes joined by ``jax.distributed.initialize`` (CPU collectives over Gloo). Every
subprocess has a timeout, so a hang fails instead of blocking.

Tolerance: float64 throughout; data-parallel training differs from one device only in
the order in which the batch mean is summed (per-device partial sums, then the
all-reduce), a relative change of a few ulp per step (measured: ~1e-16). ``RTOL = 1e-9``
leaves room for that to grow over a few AdamW and L-BFGS steps; in float32 the same
reassociation would need ~1e-5.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

RTOL = 1e-9
TIMEOUT = 240  # seconds per subprocess
HERE = Path(__file__).resolve()
EIGHT = "--xla_force_host_platform_device_count=8"


# --------------------------------------------------------------------------------------
# The tiny problem, shared by the test process and the subprocesses
# --------------------------------------------------------------------------------------


@functools.cache
def tiny_problem():
    """A learnable pendulum (two parameters: cheap to compile) and 33 pendulum samples."""
    from tests.helpers import pendulum_model

    from lagrax.systems import system
    from lagrax.data.generators import generate

    model = pendulum_model(2.0, 3.0)
    ds = generate(system("pendulum"), trajectories=3, duration=0.5, dt=0.05, seed=4)
    return model, ds


def tiny_training(devices, run_dir=None, callback=None) -> dict:
    """Train the tiny problem: batches of 10 (not a multiple of 4 or 8), 2 AdamW epochs,
    one L-BFGS epoch, validation; ``{"params": [...], "losses": [...], "val": [...]}``."""
    from lagrax.training import TrainConfig, train

    model, ds = tiny_problem()
    config = TrainConfig(
        epochs=2, batch_size=10, lr=0.1, lbfgs_epochs=1, lbfgs_steps=2, val_every=1, seed=0, dtype="float64"
    )
    result = train(model, ds, ds, config, run_dir=run_dir, progress=False, devices=devices, callback=callback)
    leaves = [result.model.log_a, result.model.log_b]
    assert all(len(leaf.sharding.device_set) == 1 for leaf in leaves)  # back on one device
    return {
        "params": [float(x) for x in leaves],
        "losses": [r["loss"] for r in result.history],
        "val": [r["val_loss"] for r in result.history],
        "stopped": result.stopped_reason,
    }


def assert_same(result: dict, reference: dict, what: str = "") -> None:
    for key in ("params", "losses", "val"):
        np.testing.assert_allclose(result[key], reference[key], rtol=RTOL, err_msg=f"{what} {key}")


# --------------------------------------------------------------------------------------
# What the subprocesses do (this file run as a script)
# --------------------------------------------------------------------------------------


def sharding_facts() -> dict:
    """Whether a gathered batch is split over "data" and the gradient has an all-reduce."""
    from jax.sharding import PartitionSpec

    from lagrax.training import TrainConfig
    from lagrax.training.batches import Batching
    from lagrax.training.parallel import AXIS, DataParallel

    dp = DataParallel.over(8)
    batching = Batching.of(TrainConfig(batch_size=16), 64, rollout=False, sharding=dp.rows)
    data = dp.place({"q": np.arange(64.0 * 2).reshape(64, 2)})
    row = (dp.place(jnp.arange(16)), dp.place(jnp.zeros(0, jnp.int32)))
    batch, _ = jax.jit(batching.gather)(data, row)

    def loss(w, data, row):
        return jnp.mean(jnp.sum(batching.gather(data, row)[0]["q"] * w, axis=1) ** 2)

    hlo = jax.jit(jax.grad(loss)).lower(dp.place(jnp.ones(2)), data, row).compile().as_text()
    return {
        "spec": str(batch["q"].sharding.spec),
        "expected": str(PartitionSpec(AXIS)),
        "shards": sorted({s.data.shape[0] for s in batch["q"].addressable_shards}),
        "all_reduce": "all-reduce" in hlo,
    }


def devices_mode(out: Path) -> None:
    """With 8 CPU devices: the tiny training on 1, 2, 4, 8 devices (1 is the plain path, as
    ``devices=None`` is: test_bad_device_counts_are_clean_errors); sharding facts; the error
    for 9 devices."""
    from lagrax.training.parallel import device_count

    assert jax.device_count() == 8, jax.devices()
    report = {"runs": {str(d): tiny_training(d) for d in (1, 2, 4, 8)}, **sharding_facts()}
    try:
        device_count(9)
    except ValueError as e:
        report["error"] = str(e)
    out.write_text(json.dumps(report))


def distributed_mode(out: Path, run_dir: Path) -> None:
    """One of 2 processes (environment: LAGRAX_COORDINATOR, ...): the tiny training over
    both processes' devices; process 0 writes the run and the result."""
    from lagrax.training.parallel import initialize_distributed, is_writer

    assert initialize_distributed(initialization_timeout=60)
    assert jax.process_count() == 2 and jax.device_count() == 2 and jax.local_device_count() == 1
    # process 1's callback asks to stop after epoch 1; process 0's decision holds on both
    # (without agreeing, process 0 would wait in the next epoch's all-reduce for ever), so
    # the run completes and is the uninterrupted one
    result = tiny_training(None, run_dir=run_dir, callback=lambda epoch, _m, _r: jax.process_index() == 1)
    assert result["stopped"] == "completed" and len(result["losses"]) == 3, result
    if is_writer():
        out.write_text(json.dumps(result))


def run_script(args, env_extra: dict, **kwargs) -> subprocess.Popen:
    """Run this file as a script (the checkout on the path, for ``tests.helpers``)."""
    path = os.pathsep.join(filter(None, [str(HERE.parents[2]), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_X64": "1", "PYTHONPATH": path, **env_extra}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [sys.executable, str(HERE), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"subprocess timed out after {TIMEOUT} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> dict:
    """The tiny training on this process's single device."""
    assert jax.config.jax_enable_x64
    return tiny_training(None)


@pytest.mark.slow
def test_data_parallel_on_8_cpu_devices_equals_one_device(tmp_path, reference):
    out = tmp_path / "devices.json"
    finish(run_script(["devices", out], {"XLA_FLAGS": EIGHT}))
    report = json.loads(out.read_text())
    for devices, result in report["runs"].items():
        assert_same(result, reference, f"devices={devices}")
    # the batch is split over "data" (16 rows: 2 per device), the mean's gradient all-reduced
    assert report["spec"] == report["expected"]
    assert report["shards"] == [2]
    assert report["all_reduce"]
    assert "devices = 9" in report["error"] and "8 device" in report["error"]
    assert "xla_force_host_platform_device_count" in report["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, reference):
    out = tmp_path / "distributed.json"
    env = {"LAGRAX_COORDINATOR": f"localhost:{free_port()}", "LAGRAX_NUM_PROCESSES": "2"}
    env["XLA_FLAGS"] = ""  # one CPU device per process
    procs = [
        run_script(["distributed", out, tmp_path / f"run{i}"], {**env, "LAGRAX_PROCESS_ID": str(i)})
        for i in range(2)
    ]
    try:
        for proc in procs:
            finish(proc)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert_same(json.loads(out.read_text()), reference)
    assert (tmp_path / "run0" / "metrics.jsonl").exists()
    assert not (tmp_path / "run1").exists()  # only process 0 writes


def test_bad_device_counts_are_clean_errors():
    from lagrax.training.config import ConfigError
    from lagrax.training.parallel import data_parallel, device_count

    assert data_parallel(None) is None and data_parallel(1) is None  # the plain path
    assert device_count("all") == jax.device_count()
    with pytest.raises(ConfigError, match="devices = 2 but JAX sees only 1 device"):
        device_count(2)
    for bad in (0, -1, "many"):
        with pytest.raises(ConfigError, match="devices must be"):
            device_count(bad)


def test_cli_refuses_more_devices_than_there_are(cli, tmp_path):
    code, _, err = cli(
        "train", "-m", "delan", "-d", tmp_path / "x.npz", "-o", tmp_path / "run", "--devices", "4"
    )
    assert code == 2
    assert "devices = 4" in err and "only 1 device" in err and "XLA_FLAGS" in err
    assert not (tmp_path / "run").exists()


def test_distributed_settings_from_the_environment():
    from lagrax.training.config import ConfigError
    from lagrax.training.parallel import distributed_settings

    assert distributed_settings(environ={}) is None
    env = {"LAGRAX_COORDINATOR": "h0:1234", "JAX_NUM_PROCESSES": "4", "LAGRAX_PROCESS_ID": "3"}
    assert distributed_settings(environ=env) == {
        "coordinator_address": "h0:1234",
        "num_processes": 4,
        "process_id": 3,
    }
    assert distributed_settings(process_id=0, environ=env)["process_id"] == 0
    with pytest.raises(ConfigError, match="LAGRAX_PROCESS_ID"):
        distributed_settings(environ={"JAX_COORDINATOR_ADDRESS": "h0:1", "LAGRAX_NUM_PROCESSES": "2"})


if __name__ == "__main__":
    if sys.argv[1] == "devices":
        devices_mode(Path(sys.argv[2]))
    else:
        distributed_mode(Path(sys.argv[2]), Path(sys.argv[3]))
