"""A quantize stage's INT8 model goes the whole way: saved and reloaded in the folder format (the graph is the
weights), counted at its source architecture's cost, exported as a bundle and run by the torch-free runtime
with the same result as the torch-side restorer."""

import numpy as np
import pytest
from test_compress_pipeline import setup_run

from edgeir.compress.cost import macs, params
from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
from edgeir.export.bundle import export_bundle
from edgeir.load import load_restorer
from edgeir.models.onnx_net import OnnxNet
from edgeir.runtime import Restorer as Runtime

pytest.importorskip("nncf")


@pytest.mark.slow
def test_int8_stage_saves_exports_and_runs_in_the_runtime(tmp_path, monkeypatch):
    small = {"iterations": 2, "batch": 2, "patch": 16, "pairs": 4, "lr": 1e-3}
    _, raw = setup_run(tmp_path, stages=[
        {"kind": "distill", "method": "direct", "steps": 2, **small},
        {"kind": "quantize", "subset_size": 6, "crop": 16, "max_psnr_drop": 100, "min_detail_kept": 0}])
    report = compress(parse_recipe(raw), tmp_path / "out")
    final = tmp_path / "out" / report["final"]
    assert report["final"].endswith("quantize")

    model = load_restorer(final)
    assert isinstance(model.denoiser.net, OnnxNet) and model.config.network.type == "onnx"
    fp32 = load_restorer(tmp_path / "out" / report["stages"][0]["folder"])
    assert params(model) == params(fp32) and macs(model, 16, 16) == macs(fp32, 16, 16)
    assert report["stages"][1]["metrics"]["macs"] == report["stages"][0]["metrics"]["macs"]

    export_bundle(str(final), tmp_path / "bundle", precision="int8", size="16:32:64")
    runtime = Runtime.load(tmp_path / "bundle")
    assert runtime.variant.kind == "restore" and runtime.variant.precision == "int8"
    rgb = (np.random.default_rng(0).uniform(0, 1, (16, 16, 3)) * 65535).astype(np.uint16)  # sr x2 -> 32x32
    out = runtime.restore(rgb, seed=3).astype(np.float64) / 65535
    from test_runtime_support import host_reference

    from edgeir.tasks import Degraded

    noise = np.random.default_rng(3).standard_normal((1, 3, 32, 32), dtype=np.float32)[0]
    expected = host_reference(model, Degraded(rgb.astype(np.float32) / np.float32(65535)), noise,
                              runtime.variant.tile, runtime.variant.overlap)
    # Both run the INT8 graph with the CPU's exact encoding; they differ only where the graph's bicubic (a few
    # ulps from Pillow's) tips a quantizer's rounding tie.
    assert np.abs(out - expected).mean() < 2e-3 and np.abs(out - expected).max() < 4e-2

    # The CPU's other exact encoding (u8u8 everywhere, u8s8 where the CPU has VNNI) restores the same image.
    from edgeir.graphs import cpu_int8

    other = "u8u8" if cpu_int8.cpu_encoding() == "u8s8" else "u8s8"
    if cpu_int8._probe(other):
        monkeypatch.setattr(cpu_int8, "cpu_encoding", lambda: other)
        again = Runtime.load(tmp_path / "bundle").restore(rgb, seed=3).astype(np.float64) / 65535
        assert np.abs(again - out).max() < 1e-5


def test_an_int8_model_refuses_a_sampler_graph_export(tmp_path):
    from edgeir.errors import ConfigError
    from edgeir.export import bundle as export_cmd

    with pytest.raises(ConfigError, match="no sampler graph"):
        export_cmd._onnx_network(tmp_path / "x.onnx", ("sampler",), "int8")
