"""Quality gates: every stage's output is measured the same way on held-out data and judged against the
teacher.

Fidelity alone rewards blur: a model that collapses to the conditional mean *gains* PSNR against ground truth
while its detail falls. So the four sides are measured together — fidelity (PSNR/SSIM), perception (HaarPSI),
detail (high-frequency ratio) and faithfulness to the teacher (PSNR of the stage's output against the
teacher's output from the same noise) — and a recipe gates detail and faithfulness as well as fidelity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeir.compress.cost import codec_costs, macs, params
from edgeir.evaluate import evaluate
from edgeir.metrics import psnr_y
from edgeir.models.restorer import RestorerModel
from edgeir.tasks import Degraded

Cases = list[tuple[str, np.ndarray, Degraded]]


class Gates(BaseModel):
    """Limits on a stage's output; relative ones compare with the teacher (its default sampler)."""

    model_config = ConfigDict(extra="forbid")

    max_psnr_drop: float | None = Field(None, ge=0)  # dB below the teacher, vs ground truth
    max_ssim_drop: float | None = Field(None, ge=0, le=1)
    max_haarpsi_drop: float | None = Field(None, ge=0, le=1)
    min_detail_kept: float | None = Field(None, gt=0)  # the stage's detail / the teacher's detail
    max_detail_kept: float | None = Field(None, gt=0)  # above 1 means hallucinated noise
    min_psnr_vs_teacher: float | None = Field(None, gt=0)  # dB, vs the teacher's output for the same noise

    @model_validator(mode="after")
    def _check(self) -> Gates:
        lo, hi = self.min_detail_kept, self.max_detail_kept
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_detail_kept ({lo}) is above max_detail_kept ({hi})")
        return self


@dataclass
class Verdict:
    gate: str
    limit: float
    value: float
    passed: bool

    def line(self) -> str:
        op = "<" if self.gate.startswith("min_") else ">"
        return f"{self.gate.removeprefix('min_').removeprefix('max_')} {self.value:.4g} {op} {self.limit:g}"


def judge(gates: Gates, metrics: dict, teacher: dict) -> list[Verdict]:
    """One verdict per gate the recipe sets."""
    detail_kept = metrics["detail"] / teacher["detail"] if teacher["detail"] > 0 else math.inf
    vs_teacher = metrics.get("psnr_vs_teacher")
    values = {
        "max_psnr_drop": teacher["psnr"] - metrics["psnr"],
        "max_ssim_drop": teacher["ssim"] - metrics["ssim"],
        "max_haarpsi_drop": teacher["haarpsi"] - metrics["haarpsi"],
        "min_detail_kept": detail_kept,
        "max_detail_kept": detail_kept,
        "min_psnr_vs_teacher": math.inf if vs_teacher is None else vs_teacher,  # None: identical outputs
    }
    verdicts = []
    for gate, limit in gates.model_dump(exclude_none=True).items():
        value = values[gate]
        passed = value >= limit if gate.startswith("min_") else value <= limit
        verdicts.append(Verdict(gate, limit, value, passed))
    return verdicts


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def measure_model(restorer: RestorerModel, cases: Cases, seed: int, reference: list[np.ndarray] | None = None,
                  label: str = "eval") -> tuple[dict, list[np.ndarray]]:
    """Metrics of ``restorer`` (its default sampler) on ``cases``, image ``i`` restored from noise seed
    ``seed + i``, and its outputs. ``reference`` (the teacher's outputs for the same seeds) adds
    ``psnr_vs_teacher``. Costs are parameters and MACs (the UNet's, per step and per restoration; a latent
    restorer's autoencoder parts' apart, ``edgeir.compress.cost.codec_costs``); latency is timed apart
    (``edgeir.compress.latency``), all models together, since timing each as it is evaluated compares machine
    loads as much as models."""
    task = restorer.config.task
    outputs: list[np.ndarray] = []

    def restore(d: Degraded, i: int) -> np.ndarray:
        outputs.append(restorer.restore(d, seed=seed + i))
        return outputs[-1]

    restorer.eval()
    metrics = dict(evaluate(restore, task, cases, baseline=False, label=label)["model"])
    if reference is not None:
        vs = [psnr_y(_crop(o, task.scale), _crop(r, task.scale)) for o, r in zip(outputs, reference)]
        mean = float(np.mean(vs))
        metrics["psnr_vs_teacher"] = mean if math.isfinite(mean) else None
    h, w = cases[0][1].shape[:2]
    steps = len(restorer.steps())
    per_eval = macs(restorer, h, w)
    metrics.update(steps=steps, params=params(restorer), macs_per_step=per_eval, macs=per_eval * steps,
                   eval_size=[h, w], **codec_costs(restorer, h, w))
    return metrics, outputs
