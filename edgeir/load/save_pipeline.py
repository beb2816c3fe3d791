"""A latent restorer written as a diffusers pipeline folder (``edgeir.load.pipeline`` reads it back): what
diffusers' own ``from_pretrained`` loads, so a restorer trained here runs in diffusers too.

A VQ restorer conditioned on the low-resolution image, super-resolving by its autoencoder's factor, is an
``LDMSuperResolutionPipeline``; any other is its components (``vae/`` or ``vqvae/``, ``unet/``,
``scheduler/``) under a ``model_index.json`` naming them. Either way ``edgeir.json`` carries what diffusers
does not record: the task and condition where the pipeline class does not say them, the sampler's step count
and the provenance (how it was trained).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeir.diffusion.scheduler import DiffusersSchedule, to_diffusers
from edgeir.errors import CheckpointError
from edgeir.files import atomic_dir
from edgeir.load.pipeline import SIDECAR
from edgeir.models.config import DiffusersUNetSpec
from edgeir.models.restorer import RestorerModel

COMPONENT = {"vq": ("vqvae", "VQModel"), "kl": ("vae", "AutoencoderKL")}


def ldm_sr_class():
    """diffusers exports ``LDMSuperResolutionPipeline`` at the top level only where transformers is installed,
    which this pipeline does not use."""
    from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion_superresolution import (
        LDMSuperResolutionPipeline,
    )

    return LDMSuperResolutionPipeline


def _problem(restorer: RestorerModel) -> str | None:
    cfg = restorer.config
    if cfg.latent is None:
        return "it samples in pixel space"
    if not isinstance(cfg.network, DiffusersUNetSpec) or cfg.network.resized:
        return "its network is not a diffusers UNet2DModel of its config (pruned or another kind)"
    if not isinstance(cfg.schedule, DiffusersSchedule):
        return "its schedule is not a diffusers scheduler's"
    if cfg.autoencoder.decoder is not None or cfg.autoencoder.graphs:
        return "its autoencoder has a distilled or ONNX part, which diffusers' does not"
    return None


def is_ldm_sr(restorer: RestorerModel) -> bool:
    cfg = restorer.config
    return cfg.autoencoder.type == "vq" and cfg.latent.condition == "lowres"


def save_pipeline(restorer: RestorerModel, folder: str | Path) -> Path:
    """Write ``restorer`` atomically as a pipeline folder; CheckpointError (one line) if diffusers has no form
    for it."""
    import diffusers

    folder = Path(folder)
    problem = _problem(restorer)
    if problem:
        raise CheckpointError(f"{folder}: not written as a diffusers pipeline: {problem}")
    cfg = restorer.config
    ae_name, ae_class = COMPONENT[cfg.autoencoder.type]
    scheduler = to_diffusers(cfg.schedule, cfg.prediction)
    scheduler = getattr(diffusers, scheduler.pop("_class_name")).from_config(scheduler)
    ae, unet = restorer.codec.autoencoder, restorer.denoiser.net.unet
    sidecar = {"sampler": {"steps": cfg.sampler.steps}, "provenance": cfg.provenance}
    with atomic_dir(folder) as tmp:
        if is_ldm_sr(restorer):
            ldm_sr_class()(vqvae=ae, unet=unet, scheduler=scheduler).save_pretrained(
                tmp, safe_serialization=True)
        else:
            ae.save_pretrained(tmp / ae_name, safe_serialization=True)
            unet.save_pretrained(tmp / "unet", safe_serialization=True)
            scheduler.save_pretrained(tmp / "scheduler")
            index = {"_class_name": "LatentRestorationPipeline", "_diffusers_version": diffusers.__version__,
                     ae_name: ["diffusers", ae_class], "unet": ["diffusers", "UNet2DModel"],
                     "scheduler": ["diffusers", type(scheduler).__name__]}
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
            sidecar.update(task=cfg.task.model_dump(mode="json"), condition=cfg.latent.condition)
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return folder
