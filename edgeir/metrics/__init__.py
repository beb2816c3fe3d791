"""Quality has three sides, and every report shows all three: fidelity (PSNR/SSIM), perception (HaarPSI) and
detail (high-frequency energy relative to ground truth). Fidelity alone rewards blur."""

from __future__ import annotations

import numpy as np

from edgeir.metrics.detail import detail_ratio
from edgeir.metrics.fidelity import psnr_y, ssim_y
from edgeir.metrics.haarpsi import haarpsi

METRICS = ("psnr", "ssim", "haarpsi", "detail")


def measure(out: np.ndarray, gt: np.ndarray, crop: int = 0) -> dict[str, float]:
    """All metrics of an HxWx3 [0, 1] image against ground truth; ``crop`` border pixels are ignored."""
    if crop:
        out, gt = out[crop:-crop, crop:-crop], gt[crop:-crop, crop:-crop]
    return {"psnr": psnr_y(out, gt), "ssim": ssim_y(out, gt), "haarpsi": haarpsi(out, gt),
            "detail": detail_ratio(out, gt)}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


__all__ = ["METRICS", "detail_ratio", "haarpsi", "mean_metrics", "measure", "psnr_y", "ssim_y"]
