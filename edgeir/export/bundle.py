"""Model -> bundle: a model (teacher or compressed student) -> a checked bundle of deployable graphs.

Two ways in. From a model, graphs are exported with torch and checked (``edgeir.export.graph``). From an
existing ONNX bundle with ``--format trt``, only onnx and TensorRT are needed, never torch: that is how engines
are built on the Jetson itself from a bundle exported elsewhere, since an engine only runs where it was built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import onnx

from edgeir import __version__
from edgeir.bundle.io import MANIFEST, SUFFIX, load_bundle, write_bundle
from edgeir.bundle.manifest import Manifest, Variant
from edgeir.errors import ConfigError
from edgeir.graphs.qdq import has_qdq
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.shapes import DimRange, ShapeProfile, image_profile, input_shapes, multiple_problems
from edgeir.graphs.tensorrt import build_engine, record_path, require_tensorrt
from edgeir.progress import progress_bar

Format = Literal["onnx", "trt"]
GRAPHS = {"unet": ("unet",), "sampler": ("sampler",), "both": ("sampler", "unet")}


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


def _from_model(model: str, work: Path, graphs: tuple[str, ...], precision: str, opset: int, profile: ShapeProfile,
                steps: int | None, keep_io_fp32: bool, trust_pickle: bool
                ) -> tuple[Manifest, dict[str, str | Path], list[dict]]:
    from edgeir.bundle.manifest import make_variant
    from edgeir.export.graph import export_graph
    from edgeir.load import load_restorer
    from edgeir.models.onnx_net import OnnxNet

    restorer = load_restorer(model, trust_pickle=trust_pickle)
    cfg = restorer.config
    _check_profile(profile, cfg.multiple_of)
    try:
        schedule = restorer.steps(steps)
    except ValueError as e:
        raise ConfigError(f"--steps: {e}") from None
    files: dict[str, str | Path] = {}
    variants, summaries = [], []
    if isinstance(restorer.denoiser.net, OnnxNet):
        graphs = _onnx_network_graphs(restorer, graphs, precision, profile, work, files, summaries)
    with progress_bar("export", total=len(graphs)) as advance:
        for kind in graphs:
            result = export_graph(restorer, kind, work, precision, opset, profile,  # type: ignore[arg-type]
                                  schedule, keep_io_fp32=keep_io_fp32)
            files[result.path.name] = result.path
            summaries.append(result.summary())
            advance(1)
    for name, summary in zip(files, summaries):
        variants.append(make_variant(f"{summary['kind']}-{precision}", name, summary["kind"],
                                     cfg.task.cond_channels, schedule, cfg.prediction, cfg.sampler.temperature,
                                     cfg.residual_scale, precision))  # type: ignore[arg-type]
    # The engine's optimum shape is the tile the runtime should use.
    tile = profile["height"].opt
    manifest = Manifest(task=cfg.task, multiple_of=cfg.multiple_of, min_size=cfg.multiple_of, tile=tile,
                        overlap=tile // 8, variants=variants)
    return manifest, files, summaries


def _onnx_network_graphs(restorer, graphs: tuple[str, ...], precision: str, profile: ShapeProfile, work: Path,
                         files: dict[str, str | Path], summaries: list[dict]) -> tuple[str, ...]:
    """A model whose network is already an ONNX graph (the quantize stage's INT8 denoiser) ships that graph
    as the bundle's ``unet`` variant, which the runtime drives with its numpy step loop; torch cannot trace
    through onnxruntime, so there is no sampler graph. The INT8 graph's quality was gated by the quantize
    stage; here it is checked for TensorRT readiness. Returns the graphs still to export (none)."""
    if "unet" not in graphs:
        raise ConfigError("this model's network is an ONNX graph (a quantized stage): export it with --graph unet "
                          "or --graph both")
    net = restorer.denoiser.net
    model = onnx.load(str(net.path))
    if precision != "int8" and has_qdq(model):
        raise ConfigError(f"{net.path.name} is an INT8 (Q/DQ) graph: export it with --precision int8")
    onnx.checker.check_model(model, full_check=True)
    problems = check_tensorrt(model, profile, restorer.config.multiple_of)
    dest = work / f"unet.{precision}.onnx"
    dest.write_bytes(net.path.read_bytes())
    files[dest.name] = dest
    summaries.append({"kind": "unet", "precision": precision, "file": dest.name, "steps": len(restorer.steps()),
                      "nodes": len(model.graph.node), "bytes": dest.stat().st_size, "max_abs_diff": {},
                      "gate": None, "slimmed": False, "tensorrt_ready": not problems,
                      "tensorrt_problems": problems[:5],
                      "parity": "gated by the quantize stage against the FP32 student"})
    return ()


def _from_bundle(source: Path, work: Path) -> tuple[Manifest, dict[str, str | Path]]:
    """The bundle's ONNX variants and files, unpacked into ``work``. Engines it carries were built for another
    machine or TensorRT: they are left out, to be rebuilt here."""
    bundle = load_bundle(source)
    variants = [v for v in bundle.manifest.variants if v.format == "onnx"]
    if not variants:
        raise ConfigError(f"{source}: no ONNX graphs to build TensorRT engines from")
    engines = {v.graph for v in bundle.manifest.variants if v.format != "onnx"}
    dropped = engines | {record_path(Path(e)).as_posix() for e in engines}
    files: dict[str, str | Path] = {}
    for name, data in bundle.files.items():
        if name in dropped:
            continue
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = path
    return bundle.manifest.model_copy(update={"variants": variants}), files


def _engines(manifest: Manifest, files: dict[str, str | Path], graphs: tuple[str, ...], precision: str,
             profile: ShapeProfile, work: Path, workspace_mb: int, timing_cache: Path | None
             ) -> tuple[list[Variant], list[dict]]:
    """A TensorRT variant for every ONNX variant of ``graphs``; readiness is checked first, so a graph
    TensorRT would refuse fails with one clear line instead of a parser log."""
    variants, records = [], []
    for v in manifest.variants:
        if v.format != "onnx" or v.kind not in graphs:
            continue
        model = onnx.load(str(files[v.graph]))
        problems = check_tensorrt(model, profile, manifest.multiple_of)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(f"{v.graph} is not TensorRT-ready: {problems[0]}{more}")
        engine_precision = v.precision if v.precision != "fp32" else precision
        engine = work / f"{Path(v.graph).stem}.{engine_precision}.engine"
        records.append(build_engine(files[v.graph], engine, input_shapes(model, profile), engine_precision,
                                    strongly_typed=has_qdq(model), workspace_mb=workspace_mb,
                                    timing_cache=timing_cache))
        files[engine.name] = engine
        files[record_path(engine).name] = record_path(engine)
        variants.append(v.model_copy(update={"name": f"{v.name}-trt", "graph": engine.name, "format": "tensorrt",
                                             "precision": engine_precision}))
    return variants, records


def export_bundle(model: str, out: Path, format: Format = "onnx", precision: str = "fp32", graph: str = "both",
               opset: int = 17, batch: str = "1:1:4", size: str = "64:256:512", steps: int | None = None,
               keep_io_fp32: bool = True,
               workspace_mb: int = 1024, timing_cache: Path | None = None, trust_pickle: bool = False,
               command: str = "") -> dict:
    """Write the bundle ``out`` (atomically) and return what was exported, checked and built."""
    source = Path(model)
    _check_out(out, source)
    profile = image_profile(DimRange.parse(batch, "--batch"), DimRange.parse(size, "--size"))
    if format == "trt":
        require_tensorrt()  # before minutes of export, not after
    graphs = GRAPHS[graph]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.export.") as tmp:
        work = Path(tmp)
        if is_bundle(source):
            if format != "trt":
                raise ConfigError(f"{source} is a bundle already; --format trt builds its TensorRT engines")
            manifest, files = _from_bundle(source, work)
            _check_profile(profile, manifest.multiple_of)
            summaries = manifest.producer.get("checks", [])
        else:
            manifest, files, summaries = _from_model(model, work, graphs, precision, opset, profile, steps,
                                                     keep_io_fp32, trust_pickle)
        records: list[dict] = []
        if format == "trt":
            trt_variants, records = _engines(manifest, files, graphs, precision, profile, work, workspace_mb,
                                             timing_cache)
            manifest = manifest.model_copy(update={"variants": trt_variants + list(manifest.variants)})
        producer = {**manifest.producer, "edgeir": __version__, "command": command, "source": str(model),
                    "checks": summaries, "tensorrt_profile": {k: r.model_dump() for k, r in profile.items()}}
        if records:
            producer["engines"] = records
        manifest = manifest.model_copy(update={"producer": producer})
        write_bundle(out, files, manifest)
    return {"bundle": str(out), "variants": [v.name for v in manifest.variants], "graphs": summaries,
            "engines": records, "tensorrt_profile": producer["tensorrt_profile"]}
