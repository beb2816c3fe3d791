"""``edgeir eval``: a model and its task's naive baseline on held-out ground truth."""

from __future__ import annotations

from pathlib import Path

from edgeir.errors import ImageError
from edgeir.evaluate import degrade_set, evaluate, ground_truth
from edgeir.load import load_restorer


def run_eval(model: str, data: Path | None = None, steps: int | None = None, sampler: str | None = None,
             size: int | None = 256, seed: int = 0, trust_pickle: bool = False) -> dict:
    restorer = load_restorer(model, trust_pickle=trust_pickle)
    cfg = restorer.config
    multiple = max(cfg.multiple_of, cfg.task.scale)
    images = ground_truth(data)
    for name, img in images:
        if min(img.shape[:2]) < multiple:
            raise ImageError(f"{name}: {img.shape[1]}x{img.shape[0]} is smaller than the model's minimum "
                             f"{multiple}x{multiple}")
    eta = 1.0 if sampler == "ddpm" else (0.0 if sampler == "ddim" else None)
    sched = restorer.steps(steps, eta)
    cases = degrade_set(cfg.task, images, size, seed)
    result = evaluate(lambda d, i: restorer.restore(d, seed=seed + i, schedule=sched), cfg.task, cases,
                      label=f"eval {Path(str(model)).name}")
    result["steps"] = len(sched)
    return result
