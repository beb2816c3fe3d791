"""The whole pipeline's payoff, in one run on one machine: the shipped teacher (50-step DDIM, torch FP32)
versus the final bundle (onnxruntime, every variant it carries) restoring the held-out photographs, with the
naive baseline.

    python tools/bench_pipeline.py --bundle runs/quickstart/bundle [--size 256] [--repeats 3] [--threads 2]

Latency is the median wall time of one whole restoration per image (the bundle through ``edgeir.runtime``,
one tile covering the image; the teacher through ``Restorer.restore``), after one warm-up restoration each.
torch and onnxruntime get the same number of threads. The goals are judged on the bundle's first variant, the
one the runtime runs by default.
"""

from __future__ import annotations

import time

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer
from edgeir.metrics import mean_metrics, measure
from edgeir.runtime import Restorer as Runtime


def timed(fn, cases, repeats: int) -> tuple[list[np.ndarray], float]:
    fn(cases[0][2], 0)  # warm-up: first-call allocations and session set-up are not per-image costs
    outputs, seconds = [], []
    for i, (_, _, d) in enumerate(cases):
        for r in range(repeats):
            start = time.perf_counter()
            out = fn(d, i)
            seconds.append(time.perf_counter() - start)
        outputs.append(out)
    return outputs, 1000 * float(np.median(seconds))


@click.command()
@click.option("--bundle", required=True, help="The final bundle (edgeir export output).")
@click.option("--teacher", default=None, help="Teacher name or folder (default: the bundle's task's teacher).")
@click.option("--size", default=256, show_default=True, help="Centre crop of each held-out photograph.")
@click.option("--repeats", default=3, show_default=True, help="Timed restorations per image.")
@click.option("--threads", default=2, show_default=True, help="Intra-op threads of torch and onnxruntime alike.")
def main(bundle: str, teacher: str | None, size: int, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    default = Runtime.load(bundle, "ort-cpu", tile=size, threads=threads)
    runtimes = [default] + [Runtime.load(bundle, "ort-cpu", v.name, size, threads=threads)
                            for v in default.manifest.variants if v.format == "onnx" and v != default.variant]
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
        out, ms = timed(lambda d, i, rt=rt: task.compose(rt.restore_rgb(d.image, seed=i, mask=d.mask), d), cases,
                        repeats)
        note = ", the default" if rt is default else ""
        steps = len(rt.variant.steps)
        rows.append((f"bundle {rt.variant.name}, {steps} step{'s' if steps > 1 else ''} (onnxruntime{note})", out,
                     ms))
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
