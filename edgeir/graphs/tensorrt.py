"""TensorRT engines from checked ONNX graphs, through TensorRT's documented 10.x Python API (JetPack 6's 10.3
and current releases). Imports neither torch nor onnx, so it runs on the Jetson itself, where engines must be
built: an engine only runs on the GPU model and TensorRT version that built it.

* Q/DQ (INT8) graphs build as strongly typed networks: the graph's own types and scales decide precision.
  Other graphs build weakly typed, with the FP16 flag for FP16 (TensorRT then picks per layer).
* One optimisation profile (min/opt/max shape per input) from the caller; a workspace limit.
* A timing cache file, read before and written after every build, so rebuilds skip kernel timing.
* The engine is written atomically, next to a JSON record of TensorRT version, GPU and shapes.

Type-checked with mypy against the ``tensorrt-stubs`` package (tests/test_tensorrt.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from pathlib import Path
from typing import Any

from edgeir.errors import BackendError, brief
from edgeir.files import write_atomic

Shape = tuple[int, ...]
INSTALL = "install TensorRT's Python bindings (pip install 'edgeir[trt]'; on a Jetson they come with JetPack)"


def require_tensorrt() -> None:
    """One clear line where TensorRT is missing. The stubs-only package imports as an empty namespace, hence
    the attribute check."""
    missing = BackendError(f"--format trt needs TensorRT, which does not import here: {INSTALL}")
    try:
        import tensorrt
    except ImportError:
        raise missing from None
    if not hasattr(tensorrt, "Builder"):
        raise missing


def gpu() -> dict[str, Any]:
    """Name and compute capability of CUDA device 0 through the driver API (libcuda, present wherever
    TensorRT runs, Jetsons included), so no CUDA Python package is needed."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return {"name": "unknown"}
    dev = ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    if (cuda.cuInit(0) or cuda.cuDeviceGet(ctypes.byref(dev), 0)
            or cuda.cuDeviceGetName(name, len(name), dev)
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # COMPUTE_CAPABILITY_MAJOR
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)):  # COMPUTE_CAPABILITY_MINOR
        return {"name": "unknown"}
    return {"name": name.value.decode(errors="replace"), "compute_capability": f"{major.value}.{minor.value}"}


def build_serialized(graph: Path | bytes, shapes: dict[str, tuple[Shape, Shape, Shape]], fp16: bool,
                     strongly_typed: bool, workspace_mb: int, timing_cache: Path | None, name: str = "the graph"
                     ) -> bytes:
    """A serialized engine from an ONNX file or its bytes; also what the runtime builds its cached engines
    with on the device."""
    require_tensorrt()
    import tensorrt as trt  # here, not at the top: the module must import where TensorRT does not

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(graph)) if isinstance(graph, Path) else parser.parse(graph)
    if not parsed:
        errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {name}: {brief(errors, 300)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16 and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for tensor, (lo, opt, hi) in shapes.items():
        profile.set_shape(tensor, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.exists()
                                       else b"")
    config.set_timing_cache(cache, False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise BackendError(f"TensorRT could not build an engine from {name} (its log is above)")
    if timing_cache is not None:
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(engine)


def build_engine(onnx_path: str | Path, engine_path: str | Path, shapes: dict[str, tuple[Shape, Shape, Shape]],
                 precision: str = "fp16", strongly_typed: bool = False, workspace_mb: int = 1024,
                 timing_cache: str | Path | None = None) -> dict[str, Any]:
    """Build ``engine_path`` and its record ``engine_path + .json`` from ``onnx_path``; returns the record.
    ``shapes`` maps every input to its (min, opt, max) shape (``edgeir.graphs.shapes.input_shapes``)."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    engine = build_serialized(onnx_path, shapes, precision == "fp16", strongly_typed, workspace_mb,
                              Path(timing_cache) if timing_cache else None, onnx_path.name)
    import tensorrt as trt

    record = {"tensorrt": trt.__version__, "gpu": gpu(), "precision": precision, "strongly_typed": strongly_typed,
              "workspace_mb": workspace_mb, "onnx": onnx_path.name,
              "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
              "shapes": {n: {"min": lo, "opt": opt, "max": hi} for n, (lo, opt, hi) in shapes.items()}}
    write_atomic(engine_path, engine)
    write_atomic(record_path(engine_path), (json.dumps(record, indent=2) + "\n").encode())
    return record


def record_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")
