"""Which layers hurt when a denoiser is quantized, and which to keep in floating point.

Sensitivity is measured one layer at a time: only that layer's quantizers are switched on (its weight's and
those on its inputs) and the denoiser's prediction on calibration samples is compared with the FP32 one, as
a signal-to-noise ratio in dB (lower hurts more; NaN/Inf count as -inf). The suggested keep-in-FP list adds
the worst layers to the current one until the quality gate, re-run in simulation (NNCF's fake-quantized
torch model), passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgeir.compress.calibration import Sample
from edgeir.compress.nncf_model import switch_quantizers

GROWTH = (1, 2, 4, 8, 16)  # how many of the worst layers each suggestion round keeps in FP


@torch.no_grad()
def prediction_snr(net: nn.Module, reference: list[torch.Tensor], samples: Sequence[Sample]) -> float:
    noise = signal = 0.0
    for ref, (x_t, t, cond) in zip(reference, samples):
        out = net(x_t, t, cond)
        if not torch.isfinite(out).all():
            return float("-inf")
        noise += float(((out - ref) ** 2).sum())
        signal += float((ref**2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


@torch.no_grad()
def layer_sensitivity(quantized: nn.Module, fp32: nn.Module, units: dict[str, list[str]],
                      samples: Sequence[Sample], advance: Callable[[int], None] = lambda n: None
                      ) -> list[tuple[str, float]]:
    """(layer, prediction SNR in dB with only that layer quantized), worst first."""
    reference = [fp32(*s) for s in samples]
    scores = []
    try:
        for layer, hooks in units.items():
            switch_quantizers(quantized, set(hooks).__contains__)
            scores.append((layer, prediction_snr(quantized, reference, samples)))
            advance(1)
    finally:
        switch_quantizers(quantized, lambda _: True)
    return sorted(scores, key=lambda s: s[1])


def _not_in(hooks: set[str]) -> Callable[[str], bool]:
    return lambda hook: hook not in hooks


def suggest_keep_fp(quantized: nn.Module, units: dict[str, list[str]], ranking: list[tuple[str, float]],
                    passes: Callable[[], bool]) -> tuple[list[str], bool]:
    """The fewest worst-ranked layers (1, 2, 4, ...) whose quantizers switched off make ``passes()`` true;
    returns them and whether the gate passed (if never, the largest set tried)."""
    chosen: list[str] = []
    try:
        for n in GROWTH:
            chosen = [layer for layer, _ in ranking[:n]]
            switch_quantizers(quantized, _not_in({h for layer in chosen for h in units[layer]}))
            if passes():
                return chosen, True
            if n >= len(ranking):
                break
    finally:
        switch_quantizers(quantized, lambda _: True)
    return chosen, False
