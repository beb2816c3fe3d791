"""The checkpoint format: a folder with ``config.json`` (a ``RestorerConfig``) and ``model.safetensors``; a
latent restorer adds ``autoencoder.safetensors`` (diffusers' own keys) and, where a distilled decoder replaces
the autoencoder's, ``decoder.safetensors``. ``save_restorer``/``load_restorer`` round-trip exactly; a
diffusers pipeline folder (``edgeir.load.pipeline``) loads too. Pickles (``.pt``/``.pth``) are refused unless the user
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
from edgeir.load.pipeline import is_pipeline, pipeline_config, weights_file
from edgeir.load.zoo import TEACHERS, resolve
from edgeir.models.codec import LatentCodec, build_codec
from edgeir.models.config import OnnxNetSpec, RestorerConfig
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel, build_network

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
AUTOENCODER = "autoencoder.safetensors"
DECODER = "decoder.safetensors"
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
            _save_weights(net, tmp / WEIGHTS)
        if restorer.codec is not None:
            config = config.model_copy(update={"autoencoder": _save_codec(restorer.codec, tmp)})
        (tmp / CONFIG).write_text(config.model_dump_json(indent=2) + "\n")
    return folder


def _save_weights(module: nn.Module, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(path))


def _save_codec(codec: LatentCodec, folder: Path):
    """The codec's weights (and ONNX parts) into ``folder``; returns its spec naming those graphs."""
    _save_weights(codec.autoencoder, folder / AUTOENCODER)
    graphs = {}
    for part in ("encoder", "decoder"):
        module = getattr(codec, part)
        if isinstance(module, OnnxNet):
            shutil.copy2(module.path, folder / module.path.name)
            graphs[part] = module.path.name
    if codec.spec.decoder is not None and "decoder" not in graphs:
        _save_weights(codec.decoder, folder / DECODER)
    return codec.spec.model_copy(update={"graphs": graphs})


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
    return _built(folder, "the network", device, lambda: build_network(config))


def _built(folder: Path, what: str, device: str, build):
    try:
        with torch.device(device):
            return build()
    except Exception as e:  # noqa: BLE001 - diffusers' or a factory's code fails on a bad config in any way
        raise CheckpointError(f"{folder}: cannot build {what} ({type(e).__name__}: {brief(e)})") from None


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
    """A model folder, a diffusers pipeline folder, a shipped teacher's name, or one weights file inside a model
    folder (which is then loaded instead of the folder's default weights)."""
    path = resolve(name_or_path)
    named = path if path.is_file() and path.suffix in (".safetensors", *PICKLES) else None
    folder = named.parent if named else path
    if not folder.is_dir():
        known = ", ".join(TEACHERS)
        raise CheckpointError(f"{name_or_path}: no such model folder (shipped teachers: {known})")
    if is_pipeline(folder) and named is None:
        config, ae_name = pipeline_config(folder)
        weights = {"net": weights_file(folder, "unet", trust_pickle),
                   "autoencoder": weights_file(folder, ae_name, trust_pickle)}
    else:
        config = read_config(folder)
        weights = {"net": named} if named else {}
        if config.autoencoder is not None:
            weights["autoencoder"] = folder / AUTOENCODER
            if config.autoencoder.decoder is not None and "decoder" not in config.autoencoder.graphs:
                weights["decoder"] = folder / DECODER
    net = _load_network(folder, config, weights.get("net"), trust_pickle)
    codec = _load_codec(folder, config, weights) if config.autoencoder is not None else None
    return RestorerModel(config, net=net, codec=codec).to(device).eval()


def _load_network(folder: Path, config: RestorerConfig, weights: Path | None, trust_pickle: bool) -> nn.Module:
    if isinstance(config.network, OnnxNetSpec):
        graph = folder / config.network.graph
        if not graph.is_file():
            raise CheckpointError(f"{folder}: no {config.network.graph}")
        return OnnxNet(graph)
    weights = weights or _weights_file(folder)
    if weights.suffix in PICKLES and not trust_pickle:
        raise CheckpointError(f"{weights}: refusing to unpickle; convert it to safetensors, or pass "
                              "--trust-pickle if you made this file yourself")
    size = sum(p.numel() for p in _network(folder, config, "meta").parameters())
    if config.autoencoder is not None:
        size += sum(p.numel() for p in _built(folder, "the autoencoder", "meta",
                                              lambda: build_codec(config.autoencoder.model_copy(
                                                  update={"graphs": {}}))).parameters())
    if size > MAX_PARAMS:
        raise CheckpointError(f"{folder}: the config describes a network of {size:,} parameters, over the "
                              f"{MAX_PARAMS:,} limit")
    net = _network(folder, config, "cpu")
    _load_state(net, weights, folder, "weights do not match the config")
    return net


def _load_codec(folder: Path, config: RestorerConfig, weights: dict[str, Path]) -> LatentCodec:
    spec = config.autoencoder
    assert spec is not None
    for part, graph in spec.graphs.items():
        if not (folder / graph).is_file():
            raise CheckpointError(f"{folder}: no {graph} (its {part})")
    codec = _built(folder, "the autoencoder", "cpu", lambda: build_codec(spec, folder))
    _load_state(codec.autoencoder, weights["autoencoder"], folder, f"{AUTOENCODER} does not match the autoencoder's config")
    if "decoder" in weights:
        _load_state(codec.decoder, weights["decoder"], folder, f"{DECODER} does not match the decoder's config")
    return codec


def _load_state(module: nn.Module, path: Path, folder: Path, what: str) -> None:
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {path.name}")
    try:
        module.load_state_dict(_read_weights(path), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: {what} ({brief(e)})") from None
