"""Test configuration: float64 everywhere (closed-form checks at 1e-10) and hypothesis profiles."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

from hypothesis import settings  # noqa: E402

# "ci" (the default) is derandomized, so `make test` is reproducible; "thorough" searches
# afresh with more examples: HYPOTHESIS_PROFILE=thorough pytest tests/...
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests.helpers import CHARACTER_FILE  # noqa: E402


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
