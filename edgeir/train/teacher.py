"""Teacher training: the network learns to denoise the scaled residual over the task's base image at random
timesteps (``edgeir.diffusion.training``), in the shared training loop (``edgeir.train.loop``). Resumable: the
training state is checkpointed every ``save_every`` steps and picked up with ``resume``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from edgeir.data.builtin import builtin_images
from edgeir.diffusion.training import noised, training_target
from edgeir.errors import CheckpointError, ConfigError
from edgeir.files import atomic_path, write_atomic
from edgeir.load.checkpoint import load_restorer, save_restorer
from edgeir.load.save_pipeline import save_pipeline
from edgeir.models.codec import LatentCodec, build_codec
from edgeir.models.config import DiffusersUNetSpec, RestorerConfig
from edgeir.models.restorer import RestorerModel, build_network
from edgeir.progress import progress_bar
from edgeir.train.autoencoder import train_autoencoder
from edgeir.train.data import Pairs
from edgeir.train.loop import Schedule, fit

STATE = "train_state.pt"
AE_STATE, AE_WEIGHTS, AE_RECORD = "autoencoder_state.pt", "autoencoder.safetensors", "autoencoder.json"


def train_teacher(config: RestorerConfig, out: Path, work: Path, iters: int, batch: int = 16, patch: int = 128,
                  lr: float = 2e-4, device: str | None = None, workers: int | None = None, seed: int = 0,
                  max_minutes: float | None = None, save_every: int = 1000, log_every: int = 200,
                  resume: bool = True, command: str = "", images: list | None = None,
                  init: Path | None = None, ae_iters: int = 0) -> RestorerModel:
    """Train ``config``'s network from scratch (or resume it) and save its EMA weights to ``out``. With
    ``max_minutes`` the run ends at whichever of ``iters`` or the time limit comes first (``edgeir.train.loop``).
    A latent restorer trains its autoencoder first, for ``ae_iters`` iterations or ``max_minutes`` (kept in
    ``work``, so a rerun goes straight to the UNet), unless it fine-tunes ``init``; it is saved as a diffusers
    pipeline folder (``edgeir.load.save_pipeline``). ``init`` must have the preset's network and task; its
    degradation may differ (fine-tuning a clean-input teacher for realistic inputs)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = workers if workers is not None else max(1, min(8, (os.cpu_count() or 2) - 1))
    images = images if images is not None else [im for _, im in builtin_images("train")]
    work.mkdir(parents=True, exist_ok=True)
    codec, ae_record = None, {}
    if config.latent is not None and init is None:
        codec, ae_record = _autoencoder(config, work, ae_iters, batch, patch, lr, device, seed, resume, images,
                                        save_every, log_every, max_minutes)
    torch.manual_seed(seed)
    model = RestorerModel(config, codec=codec)
    history = []
    if init is not None:  # fine-tune a trained model instead of starting from scratch
        start_from = load_restorer(init)
        where = _difference(_comparable(start_from.config), _comparable(config))
        if where is not None:
            raise CheckpointError(f"--init {init}: its {where[0]} is {where[1]!r} where the preset's is "
                                  f"{where[2]!r}; --init fine-tunes a model of the preset's own network and task")
        model.load_state_dict(start_from.state_dict())
        prior = dict(start_from.config.provenance)
        history = prior.pop("history", []) + [prior]
    model = model.to(device).train()
    state = work / STATE
    if not resume:
        state.unlink(missing_ok=True)
    ab = torch.tensor(model.alphas_cumprod, dtype=torch.float32, device=device)
    T = config.schedule.num_train_timesteps
    use_bf16 = device.startswith("cuda")
    batches = None

    def loss(it: int) -> torch.Tensor:
        nonlocal batches
        if batches is None:
            batches = iter(Pairs(images, config, patch, seed).batches(it, batch, workers))
        target, cond = model.training_batch(*next(batches))
        g = torch.Generator().manual_seed(seed * 1_000_003 + it)  # per iteration, so a resumed run repeats it
        t = torch.randint(0, T, (target.shape[0],), generator=g)
        noise = torch.randn(target.shape, generator=g)
        target, cond, t, noise = (v.to(device, non_blocking=True) for v in (target, cond, t, noise))
        a, s = ab[t].sqrt()[:, None, None, None], (1 - ab[t]).sqrt()[:, None, None, None]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            pred = model.denoiser(noised(target, noise, a, s), t.float(), cond)
        goal = training_target(config.prediction, target, noise, a, s)
        return (config.task.loss_weight(cond) * (pred.float() - goal) ** 2).mean()

    start = time.time()
    schedule = Schedule(iters, lr, warmup=500, ema=0.999, save_every=save_every, max_minutes=max_minutes)
    fitted = fit(model, loss, schedule, state, progress_bar, f"train {config.task.name}", log_every)
    ema = fitted.ema.cpu()
    ema.config = config.model_copy(update={"provenance": {
        "trained_by": "edgeir.train.teacher", "iterations": fitted.iterations, "batch": batch, "patch": patch,
        "lr": lr, "device": torch.cuda.get_device_name() if use_bf16 else "cpu", "seed": seed,
        "minutes": round((time.time() - start) / 60, 1), "data": "builtin train split (scikit-image photos)",
        "command": command, **ae_record, **({"history": history} if history else {})}})
    (save_pipeline if config.latent is not None else save_restorer)(ema, out)
    return ema


