"""The one home of lagrax's version string, :data:`__version__`.

Read from the installed distribution's metadata (``importlib.metadata``), so it follows
``pyproject.toml``; a source tree that is not installed falls back to
:data:`FALLBACK_VERSION`. Everything that records a version (dataset metadata, saved
models) imports it from here, never from the package root. This module does nothing else.
"""

from __future__ import annotations

from importlib import metadata

FALLBACK_VERSION = "0.1.0"  # keep equal to pyproject.toml's version


def _installed_version() -> str:
    try:
        return metadata.version("lagrax")
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


__version__: str = _installed_version()

__all__ = ["__version__"]
