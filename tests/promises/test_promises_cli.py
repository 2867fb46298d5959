"""Promises of the command line (README, "Promises"): one ``error:`` line and exit 2 for bad
input and OS errors, one line and exit 130 for Ctrl-C, and no output replaced without --force."""

import errno
import json

import numpy as np
import pytest
from tests.helpers import TINY_TRAIN, assert_clean_error, workspace_with

from lagrax.cli.app import abort_message
from lagrax.core.fileio import tree_digest

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

GEN = ["--trajectories", "3", "--duration", "0.5", "--dt", "0.05"]
FAST = TINY_TRAIN


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_run):
    """Two 2-DoF datasets of different systems (``dp.npz``, ``arm.npz``) and a trained run
    with a test split (``run``, a copy of the shared one trained on ``dp.npz``)."""
    from lagrax.cli.app import main

    root = workspace_with(tmp_path_factory.mktemp("promises"), tiny_run)
    assert (
        main(["generate", "--system", "two_link_arm", "--out", str(root / "arm.npz"), *GEN, "--seed", "4"])
        == 0
    )
    return root


def test_os_errors_are_one_line(workspace, tmp_path, cli):
    (tmp_path / "file").write_text("x")
    code, _, err = cli("generate", "--system", "pendulum", "--out", tmp_path / "file" / "x.npz", *GEN)
    assert_clean_error(code, err, "file")
    code, _, err = cli(
        "train", "--model", "delan", "--data", workspace / "dp.npz", "--out", tmp_path / "file" / "r"
    )
    assert_clean_error(code, err)
    (tmp_path / "folder.npz").mkdir()
    code, _, err = cli("generate", "--system", "pendulum", "--out", tmp_path / "folder.npz", *GEN)
    assert_clean_error(code, err, "folder.npz")


@pytest.mark.parametrize(
    "number, words", [(errno.ENOSPC, "no space left"), (errno.EACCES, "permission denied")]
)
def test_a_full_disk_or_a_read_only_folder_is_one_line(workspace, tmp_path, cli, monkeypatch, number, words):
    import os

    def refuse(*args, **kwargs):
        raise OSError(number, os.strerror(number), str(tmp_path / "x.npz"))

    monkeypatch.setattr("lagrax.core.fileio.tempfile.mkstemp", refuse)
    code, _, err = cli("generate", "--system", "pendulum", "--out", tmp_path / "x.npz", *GEN)
    assert_clean_error(code, err, words, "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, cli):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lagrax.systems.list_systems", interrupted)
    code, _, err = cli("systems")
    assert code == 130 and err.startswith("error: interrupted") and err.count("\n") == 1, err


def test_an_eof_is_not_called_an_abort():
    import typer

    try:
        try:
            raise EOFError("truncated")
        except EOFError as e:
            raise typer.Abort() from e
    except typer.Abort as abort:
        message, code = abort_message(abort)
    assert code == 2 and "end of input" in message


def test_evaluate_never_replaces_the_training_metrics(workspace, cli):
    run = workspace / "run"
    before = (run / "metrics.json").read_bytes()
    code, out, err = cli("evaluate", run, "--data", workspace / "dp.npz", "--no-rollout")
    assert code == 0, err
    assert (run / "metrics.json").read_bytes() == before
    written = run / "evaluations" / "dp-test.json"
    assert "torque_mse" in json.loads(written.read_text())
    # the same evaluation again: refused without --force, nothing changed
    snapshot = tree_digest(run)
    code, _, err = cli("evaluate", run, "--data", workspace / "dp.npz", "--no-rollout")
    assert_clean_error(code, err, "dp-test.json", "--force")
    assert tree_digest(run) == snapshot
    code, _, err = cli("evaluate", run, "--data", workspace / "dp.npz", "--no-rollout", "--force")
    assert code == 0, err