def _autoencoder(config: RestorerConfig, work: Path, iters: int, batch: int, patch: int, lr: float, device: str,
                 seed: int, resume: bool, images: list, save_every: int, log_every: int, max_minutes: float | None
                 ) -> tuple[LatentCodec, dict]:
    """The latent restorer's trained codec: from ``work`` where an earlier run finished it, else trained."""
    spec = config.autoencoder
    weights, record = work / AE_WEIGHTS, work / AE_RECORD
    if resume and weights.exists() and record.exists():
        codec = build_codec(spec)
        codec.autoencoder.load_state_dict(load_file(str(weights)))
        return codec, json.loads(record.read_text())
    if iters < 1:
        raise ConfigError("a latent restorer's autoencoder trains first: give it iterations (--ae-iters)")
    state = work / AE_STATE
    if not resume:
        state.unlink(missing_ok=True)
    start = time.time()
    codec, done = train_autoencoder(spec, images, state, iters, batch, patch, lr, device, seed, max_minutes,
                                    save_every, log_every)
    facts = {"autoencoder": {"trained_by": "edgeir.train.autoencoder", "iterations": done, "batch": batch,
                             "patch": patch, "lr": lr, "minutes": round((time.time() - start) / 60, 1)}}
    with atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in codec.autoencoder.state_dict().items()}, str(tmp))
    write_atomic(record, json.dumps(facts))
    return codec, facts


def _comparable(config: RestorerConfig) -> dict:
    """What ``--init`` must share with the preset: the network, the autoencoder and the task, whatever its
    degradation. A diffusers module's config counts with diffusers' defaults filled in, as its saved folder
    has them (a preset names only what it changes)."""
    same = {"network": True, "autoencoder": True, "task": set(type(config.task).model_fields) - {"degradation"}}
    dump = config.model_dump(mode="json", include=same)
    with torch.device("meta"):  # sizes only: no memory, no initialisation
        if isinstance(config.network, DiffusersUNetSpec):
            dump["network"]["config"] = _plain_config(build_network(config).unet.config)
        if config.autoencoder is not None:
            dump["autoencoder"]["config"] = _plain_config(build_codec(config.autoencoder).autoencoder.config)
    return dump


def _plain_config(frozen: Any) -> dict:
    return json.loads(json.dumps({k: v for k, v in dict(frozen).items() if not k.startswith("_")}))


def _difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first place where two JSON-like values differ: (dotted path, a's value, b's value); a ``type``
    before the fields that depend on it."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=lambda k: (k != "type", k)):
            found = _difference(a.get(key), b.get(key), f"{path}.{key}".lstrip("."))
            if found:
                return found
        return None
    return None if a == b else (path, a, b)
