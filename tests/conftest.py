"""Test configuration: float64 everywhere (closed-form checks at 1e-10), a persistent JAX
compilation cache, hypothesis profiles, cheap compilation for the modules that ask for it,
and a small trained run shared by the modules that need one."""

import os
import shutil
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

# Most of the suite's time is XLA compiling the same programs again: in each test that trains
# the same model, in each xdist worker, in each subprocess and in each run. JAX's persistent
# cache keeps compiled programs on disk, keyed by the program itself (its HLO, the compile
# options, the JAX version), so a changed program never meets a stale entry; it is shared by
# both workers and, through the environment, by the subprocesses the tests start. A warm cache
# cuts a training test to about a quarter. Opt-in (`make test-fast` turns it on):
# LAGRAX_TEST_JAX_CACHE=on uses .pytest_cache/jax (git ignores it), a path uses that folder.
# Not the default because jaxlib 0.10.2 once crashed (a segfault in executable.serialize())
# while writing an entry, late in a long single-process run of the whole suite.
JAX_CACHE_LIMIT = 2 << 30  # bytes: above this the cache is emptied at the next session's start


def jax_cache_dir() -> Path | None:
    """The cache folder from ``LAGRAX_TEST_JAX_CACHE``, or None (off, the default)."""
    setting = os.environ.get("LAGRAX_TEST_JAX_CACHE", "")
    if setting.lower() in ("", "0", "off", "no", "false"):
        return None
    if setting.lower() in ("1", "on", "yes", "true"):
        return Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"
    return Path(setting)


def use_jax_cache(path: Path) -> None:
    """Compile through the persistent cache at ``path``, here and in child processes."""
    if "PYTEST_XDIST_WORKER" not in os.environ and path.is_dir():  # the controller, once a run
        if sum(f.stat().st_size for f in path.iterdir() if f.is_file()) > JAX_CACHE_LIMIT:
            shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    settings = dict(
        jax_compilation_cache_dir=str(path),
        jax_persistent_cache_min_compile_time_secs=1.0,  # only the costly ones
        jax_persistent_cache_min_entry_size_bytes=0,
    )
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)


if (_cache := jax_cache_dir()) is not None:
    use_jax_cache(_cache)

from hypothesis import settings  # noqa: E402

# "ci" (the default) is derandomized, so `make test` is reproducible; "thorough" searches
# afresh with more examples: HYPOTHESIS_PROFILE=thorough pytest tests/...
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests import helpers  # noqa: E402
from tests.helpers import CHARACTER_FILE, TINY_DATA, TINY_TRAIN  # noqa: E402


@pytest.fixture(scope="module")
def cheap_compilation():
    """:func:`tests.helpers.cheap_compilation` for the module that asks for it:
    ``pytestmark = pytest.mark.usefixtures("cheap_compilation")``."""
    with helpers.cheap_compilation():
        yield


@pytest.fixture
def character_file():
    """The DeLaN reference character dataset from ../shared/data, or skip."""
    if not CHARACTER_FILE.exists():
        pytest.skip(f"shared data not found at {CHARACTER_FILE}")
    return CHARACTER_FILE


# ---- the README's promises (tests/test_promises_*.py) -------------------------------------


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (exit code, stdout, stderr)`` through :func:`lagrax.cli.app.main`."""
    from lagrax.cli.app import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(data file, run directory)``: a small double-pendulum dataset and a DeLaN trained
    on it by ``lagrax train`` (:data:`~tests.helpers.TINY_TRAIN`, trajectories 0 and 1
    held out for testing), made once per session for the modules that need a trained run.
    Never change them: :func:`tests.helpers.workspace_with` links the data and copies the run."""
    from lagrax.cli.app import main

    root = tmp_path_factory.mktemp("tiny_run")
    data, run = root / "dp.npz", root / "run"
    train = ["train", "--model", "delan", "--data", str(data), "--out", str(run), "--test-labels", "0,1"]
    with helpers.cheap_compilation():
        assert main(["generate", "--system", "double_pendulum", "--out", str(data), *TINY_DATA]) == 0
        assert main([*train, *TINY_TRAIN]) == 0
    return data, run
