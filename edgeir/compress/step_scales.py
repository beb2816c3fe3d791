"""Activation scales per sampler step for an INT8 UNet graph whose copies a restore graph unrolls.

A few-step sampler's steps see different activations (x_t is nearly pure noise at the first, nearly clean at
the last), and one set of activation scales calibrated across all of them fits none exactly. A restore graph
holds one copy of the UNet per step sharing its INT8 weights, so each copy can carry scales calibrated at its
own timestep. Here each step gets a copy of the quantize stage's graph with only its activation scales
re-estimated, on the inputs the sampler gives that step on calibration crops: weights, zero points, which
tensors are quantized and which scales are tied together stay as NNCF left them, so every copy stays in the
forms TensorRT takes.

The estimate is NNCF's ``mean_minmax`` for a symmetric signed quantizer (the quantize stage's default): the
mean over samples of each sample's minimum and of its maximum, the larger magnitude of the two over 127;
tensors whose quantizers share a scale constant (NNCF unifies the inputs of an Add or Concat) share the
largest. ``calibrate`` applied to all steps' samples together gives the shared-scale counterpart, so the two
differ only in what each scale was calibrated on. A bundle carries the scales per step in its manifest, and
restore graphs are composed from copies of its one INT8 graph holding them (``edgeir.graphs.qdq.with_scales``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from edgeir.bundle.manifest import make_variant
from edgeir.diffusion.steps import Sampling, noise_channels
from edgeir.errors import ConfigError
from edgeir.export.restore import feeds
from edgeir.graphs.ort import open_session
from edgeir.graphs.qdq import activation_quantizers, constants, float_twin
from edgeir.graphs.reference import host_restore
from edgeir.graphs.restore import restore_graph
from edgeir.tasks import Degraded, Task

Feeds = dict[str, np.ndarray]


def sampler_inputs(unet: onnx.ModelProto, task: Task, sampling: Sampling, images: Sequence[np.ndarray], count: int,
                   crop: int, tile: int, overlap: int, multiple_of: int, seed: int = 0) -> list[list[Feeds]]:
    """Per sampler step, the UNet inputs (batch 1) the sampler gives ``unet``'s float twin on ``count`` random
    ``crop``-pixel crops of ``images``, degraded by the task."""
    session = open_session(float_twin(unet).SerializeToString())
    rng = np.random.default_rng(seed)
    per_step: list[list[Feeds]] = [[] for _ in sampling.steps]
    calls: list[Feeds] = []  # one per sampler step, in order

    def record(f: Feeds) -> np.ndarray:
        calls.append({k: v.copy() for k, v in f.items()})  # the loop reuses its arrays
        return session.run(None, f)[0]

    for i in range(count):
        img = images[i % len(images)]
        size = min(crop, *img.shape[:2]) // multiple_of * multiple_of
        y, x = (int(rng.integers(0, s - size + 1)) for s in img.shape[:2])
        d = task.degrade(img[y:y + size, x:x + size], rng)
        cond = np.ascontiguousarray(task.condition(d).transpose(2, 0, 1))
        noise = rng.standard_normal((noise_channels(sampling.steps), *cond.shape[1:]), dtype=np.float32)
        calls.clear()
        host_restore(record, cond, noise, sampling, tile, overlap, multiple_of)
        for samples, f in zip(per_step, calls, strict=True):
            samples += [{k: v[j:j + 1] for k, v in f.items()} for j in range(len(f["t"]))]
    return per_step


def calibrate(int8: onnx.ModelProto, samples: Sequence[Feeds]) -> dict[str, float]:
    """``int8``'s activation scales (scale constant -> value) estimated on ``samples`` alone."""
    values = constants(int8.graph)
    quantizers = activation_quantizers(int8)
    for q in quantizers:
        zero = values.get(q.input[2]) if len(q.input) > 2 and q.input[2] else None
        if zero is None or zero.dtype != np.int8 or np.any(zero):
            raise ConfigError(f"{q.name or q.input[0]}: per-step scales need symmetric signed INT8 activations")
    tensors = sorted({q.input[0] for q in quantizers})
    probe = float_twin(int8)
    probe.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    session = open_session(probe.SerializeToString(), optimize=False)
    lows, highs = defaultdict(list), defaultdict(list)
    for sample in samples:
        for name, out in zip(tensors, session.run(tensors, sample), strict=True):
            lows[name].append(float(out.min()))
            highs[name].append(float(out.max()))
    reach = {t: max(abs(np.mean(lows[t])), abs(np.mean(highs[t]))) for t in tensors}
    group: dict[str, float] = defaultdict(float)  # scale constant -> the largest reach of what it quantizes
    for q in quantizers:
        group[q.input[1]] = max(group[q.input[1]], reach[q.input[0]])
    return {name: max(r, 1e-12) / 127 for name, r in group.items()}


def per_step(int8: onnx.ModelProto, inputs: Sequence[Sequence[Feeds]]) -> list[dict[str, float]]:
    """Activation scales per sampler step, each calibrated on its step's inputs (``sampler_inputs``)."""
    return [calibrate(int8, samples) for samples in inputs]


def psnr_vs_float(nets: onnx.ModelProto | list[onnx.ModelProto], task: Task, sampling: Sampling, overlap: int,
                  multiple_of: int, cases: Sequence[tuple[np.ndarray, Degraded]]) -> tuple[float, list[np.ndarray]]:
    """How close (mean PSNR over ``cases``, (ground truth, degraded) pairs) the restore graph composed from
    ``nets`` comes to the one composed from their float twin, and its outputs. Both run as written (Q/DQ in
    float): the arithmetic of the graphs themselves, on any CPU."""
    first = nets if isinstance(nets, onnx.ModelProto) else nets[0]
    variant = make_variant("check", "check.onnx", "restore", task.name, task.cond_channels, sampling, "fp32",
                           tile=max(max(gt.shape[:2]) for gt, _ in cases), overlap=overlap, pixels="float32")

    def restore(graph) -> list[np.ndarray]:
        composed = restore_graph(graph, task.name, task.scale, task.cond_channels, sampling, overlap, "float32")
        session = open_session(composed.SerializeToString(), optimize=False)
        outs = []
        for gt, d in cases:
            noise = np.random.default_rng(0).standard_normal((1, variant.noise_channels, *gt.shape[:2]),
                                                             dtype=np.float32)
            outs.append(task.compose(session.run(None, feeds(task, variant, multiple_of, d, noise))[0][0], d))
        return outs

    reference, outputs = restore(float_twin(first)), restore(nets)
    mse = [float(np.mean((a.astype(np.float64) - b) ** 2)) for a, b in zip(outputs, reference, strict=True)]
    return float(np.mean([10 * np.log10(1 / max(e, 1e-20)) for e in mse])), outputs
