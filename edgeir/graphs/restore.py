"""The restore graph: a whole frame in, the restored frame out, everything per pixel inside one ONNX graph so a
device's host only hands frames in and out.

It is composed at the ONNX level around a network's UNet graph (FP32 from torch, or the quantize stage's INT8
Q/DQ graph), so INT8 models get it too. Inside, in order:

1. the task's condition, as training built it: super-resolution upsamples with ONNX ``Resize`` in the form
   that computes Pillow's bicubic (``cubic_coeff_a=-0.5``, ``half_pixel``, ``exclude_outside=1``; the same to
   float rounding, and TensorRT's parser takes it); deblurring uses the image itself; inpainting's condition
   (its hole fill is a sparse solve) comes in ready-made;
2. the frame cut into tiles by the ``rows`` / ``cols`` index maps of ``edgeir.graphs.layout`` (one ``Gather``
   per axis), and the noise field cut the same way;
3. the few-step sampler loop, unrolled: ``edgeir.diffusion.sample`` and its step maths run over symbolic
   tensors (``edgeir.graphs.build``), one copy of the UNet's nodes per step sharing one set of weights;
4. residual -> image, the tiles blended back with their ramps and the frame cropped out
   (``edgeir.graphs.layout``'s fold, in Slice/Concat/Reshape form), inpainting's known pixels kept;
5. pixels out: uint8 (``floor(x * 255 + 0.5)``, as the runtime has always rounded) or float32, NHWC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Prediction, Step, noise_channels, to_image, to_x0
from edgeir.graphs.build import GraphBuilder, Sym
from edgeir.graphs.layout import ramp

Pixels = Literal["uint8", "float32"]
ONNX_TYPE = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT, "int64": TensorProto.INT64}
INT_MAX = np.iinfo(np.int64).max


def restore_graph(unet: onnx.ModelProto, task: str, scale: int, cond_channels: int, steps: Sequence[Step],
                  prediction: Prediction, temperature: float, residual_scale: float, tile: int, overlap: int,
                  pixels: Pixels = "uint8") -> onnx.ModelProto:
    """The restore graph of a network given as its UNet graph (inputs ``x_t``, ``t``, ``condition``)."""
    b = GraphBuilder(next(o.version for o in unet.opset_import if o.domain in ("", "ai.onnx")))
    k = noise_channels(list(steps))
    inputs = []
    if task == "inpaint":
        inputs.append(helper.make_tensor_value_info("condition", TensorProto.FLOAT,
                                                    [1, "height", "width", cond_channels]))
        cond = b.op("Transpose", "condition", perm=[0, 3, 1, 2])
    else:
        inputs.append(helper.make_tensor_value_info("image", ONNX_TYPE[pixels], [1, "in_height", "in_width", 3]))
        image = b.op("Transpose", "image", perm=[0, 3, 1, 2])
        if pixels == "uint8":  # the same division from_array does, so the float pixels agree to the bit
            image = b.op("Cast", image, to=TensorProto.FLOAT) / 255.0
        if scale > 1:
            image = b.op("Resize", image, "", b.const([1, 1, scale, scale]), mode="cubic", cubic_coeff_a=-0.5,
                         coordinate_transformation_mode="half_pixel", exclude_outside=1)
        cond = image * 2.0 - 1.0
    inputs += [helper.make_tensor_value_info("noise", TensorProto.FLOAT, [1, k, "height", "width"]),
               helper.make_tensor_value_info("rows", TensorProto.INT64, ["tiles_y", tile]),
               helper.make_tensor_value_info("cols", TensorProto.INT64, ["tiles_x", tile])]

    cond_tiles, noise_tiles = (_split(b, x, c, tile) for x, c in ((cond, cond_channels), (Sym(b, "noise"), k)))
    chunks = iter([_channels(b, noise_tiles, i, i + 3) for i in range(3, k, 3)])
    weights = _weights(b, unet)
    count = b.op("Slice", b.op("Shape", cond_tiles), b.const([0], np.int64), b.const([1], np.int64))

    def x0(x_t: Sym, step: Step) -> Sym:
        t = b.op("Expand", b.const([float(step.t)]), count)
        pred = _inline(b, unet, {"x_t": x_t, "t": t, "condition": cond_tiles}, weights, f"step{step.t}/")
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, prediction)

    residual = sample(x0, _channels(b, noise_tiles, 0, 3) * float(temperature), list(steps),
                      lambda like: next(chunks))
    tiles = to_image(residual, _channels(b, cond_tiles, 0, 3), residual_scale)
    frame = _blend(b, tiles, cond, tile, overlap)
    if task == "inpaint":  # known pixels are the condition's, exactly: (2 v - 1) * 0.5 + 0.5 == v
        known = _channels(b, cond, 0, 3) * 0.5 + 0.5
        holes = b.op("Greater", _channels(b, cond, 3, 4), b.const(0.0))
        frame = b.op("Where", holes, frame, known)
    if pixels == "uint8":
        frame = b.op("Cast", b.op("Floor", frame * 255.0 + 0.5), to=TensorProto.UINT8)
    b.op("Transpose", frame, perm=[0, 2, 3, 1], name="restored")
    out = helper.make_tensor_value_info("restored", ONNX_TYPE[pixels], [1, "height", "width", 3])
    model = b.model(inputs, [out], name="edgeir-restore")
    onnx.checker.check_model(model, full_check=True)
    return model


def _channels(b: GraphBuilder, x: Sym, start: int, end: int) -> Sym:
    return b.op("Slice", x, b.const([start], np.int64), b.const([end], np.int64), b.const([1], np.int64))


def _split(b: GraphBuilder, frame: Sym, channels: int, tile: int) -> Sym:
    """(1, C, H, W) -> (tiles_y * tiles_x, C, tile, tile), by the ``rows`` and ``cols`` index maps."""
    g = b.op("Gather", b.op("Gather", frame, "rows", axis=2), "cols", axis=4)  # (1, C, ny, T, nx, T)
    g = b.op("Transpose", g, perm=[0, 2, 4, 1, 3, 5])
    return b.op("Reshape", g, b.const([-1, channels, tile, tile], np.int64))


def _blend(b: GraphBuilder, tiles: Sym, cond: Sym, tile: int, overlap: int) -> Sym:
    """(tiles_y * tiles_x, 3, T, T) tile images -> (1, 3, H, W): weighted by their ramps, laid at their stride
    along each axis with overlaps added (``edgeir.graphs.layout.blend``), the frame cut out."""
    w = ramp(tile, overlap)
    tiles = tiles * b.const((w[:, None] * w[None, :])[None, None])
    grid_shape = b.op("Concat", b.op("Shape", "rows", end=1), b.op("Shape", "cols", end=1),
                      b.const([3, tile, tile], np.int64), axis=0)
    grid = b.op("Reshape", tiles, grid_shape)  # (ny, nx, 3, T, T)
    across = _fold(b, b.op("Transpose", grid, perm=[0, 2, 3, 1, 4]), 5, tile, overlap)  # (ny, 3, T, Wp)
    down = _fold(b, b.op("Transpose", across, perm=[1, 3, 0, 2]), 4, tile, overlap)  # (3, Wp, Hp)
    frame = b.op("Unsqueeze", b.op("Transpose", down, perm=[0, 2, 1]), b.const([0], np.int64))
    size = b.op("Shape", cond, start=2)  # (H, W)
    return b.op("Slice", frame, b.const([overlap, overlap], np.int64), size + b.const([overlap], np.int64),
                b.const([2, 3], np.int64))


def _fold(b: GraphBuilder, x: Sym, rank: int, tile: int, overlap: int) -> Sym:
    """(..., n, T) -> (..., n * stride + overlap): tile j of axis -2 laid at j * stride of the last axis,
    overlaps added (``edgeir.graphs.layout.fold`` without a loop: each tile's head gets the previous tile's
    tail added, then heads and bodies are laid end to end and the last tail appended)."""
    stride = tile - overlap

    def part(t: Sym, start: int, end: int, axis: int) -> Sym:
        return b.op("Slice", t, b.const([start], np.int64), b.const([end], np.int64), b.const([axis], np.int64))

    flat = b.const([0] * (rank - 2) + [-1], np.int64)  # merges the last two axes
    if not overlap:
        return b.op("Reshape", x, flat)
    tails = part(x, stride, tile, -1)
    previous = b.op("Concat", part(tails, 0, 1, -2) * 0.0, part(tails, 0, -1, -2), axis=-2)
    heads = part(x, 0, overlap, -1) + previous
    strip = heads if stride == overlap else b.op("Concat", heads, part(x, overlap, stride, -1), axis=-1)
    return b.op("Concat", b.op("Reshape", strip, flat), b.op("Reshape", part(tails, -1, INT_MAX, -2), flat),
                axis=-1)


def _weights(b: GraphBuilder, unet: onnx.ModelProto) -> dict[str, str]:
    """The UNet's initializers, added once under a prefix; every copy of its nodes reads these."""
    names = {}
    for init in unet.graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = f"unet/{init.name}"
        b.initializers[copy.name] = copy
        names[init.name] = copy.name
    return names


def _inline(b: GraphBuilder, unet: onnx.ModelProto, inputs: dict[str, Sym], weights: dict[str, str],
            prefix: str) -> Sym:
    """One copy of the UNet's nodes reading ``inputs`` (by the UNet graph's input names) and the shared
    ``weights``; its intermediate tensors are renamed under ``prefix``. Returns the UNet's output."""
    graph = unet.graph
    rename = {name: str(sym) for name, sym in inputs.items()} | weights
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"the UNet graph has a control-flow node ({node.op_type}); it cannot be unrolled")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + node.name if node.name else ""
        copy.input[:] = [rename.get(i, prefix + i) if i else "" for i in node.input]
        copy.output[:] = [prefix + o for o in node.output]
        b.nodes.append(copy)
    return Sym(b, prefix + graph.output[0].name)
