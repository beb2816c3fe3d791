"""Endless training pairs: random crops of the training photographs, augmented, degraded as the task
defines; the target is the scaled residual over the condition's base image."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgeir.models.config import RestorerConfig


def make_pair(gt: np.ndarray, config: RestorerConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(the network's clean target, condition), both float32 HxWxC; ``gt`` is HxWx3 in [0, 1]. A latent
    restorer's target is the image, which ``RestorerModel.training_batch`` encodes."""
    task = config.task
    gt = task.crop_gt(gt)
    cond = config.condition(task.degrade(gt, rng))
    base = cond[..., :3] if config.target == "residual" else 0
    target = (gt * 2 - 1 - base) * config.residual_scale
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


class Pairs(Dataset):
    """Training pair ``i`` of an endless sequence, drawn from a generator seeded by ``(seed, i)``: the same pairs
    whatever the number of data workers, so a run resumed at batch ``k`` sees the batches an uninterrupted run
    would. ``batches(start, batch)`` serves them from batch ``start`` on."""

    def __init__(self, images: list[np.ndarray], config: RestorerConfig, patch: int, seed: int):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        self.config, self.patch, self.seed = config, patch, seed

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        target, cond = make_pair(random_crop(self.images, self.patch, rng), self.config, rng)
        return torch.from_numpy(target).permute(2, 0, 1), torch.from_numpy(cond).permute(2, 0, 1)

    def batches(self, start: int, batch: int, workers: int = 0) -> DataLoader:
        return DataLoader(self, batch_size=batch, sampler=range(start * batch, len(self)), num_workers=workers,
                          persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
