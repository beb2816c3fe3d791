"""The checkpoint format: a folder with ``config.json`` (a ``RestorerConfig``) and ``model.safetensors``.
``save_restorer``/``load_restorer`` round-trip exactly. Pickles (``.pt``/``.pth``) are refused unless the user
explicitly trusts them, and even then only loaded with ``weights_only=True``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgeir.errors import CheckpointError, validation_message
from edgeir.files import atomic_dir
from edgeir.load.zoo import TEACHERS, resolve
from edgeir.models.config import OnnxNetSpec, RestorerConfig
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PICKLES = (".pt", ".pth", ".bin", ".ckpt")


def save_restorer(restorer: RestorerModel, folder: str | Path) -> Path:
    """Write atomically: into a temporary sibling folder, then renamed into place."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        config = restorer.config
        net = restorer.denoiser.net
        if isinstance(net, OnnxNet):  # the graph is the weights
            shutil.copy2(net.path, tmp / net.path.name)
            config = config.model_copy(update={"network": OnnxNetSpec(graph=net.path.name,
                                                                      source=config.torch_network)})
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(config.model_dump_json(indent=2) + "\n")
    return folder


def read_config(folder: Path) -> RestorerConfig:
    path = folder / CONFIG
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG} (not an edgeir model folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt JSON ({e})") from None
    if isinstance(raw, dict) and raw.get("_class_name") == "UNet2DModel":
        from edgeir.load.diffusers import diffusers_config

        return diffusers_config(folder, raw)
    try:
        return RestorerConfig.model_validate(raw)
    except ValidationError as e:
        raise CheckpointError(f"{path}: invalid config: {validation_message(e)}") from None


def _read_weights(folder: Path, config: RestorerConfig, trust_pickle: bool) -> dict[str, torch.Tensor]:
    for name in (WEIGHTS, "diffusion_pytorch_model.safetensors"):
        if (folder / name).exists():
            try:
                return load_file(str(folder / name))
            except (SafetensorError, OSError, ValueError) as e:
                raise CheckpointError(f"{folder / name}: corrupt weights ({str(e)[:100]})") from None
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLES)
    if not pickles:
        raise CheckpointError(f"{folder}: no {WEIGHTS}")
    if not trust_pickle:
        raise CheckpointError(f"{pickles[0]}: refusing to unpickle; convert it to safetensors, or pass "
                              "--trust-pickle if you made this file yourself")
    try:
        state = torch.load(pickles[0], map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the user's file, reported in one line
        raise CheckpointError(f"{pickles[0]}: cannot load ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{pickles[0]}: expected a state dict")
    return state


def load_restorer(name_or_path: str | Path, trust_pickle: bool = False, device: str = "cpu") -> RestorerModel:
    folder = resolve(name_or_path)
    if folder.is_file() and folder.suffix in PICKLES:
        if not trust_pickle:
            raise CheckpointError(f"{folder}: refusing to unpickle; convert it to safetensors, or pass "
                                  "--trust-pickle if you made this file yourself")
        folder = folder.parent
    if not folder.is_dir():
        known = ", ".join(TEACHERS)
        raise CheckpointError(f"{name_or_path}: no such model folder (shipped teachers: {known})")
    config = read_config(folder)
    if isinstance(config.network, OnnxNetSpec):
        graph = folder / config.network.graph
        if not graph.is_file():
            raise CheckpointError(f"{folder}: no {config.network.graph}")
        return RestorerModel(config, net=OnnxNet(graph)).to(device).eval()
    try:
        restorer = RestorerModel(config)
    except (ValueError, TypeError, ImportError) as e:
        raise CheckpointError(f"{folder}: cannot build the network: {e}") from None
    state = _read_weights(folder, config, trust_pickle)
    try:
        restorer.denoiser.net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:160]
        raise CheckpointError(f"{folder}: weights do not match the config ({msg})") from None
    return restorer.to(device).eval()
