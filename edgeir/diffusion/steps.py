"""Sampler step maths shared by every backend.

Each DDIM/DDPM step is ``x_prev = c_x * x_t + c_x0 * x0_hat + sigma * z``: three numbers per step, computed
here once in float64. The same coefficients drive the torch sampler, get baked into the exported sampler graph
and run the numpy loop in the runtime, so the three cannot drift apart. A sampler that clips its x0 estimate
(diffusers' ``clip_sample``) adds ``c_clip * (clip(x0_hat) - x0_hat)``: DDIM clips only the x0 term of its
update and keeps the unclipped noise direction, DDPM's posterior mean takes the clipped x0 whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, TypeVar

import numpy as np

Prediction = Literal["eps", "v", "x0"]
Target = Literal["residual", "image"]
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    t: int  # training timestep the network is evaluated at
    sqrt_ab: float  # sqrt(alpha_bar_t): turns eps/v predictions into x0
    sqrt_1mab: float  # sqrt(1 - alpha_bar_t)
    c_x: float
    c_x0: float
    sigma: float  # std of fresh noise added by this step; 0 for deterministic DDIM
    c_clip: float = 0.0  # weight of (clip(x0_hat) - x0_hat), for samplers that clip x0_hat


def ddim_steps(alphas_cumprod: np.ndarray, timesteps: Sequence[int], eta: float = 0.0) -> list[Step]:
    """Steps over ``timesteps`` (descending), each landing on the next. eta=0 is deterministic DDIM; eta=1 over
    every timestep is DDPM's ancestral sampler (the posterior variance beta-tilde). The last step lands on clean
    data (alpha_bar=1)."""
    ts = [int(t) for t in timesteps]
    if any(b >= a for a, b in pairwise(ts)):
        raise ValueError(f"timesteps must be strictly descending, got {ts}")
    if ts[-1] < 0 or ts[0] >= len(alphas_cumprod):
        raise ValueError(f"timesteps must lie in [0, {len(alphas_cumprod) - 1}], got {ts}")
    prev = [float(alphas_cumprod[t]) for t in ts[1:]] + [1.0]
    return [step_between(t, float(alphas_cumprod[t]), ab_prev, eta) for t, ab_prev in zip(ts, prev)]


def step_between(t: int, ab: float, ab_prev: float, eta: float = 0.0, clip_x0_whole: bool = False) -> Step:
    """The step from noise level ``ab`` (alpha_bar at timestep ``t``) to ``ab_prev``. ``clip_x0_whole``: a
    clipped x0 replaces the unclipped one everywhere (DDPM's posterior mean), not only in the x0 term (DDIM)."""
    sigma = eta * np.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    c_x = np.sqrt(max(1 - ab_prev - sigma**2, 0.0)) / np.sqrt(1 - ab)
    c_x0 = np.sqrt(ab_prev) - c_x * np.sqrt(ab)
    c_clip = c_x0 if clip_x0_whole else np.sqrt(ab_prev)
    return Step(t, float(np.sqrt(ab)), float(np.sqrt(1 - ab)), float(c_x), float(c_x0), float(sigma),
                float(c_clip))


def to_x0(pred: T, x_t: T, sqrt_ab, sqrt_1mab, prediction: Prediction) -> T:
    """Convert a network prediction to an x0 estimate. Works on numpy arrays and torch tensors alike."""
    if prediction == "x0":
        return pred
    if prediction == "eps":
        return (x_t - sqrt_1mab * pred) / sqrt_ab  # type: ignore[operator]
    if prediction == "v":
        return sqrt_ab * x_t - sqrt_1mab * pred  # type: ignore[operator]
    raise ValueError(f"unknown prediction type {prediction!r}")


def apply_step(step: Step, x_t: T, x0: T, noise: T | None, clip: float | None = None) -> T:
    """One sampler update; ``noise`` is only read when the step is stochastic. ``clip``: the sampler clips its
    x0 estimate to [-clip, clip]."""
    x = step.c_x * x_t + step.c_x0 * x0  # type: ignore[operator]
    if clip is not None:
        x = x + step.c_clip * (x0.clip(-clip, clip) - x0)  # type: ignore[attr-defined, operator]
    if step.sigma > 0:
        if noise is None:
            raise ValueError("a stochastic step (eta > 0) needs noise")
        x = x + step.sigma * noise
    return x


def noise_channels(steps: Sequence[Step], channels: int = 3) -> int:
    """Channels of the noise a sampler over ``steps`` consumes: the initial noise, then the fresh noise of each
    stochastic step in order, ``channels`` each (the sample's: 3 for pixels, a latent space's own; the exported
    graphs take it as one input)."""
    return channels * (1 + sum(s.sigma > 0 for s in steps))


def to_image(x: T, base: T, residual_scale: float, target: Target = "residual") -> T:
    """The restored image in [0, 1] from a sample in model space: with ``target`` "residual" (edgeir's own
    networks) it is (image - base) * residual_scale, over the condition's base image (in [-1, 1]); with
    "image" it is the image itself (in [-1, 1], times residual_scale). Works on numpy arrays, torch tensors and
    ``edgeir.graphs.build.Sym`` alike."""
    image = x / residual_scale if target == "image" else base + x / residual_scale  # type: ignore[operator]
    return (image * 0.5 + 0.5).clip(0, 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Sampling:
    """What the few-step loop needs besides the network: its steps, what the network predicts, the initial
    noise's scale and how a sample becomes pixels (``to_image``). Sampler graphs and restore graphs bake it in;
    a UNet graph is driven by it."""

    steps: Sequence[Step]
    prediction: Prediction
    temperature: float
    residual_scale: float
    target: Target = "residual"
    clip: float | None = None  # the x0 estimate clipped to [-clip, clip] (diffusers' clip_sample)
