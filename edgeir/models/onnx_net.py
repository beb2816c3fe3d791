"""A network that is an ONNX graph run by onnxruntime, so an exported (e.g. INT8) graph plugs into the torch
``RestorerModel`` -- as its denoiser, or as a latent restorer's encoder or decoder -- and is sampled, restored
and evaluated exactly like any other network, with the arithmetic the CPU runtime will use
(``edgeir.graphs.ort``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeir.graphs.ort import open_session

INPUTS = ("x_t", "t", "condition")  # the UNet graph's inputs (edgeir.export.unet)


class OnnxNet(nn.Module):
    """``forward(*tensors) -> output`` through an onnxruntime CPU session, the tensors fed to the graph's
    ``inputs`` in order: by default a UNet graph's ``(x_t, t, cond) -> prediction``."""

    def __init__(self, path: str | Path, threads: int | None = None, int8_encoding: str | None = None,
                 inputs: tuple[str, ...] = INPUTS):
        super().__init__()
        self.path = Path(path)
        self.inputs = inputs
        self.session = open_session(self.path, threads=threads, int8_encoding=int8_encoding)
        # RestorerModel finds its device from its parameters; an empty one keeps that working.
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        feed = {name: v.detach().cpu().numpy().astype(np.float32) for name, v in zip(self.inputs, tensors,
                                                                                       strict=True)}
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out).to(tensors[0].device)
