"""``lagrax sweep``: Optuna studies of training runs (lagrax.training.sweep), workers, pruning,
outputs, and bad input reported as one ``error: ...`` line with nothing written."""

import csv
import json
import sys
import textwrap

import pytest

from tests.helpers import assert_clean_error

optuna = pytest.importorskip("optuna")

import lagrax.training  # noqa: E402
from lagrax.core.errors import NumericalError  # noqa: E402
from lagrax.training.sweep import SWEEP_FILES, PruningCallback, load_space, open_storage  # noqa: E402
from lagrax.training import read_toml  # noqa: E402

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time

SPACE = """
[sweep]
model = "delan"
val_fraction = 0.25
startup_trials = 2
prune_after_trials = 1

[train]
epochs = 3
lbfgs_epochs = 0
val_every = 1

[model]
depth = 1

[search.lr]
type = "float"
low = 1e-4
high = 1e-1
log = true

[search.width]
type = "int"
low = 4
high = 8
step = 4
"""


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """A tiny 1-DoF pendulum dataset: 4 trajectories of 11 samples."""
    from lagrax.cli.app import main

    path = tmp_path_factory.mktemp("sweep_data") / "pendulum.npz"
    argv = ["generate", "--system", "pendulum", "--out", path, "--trajectories", "4", "--duration", "0.5"]
    assert main([str(a) for a in [*argv, "--dt", "0.05", "--seed", "1"]]) == 0
    return path


def write_space(tmp_path, text=SPACE, name="space.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.slow
def test_two_workers_share_one_study_and_best_toml_trains(cli, pendulum, tmp_path):
    space, out = write_space(tmp_path), tmp_path / "sweep"
    # a trial each (the workers are spawned processes: each starts JAX and compiles its own)
    code, stdout, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 2, "--workers", 2)
    assert code == 0, err
    assert "best: trial" in stdout and "study space" in stdout
    for name in ("study.db", "trials.csv", "best.toml", "history.png", "sweep.json"):
        assert (out / name).stat().st_size > 0, name
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == [0, 1]
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"} and "COMPLETE" in {r["state"] for r in rows}
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001"]
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["workers"] == 2 and summary["best"]["value"] == study.best_value

    train, model = read_toml(out / "best.toml")
    assert train["epochs"] == 3 and model["depth"] == 1 and set(study.best_params) <= {*train, *model}
    run = tmp_path / "best_run"
    argv = ["--model", "delan", "--config", out / "best.toml", "--val-fraction", "0.25", "--no-progress"]
    code, stdout, err = cli("train", *argv, "--data", pendulum, "--out", run)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == study.best_params["lr"]


def fake_run_training(model, data, run_dir, train, model_options, *, callback, **kwargs):
    """Stands in for lagrax.training.run_training: the validation loss is the trial's lr
    at every epoch (so trials are clearly better or worse); trial 2 diverges."""
    from pathlib import Path

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True)
    if run_dir.name == "0002":
        raise NumericalError("training diverged: the final loss is nan")
    for epoch in range(1, 6):
        if callback(epoch, None, {"loss": 1.0, "val_loss": train["lr"]}):
            break
    (run_dir / "summary.json").write_text(json.dumps({"best_val_loss": train["lr"], "final_loss": 1.0}))
    return run_dir


def test_sweep_prunes_worse_trials_and_survives_failed_ones(cli, pendulum, tmp_path, monkeypatch):
    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, out = write_space(tmp_path), tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "trials.csv").write_text("an old sweep's table")
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 4)
    assert_clean_error(code, err, "not empty", "--force")
    assert (out / "trials.csv").read_text() == "an old sweep's table"  # nothing touched

    code, stdout, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 8, "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only the sweep's files
    rows = list(csv.DictReader((out / "trials.csv").open()))
    states = [r["state"] for r in rows]
    assert len(rows) == 8 and states[2] == "FAIL" and "diverged" in rows[2]["error"]
    assert "PRUNED" in states and "COMPLETE" in states
    complete = [float(r["value"]) for r in rows if r["state"] == "COMPLETE"]
    best = json.loads((out / "sweep.json").read_text())["best"]
    assert best["value"] == min(complete) == pytest.approx(best["params"]["lr"])
    assert "failed" in stdout and "pruned" in stdout and "ETA" in stdout
    train, model = read_toml(out / "best.toml")
    assert train["lr"] == best["params"]["lr"] and model == {"depth": 1, "width": best["params"]["width"]}
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"

    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 10, "--resume")
    assert code == 0, err
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 10 and (out / "notes.txt").exists()
    assert len(list((out / "trials").iterdir())) == 10  # the first 8 trials' runs are kept
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", tmp_path / "new", "--resume")
    assert_clean_error(code, err, "nothing to resume")