def test_evaluating_on_another_systems_data_warns_and_goes_elsewhere(workspace, cli):
    run = workspace / "run"
    before = (run / "metrics.json").read_bytes()
    code, _, err = cli("evaluate", run, "--data", workspace / "arm.npz", "--no-rollout", "--split", "all")
    assert code == 0
    assert err.startswith("warning:") and "'two_link_arm'" in err and "'double_pendulum'" in err
    assert (run / "evaluations" / "arm-all.json").exists()
    assert (run / "metrics.json").read_bytes() == before


def test_report_is_not_replaced_without_force(workspace, cli, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    code, _, err = cli("report", run)
    assert code == 0, err
    (run / "report.md").write_text("my notes")
    snapshot = tree_digest(run)
    code, _, err = cli("report", run)
    assert_clean_error(code, err, "report.md", "--force")
    assert tree_digest(run) == snapshot
    code, _, err = cli("report", run, "--force")
    assert code == 0 and "my notes" not in (run / "report.md").read_text()


def test_runs_do_not_depend_on_the_working_directory(workspace, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = json.loads((workspace / "run" / "config.json").read_text())
    assert config["data"] == str((workspace / "dp.npz").resolve())
    code, _, err = cli("evaluate", workspace / "run", "--no-rollout", "--split", "train", "--force")
    assert code == 0, err


def test_moved_or_changed_data_is_named(workspace, cli, tmp_path):
    import shutil

    from lagrax.cli.app import main

    data = tmp_path / "d.npz"
    shutil.copy(workspace / "dp.npz", data)
    assert main(["train", "--model", "delan", "--data", str(data), "--out", str(tmp_path / "r"), *FAST]) == 0
    data.rename(tmp_path / "moved.npz")
    code, _, err = cli("evaluate", tmp_path / "r", "--split", "all")
    assert_clean_error(code, err, "moved or been deleted", "--data")
    shutil.copy(workspace / "arm.npz", data)
    code, _, err = cli("evaluate", tmp_path / "r", "--split", "all")
    assert_clean_error(code, err, "changed since training")


def test_bench_refuses_to_overwrite_and_a_missing_data_file(tmp_path, cli):
    out = tmp_path / "table.md"
    out.write_text("mine")
    code, _, err = cli("bench", "delan-character", "--quick", "--out", out)
    assert_clean_error(code, err, "table.md", "--force")
    assert out.read_text() == "mine"
    code, _, err = cli("bench", "delan-character", "--data", tmp_path / "missing.npz")
    assert_clean_error(code, err, "missing.npz")


@pytest.mark.parametrize("suffix", [".xyz", ".npz"])
def test_plot_names_the_figure_formats(workspace, tmp_path, cli, suffix):
    out = tmp_path / f"x{suffix}"
    code, _, err = cli("plot", workspace / "dp.npz", "--out", out)
    assert_clean_error(code, err, "png", "svg")
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--seconds", "-1"), ("--seconds", "nan")])
def test_demo_checks_its_settings_before_writing(tmp_path, cli, option, value):
    code, _, err = cli("demo", "--out", tmp_path / "demo", option, value)
    assert_clean_error(code, err, option.lstrip("-"))
    assert not (tmp_path / "demo").exists()


def test_train_force_clears_an_old_report_but_not_user_files(workspace, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    for name in ("report.md", "rollouts.png", "notes.txt"):
        (run / name).write_text("old")
    (run / "evaluations").mkdir(exist_ok=True)
    (run / ".model.eqx.abc123.tmp").write_bytes(np.zeros(100).tobytes())  # a killed write
    code, _, err = cli(
        "train", "--model", "delan", "--data", workspace / "dp.npz", "--out", run, *FAST, "--force"
    )
    assert code == 0, err
    assert not (run / "report.md").exists() and not (run / "rollouts.png").exists()
    assert not (run / "evaluations").exists() and not (run / ".model.eqx.abc123.tmp").exists()
    assert (run / "notes.txt").read_text() == "old"


def test_every_file_a_report_writes_is_a_run_file():
    from lagrax.analysis.metrics import EVALUATIONS
    from lagrax.analysis.report import REPORT_FILES
    from lagrax.training.rundir import RUN_FILES

    assert set(REPORT_FILES) | {EVALUATIONS} <= set(RUN_FILES)
