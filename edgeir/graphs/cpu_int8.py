"""INT8 graphs on onnxruntime's CPU provider, exact on every CPU it runs on.

A bundle's INT8 graph is in the form TensorRT needs: signed INT8 Q/DQ pairs. onnxruntime's x86 kernels are fast
for uint8 activations and slow for int8 ones: its own s8->u8 pass converts only Q/DQ pairs whose tensor has a
single reader, and a convolution whose input and output end up with different types is not fused, so most of
the graph would run in float behind per-call weight dequantization (slower than FP32). So activations are
re-encoded as uint8 (zero point + 128, the same real values) before a session opens; the file keeps its form.

Which weights go with them depends on the CPU. With int8 weights (``u8s8``) the x86 kernels add pairs of
uint8 x int8 products in saturating 16-bit arithmetic unless the CPU has VNNI (onnxruntime's quantization
guide says so), which changes results wherever activations and weights are both large. With uint8 weights too
(``u8u8``, again +128) the x86 kernels widen to 16 bits before multiplying: exact everywhere, somewhat slower.
``cpu_encoding`` asks onnxruntime itself which one is exact here, with a one-layer graph whose 16-bit pair sums
overflow, rather than trusting CPU flags: Arm, AVX-VNNI and emulators then answer for themselves.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeir.errors import BackendError
from edgeir.graphs.qdq import QDQ, constants, drop_unused

ENCODINGS = ("u8s8", "u8u8")


def reencode(model: onnx.ModelProto, encoding: str) -> onnx.ModelProto:
    """``model`` with every activation Q/DQ pair stored as uint8, and with ``u8u8`` every INT8 weight too:
    exact re-encodings (value + 128 with zero point + 128)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown CPU INT8 encoding {encoding!r} (choose from {', '.join(ENCODINGS)})")
    model = copy.deepcopy(model)
    graph = model.graph
    consts = constants(graph)
    shifted: dict[str, str] = {}

    def uint8(name: str) -> str:
        if name not in shifted:
            shifted[name] = f"{name}_uint8"
            value = (consts[name].astype(np.int16) + 128).astype(np.uint8)
            graph.initializer.append(numpy_helper.from_array(value, shifted[name]))
        return shifted[name]

    for node in graph.node:
        if node.op_type not in QDQ or len(node.input) < 3 or consts.get(node.input[2], np.uint8(0)).dtype != np.int8:
            continue
        stored = consts.get(node.input[0])
        if stored is not None:  # a weight: int8 behind a DequantizeLinear (a Q on a float constant stays as is)
            if node.op_type == "QuantizeLinear" or stored.dtype != np.int8 or encoding == "u8s8":
                continue
            node.input[0] = uint8(node.input[0])
        node.input[2] = uint8(node.input[2])
    return drop_unused(model)


def _probe(encoding: str) -> bool:
    """Whether onnxruntime computes a quantized convolution and matmul exactly under ``encoding``: both multiply
    activations at the top of their range by weights at the top of theirs, so any 16-bit pair sum saturates."""
    import onnxruntime as ort

    c = 16
    w = numpy_helper.from_array(np.full((c, c, 1, 1), 127, np.int8), "w")
    m = numpy_helper.from_array(np.full((c, c), 127, np.int8), "m")
    init = [w, m, numpy_helper.from_array(np.ones(c, np.float32), "ws"),
            numpy_helper.from_array(np.zeros(c, np.int8), "wz"),
            numpy_helper.from_array(np.float32(1.0), "one"), numpy_helper.from_array(np.int8(0), "z"),
            numpy_helper.from_array(np.float32(2048.0), "big")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "one", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "one", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["m", "one", "z"], ["md"]),
             helper.make_node("Conv", ["xd", "wd"], ["conv"]),
             helper.make_node("MatMul", ["xd", "md"], ["mm"])]
    outputs = []
    for name in ("conv", "mm"):
        nodes += [helper.make_node("QuantizeLinear", [name, "big", "z"], [f"{name}q"]),
                  helper.make_node("DequantizeLinear", [f"{name}q", "big", "z"], [f"{name}_out"])]
        outputs.append(helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, c, c])],
                              outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(reencode(model, encoding).SerializeToString(), providers=["CPUExecutionProvider"])
    expected = round(c * 127 * 127 / 2048) * 2048  # every activation 127 (uint8 255) times every weight 127
    return all(np.all(out == expected) for out in session.run(None, {"x": np.full((1, c, c, c), 127, np.float32)}))


@functools.cache
def cpu_encoding() -> str:
    """The fastest encoding onnxruntime computes exactly on this CPU: ``u8s8`` where it has VNNI (or is not
    x86), else ``u8u8``. Probed once per process."""
    return "u8s8" if _probe("u8s8") else "u8u8"


def for_cpu(graph: bytes, encoding: str | None = None) -> bytes:
    """The serialized graph ``graph`` re-encoded for the CPU provider (``encoding`` defaults to
    ``cpu_encoding()``)."""
    try:
        model = onnx.load_from_string(graph)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError for garbage bytes
        raise BackendError(f"not an ONNX graph ({type(e).__name__})") from None
    return reencode(model, encoding or cpu_encoding()).SerializeToString()
