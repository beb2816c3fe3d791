"""Bundles for the runtime tests, made from tiny torch restorers (torch is fine here, never in the runtime)
with the exporter's own graphs (``edgeir.export``), whose sampler graph runs the torch sampler's loop."""

from __future__ import annotations

from pathlib import Path

import torch

from edgeir.bundle import Manifest, make_variant, write_bundle
from edgeir.export.sampler import export_sampler
from edgeir.export.unet import export_unet
from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import UNetConfig
from edgeir.tasks import SRTask


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


def make_bundle(restorer: RestorerModel, dest: Path, kinds=("sampler",), tile: int = 32, overlap: int = 8,
                steps: int | None = None) -> Path:
    cfg = restorer.config
    work = dest.parent / f"{dest.name}.graphs"
    work.mkdir(parents=True, exist_ok=True)
    files, variants = {}, []
    for kind in kinds:
        graph = f"{kind}.onnx"
        if kind == "sampler":
            export_sampler(restorer, work / graph, steps=restorer.steps(steps))
        else:
            export_unet(restorer, work / graph)
        files[graph] = work / graph
        variants.append(make_variant(kind, graph, kind, cfg.task.cond_channels, restorer.steps(steps),
                                     cfg.prediction, cfg.sampler.temperature, cfg.residual_scale))
    manifest = Manifest(task=cfg.task, multiple_of=cfg.multiple_of, min_size=cfg.multiple_of, tile=tile,
                        overlap=overlap, variants=variants, producer={"by": "tests"})
    return write_bundle(dest, files, manifest)
