"""The UNet alone as an ONNX graph: inputs ``x_t`` (B,S,H,W), ``t`` (B,) float, ``condition`` (B,C,H,W);
output ``prediction``. ``S`` and ``C`` are the sample's and the network's own condition's channels (3 and the
task's, or a latent restorer's), and ``H``, ``W`` the sample's sides (a latent restorer's are latent-sized).
Batch, height and width are dynamic (height and width must be multiples of ``unet_multiple``); a latent UNet's
sides are named ``latent_height`` and ``latent_width``, so one optimisation profile (in output pixels, with the
latent's sides a factor smaller) bounds every graph of the restorer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from edgeir.diffusion.steps import Step
from edgeir.models.config import RestorerConfig
from edgeir.models.restorer import RestorerModel

INPUTS = ("x_t", "t", "condition")
OUTPUT = "prediction"
PIXEL_SIDES, LATENT_SIDES = ("height", "width"), ("latent_height", "latent_width")


def export_unet(restorer: RestorerModel, path: str | Path, opset: int = 17, size: tuple[int, int] | None = None
                ) -> Path:
    """Export with the TorchScript-based exporter: it keeps batch/height/width dynamic from a batch-2 example
    (the dynamo exporter specialises batch-1 examples) and is the path NNCF's Q/DQ export uses too."""
    path = Path(path)
    cfg = restorer.config
    m = unet_multiple(cfg)
    h, w = size or (2 * m, 3 * m)
    net = restorer.denoiser.eval()
    p = next(net.parameters())
    args = (torch.randn(2, cfg.sample_channels, h, w, device=p.device),
            torch.tensor([500.0, 20.0], device=p.device),
            torch.randn(2, cfg.unet_cond_channels, h, w, device=p.device))
    sides = {n: LATENT_SIDES for n in (*INPUTS, OUTPUT)} if cfg.latent else None
    return onnx_export(net, args, path, INPUTS, OUTPUT, opset, sides)


def unet_multiple(config: RestorerConfig) -> int:
    """What the UNet's own input sides must be multiples of: ``multiple_of`` counts output pixels, and a latent
    restorer's UNet sees the latent, ``factor`` times smaller."""
    return config.multiple_of // (config.latent.factor if config.latent else 1)


def onnx_export(module: torch.nn.Module, args: tuple, path: str | Path, inputs: tuple[str, ...], output: str,
                opset: int, sides: dict[str, tuple[str, str]] | None = None) -> Path:
    """The TorchScript-based exporter with dynamic batch (and sides for 4-D tensors, named ``height`` and
    ``width`` unless ``sides`` names them): it keeps them dynamic from a batch-2 example, where the dynamo
    exporter specialises batch-1 examples."""
    def dims(name: str) -> dict[int, str]:
        h, w = (sides or {}).get(name, PIXEL_SIDES)
        return {0: "batch", 2: h, 3: w}

    dyn = {name: (dims(name) if a.dim() == 4 else {0: "batch"}) for name, a in zip(inputs, args)}
    dyn[output] = dims(output)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=list(inputs), output_names=[output],
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
    return Path(path)


def unet_feeds(restorer: RestorerModel, condition: np.ndarray, rng: np.random.Generator,
               steps: list[Step] | None = None) -> dict[str, np.ndarray]:
    """Graph inputs for a (B, C, H, W) condition, the network's own (``unet_condition``'s): a start-of-sampling
    x_t and, per batch element, one of the timesteps the sampler visits."""
    ts = [s.t for s in (steps if steps is not None else restorer.steps())]
    b, _, h, w = condition.shape
    x_t = rng.standard_normal((b, restorer.config.sample_channels, h, w)) * restorer.config.sampler.temperature
    return {"x_t": x_t.astype(np.float32), "t": rng.choice(ts, b).astype(np.float32), "condition": condition}


@torch.no_grad()
def unet_reference(restorer: RestorerModel, feeds: dict[str, np.ndarray]) -> np.ndarray:
    p = next(restorer.parameters())
    return restorer.denoiser(*[torch.from_numpy(feeds[n]).to(p.device) for n in INPUTS]).cpu().numpy()
