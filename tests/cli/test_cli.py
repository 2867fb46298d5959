"""The command line: systems, generate, plot, and how bad input is reported
(one line ``error: ...`` on stderr, exit code 2, no traceback, nothing overwritten)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lagrax.cli.app import main
from lagrax.data.dataset import load_dataset
from lagrax.systems import system
from lagrax.systems.batching import batched

pytestmark = pytest.mark.usefixtures("cheap_compilation")  # compiling is most of their time


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "dp.npz"
    assert (
        main(
            [
                "generate",
                "--system",
                "double_pendulum",
                "--out",
                str(path),
                "--trajectories",
                "3",
                "--duration",
                "0.5",
                "--dt",
                "0.05",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    return path


def test_systems_lists_the_registry(capsys):
    code, out, _ = run(capsys, "systems")
    assert code == 0
    for name in ("pendulum", "double_pendulum", "two_link_arm", "panda"):
        assert name in out
    assert "│ pendulum" in out and "│   1 │" in out  # dof column


def test_systems_without_pinocchio(monkeypatch, capsys):
    """A system whose optional dependency is missing is listed with a hint, not a crash."""
    from rich.console import Console

    import lagrax.cli.systems
    from lagrax import systems

    def needs_pinocchio():
        raise ModuleNotFoundError("No module named 'pinocchio'", name="pinocchio")

    monkeypatch.setitem(systems.REGISTRY, "panda", (needs_pinocchio, "Franka Emika Panda arm"))
    monkeypatch.setattr(lagrax.cli.systems, "console", Console(width=200))
    code, out, _ = run(capsys, "systems")
    assert code == 0
    panda = next(line for line in out.splitlines() if "panda" in line)
    assert "needs Pinocchio: pip install 'lagrax[robots]'" in panda and "│   - │" in panda
    assert "double_pendulum" in out


def test_generate_writes_a_loadable_dataset(small_dataset, capsys):
    ds = load_dataset(small_dataset)
    assert ds.n_trajectories == 3 and len(ds) == 3 * 11 and ds.dof == 2
    assert ds.metadata["kind"] == "excitation" and ds.metadata["seed"] == 4 and ds.dt == 0.05
    np.testing.assert_allclose(
        ds.tau, batched(system("double_pendulum")).inverse_dynamics(ds.q, ds.qd, ds.qdd), atol=1e-10
    )


def test_generate_summary_and_params(tmp_path, capsys):
    path = tmp_path / "p.npz"
    code, out, _ = run(
        capsys,
        "generate",
        "--system",
        "pendulum",
        "--out",
        str(path),
        "--kind",
        "excitation",
        "--trajectories",
        "2",
        "--duration",
        "0.2",
        "--dt",
        "0.1",
        "--param",
        "l=2.0",
        "--noise",
        "0.1",
    )
    assert code == 0
    assert f"wrote {path}: 6 samples, 2 trajectories, 1 joints, excitation, in " in out
    ds = load_dataset(path)
    assert dict(ds.info.params)["l"] == 2.0 and ds.metadata["noise"] == 0.1


def test_generate_refuses_to_overwrite(small_dataset, capsys):
    before = small_dataset.read_bytes()
    code, _, err = run(capsys, "generate", "--system", "pendulum", "--out", str(small_dataset))
    assert_user_error(code, err, "exists", "--force")
    assert small_dataset.read_bytes() == before


def test_generate_bad_input(tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    code, _, err = run(capsys, "generate", "--system", "double_pendulun", "--out", out)
    assert_user_error(code, err, "unknown system 'double_pendulun'", "Did you mean 'double_pendulum'?")
    code, _, err = run(capsys, "generate", "--system", "pendulum", "--out", out, "--kind", "spiral")
    assert_user_error(code, err, "unknown dataset kind 'spiral'")
    code, _, err = run(capsys, "generate", "--system", "pendulum", "--out", out, "--kind", "characters")
    assert_user_error(code, err, "two_link_arm")
    code, _, err = run(capsys, "generate", "--system", "pendulum", "--out", out, "--trajectories", "many")
    assert_user_error(code, err, "--trajectories")
    code, _, err = run(capsys, "generate", "--system", "pendulum", "--out", out, "--param", "mass=2")
    assert_user_error(code, err, "bad parameters for system 'pendulum'")
    assert not (tmp_path / "x.npz").exists()


def test_plot(small_dataset, tmp_path, capsys):
    fig = tmp_path / "fig.png"
    code, out, _ = run(capsys, "plot", str(small_dataset), "--out", str(fig))
    assert code == 0 and fig.read_bytes()[:4] == b"\x89PNG"
    before = fig.read_bytes()
    code, _, err = run(capsys, "plot", str(small_dataset), "--out", str(fig))
    assert_user_error(code, err, "exists")
    assert fig.read_bytes() == before
    assert run(capsys, "plot", str(small_dataset), "--out", str(fig), "--force")[0] == 0


def _broken_copy(src, dst, **changes):
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


def test_plot_bad_datasets(small_dataset, tmp_path, capsys):
    fig = tmp_path / "fig.png"
    with np.load(small_dataset) as f:
        q = f["q"].copy()
    q[[0, 5], 1] = np.nan
    code, _, err = run(
        capsys, "plot", str(_broken_copy(small_dataset, tmp_path / "nan.npz", q=q)), "--out", str(fig)
    )
    assert_user_error(code, err, "'q' has 2 non-finite values")
    with np.load(small_dataset) as f:
        wide = {
            k: np.concatenate([f[k], f[k][:, :1]], axis=1)
            for k in ("q", "qd", "qdd", "tau", "inertial", "coriolis", "gravity", "p", "pdot")
        }
        wide["mass_matrix"] = np.zeros((len(q), 3, 3))
    code, _, err = run(
        capsys, "plot", str(_broken_copy(small_dataset, tmp_path / "wide.npz", **wide)), "--out", str(fig)
    )
    assert_user_error(code, err, "q has 3 joints but the metadata's system 'double_pendulum' has dof=2")
    meta = json.dumps({"system": {"dof": 2}})
    code, _, err = run(
        capsys,
        "plot",
        str(_broken_copy(small_dataset, tmp_path / "m.npz", metadata=np.asarray(meta), qdd=q[:-1])),
        "--out",
        str(fig),
    )
    assert_user_error(code, err, "inconsistent length", "'qdd'")
    code, _, err = run(capsys, "plot", str(tmp_path / "none.npz"), "--out", str(fig))
    assert_user_error(code, err, "does not exist")
    assert not fig.exists()


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lagrax.cli.app import main; main()",
            "generate",
            "--system",
            "nosuch",
            "--out",
            str(tmp_path / "x.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown system 'nosuch'") and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_writes_a_run_and_refuses_to_clobber_it(small_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--data",
        str(small_dataset),
        "--out",
        str(out),
        "--width",
        "8",
        "--depth",
        "1",
        "--no-progress",
    ]
    code, stdout, err = run(
        capsys,
        "train",
        "--model",
        "delan",
        *common,
        "--test-labels",
        "1",
        "--epochs",
        "3",
        "--lbfgs-epochs",
        "1",
        "--lbfgs-steps",
        "2",
    )
    assert code == 0, err
    assert "trained delan" in stdout and "test torque MSE" in stdout
    for name in (
        "config.json",
        "split.json",
        "metrics.jsonl",
        "model.eqx",
        "model.json",
        "metrics.json",
        "summary.json",
    ):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["train"]["lbfgs_epochs"] == 1
    assert config["split"]["test"]["labels"] == ["1"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4  # 3 AdamW + 1 L-BFGS epochs
    before = (out / "model.eqx").read_bytes()

    code, _, err = run(capsys, "train", "--model", "delan", *common, "--epochs", "3")
    assert_user_error(code, err, "exists", "--resume", "--force")
    assert (out / "model.eqx").read_bytes() == before  # nothing lost

    for argv, fragment in [
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--model", "delan", "--test-labels", "zz"], "zz"),
        (["--model", "delan", "--lr", "-1"], "lr must be positive"),
        (["--model", "delan", "--loss", "inverse=1,bogus=2"], "bogus"),
    ]:
        code, _, err = run(
            capsys, "train", *argv, "--data", str(small_dataset), "--out", str(tmp_path / "other")
        )
        assert_user_error(code, err, fragment)
        assert not (tmp_path / "other").exists()


def test_train_refuses_data_without_torques_for_the_inverse_loss(small_dataset, tmp_path, capsys):
    ds = load_dataset(small_dataset)
    ds.tau = None
    from lagrax.data.dataset import save_dataset

    no_tau = save_dataset(ds, tmp_path / "no_tau.npz")
    code, _, err = run(
        capsys, "train", "--model", "delan", "--data", str(no_tau), "--out", str(tmp_path / "r")
    )
    assert_user_error(code, err, "tau")
    assert not (tmp_path / "r").exists()


def test_bench_names_unknown_benchmarks_and_runs_from_the_package(tmp_path, capsys):
    """``lagrax bench`` imports the benchmark from the installed package (not a checkout's
    benchmarks/ folder); a --data file that is not there is an error, a missing default skips."""
    import lagrax.benchmarks.character as character

    code, out, err = run(capsys, "bench", "delan-characters")
    assert_user_error(code, err, "unknown benchmark 'delan-characters'", "Did you mean 'delan-character'")
    code, out, err = run(capsys, "bench", "delan-character", "--data", str(tmp_path / "none.npz"))
    assert_user_error(code, err, "none.npz does not exist")
    assert character.DEFAULT_DATA.name == "delan_character_trajectories.npz"


def test_demo_refuses_a_non_empty_directory_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    code, out, err = run(capsys, "demo", "--out", str(tmp_path))
    assert_user_error(code, err, "exists and is not empty", "--force")
    assert (tmp_path / "keep.txt").read_text() == "mine"
