"""``edgeir eval``: a model and its task's classical baselines on held-out ground truth, degraded as the model
was trained to expect or under another named degradation."""

from __future__ import annotations

from pathlib import Path

from edgeir.errors import ImageError
from edgeir.evaluate import degrade_set, evaluate, ground_truth
from edgeir.load import load_restorer


def run_eval(model: str, data: Path | None = None, steps: int | None = None, sampler: str | None = None,
             size: int | None = 256, seed: int = 0, trust_pickle: bool = False, degradation: str | None = None
             ) -> dict:
    """``degradation``: a name from ``edgeir.tasks.degradations`` (default: the one the model was trained for)."""
    restorer = load_restorer(model, trust_pickle=trust_pickle)
    cfg = restorer.config
    task = cfg.task if degradation is None else cfg.task.with_degradation(degradation)
    multiple = max(cfg.multiple_of, cfg.task.scale)
    images = ground_truth(data)
    for name, img in images:
        if min(img.shape[:2]) < multiple:
            raise ImageError(f"{name}: {img.shape[1]}x{img.shape[0]} is smaller than the model's minimum "
                             f"{multiple}x{multiple}")
    eta = 1.0 if sampler == "ddpm" else (0.0 if sampler == "ddim" else None)
    sched = restorer.steps(steps, eta)
    cases = degrade_set(task, images, size, seed)
    result = evaluate(lambda d, i: restorer.restore(d, seed=seed + i, schedule=sched), task, cases,
                      label=f"eval {Path(str(model)).name}")
    result["steps"], result["degradation"] = len(sched), task.degradation
    return result
