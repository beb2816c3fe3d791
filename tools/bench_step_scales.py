"""INT8 activation scales per sampler step against shared ones, on a shipped few-step bundle, in one table.

A restore graph unrolls the sampler, one copy of the UNet per step, so each copy can carry activation scales
calibrated at its own timestep while all copies share one set of INT8 weights (``edgeir.compress.step_scales``).
Rows, each composed into a restore graph (``edgeir.graphs.restore``) that restores the held-out photographs
(degraded as the task degrades them), metrics against ground truth and PSNR against the float graph's output:

* float: the bundle's INT8 UNet graph with its activation Q/DQ pairs taken out (INT8 weights, float
  activations): what INT8 activations are judged against;
* the bundle's INT8 UNet graph (the quantize stage's NNCF scales, calibrated across all steps);
* shared, re-estimated: the same estimate as the per-step rows on all steps' inputs together, so that the
  shared and per-step rows differ only in what each scale was calibrated on;
* per step: each step's copy calibrated on that step's inputs alone.

Calibration inputs come from the bundle's own sampler over its float graph on crops of the training photographs.

    nice .venv/bin/python tools/bench_step_scales.py [--bundle exported/deblur] [--calibration 64] [--size 256]
"""

from __future__ import annotations

import argparse
import time

import onnx
from rich.console import Console
from rich.table import Table

from edgeir.bundle.io import load_bundle
from edgeir.compress.step_scales import calibrate, per_step, psnr_vs_float, sampler_inputs
from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set
from edgeir.graphs.qdq import float_twin, with_scales
from edgeir.metrics import METRICS, mean_metrics, measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="exported/deblur")
    ap.add_argument("--calibration", type=int, default=64, help="calibration crops (each gives one input per step)")
    ap.add_argument("--crop", type=int, default=128, help="calibration crop side")
    ap.add_argument("--size", type=int, default=256, help="centre crop of each held-out photograph")
    args = ap.parse_args()

    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    task, unet_variant = m.task, next(v for v in m.variants if v.kind == "unet")
    restore_variant = next(v for v in m.variants if v.kind == "restore")
    sampling, tile, overlap = unet_variant.sampling, restore_variant.tile, restore_variant.overlap
    shipped = onnx.load_from_string(bundle.read(unet_variant.graph))
    start = time.perf_counter()
    inputs = sampler_inputs(shipped, task, sampling, [img for _, img in builtin_images("train")], args.calibration,
                            args.crop, tile, overlap, m.multiple_of)
    shared = with_scales(shipped, calibrate(shipped, [s for step in inputs for s in step]))
    own = [with_scales(shipped, scales) for scales in per_step(shipped, inputs)]
    seconds = time.perf_counter() - start
    graphs = {"float (INT8 weights, float activations)": float_twin(shipped),
              "the bundle's INT8 UNet graph (shared scales)": shipped, "INT8, shared scales re-estimated": shared,
              "INT8, per-step scales": own}

    cases = degrade_set(task, builtin_images("heldout"), args.size)
    pairs = [(gt, d) for _, gt, d in cases]
    results = {name: psnr_vs_float(g, task, sampling, overlap, m.multiple_of, pairs) for name, g in graphs.items()}

    table = Table(title=f"{args.bundle}: {len(sampling.steps)} steps (t = {', '.join(str(s.t) for s in sampling.steps)}); "
                        f"{len(cases)} held-out photographs at {args.size}px; calibration {args.calibration} crops "
                        f"of {args.crop}px per step ({seconds:.0f} s)")
    for col in ("graph", *METRICS, "PSNR vs float"):
        table.add_column(col, justify="left" if col == "graph" else "right")
    for name, (db, outs) in results.items():
        q = mean_metrics([measure(o, gt, crop=task.scale) for o, (gt, _) in zip(outs, pairs, strict=True)])
        table.add_row(name, *(f"{q[k]:.4f}" for k in METRICS), "-" if db >= 199 else f"{db:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
