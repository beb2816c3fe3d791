"""Super-resolution: bicubic downsampling (optionally noise and JPEG); condition and baseline are the bicubic
upsampling of the low-resolution input."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field

from edgeir.tasks.base import Degraded, Task, add_noise, resize


class SRTask(Task):
    name: Literal["sr"] = "sr"
    scale: int = Field(4, ge=2, le=8)
    noise_sigma: float = Field(0.0, ge=0, le=0.5)
    jpeg_quality: int | None = Field(None, ge=10, le=100)

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> Degraded:
        gt = self.crop_gt(gt)
        lr = np.clip(resize(gt, (gt.shape[0] // self.scale, gt.shape[1] // self.scale)), 0, 1)
        lr = add_noise(lr, self.noise_sigma, rng)
        if self.jpeg_quality is not None:
            buf = io.BytesIO()
            Image.fromarray((lr * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=self.jpeg_quality)
            lr = np.asarray(Image.open(buf), dtype=np.float32) / 255
        return Degraded(lr.astype(np.float32))

    def condition(self, d: Degraded) -> np.ndarray:
        h, w = d.image.shape[:2]
        return resize(d.image.astype(np.float32), (h * self.scale, w * self.scale)) * 2 - 1
