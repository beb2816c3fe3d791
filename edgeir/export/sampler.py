"""The whole few-step sampler as one ONNX graph: the student's loop unrolled, its timesteps and schedule
coefficients baked in as constants, so a device app runs one graph and re-implements no diffusion maths.

Inputs ``condition`` (B, C, H, W) in [-1, 1] at output resolution (the task's ``condition()``) and ``noise``
(B, 3K, H, W) standard normal, where K = 1 + the number of stochastic steps: the initial noise, then the fresh
noise of each stochastic step in order (the bundle manifest's contract). Output ``image`` (B, 3, H, W) in
[0, 1]. Deterministic given the noise; H and W must be multiples of the network's ``multiple_of``.

A latent restorer's sampler graph is its whole restore without tiling: the condition is
``RestorerModel.condition``'s (the low-resolution image, or the base image its encoder turns into the UNet's
latent condition inside the graph), the noise latent-sized with the latent's channels per chunk, and the
sampled latent is decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Step, noise_channels
from edgeir.export.unet import LATENT_SIDES, onnx_export
from edgeir.models.restorer import RestorerModel

INPUTS = ("condition", "noise")
OUTPUT = "image"


class SamplerGraph(nn.Module):
    """``(condition, noise) -> image``: the torch sampler's own loop (``edgeir.diffusion.sample`` over
    ``RestorerModel.x0``), with the noise a stochastic step would draw taken from the ``noise`` input instead."""

    def __init__(self, restorer: RestorerModel, steps: list[Step] | None = None):
        super().__init__()
        self.restorer = restorer
        self.steps = steps if steps is not None else restorer.steps()

    def forward(self, condition: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        cfg = self.restorer.config
        chunks = iter(noise.split(cfg.sample_channels, dim=1))
        x = next(chunks) * cfg.sampler.temperature
        c = self.restorer.unet_condition(condition)
        residual = sample(lambda x_t, step: self.restorer.x0(x_t, step, c), x, self.steps,
                          lambda like: next(chunks), cfg.schedule.clip)
        return self.restorer.to_image(residual, condition)


def export_sampler(restorer: RestorerModel, path: str | Path, opset: int = 17, steps: list[Step] | None = None,
                   size: tuple[int, int] | None = None) -> Path:
    """Export with the TorchScript-based exporter from a batch-2, non-square example, which keeps batch,
    height and width dynamic (the dynamo exporter specialises a batch-1 example)."""
    path = Path(path)
    graph = SamplerGraph(restorer, steps).eval()
    cfg = restorer.config
    m = cfg.multiple_of // restorer.cond_scale
    h, w = size or (2 * m, 3 * m)
    p = next(restorer.parameters())
    _, sh, sw = restorer.sample_size(h, w)
    args = (torch.rand(2, cfg.task.cond_channels, h, w, device=p.device) * 2 - 1,
            torch.randn(2, noise_channels(graph.steps, cfg.sample_channels), sh, sw, device=p.device))
    sides = None
    if cfg.latent:
        sides = {"noise": LATENT_SIDES, **({"condition": LATENT_SIDES} if cfg.latent.condition == "lowres" else {})}
    return onnx_export(graph, args, path, INPUTS, OUTPUT, opset, sides)


def sampler_feeds(restorer: RestorerModel, condition: np.ndarray, rng: np.random.Generator,
                  steps: list[Step] | None = None) -> dict[str, np.ndarray]:
    """Graph inputs for a (B, C, H, W) condition: the condition and standard-normal noise."""
    k = noise_channels(steps if steps is not None else restorer.steps(), restorer.config.sample_channels)
    b, _, h, w = condition.shape
    _, sh, sw = restorer.sample_size(h, w)
    return {"condition": condition, "noise": rng.standard_normal((b, k, sh, sw)).astype(np.float32)}


@torch.no_grad()
def sampler_reference(restorer: RestorerModel, feeds: dict[str, np.ndarray], steps: list[Step] | None = None
                      ) -> np.ndarray:
    p = next(restorer.parameters())
    args = [torch.from_numpy(feeds[n]).to(p.device) for n in INPUTS]
    return SamplerGraph(restorer, steps).eval()(*args).cpu().numpy()
