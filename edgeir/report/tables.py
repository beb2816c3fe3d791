"""rich tables of metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edgeir.metrics import METRICS


def metrics_table(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"held-out images ({result.get('steps', '?')} sampler steps)")
    table.add_column("image")
    table.add_column("method")
    for m in METRICS:
        table.add_column(m, justify="right")
    fmt = lambda r: [f"{r[m]:.4f}" if m != "psnr" else f"{r[m]:.2f}" for m in METRICS]
    for i, row in enumerate(result["per_image"]):
        table.add_row(row["image"], "model", *fmt(row))
        if "baseline_per_image" in result:
            table.add_row("", "baseline", *fmt(result["baseline_per_image"][i]))
    table.add_section()
    table.add_row("mean", "model", *fmt(result["model"]), style="bold")
    if "baseline" in result:
        table.add_row("mean", "baseline", *fmt(result["baseline"]), style="bold")
    console.print(table)
