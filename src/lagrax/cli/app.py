"""The typer application, its commands, and :func:`main`, the console script.

:func:`main` is the one place errors meet the shell: every
:class:`~lagrax.core.errors.LagraxError`, bad command-line parameter and OS error becomes
one line ``error: <message>`` on stderr and exit code 2, without a traceback; Ctrl-C is
one line and exit code 130. The commands live one per module (see :mod:`lagrax.cli`).
"""

from __future__ import annotations

import sys

import typer

from lagrax.cli import (
    bench,
    control,
    demo,
    evaluate,
    export,
    generate,
    importing,
    plot,
    report,
    rollout,
    sweep,
    systems,
    train,
)
from lagrax.cli.common import err_console
from lagrax.core.errors import LagraxError

app = typer.Typer(
    name="lagrax",
    help="Learn physically consistent dynamics models of mechanical systems (DeLaN, LNN) in JAX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# command name -> its module (each has ``command``, its typer function); in `lagrax --help` order
COMMANDS = {
    "systems": systems,
    "generate": generate,
    "import": importing,
    "plot": plot,
    "rollout": rollout,
    "control": control,
    "train": train,
    "sweep": sweep,
    "evaluate": evaluate,
    "report": report,
    "export": export,
    "demo": demo,
    "bench": bench,
}


def _register() -> None:
    for name, module in COMMANDS.items():
        app.command(name)(module.command)


_register()

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted (Ctrl-C); `lagrax train --resume` continues a run from its last checkpoint"


def _say_error(message: str) -> None:
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def os_error_message(e: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> ``no space left on device: x``."""
    what = (e.strerror or str(e)).rstrip(".")
    what = what[:1].lower() + what[1:]
    where = e.filename if e.filename is not None else ""
    return f"{what}: {where}" if where else what


def abort_message(e: BaseException) -> tuple[str, int]:
    """The message and exit code of an Abort: typer turns an EOFError into one, not only Ctrl-C."""
    cause = e.__cause__ or e.__context__
    if isinstance(cause, EOFError):
        return f"unexpected end of input ({cause or 'EOFError'})", EXIT_USER_ERROR
    return INTERRUPTED, EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: user errors -> ``error: <message>`` on stderr and exit code 2.

    Every :class:`LagraxError`, bad command-line parameter and OS error (a full disk, a
    read-only folder, a path below a regular file) is one line and exit 2; Ctrl-C is
    one line and exit 130. Nothing else is caught: a traceback is a lagrax bug.
    With ``argv`` (a list) the exit code is returned, without it the process exits.
    """
    from typer._click import exceptions as click_exceptions

    try:
        result = app(args=argv, prog_name="lagrax", standalone_mode=False)
    except LagraxError as e:
        _say_error(str(e))
        code = getattr(e, "exit_code", EXIT_USER_ERROR)  # a command's own Ctrl-C message: 130
    except click_exceptions.ClickException as e:  # bad/missing parameters, unknown options
        if e.format_message():  # (no arguments at all: the help was printed instead)
            _say_error(e.format_message())
        code = EXIT_USER_ERROR
    except OSError as e:
        _say_error(os_error_message(e))
        code = EXIT_USER_ERROR
    except (typer.Abort, KeyboardInterrupt) as e:
        message, code = abort_message(e)
        _say_error(message)
    except typer.Exit as e:
        code = e.exit_code
    else:
        code = result if isinstance(result, int) else 0
        if code == EXIT_INTERRUPTED:  # typer returns Ctrl-C as exit code 130, silently
            _say_error(INTERRUPTED)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
