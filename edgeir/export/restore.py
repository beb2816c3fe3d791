"""Restore graphs for a bundle, from its UNet graph: composed (``edgeir.graphs.restore``), then checked like
every exported graph -- ``onnx.checker`` with full shape inference, parity with the host-side loop over the
same UNet graph (``edgeir.graphs.reference``, the runtime's former path) on a random and a photograph-like
frame several tiles wide, and TensorRT readiness. Torch-free, so it also runs on a device from a bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgeir.bundle.manifest import Precision, Variant, make_variant
from edgeir.diffusion.steps import Sampling, noise_channels
from edgeir.errors import ConfigError, QualityGateError
from edgeir.graphs import layout
from edgeir.graphs.ort import open_session
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.reference import host_restore
from edgeir.graphs.restore import restore_graph
from edgeir.graphs.shapes import DimRange, frame_profile
from edgeir.tasks import Degraded, Task

# Max abs difference from the host loop, on [0, 1] pixels. FP32: float rounding (the graph's bicubic is
# Pillow's to a few ulps). INT8: the same few ulps reach a quantizer's rounding tie now and then, and one step
# of one activation moves a pixel by up to a few uint8 levels.
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 4e-2}


def test_frames(task: Task, tile: int, seed: int = 0) -> dict[str, Degraded]:
    """Degraded frames of about 1.5 x 2 tiles (so edges, corners and overlaps all occur) at input resolution:
    uniform noise, and a smooth texture with edges like a photograph's. Inpainting gets a box of holes."""
    h, w = (tile + tile // 2 + 8) // task.scale, (2 * tile + 24) // task.scale
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) * task.scale
    texture = np.stack([0.5 + 0.25 * np.sin(x / (5 + 3 * c) + y / 9) + 0.2 * (x > w * task.scale / 2)
                        for c in range(3)], -1)
    frames = {"random": rng.random((h, w, 3)), "real": np.clip(texture, 0, 1)}
    mask = None
    if task.name == "inpaint":
        mask = np.zeros((h, w), bool)
        mask[h // 4: h // 2, w // 3: w // 2] = True
    # Pixels as an 8-bit file holds them, so the uint8 and float32 graphs see the same frame.
    return {k: Degraded(((v * 255 + 0.5).astype(np.uint8) / np.float32(255)).astype(np.float32), mask)
            for k, v in frames.items()}


def feeds(task: Task, variant: Variant, multiple_of: int, d: Degraded, noise: np.ndarray) -> dict[str, np.ndarray]:
    """The restore graph's inputs for degraded frame ``d`` (HxWx3 float pixels of 8-bit values) and its
    (1, K, H, W) noise field."""
    h, w = noise.shape[2:]
    frame: dict[str, np.ndarray]
    if task.name == "inpaint":
        frame = {"condition": task.condition(d)[None]}
    elif variant.pixels == "uint8":
        frame = {"image": (d.image[None] * 255 + 0.5).astype(np.uint8)}
    else:
        frame = {"image": d.image[None]}
    return {**frame, "noise": noise, **layout.maps(h, w, variant.tile, variant.overlap, multiple_of)}  # type: ignore


def reference(session, task: Task, sampling: Sampling, tile: int, overlap: int, multiple_of: int, d: Degraded,
              noise: np.ndarray) -> np.ndarray:
    """The host loop's HxWx3 image in [0, 1] for ``d`` over a UNet graph's ``session``, composed as the task
    composes."""
    cond = np.ascontiguousarray(task.condition(d).transpose(2, 0, 1))
    out = host_restore(lambda f: session.run(None, f)[0], cond, noise[0], sampling, tile, overlap, multiple_of)
    return task.compose(out.transpose(1, 2, 0), d)


def export_restore(unet: bytes, task: Task, multiple_of: int, sampling: Sampling, tile: int, overlap: int,
                   precision: Precision, out_dir: Path, frame: DimRange) -> list[tuple[Variant, Path, dict]]:
    """Both restore graphs (uint8 and float32 pixels) of ``unet``, checked, in ``out_dir``; with each, its
    variant and a summary of the checks. ``frame``: the output frame sides TensorRT readiness is judged for."""
    try:
        layout.check(tile, overlap, multiple_of)
    except ValueError as e:
        raise ConfigError(f"--tile/--overlap: {e}") from None
    model = onnx.load_from_string(unet)
    frames = test_frames(task, tile)
    rng = np.random.default_rng(0)
    noises = {k: rng.standard_normal((1, noise_channels(sampling.steps), *np.multiply(d.image.shape[:2], task.scale)),
                                     dtype=np.float32) for k, d in frames.items()}
    session = open_session(unet)
    expected = {k: reference(session, task, sampling, tile, overlap, multiple_of, d, noises[k])
                for k, d in frames.items()}
    results = []
    for pixels in ("uint8", "float32"):
        graph = restore_graph(model, task.name, task.scale, task.cond_channels, sampling, overlap,
                              pixels)  # type: ignore[arg-type]
        suffix = "" if pixels == "uint8" else ".float"
        path = out_dir / f"restore.{precision}{suffix}.onnx"
        onnx.save(graph, str(path))
        variant = make_variant(f"restore-{precision}{'-float' if suffix else ''}", path.name, "restore", task.name,
                               task.cond_channels, sampling, precision, tile=tile, overlap=overlap,
                               pixels=pixels)  # type: ignore[arg-type]
        diffs = _parity(path, task, variant, multiple_of, frames, noises, expected)
        results.append((variant, path, {
            "kind": "restore", "file": path.name, "precision": precision, "pixels": pixels,
            "steps": len(sampling.steps), "tile": tile, "overlap": overlap, "max_abs_diff": diffs,
            "gate": TOLERANCE[precision], "reference": "host loop over the UNet graph (edgeir.graphs.reference)",
            "nodes": len(graph.graph.node), "bytes": path.stat().st_size,
            "tensorrt_problems": check_tensorrt(graph, frame_profile(task.scale, tile, overlap, multiple_of,
                                                                     frame))}))
    return results


def _parity(path: Path, task: Task, variant: Variant, multiple_of: int, frames: dict[str, Degraded],
            noises: dict, expected: dict[str, np.ndarray]) -> dict[str, float]:
    session = open_session(path)
    diffs = {}
    for what, d in frames.items():
        out = session.run(None, feeds(task, variant, multiple_of, d, noises[what]))[0][0]
        got = out / np.float32(255) if variant.pixels == "uint8" else out
        # uint8 pixels add their own rounding: half a level either way of the float image's.
        slack = 0.5 / 255 if variant.pixels == "uint8" else 0.0
        diff = np.abs(got - expected[what])
        worst = float(diff.max()) if np.isfinite(diff).all() else float("inf")
        diffs[what] = worst
        if not worst <= TOLERANCE[variant.precision] + slack:
            raise QualityGateError(f"{path.name}: differs from the host loop by {worst:.2e} on {what} frames "
                                   f"(gate {TOLERANCE[variant.precision]:.0e})")
    return diffs
