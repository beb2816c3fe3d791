"""A denoiser network that is an ONNX graph run by onnxruntime, so an exported (e.g. INT8) graph plugs into
the torch ``Restorer`` and is sampled, restored and evaluated exactly like any other network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edgeir.errors import BackendError
from edgeir.export.unet import INPUTS
from edgeir.models.config import RestorerConfig
from edgeir.models.restorer import Restorer
from edgeir.runtime.cpu_int8 import uint8_activations


def cpu_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session for a (possibly Q/DQ) graph, its activations re-encoded for x86 kernels."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        model = uint8_activations(onnx.load(str(path)))
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise their own untyped errors
        raise BackendError(f"{path}: onnxruntime cannot load it ({str(e)[:120]})") from None


class OnnxNet(nn.Module):
    """``forward(x_t, t, cond) -> prediction`` through an onnxruntime CPU session."""

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.session = cpu_session(path, threads)
        # Restorer finds its device from its parameters; an empty one keeps that working.
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feed = {name: v.detach().cpu().numpy().astype(np.float32) for name, v in zip(INPUTS, (x_t, t, cond))}
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out).to(x_t.device)


def onnx_restorer(config: RestorerConfig, path: str | Path, threads: int | None = None) -> Restorer:
    """A restorer with ``config``'s schedule, task and sampler whose denoiser is the ONNX graph at ``path``."""
    return Restorer(config, net=OnnxNet(path, threads)).eval()
