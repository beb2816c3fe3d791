"""INT8 activation scales per sampler step: estimated as NNCF estimates them, on each step's inputs alone,
scales NNCF tied kept tied; carried by a bundle's manifest, restore graphs composed from them; refused where
they cannot apply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from edgeir.bundle import load_bundle
from edgeir.bundle.manifest import Variant
from edgeir.cli import main
from edgeir.compress.step_scales import calibrate
from edgeir.errors import ConfigError
from edgeir.graphs.qdq import constants, with_scales

EXPORTED = Path(__file__).resolve().parent.parent / "exported"


def qdq_net(zero_dtype=TensorProto.INT8) -> onnx.ModelProto:
    """prediction = QDQ(2 x_t) + QDQ(tanh(condition)) + QDQ(x_t + condition), the first and last sharing one
    scale constant (as NNCF ties the inputs of an Add)."""
    x, t, c = (helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
               (("x_t", ["b", 3, "h", "w"]), ("t", ["b"]), ("condition", ["b", 3, "h", "w"])))
    nodes = [helper.make_node("Mul", ["x_t", "two"], ["a"]), helper.make_node("Tanh", ["condition"], ["b"]),
             helper.make_node("Add", ["x_t", "condition"], ["c"])]
    for name, scale in (("a", "s_tied"), ("b", "s_b"), ("c", "s_tied")):
        nodes += [helper.make_node("QuantizeLinear", [name, scale, "zero"], [f"{name}_q"]),
                  helper.make_node("DequantizeLinear", [f"{name}_q", scale, "zero"], [f"{name}_dq"])]
    nodes += [helper.make_node("Add", ["a_dq", "b_dq"], ["ab"]), helper.make_node("Add", ["ab", "c_dq"],
                                                                                 ["prediction"])]
    inits = [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
             helper.make_tensor("s_tied", TensorProto.FLOAT, [], [0.05]),
             helper.make_tensor("s_b", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("zero", zero_dtype, [], [0])]
    out = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["b", 3, "h", "w"])
    model = helper.make_model(helper.make_graph(nodes, "q", [x, t, c], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def samples(reach: float, n: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(int(reach * 100))
    return [{"x_t": rng.uniform(-reach, reach, (1, 3, 8, 8)).astype(np.float32), "t": np.array([1.0], np.float32),
             "condition": rng.uniform(-0.03, 0.03, (1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


def test_scales_are_each_steps_own_and_tied_scales_stay_tied():
    net = qdq_net()
    noisy, clean = samples(1.0), samples(0.1)
    for data in (noisy, clean):
        scales = calibrate(net, data)

        def reach(values: list[np.ndarray]) -> float:  # NNCF's mean_minmax, symmetric
            return max(abs(np.mean([v.min() for v in values])), abs(np.mean([v.max() for v in values])))

        x = [d["x_t"] for d in data]
        expected_tied = max(reach([2 * v for v in x]), reach([d["x_t"] + d["condition"] for d in data])) / 127
        assert scales["s_tied"] == pytest.approx(expected_tied, rel=1e-5)
        assert scales["s_b"] == pytest.approx(reach([np.tanh(d["condition"]) for d in data]) / 127, rel=1e-5)
    assert calibrate(net, noisy)["s_tied"] > 8 * calibrate(net, clean)["s_tied"]  # the steps differ tenfold
    stepped = with_scales(net, calibrate(net, clean))
    assert constants(stepped.graph)["s_tied"] == pytest.approx(calibrate(net, clean)["s_tied"])
    assert constants(net.graph)["s_tied"] == pytest.approx(0.05)  # the original is left as it was
    with pytest.raises(ConfigError, match="symmetric signed INT8"):
        calibrate(qdq_net(TensorProto.UINT8), clean)
    with pytest.raises(ValueError, match="no scale constant"):
        with_scales(net, {"nowhere": 1.0})


def test_a_manifest_holds_step_scales_only_where_they_apply():
    unet = next(v for v in load_bundle(EXPORTED / "inpaint").manifest.variants if v.kind == "unet")
    raw = unet.model_dump()
    for bad in ([{"s": 0.1}], [{"s": 0.1}, {"s": -0.1}]):
        with pytest.raises(ValueError, match="step_scales"):
            Variant.model_validate({**raw, "step_scales": bad})
    with pytest.raises(ValueError, match="step_scales"):
        Variant.model_validate({**raw, "precision": "fp32", "step_scales": [{"s": 0.1}, {"s": 0.2}]})


def test_export_calibrates_per_step_keeps_what_helps_and_composes_from_the_manifest(tmp_path):
    """The shipped inpainting bundle's INT8 graph, recalibrated per step on a few crops: kept only if its
    restore graph comes closer to the float one; a bundle that has them composes its restore graphs from them
    again, to the byte; a 1-step bundle is refused in one line."""
    out = tmp_path / "stepped"
    done = CliRunner().invoke(main, ["export", str(EXPORTED / "inpaint"), "-o", str(out), "--step-scales",
                                     "--calibration", "8"])
    assert done.exit_code == 0, done.output
    line = next(x for x in done.output.splitlines() if x.startswith("per-step scales:"))
    kept = line.endswith(": kept")
    unet = next(v for v in load_bundle(out).manifest.variants if v.kind == "unet")
    assert (unet.step_scales is not None) == kept and kept  # 8 crops are enough here
    assert len(unet.step_scales) == 2 and unet.step_scales[0] != unet.step_scales[1]
    composed = constants(onnx.load(str(out / "restore.int8.onnx")).graph)  # each step's copy holds its own
    checked = [(composed[f"step{step.t}/{name}"], value) for step, scales in zip(unet.steps, unet.step_scales)
               for name, value in scales.items() if f"step{step.t}/{name}" in composed]
    assert len(checked) == sum(map(len, unet.step_scales)) > 0
    assert all(np.allclose(got, value) for got, value in checked)
    again = tmp_path / "again"
    assert CliRunner().invoke(main, ["export", str(out), "-o", str(again)]).exit_code == 0
    assert (again / "restore.int8.onnx").read_bytes() == (out / "restore.int8.onnx").read_bytes()
    assert json.loads((again / "manifest.json").read_text())["variants"][2]["step_scales"] == unet.step_scales
    one_step = CliRunner().invoke(main, ["export", str(EXPORTED / "sr4x"), "-o", str(tmp_path / "x"),
                                         "--step-scales"])
    assert one_step.exit_code == 2 and "two or more steps" in one_step.output
    assert len(one_step.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
