"""The forward process and training targets, written once for torch tensors and numpy arrays alike: what
teacher training, distillation and pruning recovery noise their clean samples with and regress."""

from __future__ import annotations

from typing import TypeVar

from edgeir.diffusion.steps import Prediction

T = TypeVar("T")


def noised(x0: T, noise: T, sqrt_ab, sqrt_1mab) -> T:
    """``x_t`` of clean ``x0``: ``sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise``."""
    return sqrt_ab * x0 + sqrt_1mab * noise  # type: ignore[operator]


def training_target(prediction: Prediction, x0: T, noise: T, sqrt_ab, sqrt_1mab) -> T:
    """What a network of ``prediction`` type should output for ``noised(x0, noise, ...)``; ``to_x0`` inverts
    it."""
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return noise
    if prediction == "v":
        return sqrt_ab * noise - sqrt_1mab * x0  # type: ignore[operator]
    raise ValueError(f"unknown prediction type {prediction!r}")
