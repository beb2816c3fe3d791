"""The quantize stage: INT8 post-training quantization of the student's denoiser with NNCF.

1. Calibration data comes from the student's own sampler on calibration crops: every (x_t, t, condition) it
   feeds the denoiser, the same number per visited timestep (``edgeir.compress.calibration``).
2. ``nncf.quantize``: weights per-channel symmetric INT8, activations per-tensor; the layers matched by
   ``keep_fp`` (patterns and graph selectors, ``edgeir.compress.layers``) stay in floating point.
3. Export as an ONNX graph of standard QuantizeLinear/DequantizeLinear pairs with INT8 weight initializers
   in the forms TensorRT accepts (``edgeir.compress.int8_onnx``).
4. Quality gate on the held-out set against the FP32 student, run on that ONNX graph through onnxruntime; on
   failure a per-layer sensitivity report and a suggested ``keep_fp`` list are written to the stage folder.

The stage's model is a restorer whose denoiser is the INT8 graph (run by onnxruntime), so the pipeline
evaluates it like any other; the graph itself is the ``int8_onnx`` artifact. A latent restorer's decoder and
encoder go the same way where ``parts`` names them (calibrated on the latents the sampler ends with and the
images it encodes), becoming ONNX parts of its autoencoder (``int8_decoder``, ``int8_encoder``); the gate
judges the whole restoration, and the per-layer report covers the UNet.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from edgeir.compress import layers, quantize_gate
from edgeir.compress.calibration import calibration_sets
from edgeir.compress.nncf_model import (
    ActivationRange,
    export_int8,
    export_int8_part,
    network_graph,
    quantize_network,
    quantizers_by_layer,
)
from edgeir.compress.sensitivity import layer_sensitivity, suggest_keep_fp
from edgeir.compress.stage import StageContext, StageOutput
from edgeir.errors import ConfigError, QualityGateError
from edgeir.files import write_atomic
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.shapes import DimRange, image_profile, with_latent
from edgeir.models.codec import DECODER_IO, ENCODER_IO, LatentCodec
from edgeir.models.config import OnnxNetSpec, RestorerConfig
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel
from edgeir.progress import progress_bar

ARTIFACT = "denoiser.int8.onnx"
CODEC_ARTIFACT = {"encoder": "encoder.int8.onnx", "decoder": "decoder.int8.onnx"}
# A decoder's first and last convolutions are its image's precision (as a UNet's are), and its attention's
# softmax is as sensitive as the UNet's.
CODEC_KEEP_FP = ("@first_conv", "@last_conv", "@attention_softmax")
Part = Literal["unet", "decoder", "encoder"]
REPORT = "sensitivity.json"


class QuantizeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["quantize"] = "quantize"
    # Layers left in floating point: fnmatch patterns over layer names (``conv_in``, ``up.2.*``,
    # ``mid_attn.softmax.0``), each of which must match something, and the selectors of
    # ``edgeir.compress.layers`` (``@first_conv``, ...), which may find nothing in a network without, say,
    # attention.
    keep_fp: list[str] = Field(default_factory=lambda: list(layers.DEFAULT_KEEP_FP))
    # "performance": symmetric activations (TensorRT); "mixed": asymmetric ones (not TensorRT-ready).
    preset: Literal["performance", "mixed"] = "performance"
    # Activation ranges from calibration: NNCF's default "mean_minmax" averages per-sample extremes (clips the
    # rare outliers); "minmax" covers every sample's range (no clipping, coarser steps); "histogram" picks
    # the range that minimises quantization error.
    activation_range: ActivationRange = "mean_minmax"
    subset_size: int = Field(64, ge=1, description="Calibration samples (denoiser calls of the student's sampler).")
    crop: int = Field(128, ge=16, description="Calibration crop size in output pixels.")
    # The graphs made INT8: the UNet and, of a latent restorer, the decoder and the encoder (where the UNet takes
    # a latent), each calibrated on the inputs the student's sampler gives it.
    parts: list[Part] = Field(default_factory=lambda: ["unet"], min_length=1)
    # keep_fp for the autoencoder's parts (the UNet's selectors apply; @timestep_embedding finds nothing there).
    codec_keep_fp: list[str] = Field(default_factory=lambda: list(CODEC_KEEP_FP))
    max_psnr_drop: float = Field(0.2, ge=0, description="Gate: dB of PSNR the INT8 model may lose vs FP32.")
    min_detail_kept: float = Field(0.95, ge=0, description="Gate: share of the FP32 model's detail to keep.")


    @field_validator("parts")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) < len(v):
            raise ValueError(f"{v} names a part twice")
        return v


def _keep_fp_nodes(graph, patterns: list[str], field: str) -> tuple[list[str], dict[str, list[str]]]:
    resolved = layers.resolve(graph, patterns)
    unmatched = [p for p, nodes in resolved.items() if not nodes and not p.startswith("@")]
    if unmatched:
        known = ", ".join(sorted({layers.layer_name(graph, n) for n in layers.operations(graph)})[:12])
        raise ConfigError(f"quantize.{field}: {', '.join(unmatched)} matches no layer (layers look like: {known}, "
                          "...)")
    names = sorted({n for nodes in resolved.values() for n in nodes})
    by_pattern = {p: sorted({layers.layer_name(graph, graph.get_node_by_name(n)) for n in nodes})
                  for p, nodes in resolved.items()}
    return names, by_pattern


def check(settings: QuantizeSettings, config: RestorerConfig) -> None:
    """The one-line error the stage would stop with on a model of ``config``, raised before any work."""
    latent = config.latent
    for part in settings.parts:
        if part != "unet" and latent is None:
            raise ConfigError(f"quantize.parts: {part}: this restorer samples in pixel space and has no autoencoder")
        if part == "encoder" and latent.condition != "latent":
            raise ConfigError("quantize.parts: encoder: this restorer's UNet is conditioned on the low-resolution "
                              "image, so a restoration never runs its encoder")
        graph = isinstance(config.network, OnnxNetSpec) if part == "unet" else part in config.autoencoder.graphs
        if graph:
            raise ConfigError(f"quantize.parts: {part} is an ONNX graph already (an earlier quantize stage's)")


def _quantize(module: nn.Module, samples: list, patterns: list[str], settings: QuantizeSettings, field: str
              ) -> tuple[nn.Module, object, dict[str, list[str]]]:
    """NNCF INT8 of ``module`` calibrated on ``samples``; also its NNCF graph and the layers kept in float."""
    graph = network_graph(module, samples[0])
    keep_nodes, kept = _keep_fp_nodes(graph, patterns, field)
    float_outputs = layers.timestep_only(graph) if "@timestep_embedding" in patterns else set()
    quantized = quantize_network(module, samples, graph, keep_nodes, float_outputs, settings.preset, len(samples),
                                 settings.activation_range)
    return quantized, graph, kept


def run(settings: QuantizeSettings, ctx: StageContext) -> StageOutput:
    student = ctx.student.eval()
    check(settings, student.config)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    sets = calibration_sets(student, ctx.train_images, settings.subset_size, settings.crop, ctx.seed,
                            settings.parts)
    first = settings.parts[0]  # the calibration crops' side, in output pixels
    size = sets[first][0][0].shape[-1] * (1 if first == "encoder" else student.sample_scale)
    profile = with_latent(image_profile(DimRange(min=1, opt=1, max=1), DimRange(min=size, opt=size, max=size)),
                          student.sample_scale)
    net, codec, info, recorded = student.denoiser.net, student.codec, {}, {}
    unet = None
    if "unet" in settings.parts:
        samples = sets["unet"]
        quantized, graph, kept = _quantize(net, samples, settings.keep_fp, settings, "keep_fp")
        path = export_int8(quantized, student, ctx.work_dir / ARTIFACT)
        net, unet = OnnxNet(path), (quantized, graph, samples)
        recorded["graph"], recorded["keep_fp"] = ARTIFACT, kept
        info.update(calibration_samples=len(samples),
                    calibration_timesteps=sorted({int(s[1]) for s in samples}, reverse=True), keep_fp=kept,
                    tensorrt_problems=check_tensorrt(path, profile, student.config.multiple_of))
    parts = {}
    for part in (p for p in ("encoder", "decoder") if p in settings.parts):
        quantized, _, kept = _quantize(getattr(codec, part), sets[part], settings.codec_keep_fp, settings,
                                       "codec_keep_fp")
        io = ENCODER_IO if part == "encoder" else DECODER_IO
        path = export_int8_part(quantized, io, tuple(sets[part][0][0].shape), ctx.work_dir / CODEC_ARTIFACT[part])
        parts[part] = OnnxNet(path, inputs=io[:1])
        info.setdefault("codec", {})[part] = {"graph": path.name, "calibration_samples": len(sets[part]),
                                              "keep_fp": kept, "tensorrt_problems": check_tensorrt(path, profile)}
    if parts:
        spec = codec.spec.model_copy(update={"graphs": {**codec.spec.graphs, **{
            part: CODEC_ARTIFACT[part] for part in parts}}})
        codec = LatentCodec(spec, codec.autoencoder, parts.get("encoder", codec.encoder),
                            parts.get("decoder", codec.decoder))
        recorded["codec"] = {part: v["keep_fp"] for part, v in info["codec"].items()}
    config = student.config.model_copy(update={
        "autoencoder": codec.spec if codec is not None else None,
        "provenance": {**student.config.provenance, "quantized": {
            "by": "edgeir.compress.quantize (NNCF post-training INT8)", **recorded}}})
    model = RestorerModel(config, net=net, codec=codec).eval()
    artifacts = {**({"int8_onnx": ARTIFACT} if unet else {}),
                 **{f"int8_{part}": CODEC_ARTIFACT[part] for part in parts}}

    fp32_metrics, _ = quantize_gate.restore_all(student, ctx.eval_cases, ctx.seed, "gate: FP32 student")
    gate = quantize_gate.check(student, model, ctx.eval_cases, ctx.seed, settings.max_psnr_drop,
                               settings.min_detail_kept, fp32_metrics)
    info["gate"] = gate.as_dict()
    if not gate.passed:
        if unet is None:
            raise QualityGateError(f"quantize: {gate.summary()}; keep more of the autoencoder's layers in floating "
                                   "point (codec_keep_fp), or leave a part out of quantize.parts")
        report = _sensitivity_report(settings, ctx, student, *unet, fp32_metrics)
        write_atomic(ctx.work_dir / REPORT, json.dumps({**info, **report}, indent=2, default=float))
        worst = ", ".join(f"{name} ({snr:.1f} dB)" for name, snr in report["sensitivity"][:3])
        raise QualityGateError(f"quantize: {gate.summary()}; most sensitive layers: {worst}; suggested "
                               f"keep_fp: {report['suggested_keep_fp']} (report: {ctx.work_dir / REPORT})")
    return StageOutput(model=model, artifacts=artifacts, info=info)


def _sensitivity_report(settings: QuantizeSettings, ctx: StageContext, student: RestorerModel, quantized,
                        graph, samples, fp32_metrics: dict) -> dict:
    units = quantizers_by_layer(graph, quantized)
    device = next(student.parameters()).device
    # At least one sample per visited timestep.
    probe = [tuple(x.to(device) for x in s) for s in samples[: max(4, len(student.steps()))]]
    with progress_bar("quantize: layer sensitivity", total=len(units)) as advance:
        ranking = layer_sensitivity(quantized, student.denoiser.net, units, probe, advance)
    simulated = RestorerModel(student.config, net=quantized, codec=student.codec).eval()

    def passes() -> bool:
        return quantize_gate.check(student, simulated, ctx.eval_cases, ctx.seed, settings.max_psnr_drop,
                               settings.min_detail_kept, fp32_metrics).passed

    extra, enough = suggest_keep_fp(quantized, units, ranking, passes)
    return {"sensitivity": ranking, "suggested_keep_fp": settings.keep_fp + extra,
            "suggestion_passes_gate_in_simulation": enough}
