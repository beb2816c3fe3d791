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
