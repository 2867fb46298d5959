"""``lagrax systems``: the ground-truth systems of the registry, as a table."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from lagrax.cli.common import console
from lagrax.core.errors import LagraxError


def _actuation(s) -> str:
    """``"all"``, or the names of the actuated joints (an under-actuated system)."""
    actuated = [j for j, a in zip(s.info.joint_names, s.info.actuated) if a]
    return "all" if len(actuated) == s.dof else ", ".join(actuated) or "none"


def _system_row(name: str, description: str) -> tuple[str, str, str, str]:
    """(name, dof, actuated joints, description); a system that cannot be built says why
    instead of crashing."""
    from lagrax.systems import system

    try:
        s = system(name)
    except ModuleNotFoundError as e:
        missing = e.name or str(e)
        if missing.split(".")[0] in ("pinocchio", "example_robot_data"):
            return name, "-", "-", f"{description} [needs Pinocchio: pip install 'lagrax[robots]']"
        return name, "-", "-", f"{description} [not available: {e}]"
    except (ImportError, AttributeError) as e:
        return name, "-", "-", f"{description} [not available: {e}]"
    except (LagraxError, TypeError):
        # e.g. "urdf" needs a path= parameter: describe it, do not build it
        return name, "any", "any", description
    return name, str(s.dof), _actuation(s), description


def run() -> None:
    """List the ground-truth systems: name, degrees of freedom, actuated joints, description."""
    from lagrax.systems import list_systems

    table = Table(title="lagrax systems")
    table.add_column("name", style="bold")
    table.add_column("dof", justify="right")
    table.add_column("actuated")
    table.add_column("description")
    for name, description in list_systems():
        table.add_row(*(escape(cell) for cell in _system_row(name, description)))
    console.print(table)


command = run  # no options
