"""The INT8 denoiser as a deployable ONNX graph: standard QuantizeLinear/DequantizeLinear pairs only (onnx and
numpy here, so loading an INT8 model never imports NNCF).

NNCF's quantizers export as Q->DQ pairs (``edgeir.compress.nncf_model.export_int8``), but the weights still
arrive as FP32 initializers behind a QuantizeLinear. ``fold_weights`` quantizes those initializers
once, so the file stores INT8 weights (about a quarter of FP32) followed by a DequantizeLinear: the form
TensorRT and onnxruntime both recognise as a quantized weight (``edgeir.graphs.readiness`` checks the rest of
what TensorRT accepts: signed INT8, zero point 0, per-channel weight scales on axis 0, standard operators).
onnxruntime's CPU provider gets the same graph re-encoded (``edgeir.graphs.cpu_int8``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from edgeir.graphs.qdq import constants, drop_unused


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def quantize_array(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear semantics: round half to even, saturate to the zero point's type."""
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    info = np.iinfo(zero_point.dtype)
    q = np.rint(x.astype(np.float64) / scale) + zero_point.astype(np.int64)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def fold_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every QuantizeLinear applied to a constant by its INT8 result, stored as an initializer named
    after the FP32 weight (``net.conv1.weight`` -> ``net.conv1.weight_quantized``)."""
    graph = model.graph
    consts = constants(graph)
    renamed: dict[str, str] = {}
    for node in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in consts]:
        x, scale, zp = (consts[i] for i in node.input[:3])
        name = f"{node.input[0]}_quantized"
        graph.initializer.append(numpy_helper.from_array(quantize_array(x, scale, zp, _axis(node)), name))
        renamed[node.output[0]] = name
        graph.node.remove(node)
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
    onnx.checker.check_model(model)
    return drop_unused(model)
