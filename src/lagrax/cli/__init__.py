"""The command-line interface: ``lagrax COMMAND``, one module per command.

Strings become objects here (system and model names, ``-p``/``-O`` settings); every
command builds a typed job and hands it to the library.
"""

from lagrax.cli.app import app, main

__all__ = ["app", "main"]
