"""rich tables of metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edgeir.metrics import METRICS


def metrics_table(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    degradation = f", {result['degradation']} degradation" if "degradation" in result else ""
    table = Table(title=f"held-out images ({result.get('steps', '?')} sampler steps{degradation})")
    table.add_column("image")
    table.add_column("method")
    for m in METRICS:
        table.add_column(m, justify="right")
    names = list(result.get("baselines", {}))
    base = f"baseline ({names[0]})" if names else "baseline"
    fmt = lambda r: [f"{r[m]:.4f}" if m != "psnr" else f"{r[m]:.2f}" for m in METRICS]
    for i, row in enumerate(result["per_image"]):
        table.add_row(row["image"], "model", *fmt(row))
        if "baseline_per_image" in result:
            table.add_row("", base, *fmt(result["baseline_per_image"][i]))
    table.add_section()
    table.add_row("mean", "model", *fmt(result["model"]), style="bold")
    if "baseline" in result:
        table.add_row("mean", base, *fmt(result["baseline"]), style="bold")
    for name in names[1:]:  # the weaker classical restorations, for the margin over each
        table.add_row("mean", name, *fmt(result["baselines"][name]))
    console.print(table)
