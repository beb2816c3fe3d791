"""Recovery after pruning: fine-tune the pruned denoiser to reproduce the unpruned one (output distillation,
optionally feature distillation) at the timesteps the sampler visits.

Under torchrun (see ``edgeir.train.ddp``) every process draws the same global batches and trains on its own
slice of each; the student, wrapped by ``ddp.wrap``, averages the gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

from edgeir.compress.crops import CropSized, Patches
from edgeir.diffusion.training import noised
from edgeir.models.restorer import RestorerModel
from edgeir.progress import no_progress
from edgeir.train import ddp
from edgeir.train.loop import Schedule, fit


class RecoverySettings(CropSized):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(400, ge=0)  # 0: no recovery
    batch: int = Field(8, ge=1)
    patch: Patches = 96  # training crops at output resolution: one size or several (edgeir.compress.crops)
    lr: float = Field(5e-4, gt=0)  # peak; warmup over the first 5%, then cosine decay to 10%
    # The result is this exponential moving average of the weights (0: the last weights): a 4-step sampler
    # amplifies the last steps' weight noise.
    ema: float = Field(0.99, ge=0, lt=1)
    # Weight of feature distillation (each ResBlock's output vs the unpruned model's kept channels); 0: off.
    feature_weight: float = Field(0.0, ge=0)


def diffuse(alphas_cumprod: torch.Tensor, target: torch.Tensor, t: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x_t`` of clean ``target`` at integer timesteps ``t`` (one per sample); also the noise, sqrt(ab) and
    sqrt(1 - ab), shaped to broadcast."""
    ab = alphas_cumprod[t][:, None, None, None]
    noise = torch.randn(target.shape, generator=generator)
    a, s = ab.sqrt(), (1 - ab).sqrt()
    return noised(target, noise, a, s), noise, a, s


@contextlib.contextmanager
def _capture(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=key: seen.__setitem__(key, out))
             for key, m in modules.items()]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def recover(student: nn.Module, teacher: RestorerModel, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
            settings: RecoverySettings, features: dict[str, torch.Tensor] | None = None, seed: int = 0,
            progress: Callable = no_progress) -> list[float]:
    """Fine-tune ``student`` (a pruned ``Denoiser``, or one wrapped by ``ddp.wrap``) towards ``teacher`` (the
    unpruned restorer) for ``settings.steps`` steps, ending with the weights' moving average; returns this
    process's losses.

    ``pairs`` yields global (clean target, condition) batches, the same on every process; each sample is noised
    to a timestep the teacher's sampler visits. ``features`` maps a module path inside the network to the
    indices of the teacher's channels that the pruned module kept; their outputs are matched too, scaled by
    ``settings.feature_weight``. ``progress``: ``edgeir.progress.progress_bar`` or a factory like it."""
    inner: nn.Module = getattr(student, "module", student)  # DDP keeps the model in .module
    device = next(inner.parameters()).device
    ab = torch.tensor(teacher.alphas_cumprod, dtype=torch.float32)
    visited = torch.tensor(teacher.config.timesteps(), dtype=torch.long)
    weight = teacher.config.task.loss_weight
    g = torch.Generator().manual_seed(seed)
    features = features if settings.feature_weight > 0 else None
    net: nn.Module = inner.get_submodule("net")
    s_mods = {k: net.get_submodule(k) for k in features or {}}
    t_mods = {k: teacher.denoiser.net.get_submodule(k) for k in features or {}}
    teacher.eval()
    student.train()
    batches = iter(pairs)

    def loss(step: int) -> torch.Tensor:
        target, cond = teacher.training_batch(*next(batches))
        t = visited[torch.randint(len(visited), (target.shape[0],), generator=g)]
        x_t, _, _, _ = diffuse(ab, target, t, g)
        x_t, cond, t = (ddp.shard(v) for v in (x_t, cond, t))
        x_t, cond, tf = x_t.to(device), cond.to(device), t.float().to(device)
        with torch.no_grad():
            goal = teacher.denoiser(x_t, tf, cond)
        value = (weight(cond) * (student(x_t, tf, cond) - goal) ** 2).mean()
        if features:
            feat = sum(F.mse_loss(s_feat[k], t_feat[k][:, idx.to(device)]) / t_feat[k][:, idx.to(device)]
                       .pow(2).mean() for k, idx in features.items())
            value = value + settings.feature_weight * feat / len(features)
        return value

    schedule = Schedule(settings.steps, settings.lr, warmup=max(1, settings.steps // 20), ema=settings.ema)
    with _capture(s_mods) as s_feat, _capture(t_mods) as t_feat:
        fitted = fit(inner, loss, schedule, progress=progress, label="recover")
    if settings.steps:
        inner.load_state_dict(fitted.ema.state_dict())
    student.eval()
    return fitted.losses

