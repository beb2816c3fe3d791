"""An INT8 restore graph's checks: its composition on the UNet's float twin at FP32's tolerance (exact there),
the INT8 graph itself within INT8's own distance from its float network. Uses the shipped sr4x bundle's INT8
UNet graph."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeir.bundle import load_bundle
from edgeir.errors import QualityGateError
from edgeir.export import restore as export_restore_module
from edgeir.export.restore import export_restore
from edgeir.graphs.ort import open_session
from edgeir.graphs.qdq import QDQ, constants, float_twin
from edgeir.graphs.shapes import DimRange

BUNDLE = Path(__file__).resolve().parent.parent / "exported" / "sr4x"


@pytest.fixture(scope="module")
def shipped():
    b = load_bundle(BUNDLE)
    unet = next(v for v in b.manifest.variants if v.kind == "unet")
    return b, unet


def test_the_float_twin_dequantizes_weights_and_drops_activation_quantizers(shipped):
    b, unet = shipped
    model = onnx.load_from_string(b.read(unet.graph))
    twin = float_twin(model)
    weights = constants(model.graph)
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 0
    assert not [n for n in twin.graph.node if n.op_type in QDQ]
    # each INT8 weight is now the float constant its DequantizeLinear made, under the same name
    folded = constants(twin.graph)
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    assert dq and all(folded[n.output[0]].dtype == np.float32 for n in dq)
    n = next(n for n in dq if weights[n.input[1]].size > 1)
    scale = weights[n.input[1]].reshape(-1, *[1] * (weights[n.input[0]].ndim - 1))
    np.testing.assert_array_equal(folded[n.output[0]], weights[n.input[0]].astype(np.float32) * scale)
    onnx.checker.check_model(twin, full_check=True)
    # the same network: close to the INT8 graph, not equal to it
    rng = np.random.default_rng(0)
    feeds = {"x_t": rng.standard_normal((1, 3, 64, 64), dtype=np.float32),
             "t": np.array([999.0], np.float32), "condition": rng.random((1, 3, 64, 64), dtype=np.float32)}
    names = [i.name for i in model.graph.input]
    feeds = {k: v for k, v in feeds.items() if k in names}
    a = open_session(model.SerializeToString()).run(None, feeds)[0]
    f = open_session(twin.SerializeToString()).run(None, feeds)[0]
    rel = np.linalg.norm(a - f) / np.linalg.norm(f)
    assert 0 < rel < 0.2


def test_an_int8_restore_graph_is_checked_on_its_float_twin(shipped, tmp_path):
    b, unet = shipped
    m = b.manifest
    results = export_restore(b.read(unet.graph), m.task, m.multiple_of, unet.sampling, 64, 16, "int8", tmp_path,
                             DimRange(min=64, opt=128, max=256))
    for _, _, summary in results:
        assert max(summary["max_abs_diff"].values()) <= 1e-3 + 0.5 / 255  # the composition: exact on the twin
        assert all(summary["int8_psnr_db"][k] >= summary["int8_gate_db"][k] for k in ("random", "real"))
        assert all(0 < g <= 40 for g in summary["int8_gate_db"].values())


def test_a_composition_one_percent_off_fails_the_twin_check(shipped, tmp_path, monkeypatch):
    """Planted break: the composed graph scales the network's residual 1% off. Within INT8's own error that
    would pass; on the float twin it is refused."""
    b, unet = shipped
    m = b.manifest
    real = export_restore_module.restore_graph

    def off(net, task, scale, cond_channels, sampling, overlap, pixels, latent=None):
        wrong = dataclasses.replace(sampling, residual_scale=sampling.residual_scale * 1.01)
        return real(net, task, scale, cond_channels, wrong, overlap, pixels, latent)

    monkeypatch.setattr(export_restore_module, "restore_graph", off)
    with pytest.raises(QualityGateError, match="float twin: differs from the host loop"):
        export_restore(b.read(unet.graph), m.task, m.multiple_of, unet.sampling, 64, 16, "int8", tmp_path,
                       DimRange(min=64, opt=128, max=256))
