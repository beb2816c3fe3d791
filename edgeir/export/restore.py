"""Restore graphs for a bundle, from its UNet graph: composed (``edgeir.graphs.restore``), then checked like
every exported graph -- ``onnx.checker`` with full shape inference, parity with the host-side loop over the
same UNet graph (``edgeir.graphs.reference``, the runtime's former path) on a random and a photograph-like
frame several tiles wide, and TensorRT readiness. Torch-free, so it also runs on a device from a bundle.

An INT8 UNet cannot show a composition exact: the graph's bicubic condition is Pillow's to a few ulps, and a
few ulps move an activation across a rounding boundary now and then, which spreads through the layers after it
(several uint8 levels on random frames). So the composition is proven on the UNet's float twin (its activation
Q/DQ pairs taken out, ``edgeir.graphs.qdq.float_twin``) at FP32's tolerance, and the INT8 graph itself is held
to the host loop within INT8's own error: at least as close (PSNR) as the host loop's INT8 output is to its
float twin's, or 40 dB. An INT8 encoder or decoder is twinned with the UNet the same way.

A latent restorer's restore graph takes its autoencoder's graphs in too (``LatentGraphs``); the host loop then
runs them on the same tiles. A VQ decoder snaps each latent pixel to its nearest codebook entry, and where two
entries are all but equally near, float rounding (the graph's and the host loop's fuse their arithmetic
differently) picks either: one latent pixel's patch of output pixels jumps. Its graph is held to FP32's
tolerance on all but ``VQ_FLIPS`` of its pixels; a composition error (a tile misplaced, a seam, a swapped
input) moves far more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgeir.bundle.manifest import Precision, Variant, make_variant
from edgeir.diffusion.latent import LatentSpace
from edgeir.diffusion.steps import Sampling, noise_channels
from edgeir.errors import ConfigError, QualityGateError
from edgeir.graphs import layout
from edgeir.graphs.ort import open_session
from edgeir.graphs.qdq import float_twin, has_qdq
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.reference import HostCodec, host_restore
from edgeir.graphs.restore import LatentGraphs, restore_graph
from edgeir.graphs.shapes import DimRange, frame_profile
from edgeir.tasks import Degraded, Task

# Max abs difference from the host loop, on [0, 1] pixels: float rounding (the graph's bicubic is Pillow's to a
# few ulps). An INT8 graph's composition is checked on its float twin, at FP32's.
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 1e-3}
VQ_FLIPS = 0.01  # of a VQ restorer's pixels, the share that may differ by more than the tolerance
INT8_ENOUGH_DB = 40.0  # an INT8 graph this close to the host loop passes whatever its float twin's distance


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


def feeds(task: Task, variant: Variant, multiple_of: int, d: Degraded, noise: np.ndarray,
          latent: LatentSpace | None = None) -> dict[str, np.ndarray]:
    """The restore graph's inputs for degraded frame ``d`` (HxWx3 float pixels of 8-bit values) and its
    (1, K, h, w) noise field (of the sample's size)."""
    frame: dict[str, np.ndarray] = {"image": (d.image[None] * 255 + 0.5).astype(np.uint8)
                                    if variant.pixels == "uint8" else d.image[None]}
    if task.name == "inpaint":
        frame.update(task.graph_feeds(d.image, d.mask))  # type: ignore[attr-defined]
    return {**frame, "noise": noise, **layout.tile_maps(*np.multiply(d.image.shape[:2], task.scale), variant.tile,
                                                        variant.overlap, multiple_of, latent)}  # type: ignore


def reference(session, task: Task, sampling: Sampling, tile: int, overlap: int, multiple_of: int, d: Degraded,
              noise: np.ndarray, codec: HostCodec | None = None) -> np.ndarray:
    """The host loop's HxWx3 image in [0, 1] for ``d`` over a UNet graph's ``session`` (and a latent
    restorer's ``codec``), composed as the task composes."""
    cond = codec.space.condition_input(task, d) if codec else task.condition(d)
    out = host_restore(lambda f: session.run(None, f)[0], np.ascontiguousarray(cond.transpose(2, 0, 1)), noise[0],
                       sampling, tile, overlap, multiple_of, codec)
    return task.compose(out.transpose(1, 2, 0), d)


def host_codec(latent: LatentGraphs) -> HostCodec:
    """The autoencoder's graphs as the host loop calls them, through onnxruntime."""
    def run(graph: onnx.ModelProto):
        session = open_session(graph.SerializeToString())
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]

    return HostCodec(latent.space, run(latent.decoder), run(latent.encoder) if latent.encoder else None)


