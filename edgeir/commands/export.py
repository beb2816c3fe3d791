"""``edgeir export``'s table of what ``edgeir.export.bundle.export_bundle`` checked and built."""

from __future__ import annotations


def print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bundle {result['bundle']}")
    for col in ("graph", "precision", "steps", "nodes", "MB", "max |onnx - torch| random / real", "gate",
                "onnxslim", "TensorRT-ready"):
        table.add_column(col, justify="left" if col in ("graph", "TensorRT-ready") else "right")
    for g in result["graphs"]:
        prefix = "fp16 " if g["precision"] == "fp16" else ""  # the shipped graph's own check
        diffs = (" / ".join(f"{g['max_abs_diff'][prefix + k]:.1e}" for k in ("random", "real"))
                 if g["max_abs_diff"] else "quantize stage's gate")
        ready = "yes" if g["tensorrt_ready"] else f"no: {g['tensorrt_problems'][0]}"
        table.add_row(g["kind"], g["precision"], str(g["steps"]), str(g["nodes"]), f"{g['bytes'] / 1e6:.1f}",
                      diffs, "—" if g["gate"] is None else f"{g['gate']:.0e}", "yes" if g["slimmed"] else "no",
                      ready)
    console = Console()
    console.print(table)
    for e in result["engines"]:
        console.print(f"engine for {e['onnx']}: TensorRT {e['tensorrt']} on {e['gpu']['name']}, {e['precision']}")
    console.print(f"variants: {', '.join(result['variants'])}")
