"""Promises of training (README, "Promises"): bad settings fail before any file is touched,
--resume continues the same run or refuses, no run ends 'completed' with a meaningless loss,
and a damaged model is detected."""

import json

import numpy as np
import pytest
from tests.helpers import TINY_DATA, TINY_TRAIN, assert_clean_error, workspace_with

from lagrax.core.errors import LagraxError, NumericalError
from lagrax.core.fileio import tree_digest
from lagrax.training import TrainConfig
from lagrax.training.config import ConfigError

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

GEN = TINY_DATA  # (the shared run's data)
FAST = TINY_TRAIN  # (the shared run's settings: --resume continues it)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_run):
    """The shared run's data (``dp.npz``) and its run (``run``), another dataset of the same
    system and a passive one."""
    from lagrax.cli.app import main

    root = workspace_with(tmp_path_factory.mktemp("train"), tiny_run)
    generate = ["generate", "--system", "double_pendulum"]
    assert main([*generate, "--out", str(root / "other.npz"), *GEN[:-1], "5"]) == 0
    assert main([*generate, "--kind", "passive", "--out", str(root / "passive.npz"), *GEN]) == 0
    return root


@pytest.fixture(scope="module")
def run(data):
    """A run with a test split (trajectories 0 and 1), to resume."""
    return data / "run"


BAD_SETTINGS = [
    ("--lr", "inf", "lr"),
    ("--lr", "nan", "lr"),
    ("--lr", "0", "lr"),
    ("--weight-decay", "-1", "weight_decay"),
    ("--max-seconds", "-1", "max_seconds"),
    ("--patience", "-1", "patience"),
    ("--seed", "-1", "seed"),
    ("--epochs", "-2", "epochs"),
    ("--batch-size", "-3", "batch_size"),
    ("--lbfgs-epochs", "-1", "lbfgs_epochs"),
    ("--val-fraction", "1", "val_fraction"),
    ("--val-fraction", "-0.1", "val_fraction"),
    ("--test-fraction", "1.5", "test_fraction"),
    ("--width", "0", "width"),
    ("--depth", "-1", "depth"),
    ("-O", "nope=3", "nope"),
    ("-O", "width=abc", "width"),
]


@pytest.mark.parametrize("option, value, named", BAD_SETTINGS)
def test_bad_settings_fail_before_any_file_is_written(data, tmp_path, cli, option, value, named):
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "delan", "--data", data / "dp.npz", "--out", out, *FAST, option, value
    )
    assert_clean_error(code, err, named)
    assert not out.exists()


@pytest.mark.parametrize(
    "content, named",
    [
        ('[train]\nepochs = "two"\n', "epochs"),
        ("[train]\nepoch = 3\n", "epoch"),
        ("[train\n", "not valid TOML"),
        (bytes(range(256)), "not valid TOML"),
        ("model = 3\n", "model must be a table"),
    ],
)
def test_bad_config_files(data, tmp_path, cli, content, named):
    config = tmp_path / "run.toml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = cli(
        "train", "--model", "delan", "--data", data / "dp.npz", "--out", tmp_path / "r", "-c", config
    )
    assert_clean_error(code, err, named)
    code, _, err = cli(
        "train", "--model", "delan", "--data", data / "dp.npz", "--out", tmp_path / "r", "-c", tmp_path
    )
    assert_clean_error(code, err, "directory")
    assert not (tmp_path / "r").exists()


def test_train_config_types_are_checked():
    for bad in (
        dict(epochs="two"),
        dict(epochs=2.5),
        dict(lr="0.1"),
        dict(seed=True),
        dict(max_seconds=float("inf")),
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig.from_dict(bad)


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--test-labels", "2,3"], "split"),
        (["--test-labels", "0,1", "--val-fraction", "0.5"], "split"),
        (["--test-labels", "0,1", "--lr", "0.5"], "lr"),
        (["--test-labels", "0,1", "--width", "16"], "width"),
        (["--test-labels", "0,1", "--model", "mlp"], "mlp"),
        (["--test-labels", "0,1", "--data", "OTHER"], "SHA-256"),
    ],
)
def test_resume_refuses_another_run(data, run, cli, extra, named):
    extra = [str(data / "other.npz") if x == "OTHER" else x for x in extra]
    argv = ["train", "--model", "delan", "--data", data / "dp.npz", "--out", run, *FAST, "--resume"]
    if "--model" in extra:
        argv[2] = extra[extra.index("--model") + 1]
        extra = extra[:2]
    if "--data" in extra:
        argv[4] = extra[extra.index("--data") + 1]
        extra = extra[:2]
    snapshot = tree_digest(run)
    code, _, err = cli(*argv, *extra)
    assert_clean_error(code, err, named)
    assert tree_digest(run) == snapshot


