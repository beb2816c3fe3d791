"""INT8 graphs on onnxruntime's CPU provider.

A bundle's INT8 graph is in the form TensorRT needs: signed INT8 Q/DQ pairs. onnxruntime's x86 kernels are fast
for uint8 activations with int8 weights and slow for int8 ones; its own s8->u8 pass converts only Q/DQ pairs
whose tensor has a single reader, and a convolution whose input and output end up with different types is not
fused into QLinearConv, so most of the graph would run in float behind per-call weight dequantization (slower
than the FP32 graph). Re-encoding every activation pair as uint8 (zero point + 128, exact) lets all of them
fuse. Done when a session is opened; the file in the bundle keeps the int8 form.
"""

from __future__ import annotations

import copy

import numpy as np

from edgeir.errors import BackendError


def uint8_activations(model):
    """``model`` (an ``onnx.ModelProto``) with every activation Q/DQ pair stored as uint8: an exact
    re-encoding."""
    from onnx import numpy_helper

    from edgeir.export.readiness import QDQ, constants

    model = copy.deepcopy(model)
    graph = model.graph
    consts = constants(graph)
    converted: dict[str, str] = {}
    for node in graph.node:
        if node.op_type not in QDQ or node.input[0] in consts or len(node.input) < 3:
            continue
        zp = consts[node.input[2]]
        if zp.dtype != np.int8:
            continue
        if node.input[2] not in converted:
            name = f"{node.input[2]}_uint8"
            graph.initializer.append(numpy_helper.from_array((zp.astype(np.int16) + 128).astype(np.uint8), name))
            converted[node.input[2]] = name
        node.input[2] = converted[node.input[2]]
    return drop_unused(model)


def drop_unused(model):
    """``model`` without initializers and Constant nodes that nothing reads."""
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)
    return model


def for_cpu(graph: bytes) -> bytes:
    """The serialized graph ``graph`` re-encoded for the CPU provider."""
    try:
        import onnx
    except ImportError:
        raise BackendError("ort-cpu re-encodes INT8 graphs with the onnx package: pip install onnx "
                           "(or edgeir[runtime])") from None
    return uint8_activations(onnx.load_from_string(graph)).SerializeToString()
