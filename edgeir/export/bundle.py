"""Model -> bundle: a model (teacher or compressed student) -> a checked bundle of deployable graphs.

What a bundle carries (``--graph``): ``restore`` (the default) is what the runtime runs, a restore graph with
uint8 pixels and one with float32 pixels (for 16-bit images), composed around the model's UNet graph, which
the bundle carries too; ``unet`` and ``sampler`` are the network alone and its sampler loop alone; ``all`` is
all of them.

Two ways in. From a model, the UNet and sampler graphs are exported with torch and checked against it
(``edgeir.export.graph``); a quantized model's INT8 UNet graph is its own, gated by the quantize stage. From an
existing bundle only onnx (and TensorRT) are needed, never torch: restore graphs are composed anew from its UNet
graph (another tile size, say), and ``--format trt`` builds engines, which is how engines are made on the
Jetson itself, since an engine only runs where it was built.

A latent restorer's bundle carries its autoencoder's graphs besides (``edgeir.export.codec``): the restore graph
is composed with them inside, and composed anew from them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import onnx

from edgeir import __version__
from edgeir.bundle.io import MANIFEST, SUFFIX, load_bundle, write_bundle
from edgeir.bundle.manifest import FORMAT, LatentGraphFiles, Manifest, Precision, Variant, make_variant
from edgeir.diffusion.steps import Sampling
from edgeir.errors import ConfigError
from edgeir.export.restore import export_restore
from edgeir.graphs.layout import default_overlap
from edgeir.graphs.qdq import has_qdq, with_scales
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.restore import LatentGraphs
from edgeir.graphs.shapes import (
    DimRange,
    ShapeProfile,
    frame_profile,
    image_profile,
    input_shapes,
    multiple_problems,
    with_latent,
)
from edgeir.graphs.tensorrt import build_engine, record_path, require_tensorrt
from edgeir.progress import progress_bar

Format = Literal["onnx", "trt"]
GRAPHS = {"restore": ("restore", "unet"), "unet": ("unet",), "sampler": ("sampler",),
          "all": ("restore", "unet", "sampler")}


def is_bundle(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path.suffix == SUFFIX and path.is_file())


def _check_out(out: Path, source: Path) -> None:
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ConfigError(f"{out}: the output must not be the model or bundle being read")
    if (out.is_dir() and any(out.iterdir()) or out.is_file()) and not is_bundle(out):
        raise ConfigError(f"{out}: exists and is not a bundle; refusing to replace it")


def _check_profile(profile: ShapeProfile, multiple_of: int) -> None:
    problems = multiple_problems(profile, multiple_of)
    if problems:
        raise ConfigError(f"--size: {problems[0].removeprefix('profile ')}")


class _Shipment:
    """The files, variants and check summaries a bundle is being made of."""

    def __init__(self, work: Path):
        self.work = work
        self.files: dict[str, str | Path] = {}
        self.variants: list[Variant] = []
        self.summaries: list[dict] = []

    def add(self, variant: Variant, path: Path, summary: dict) -> None:
        self.files[path.name] = path
        self.variants.append(variant)
        self.summaries.append(summary)


def _from_model(model: str, ship: _Shipment, graphs: tuple[str, ...], precision: Precision, opset: int,
                profile: ShapeProfile, frame: DimRange, steps: int | None, tile: int, overlap: int | None,
                keep_io_fp32: bool, trust_pickle: bool) -> Manifest:
    from edgeir.export.codec import export_codec
    from edgeir.export.graph import export_graph
    from edgeir.load import load_restorer
    from edgeir.models.onnx_net import OnnxNet

    restorer = load_restorer(model, trust_pickle=trust_pickle)
    cfg = restorer.config
    _check_profile(profile, cfg.multiple_of)
    profile = with_latent(profile, cfg.latent.factor if cfg.latent else 1)
    try:
        schedule = restorer.steps(steps)
    except ValueError as e:
        raise ConfigError(f"--steps: {e}") from None
    task = cfg.task
    overlap = default_overlap(tile, cfg.multiple_of) if overlap is None else overlap
    sampling = Sampling(schedule, cfg.prediction, cfg.sampler.temperature, cfg.residual_scale, cfg.target,
                        cfg.schedule.clip)
    net = restorer.denoiser.net
    torch_graphs = [g for g in ("unet", "sampler") if g in graphs]
    if isinstance(net, OnnxNet):
        torch_graphs = _onnx_network(net.path, graphs, precision)
        unet_path, unet_summary = ship.work / f"unet.{precision}.onnx", _onnx_network_summary(net.path, precision)
        unet_path.write_bytes(net.path.read_bytes())
        unet_summary.update(steps=len(schedule), tensorrt_problems=check_tensorrt(
            onnx.load(str(unet_path)), profile, cfg.multiple_of)[:5])
        ship.add(_variant("unet", unet_path, cfg, sampling, precision), unet_path, unet_summary)
    latent, latent_files = None, None
    with progress_bar("export", total=len(torch_graphs) + 2 * ("restore" in graphs)) as advance:
        if cfg.latent is not None:
            codec = export_codec(restorer, ship.work, opset, profile)
            for graph in codec.values():
                ship.files[graph.path.name] = graph.path
                ship.summaries.append(graph.summary)
            paths = {k: g.path for k, g in codec.items()}
            latent_files = LatentGraphFiles(space=cfg.latent, decoder=paths["decoder"].name,
                                            encoder=paths["encoder"].name if "encoder" in paths else None)
            latent = LatentGraphs(cfg.latent, *(onnx.load(str(paths[k])) if k in paths else None
                                                 for k in ("decoder", "encoder")))
        for kind in torch_graphs:
            result = export_graph(restorer, kind, ship.work, precision, opset, profile,  # type: ignore[arg-type]
                                  schedule, keep_io_fp32=keep_io_fp32)
            ship.add(_variant(kind, result.path, cfg, sampling, precision), result.path, result.summary())
            advance(1)
        if "restore" in graphs:
            unet = next(ship.files[v.graph] for v in ship.variants if v.kind == "unet")
            restore = export_restore(Path(unet).read_bytes(), task, cfg.multiple_of, sampling, tile, overlap,
                                     precision, ship.work, frame, latent)
            for variant, path, summary in restore:
                ship.variants.insert(0 if variant.pixels == "uint8" else 1, variant)
                ship.files[path.name] = path
                ship.summaries.append(summary)
                advance(1)
    return Manifest(task=task, multiple_of=cfg.multiple_of, min_size=cfg.multiple_of, tile=tile, overlap=overlap,
                    variants=ship.variants, latent=latent_files)


def _variant(kind: str, path: Path, cfg, sampling: Sampling, precision: Precision) -> Variant:
    cond = cfg.unet_cond_channels if kind == "unet" else cfg.task.cond_channels
    return make_variant(f"{kind}-{precision}", path.name, kind, cfg.task.name,  # type: ignore[arg-type]
                        cond, sampling, precision, latent=cfg.latent)


def _onnx_network(path: Path, graphs: tuple[str, ...], precision: str) -> list[str]:
    """A model whose network is already an ONNX graph (the quantize stage's INT8 denoiser) ships that graph as
    its ``unet`` variant; torch cannot trace through onnxruntime, so it has no torch-exported graphs."""
    if "sampler" in graphs:
        raise ConfigError("this model's network is an ONNX graph (a quantized stage): it has no sampler graph; "
                          "export it with --graph restore or --graph unet")
    if precision != "int8" and has_qdq(onnx.load(str(path))):
        raise ConfigError(f"{path.name} is an INT8 (Q/DQ) graph: export it with --precision int8")
    return []


def _onnx_network_summary(path: Path, precision: str) -> dict:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return {"kind": "unet", "precision": precision, "file": f"unet.{precision}.onnx",
            "nodes": len(model.graph.node), "bytes": path.stat().st_size, "max_abs_diff": {}, "gate": None,
            "slimmed": False, "parity": "gated by the quantize stage against the FP32 student"}


def _from_bundle(source: Path, ship: _Shipment, graphs: tuple[str, ...], format: Format, frame: DimRange,
                 tile: int | None, overlap: int | None, step_scales: list[dict[str, float]] | None) -> Manifest:
    """The bundle's ONNX variants and files, unpacked into ``ship``; with ``restore`` asked for (and not only
    TensorRT engines), its restore graphs composed anew from its UNet graph, with its (or the given) activation
    scales per step if it has them. Engines it carries were built for another machine or TensorRT: they are left out, to be
    rebuilt here."""
    bundle = load_bundle(source)
    m = bundle.manifest
    recompose = format == "onnx" or tile is not None or overlap is not None
    if format == "onnx" and "restore" not in graphs:
        raise ConfigError(f"{source} is a bundle already: --graph restore composes its restore graphs anew, "
                          "--format trt builds its TensorRT engines")
    keep = [v for v in m.variants if v.format == "onnx" and not (recompose and v.kind == "restore")]
    if not keep:
        raise ConfigError(f"{source}: no ONNX graphs to build from")
    unet = next((v for v in keep if v.kind == "unet"), None)
    if step_scales is not None:
        if unet is None or unet.precision != "int8" or len(step_scales) != len(unet.steps):
            raise ConfigError(f"{source}: per-step scales need an INT8 UNet graph, one set per sampler step")
        keep = [v.model_copy(update={"step_scales": step_scales}) if v is unet else v for v in keep]
        unet = next(v for v in keep if v.kind == "unet")
    for v in keep:
        path = ship.work / v.graph
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bundle.read(v.graph))
        ship.add(v, path, next((c for c in m.producer.get("checks", []) if c.get("file") == v.graph), {}))
    latent = None
    if m.latent is not None:
        for name in m.latent.files:
            path = ship.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bundle.read(name))
            ship.files[name] = path
        latent = LatentGraphs(m.latent.space, onnx.load_from_string(bundle.read(m.latent.decoder)),
                              onnx.load_from_string(bundle.read(m.latent.encoder)) if m.latent.encoder else None)
    tile = tile or m.tile
    overlap = m.overlap if overlap is None and tile == m.tile else overlap
    overlap = default_overlap(tile, m.multiple_of) if overlap is None else overlap
    if recompose:
        if unet is None:
            raise ConfigError(f"{source}: has no UNet graph to compose restore graphs from")
        graph = bundle.read(unet.graph)
        nets: bytes | list[bytes] = graph if unet.step_scales is None else [
            with_scales(onnx.load_from_string(graph), scales).SerializeToString() for scales in unet.step_scales]
        for i, (variant, path, summary) in enumerate(export_restore(
                nets, m.task, m.multiple_of, unet.sampling, tile, overlap, unet.precision, ship.work, frame,
                latent)):
            ship.variants.insert(i, variant)
            ship.files[path.name] = path
            ship.summaries.insert(i, summary)
    return m.model_copy(update={"variants": ship.variants, "tile": tile, "overlap": overlap,
                                "format": FORMAT})


def _engines(manifest: Manifest, ship: _Shipment, graphs: tuple[str, ...], precision: str, profile: ShapeProfile,
             frame: DimRange, workspace_mb: int, timing_cache: Path | None) -> tuple[list[Variant], list[dict]]:
    """A TensorRT variant for every ONNX variant of ``graphs``; readiness is checked first, so a graph
    TensorRT would refuse fails with one clear line instead of a parser log."""
    variants, records = [], []
    factor = manifest.latent.space.factor if manifest.latent else 1
    for v in manifest.variants:
        if v.format != "onnx" or v.kind not in graphs:
            continue
        shapes = (frame_profile(manifest.task.scale, v.tile, v.overlap, manifest.multiple_of,  # type: ignore
                                frame, factor) if v.kind == "restore" else profile)
        model = onnx.load(str(ship.files[v.graph]))
        problems = check_tensorrt(model, shapes, None if v.kind == "restore" else manifest.multiple_of)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"{v.graph} is not TensorRT-ready: {problems[0]}{more}")
        engine_precision = v.precision if v.precision != "fp32" else precision
        engine = ship.work / f"{Path(v.graph).stem}.{engine_precision}.engine"
        records.append(build_engine(ship.files[v.graph], engine, input_shapes(model, shapes), engine_precision,
                                    strongly_typed=has_qdq(model), workspace_mb=workspace_mb,
                                    timing_cache=timing_cache))
        ship.files[engine.name] = engine
        ship.files[record_path(engine).name] = record_path(engine)
        variants.append(v.model_copy(update={"name": f"{v.name}-trt", "graph": engine.name, "format": "tensorrt",
                                             "precision": engine_precision}))
    return variants, records


def export_bundle(model: str, out: Path, format: Format = "onnx", precision: Precision = "fp32",
                  graph: str = "restore", opset: int = 17, batch: str = "1:1:4", size: str = "64:256:512",
                  frame: str = "64:1080:2160", steps: int | None = None, tile: int | None = None,
                  overlap: int | None = None, keep_io_fp32: bool = True, workspace_mb: int = 1024,
                  timing_cache: Path | None = None, trust_pickle: bool = False, command: str = "",
                  step_scales: list[dict[str, float]] | None = None, sign_key: Path | None = None) -> dict:
    """Write the bundle ``out`` (atomically) and return what was exported, checked and built. ``size`` and
    ``batch`` bound the UNet and sampler graphs' TensorRT profile; ``frame`` the output frame sides of restore
    graphs; ``tile``/``overlap`` (default: ``size``'s OPT and an eighth of it) are baked into restore graphs."""
    source = Path(model)
    _check_out(out, source)
    profile = image_profile(DimRange.parse(batch, "--batch"), DimRange.parse(size, "--size"))
    frames = DimRange.parse(frame, "--frame")
    if format == "trt":
        require_tensorrt()  # before minutes of export, not after
    graphs = GRAPHS[graph]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.export.") as tmp:
        ship = _Shipment(Path(tmp))
        if is_bundle(source):
            manifest = _from_bundle(source, ship, graphs, format, frames, tile, overlap, step_scales)
            _check_profile(profile, manifest.multiple_of)
        elif step_scales is not None:
            raise ConfigError("per-step scales are made for a bundle's INT8 UNet graph: export the model first")
        else:
            manifest = _from_model(model, ship, graphs, precision, opset, profile, frames, steps,
                                   tile or profile["height"].opt, overlap, keep_io_fp32, trust_pickle)
        profile = with_latent(profile, manifest.latent.space.factor if manifest.latent else 1)
        records: list[dict] = []
        if format == "trt":
            trt_variants, records = _engines(manifest, ship, graphs, precision, profile, frames, workspace_mb,
                                             timing_cache)
            manifest = manifest.model_copy(update={"variants": trt_variants + list(manifest.variants)})
        made = {k: manifest.producer[k] for k in ("edgeir", "command", "source") if k in manifest.producer}
        producer = {**manifest.producer, "edgeir": __version__, "command": command, "source": str(model),
                    "checks": ship.summaries, "tensorrt_profile": {k: r.model_dump() for k, r in profile.items()}}
        if is_bundle(source):  # how the graphs it was made from were made
            producer["from_bundle"] = manifest.producer.get("from_bundle", made)
        if records:
            producer["engines"] = records
        manifest = manifest.model_copy(update={"producer": producer})
        write_bundle(out, ship.files, manifest, sign_key)
    return {"bundle": str(out), "variants": [v.name for v in manifest.variants], "graphs": ship.summaries,
            "engines": records, "tensorrt_profile": producer["tensorrt_profile"]}
