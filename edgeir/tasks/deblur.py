"""Deblurring: Gaussian and linear-motion kernels; condition and baseline are the blurred image itself."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from edgeir.tasks.base import Degraded, Task, add_noise


def gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-r, r + 1)
    k = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * sigma**2))
    return k / k.sum()


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A line of ``length`` pixels at ``angle_deg``, drawn with sub-pixel sampling so it stays normalised."""
    size = length + (1 - length % 2)
    k = np.zeros((size, size))
    c = size // 2
    a = np.deg2rad(angle_deg)
    for s in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        y, x = c + s * np.sin(a), c + s * np.cos(a)
        k[int(np.rint(y)), int(np.rint(x))] += 1
    return k / k.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolution with reflected borders; FFT-based because motion kernels are large."""
    from scipy.signal import fftconvolve  # lazily: the runtime imports this module and ships without scipy

    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(image, ((ry, ry), (rx, rx), (0, 0)), mode="symmetric")
    return fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1)).astype(np.float32)


class DeblurTask(Task):
    name: Literal["deblur"] = "deblur"
    kernel: Literal["gaussian", "motion", "mixed"] = "mixed"
    sigma_range: tuple[float, float] = (1.0, 2.5)
    motion_length_range: tuple[int, int] = (5, 13)
    noise_sigma: float = Field(0.0, ge=0, le=0.5)

    def sample_kernel(self, rng: np.random.Generator) -> np.ndarray:
        kind = self.kernel if self.kernel != "mixed" else ("gaussian", "motion")[int(rng.integers(2))]
        if kind == "gaussian":
            return gaussian_kernel(float(rng.uniform(*self.sigma_range)))
        lo, hi = self.motion_length_range
        return motion_kernel(int(rng.integers(lo, hi + 1)), float(rng.uniform(0, 180)))

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> Degraded:
        blurred = blur(gt.astype(np.float32), self.sample_kernel(rng))
        return Degraded(add_noise(np.clip(blurred, 0, 1), self.noise_sigma, rng).astype(np.float32))
