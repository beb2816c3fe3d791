"""Reading INT8 Q/DQ graphs: which nodes quantize, what constant a tensor holds, and tidying unused ones."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

QDQ = ("QuantizeLinear", "DequantizeLinear")


def has_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QDQ for n in model.graph.node)


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every initializer's and Constant node's value, by tensor name."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
    return values


def drop_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without initializers and Constant nodes that nothing reads."""
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)
    return model


def float_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its activation Q/DQ pairs taken out and its INT8 weights dequantized into float constants
    (the values its DequantizeLinear nodes compute): the same network in float, whose outputs move smoothly with
    its inputs. INT8 outputs do not: an input a few ulps off moves an activation across a rounding boundary now
    and then, and a step of one activation spreads through the layers after it, so two exact compositions of one
    INT8 graph can differ by several uint8 levels. The weights are folded because onnxruntime leaves a
    DequantizeLinear of a weight unfolded and may fuse it with its layer: two compositions of a graph with
    them then differ by up to 1e-3 on unit-scale outputs, where float weights agree to a few ulps."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    graph = twin.graph
    quantizer = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    pairs = {n.output[0]: quantizer[n.input[0]].input[0] for n in graph.node
             if n.op_type == "DequantizeLinear" and n.input[0] in quantizer}
    for out in graph.output:
        pairs.pop(out.name, None)  # an output is named by its producer: that pair stays
    for node in graph.node:
        node.input[:] = [pairs.get(i, i) for i in node.input]
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] in pairs]:
        graph.node.remove(node)
    read = {i for n in graph.node for i in n.input}
    for node in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.output[0] not in read]:
        graph.node.remove(node)
    values = constants(graph)
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear" and all(i in values for i in n.input)]:
        graph.initializer.append(numpy_helper.from_array(_dequantize(node, values), node.output[0]))
        graph.node.remove(node)
    return drop_unused(twin)


def _dequantize(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX DequantizeLinear of constants, in float32 as its kernels compute it."""
    x, scale, *zp = (values[i] for i in node.input)
    zero = zp[0] if zp else np.zeros((), x.dtype)
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x.astype(np.int32) - zero.astype(np.int32)).astype(np.float32) * scale.astype(np.float32))


def activation_quantizers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The QuantizeLinear nodes of activations (of computed tensors, not of constant weights)."""
    values = constants(model.graph)
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in values]


def with_scales(model: onnx.ModelProto, scales: dict[str, float]) -> onnx.ModelProto:
    """A copy of ``model`` whose scale constants named in ``scales`` (initializers or Constant outputs, as
    activation quantizers and their dequantizers read them) hold the given values instead."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    values = constants(out.graph)
    unknown = sorted(set(scales) - set(values))
    if unknown:
        raise ValueError(f"the graph has no scale constant {unknown[0]}")
    tensors = {name: numpy_helper.from_array(np.full(values[name].shape, s, values[name].dtype), name)
               for name, s in scales.items()}
    for init in out.graph.initializer:
        if init.name in tensors:
            init.CopyFrom(tensors[init.name])
    for node in out.graph.node:
        if node.op_type == "Constant" and node.output[0] in tensors:
            for attr in node.attribute:
                if attr.name == "value":
                    attr.t.CopyFrom(tensors[node.output[0]])
    return out
