"""Will TensorRT take this graph? Checked from the ONNX alone, on any machine: every operator is one TensorRT's
ONNX parser supports (with the restrictions edgeir graphs can hit), Q/DQ pairs are in the form TensorRT runs
as INT8 (symmetric, zero point 0, per-channel only on weights along axis 0), and every dynamic input
dimension is bounded by an optimisation profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgeir.graphs import trt_ops
from edgeir.graphs.qdq import QDQ, constants
from edgeir.graphs.shapes import ShapeProfile, multiple_problems, unbounded


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _qdq_problems(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> list[str]:
    where = f"{node.op_type} {node.name or node.output[0]}"
    scale = consts.get(node.input[1])
    if scale is None:
        return [f"{where}: scale is computed at run time; TensorRT needs a constant scale"]
    problems = []
    if (scale <= 0).any():
        problems.append(f"{where}: scale has non-positive values")
    zero = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zero is None:
        problems.append(f"{where}: no constant zero point (ONNX then means UINT8); TensorRT runs INT8 with "
                        "zero point 0")
    elif zero.dtype != np.int8:
        problems.append(f"{where}: quantizes to {zero.dtype}; TensorRT runs INT8 Q/DQ only")
    elif zero.any():
        problems.append(f"{where}: asymmetric (zero point != 0); TensorRT needs symmetric INT8")
    if _attr(node, "block_size", 0):
        problems.append(f"{where}: blocked quantization is not INT8 Q/DQ that TensorRT accepts")
    if scale.size > 1:
        if node.input[0] not in consts:
            problems.append(f"{where}: per-channel quantization of an activation; TensorRT quantizes "
                            "activations per tensor")
        elif _attr(node, "axis", 1) != 0:
            problems.append(f"{where}: per-channel weights along axis {_attr(node, 'axis', 1)}; TensorRT "
                            "needs axis 0 (output channels)")
    return problems


def _node_problems(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> list[str]:
    where = f"{node.op_type} {node.name or node.output[0]}"
    if node.domain not in ("", "ai.onnx"):
        return [f"{node.domain}.{node.op_type} {node.name}: custom-domain operator (TensorRT reads standard ONNX)"]
    if node.op_type not in trt_ops.SUPPORTED:
        return [f"{where}: operator {node.op_type} is not supported by TensorRT's ONNX parser"]
    axes = trt_ops.CONSTANT_AXES.get(node.op_type)
    if axes is not None and len(node.input) > axes and node.input[axes] and node.input[axes] not in consts:
        return [f"{where}: axes are computed at run time; TensorRT needs them constant"]
    if node.op_type == "Resize":
        mode = _attr(node, "mode", b"nearest").decode()
        transform = _attr(node, "coordinate_transformation_mode", b"half_pixel").decode()
        nearest = _attr(node, "nearest_mode", b"round_prefer_floor").decode()
        if (mode not in trt_ops.RESIZE_MODES or transform not in trt_ops.RESIZE_TRANSFORMS
                or (mode == "nearest" and nearest not in trt_ops.RESIZE_NEAREST)):
            return [f"{where}: resize {mode}/{transform}/{nearest} is not one TensorRT supports"]
        scales = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if mode == "cubic" and (scales is None or (scales[:-2] != 1).any()):
            return [f"{where}: cubic resize needs constant scales on the last two axes only"]
    if node.op_type in QDQ:
        return _qdq_problems(node, consts)
    return []


def check_tensorrt(model: onnx.ModelProto | str | Path, profile: ShapeProfile | None = None,
                   multiple_of: int | None = None) -> list[str]:
    """Every reason TensorRT would refuse ``model`` (empty when it is ready). ``profile`` bounds the dynamic
    dimensions; ``multiple_of`` is the network's spatial constraint that the profile must respect."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    lo, hi = trt_ops.OPSET_RANGE
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    problems = [] if opset is not None and lo <= opset <= hi else [
        f"opset {opset} is outside the {lo}..{hi} that TensorRT 10's parser supports"]
    consts = constants(model.graph)
    for node in model.graph.node:
        problems += _node_problems(node, consts)
    problems += unbounded(model, profile or {})
    if profile and multiple_of:
        problems += multiple_problems(profile, multiple_of)
    return problems


def random_ops(model: onnx.ModelProto) -> list[str]:
    """Operators that draw random numbers (a sampler graph must be deterministic given its noise input)."""
    return sorted({n.op_type for n in model.graph.node if n.op_type in trt_ops.RANDOM})
