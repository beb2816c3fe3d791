"""Noise schedules as pure functions returning cumulative alphas (alpha-bar) per training timestep, and
edgeir's own schedule config (``edgeir.diffusion.scheduler`` maps diffusers' schedulers onto the same maths)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeir.diffusion.steps import Step, ddim_steps

ScheduleKind = Literal["linear", "cosine"]


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    # DDPM's constants assume 1000 steps; rescaling keeps the end-point noise level for other counts.
    scale = 1000.0 / num_timesteps
    return np.linspace(beta_start * scale, beta_end * scale, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule; betas are clipped so the last step is not pure infinity."""

    def f(t: float) -> float:
        return math.cos((t / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2

    return np.array(
        [min(1 - f(i + 1) / f(i), max_beta) for i in range(num_timesteps)], dtype=np.float64
    )


def alphas_cumprod(kind: ScheduleKind, num_timesteps: int = 1000) -> np.ndarray:
    betas = {"linear": linear_betas, "cosine": cosine_betas}[kind](num_timesteps)
    return np.cumprod(1.0 - betas)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Betas whose last alpha-bar is exactly 0 (Lin et al., 2024, algorithm 1), the first one kept."""
    root = np.sqrt(np.cumprod(1.0 - betas))
    first, last = root[0], root[-1]
    root = (root - last) * first / (first - last)
    ab = root**2
    return 1.0 - np.concatenate([ab[:1], ab[1:] / ab[:-1]])


def spaced_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps, descending, with "trailing" spacing: the first one is always the noisiest
    timestep, so few-step sampling starts from the same noise level the model was trained to clean."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    ts = np.round(np.arange(num_timesteps, 0, -num_timesteps / steps)).astype(int) - 1
    return [int(t) for t in ts]


class ScheduleConfig(BaseModel):
    """edgeir's own schedules: the sampler's steps are spaced "trailing" and the last lands on clean data."""

    model_config = ConfigDict(extra="forbid")

    kind: ScheduleKind = "cosine"
    num_train_timesteps: int = Field(1000, ge=2)

    @property
    def clip(self) -> float | None:
        """edgeir's samplers never clip their x0 estimate."""
        return None

    def alphas_cumprod(self) -> np.ndarray:
        return alphas_cumprod(self.kind, self.num_train_timesteps)

    def timesteps(self, steps: int) -> list[int]:
        return spaced_timesteps(self.num_train_timesteps, steps)

    def steps(self, steps: int, eta: float) -> list[Step]:
        return ddim_steps(self.alphas_cumprod(), self.timesteps(steps), eta)
