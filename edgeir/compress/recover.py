"""Recovery after pruning: fine-tune the pruned denoiser to reproduce the unpruned one (output distillation,
optionally feature distillation) at the timesteps the sampler visits.

Under torchrun (see ``edgeir.compress.ddp``) every process draws the same global batches and trains on its own
slice of each; the student, wrapped by ``ddp.wrap``, averages the gradients.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

from edgeir.compress import ddp
from edgeir.compress.crops import CropSized, Patches
from edgeir.models.restorer import Restorer
from edgeir.train.teacher import ema_update, lr_at


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
    return a * target + s * noise, noise, a, s


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


def recover(student: nn.Module, teacher: Restorer, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
            settings: RecoverySettings, features: dict[str, torch.Tensor] | None = None, seed: int = 0,
            progress: Callable | None = None) -> list[float]:
    """Fine-tune ``student`` (a pruned ``Denoiser``, or one wrapped by ``ddp.wrap``) towards ``teacher`` (the
    unpruned restorer) for ``settings.steps`` steps, ending with the weights' moving average; returns this
    process's losses.

    ``pairs`` yields global (clean target, condition) batches, the same on every process; each sample is noised
    to a timestep the teacher's sampler visits. ``features`` maps a module path inside the network to the
    indices of the teacher's channels that the pruned module kept; their outputs are matched too, scaled by
    ``settings.feature_weight``. ``progress`` is an ``edgeir.progress.progress_bar``-like factory, or None."""
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
    opt = torch.optim.AdamW(inner.parameters(), lr=settings.lr, weight_decay=0.0)
    ema = copy.deepcopy(inner).requires_grad_(False)
    teacher.eval()
    student.train()
    losses: list[float] = []
    batches = iter(pairs)
    bar = progress("recover", settings.steps) if progress else contextlib.nullcontext(lambda n=1: None)
    with bar as advance, _capture(s_mods) as s_feat, _capture(t_mods) as t_feat:
        for step in range(settings.steps):
            target, cond = next(batches)
            t = visited[torch.randint(len(visited), (target.shape[0],), generator=g)]
            x_t, _, _, _ = diffuse(ab, target, t, g)
            x_t, cond, t = (ddp.shard(v) for v in (x_t, cond, t))
            x_t, cond, tf = x_t.to(device), cond.to(device), t.float().to(device)
            with torch.no_grad():
                goal = teacher.denoiser(x_t, tf, cond)
            pred = student(x_t, tf, cond)
            loss = (weight(cond) * (pred - goal) ** 2).mean()
            if features:
                feat = sum(F.mse_loss(s_feat[k], t_feat[k][:, idx.to(device)]) / t_feat[k][:, idx.to(device)]
                           .pow(2).mean() for k, idx in features.items())
                loss = loss + settings.feature_weight * feat / len(features)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, step / settings.steps, settings.lr, warmup=max(1, settings.steps // 20))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(inner.parameters(), 1.0)
            opt.step()
            ema_update(ema, inner, min(settings.ema, (1 + step) / (10 + step)))
            losses.append(loss.item())
            advance(1)
    if settings.steps:
        inner.load_state_dict(ema.state_dict())
    student.eval()
    return losses
