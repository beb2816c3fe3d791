"""PSNR and SSIM on the Y channel, following BasicSR's convention (the one SR papers report):

* RGB in [0, 1] is rounded to 8 bits, then converted to BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``
  (range [16, 235]), computed in float64;
* PSNR with peak 255; SSIM with an 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, data range 255,
  population covariance and the window's border excluded, as in Wang et al.'s reference code;
* the caller crops ``scale`` pixels from each border first (``edgeir.metrics.measure(crop=...)``).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

SSIM_WINDOW = 11  # the Gaussian window's side: sigma 1.5 truncated at 3.5 sigma, as skimage builds it


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    q = np.round(np.clip(img, 0, 1).astype(np.float64) * 255.0) / 255.0
    return 16.0 + q @ np.array([65.481, 128.553, 24.966])


def psnr_y(out: np.ndarray, gt: np.ndarray) -> float:
    mse = np.mean((rgb_to_y(out) - rgb_to_y(gt)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim_y(out: np.ndarray, gt: np.ndarray) -> float:
    return float(structural_similarity(rgb_to_y(out), rgb_to_y(gt), data_range=255.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))
