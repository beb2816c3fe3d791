"""The inpainting condition's hole fills against scikit-image's exact biharmonic inpainting (the task's
baseline), in one table: quality of the fill alone on the held-out photographs, and its time at 1080p.

    python tools/bench_fill.py [--size 256] [--runs 5]

Quality: the inpainting task's degradation of each held-out photograph's centre crop (the eval's seeds), holes
filled by each method, metrics against ground truth as everywhere else. Time: median wall time of filling a
1920x1080 image with a "mixed" mask drawn as the task draws them, on this CPU. Memory: the fill's peak numpy
allocations for that image (tracemalloc, in a separate untimed call), in bytes per pixel.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set
from edgeir.metrics import METRICS, mean_metrics, measure
from edgeir.tasks import Degraded, InpaintTask
from edgeir.tasks.fill import biharmonic_fill, pyramid_fill
from edgeir.tasks.inpaint import random_mask
from edgeir.timing import median_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="centre crop of each held-out photograph")
    ap.add_argument("--runs", type=int, default=5, help="timed 1080p fills per method (median)")
    args = ap.parse_args()

    task = InpaintTask()
    cases = degrade_set(task, builtin_images("heldout"), args.size)
    methods = {
        "pyramid (push-pull)": pyramid_fill,
        "biharmonic, 8 CG steps (default)": biharmonic_fill,
        "biharmonic, 32 CG steps": lambda im, m: biharmonic_fill(im, m, iterations=32),
        "scikit-image inpaint_biharmonic": lambda im, m: task.baseline(Degraded(im, m)),
    }
    big = np.random.default_rng(0).random((1080, 1920, 3)).astype(np.float32)
    hole = random_mask(1080, 1920, np.random.default_rng(1), "mixed", task.max_coverage)
    table = Table(title=f"inpainting hole fills: {len(cases)} held-out photographs at {args.size}px; "
                        f"time at 1920x1080 ({hole.mean():.0%} holes)")
    for col in ("fill", *METRICS, "ms at 1080p", "peak bytes/pixel"):
        table.add_column(col, justify="left" if col == "fill" else "right")
    for name, fill in methods.items():
        m = mean_metrics([measure(fill(d.image, d.mask), gt, crop=task.scale) for _, gt, d in cases])
        (ms,) = median_ms([lambda fill=fill: fill(big, hole)], args.runs, warmup=0)
        tracemalloc.start()
        fill(big, hole)
        peak = tracemalloc.get_traced_memory()[1] / hole.size
        tracemalloc.stop()
        table.add_row(name, *(f"{m[k]:.4f}" for k in METRICS), f"{ms:.0f}", f"{peak:.0f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