def test_resume_with_the_same_settings_continues_and_keeps_the_config(data, run, cli, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "checkpoints" / ".last.ckpt.x1y2.tmp").write_bytes(b"\0" * 1000)  # a kill mid-write
    config = (copy / "config.json").read_bytes()
    argv = ["train", "--model", "delan", "--data", data / "dp.npz", "--out", copy, *FAST, "--resume"]
    code, _, err = cli(*argv)  # the split is the saved one when not given
    assert code == 0, err
    assert (copy / "config.json").read_bytes() == config
    assert not list(copy.rglob(".*.tmp"))


def test_torque_free_data_is_refused_for_the_inverse_loss(data, tmp_path, cli):
    out = tmp_path / "r"
    passive = ["train", "--model", "delan", "--data", data / "passive.npz", "--out", out, *FAST]
    code, _, err = cli(*passive, "--loss", "inverse=1")
    assert_clean_error(code, err, "forward=1")
    assert not out.exists()
    code, _, err = cli(*passive)  # by default, the forward loss on passive data
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["train"]
    assert config["inverse"] == 0 and config["forward"] > 0
    assert json.loads((out / "summary.json").read_text())["stopped_reason"] == "completed"


def test_a_diverged_run_is_not_completed(data, tmp_path, monkeypatch):
    from lagrax.training import run

    monkeypatch.setattr(run, "DIVERGED_LOSS", 1e-12)  # any real loss now counts as diverged
    with pytest.raises(NumericalError, match="diverged"):
        run.run_training(
            "delan",
            data / "dp.npz",
            tmp_path / "r",
            {"epochs": 1, "lbfgs_epochs": 0},
            {"width": 8, "depth": 1},
            progress=False,
        )
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["stopped_reason"] == "diverged"


def test_a_damaged_model_file_is_detected(run, tmp_path):
    import shutil

    from lagrax.models.io import load_model

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    load_model(copy)  # intact: loads
    raw = bytearray((copy / "model.eqx").read_bytes())
    raw[len(raw) // 2] ^= 0x10
    (copy / "model.eqx").write_bytes(bytes(raw))
    with pytest.raises(LagraxError, match="damaged"):
        load_model(copy)


def test_a_model_json_of_another_kind_is_named(run, tmp_path, cli):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    meta = json.loads((copy / "model.json").read_text())
    for kind in ("lnn", "mlp", "nope", 3):
        (copy / "model.json").write_text(json.dumps({**meta, "kind": kind}))
        code, _, err = cli("evaluate", copy, "--no-rollout")
        assert_clean_error(code, err, "model.json")


def test_the_run_records_its_data(run, data):
    from lagrax.core.fileio import file_sha256

    config = json.loads((run / "config.json").read_text())
    assert config["data"] == str((data / "dp.npz").resolve())
    assert config["data_sha256"] == file_sha256(data / "dp.npz")
    assert config["data_name"] == "double_pendulum"
    assert np.isfinite(json.loads((run / "summary.json").read_text())["final_loss"])


def test_divergence_criteria():
    from lagrax.training.run import divergence

    assert divergence([{"loss": 1.0}, {"loss": 0.01}]) is None
    assert divergence([]) is None
    assert "nan" in divergence([{"loss": 1.0}, {"loss": float("nan")}])
    assert "above" in divergence([{"loss": 2e26}, {"loss": 2e26}])
    assert "first epoch" in divergence([{"loss": 0.5}, {"loss": 50.0}])


def test_passive_data_gets_no_torque_metrics(data, tmp_path):
    """A model trained on torque-free data is evaluated on what the data supports."""
    import math

    from lagrax.analysis.metrics import held_out_metrics
    from lagrax.training import run_training

    settings = {"epochs": 2, "lbfgs_epochs": 0}
    out = run_training("delan", data / "passive.npz", tmp_path / "r", settings, {"width": 8, "depth": 1},
                       test_fraction=0.25, progress=False, evaluate=held_out_metrics)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isnan(metrics.get("torque_mse", math.nan)) and math.isnan(
        metrics.get("torque_nmse", math.nan)
    )
    assert math.isfinite(metrics["qdd_mse"])
