"""Evaluate a restorer and its task's classical baselines on ground-truth images (degraded here, with a fixed seed
per image so every model sees the same inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeir.data.builtin import builtin_images
from edgeir.data.images import list_images, read_rgb
from edgeir.errors import ImageError
from edgeir.metrics import mean_metrics, measure
from edgeir.metrics.fidelity import SSIM_WINDOW
from edgeir.progress import progress_bar
from edgeir.tasks import Degraded, Task


def ground_truth(data: Path | None) -> list:
    """(name, image) pairs: the built-in held-out photographs, or every image in the folder ``data``."""
    if data is None:
        return builtin_images("heldout")
    return [(p.name, read_rgb(p)) for p in list_images(data)]


def center_crop(img: np.ndarray, size: int | None, multiple: int) -> np.ndarray:
    h, w = img.shape[:2]
    if size:
        h, w = min(h, size), min(w, size)
    h, w = h // multiple * multiple, w // multiple * multiple
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y : y + h, x : x + w]


def degrade_set(task: Task, images: Sequence[tuple[str, np.ndarray]], size: int | None, seed: int = 0
                ) -> list[tuple[str, np.ndarray, Degraded]]:
    """(name, ground truth, degraded) with ground truth cropped to ``size`` and to the task's scale."""
    out = []
    for i, (name, img) in enumerate(images):
        gt = task.crop_gt(center_crop(img, size, task.scale))
        out.append((name, gt, task.degrade(gt, np.random.default_rng([seed, i]))))
    return out


def _check_scorable(task: Task, cases: list[tuple[str, np.ndarray, Degraded]]) -> None:
    """SSIM's window must fit in what is scored: the ground truth less a ``task.scale`` border."""
    for name, gt, _ in cases:
        h, w = gt.shape[:2]
        if min(h, w) - 2 * task.scale < SSIM_WINDOW:
            need = -(-(SSIM_WINDOW + 2 * task.scale) // task.scale) * task.scale  # crops are multiples of it
            raise ImageError(f"{name}: {w}x{h} is too small to score: SSIM's {SSIM_WINDOW}-pixel window needs "
                             f"{need}x{need} or more (a {task.scale}-pixel border is not scored); raise eval's "
                             "--size or a recipe's data.eval_size")


def evaluate(restore, task: Task, cases: list[tuple[str, np.ndarray, Degraded]], baseline: bool = True,
             label: str = "eval") -> dict:
    """``restore(degraded, index) -> image``. Returns per-image rows and means for the model and, with
    ``baseline``, for the task's strongest classical restoration (``baseline``) and each of its named ones
    (``baselines``, the strongest first)."""
    _check_scorable(task, cases)
    methods = task.baselines() if baseline else {}
    rows, base_rows = [], {name: [] for name in methods}
    with progress_bar(label, total=len(cases)) as advance:
        for i, (name, gt, d) in enumerate(cases):
            rows.append({"image": name, **measure(restore(d, i), gt, crop=task.scale)})
            for method, fn in methods.items():
                base_rows[method].append({"image": name, **measure(fn(d), gt, crop=task.scale)})
            advance(1)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "image"} for r in rs]
    result = {"model": mean_metrics(strip(rows)), "per_image": rows}
    if baseline:
        strongest = next(iter(methods))
        result["baseline"] = mean_metrics(strip(base_rows[strongest]))
        result["baseline_per_image"] = base_rows[strongest]
        result["baselines"] = {method: mean_metrics(strip(rs)) for method, rs in base_rows.items()}
    return result
