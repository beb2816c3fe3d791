"""The restore graph: a whole frame in, the restored frame out, everything per pixel inside one ONNX graph so a
device's host only hands frames in and out.

It is composed at the ONNX level around a network's UNet graph (FP32 from torch, or the quantize stage's INT8
Q/DQ graph), so INT8 models get it too. Inside, in order:

1. the task's condition, as training built it: super-resolution upsamples with ONNX ``Resize`` in the form
   that computes Pillow's bicubic (``cubic_coeff_a=-0.5``, ``half_pixel``, ``exclude_outside=1``; the same to
   float rounding, and TensorRT's parser takes it); deblurring uses the image itself; inpainting's holes take
   the values the host hands in with their flat indices (the fill is a sparse solve, so it stays on the host,
   near the holes only), and its mask becomes the fourth channel;
2. the frame cut into tiles by the ``rows`` / ``cols`` index maps of ``edgeir.graphs.layout`` (one ``Gather``
   over the flattened frame), and the noise field cut the same way;
3. the few-step sampler loop, unrolled: ``edgeir.diffusion.sample`` and its step maths run over symbolic
   tensors (``edgeir.graphs.build``), one copy of the UNet's nodes per step sharing one set of weights;
4. residual -> image, the tiles blended back with their ramps and the frame cropped out
   (``edgeir.graphs.layout``'s fold, in Slice/Concat/Reshape form, channels-last), inpainting's known pixels
   kept;
5. pixels out: uint8 (``floor(x * 255 + 0.5)``, as the runtime has always rounded) or float32, NHWC.

A latent restorer's graph (``LatentGraphs``) samples in its latent space: the tiles are cut from the latent
frame (its noise and, for an LDM super-resolution UNet, the low-resolution image itself, which is already at
latent resolution); a UNet conditioned on a latent gets it from the encoder's graph, run on each tile's pixels
of the task's base image (cut by the ``pixel_rows`` / ``pixel_cols`` maps); each sampled tile goes through the
decoder's graph and the decoded tiles are blended in pixel space (``edgeir.graphs.layout.latent_maps``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeir.diffusion.latent import LatentSpace
from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Sampling, Step, noise_channels, to_image, to_x0
from edgeir.graphs.build import GraphBuilder, Sym

Pixels = Literal["uint8", "float32"]
ONNX_TYPE = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT, "int64": TensorProto.INT64}
INT_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class LatentGraphs:
    """A latent restorer's space and its autoencoder's graphs (``edgeir.export.codec``'s I/O): the decoder, and
    the encoder where the UNet is conditioned on a latent."""

    space: LatentSpace
    decoder: onnx.ModelProto
    encoder: onnx.ModelProto | None = None

    def graphs(self) -> list[onnx.ModelProto]:
        return [g for g in (self.decoder, self.encoder) if g is not None]

    def map(self, fn: Callable[[onnx.ModelProto], onnx.ModelProto]) -> LatentGraphs:
        """The same space with ``fn`` of each graph."""
        return LatentGraphs(self.space, fn(self.decoder), fn(self.encoder) if self.encoder is not None else None)


def restore_graph(unet: onnx.ModelProto | Sequence[onnx.ModelProto], task: str, scale: int, cond_channels: int,
                  sampling: Sampling, overlap: int, pixels: Pixels = "uint8", latent: LatentGraphs | None = None
                  ) -> onnx.ModelProto:
    """The restore graph of a network given as its UNet graph (inputs ``x_t``, ``t``, ``condition``), or as one
    UNet graph per sampler step (say, INT8 graphs whose activation scales were calibrated at each step's own
    timestep): initializers equal in name and value are stored once. Tile sizes come with the index maps it is
    fed; ``overlap`` (output pixels) is built in."""
    nets = [unet] * len(sampling.steps) if isinstance(unet, onnx.ModelProto) else list(unet)
    if len(nets) != len(sampling.steps):
        raise ValueError(f"{len(nets)} UNet graphs for {len(sampling.steps)} sampler steps")
    codec = [] if latent is None else [g for g in (latent.encoder, latent.decoder) if g is not None]
    b = GraphBuilder(max(o.version for net in [*nets, *codec] for o in net.opset_import
                         if o.domain in ("", "ai.onnx")))
    space = latent.space if latent else None
    channels = space.channels if space else 3
    k = noise_channels(sampling.steps, channels)
    inputs = []
    # The condition is kept channels-last, as frames come: the Resize in between runs on NCHW (the form
    # TensorRT's cubic resize takes), and onnxruntime cancels the transpose pair around it to run its far faster
    # NHWC kernel.
    inputs.append(helper.make_tensor_value_info("image", ONNX_TYPE[pixels], [1, "in_height", "in_width", 3]))
    image = Sym(b, "image")
    if pixels == "uint8":  # the same division from_array does, so the float pixels agree to the bit
        image = b.op("Cast", image, to=TensorProto.FLOAT) / 255.0
    if task == "inpaint":
        # The holes take the host's fill (a sparse solve, ``edgeir.tasks.fill``) by their flat indices; the
        # condition is then what InpaintTask.condition builds, to the bit.
        inputs += [helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, "in_height", "in_width", 1]),
                   helper.make_tensor_value_info("holes", TensorProto.INT64, ["holes"]),
                   helper.make_tensor_value_info("fill", TensorProto.FLOAT, ["holes", 3])]
        flat = b.op("ScatterND", b.op("Reshape", image, b.const([-1, 3], np.int64)),
                    b.op("Unsqueeze", "holes", b.const([1], np.int64)), "fill")
        image = b.op("Concat", b.op("Reshape", flat, b.op("Shape", image)),
                     b.op("Cast", "mask", to=TensorProto.FLOAT), axis=3)
    elif scale > 1 and not (space and space.condition == "lowres"):
        image = b.op("Transpose", b.op("Resize", b.op("Transpose", image, perm=[0, 3, 1, 2]), "",
                                       b.const([1, 1, scale, scale]), mode="cubic", cubic_coeff_a=-0.5,
                                       coordinate_transformation_mode="half_pixel", exclude_outside=1),
                     perm=[0, 2, 3, 1])
    cond = image * 2.0 - 1.0
    # A latent graph's noise and index maps are latent-sized, its blend weights (and encoder maps) pixel-sized.
    sample_hw, px = (["latent_height", "latent_width"], "pixel_") if space else (["height", "width"], "")
    inputs += [helper.make_tensor_value_info("noise", TensorProto.FLOAT, [1, k, *sample_hw]),
               helper.make_tensor_value_info("rows", TensorProto.INT64, ["tiles_y", "tile_height"]),
               helper.make_tensor_value_info("cols", TensorProto.INT64, ["tiles_x", "tile_width"]),
               helper.make_tensor_value_info("row_weights", TensorProto.FLOAT, ["tiles_y", f"{px}tile_height"]),
               helper.make_tensor_value_info("col_weights", TensorProto.FLOAT, ["tiles_x", f"{px}tile_width"])]
    encoder = latent.encoder if latent and space.condition == "latent" else None
    if encoder is not None:
        inputs += [helper.make_tensor_value_info("pixel_rows", TensorProto.INT64, ["tiles_y", "pixel_tile_height"]),
                   helper.make_tensor_value_info("pixel_cols", TensorProto.INT64, ["tiles_x", "pixel_tile_width"])]

    tile_hw = b.op("Concat", b.op("Shape", "rows", start=1), b.op("Shape", "cols", start=1), axis=0)
    index = _flat_index(b, b.op("Shape", "noise", start=3, end=4), "rows", "cols", tile_hw)
    if encoder is None:
        cond_tiles = _split(b, cond, 3 if space else cond_channels, index, tile_hw, channels_last=True)
    else:
        pixel_hw = b.op("Concat", b.op("Shape", "pixel_rows", start=1), b.op("Shape", "pixel_cols", start=1), axis=0)
        pixel_index = _flat_index(b, b.op("Shape", cond, start=2, end=3), "pixel_rows", "pixel_cols", pixel_hw)
        pixel_tiles = _split(b, cond, 3, pixel_index, pixel_hw, channels_last=True)
        cond_tiles = _inline(b, encoder, {"image": pixel_tiles}, _weights(b, [encoder], "encoder")[0], "encoder/")
    noise_tiles = _split(b, Sym(b, "noise"), k, index, tile_hw)
    chunks = iter([_channels(b, noise_tiles, i, i + channels) for i in range(channels, k, channels)])
    weights = _weights(b, nets)
    by_step = {step.t: i for i, step in enumerate(sampling.steps)}
    count = b.op("Slice", b.op("Shape", cond_tiles), b.const([0], np.int64), b.const([1], np.int64))

    def x0(x_t: Sym, step: Step) -> Sym:
        t = b.op("Expand", b.const([float(step.t)]), count)
        i = by_step[step.t]
        pred = _inline(b, nets[i], {"x_t": x_t, "t": t, "condition": cond_tiles}, weights[i], f"step{step.t}/")
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, sampling.prediction)

    x = sample(x0, _channels(b, noise_tiles, 0, channels) * float(sampling.temperature), list(sampling.steps),
               lambda like: next(chunks), sampling.clip)
    size = b.op("Shape", cond, start=1, end=3)  # (H, W) of the frame out: the condition is channels-last
    if latent is None:
        tiles = to_image(x, _channels(b, cond_tiles, 0, 3), sampling.residual_scale, sampling.target)
    else:
        decoded = _inline(b, latent.decoder, {"latent": x}, _weights(b, [latent.decoder], "decoder")[0],
                          "decoder/")
        tiles = to_image(decoded, None, 1.0, "image")
        factor = b.const([space.factor], np.int64)
        tile_hw = b.op("Mul", tile_hw, factor)
        if space.condition == "lowres":
            size = b.op("Mul", size, factor)
    frame = _blend(b, tiles, size, tile_hw, overlap)  # (1, H, W, 3)
    if task == "inpaint":  # known pixels are the condition's, exactly: (2 v - 1) * 0.5 + 0.5 == v
        known = _channels(b, cond, 0, 3, axis=3) * 0.5 + 0.5
        holes = b.op("Greater", _channels(b, cond, 3, 4, axis=3), b.const(0.0))
        frame = b.op("Where", holes, frame, known)
    if pixels == "uint8":
        frame = b.op("Cast", b.op("Floor", frame * 255.0 + 0.5), to=TensorProto.UINT8)
    b.op("Identity", frame, name="restored")
    out = helper.make_tensor_value_info("restored", ONNX_TYPE[pixels], [1, "height", "width", 3])
    model = b.model(inputs, [out], name="edgeir-restore")
    onnx.checker.check_model(model, full_check=True)
    return model


def _channels(b: GraphBuilder, x: Sym, start: int, end: int, axis: int = 1) -> Sym:
    return b.op("Slice", x, b.const([start], np.int64), b.const([end], np.int64), b.const([axis], np.int64))


def _flat_index(b: GraphBuilder, width: Sym, rows: str, cols: str, tile_hw: Sym) -> Sym:
    """(tiles_y * tiles_x, th, tw) int64: each tile pixel's position in the flattened (H * W) frame ``width``
    wide, from the ``rows`` and ``cols`` index maps."""
    rows = b.op("Unsqueeze", rows, b.const([1, 3], np.int64))  # (ny, 1, th, 1)
    cols = b.op("Unsqueeze", cols, b.const([0, 2], np.int64))  # (1, nx, 1, tw)
    shape = b.op("Concat", b.const([-1], np.int64), tile_hw, axis=0)
    return b.op("Reshape", b.op("Add", b.op("Mul", rows, width), cols), shape)


def _split(b: GraphBuilder, frame: Sym, channels: int, index: Sym, tile_hw: Sym, channels_last: bool = False
           ) -> Sym:
    """(1, C, H, W), or (1, H, W, C) ``channels_last`` -> (tiles, C, th, tw): one Gather over the flattened
    frame, then one transpose (a Gather per axis would need a six-axis transpose of the whole frame)."""
    if channels_last:
        g = b.op("Gather", b.op("Reshape", frame, b.const([-1, channels], np.int64)), index, axis=0)  # (N,th,tw,C)
        return b.op("Transpose", g, perm=[0, 3, 1, 2])
    g = b.op("Gather", b.op("Reshape", frame, b.const([1, channels, -1], np.int64)), index, axis=2)  # (1,C,N,th,tw)
    shape = b.op("Concat", b.const([-1, channels], np.int64), tile_hw, axis=0)
    return b.op("Reshape", b.op("Transpose", g, perm=[0, 2, 1, 3, 4]), shape)


def _blend(b: GraphBuilder, tiles: Sym, size: Sym, tile_hw: Sym, overlap: int) -> Sym:
    """(tiles_y * tiles_x, 3, th, tw) tile images -> the (1, H, W, 3) frame of ``size``: weighted by the ``row_weights``
    and ``col_weights`` maps, laid at their stride along each axis with overlaps added
    (``edgeir.graphs.layout.blend``), the frame cut out. Done channels-last, so laying tiles across needs only
    a transpose of whole tile rows and laying them down none."""
    grid_shape = b.op("Concat", b.op("Shape", "rows", end=1), b.op("Shape", "cols", end=1), tile_hw,
                      b.const([3], np.int64), axis=0)
    grid = b.op("Reshape", b.op("Transpose", tiles, perm=[0, 2, 3, 1]), grid_shape)  # (ny, nx, th, tw, 3)
    w = b.op("Mul", b.op("Unsqueeze", "row_weights", b.const([1, 3, 4], np.int64)),  # (ny, 1, th, 1, 1)
             b.op("Unsqueeze", "col_weights", b.const([0, 2, 4], np.int64)))  # (1, nx, 1, tw, 1)
    across = _fold(b, b.op("Transpose", grid * w, perm=[0, 2, 1, 3, 4]), 2, overlap)  # (ny, th, Wp, 3)
    frame = b.op("Unsqueeze", _fold(b, across, 0, overlap), b.const([0], np.int64))  # (1, Hp, Wp, 3)
    return b.op("Slice", frame, b.const([0, 0], np.int64), size, b.const([1, 2], np.int64))


def _fold(b: GraphBuilder, x: Sym, axis: int, overlap: int) -> Sym:
    """x with tiles along ``axis`` and tile pixels along ``axis + 1`` -> those two axes merged into one of
    n * stride + overlap pixels, tile j laid at j * stride, overlaps added (``edgeir.graphs.layout.fold``
    without a loop: each tile's head gets the previous tile's tail added, then heads and bodies are laid end to
    end and the last tail appended). Tile lengths are dynamic: the parts are cut from both ends."""

    def part(t: Sym, start: int, end: int, ax: int) -> Sym:
        return b.op("Slice", t, b.const([start], np.int64), b.const([end], np.int64), b.const([ax], np.int64))

    shape = b.op("Shape", x)
    merged = b.op("Concat", b.op("Slice", shape, b.const([0], np.int64), b.const([axis], np.int64)),
                  b.const([-1], np.int64), b.op("Slice", shape, b.const([axis + 2], np.int64),
                                               b.const([INT_MAX], np.int64)), axis=0)
    if not overlap:
        return b.op("Reshape", x, merged)
    tails = part(x, -overlap, INT_MAX, axis + 1)
    previous = b.op("Concat", part(tails, 0, 1, axis) * 0.0, part(tails, 0, -1, axis), axis=axis)
    heads = part(x, 0, overlap, axis + 1) + previous
    strip = b.op("Concat", heads, part(x, overlap, -overlap, axis + 1), axis=axis + 1)
    return b.op("Concat", b.op("Reshape", strip, merged), b.op("Reshape", part(tails, -1, INT_MAX, axis), merged),
                axis=axis)


def _weights(b: GraphBuilder, nets: list[onnx.ModelProto], prefix: str = "unet") -> list[dict[str, str]]:
    """Each graph's initializers, by name, as the composed graph names them: added once under ``prefix``, an
    initializer another of ``nets`` already holds with the same value reused (weights shared across steps)."""
    held: dict[tuple[str, bytes], str] = {}
    names = []
    for k, net in enumerate(nets):
        mapping = {}
        for init in net.graph.initializer:
            key = (init.name, hashlib.sha256(init.SerializeToString()).digest())
            if key not in held:
                copy = onnx.TensorProto()
                copy.CopyFrom(init)
                name = f"{prefix}/{init.name}"
                copy.name = name if name not in b.initializers else f"{prefix}{k}/{init.name}"
                b.initializers[copy.name] = copy
                held[key] = copy.name
            mapping[init.name] = held[key]
        names.append(mapping)
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