def test_sweeps_with_one_storage_share_one_study(cli, pendulum, tmp_path, monkeypatch):
    """What workers on several machines do: the same command, the same --storage."""
    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, storage = write_space(tmp_path), f"sqlite:///{tmp_path / 'shared.db'}"
    for machine, trials in (("a", 2), ("b", 4)):
        out = tmp_path / machine
        code, _, err = cli(
            "sweep", space, "--data", pendulum, "--out", out, "--trials", trials, "--storage", storage
        )
        assert code == 0, err
        assert not (out / "study.db").exists()
    assert sorted(p.name for p in (tmp_path / "b" / "trials").iterdir()) == ["0002", "0003"]
    assert len(optuna.load_study(study_name="space", storage=storage).trials) == 4
    other = write_space(tmp_path, SPACE.replace("epochs = 3", "epochs = 5"), name="space.toml")
    code, _, err = cli("sweep", other, "--data", pendulum, "--out", tmp_path / "c", "--storage", storage)
    assert_clean_error(code, err, "another search space")
    assert not (tmp_path / "c").exists()


def test_pruning_callback_reports_each_validation_and_stops_a_bad_trial():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    callback = PruningCallback(good, "val_loss")
    assert not any(callback(e, None, {"val_loss": 0.1}) for e in range(1, 4))
    study.tell(good, 0.1)
    bad = study.ask()
    callback = PruningCallback(bad, "val_loss")
    assert callback(1, None, {"loss": 5.0}) is False  # no validation this epoch: nothing reported
    assert callback(2, None, {"val_loss": float("nan")}) is False
    assert callback(3, None, {"val_loss": 1.0}) is True and callback.pruned_at == 3
    assert study.get_trials()[-1].intermediate_values == {3: 1.0}


BAD_SPACES = [
    ('[search.lr]\ntype = "normal"\nlow = 1\nhigh = 2', "type must be one of float, int, categorical"),
    ('[search.lr]\ntype = "float"\nlow = 0.1\nhigh = 0.01', "low (0.1) is greater than high (0.01)"),
    ('[search.lr]\ntype = "float"\nlo = 0.1\nhigh = 1', "unknown key 'lo'"),
    ('[search.lr]\ntype = "float"\nlow = 0\nhigh = 1\nlog = true', "log-scaled range needs low > 0"),
    ('[search.width]\ntype = "int"\nlow = 4.5\nhigh = 8', "low must be a whole number"),
    ('[search.widht]\ntype = "int"\nlow = 4\nhigh = 8', "did you mean 'width'"),
    ('[search.activation]\ntype = "categorical"\nchoices = []', "choices must be a non-empty list"),
    ('[search.lr]\ntype = "float"\nlow = -1\nhigh = 1', "lr must be positive"),
    ("[searhc.lr]\nlow = 1", "unknown table [searhc]"),
]


