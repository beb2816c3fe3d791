"""One exported graph, checked: export (UNet or whole sampler) -> onnx.checker -> parity with torch on random
and real inputs -> onnxslim when it keeps parity -> FP16 conversion with its own gate -> TensorRT readiness.
Nothing leaves here unchecked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxslim
import torch

from edgeir.bundle.manifest import GraphKind, Precision
from edgeir.data.builtin import builtin_images
from edgeir.diffusion.latent import LatentSpace
from edgeir.diffusion.steps import Step
from edgeir.errors import ConfigError
from edgeir.export import checks
from edgeir.export.fp16 import to_fp16
from edgeir.export.sampler import export_sampler, sampler_feeds, sampler_reference
from edgeir.export.unet import export_unet, unet_feeds, unet_reference
from edgeir.graphs.qdq import has_qdq
from edgeir.graphs.readiness import check_tensorrt, random_ops
from edgeir.graphs.shapes import ShapeProfile
from edgeir.models.restorer import RestorerModel
from edgeir.tasks import Task


@dataclass
class GraphResult:
    kind: GraphKind
    path: Path  # the checked graph to ship
    precision: Precision
    steps: list[Step]
    diffs: dict[str, float]  # max abs difference vs torch, by check
    slimmed: bool
    tensorrt_problems: list[str]
    nodes: int
    bytes: int

    def summary(self) -> dict:
        return {"kind": self.kind, "file": self.path.name, "precision": self.precision, "steps": len(self.steps),
                "max_abs_diff": self.diffs, "gate": checks.TOLERANCE[(self.kind, self.precision)],
                "slimmed": self.slimmed, "nodes": self.nodes, "bytes": self.bytes,
                "tensorrt_ready": not self.tensorrt_problems, "tensorrt_problems": self.tensorrt_problems}


def real_conditions(task: Task, count: int, h: int, w: int, seed: int = 0, latent: LatentSpace | None = None
                    ) -> np.ndarray:
    """(count, C, h, w) conditions built by the task from held-out photographs, as the runtime builds them
    (a latent restorer's: ``LatentSpace.condition_input``'s, at its own resolution)."""
    out = []
    for i, (_, img) in enumerate(builtin_images("heldout")[:count]):
        if img.shape[0] < h or img.shape[1] < w:
            raise ConfigError(f"real-input check at {h}x{w} is larger than the held-out photographs")
        y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        d = task.degrade(img[y:y + h, x:x + w], np.random.default_rng([seed, i]))
        out.append((latent.condition_input(task, d) if latent else task.condition(d)).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def parity_cases(restorer: RestorerModel, kind: GraphKind, steps: list[Step], seed: int = 0
                 ) -> dict[str, list[tuple[dict[str, np.ndarray], np.ndarray]]]:
    """``(feeds, torch output)`` cases: random inputs at two batch sizes and non-square sizes, and a real
    condition from a held-out photograph. Conditions are ``RestorerModel.condition``'s (at its resolution);
    the UNet's are the network's own (a latent restorer's encoded where its UNet takes a latent)."""
    cfg = restorer.config
    m, c, s = cfg.multiple_of, cfg.task.cond_channels, restorer.cond_scale
    rng = np.random.default_rng(seed)
    conds = {"random": [rng.uniform(-1, 1, (2, c, 2 * m // s, 3 * m // s)).astype(np.float32),
                        rng.uniform(-1, 1, (1, c, 4 * m // s, 2 * m // s)).astype(np.float32)],
             "real": [real_conditions(restorer.task, 1, 4 * m, 4 * m, seed, cfg.latent)]}
    cases = {}
    for what, cs in conds.items():
        if kind == "unet":
            feeds = [unet_feeds(restorer, _unet_condition(restorer, cond), rng, steps) for cond in cs]
            cases[what] = [(f, unet_reference(restorer, f)) for f in feeds]
        else:
            feeds = [sampler_feeds(restorer, cond, rng, steps) for cond in cs]
            cases[what] = [(f, sampler_reference(restorer, f, steps)) for f in feeds]
    return cases


@torch.no_grad()
def _unet_condition(restorer: RestorerModel, cond: np.ndarray) -> np.ndarray:
    p = next(restorer.parameters())
    return restorer.unet_condition(torch.from_numpy(cond).to(p.device)).cpu().numpy()


def _checked(path: Path, name: str, cases: dict, tolerance: float) -> dict[str, float]:
    checks.validate(path)
    diffs = {what: checks.max_abs_diff(path, cs) for what, cs in cases.items()}
    for what, d in diffs.items():
        checks.gate(name, what, d, tolerance)
    return diffs


def _slim(src: Path, dst: Path, cases: dict, tolerance: float) -> dict[str, float] | None:
    """onnxslim's simplification of ``src`` written to ``dst`` and its diffs, if it passes the same checks."""
    try:
        onnx.save(onnxslim.slim(str(src)), str(dst))
        return _checked(dst, dst.name, cases, tolerance)
    except Exception:  # noqa: BLE001 - a simplifier failure only costs the simplification
        dst.unlink(missing_ok=True)
        return None


def export_graph(restorer: RestorerModel, kind: GraphKind, out_dir: str | Path, precision: Precision = "fp32",
                 opset: int = 17, profile: ShapeProfile | None = None, steps: list[Step] | None = None,
                 slim: bool = True, keep_io_fp32: bool = True) -> GraphResult:
    """Export ``kind`` to ``out_dir/{kind}.onnx`` and check it; raises ``ExportCheckError`` on a failed gate.
    ``precision`` int8 expects a quantized restorer (its graph carries Q/DQ)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = steps if steps is not None else restorer.steps()
    raw, final = out_dir / f"{kind}.raw.onnx", out_dir / f"{kind}.{precision}.onnx"
    if kind == "sampler":
        export_sampler(restorer, raw, opset, steps)
    else:
        export_unet(restorer, raw, opset)
    model = onnx.load(str(raw))
    if kind == "sampler" and random_ops(model):
        raise checks.ExportCheckError(f"sampler graph draws random numbers ({', '.join(random_ops(model))}): "
                                      "it would not be deterministic given its noise input")
    if precision == "int8" and not has_qdq(model):
        raise ConfigError("--precision int8 needs a quantized model (quantize it with edgeir compress first); "
                          "this one exports without QuantizeLinear/DequantizeLinear")
    tolerance = checks.TOLERANCE[(kind, "int8" if precision == "int8" else "fp32")]
    cases = parity_cases(restorer, kind, steps)
    diffs = _checked(raw, f"{kind} graph", cases, tolerance)
    slim_diffs = _slim(raw, final, cases, tolerance) if slim else None
    if slim_diffs is None:
        os.replace(raw, final)
    else:
        diffs = slim_diffs
        raw.unlink()
    if precision == "fp16":
        half = out_dir / f"{kind}.fp16.onnx"
        to_fp16(final, half, keep_io_types=keep_io_fp32)
        half_diffs = _checked(half, f"{kind} FP16 graph", cases, checks.TOLERANCE[(kind, "fp16")])
        diffs.update({f"fp16 {what}": d for what, d in half_diffs.items()})
        os.replace(half, final)
    model = onnx.load(str(final))
    return GraphResult(kind, final, precision, steps, diffs, slim_diffs is not None,
                       check_tensorrt(model, profile, restorer.config.multiple_of), len(model.graph.node),
                       final.stat().st_size)
