"""The one training loop. Teacher training, step distillation and pruning recovery each bring a loss; the loop
is theirs in common: AdamW with linear warm-up and cosine decay, gradient clipping, an exponential moving
average of the weights (what it returns: a few-step sampler amplifies the last steps' weight noise), and a
checkpoint every ``save_every`` iterations that a rerun resumes from. Under ``torchrun`` the caller's loss
runs the model through ``ddp.wrap`` and only the main process writes checkpoints."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeir.files import atomic_path
from edgeir.progress import no_progress
from edgeir.train import ddp


def lr_at(step: int, progress: float, base: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to 10% as ``progress`` (fraction of the run done)
    reaches 1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


@dataclass
class Schedule:
    iterations: int
    lr: float
    warmup: int
    ema: float  # the average's decay, ramped up from 0.1 over the first iterations
    save_every: int = 50  # iterations between checkpoints (with a state file)
    # Wall-clock limit: the run ends at whichever of ``iterations`` or this comes first, and the learning rate
    # decays over whichever is nearer, so a time-boxed run still finishes its schedule.
    max_minutes: float | None = None


@dataclass
class Fitted:
    ema: nn.Module  # the moving average of the weights: the result
    losses: list[float]  # this run's, one per iteration (a resumed run's start is not repeated)
    iterations: int  # where training stopped


def fit(model: nn.Module, loss: Callable[[int], torch.Tensor], schedule: Schedule, state: Path | None = None,
        progress: Callable = no_progress, label: str = "train", log_every: int = 0) -> Fitted:
    """Minimise ``loss(iteration)`` over ``model``'s parameters. ``state``: checkpoint file, resumed when it
    exists. ``progress``: ``edgeir.progress.progress_bar`` or another factory like it. ``log_every``: print the
    mean loss of every so many iterations (a training log)."""
    s = schedule
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    ema = copy.deepcopy(model).eval()
    start = 0
    if state is not None and state.exists():
        saved = torch.load(state, map_location=next(model.parameters()).device, weights_only=True)  # ours
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        start = int(saved["iteration"])

    def checkpoint(iteration: int) -> None:
        if state is not None and ddp.is_main():
            with atomic_path(state) as tmp:
                torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                            "iteration": iteration}, tmp)

    began, losses, it = time.monotonic(), [], start
    with progress(label, s.iterations, start) as advance:
        for it in range(start, s.iterations):
            minutes = (time.monotonic() - began) / 60
            if s.max_minutes and minutes > s.max_minutes:
                break
            done = max(it / s.iterations, minutes / s.max_minutes if s.max_minutes else 0.0)
            for group in opt.param_groups:
                group["lr"] = lr_at(it, done, s.lr, s.warmup)
            value = loss(it)
            opt.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema_update(ema, model, min(s.ema, (1 + it) / (10 + it)))
            losses.append(value.item())
            advance(1)
            if log_every and (it + 1) % log_every == 0 and ddp.is_main():
                print(f"{label} step {it + 1} loss {sum(losses[-log_every:]) / len(losses[-log_every:]):.4f} "
                      f"{(time.monotonic() - began) / 60:.1f} min", flush=True)
            # The finished state too: a rerun then returns exactly these weights instead of training again.
            if (it + 1) % s.save_every == 0 or it + 1 == s.iterations:
                checkpoint(it + 1)
        else:
            it = s.iterations
    if it < s.iterations:
        checkpoint(it)
    ddp.barrier()
    return Fitted(ema, losses, it)


