"""What compression is judged on besides quality: latency, timed together (``edgeir.timing``) for the models
a table compares, every network run by the same engine: onnxruntime on the CPU, which runs an INT8 stage's
graph anyway. Timing torch FP32 stages against an onnxruntime INT8 one compared two engines, not two models
(an INT8 stage looked 3x faster in the table and was slower than FP32 in the runtime). Whole restorations for
the stage table; one UNet evaluation for pruning, whose MACs do not predict latency (``edgeir.compress.cost``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from edgeir.export.codec import codec_parts, export_part
from edgeir.export.unet import export_unet
from edgeir.graphs.ort import open_session
from edgeir.models.codec import LatentCodec
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel
from edgeir.progress import no_progress
from edgeir.tasks.base import Degraded
from edgeir.timing import median_ms

RUNS = 5
# Fixed rather than one per core, so tables from different machines count the same threads; two is what a
# small edge CPU can spare and what a 2-core CI machine gives without contention.
THREADS = 2


def backend(threads: int = THREADS) -> str:
    """How latencies are measured, for the report and the table's column header."""
    return f"onnxruntime CPU, {threads} thread{'s' if threads > 1 else ''}"


def _graph(model: RestorerModel, path: Path) -> Path:
    """``model``'s network as an ONNX graph: its own if it is one already (an INT8 stage), else exported."""
    net = model.denoiser.net
    return net.path if isinstance(net, OnnxNet) else export_unet(model, path)


def _codec(model: RestorerModel, folder: Path, threads: int) -> LatentCodec | None:
    """``model``'s codec with every part a restoration runs (its encoder where the UNet takes a latent, its
    decoder) as an onnxruntime graph: its own if it is one already (an INT8 part), else exported."""
    if model.codec is None:
        return None
    ort = {}
    folder.mkdir(exist_ok=True)
    for name, (module, io, shapes) in codec_parts(model).items():
        path = module.path if isinstance(module, OnnxNet) else export_part(module, io, shapes[0],
                                                                          folder / f"{name}.onnx")
        ort[name] = OnnxNet(path, threads=threads, inputs=io[:1])
    codec = model.codec
    return LatentCodec(codec.spec, codec.autoencoder, ort.get("encoder", codec.encoder), ort["decoder"])


def restore_latency_ms(models: Sequence[RestorerModel], degraded: Degraded, runs: int = RUNS,
                       seed: int = 0) -> list[float]:
    """Median milliseconds of one whole restoration of ``degraded`` per model, as the models run."""
    return median_ms([lambda m=m: m.restore(degraded, seed=seed) for m in models], runs)


def onnxruntime_restore_latency_ms(models: Sequence[RestorerModel], degraded: Degraded, runs: int = RUNS,
                                   seed: int = 0, threads: int = THREADS) -> list[float]:
    """``restore_latency_ms`` with every model's network in onnxruntime on ``threads`` CPU threads, and the
    sampler's own arithmetic on as many torch threads."""
    previous = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        on_ort = [RestorerModel(m.config, net=OnnxNet(_graph(m, Path(tmp) / f"{i}.onnx"), threads=threads),
                                codec=_codec(m, Path(tmp) / f"codec{i}", threads)).eval()
                  for i, m in enumerate(models)]
        torch.set_num_threads(threads)
        try:
            return restore_latency_ms(on_ort, degraded, runs, seed)
        finally:
            torch.set_num_threads(previous)


def _unet_feed(model: RestorerModel, height: int, width: int, generator: torch.Generator) -> dict[str, np.ndarray]:
    """One UNet evaluation's inputs at output size ``height`` x ``width``, mid-schedule."""
    x_t, _, cond = model.network_inputs(height, width, generator=generator)
    return {"x_t": x_t.cpu().numpy(), "t": np.array([500.0], np.float32), "condition": cond.cpu().numpy()}


def unet_latency_ms(models: Mapping[str, RestorerModel], size: tuple[int, int] = (256, 256), runs: int = 20,
                    threads: int = THREADS, progress: Callable = no_progress) -> dict[str, float]:
    """Median ms of one UNet evaluation in onnxruntime at output ``size`` (height, width) per model, after 3
    warm-up rounds."""
    generator = torch.Generator().manual_seed(0)
    h, w = size
    calls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(models.values()):
            session = open_session(_graph(m, Path(tmp) / f"{i}.onnx"), threads=threads)
            feed = _unet_feed(m, h, w, generator)
            calls.append(lambda s=session, f=feed: s.run(None, f))
        with progress("onnxruntime latency", runs + 3) as advance:
            return dict(zip(models, median_ms(calls, runs, warmup=3, advance=advance)))


def restore_parts_ms(models: Mapping[str, RestorerModel], size: tuple[int, int], runs: int = 20,
                     threads: int = THREADS, progress: Callable = no_progress) -> dict[str, dict[str, float]]:
    """Per latent restorer, the median ms in onnxruntime of each graph one restoration at output ``size``
    (height, width) runs: ``encoder`` (where its UNet takes a latent), ``unet`` (one evaluation) and
    ``decoder``; ``restore``, their sum over its sampler's steps, and the decoder's ``decoder_share`` of it."""
    h, w = size
    generator = torch.Generator().manual_seed(0)
    calls, names = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, m) in enumerate(models.items()):
            unet = open_session(_graph(m, Path(tmp) / f"{i}.onnx"), threads=threads)
            feeds = {"unet": (unet, _unet_feed(m, h, w, generator))}
            codec = _codec(m, Path(tmp) / f"codec{i}", threads)
            image = torch.rand(1, 3, h, w, generator=generator) * 2 - 1
            inputs = {"encoder": image, "decoder": torch.from_numpy(feeds["unet"][1]["x_t"])}
            for part in ("encoder", "decoder") if m.config.latent.condition == "latent" else ("decoder",):
                net = getattr(codec, part)
                feeds[part] = (net.session, {net.inputs[0]: inputs[part].cpu().numpy()})
            for part, (session, feed) in feeds.items():
                calls.append(lambda s=session, f=feed: s.run(None, f))
                names.append((name, part))
        with progress("onnxruntime latency", runs + 3) as advance:
            ms = median_ms(calls, runs, warmup=3, advance=advance)
    out: dict[str, dict[str, float]] = {name: {} for name in models}
    for (name, part), t in zip(names, ms):
        out[name][part] = t
    for name, parts in out.items():
        steps = len(models[name].steps())
        parts["restore"] = parts.get("encoder", 0.0) + steps * parts["unet"] + parts["decoder"]
        parts["decoder_share"] = parts["decoder"] / parts["restore"]
    return out