def export_restore(unet: bytes | list[bytes], task: Task, multiple_of: int, sampling: Sampling, tile: int,
                   overlap: int, precision: Precision, out_dir: Path, frame: DimRange,
                   latent: LatentGraphs | None = None) -> list[tuple[Variant, Path, dict]]:
    """Both restore graphs (uint8 and float32 pixels) of ``unet`` (one UNet graph, or one per sampler step;
    with a latent restorer's autoencoder graphs), checked, in ``out_dir``; with each, its variant and a summary
    of the checks. ``frame``: the output frame sides TensorRT readiness is judged for."""
    try:
        layout.check(tile, overlap, multiple_of)
    except ValueError as e:
        raise ConfigError(f"--tile/--overlap: {e}") from None
    per_step = isinstance(unet, list)
    models = [onnx.load_from_string(g) for g in unet] if per_step else [onnx.load_from_string(unet)]
    models = models * (len(sampling.steps) // len(models))
    frames = test_frames(task, tile)
    space = latent.space if latent else None
    flips = VQ_FLIPS if latent and any(n.op_type == "ArgMin" for n in latent.decoder.graph.node) else 0.0
    rng = np.random.default_rng(0)
    k = noise_channels(sampling.steps, space.channels if space else 3)
    noises = {what: rng.standard_normal((1, k, *layout.sample_shape(*np.multiply(d.image.shape[:2], task.scale), space)),
                                        dtype=np.float32) for what, d in frames.items()}

    def host_loop(nets: list[onnx.ModelProto], graphs: LatentGraphs | None) -> dict[str, np.ndarray]:
        codec = host_codec(graphs) if graphs else None
        return {what: reference(_StepSessions(nets, sampling), task, sampling, tile, overlap, multiple_of, d,
                                noises[what], codec) for what, d in frames.items()}

    expected = host_loop(models, latent)
    # An INT8 UNet or autoencoder part: the composition is proven on the float twins of all of them.
    int8 = has_qdq(models[0]) or latent is not None and any(has_qdq(g) for g in latent.graphs())
    twin = [float_twin(m) for m in models] if int8 else None
    twin_latent = latent.map(float_twin) if int8 and latent else latent
    if twin is not None:
        twin_expected = host_loop(twin, twin_latent)
        int8_gate = {k: min(INT8_ENOUGH_DB, _psnr(expected[k], twin_expected[k])) for k in frames}
    results = []
    for pixels in ("uint8", "float32"):
        def compose(nets: list[onnx.ModelProto], pixels: str = pixels, graphs: LatentGraphs | None = latent
                    ) -> onnx.ModelProto:
            return restore_graph(nets if per_step else nets[0], task.name, task.scale, task.cond_channels,
                                 sampling, overlap, pixels, graphs)  # type: ignore[arg-type]

        graph = compose(models)
        suffix = "" if pixels == "uint8" else ".float"
        path = out_dir / f"restore.{precision}{suffix}.onnx"
        onnx.save(graph, str(path))
        variant = make_variant(f"restore-{precision}{'-float' if suffix else ''}", path.name, "restore", task.name,
                               task.cond_channels, sampling, precision, tile=tile, overlap=overlap,
                               pixels=pixels, latent=space)  # type: ignore[arg-type]
        outputs = _run(path, task, variant, multiple_of, frames, noises, space)
        summary = {"kind": "restore", "file": path.name, "precision": precision, "pixels": pixels,
                   "steps": len(sampling.steps), "tile": tile, "overlap": overlap, "gate": TOLERANCE[precision],
                   "reference": "host loop over the UNet graph (edgeir.graphs.reference)"}
        if twin is None:
            summary["max_abs_diff"] = _parity(path.name, variant, outputs, expected, flips)
            if flips:
                summary["vq_flips_allowed"] = flips
        else:
            twin_path = out_dir / f".twin.{path.name}"
            onnx.save(compose(twin, graphs=twin_latent), str(twin_path))
            summary["max_abs_diff"] = _parity(f"{path.name}'s float twin", variant,
                                              _run(twin_path, task, variant, multiple_of, frames, noises, space),
                                              twin_expected, flips)
            twin_path.unlink()
            summary["reference"] += "; the composition checked on the UNet's float twin"
            summary["int8_psnr_db"] = _int8_parity(path.name, outputs, expected, int8_gate)
            summary["int8_gate_db"] = {k: round(v, 2) for k, v in int8_gate.items()}
        summary.update(nodes=len(graph.graph.node), bytes=path.stat().st_size, tensorrt_problems=check_tensorrt(
            graph, frame_profile(task.scale, tile, overlap, multiple_of, frame, space.factor if space else 1)))
        results.append((variant, path, summary))
    return results


class _StepSessions:
    """The host loop's UNet calls, each run by the graph of its step (one graph: every step)."""

    def __init__(self, nets: list[onnx.ModelProto], sampling: Sampling):
        opened: dict[int, object] = {}
        self.by_t = {}
        for net, step in zip(nets, sampling.steps, strict=True):
            if id(net) not in opened:
                opened[id(net)] = open_session(net.SerializeToString())
            self.by_t[float(step.t)] = opened[id(net)]

    def run(self, outputs, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.by_t[float(feeds["t"][0])].run(outputs, feeds)


def _run(path: Path, task: Task, variant: Variant, multiple_of: int, frames: dict[str, Degraded],
         noises: dict, latent: LatentSpace | None) -> dict[str, np.ndarray]:
    """The graph's HxWx3 outputs on ``frames``, as [0, 1] floats."""
    session = open_session(path)
    outputs = {}
    for what, d in frames.items():
        out = session.run(None, feeds(task, variant, multiple_of, d, noises[what], latent))[0][0]
        outputs[what] = out / np.float32(255) if variant.pixels == "uint8" else out
    return outputs


def _parity(name: str, variant: Variant, outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray],
            flips: float = 0.0) -> dict[str, float]:
    """Max abs differences from the host loop; with ``flips``, of all but that share of the pixels."""
    # uint8 pixels add their own rounding: half a level either way of the float image's.
    slack = 0.5 / 255 if variant.pixels == "uint8" else 0.0
    diffs = {}
    for what, got in outputs.items():
        diff = np.abs(got - expected[what])
        worst = float(np.quantile(diff, 1 - flips)) if flips else float(diff.max())
        diffs[what] = worst if np.isfinite(diff).all() else float("inf")
        if not diffs[what] <= TOLERANCE[variant.precision] + slack:
            share = f" on all but {flips:.0%} of the pixels" if flips else ""
            raise QualityGateError(f"{name}: differs from the host loop by {diffs[what]:.2e}{share} on {what} "
                                   f"frames (gate {TOLERANCE[variant.precision]:.0e})")
    return diffs


def _int8_parity(name: str, outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                 gate: dict[str, float]) -> dict[str, float]:
    psnr = {}
    for what, got in outputs.items():
        db = psnr[what] = round(_psnr(got, expected[what]), 2)
        if not db >= gate[what]:
            raise QualityGateError(f"{name}: {db:.1f} dB from the host loop on {what} frames, further than INT8 is "
                                   f"from its float network ({gate[what]:.1f} dB)")
    return psnr


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    if not np.isfinite(mse):
        return float("-inf")
    return float("inf") if mse == 0 else float(10 * np.log10(1 / mse))
