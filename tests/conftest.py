"""Test configuration: float64 everywhere (closed-form checks at 1e-10) and hypothesis profiles."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

from hypothesis import settings  # noqa: E402

# "ci" (the default) is derandomized, so `make test` is reproducible; "thorough" searches
# afresh with more examples: HYPOTHESIS_PROFILE=thorough pytest tests/...
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHARACTER_FILE = SHARED_DATA / "delan_character_trajectories.npz"


@pytest.fixture
def character_file():
    """The DeLaN reference character dataset from ../shared/data, or skip."""
    if not CHARACTER_FILE.exists():
        pytest.skip(f"shared data not found at {CHARACTER_FILE}")
    return CHARACTER_FILE
