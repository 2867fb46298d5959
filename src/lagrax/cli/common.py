"""What the commands share: the consoles, float64 for JAX, and the metrics tables.

Error reporting (one ``error: ...`` line, exit 2) is :func:`lagrax.cli.app.main`'s.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def enable_x64() -> None:
    """Ground truth and datasets are float64 (closed-form checks at 1e-10): call before JAX works."""
    import jax

    jax.config.update("jax_enable_x64", True)


def say(message: str) -> None:
    """Print a progress message as it is (no rich markup), wrapped by the terminal."""
    console.print(escape(message), soft_wrap=True)


def metrics_table(metrics: dict, title: str) -> Table:
    """Metric, value and meaning (:data:`lagrax.analysis.report.METRIC_DESCRIPTIONS`), one row each."""
    from lagrax.analysis.report import METRIC_DESCRIPTIONS, format_value

    table = Table(title=title)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for key, value in metrics.items():
        table.add_row(key, format_value(value), escape(METRIC_DESCRIPTIONS.get(key, "")))
    return table


def members_table(metrics: dict) -> Table:
    """An ensemble's metrics: mean ± std over the members, then each member's value."""
    from lagrax.analysis.report import format_value

    table = Table(title=f"each of the {metrics['ensemble']} members")
    table.add_column("metric", style="bold")
    table.add_column("mean ± std", justify="right")
    for i in range(metrics["ensemble"]):
        table.add_column(f"#{i}", justify="right")
    for key, mean in metrics["member_mean"].items():
        spread = f"{format_value(mean)} ± {format_value(metrics['member_std'][key])}"
        table.add_row(key, spread, *(format_value(m.get(key)) for m in metrics["members"]))
    return table


def print_metrics(metrics: dict, title: str) -> None:
    """An evaluation's tables: the metrics (of the mean prediction), then the members' if any."""
    from lagrax.analysis.metrics import ENSEMBLE_KEYS

    console.print(metrics_table({k: v for k, v in metrics.items() if k not in ENSEMBLE_KEYS}, title))
    if "members" in metrics:
        console.print(members_table(metrics))
