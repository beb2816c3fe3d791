"""Noise schedules as pure functions returning cumulative alphas (alpha-bar) per training timestep."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

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


def spaced_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps, descending, with "trailing" spacing: the first one is always the noisiest
    timestep, so few-step sampling starts from the same noise level the model was trained to clean."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    ts = np.round(np.arange(num_timesteps, 0, -num_timesteps / steps)).astype(int) - 1
    return [int(t) for t in ts]
