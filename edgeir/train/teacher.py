"""Teacher training: the network learns to denoise the scaled residual over the task's base image at random
timesteps (``edgeir.diffusion.training``), in the shared training loop (``edgeir.train.loop``). Resumable: the
training state is checkpointed every ``save_every`` steps and picked up with ``resume``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from edgeir.data.builtin import builtin_images
from edgeir.diffusion.training import noised, training_target
from edgeir.errors import CheckpointError
from edgeir.load.checkpoint import load_restorer, save_restorer
from edgeir.models.config import RestorerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.progress import progress_bar
from edgeir.train.data import Pairs
from edgeir.train.loop import Schedule, fit

STATE = "train_state.pt"


def train_teacher(config: RestorerConfig, out: Path, work: Path, iters: int, batch: int = 16, patch: int = 128,
                  lr: float = 2e-4, device: str | None = None, workers: int | None = None, seed: int = 0,
                  max_minutes: float | None = None, save_every: int = 1000, log_every: int = 200,
                  resume: bool = True, command: str = "", images: list | None = None,
                  init: Path | None = None) -> RestorerModel:
    """Train ``config``'s network from scratch (or resume it) and save its EMA weights to ``out``. With
    ``max_minutes`` the run ends at whichever of ``iters`` or the time limit comes first (``edgeir.train.loop``)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = workers if workers is not None else max(1, min(8, (os.cpu_count() or 2) - 1))
    torch.manual_seed(seed)
    model = RestorerModel(config)
    history = []
    if init is not None:  # fine-tune a trained model instead of starting from scratch
        start_from = load_restorer(init)
        same = {"network", "task"}
        where = _difference(start_from.config.model_dump(mode="json", include=same),
                            config.model_dump(mode="json", include=same))
        if where is not None:
            raise CheckpointError(f"--init {init}: its {where[0]} is {where[1]!r} where the preset's is "
                                  f"{where[2]!r}; --init fine-tunes a model of the preset's own network and task")
        model.load_state_dict(start_from.state_dict())
        prior = dict(start_from.config.provenance)
        history = prior.pop("history", []) + [prior]
    model = model.to(device).train()
    work.mkdir(parents=True, exist_ok=True)
    state = work / STATE
    if not resume:
        state.unlink(missing_ok=True)

    images = images if images is not None else [im for _, im in builtin_images("train")]
    ab = torch.tensor(model.alphas_cumprod, dtype=torch.float32, device=device)
    T = config.schedule.num_train_timesteps
    use_bf16 = device.startswith("cuda")
    batches = None

    def loss(it: int) -> torch.Tensor:
        nonlocal batches
        if batches is None:
            batches = iter(Pairs(images, config, patch, seed).batches(it, batch, workers))
        target, cond = model.training_batch(*next(batches))
        g = torch.Generator().manual_seed(seed * 1_000_003 + it)  # per iteration, so a resumed run repeats it
        t = torch.randint(0, T, (target.shape[0],), generator=g)
        noise = torch.randn(target.shape, generator=g)
        target, cond, t, noise = (v.to(device, non_blocking=True) for v in (target, cond, t, noise))
        a, s = ab[t].sqrt()[:, None, None, None], (1 - ab[t]).sqrt()[:, None, None, None]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            pred = model.denoiser(noised(target, noise, a, s), t.float(), cond)
        goal = training_target(config.prediction, target, noise, a, s)
        return (config.task.loss_weight(cond) * (pred.float() - goal) ** 2).mean()

    start = time.time()
    schedule = Schedule(iters, lr, warmup=500, ema=0.999, save_every=save_every, max_minutes=max_minutes)
    fitted = fit(model, loss, schedule, state, progress_bar, f"train {config.task.name}", log_every)
    ema = fitted.ema.cpu()
    ema.config = config.model_copy(update={"provenance": {
        "trained_by": "edgeir.train.teacher", "iterations": fitted.iterations, "batch": batch, "patch": patch,
        "lr": lr, "device": torch.cuda.get_device_name() if use_bf16 else "cpu", "seed": seed,
        "minutes": round((time.time() - start) / 60, 1), "data": "builtin train split (scikit-image photos)",
        "command": command, **({"history": history} if history else {})}})
    save_restorer(ema, out)
    return ema


def _difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first place where two JSON-like values differ: (dotted path, a's value, b's value); a ``type``
    before the fields that depend on it."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=lambda k: (k != "type", k)):
            found = _difference(a.get(key), b.get(key), f"{path}.{key}".lstrip("."))
            if found:
                return found
        return None
    return None if a == b else (path, a, b)