@pytest.mark.parametrize("search, fragment", BAD_SPACES)
def test_bad_search_spaces_are_clean_errors_and_write_nothing(cli, pendulum, tmp_path, search, fragment):
    space = write_space(tmp_path, '[sweep]\nmodel = "delan"\n' + search)
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", tmp_path / "out")
    assert_clean_error(code, err, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "sweep, fragment",
    [
        ('model = "delna"', "unknown model 'delna'"),
        ('model = "delan"\nval_fraction = 0', "needs a validation split"),
        ('model = "delan"\nsampler = "grid"', "unknown [sweep] setting"),
        ("", "needs model = one of"),
    ],
)
def test_bad_sweep_tables_are_clean_errors(cli, pendulum, tmp_path, sweep, fragment):
    space = write_space(tmp_path, f"[sweep]\n{sweep}\n[search.lr]\ntype = 'float'\nlow = 0.001\nhigh = 0.01")
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", tmp_path / "out")
    assert_clean_error(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_missing_inputs_and_missing_optuna_are_clean_errors(cli, pendulum, tmp_path, monkeypatch):
    out = tmp_path / "out"
    code, _, err = cli("sweep", tmp_path / "nosuch.toml", "--data", pendulum, "--out", out)
    assert_clean_error(code, err, "nosuch.toml", "does not exist")
    space = write_space(tmp_path)
    code, _, err = cli("sweep", space, "--data", tmp_path / "nodata.npz", "--out", out)
    assert_clean_error(code, err, "nodata.npz")
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 0)
    assert_clean_error(code, err, "--trials must be at least 1")
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--storage", "not a url")
    assert_clean_error(code, err, "not a database URL")
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the extra were not installed
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out)
    assert_clean_error(code, err, "lagrax sweep needs Optuna: pip install 'lagrax[sweep]'")
    assert not out.exists()


def test_space_names_go_to_the_train_or_model_table(tmp_path):
    space = load_space(write_space(tmp_path, SPACE + '\n[search.forward]\ntype = "float"\nlow = 0\nhigh = 1'))
    tables = {p.name: p.table for p in space.params}
    assert tables == {"lr": "train", "width": "model", "forward": "train"}
    train, model = space.settings({"lr": 0.01, "width": 8, "forward": 0.5})
    assert train == {"epochs": 3, "lbfgs_epochs": 0, "val_every": 1, "lr": 0.01, "forward": 0.5}
    assert model == {"depth": 1, "width": 8}
    assert "study.db" in SWEEP_FILES and space.study == "space"


# ---- resuming, interruptions and one writer per sweep directory (issue 25) --------------

RANDOM_SPACE = SPACE.replace("startup_trials = 2", "startup_trials = 50")  # every trial drawn at random


def trial_params(out):
    return [(r["lr"], r["width"]) for r in csv.DictReader((out / "trials.csv").open()) if r["lr"]]


def test_a_resumed_sweep_draws_new_parameters(cli, pendulum, tmp_path, monkeypatch):
    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, out = write_space(tmp_path, RANDOM_SPACE), tmp_path / "sweep"
    argv = ["sweep", space, "--data", pendulum, "--out", out, "--no-progress"]
    assert cli(*argv, "--trials", 2)[0] == 0
    code, _, err = cli(*argv, "--trials", 4, "--resume")
    assert code == 0, err
    lrs = [lr for lr, _ in trial_params(out)]
    assert len(lrs) == 4 and len(set(lrs)) == 4, lrs  # before: trial 2 drew trial 0's values again


def test_trials_of_killed_processes_are_marked_interrupted_and_do_not_count(
    cli, pendulum, tmp_path, monkeypatch
):
    import socket
    import subprocess

    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, out = write_space(tmp_path), tmp_path / "sweep"
    argv = ["sweep", space, "--data", pendulum, "--out", out, "--no-progress"]
    assert cli(*argv, "--trials", 2)[0] == 0
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'study.db'}")
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = study.ask()  # what a `kill -9` during a trial leaves: RUNNING for ever
    killed.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    study.ask()  # killed before it recorded its process
    code, stdout, err = cli(*argv, "--trials", 4, "--resume")
    assert code == 0, err
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows[2:4]] == ["FAIL", "FAIL"]
    assert "interrupted" in rows[2]["error"] and str(gone.pid) in rows[2]["error"]
    assert len(rows) == 6 and {r["state"] for r in rows[4:]} <= {"COMPLETE", "PRUNED"}  # 4 count


