"""A frame restored on the host around a UNet graph: the tiles cut, the sampler loop run and the tiles blended
in numpy, one UNet call per step (what edgeir's runtime did before the restore graph took all of it in).

It computes what the restore graph computes, by other means, so it is what the exporter checks restore graphs
against and what ``tools/bench_runtime.py`` times as the host-side path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Sampling, Step, to_image, to_x0
from edgeir.graphs import layout

UNet = Callable[[dict[str, np.ndarray]], np.ndarray]  # {"x_t", "t", "condition"} -> prediction


def host_restore(unet: UNet, cond: np.ndarray, noise: np.ndarray, sampling: Sampling, tile: int, overlap: int,
                 multiple_of: int) -> np.ndarray:
    """(C, H, W) condition in [-1, 1] and (K, H, W) noise -> the (3, H, W) image in [0, 1], before the task's
    composition (inpainting keeps its known pixels) and rounding to pixels."""
    _, h, w = cond.shape
    maps = layout.maps(h, w, tile, overlap, multiple_of)
    c, z = (layout.split(x, maps["rows"], maps["cols"]) for x in (cond, noise))
    fresh = iter([z[:, i:i + 3] for i in range(3, z.shape[1], 3)])
    t = np.empty(len(c), np.float32)

    def x0(x_t: np.ndarray, step: Step) -> np.ndarray:
        t.fill(step.t)
        pred = unet({"x_t": x_t, "t": t, "condition": c})
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, sampling.prediction)

    x = sample(x0, z[:, :3] * np.float32(sampling.temperature), list(sampling.steps), lambda like: next(fresh))
    image = to_image(x, c[:, :3], sampling.residual_scale, sampling.target)
    return layout.blend(image, maps["row_weights"], maps["col_weights"], h, w, overlap)
