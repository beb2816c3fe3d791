"""Bundles for the runtime tests, made from tiny torch restorers (torch is fine here, never in the runtime) by
the exporter itself, and the torch model's own restore of a frame tile by tile, to hold the runtime to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeir.export.bundle import export_bundle
from edgeir.graphs.reference import host_restore
from edgeir.load import save_restorer
from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import UNetConfig
from edgeir.tasks import Degraded, SRTask


def tiny_restorer(task=None, steps: int = 2, seed: int = 0) -> RestorerModel:
    task = task or SRTask(scale=2)
    net = UNetConfig(cond_channels=task.cond_channels, channels=(8, 16), unshuffle=2, norm_groups=4,
                     attention_heads=2, time_embed_dim=16)
    cfg = RestorerConfig(network=EdgeUNetSpec(config=net), task=task, residual_scale=2.0,
                         sampler=SamplerConfig(steps=steps, temperature=0.7))
    torch.manual_seed(seed)
    restorer = RestorerModel(cfg).eval()
    with torch.no_grad():  # random weights barely move the output; make the residual visible
        for p in restorer.parameters():
            p.mul_(3.0)
    return restorer


def make_bundle(restorer: RestorerModel, dest: Path, tile: int = 32, overlap: int = 8, steps: int | None = None,
                graph: str = "restore") -> Path:
    """The exporter's own bundle of ``restorer`` (its checks included), through the model folder format."""
    folder = dest.parent / f"{dest.name}.model"
    save_restorer(restorer, folder)
    export_bundle(str(folder), dest, graph=graph, size=f"{restorer.config.multiple_of}:{tile}:{max(tile, 64)}", steps=steps,
                  tile=tile, overlap=overlap)
    return dest


def host_reference(restorer: RestorerModel, d: Degraded, noise: np.ndarray, tile: int, overlap: int,
                   steps: int | None = None) -> np.ndarray:
    """What a restore graph must compute, with the torch model as its UNet: the host loop, tile by tile."""
    cond = np.ascontiguousarray(restorer.task.condition(d).transpose(2, 0, 1))
    cfg = restorer.config

    def unet(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return restorer.denoiser(*(torch.from_numpy(feeds[n]) for n in ("x_t", "t", "condition"))).numpy()

    out = host_restore(unet, cond, noise, restorer.sampling(steps), tile, overlap, cfg.multiple_of)
    return restorer.task.compose(out.transpose(1, 2, 0), d)
