"""A diffusers pipeline folder (as ``save_pretrained`` writes it: ``model_index.json``, one folder per component)
as an edgeir latent restorer.

Two kinds load:

* ``LDMSuperResolutionPipeline``: a ``VQModel`` (``vqvae/``), a ``UNet2DModel`` on ``concat(latents, low-res
  image)`` (``unet/``) and a DDIM or DDPM scheduler. The folder says everything: the task is super-resolution
  by the autoencoder's factor, the UNet is conditioned on the low-resolution image, the latents are decoded
  as they are (no scaling factor, as the pipeline does).
* any other pipeline made of a ``UNet2DModel``, an ``AutoencoderKL`` (``vae/``, with its ``scaling_factor``
  and ``shift_factor``) or ``VQModel`` and a DDIM or DDPM scheduler: a latent restorer conditioned by
  concatenation, whose task (the degradation it restores) diffusers does not record. An ``edgeir.json`` beside
  ``model_index.json`` gives it, with what the UNet is concatenated with, e.g.
  ``{"task": {"name": "sr", "scale": 4}, "condition": "latent"}``; it may also set ``sampler`` and
  ``provenance``.

The scheduler becomes edgeir's step maths (``edgeir.diffusion.scheduler``). Weights are read from safetensors
only (pickled ``.bin`` files only with ``trust_pickle``, weights-only). Whatever is not supported (a
text-conditioned pipeline, another scheduler, a UNet that does not fit the autoencoder) is one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeir.configfile import read_json
from edgeir.diffusion.scheduler import from_diffusers
from edgeir.errors import CheckpointError, validation_message
from edgeir.models.config import AutoencoderSpec, RestorerConfig, SamplerConfig

INDEX = "model_index.json"
SIDECAR = "edgeir.json"
LDM_SR = "LDMSuperResolutionPipeline"
AUTOENCODERS = {"VQModel": "vq", "AutoencoderKL": "kl"}
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SIDECAR_FIELDS = {"task", "condition", "sampler", "provenance"}


def is_pipeline(folder: Path) -> bool:
    return (folder / INDEX).is_file()


def _components(folder: Path, index: dict) -> dict[str, str]:
    """Component name -> class name, of the components the index lists (``[library, class]`` pairs)."""
    found = {}
    for name, value in index.items():
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[1] is not None:
            found[name] = str(value[1])
    return found


def _unsupported(name: str, components: dict[str, str]) -> str | None:
    unet = components.get("unet")
    if unet != "UNet2DModel" or "text_encoder" in components:
        why = "it is text-conditioned" if "text_encoder" in components else f"its unet is {unet or 'missing'}"
        return (f"pipeline {name} is not supported: {why} (edgeir loads latent restorers whose UNet2DModel is "
                "conditioned by concatenation)")
    autoencoders = [c for c in components if components[c] in AUTOENCODERS]
    if len(autoencoders) != 1:
        return f"pipeline {name} is not supported: it needs one VQModel or AutoencoderKL, it has {len(autoencoders)}"
    if "scheduler" not in components:
        return f"pipeline {name} is not supported: it has no scheduler"
    extra = sorted(set(components) - {"unet", "scheduler", autoencoders[0]})
    if extra:
        return f"pipeline {name} is not supported: edgeir does not know its {extra[0]} ({components[extra[0]]})"
    return None


def _config(folder: Path, component: str, file: str = "config.json") -> dict[str, Any]:
    path = folder / component / file
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {component}/{file}")
    raw = read_json(path, "model config", CheckpointError)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: invalid config: not a JSON object")
    return {k: v for k, v in raw.items() if not k.startswith("_")} | {"_class_name": raw.get("_class_name")}


def weights_file(folder: Path, component: str, trust_pickle: bool) -> Path:
    for name in WEIGHTS:
        path = folder / component / name
        if path.is_file():
            if path.suffix == ".bin" and not trust_pickle:
                raise CheckpointError(f"{path}: refusing to unpickle; convert it to safetensors, or pass "
                                      "--trust-pickle if you made this file yourself")
            return path
    raise CheckpointError(f"{folder}: no {component}/{WEIGHTS[0]}")


def pipeline_config(folder: Path) -> tuple[RestorerConfig, str]:
    """The restorer a pipeline folder describes, and the name of its autoencoder's component folder."""
    index = read_json(folder / INDEX, "pipeline index", CheckpointError)
    if not isinstance(index, dict):
        raise CheckpointError(f"{folder / INDEX}: invalid index: not a JSON object")
    name = str(index.get("_class_name", "pipeline"))
    components = _components(folder, index)
    problem = _unsupported(name, components)
    if problem:
        raise CheckpointError(f"{folder}: {problem}")
    ae_name = next(c for c in components if components[c] in AUTOENCODERS)
    ae = _config(folder, ae_name)
    unet = _config(folder, "unet")
    try:
        schedule, prediction = from_diffusers(_config(folder, "scheduler", "scheduler_config.json"))
    except ValueError as e:
        raise CheckpointError(f"{folder}: {e}") from None
    kind = AUTOENCODERS[components[ae_name]]
    extra = _sidecar(folder, required=name != LDM_SR)
    condition = extra.pop("condition", "lowres" if name == LDM_SR else "latent")
    if name == LDM_SR:
        extra.setdefault("task", {"name": "sr", "scale": AutoencoderSpec(type=kind, config=ae).space.factor})
    scaling = 1.0 if kind == "vq" else float(ae.get("scaling_factor") or 1.0)
    shift = 0.0 if kind == "vq" else float(ae.get("shift_factor") or 0.0)
    ddpm = schedule.scheduler == "DDPMScheduler"
    sampler = {"kind": "ddpm" if ddpm else "ddim", "steps": 50, "eta": 1.0 if ddpm else 0.0,
               **extra.pop("sampler", {})}
    raw = {**extra, "prediction": prediction, "target": "image", "schedule": schedule.model_dump(),
           "network": {"type": "diffusers_unet2d", "config": _plain(unet)},
           "autoencoder": {"type": kind, "config": _plain(ae), "scaling_factor": scaling, "shift_factor": shift,
                           "condition": condition},
           "sampler": sampler,
           "provenance": {"loaded_from": f"diffusers {name}", **extra.get("provenance", {})}}
    try:
        config = RestorerConfig.model_validate(raw)
    except ValidationError as e:
        raise CheckpointError(f"{folder}: {validation_message(e)}") from None
    _check_unet(folder, config, unet)
    return config, ae_name


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _sidecar(folder: Path, required: bool) -> dict[str, Any]:
    path = folder / SIDECAR
    if not path.exists():
        if required:
            raise CheckpointError(f"{folder}: diffusers does not record this pipeline's task; add an {SIDECAR} "
                                  'beside model_index.json, e.g. {"task": {"name": "sr", "scale": 4}, '
                                  '"condition": "latent"}')
        return {}
    raw = read_json(path, "model config", CheckpointError)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: invalid config: not a JSON object")
    unknown = sorted(set(raw) - SIDECAR_FIELDS)
    if unknown:
        raise CheckpointError(f"{path}: {unknown[0]}: not a setting here (it may set {', '.join(sorted(SIDECAR_FIELDS))})")
    if "sampler" in raw:
        try:
            SamplerConfig.model_validate(raw["sampler"])
        except ValidationError as e:
            raise CheckpointError(f"{path}: sampler.{validation_message(e)}") from None
    return dict(raw)


def _check_unet(folder: Path, config: RestorerConfig, unet: dict[str, Any]) -> None:
    """The UNet must take the latent and its condition, and give back one prediction per latent channel."""
    assert config.latent is not None
    want_in = config.sample_channels + config.unet_cond_channels
    if unet.get("in_channels") != want_in:
        raise CheckpointError(f"{folder}: unet in_channels is {unet.get('in_channels')}, but the latent "
                              f"({config.sample_channels}) and its {config.latent.condition} condition "
                              f"({config.unet_cond_channels}) make {want_in}")
    if unet.get("out_channels") != config.sample_channels:
        raise CheckpointError(f"{folder}: unet out_channels is {unet.get('out_channels')}, not the latent's "
                              f"{config.sample_channels} (a learned variance is not supported)")
    if unet.get("class_embed_type") is not None or unet.get("num_class_embeds") is not None:
        raise CheckpointError(f"{folder}: a class-conditioned UNet2DModel is not supported")
