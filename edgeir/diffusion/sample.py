"""The sampler loop, written once for torch tensors and numpy arrays alike (k-diffusion style: the loop is
visible, the maths lives in ``steps``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from edgeir.diffusion.steps import Step, apply_step

T = TypeVar("T")


def sample(x0_fn: Callable[[T, Step], T], x: T, steps: Sequence[Step],
           noise_fn: Callable[[T], T] | None = None, clip: float | None = None) -> T:
    """Run ``steps`` from ``x`` (the initial noise, already scaled). ``x0_fn(x_t, step)`` returns the x0
    estimate; ``noise_fn(like)`` draws fresh noise for stochastic steps; ``clip`` clips the x0 estimates to
    [-clip, clip] as the step maths says. Returns the clean sample."""
    for step in steps:
        x0 = x0_fn(x, step)
        x = apply_step(step, x, x0, noise_fn(x) if step.sigma > 0 and noise_fn else None, clip)
    return x
