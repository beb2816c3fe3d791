"""``edgeir export``: a checked bundle the runtime loads; bad input is one line and exit 2 with nothing written;
engines for an ONNX bundle are assembled without torch (the Jetson path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from edgeir.bundle import load_bundle
from edgeir.cli import main
from edgeir.load import save_restorer
from edgeir.models.config import SamplerConfig
from edgeir.models.restorer import RestorerModel

PROFILE = ["--batch", "1:1:2", "--size", "8:16:32"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = tiny_config()
    restorer = RestorerModel(cfg.model_copy(update={"sampler": SamplerConfig(steps=1)})).eval()
    return save_restorer(restorer, tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("b") / "bundle"
    res = CliRunner().invoke(main, ["export", str(model), "-o", str(out), *PROFILE, "--json"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


@pytest.fixture(scope="module")
def bundle(exported) -> Path:
    return exported[0]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_export_writes_a_checked_bundle(exported):
    bundle, result = exported
    assert result["variants"] == ["restore-fp32", "restore-fp32-float", "unet-fp32"]
    for g in result["graphs"]:
        assert not g["tensorrt_problems"]
        assert max(g["max_abs_diff"].values()) <= g["gate"] + (0.5 / 255 if g.get("pixels") == "uint8" else 0)
    loaded = load_bundle(bundle)  # verifies schema and every checksum
    m = loaded.manifest
    assert set(loaded.manifest.files) == {"restore.fp32.onnx", "restore.fp32.float.onnx", "unet.fp32.onnx"}
    assert (m.multiple_of, m.tile, m.overlap) == (4, 16, 4)
    assert [(v.kind, v.pixels, v.tile, v.overlap) for v in m.variants] == [
        ("restore", "uint8", 16, 4), ("restore", "float32", 16, 4), ("unet", None, None, None)]
    assert [s.t for s in m.variants[0].steps] == [999]
    assert m.producer["tensorrt_profile"]["height"] == {"min": 8, "opt": 16, "max": 32}
    assert sorted(c["kind"] for c in m.producer["checks"]) == ["restore", "restore", "unet"]


def test_runtime_runs_the_exported_bundle(bundle):
    from edgeir.runtime.restorer import Restorer as Runtime

    for variant in ("restore-fp32", "restore-fp32-float"):
        rt = Runtime.load(bundle, backend="ort-cpu", variant=variant)
        out = rt.restore(np.full((10, 12, 3), 128, np.uint8), seed=0)
        assert out.shape == (20, 24, 3) and out.dtype == np.uint8


def test_a_bundle_composes_its_restore_graphs_anew_without_torch(model, bundle, tmp_path):
    """Another tile size, on a machine with no torch: the restore graphs come from the bundle's UNet graph."""
    script = ("import sys; sys.modules['torch'] = None\n"
              "from pathlib import Path\nfrom edgeir.export.bundle import export_bundle\n"
              f"export_bundle({str(bundle)!r}, Path({str(tmp_path / 'again')!r}), tile=24, overlap=4)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = load_bundle(tmp_path / "again").manifest
    assert [(v.name, v.tile, v.overlap) for v in m.variants[:2]] == [("restore-fp32", 24, 4),
                                                                     ("restore-fp32-float", 24, 4)]
    assert m.producer["from_bundle"]["source"] == str(model)  # where the UNet graph came from


def test_fp16_sampler_only_with_other_steps(model, tmp_path):
    res = run("export", model, "-o", tmp_path / "b16", "--graph", "sampler", "--precision", "fp16", "--steps", 2,
              *PROFILE)
    assert res.exit_code == 0, res.output
    assert "sampler" in res.stdout and "fp16" in res.stdout
    (variant,) = load_bundle(tmp_path / "b16").manifest.variants  # a sampler graph alone: no UNet to compose
    assert (variant.name, variant.precision) == ("sampler-fp16", "fp16")
    assert [s.t for s in variant.steps] == [999, 499]


def one_line_error(res, pattern: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], res.stderr


@pytest.mark.parametrize("args, pattern", [
    (["--format", "trt"], "--format trt needs TensorRT, which does not import here"),
    (["--size", "10:20:30"], "height 10:20:30 has sizes that are not multiples of 4"),
    (["--size", "64:32:128"], "--size '64:32:128': need min <= opt <= max"),
    (["--batch", "two"], "--batch 'two'"),
    (["--precision", "int8"], "needs a quantized model"),
], ids=["no-tensorrt", "size-multiple", "size-order", "batch-syntax", "int8-unquantized"])
def test_bad_input_is_one_line_and_writes_nothing(model, tmp_path, args, pattern):
    res = run("export", model, "-o", tmp_path / "out", *args)
    one_line_error(res, pattern)
    assert list(tmp_path.iterdir()) == []  # no bundle, no temporary folder left behind


def test_unknown_model_and_non_bundle_output_are_refused(model, tmp_path):
    one_line_error(run("export", tmp_path / "nope", "-o", tmp_path / "out"), "no such model folder")
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "keep.jpg").write_bytes(b"x")
    one_line_error(run("export", model, "-o", precious), "exists and is not a bundle; refusing to replace it")
    assert (precious / "keep.jpg").read_bytes() == b"x"


