"""The distill stage: a student with the incoming model's architecture and denoiser interface that samples in
1-4 steps instead of 50.

* ``direct`` (as SinSR does for ResShift): the student's whole k-step sampler, unrolled, regresses the
  teacher's deterministic DDIM output from the same initial noise and condition. Those (condition, noise,
  output) triples are computed once and kept in the stage's work folder.
* ``progressive`` (Salimans & Ho, 2022): N steps -> N/2 -> ... -> ``steps``. In each round one student step
  learns to land where two steps of the round's teacher land, and the student teaches the next round.

The student visits exactly the timesteps it was trained on and records them in ``config.sampler``, so the
sampler, later stages and the exporter all use them. Training resumes from its last checkpoint, draws every
batch from ``(seed, iteration)`` so a resumed run sees the batches an uninterrupted one would, and runs under
``torchrun`` with DistributedDataParallel (see ``edgeir.train.ddp``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file

from edgeir.compress.crops import CropSized, Patches
from edgeir.compress.stage import StageContext, StageOutput
from edgeir.diffusion.schedules import spaced_timesteps
from edgeir.diffusion.steps import apply_step
from edgeir.diffusion.training import noised
from edgeir.errors import ConfigError
from edgeir.files import atomic_path
from edgeir.load.checkpoint import load_restorer, save_restorer
from edgeir.models.config import RestorerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.progress import no_progress
from edgeir.train import ddp
from edgeir.train.data import make_pair, random_crop
from edgeir.train.loop import Schedule, fit

DISTRIBUTED = True  # the pipeline runs this stage on every torchrun process


class DistillSettings(CropSized):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["distill"] = "distill"
    method: Literal["direct", "progressive"] = "direct"
    steps: int = Field(1, ge=1, le=64)  # the student's sampler steps
    # direct: the teacher's DDIM steps for the targets (default: its own sampler's steps);
    # progressive: the step count halved from (steps * 2^k; default: the largest not above the model's own).
    teacher_steps: int | None = Field(None, ge=2, le=1000)
    iterations: int = Field(300, ge=1)  # direct: in all; progressive: per halving round
    batch: int = Field(8, ge=1)
    # Training crops, in output pixels: one size, or several that alternate batch by batch (edgeir.compress.
    # crops). Include the runtime's tile size (256 for the shipped bundles), and no size much below the
    # teacher's training size (128 for the shipped teachers).
    patch: Patches = 128
    pairs: int = Field(256, ge=1)  # direct: how many teacher outputs to regress, of each patch size
    lr: float = Field(1e-4, gt=0, le=1)
    # Weight of a phase-blind detail term: the local RMS of the finest band (what a 3x3 box blur removes) must
    # match the teacher's. That band carries the texture a diffusion restorer exists for but almost none of
    # the MSE, and where a few-step student cannot tell which texture the teacher would draw, MSE alone makes
    # it draw none (the blurry mean); this term makes it draw texture of the right strength.
    detail_weight: float = Field(0.0, ge=0)
    # "mse" averages squared error over all pixels, so crops with strong texture (large errors) dominate and
    # the student is left imprecise on smooth ones; "psnr" averages each crop's log MSE, i.e. maximises the
    # mean per-image PSNR the gates report, weighting every crop alike.
    loss: Literal["mse", "psnr"] = "mse"
    # direct, latent restorers: what the loss compares, the student's and the teacher's final latents
    # ("sample") or the images the (frozen) decoder makes of them ("image"; its gradients pass through it).
    match: Literal["sample", "image"] = "sample"
    ema: float = Field(0.99, ge=0, lt=1)
    save_every: int = Field(50, ge=1)  # checkpoint interval, in iterations

    @model_validator(mode="after")
    def _check(self) -> DistillSettings:
        n = self.teacher_steps
        if self.method == "progressive" and n is not None:
            ratio = n // self.steps
            if n % self.steps or ratio < 2 or ratio & (ratio - 1):
                raise ValueError(f"progressive distillation halves the steps: teacher_steps ({n}) must be "
                                 f"steps ({self.steps}) times a power of two")
        if self.method == "direct" and n is not None and n <= self.steps:
            raise ValueError(f"teacher_steps ({n}) must exceed steps ({self.steps})")
        if self.method == "progressive" and self.match == "image":
            raise ValueError("match: image applies to direct distillation, whose targets are whole samples")
        return self


def check(settings: DistillSettings, config: RestorerConfig) -> None:
    """The one-line error the stage would stop with on a model of ``config``, raised before any work."""
    m = config.multiple_of
    for size in settings.sizes:
        if size % m or size % config.task.scale:
            raise ConfigError(f"distill.patch: {size} is not a multiple of the model's {m}")
    if settings.match == "image" and config.latent is None:
        raise ConfigError("distill.match: image compares decoded latents, and this restorer samples in pixel "
                          "space (its samples are images already: use sample)")


def run(settings: DistillSettings, ctx: StageContext) -> StageOutput:
    check(settings, ctx.student.config)
    if settings.batch % ddp.world_size():
        raise ConfigError(f"distill.batch: {settings.batch} does not split over {ddp.world_size()} processes")
    images = [im for im in ctx.train_images if min(im.shape[:2]) >= max(settings.sizes)]
    if not images:
        raise ConfigError(f"distill.patch: no training image is {max(settings.sizes)} pixels or larger")
    if settings.method == "direct":
        student, info = _direct(settings, ctx, images)
    else:
        student, info = _progressive(settings, ctx, images)
    return StageOutput(student.cpu().eval(), info=info)


def with_timesteps(model: RestorerModel, timesteps: list[int], provenance: dict) -> RestorerModel:
    """A copy of ``model`` whose default sampler is deterministic DDIM over exactly ``timesteps``."""
    cfg = model.config
    sampler = cfg.sampler.model_copy(update={"kind": "ddim", "eta": 0.0, "steps": len(timesteps),
                                             "timesteps": list(timesteps)})
    history = cfg.provenance.get("history", []) + [cfg.provenance]
    student = copy.deepcopy(model)
    student.config = cfg.model_copy(update={"sampler": sampler, "provenance": {**provenance,
                                                                               "history": history}})
    return student


def _key(s: DistillSettings, start: RestorerModel, images: list[np.ndarray]) -> str:
    """Names checkpoints by the settings, starting weights and training images that made them, so a work
    folder never resumes another run's (a student started from an earlier student, say)."""
    own = s.model_dump(mode="json", include=set(DistillSettings.model_fields))
    own["start"] = start.digest()
    own["data"] = _fingerprint(images)
    return hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()[:8]


