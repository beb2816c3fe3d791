"""edgeir's torch sampler against diffusers' own, on latent restorers, in one table.

For each restorer (the tests' tiny random pipelines, ``tests/pipelines.py``, saved as ``save_pretrained``
writes them and loaded by ``edgeir.load``) and each scheduler, both sides start from the same initial latents
and draw each stochastic step's noise from the same generator; the table gives the max abs difference of the
decoded images (pixels in [0, 1], FP32; the goal is 1e-4) over several step counts and frame sizes, and for a VQ
autoencoder how many latent pixels its codebook lookup puts on another code than diffusers' samples do (one
flipped code moves its pixels by up to the distance between two codes' decodings: a tie broken by float rounding,
not a difference in the maths), with the two samples' max abs difference relative to their largest value:

* LDM-SR: diffusers' ``LDMSuperResolutionPipeline`` (VQ-f4, UNet on the low-resolution image, eps);
* KL: an ``AutoencoderKL`` (f2, scaling and shift factors) around a UNet on the latent of the blurred image,
  v-prediction, trailing spacing, sampled with diffusers' components (encoder mode, UNet, scheduler ``step``,
  decoder), as no diffusers pipeline class describes it.

    .venv/bin/python tools/bench_latent_parity.py [--steps 4,25,50] [--sizes 16x24,40x56]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
from pathlib import Path

import diffusers
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pipelines

from edgeir.load import load_restorer
from edgeir.tasks import Degraded

GOAL = 1e-4


def ldm_diff(folder: Path, steps: int, h: int, w: int, seed: int) -> tuple[float, tuple[int, float]]:
    """The decoded images' max abs difference; how many latent pixels the VQ lookup of the two samples puts on
    different codes, and the samples' max abs difference relative to their largest value."""
    pipe, r = pipelines.ldm_pipeline(folder), load_restorer(folder)
    lr = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    # The pipeline passes no generator to the scheduler: DDPM's step noise comes from torch's global one.
    torch.manual_seed(seed)
    expected = pipe(image=lr, num_inference_steps=steps, eta=0.0, generator=torch.Generator().manual_seed(seed),
                    output_type="pt").images
    noise = torch.randn((1, *r.sample_size(h, w)), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.manual_seed(seed)
        latents = r.sample(lr, noise, r.steps(steps))
        ours = r.to_image(latents, lr)
        torch.manual_seed(seed)
        theirs = _pipeline_latents(pipe, lr, noise, steps)
        flips = int((pipe.vqvae.quantize(latents)[2][2] != pipe.vqvae.quantize(theirs)[2][2]).sum())
        apart = float((latents - theirs).abs().max() / theirs.abs().max())
    return float((ours - expected).abs().max()), (flips, apart)


def _pipeline_latents(pipe, lr: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """The latents the pipeline decodes (it returns only the decoded image): its own loop, step for step."""
    pipe.scheduler.set_timesteps(steps)
    x = noise * pipe.scheduler.init_noise_sigma
    eta = {"eta": 0.0} if "eta" in inspect.signature(pipe.scheduler.step).parameters else {}
    for t in pipe.scheduler.timesteps:
        x = pipe.scheduler.step(pipe.unet(torch.cat([x, lr], 1), t).sample, t, x, **eta).prev_sample
    return x


def kl_diff(folder: Path, steps: int, h: int, w: int, seed: int) -> tuple[float, None]:
    r = load_restorer(folder)
    d = Degraded(np.random.default_rng(seed).random((h, w, 3), dtype=np.float32))
    cond = torch.from_numpy(r.condition(d)).permute(2, 0, 1)[None]
    noise = torch.randn((1, *r.sample_size(h, w)), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ours = r.restore_tensor(cond, noise, r.steps(steps), generator=torch.Generator().manual_seed(seed + 1))
    eta = 1.0 if r.config.sampler.kind == "ddpm" else 0.0
    expected = pipelines.reference_loop(folder, cond, noise, steps, eta,
                                        generator=torch.Generator().manual_seed(seed + 1))
    return float((ours - expected).abs().max()), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="4,25,50", help="comma-separated sampler step counts")
    ap.add_argument("--sizes", default="16x24,40x56", help="low-resolution / blurred frame sizes, HxW")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    steps = [int(s) for s in args.steps.split(",")]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    cases = [("LDM-SR", "ddim", pipelines.ldm_sr, ldm_diff), ("LDM-SR", "ddpm", pipelines.ldm_sr, ldm_diff),
             ("KL (v, trailing)", "ddim", pipelines.kl_restorer, kl_diff),
             ("KL (v, trailing)", "ddpm", pipelines.kl_restorer, kl_diff)]
    table = Table(title="edgeir's sampler vs diffusers': max abs difference of the decoded image (FP32, [0, 1])")
    for col in ("restorer", "scheduler", *(f"{n} steps" for n in steps), "goal"):
        table.add_column(col, justify="left" if col in ("restorer", "scheduler") else "right")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, scheduler, build, diff in cases:
            folder = build(Path(tmp) / f"{name[:2]}-{scheduler}", seed=args.seed, scheduler=scheduler)
            cells = []
            for n in steps:
                results = [diff(folder, n, h, w, args.seed) for h, w in sizes]
                d = max(r[0] for r in results)
                worst = max(worst, d)
                vq = "" if results[0][1] is None else (f" ({sum(r[1][0] for r in results)} codes; latents "
                                                       f"{max(r[1][1] for r in results):.0e})")
                cells.append(f"{d:.1e}{vq}")
            table.add_row(name, scheduler.upper(), *cells, f"{GOAL:.0e}")
    console = Console(width=None if sys.stdout.isatty() else 130)
    console.print(table)
    console.print(f"frame sizes {', '.join(f'{h}x{w}' for h, w in sizes)}; worst {worst:.1e}: goal "
                  f"{'met' if worst <= GOAL else 'NOT met'}", highlight=False)


if __name__ == "__main__":
    main()
