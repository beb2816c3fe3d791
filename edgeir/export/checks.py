"""What every exported graph must pass: ``onnx.checker`` with full (strict) shape inference, and onnxruntime's
output against torch's on random and real inputs, gated per graph kind and precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgeir.errors import QualityGateError, brief
from edgeir.graphs.ort import open_session

# Max abs difference allowed between onnxruntime and torch. UNet outputs are network predictions (unit scale);
# sampler outputs are images in [0, 1]. FP32 torch is the reference for FP16 graphs; for INT8 graphs it is the
# fake-quantized torch model, where a rounding tie can still flip one quantization step.
TOLERANCE = {
    ("unet", "fp32"): 1e-4,
    ("sampler", "fp32"): 1e-3,
    ("unet", "fp16"): 3e-2,
    ("sampler", "fp16"): 1e-2,
    ("unet", "int8"): 3e-2,
    ("sampler", "int8"): 1e-2,
}

ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class ExportCheckError(QualityGateError):
    """An exported graph is invalid or its output differs from torch's beyond its gate."""


def validate(path: str | Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportCheckError(f"{Path(path).name}: invalid ONNX: {brief(e, 200, first_line=True)}") from None


def run(sess, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The first output as float32, feeding each input in the dtype the graph declares."""
    typed = {i.name: feeds[i.name].astype(ONNX_TYPES.get(i.type, np.float32)) for i in sess.get_inputs()}
    return sess.run(None, typed)[0].astype(np.float32)


def max_abs_diff(path: str | Path, cases: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> float:
    """Worst difference over ``(feeds, torch output)`` cases; NaN or Inf anywhere counts as infinite."""
    sess = open_session(Path(path))
    worst = 0.0
    for feeds, reference in cases:
        out = run(sess, feeds)
        if out.shape != reference.shape:
            raise ExportCheckError(f"{Path(path).name}: output shape {out.shape} != torch's {reference.shape}")
        diff = np.abs(out - reference)
        worst = max(worst, float(diff.max()) if np.isfinite(diff).all() else float("inf"))
    return worst


def gate(name: str, what: str, diff: float, tolerance: float) -> None:
    if not diff <= tolerance:
        raise ExportCheckError(f"{name}: onnxruntime differs from torch by {diff:.2e} on {what} inputs "
                               f"(gate {tolerance:.0e})")
