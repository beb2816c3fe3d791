"""What every task provides. Images are float32 HxWx3 in [0, 1]; conditions are float32 HxWxC in [-1, 1] at
output resolution (the network unshuffles them itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict


@dataclass
class Degraded:
    image: np.ndarray  # what the user has: low-res, blurred or holed image, HxWx3 in [0, 1]
    mask: np.ndarray | None = None  # inpainting only: HxW bool, True where pixels are missing


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    scale: int = 1
    cond_channels: int = 3

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> Degraded:
        raise NotImplementedError

    def condition(self, d: Degraded) -> np.ndarray:
        """The network's condition at output resolution, in [-1, 1]; its first 3 channels are the base image
        that the network's residual is added to."""
        return d.image.astype(np.float32) * 2 - 1

    def baseline(self, d: Degraded) -> np.ndarray:
        """The naive restoration every model must beat."""
        return np.clip(self.condition(d)[..., :3] * 0.5 + 0.5, 0, 1)

    def loss_weight(self, cond):
        """Per-pixel weight of the training loss (tensors or arrays); uniform unless a task says otherwise."""
        return 1.0

    def compose(self, restored: np.ndarray, d: Degraded) -> np.ndarray:
        """Final output from the network's image (inpainting keeps the known pixels)."""
        return restored

    def crop_gt(self, gt: np.ndarray) -> np.ndarray:
        """Crop ground truth so that its size is a multiple of the scale."""
        h, w = gt.shape[0] // self.scale * self.scale, gt.shape[1] // self.scale * self.scale
        return gt[:h, :w]


def resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float HxWxC image with Pillow (antialiased when shrinking, like MATLAB's imresize).
    Training and the runtime both resize through here, so conditions match bit for bit."""
    h, w = size_hw
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F")
                   .resize((w, h), Image.Resampling.BICUBIC))
        for c in range(image.shape[2])
    ]
    return np.stack(chans, axis=-1)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return image
    return np.clip(image + rng.normal(0, sigma, image.shape).astype(np.float32), 0, 1)
