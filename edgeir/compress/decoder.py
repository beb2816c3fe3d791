"""The decoder stage: a latent restorer's autoencoder decoder replaced by a small distilled one (a
``TinyDecoder``, in the spirit of TAESD), trained to reproduce the decoder's images from the same latents.

At output resolution a latent restorer's decoder often costs more than a few-step UNet (``codec_costs`` in
every stage's metrics says how much), so after step distillation it is what is left to make small. The latents
it learns from are, by default, the ones it will decode: the incoming model's own samples on training crops
(``sampled``), which a few-step student places a little off the encoder's manifold; ``encoded`` uses the
encoder's latents of the crops, as TAESD does. The autoencoder and the UNet are not touched; the stage reports
the decoder's share of a restoration's onnxruntime latency before and after.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from edgeir.compress.cost import codec_costs
from edgeir.compress.distill import band_rms
from edgeir.compress.latency import restore_parts_ms
from edgeir.compress.stage import StageContext, StageOutput
from edgeir.errors import ConfigError
from edgeir.models.codec import LatentCodec
from edgeir.models.config import RestorerConfig, TinyDecoderSpec
from edgeir.models.restorer import RestorerModel
from edgeir.models.tiny_decoder import TinyDecoder, TinyDecoderConfig
from edgeir.progress import no_progress
from edgeir.train.data import make_pair, random_crop
from edgeir.train.loop import Schedule, fit

WIDTHS = (64, 48, 32, 24, 16, 16, 16)  # default widths, from the latent's resolution up


class DecoderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["decoder"] = "decoder"
    # The TinyDecoder's widths, one per level from the latent's resolution up (log2(factor) + 1 of them);
    # default: the first of WIDTHS.
    channels: list[int] | None = None
    blocks: int = Field(1, ge=0, le=8)  # residual blocks per level
    latents: Literal["sampled", "encoded"] = "sampled"
    iterations: int = Field(500, ge=1)
    batch: int = Field(8, ge=1)
    patch: int = Field(64, ge=16)  # training crops, in output pixels
    lr: float = Field(1e-3, gt=0, le=1)
    ema: float = Field(0.99, ge=0, lt=1)
    # Weight of distill's phase-blind detail term (the finest band's local strength must match the decoder's):
    # a small decoder trained on MSE alone draws the blurry mean of what the decoder would.
    detail_weight: float = Field(0.0, ge=0)
    save_every: int = Field(50, ge=1)
    latency_runs: int = Field(20, ge=0)  # onnxruntime rounds timing each graph before and after (0: skip)


def tiny_config(settings: DecoderSettings, config: RestorerConfig) -> TinyDecoderConfig:
    latent = config.latent
    levels = latent.factor.bit_length() - 1
    channels = settings.channels or list(WIDTHS[: levels + 1])
    try:
        return TinyDecoderConfig(latent_channels=latent.channels, factor=latent.factor, channels=tuple(channels),
                                 blocks=settings.blocks)
    except ValueError as e:
        raise ConfigError(f"decoder.channels: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def check(settings: DecoderSettings, config: RestorerConfig) -> None:
    """The one-line error the stage would stop with on a model of ``config``, raised before any work."""
    if config.latent is None:
        raise ConfigError("decoder: the decoder stage replaces a latent restorer's decoder, and this restorer "
                          "samples in pixel space")
    if settings.patch % config.multiple_of:
        raise ConfigError(f"decoder.patch: {settings.patch} is not a multiple of the model's {config.multiple_of}")
    tiny_config(settings, config)


def run(settings: DecoderSettings, ctx: StageContext) -> StageOutput:
    source = ctx.student.to(ctx.device).eval()
    check(settings, source.config)
    images = [im for im in ctx.train_images if min(im.shape[:2]) >= settings.patch]
    if not images:
        raise ConfigError(f"decoder.patch: no training image is {settings.patch} pixels or larger")
    tiny = TinyDecoder(tiny_config(settings, source.config)).to(ctx.device)
    codec = source.codec
    generator = torch.Generator().manual_seed(ctx.seed)

    def loss(it: int) -> torch.Tensor:
        rng = np.random.default_rng([ctx.seed, 3, it])
        pairs = [make_pair(random_crop(images, settings.patch, rng), source.config, rng)
                 for _ in range(settings.batch)]
        target, cond = (torch.from_numpy(np.stack(p)).permute(0, 3, 1, 2).to(ctx.device) for p in zip(*pairs))
        with torch.no_grad():
            if settings.latents == "encoded":
                z = codec.encode(target)
            else:
                noise = torch.from_numpy(rng.standard_normal((settings.batch, *source.sample_size(
                    *cond.shape[-2:])), dtype=np.float32)).to(ctx.device)
                z = source.sample(cond, noise, generator=generator)
            goal = codec.decode(z)
        pred = tiny(z)
        value = ((pred - goal) ** 2).mean()
        if settings.detail_weight:
            value = value + settings.detail_weight * ((band_rms(pred) - band_rms(goal)) ** 2).mean()
        return value

    # Named by what shapes the weights: not the gates (relaxing one must not retrain) nor the timing rounds.
    shaping = set(DecoderSettings.model_fields) - {"latency_runs"}
    key = hashlib.sha256(json.dumps({**settings.model_dump(mode="json", include=shaping), "start": source.digest(),
                                     "seed": ctx.seed}, sort_keys=True).encode()).hexdigest()[:8]
    schedule = Schedule(settings.iterations, settings.lr, warmup=max(1, min(100, settings.iterations // 10)),
                        ema=settings.ema, save_every=settings.save_every)
    progress = ctx.progress or no_progress
    fitted = fit(tiny.train(), loss, schedule, ctx.work_dir / f"decoder-{key}.state", progress, "distill decoder")
    model = with_decoder(source, fitted.ema.eval(), settings.model_dump(mode="json"))

    info: dict = {"latents": settings.latents, "channels": list(model.codec.spec.decoder.config.channels),
                  "loss": [fitted.losses[0], float(np.mean(fitted.losses[-20:]))] if fitted.losses else None}
    if ctx.eval_cases:
        h, w = ctx.eval_cases[0][1].shape[:2]
        info["costs"] = {"before": codec_costs(source, h, w), "after": codec_costs(model, h, w)}
        if settings.latency_runs:
            info["latency_ms_onnxruntime"] = {"size": [h, w], **restore_parts_ms(
                {"before": source, "after": model}, (h, w), settings.latency_runs, progress=progress)}
    return StageOutput(model, info=info)


def with_decoder(source: RestorerModel, decoder: TinyDecoder, settings: dict) -> RestorerModel:
    """``source`` with ``decoder`` in its autoencoder's decoder's place (its encoder and UNet as they are);
    ``settings``: what made it, for the provenance."""
    old = source.codec.spec
    spec = old.model_copy(update={"decoder": TinyDecoderSpec(config=decoder.config),
                                  "graphs": {k: v for k, v in old.graphs.items() if k != "decoder"}})
    codec = LatentCodec(spec, source.codec.autoencoder, source.codec.encoder, decoder)
    provenance = {**source.config.provenance, "decoder_by": {"stage": "edgeir.compress.decoder",
                                                             "settings": settings}}
    config = source.config.model_copy(update={"autoencoder": spec, "provenance": provenance})
    return RestorerModel(config, net=source.denoiser.net, codec=codec).eval()
