"""FP16 graphs, converted with onnxruntime's own float16 converter (the one its transformer optimiser uses):
weights and activations in FP16, with graph inputs and outputs left FP32 unless asked, so a caller feeds the
same arrays to either precision."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel


def to_fp16(src: str | Path, dst: str | Path, keep_io_types: bool = True) -> Path:
    model = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about every constant it clamps to FP16's range
        half = OnnxModel(convert_float_to_float16(model, keep_io_types=keep_io_types))
    half.topological_sort()  # the converter appends its I/O casts at the end of the node list
    onnx.save(half.model, str(dst))
    return Path(dst)
