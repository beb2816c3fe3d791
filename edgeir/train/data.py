"""Endless training pairs: random crops of the training photographs, augmented, degraded as the task
defines; the target is the scaled residual over the condition's base image."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from edgeir.models.config import RestorerConfig


def make_pair(gt: np.ndarray, config: RestorerConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(target residual, condition), both float32 HxWxC; ``gt`` is HxWx3 in [0, 1]."""
    task = config.task
    gt = task.crop_gt(gt)
    cond = task.condition(task.degrade(gt, rng))
    target = (gt * 2 - 1 - cond[..., :3]) * config.residual_scale
    return target.astype(np.float32), cond.astype(np.float32)


def random_crop(images: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    img = images[int(rng.integers(len(images)))]
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    crop = img[y : y + size, x : x + size]
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


class PairStream(IterableDataset):
    def __init__(self, images: list[np.ndarray], config: RestorerConfig, patch: int, seed: int):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        self.config, self.patch, self.seed = config, patch, seed

    def __iter__(self):
        info = get_worker_info()
        # A worker's torch seed (drawn from the seeded main process) separates the workers' streams; without
        # workers the stream's own seed alone decides it, so a stage run in a fresh process repeats exactly.
        rng = np.random.default_rng([self.seed, info.id, torch.initial_seed() % 2**31] if info else [self.seed])
        while True:
            target, cond = make_pair(random_crop(self.images, self.patch, rng), self.config, rng)
            yield torch.from_numpy(target).permute(2, 0, 1), torch.from_numpy(cond).permute(2, 0, 1)
