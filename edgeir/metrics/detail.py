"""Detail: high-frequency energy of the output relative to ground truth.

The radially averaged power spectrum of the Y channel (Hann-windowed, so image borders add no spurious
high frequencies) is summed over the band above half the Nyquist frequency. 1.0 means as much fine detail as
ground truth; a blurry output scores near 0; hallucinated noise can score above 1.
"""

from __future__ import annotations

import numpy as np

from edgeir.metrics.fidelity import rgb_to_y


def high_frequency_energy(img: np.ndarray) -> float:
    y = rgb_to_y(img)
    y = y - y.mean()
    h, w = y.shape
    y = y * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(y))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    radius = np.sqrt(fx**2 + fy**2)  # cycles per pixel; Nyquist is 0.5
    n_bins = min(h, w) // 2
    bins = np.minimum((radius / 0.5 * n_bins).astype(int), n_bins)
    profile = np.bincount(bins.ravel(), power.ravel(), n_bins + 1) / np.maximum(
        np.bincount(bins.ravel(), minlength=n_bins + 1), 1)
    return float(profile[n_bins // 2 : n_bins].sum())


def detail_ratio(out: np.ndarray, gt: np.ndarray) -> float:
    ref = high_frequency_energy(gt)
    return high_frequency_energy(out) / ref if ref > 0 else float("nan")
