"""Benchmarks that ship with the package, so that ``lagrax bench NAME`` works after
``pip install lagrax`` as well as in a source checkout.

* :mod:`lagrax.benchmarks.character`: the DeLaN character benchmark
  (``lagrax bench delan-character``; ``benchmarks/delan_character.py`` is a thin script
  over it).

:data:`BENCHMARKS` maps each name the CLI offers to its module's ``main``. The
performance benchmark (``benchmarks/run.py``) measures the code itself and stays a script
of the source tree. This package trains and evaluates through the public API only.
"""

from __future__ import annotations

from collections.abc import Callable


def _character_main(**kwargs) -> int:
    from lagrax.benchmarks.character import main

    return main(**kwargs)


#: The benchmarks ``lagrax bench`` offers: name -> ``main(**options) -> exit code``.
BENCHMARKS: dict[str, Callable[..., int]] = {"delan-character": _character_main}

__all__ = ["BENCHMARKS"]
