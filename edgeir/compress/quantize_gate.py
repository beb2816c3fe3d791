"""The quantize stage's quality gate: the INT8 restorer against its FP32 student on the held-out set.

It fails on a PSNR drop (vs ground truth) above the limit, on fine detail lost (INT8 detail / FP32 detail
below the limit), and on any NaN/Inf the INT8 denoiser produces at any sampler step of any image; the last
is checked on raw predictions, before clamping or inpainting's paste-back could hide it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from edgeir.evaluate import evaluate
from edgeir.models.restorer import RestorerModel
from edgeir.tasks import Degraded

Cases = list[tuple[str, np.ndarray, Degraded]]


@dataclass
class GateResult:
    psnr_fp32: float
    psnr_int8: float
    detail_fp32: float
    detail_int8: float
    nonfinite: int  # NaN/Inf values in the INT8 denoiser's predictions
    max_psnr_drop: float
    min_detail_kept: float

    @property
    def psnr_drop(self) -> float:
        return self.psnr_fp32 - self.psnr_int8

    @property
    def detail_kept(self) -> float:
        return self.detail_int8 / self.detail_fp32 if self.detail_fp32 > 0 else float("nan")

    @property
    def passed(self) -> bool:
        return (self.nonfinite == 0 and np.isfinite(self.psnr_int8) and self.psnr_drop <= self.max_psnr_drop
                and not self.detail_kept < self.min_detail_kept)

    def summary(self) -> str:
        if self.nonfinite:
            return f"{self.nonfinite} NaN/Inf values in the INT8 predictions"
        return (f"PSNR {self.psnr_int8:.2f} dB vs FP32 {self.psnr_fp32:.2f} dB (drop {self.psnr_drop:.2f}, limit "
                f"{self.max_psnr_drop}), detail kept {self.detail_kept:.1%} (limit {self.min_detail_kept:.0%})")

    def as_dict(self) -> dict:
        return {**asdict(self), "psnr_drop": self.psnr_drop, "detail_kept": self.detail_kept,
                "passed": self.passed}


def restore_all(restorer: RestorerModel, cases: Cases, seed: int, label: str) -> tuple[dict, int]:
    """Mean metrics over ``cases`` (same seed per image as every other evaluation) and the number of
    non-finite values the denoiser predicted along the way."""
    nonfinite = 0

    def count(_module, _args, out):
        nonlocal nonfinite
        nonfinite += int((~torch.isfinite(out)).sum())

    handle = restorer.denoiser.register_forward_hook(count)
    try:
        with torch.no_grad():
            result = evaluate(lambda d, i: restorer.restore(d, seed=seed + i), restorer.task, cases,
                              baseline=False, label=label)
    finally:
        handle.remove()
    return result["model"], nonfinite


def check(fp32: RestorerModel, int8: RestorerModel, cases: Cases, seed: int, max_psnr_drop: float,
          min_detail_kept: float, fp32_metrics: dict | None = None) -> GateResult:
    """``fp32_metrics`` (from ``restore_all``) saves re-running the FP32 student for repeated checks."""
    ref = fp32_metrics or restore_all(fp32, cases, seed, "gate: FP32 student")[0]
    got, nonfinite = restore_all(int8, cases, seed, "gate: INT8")
    return GateResult(ref["psnr"], got["psnr"], ref["detail"], got["detail"], nonfinite, max_psnr_drop,
                      min_detail_kept)
