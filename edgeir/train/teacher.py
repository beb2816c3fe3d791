"""Teacher training: x0-prediction of the scaled residual, EMA weights, AdamW with warmup and cosine decay.
Resumable: the training state is checkpointed every ``save_every`` steps and picked up with ``resume``."""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from edgeir.data.builtin import builtin_images
from edgeir.files import atomic_path
from edgeir.load.checkpoint import load_restorer, save_restorer
from edgeir.models.config import RestorerConfig
from edgeir.models.restorer import Restorer
from edgeir.progress import progress_bar
from edgeir.train.data import PairStream

STATE = "train_state.pt"


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def lr_at(step: int, progress: float, base: float, warmup: int = 500) -> float:
    """Linear warmup, then cosine decay to 10% as ``progress`` (fraction of the run done) reaches 1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_teacher(config: RestorerConfig, out: Path, work: Path, iters: int, batch: int = 16, patch: int = 128,
                  lr: float = 2e-4, device: str | None = None, workers: int | None = None, seed: int = 0,
                  max_minutes: float | None = None, save_every: int = 1000, log_every: int = 200,
                  resume: bool = True, command: str = "", images: list | None = None,
                  init: Path | None = None) -> Restorer:
    """Train ``config``'s network from scratch (or resume it) and save its EMA weights to ``out``. With
    ``max_minutes`` the run ends at whichever of ``iters`` or the time limit comes first, and the learning
    rate decays over whichever is nearer, so a time-boxed GPU run still finishes its schedule."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = workers if workers is not None else max(1, min(8, (os.cpu_count() or 2) - 1))
    torch.manual_seed(seed)
    model = Restorer(config)
    history = []
    if init is not None:  # fine-tune a trained model instead of starting from scratch
        start_from = load_restorer(init)
        model.load_state_dict(start_from.state_dict())
        prior = dict(start_from.config.provenance)
        history = prior.pop("history", []) + [prior]
    model = model.to(device)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    step = 0
    work.mkdir(parents=True, exist_ok=True)
    if resume and (work / STATE).exists():
        state = torch.load(work / STATE, map_location=device, weights_only=True)  # our own file
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])

    images = images if images is not None else [im for _, im in builtin_images("train")]
    loader = DataLoader(PairStream(images, config, patch, seed + step), batch_size=batch, num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    ab = torch.tensor(model.alphas_cumprod, dtype=torch.float32, device=device)
    T = config.schedule.num_train_timesteps
    use_bf16 = device.startswith("cuda")

    def checkpoint() -> None:
        with atomic_path(work / STATE) as tmp:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "step": step}, tmp)

    start, losses = time.time(), []
    with progress_bar(f"train {config.task.name}", total=iters, completed=step) as advance:
        for target, cond in loader:
            if step >= iters or (max_minutes and time.time() - start > 60 * max_minutes):
                break
            target, cond = target.to(device, non_blocking=True), cond.to(device, non_blocking=True)
            t = torch.randint(0, T, (target.shape[0],), device=device)
            a = ab[t].sqrt()[:, None, None, None]
            s = (1 - ab[t]).sqrt()[:, None, None, None]
            noise = torch.randn_like(target)
            x_t = a * target + s * noise
            elapsed = time.time() - start
            progress = max(step / iters, elapsed / (60 * max_minutes) if max_minutes else 0.0)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, progress, lr)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
                pred = model.denoiser(x_t, t.float(), cond)
            goal = {"x0": target, "eps": noise, "v": a * noise - s * target}[config.prediction]
            loss = (config.task.loss_weight(cond) * (pred.float() - goal) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema_update(ema, model, min(0.999, (1 + step) / (10 + step)))
            step += 1
            losses.append(loss.item())
            advance(1)
            if step % log_every == 0:
                print(f"step {step} loss {sum(losses[-log_every:]) / log_every:.4f} "
                      f"{(time.time() - start) / 60:.1f} min", flush=True)
            if step % save_every == 0:
                checkpoint()
    checkpoint()
    ema = ema.cpu()
    ema.config = config.model_copy(update={"provenance": {
        "trained_by": "edgeir.train.teacher", "iterations": step, "batch": batch, "patch": patch, "lr": lr,
        "device": torch.cuda.get_device_name() if use_bf16 else "cpu", "seed": seed,
        "minutes": round((time.time() - start) / 60, 1), "data": "builtin train split (scikit-image photos)",
        "command": command, **({"history": history} if history else {})}})
    save_restorer(ema, out)
    return ema
