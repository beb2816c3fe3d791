"""A frame restored on the host around a UNet graph: the tiles cut, the sampler loop run and the tiles blended
in numpy, one UNet call per step (what edgeir's runtime did before the restore graph took all of it in).

It computes what the restore graph computes, by other means, so it is what the exporter checks restore graphs
against and what ``tools/bench_runtime.py`` times as the host-side path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeir.diffusion.latent import LatentSpace
from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Sampling, Step, to_image, to_x0
from edgeir.graphs import layout

UNet = Callable[[dict[str, np.ndarray]], np.ndarray]  # {"x_t", "t", "condition"} -> prediction
Graph = Callable[[np.ndarray], np.ndarray]  # an encoder's or decoder's graph: its one input -> its output


@dataclass(frozen=True)
class HostCodec:
    """A latent restorer's space and its autoencoder's graphs, as functions: the decoder's, and the encoder's
    where the UNet is conditioned on a latent."""

    space: LatentSpace
    decode: Graph
    encode: Graph | None = None


def host_restore(unet: UNet, cond: np.ndarray, noise: np.ndarray, sampling: Sampling, tile: int, overlap: int,
                 multiple_of: int, codec: HostCodec | None = None) -> np.ndarray:
    """(C, h, w) condition in [-1, 1] and (K, H, W) noise (of the sample's size) -> the (3, H, W) image in
    [0, 1] at output resolution, before the task's composition (inpainting keeps its known pixels) and rounding
    to pixels. A latent restorer's condition is ``LatentSpace.condition_input``'s: the low-resolution image, or
    the task's base image at output resolution."""
    if codec is None:
        h, w = cond.shape[1:]
        maps = layout.maps(h, w, tile, overlap, multiple_of)
        c, z = (layout.split(x, maps["rows"], maps["cols"]) for x in (cond, noise))
    else:
        space = codec.space
        h, w = np.multiply(cond.shape[1:], space.factor if space.condition == "lowres" else 1)
        maps = layout.latent_maps(h, w, tile, overlap, multiple_of, space.factor, codec.encode is not None)
        z = layout.split(noise, maps["rows"], maps["cols"])
        c = (layout.split(cond, maps["rows"], maps["cols"]) if codec.encode is None
             else codec.encode(layout.split(cond, maps["pixel_rows"], maps["pixel_cols"])))
    channels = codec.space.channels if codec else 3
    fresh = iter([z[:, i:i + channels] for i in range(channels, z.shape[1], channels)])
    t = np.empty(len(c), np.float32)

    def x0(x_t: np.ndarray, step: Step) -> np.ndarray:
        t.fill(step.t)
        pred = unet({"x_t": x_t, "t": t, "condition": c})
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, sampling.prediction)

    x = sample(x0, z[:, :channels] * np.float32(sampling.temperature), list(sampling.steps),
               lambda like: next(fresh), sampling.clip)
    if codec is None:
        image = to_image(x, c[:, :3], sampling.residual_scale, sampling.target)
    else:
        image = to_image(codec.decode(x), None, 1.0, "image")
    return layout.blend(image, maps["row_weights"], maps["col_weights"], h, w, overlap)
