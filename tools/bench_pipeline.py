"""The whole pipeline's payoff, in one run on one machine: the shipped teacher (50-step DDIM, torch FP32)
versus the final bundle (onnxruntime, every variant it carries) restoring the held-out photographs, with the
naive baseline.

    python tools/bench_pipeline.py --bundle runs/quickstart/bundle [--size 256] [--repeats 3] [--threads 2]

Latency is the median wall time of one whole restoration per image (the bundle through ``edgeir.runtime``'s
restore graphs; the teacher through ``RestorerModel.restore``), after one warm-up restoration each. torch and
onnxruntime get the same number of threads. A restore graph with float32 pixels gets the degraded images as
they are; one with uint8 pixels gets them as an 8-bit file holds them. The goals are judged on the bundle's
first variant, the one the runtime runs by default.
"""

from __future__ import annotations

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgeir.data.builtin import builtin_images
from edgeir.data.images import Picture
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer
from edgeir.metrics import mean_metrics, measure
from edgeir.runtime import Restorer as Runtime
from edgeir.timing import interleaved_ms


def timed(fn, cases, repeats: int) -> tuple[list[np.ndarray], float]:
    """Outputs for every case (the first calls double as warm-up), then the median ms of ``repeats`` more
    restorations of each (``edgeir.timing``)."""
    outputs = [fn(d, i) for i, (_, _, d) in enumerate(cases)]
    ms = [t for i, (_, _, d) in enumerate(cases)
          for t in interleaved_ms([lambda d=d, i=i: fn(d, i)], repeats, warmup=0)[0]]
    return outputs, float(np.median(ms))


def run(rt: Runtime, d, seed: int) -> np.ndarray:
    """One restore through ``rt``'s restore graph: float pixels as they are, uint8 ones as a file holds them."""
    if rt.variant.pixels == "float32":
        return rt.restore_picture(Picture(d.image, None, 16, False), seed, d.mask).rgb
    pixels = (d.image * 255 + 0.5).astype(np.uint8)
    if d.mask is not None:  # inpainting: the holes are the transparent pixels
        pixels = np.concatenate([pixels, np.where(d.mask, 0, 255).astype(np.uint8)[..., None]], -1)
    return rt.restore(pixels, seed).astype(np.float32) / 255


@click.command()
@click.option("--bundle", required=True, help="The final bundle (edgeir export output).")
@click.option("--teacher", default=None, help="Teacher name or folder (default: the bundle's task's teacher).")
@click.option("--size", default=256, show_default=True, help="Centre crop of each held-out photograph.")
@click.option("--repeats", default=3, show_default=True, help="Timed restorations per image.")
@click.option("--threads", default=2, show_default=True, help="Intra-op threads of torch and onnxruntime alike.")
def main(bundle: str, teacher: str | None, size: int, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    default = Runtime.load(bundle, "ort-cpu", threads=threads)
    runtimes = [default] + [Runtime.load(bundle, "ort-cpu", v.name, threads=threads)
                            for v in default.manifest.variants
                            if v.kind == "restore" and v.format == "onnx" and v != default.variant]
    task = default.task
    teacher_model = load_restorer(teacher or {"sr": "sr4x"}.get(task.name, task.name))
    cases = degrade_set(task, builtin_images("heldout"), size)
    crop = task.scale

    def score(outputs):
        return mean_metrics([measure(o, gt, crop) for o, (_, gt, _) in zip(outputs, cases)])

    with torch.no_grad():
        t_out, t_ms = timed(lambda d, i: teacher_model.restore(d, seed=i, schedule=teacher_model.steps(50)),
                            cases, 1)
    rows = [("naive baseline", *timed(lambda d, i: task.baseline(d), cases, repeats)),
            ("teacher DDIM-50 (torch FP32)", t_out, t_ms)]
    for rt in runtimes:
        out, ms = timed(lambda d, i, rt=rt: run(rt, d, i), cases, repeats)
        note = ", the default" if rt is default else ""
        steps = len(rt.variant.steps)
        name = f"bundle {rt.variant.name}, {steps} step{'s' if steps > 1 else ''} ({rt.variant.pixels} pixels{note})"
        rows.append((name, out, ms))
    scores = [(name, ms, score(out)) for name, out, ms in rows]
    teacher_m, (_, b_ms, bundle_m) = scores[1][2], scores[2]

    table = Table(title=f"{task.name}: teacher vs final bundle, {len(cases)} held-out photographs at {size}px, "
                        f"{threads} thread{'s' if threads > 1 else ''} each")
    for col in ("method", "ms / image", "speed-up vs teacher", "PSNR", "SSIM", "HaarPSI", "detail",
                "detail vs teacher"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, ms, m in scores:
        table.add_row(name, f"{ms:.1f}", f"{t_ms / ms:.1f}x", f"{m['psnr']:.2f}", f"{m['ssim']:.4f}",
                      f"{m['haarpsi']:.4f}", f"{m['detail']:.4f}", f"{m['detail'] / teacher_m['detail']:.0%}")
    Console(width=150).print(table)
    print(f"goals, for {default.variant.name}:")
    goals = {"speed-up >= 100x": t_ms / b_ms >= 100,
             "PSNR within 0.3 dB of the teacher": bundle_m["psnr"] >= teacher_m["psnr"] - 0.3,
             "detail >= 85% of the teacher's": bundle_m["detail"] >= 0.85 * teacher_m["detail"]}
    for goal, met in goals.items():
        print(f"  {goal}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