def _fingerprint(images: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(str(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()[:8]


def _provenance(s: DistillSettings, ctx: StageContext, teacher_steps: int) -> dict:
    """Every setting that shaped the student, so a student trained elsewhere (say on a GPU) says how."""
    settings = s.model_dump(mode="json", exclude={"kind", "teacher_steps", "save_every"})
    return {"distilled_by": "edgeir.compress.distill", **settings, "teacher_steps": teacher_steps,
            "seed": ctx.seed}


def _rng(ctx: StageContext, *keys: int) -> np.random.Generator:
    return np.random.default_rng([ctx.seed, *keys])


# ---- direct ----------------------------------------------------------------------------------------------

def _direct(s: DistillSettings, ctx: StageContext, images: list[np.ndarray]) -> tuple[RestorerModel, dict]:
    teacher = ctx.teacher.to(ctx.device).eval()
    n_teacher = s.teacher_steps or len(teacher.steps())
    pairs = [_teacher_pairs(teacher, n_teacher, s, size, ctx, images) for size in s.sizes]
    ts = spaced_timesteps(teacher.config.schedule.num_train_timesteps, s.steps)
    student = with_timesteps(ctx.student, ts, _provenance(s, ctx, n_teacher))
    steps = student.steps()
    weight = student.config.task.loss_weight

    def loss(view: RestorerModel, it: int) -> torch.Tensor:
        idx = ddp.shard(torch.from_numpy(_rng(ctx, 1, it).integers(0, s.pairs, s.batch)))
        c, z, y = (a[idx].to(ctx.device) for a in pairs[it % len(pairs)])
        pred = view.sample(c, z, steps)
        if s.match == "image":
            with torch.no_grad():
                y = view.codec.decode(y)
            pred = view.codec.decode(pred)
        return _loss(pred, y, weight(c), s)

    state = ctx.work_dir / f"direct-{s.steps}-{_key(s, ctx.student, images)}.state"
    student = _fit(student, loss, s, ctx, state, f"distill direct -> {s.steps}")
    return student, {"method": "direct", "timesteps": ts, "teacher_steps": n_teacher, "pairs": s.pairs}


def _teacher_pairs(teacher: RestorerModel, n_steps: int, s: DistillSettings, size: int, ctx: StageContext,
                   images: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """(condition, initial noise, teacher's deterministic DDIM output), one per ``size`` px training crop;
    cached (named by everything that makes them) so students of several step counts, and later distill
    stages, share them. Under torchrun each process computes its share and all of them get the whole set."""
    name = (f"pairs-{n_steps}steps-{s.pairs}x{size}px-seed{ctx.seed}-{_fingerprint(images)}-"
            f"{teacher.digest()[:8]}.safetensors")
    path = (ctx.shared_dir or ctx.work_dir) / name
    if path.exists():
        d = load_file(str(path))
        return d["cond"], d["noise"], d["target"]
    n = -(-s.pairs // ddp.world_size()) * ddp.world_size()
    mine = ddp.shard(list(range(n)))
    steps = teacher.steps(n_steps, eta=0.0)
    chunk = max(1, s.batch)
    conds, noises, targets = [], [], []
    with _progress(ctx)(f"teacher outputs ({n_steps} steps)", len(mine)) as advance:
        for k in range(0, len(mine), chunk):
            c, z = [], []
            for i in mine[k : k + chunk]:
                rng = _rng(ctx, 0, i)  # crop i of every size is drawn around the same place
                c.append(make_pair(random_crop(images, size, rng), teacher.config, rng)[1])
                z.append(rng.standard_normal(teacher.sample_size(*c[-1].shape[:2]), dtype=np.float32))
            c_t = torch.from_numpy(np.stack(c)).permute(0, 3, 1, 2).to(ctx.device)
            z_t = torch.from_numpy(np.stack(z)).to(ctx.device)
            with torch.no_grad():
                targets.append(teacher.sample(c_t, z_t, steps).cpu())
            conds.append(c_t.cpu())
            noises.append(z_t.cpu())
            advance(len(c))
    pairs = {"cond": torch.cat(conds), "noise": torch.cat(noises), "target": torch.cat(targets)}
    pairs = {k: ddp.gather(v)[: s.pairs].contiguous() for k, v in pairs.items()}
    if ddp.is_main():
        with atomic_path(path) as tmp:
            save_file(pairs, str(tmp))
    return pairs["cond"], pairs["noise"], pairs["target"]


# ---- progressive -----------------------------------------------------------------------------------------

def _progressive(s: DistillSettings, ctx: StageContext, images: list[np.ndarray]) -> tuple[RestorerModel, dict]:
    model = ctx.student.to(ctx.device).eval()
    cfg = model.config
    n = s.teacher_steps or _default_start(len(model.steps()), s.steps)
    if cfg.sampler.timesteps is not None:
        if n != cfg.sampler.steps:
            raise ConfigError(f"distill.teacher_steps: the model already samples in exactly "
                              f"{cfg.sampler.steps} steps; progressive distillation must start from those")
        ts = list(cfg.sampler.timesteps)
    else:
        ts = spaced_timesteps(cfg.schedule.num_train_timesteps, n)
    rounds = []
    while len(ts) > s.steps:
        student_ts = ts[0::2]
        folder = ctx.work_dir / f"round-{len(student_ts)}-{_key(s, ctx.student, images)}"
        if folder.exists():
            student = load_restorer(folder, device=ctx.device)
        else:
            student = with_timesteps(model, student_ts, _provenance(s, ctx, len(ts)))
            student = _round(model, ts, student, s, ctx, images)
            if ddp.is_main():
                save_restorer(student, folder)
        rounds.append(f"{len(ts)}->{len(student_ts)}")
        model, ts = student.eval(), student_ts
    return model, {"method": "progressive", "timesteps": ts, "rounds": rounds}


def _default_start(own_steps: int, target: int) -> int:
    """The largest ``target * 2^k`` (k >= 1) not above the model's own step count."""
    n = target * 2
    while n * 2 <= own_steps:
        n *= 2
    return n


def _round(teacher: RestorerModel, teacher_ts: list[int], student: RestorerModel, s: DistillSettings,
           ctx: StageContext, images: list[np.ndarray]) -> RestorerModel:
    """One halving: student step i (teacher timestep 2i -> 2i+2) learns the x0 with which one DDIM step lands
    where two deterministic teacher steps land, from states on the sampler's path."""
    t_steps = teacher.steps(timesteps=teacher_ts, eta=0.0)
    s_steps = student.steps()
    temperature = student.config.sampler.temperature
    weight = student.config.task.loss_weight
    n_round = len(s_steps)

    def loss(view: RestorerModel, it: int) -> torch.Tensor:
        rng = _rng(ctx, 2, n_round, it)
        size = s.sizes[it % len(s.sizes)]
        pairs = [make_pair(random_crop(images, size, rng), student.config, rng) for _ in range(s.batch)]
        batch = (torch.from_numpy(np.stack(p)).permute(0, 3, 1, 2) for p in zip(*pairs))
        x0, cond = student.training_batch(*batch)
        eps = torch.from_numpy(rng.standard_normal(x0.shape, dtype=np.float32))
        x0, cond, eps = (ddp.shard(a).to(ctx.device) for a in (x0, cond, eps))
        i = int(rng.integers(n_round))
        st = s_steps[i]
        # The sampler starts from temperature-scaled noise, so the states it visits carry that much noise.
        x_t = noised(x0, temperature * eps, st.sqrt_ab, st.sqrt_1mab)
        with torch.no_grad():
            x = x_t
            for step in t_steps[2 * i : 2 * i + 2]:
                x = apply_step(step, x, teacher.x0(x, step, cond), None)
            goal = (x - st.c_x * x_t) / st.c_x0
        return _loss(view.x0(x_t, st, cond), goal, weight(cond), s)

    state = ctx.work_dir / f"round-{n_round}-{_key(s, ctx.student, images)}.state"
    return _fit(student, loss, s, ctx, state, f"distill {len(teacher_ts)} -> {n_round}")


def fine_band(x: torch.Tensor) -> torch.Tensor:
    """The finest spatial band: ``x`` minus its 3x3 box blur."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def band_rms(x: torch.Tensor, window: int = 8) -> torch.Tensor:
    """Local strength of the finest band: its RMS over ``window`` x ``window`` tiles (blind to phase)."""
    return (F.avg_pool2d(fine_band(x) ** 2, window) + 1e-8).sqrt()


def _loss(pred: torch.Tensor, goal: torch.Tensor, weight, s: DistillSettings) -> torch.Tensor:
    per_crop = (weight * (pred - goal) ** 2).flatten(1).mean(1)
    loss = per_crop.mean() if s.loss == "mse" else (per_crop + 1e-10).log().mean()
    if s.detail_weight:
        w = weight if isinstance(weight, float) else F.avg_pool2d(weight.expand_as(pred), 8)
        loss = loss + s.detail_weight * (w * (band_rms(pred) - band_rms(goal)) ** 2).mean()
    return loss


# ---- the training both methods share --------------------------------------------------------------------

def _fit(student: RestorerModel, loss: Callable[[RestorerModel, int], torch.Tensor], s: DistillSettings,
         ctx: StageContext, state_path: Path, label: str) -> RestorerModel:
    """``edgeir.train.loop.fit``; ``loss(view, iteration)`` runs the student through ``view`` (the same
    weights, wrapped for DDP). Returns the weights' moving average."""
    model = student.to(ctx.device).train()
    view = RestorerModel(model.config, net=ddp.wrap(model.denoiser.net), codec=model.codec)
    schedule = Schedule(s.iterations, s.lr, warmup=max(1, min(100, s.iterations // 10)), ema=s.ema,
                        save_every=s.save_every)
    return fit(model, lambda it: loss(view, it), schedule, state_path, _progress(ctx), label).ema


def _progress(ctx: StageContext) -> Callable:
    """The pipeline's progress bars on the main process; none elsewhere."""
    return ctx.progress if ctx.progress and ddp.is_main() else no_progress
