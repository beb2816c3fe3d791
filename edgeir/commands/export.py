"""``edgeir export``'s table of what ``edgeir.export.bundle.export_bundle`` checked and built."""

from __future__ import annotations


def print_summary(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bundle {result['bundle']}")
    for col in ("graph", "file", "precision", "steps", "nodes", "MB", "max abs diff random / real (gate)",
                "INT8 dB random / real (gate)", "TensorRT-ready"):
        table.add_column(col, justify="left" if col in ("graph", "file", "TensorRT-ready") else "right")
    for g in result["graphs"]:
        prefix = "fp16 " if g["precision"] == "fp16" and g["kind"] != "restore" else ""  # the shipped graph's
        diffs = (" / ".join(f"{g['max_abs_diff'][prefix + k]:.1e}" for k in ("random", "real"))
                 + f" ({g['gate']:.0e})" if g.get("max_abs_diff") else "quantize stage's gate")
        int8 = (" / ".join(f"{g['int8_psnr_db'][k]:.1f}" for k in ("random", "real")) + " ("
                + " / ".join(f"{g['int8_gate_db'][k]:.1f}" for k in ("random", "real")) + ")"
                if g.get("int8_psnr_db") else "—")
        problems = g.get("tensorrt_problems", [])
        table.add_row(g["kind"], g["file"], g["precision"], str(g.get("steps", "")), str(g.get("nodes", "")),
                      f"{g.get('bytes', 0) / 1e6:.1f}", diffs, int8, "yes" if not problems else f"no: {problems[0]}")
    console = Console()
    console.print(table)
    console.print("restore graphs are checked against the host loop over the UNet graph (an INT8 graph's "
                  "composition on its float twin, the graph itself within INT8's own error in PSNR); the UNet and "
                  "sampler graphs against torch")
    for e in result["engines"]:
        console.print(f"engine for {e['onnx']}: TensorRT {e['tensorrt']} on {e['gpu']['name']}, {e['precision']}")
    console.print(f"variants: {', '.join(result['variants'])}")