def test_resume_with_another_space_file_is_refused(cli, pendulum, tmp_path, monkeypatch):
    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, out = write_space(tmp_path), tmp_path / "sweep"
    assert cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 2, "--no-progress")[0] == 0
    before = {name: (out / name).read_bytes() for name in ("trials.csv", "best.toml", "sweep.json")}
    other = write_space(tmp_path, name="other.toml")
    code, _, err = cli("sweep", other, "--data", pendulum, "--out", out, "--trials", 4, "--resume")
    assert_clean_error(code, err, "cannot resume", "'space'", "other")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert optuna.study.get_all_study_names(f"sqlite:///{out / 'study.db'}") == ["space"]
    early = tmp_path / "killed_early"
    early.mkdir()
    open_storage(f"sqlite:///{early / 'study.db'}")  # a sweep killed before it made its study
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", early, "--trials", 2, "--resume")
    assert_clean_error(code, err, "nothing to resume", "--force")


def test_ctrl_c_names_the_sweep_resume_command_and_the_trial_does_not_count(
    cli, pendulum, tmp_path, monkeypatch
):
    def interrupted(model, data, run_dir, train, *args, **kwargs):
        if run_dir.name == "0001":
            raise KeyboardInterrupt
        return fake_run_training(model, data, run_dir, train, *args, **kwargs)

    monkeypatch.setattr(lagrax.training, "run_training", interrupted)
    space, out = write_space(tmp_path), tmp_path / "sweep"
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 3, "--no-progress")
    assert code == 130 and err.count("\n") == 1, err
    assert err.startswith("error: interrupted (Ctrl-C); `lagrax sweep ") and "--resume` continues" in err
    assert f"--out {out} --trials 3" in err
    code, _, err = cli("sweep", space, "--data", pendulum, "--out", out, "--trials", 3, "--resume")
    assert code == 0, err
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 4 and rows[1]["state"] == "FAIL" and "interrupted" in rows[1]["error"]


def test_a_second_sweep_into_one_directory_is_refused_naming_the_first(cli, pendulum, tmp_path, monkeypatch):
    import os

    from lagrax.core.locks import LOCK_NAME, DirectoryLock

    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, out = write_space(tmp_path), tmp_path / "sweep"
    argv = ["sweep", space, "--data", pendulum, "--out", out, "--trials", 2, "--no-progress"]
    with DirectoryLock(out, "lagrax sweep"):  # what a sweep running there holds
        for extra in ([], ["--force"], ["--resume"]):
            code, _, err = cli(*argv, *extra)
            assert_clean_error(code, err, "in use by", f"pid {os.getpid()}", "lagrax sweep")
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not out.exists() or not any(out.iterdir())
    out.mkdir(exist_ok=True)
    (out / LOCK_NAME).write_text('{"pid": 999999, "host": "gone", "what": "lagrax sweep", "started": 0}')
    code, _, err = cli(*argv)  # a lock left by a killed process: taken over, and said so
    assert code == 0 and "stale lock" in err and "pid 999999" in err, err
    assert not (out / LOCK_NAME).exists() and (out / "best.toml").exists()


def test_two_sweeps_sharing_one_sqlite_study_lose_no_trial(pendulum, tmp_path, monkeypatch):
    import threading

    from lagrax.training.sweep import run_sweep

    monkeypatch.setattr(lagrax.training, "run_training", fake_run_training)
    space, storage = write_space(tmp_path), f"sqlite:///{tmp_path / 'shared.db'}"
    errors = []

    def worker(name):
        try:
            run_sweep(space, pendulum, tmp_path / name, 8, storage=storage, seed=ord(name), progress=False)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    trials = optuna.load_study(study_name="space", storage=storage).trials
    assert 8 <= len(trials) <= 9 and all(t.state.is_finished() for t in trials)
    runs = sorted(p.name for name in "ab" for p in (tmp_path / name / "trials").iterdir())
    assert runs == [f"{t.number:04d}" for t in trials]  # each trial's run, once, in one of the two


def test_a_storage_that_cannot_be_opened_is_one_line(cli, pendulum, tmp_path):
    storage = "sqlite:////nonexistent/folder/study.db"  # SQLAlchemy's message has 3 lines and a link
    out = tmp_path / "out"
    code, _, err = cli("sweep", write_space(tmp_path), "--data", pendulum, "--out", out, "--storage", storage)
    assert_clean_error(code, err, "cannot open the study storage", "unable to open database file")
    assert not out.exists()
