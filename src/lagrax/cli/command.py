"""Commands as typed requests: each option is declared once, as a dataclass field.

A command module declares a frozen dataclass, the request, whose fields are the
command's options and arguments (:func:`option`, :func:`argument`: the field's default,
and how the command line spells it), and a function ``run(request)``. :func:`as_command`
joins the two into the function typer registers: typer reads the options from the
fields, and the command hands ``run`` one request, never loose keywords. The same
request can be built in Python, with the command line's defaults.

Not here: parsing values (:mod:`lagrax.cli.params`) and error reporting (:mod:`lagrax.cli.app`).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer

_CLI = "cli"  # the field metadata key of a field's typer.Option / typer.Argument
_GROUP = "group"  # ... and of the group it belongs to (e.g. the training settings)


def request(cls: type) -> type:
    """Make ``cls`` a request: a frozen, keyword-only dataclass."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def _field(default: Any, info: Any, group: str | None = None) -> Any:
    metadata = {_CLI: info, _GROUP: group}
    if default is ...:  # required on the command line and in Python
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option(default: Any, *names: str, group: str | None = None, **settings: Any) -> Any:
    """A field spelled ``typer.Option(default, *names, **settings)``; ``...``: required.

    ``group`` names a set of fields handed on together (see :func:`given`).
    """
    return _field(default, typer.Option(default, *names, **settings), group)


def argument(default: Any, **settings: Any) -> Any:
    """A positional field spelled ``typer.Argument(default, **settings)``; ``...``: required."""
    return _field(default, typer.Argument(default, **settings))


def given(request: Any, group: str) -> dict[str, Any]:
    """``{name: value}`` of the fields of ``group`` that were given (are not None)."""
    return {
        f.name: getattr(request, f.name)
        for f in dataclasses.fields(request)
        if f.metadata[_GROUP] == group and getattr(request, f.name) is not None
    }


def as_command(request_type: type, run: Callable[[Any], None]) -> Callable[..., None]:
    """The typer command of ``request_type``'s fields that calls ``run(request_type(...))``.

    The command's help is ``run``'s docstring; its parameters are the fields, in order.
    """
    hints = typing.get_type_hints(request_type)
    parameters = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.metadata[_CLI], annotation=hints[f.name]
        )
        for f in dataclasses.fields(request_type)
    ]

    def typer_command(**options: Any) -> None:
        run(request_type(**options))

    typer_command.__signature__ = inspect.Signature(parameters)  # what typer reads ...
    typer_command.__annotations__ = {p.name: p.annotation for p in parameters}  # ... with these types
    typer_command.__doc__ = run.__doc__
    typer_command.__name__ = run.__module__.rsplit(".", 1)[-1]
    return typer_command
