"""Which channels matter: torch-pruning's magnitude criterion, or Diff-Pruning's timestep-aware Taylor
criterion (|w * dL/dw| with the denoising loss's gradients accumulated over the timesteps the sampler visits,
so channels that only matter at timesteps the model never sees are the first to go)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.distributed as dist
import torch_pruning as tp

from edgeir.compress.recover import diffuse
from edgeir.diffusion.training import training_target
from edgeir.models.restorer import RestorerModel
from edgeir.train import ddp

Criterion = Literal["magnitude", "taylor"]


def scorer(criterion: Criterion) -> tp.importance.Importance:
    """Per-group channel scores; Taylor reads the gradients left by ``taylor_gradients``."""
    if criterion == "taylor":
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=2)


def taylor_gradients(restorer: RestorerModel, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], seed: int = 0
                     ) -> None:
    """Leave in every parameter's ``.grad`` the gradient of the denoising loss (the task's training loss against
    ground truth) summed over the timesteps ``restorer``'s sampler visits and over ``pairs``' global batches.
    Under torchrun each process takes its slice of every batch and the gradients are averaged, so every
    process ends with the same ones and prunes alike."""
    cfg = restorer.config
    ab = torch.tensor(restorer.alphas_cumprod, dtype=torch.float32)
    device = next(restorer.parameters()).device
    g = torch.Generator().manual_seed(seed)
    restorer.zero_grad(set_to_none=True)
    for batch in pairs:
        target, cond = restorer.training_batch(*batch)
        for step in cfg.timesteps():
            t = torch.full((target.shape[0],), step, dtype=torch.long)
            x_t, noise, a, s = diffuse(ab, target, t, g)
            goal = training_target(cfg.prediction, target, noise, a, s)
            x_t, goal, c, t = (ddp.shard(v).to(device) for v in (x_t, goal, cond, t))
            pred = restorer.denoiser(x_t, t.float(), c)
            (cfg.task.loss_weight(c) * (pred - goal) ** 2).mean().backward()
    if ddp.active():
        for p in restorer.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= ddp.world_size()
