"""A latent restorer's autoencoder as ONNX graphs of its own, beside the UNet's: ``decoder.onnx`` (``latent``
(B,S,h,w) -> ``image`` (B,3,H,W) in [-1, 1]) and, where the UNet is conditioned on a latent, ``encoder.onnx``
(``image`` -> ``latent``). Batch, height and width are dynamic; each graph is checked as the UNet's is
(``onnx.checker`` in full, onnxruntime against torch at two batch sizes and sizes) before it is returned."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeir.errors import ConfigError
from edgeir.export import checks
from edgeir.export.unet import LATENT_SIDES, onnx_export, unet_multiple
from edgeir.graphs.qdq import has_qdq
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.shapes import ShapeProfile
from edgeir.models.codec import DECODER_IO, ENCODER_IO
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel

# Max abs difference between onnxruntime and torch, the FP32 UNet's: both outputs are unit-scale (an image in
# [-1, 1], a scaled latent).
TOLERANCE = checks.TOLERANCE[("unet", "fp32")]

Shape = tuple[int, int, int, int]


@dataclass
class CodecGraph:
    path: Path
    summary: dict  # what was checked: parity with torch, size, TensorRT readiness


def export_codec(restorer: RestorerModel, out_dir: str | Path, opset: int = 17, profile: ShapeProfile | None = None
                 ) -> dict[str, CodecGraph]:
    """``{"encoder": ..., "decoder": ...}`` graphs written to ``out_dir`` and checked; raises
    ``ExportCheckError`` (a ``QualityGateError``) when one is invalid or differs from torch beyond 1e-4.
    ``profile``: the output-pixel sides (and their latent ones) TensorRT readiness is judged for."""
    if restorer.codec is None:
        raise ConfigError("this restorer samples in pixel space: it has no autoencoder to export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    real = real_inputs(restorer)
    for name, (module, io, shapes) in codec_parts(restorer).items():
        path = out_dir / f"{name}.onnx"
        if isinstance(module, OnnxNet):  # an INT8 part, gated by its quantize stage
            shutil.copyfile(module.path, path)
            checks.validate(path)
            model = onnx.load(str(path))
            summary = {"precision": "int8" if has_qdq(model) else "fp32", "max_abs_diff": {}, "gate": None,
                       "parity": "gated by the quantize stage against the FP32 student"}
        else:
            export_part(module, io, shapes[0], path, opset)
            model = onnx.load(str(path))
            summary = {"precision": "fp32", "max_abs_diff": _check(path, module, io[0], shapes, real[name]),
                       "gate": TOLERANCE}
        paths[name] = CodecGraph(path, {"kind": name, "file": path.name, **summary, "nodes": len(model.graph.node),
                                        "bytes": path.stat().st_size,
                                        "tensorrt_problems": check_tensorrt(model, profile)})
    return paths


def export_part(module: nn.Module, io: tuple[str, str], shape: Shape, path: Path, opset: int = 17) -> Path:
    """One codec part as a graph at ``path``, unchecked, traced on a random input of ``shape``."""
    example = torch.randn(shape, device=next(module.parameters()).device)
    return onnx_export(module.eval(), (example,), path, io[:1], io[1], opset, {"latent": LATENT_SIDES})


def codec_parts(restorer: RestorerModel) -> dict[str, tuple[nn.Module, tuple[str, str], list[Shape]]]:
    """Per graph: its module, its input and output names and two input shapes to check it at (batch 2 and 1,
    non-square, other sides): images at output resolution, latents at the UNet's."""
    cfg = restorer.config
    m, s = cfg.multiple_of, unet_multiple(cfg)
    parts = {"decoder": (restorer.codec.decoder, DECODER_IO,
                         [(2, cfg.sample_channels, 2 * s, 3 * s), (1, cfg.sample_channels, 4 * s, 2 * s)])}
    # A UNet conditioned on the low-resolution image itself never runs the encoder: no graph to ship.
    if cfg.latent.condition == "latent":
        parts["encoder"] = (restorer.codec.encoder, ENCODER_IO, [(2, 3, 2 * m, 3 * m), (1, 3, 4 * m, 2 * m)])
    return parts


def codec_feeds(name: str, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """An image uniform in [-1, 1], or a standard-normal latent: what each graph is given when sampling."""
    x = rng.uniform(-1, 1, shape) if name == ENCODER_IO[0] else rng.standard_normal(shape)
    return x.astype(np.float32)


@torch.no_grad()
def codec_reference(module: nn.Module, x: np.ndarray) -> np.ndarray:
    p = next(module.parameters())
    return module(torch.from_numpy(x).to(p.device)).cpu().numpy()


def real_inputs(restorer: RestorerModel, seed: int = 0) -> dict[str, np.ndarray]:
    """Each graph's input from a held-out photograph: the photograph in [-1, 1] (a centre crop of four
    multiples), and its latent as the encoder makes it."""
    from edgeir.export.graph import real_conditions

    m = restorer.config.multiple_of
    image = real_conditions(restorer.task, 1, 4 * m, 4 * m, seed)[:, :3]
    return {"encoder": image, "decoder": codec_reference(restorer.codec.encoder, image)}


def _check(path: Path, module: nn.Module, input_name: str, shapes: list[Shape], real: np.ndarray, seed: int = 0
           ) -> dict[str, float]:
    checks.validate(path)
    rng = np.random.default_rng(seed)
    cases = {"random": [codec_feeds(input_name, shape, rng) for shape in shapes], "real": [real]}
    diffs = {}
    for what, inputs in cases.items():
        diffs[what] = checks.max_abs_diff(path, [({input_name: x}, codec_reference(module, x)) for x in inputs])
        checks.gate(f"{path.stem} graph", what, diffs[what], TOLERANCE)
    return diffs
