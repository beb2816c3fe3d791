"""HaarPSI (Reisenhofer, Bosse, Kutyniok & Wiegand, 2018): a full-reference perceptual similarity index built
from Haar wavelet responses, with no learned weights (LPIPS's weights cannot be fetched here). 1.0 means
identical; it correlates with human judgement about as well as learned metrics on standard databases.

Written from the paper's definition with its published constants (C=30, alpha=4.2, three scales, 2x2
pre-subsampling), on 8-bit-scaled YIQ.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve2d

C = 30.0
ALPHA = 4.2
SCALES = 3


def _haar(image: np.ndarray) -> np.ndarray:
    """Horizontal and vertical Haar responses at scales 1..SCALES: shape (2, SCALES, H, W)."""
    out = np.empty((2, SCALES) + image.shape)
    for j in range(1, SCALES + 1):
        f = np.full((2**j, 2**j), 2.0**-j)
        f[: 2 ** (j - 1)] *= -1
        out[0, j - 1] = convolve2d(image, f, mode="same")
        out[1, j - 1] = convolve2d(image, f.T, mode="same")
    return out


def _subsample(image: np.ndarray) -> np.ndarray:
    return convolve2d(image, np.full((2, 2), 0.25), mode="same")[::2, ::2]


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (2 * a * b + C) / (a**2 + b**2 + C)


def haarpsi(out: np.ndarray, gt: np.ndarray) -> float:
    """HaarPSI between two HxWx3 images in [0, 1]."""
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    a = np.clip(gt, 0, 1).astype(np.float64) * 255 @ yiq.T
    b = np.clip(out, 0, 1).astype(np.float64) * 255 @ yiq.T
    a = np.stack([_subsample(a[..., c]) for c in range(3)], -1)
    b = np.stack([_subsample(b[..., c]) for c in range(3)], -1)

    ha, hb = _haar(a[..., 0]), _haar(b[..., 0])
    weights = np.empty((3,) + a.shape[:2])
    local = np.empty_like(weights)
    for o in range(2):
        weights[o] = np.maximum(np.abs(ha[o, SCALES - 1]), np.abs(hb[o, SCALES - 1]))
        local[o] = _similarity(np.abs(ha[o, : SCALES - 1]), np.abs(hb[o, : SCALES - 1])).mean(0)
    mean2 = np.full((2, 2), 0.25)
    chroma = [_similarity(np.abs(convolve2d(a[..., c], mean2, mode="same")),
                          np.abs(convolve2d(b[..., c], mean2, mode="same"))) for c in (1, 2)]
    local[2] = (chroma[0] + chroma[1]) / 2
    weights[2] = (weights[0] + weights[1]) / 2

    score = np.sum(1 / (1 + np.exp(-ALPHA * local)) * weights) / np.sum(weights)
    return float((np.log(score / (1 - score)) / ALPHA) ** 2)