def test_a_bundle_is_recomposed_or_built_not_exported_again(bundle, tmp_path):
    one_line_error(run("export", bundle, "-o", tmp_path / "again", "--graph", "unet"),
                   "--format trt builds its TensorRT engines")


ENGINE_SCRIPT = r"""
import json, sys
sys.modules["torch"] = None  # the Jetson path must not need torch
from pathlib import Path
import edgeir.graphs.tensorrt as trt_export

def fake_build(onnx_path, engine_path, shapes, precision, strongly_typed, workspace_mb, timing_cache):
    record = {"tensorrt": "fake", "gpu": {"name": "none"}, "precision": precision, "onnx": Path(onnx_path).name,
              "strongly_typed": strongly_typed, "shapes": {n: list(s) for n, s in shapes.items()}}
    trt_export.write_atomic(Path(engine_path), b"engine bytes")
    trt_export.write_atomic(trt_export.record_path(Path(engine_path)), json.dumps(record).encode())
    return record

trt_export.require_tensorrt = lambda: None
trt_export.build_engine = fake_build
from edgeir.export.bundle import export_bundle
result = export_bundle(sys.argv[1], Path(sys.argv[2]), "trt", "fp16", "all", batch="1:1:2", size="8:16:32",
                       frame="20:40:60")
print(json.dumps(result))
"""


def test_engines_for_an_onnx_bundle_are_built_without_torch(bundle, tmp_path):
    """TensorRT itself cannot run here, so the builder is replaced by a fake; everything around it (readiness,
    profile shapes, variants, records, checksums) runs for real, with torch blocked."""
    out = tmp_path / "trt"
    proc = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT, str(bundle), str(out)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["variants"] == ["restore-fp32-trt", "restore-fp32-float-trt", "unet-fp32-trt", "restore-fp32",
                                  "restore-fp32-float", "unet-fp32"]
    record = result["engines"][0]
    assert record["precision"] == "fp16" and not record["strongly_typed"]
    # a restore graph's profile follows from the output frame sides: input sides, tile counts (tile 16, overlap 4)
    assert record["shapes"]["image"] == [[1, 10, 10, 3], [1, 20, 20, 3], [1, 30, 30, 3]]
    assert record["shapes"]["rows"] == [[2, 16], [3, 16], [5, 16]]
    assert result["engines"][2]["shapes"]["x_t"] == [[1, 3, 8, 8], [1, 3, 16, 16], [2, 3, 32, 32]]
    loaded = load_bundle(out)
    engine = loaded.manifest.variants[0]
    assert (engine.format, engine.graph, engine.precision) == ("tensorrt", "restore.fp32.fp16.engine", "fp16")
    assert loaded.read("restore.fp32.fp16.engine") == b"engine bytes"
    assert json.loads(loaded.read("restore.fp32.fp16.engine.json"))["onnx"] == "restore.fp32.onnx"
    again = tmp_path / "trt-again"  # engines from elsewhere are replaced, not duplicated
    proc = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT, str(out), str(again)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [v.name for v in load_bundle(again).manifest.variants] == result["variants"]
