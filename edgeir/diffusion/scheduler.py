"""diffusers' DDIM and DDPM schedulers (``scheduler_config.json``) mapped onto edgeir's step maths, so a
published restorer samples here exactly as its own pipeline samples it.

What the mapping has to reproduce, besides the betas:

* the timesteps ``set_timesteps`` picks (``timestep_spacing`` leading / trailing / linspace, ``steps_offset``);
* where each step lands: DDIM steps from ``t`` to ``t - num_train_timesteps // steps`` whatever the next
  timestep in the list is, and to ``set_alpha_to_one``'s final alpha-bar past zero; DDPM steps to the next
  timestep in the list, and to clean data after the last;
* ``clip_sample``: the x0 estimate clipped to ``clip_sample_range`` (``edgeir.diffusion.steps``).

Anything else that would change the samples (thresholding, learned variances, other scheduler classes) is
refused in one line naming it, never approximated.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeir.diffusion.schedules import cosine_betas, rescale_zero_terminal_snr
from edgeir.diffusion.steps import Prediction, Step, step_between

SUPPORTED = ("DDIMScheduler", "DDPMScheduler")
PREDICTIONS: dict[str, Prediction] = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# Settings a scheduler config may hold that change nothing here: bookkeeping, and knobs of the settings above
# that are off.
IGNORED = {"_class_name", "_diffusers_version", "dynamic_thresholding_ratio", "sample_max_value",
           "variance_type", "thresholding", "prediction_type", "timestep_type"}
VARIANCES = ("fixed_small", "fixed_small_log")  # sqrt(exp(log v)) == sqrt(v): the same noise


class DiffusersSchedule(BaseModel):
    """A DDIM or DDPM scheduler's settings, as far as they shape the samples."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["diffusers"] = "diffusers"
    scheduler: Literal["DDIMScheduler", "DDPMScheduler"] = "DDIMScheduler"
    num_train_timesteps: int = Field(1000, ge=2, le=100_000)
    beta_start: float = Field(0.0001, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    trained_betas: list[float] | None = None
    timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading"
    steps_offset: int = Field(0, ge=0)
    clip_sample: bool = True
    clip_sample_range: float = Field(1.0, gt=0)
    set_alpha_to_one: bool = True  # DDIM only: past timestep 0 a step lands on alpha-bar 1, else on t=0's
    rescale_betas_zero_snr: bool = False

    @property
    def clip(self) -> float | None:
        return self.clip_sample_range if self.clip_sample else None

    def betas(self) -> np.ndarray:
        n = self.num_train_timesteps
        if self.trained_betas is not None:
            betas = np.asarray(self.trained_betas, dtype=np.float64)
        elif self.beta_schedule == "linear":
            betas = np.linspace(self.beta_start, self.beta_end, n, dtype=np.float64)
        elif self.beta_schedule == "scaled_linear":
            betas = np.linspace(self.beta_start**0.5, self.beta_end**0.5, n, dtype=np.float64) ** 2
        else:
            betas = cosine_betas(n)
        return rescale_zero_terminal_snr(betas) if self.rescale_betas_zero_snr else betas

    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas())

    def timesteps(self, steps: int) -> list[int]:
        """What ``set_timesteps(steps)`` picks, noisiest first."""
        n = self.num_train_timesteps
        if not 1 <= steps <= n:
            raise ValueError(f"steps must be in [1, {n}], got {steps}")
        if self.timestep_spacing == "linspace":
            ts = np.linspace(0, n - 1, steps).round()[::-1]
        elif self.timestep_spacing == "leading":
            ts = (np.arange(0, steps) * (n // steps)).round()[::-1] + self.steps_offset
        else:
            ts = np.round(np.arange(n, 0, -n / steps)) - 1
        return [int(t) for t in ts.astype(np.int64)]

    def steps(self, steps: int, eta: float) -> list[Step]:
        """The sampler's steps. ``eta`` scales DDIM's noise; DDPM's ancestral sampler is eta 1 (another eta
        samples DDPM's timesteps with DDIM's update, as deterministic distillation targets need)."""
        ac = self.alphas_cumprod()
        ts = self.timesteps(steps)
        if ts[0] >= len(ac):
            raise ValueError(f"steps_offset {self.steps_offset} puts timestep {ts[0]} past the schedule's "
                             f"{len(ac)}")
        if self.scheduler == "DDIMScheduler":
            final = 1.0 if self.set_alpha_to_one else float(ac[0])
            ratio = self.num_train_timesteps // steps
            prev = [float(ac[t - ratio]) if t - ratio >= 0 else final for t in ts]
        else:
            prev = [float(ac[t]) for t in ts[1:]] + [1.0]
        ddpm = self.scheduler == "DDPMScheduler"
        return [step_between(t, float(ac[t]), p, eta, clip_x0_whole=ddpm) for t, p in zip(ts, prev)]


def from_diffusers(raw: dict[str, Any]) -> tuple[DiffusersSchedule, Prediction]:
    """A ``scheduler_config.json``'s schedule and what the network predicts; ValueError naming what is not
    supported."""
    name = raw.get("_class_name")
    if name not in SUPPORTED:
        raise ValueError(f"scheduler {name} is not supported (edgeir maps {' and '.join(SUPPORTED)})")
    if raw.get("thresholding"):
        raise ValueError(f"{name} with thresholding (dynamic x0 clipping) is not supported")
    variance = raw.get("variance_type")
    if name == "DDPMScheduler" and variance not in (None, *VARIANCES):
        raise ValueError(f"{name} variance_type {variance!r} is not supported ({' or '.join(VARIANCES)})")
    kind = raw.get("prediction_type", "epsilon")
    if kind not in PREDICTIONS:
        raise ValueError(f"{name} prediction_type {kind!r} is not supported ({', '.join(PREDICTIONS)})")
    known = set(DiffusersSchedule.model_fields) - {"kind", "scheduler"}
    unknown = sorted(k for k in raw if k not in known | IGNORED)
    if unknown:
        raise ValueError(f"{name} setting {unknown[0]} is not supported")
    fields = {k: v for k, v in raw.items() if k in known and not (k == "set_alpha_to_one" and name != "DDIMScheduler")}
    try:
        schedule = DiffusersSchedule(scheduler=name, **fields)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"{name} {where}: {first['msg']}") from None
    if PREDICTIONS[kind] == "eps" and schedule.alphas_cumprod()[-1] == 0:
        raise ValueError(f"{name}: an epsilon prediction cannot give x0 at zero terminal SNR "
                         "(rescale_betas_zero_snr needs v_prediction)")
    return schedule, PREDICTIONS[kind]


def to_diffusers(schedule: DiffusersSchedule, prediction: Prediction) -> dict[str, Any]:
    """``from_diffusers``' inverse: the ``scheduler_config.json`` (``_class_name`` and settings) of ``schedule``
    with a network predicting ``prediction``."""
    fields = schedule.model_dump(exclude={"kind", "scheduler"})
    if schedule.scheduler != "DDIMScheduler":
        fields.pop("set_alpha_to_one")
    kind = next(k for k, v in PREDICTIONS.items() if v == prediction)
    return {"_class_name": schedule.scheduler, **fields, "prediction_type": kind}
