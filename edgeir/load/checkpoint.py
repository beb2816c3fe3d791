"""The checkpoint format: a folder with ``config.json`` (a ``RestorerConfig``) and ``model.safetensors``.
``save_restorer``/``load_restorer`` round-trip exactly. Pickles (``.pt``/``.pth``) are refused unless the user
explicitly trusts them, and even then only loaded with ``weights_only=True``. A config is untrusted input too:
the network it describes is sized on the meta device before anything is allocated."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from edgeir.configfile import read_json
from edgeir.errors import CheckpointError, brief, validation_message
from edgeir.files import atomic_dir
from edgeir.load.zoo import TEACHERS, resolve
from edgeir.models.config import OnnxNetSpec, RestorerConfig
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel, build_network

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SAFETENSORS = (WEIGHTS, "diffusion_pytorch_model.safetensors")
PICKLES = (".pt", ".pth", ".bin", ".ckpt")
# Four GB of float32 weights: far beyond any restorer edgeir is for, and refused before it is allocated.
MAX_PARAMS = 1_000_000_000


def save_restorer(restorer: RestorerModel, folder: str | Path) -> Path:
    """Write atomically: into a temporary sibling folder, then renamed into place."""
    folder = Path(folder)
    config = restorer.config
    net = restorer.denoiser.net
    if not isinstance(net, OnnxNet):
        _check_described(folder, net, config)
    with atomic_dir(folder) as tmp:
        if isinstance(net, OnnxNet):  # the graph is the weights
            shutil.copy2(net.path, tmp / net.path.name)
            config = config.model_copy(update={"network": OnnxNetSpec(graph=net.path.name,
                                                                      source=config.torch_network)})
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(config.model_dump_json(indent=2) + "\n")
    return folder


def _check_described(folder: Path, net: nn.Module, config: RestorerConfig) -> None:
    """Refuse a network its config does not rebuild (say, a ``CallAdapter`` under a default config): saved, it
    would not load, and its ``multiple_of``, parameters and MACs would be another network's."""
    expected = _network(folder, config, "meta")
    have, want = _shapes(net), _shapes(expected)
    if have == want:
        return
    spec = config.torch_network.type
    if type(net) is not type(expected):
        raise CheckpointError(
            f"{folder}: not saved: its network is a {type(net).__name__}, which its config's network ({spec}) "
            "does not rebuild; describe it with an ExternalNetSpec naming a @network_factory function that "
            "builds it (see edgeir.models.external)")
    key = next(k for k in sorted(have.keys() | want.keys()) if have.get(k) != want.get(k))
    raise CheckpointError(f"{folder}: not saved: the network's {key} is {have.get(key, 'missing')} but the "
                          f"config's network ({spec}) has {want.get(key, 'none')}")


def _shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _network(folder: Path, config: RestorerConfig, device: str) -> nn.Module:
    """``config``'s network, freshly initialised; on the meta device it costs no memory."""
    try:
        with torch.device(device):
            return build_network(config)
    except Exception as e:  # noqa: BLE001 - diffusers' or a factory's code fails on a bad config in any way
        raise CheckpointError(f"{folder}: cannot build the network ({type(e).__name__}: {brief(e)})") from None


def read_config(folder: Path) -> RestorerConfig:
    path = folder / CONFIG
    if not path.exists():
        raise CheckpointError(f"{folder}: no {CONFIG} (not an edgeir model folder)")
    raw = read_json(path, "model config", CheckpointError)
    if isinstance(raw, dict) and raw.get("_class_name") == "UNet2DModel":
        from edgeir.load.diffusers import diffusers_config

        return diffusers_config(folder, raw)
    try:
        return RestorerConfig.model_validate(raw)
    except ValidationError as e:
        raise CheckpointError(f"{path}: invalid config: {validation_message(e)}") from None


def _weights_file(folder: Path) -> Path:
    for name in SAFETENSORS:
        if (folder / name).exists():
            return folder / name
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLES)
    if not pickles:
        raise CheckpointError(f"{folder}: no {WEIGHTS}")
    if len(pickles) > 1:  # which one is meant is the user's to say, not ours to guess
        raise CheckpointError(f"{folder}: no {WEIGHTS} but {len(pickles)} pickles ({', '.join(pickles)}); "
                              f"name the one to load, e.g. {folder / pickles[0]}")
    return folder / pickles[0]


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix not in PICKLES:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupt weights ({brief(e)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the user's file, reported in one line
        raise CheckpointError(f"{path}: cannot load ({_unpickling_problem(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict")
    return state


def _unpickling_problem(e: Exception) -> str:
    """torch's weights-only refusal begins with how to bypass it, which is not advice to pass on: its cause
    is the unpickler's own error, further down."""
    cause = str(e).partition("WeightsUnpickler error:")[2]
    if cause:
        return brief(cause.split(". ")[0]) + "; a trusted pickle may hold tensors only"
    return f"{type(e).__name__}: {brief(e)}"


def load_restorer(name_or_path: str | Path, trust_pickle: bool = False, device: str = "cpu") -> RestorerModel:
    """A model folder, a shipped teacher's name, or one weights file inside a model folder (which is then
    loaded instead of the folder's default weights)."""
    path = resolve(name_or_path)
    named = path if path.is_file() and path.suffix in (".safetensors", *PICKLES) else None
    folder = named.parent if named else path
    if not folder.is_dir():
        known = ", ".join(TEACHERS)
        raise CheckpointError(f"{name_or_path}: no such model folder (shipped teachers: {known})")
    config = read_config(folder)
    if isinstance(config.network, OnnxNetSpec):
        graph = folder / config.network.graph
        if not graph.is_file():
            raise CheckpointError(f"{folder}: no {config.network.graph}")
        return RestorerModel(config, net=OnnxNet(graph)).to(device).eval()
    weights = named or _weights_file(folder)
    if weights.suffix in PICKLES and not trust_pickle:
        raise CheckpointError(f"{weights}: refusing to unpickle; convert it to safetensors, or pass "
                              "--trust-pickle if you made this file yourself")
    size = sum(p.numel() for p in _network(folder, config, "meta").parameters())
    if size > MAX_PARAMS:
        raise CheckpointError(f"{folder}: the config describes a network of {size:,} parameters, over the "
                              f"{MAX_PARAMS:,} limit")
    restorer = RestorerModel(config, net=_network(folder, config, "cpu"))
    state = _read_weights(weights)
    try:
        restorer.denoiser.net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: weights do not match the config ({brief(e)})") from None
    return restorer.to(device).eval()
