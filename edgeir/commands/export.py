"""``edgeir export``'s table of what ``edgeir.export.bundle.export_bundle`` checked and built, and its per-step
INT8 scales (``edgeir.compress.step_scales``), kept where they bring the graph closer to its float twin."""

from __future__ import annotations

import sys
from pathlib import Path


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


def step_scales(source: str, calibration: int, size: int = 256) -> list[dict[str, float]] | None:
    """Activation scales per sampler step for the INT8 UNet graph of bundle ``source``, calibrated on
    ``calibration`` crops of the training photographs, if on the held-out photographs (``size`` px centre
    crops) the restore graph they give is closer to the float one than the shared-scale graph is; else None.
    Says which, and by how much."""
    import onnx

    from edgeir.bundle.io import load_bundle
    from edgeir.compress.step_scales import per_step, psnr_vs_float, sampler_inputs
    from edgeir.data.builtin import builtin_images
    from edgeir.errors import ConfigError
    from edgeir.evaluate import degrade_set
    from edgeir.export.bundle import is_bundle
    from edgeir.graphs.qdq import with_scales

    unet = None
    if is_bundle(Path(source)):
        bundle = load_bundle(source)
        unet = next((v for v in bundle.manifest.variants if v.kind == "unet" and v.precision == "int8"), None)
    if unet is None or len(unet.steps) < 2:
        raise ConfigError("--step-scales: needs a bundle with an INT8 UNet graph and a sampler of two or more steps")
    m, shared = bundle.manifest, onnx.load_from_string(bundle.read(unet.graph))
    if m.latent is not None:
        raise ConfigError("--step-scales: per-step activation scales are calibrated on the host loop in pixel "
                          "space; a latent restorer's bundle keeps its shared scales")
    inputs = sampler_inputs(shared, m.task, unet.sampling, [img for _, img in builtin_images("train")],
                            calibration, 128, m.tile, m.overlap, m.multiple_of)
    scales = per_step(shared, inputs)
    own = [with_scales(shared, s) for s in scales]
    cases = [(gt, d) for _, gt, d in degrade_set(m.task, builtin_images("heldout"), size)]
    (apart, _), (own_apart, _) = (psnr_vs_float(g, m.task, unet.sampling, m.overlap, m.multiple_of, cases)
                                  for g in (shared, own))
    kept = own_apart > apart
    print(f"per-step scales: {own_apart:.2f} dB from the float graph on {len(cases)} held-out photographs, shared "
          f"{apart:.2f} dB: {'kept' if kept else 'not kept'}", file=sys.stderr)
    return scales if kept else None
