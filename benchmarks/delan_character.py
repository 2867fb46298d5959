"""The DeLaN character benchmark, as a script of the source checkout.

A thin shell over :mod:`lagrax.benchmarks.character` (the same code as
``lagrax bench delan-character``), with the same options and output:

    python -m benchmarks.delan_character --seeds 0,1,2          # ~10 min on 2 cores
    python -m benchmarks.delan_character --quick                # a one-minute smoke run

The data file defaults to ``../shared/data/delan_character_trajectories.npz`` next to
this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lagrax.benchmarks.character import cli, main  # noqa: F401 (main: for callers of this script)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "delan_character_trajectories.npz"

if __name__ == "__main__":
    sys.exit(cli(default_data_path=DEFAULT_DATA))
