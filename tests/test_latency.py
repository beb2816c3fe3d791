import numpy as np
import pytest
import torch

from edgeir.compress import latency
from edgeir.export.unet import export_unet
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel
from edgeir.timing import interleaved_ms, median_ms


def test_calls_are_warmed_up_then_timed_in_turn_and_the_median_is_kept(monkeypatch):
    log, clock = [], [0.0]
    monkeypatch.setattr("edgeir.timing.time.perf_counter", lambda: clock[0])

    def call(name: str, ms: list[float]):
        def run():
            log.append(name)
            clock[0] += ms.pop(0) / 1000
        return run

    a, b = call("a", [99, 10, 12, 11]), call("b", [99, 30, 31, 50])
    ticks = []
    assert median_ms([a, b], runs=3, advance=ticks.append) == pytest.approx([11.0, 31.0])
    assert log == ["a", "b"] * 4  # one warm-up round, then three timed ones
    assert len(ticks) == 4


def test_each_call_gets_its_own_list_of_times(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("edgeir.timing.time.perf_counter", lambda: clock[0])

    def tick():
        clock[0] += 0.002

    assert interleaved_ms([tick], runs=2, warmup=0) == [pytest.approx([2.0, 2.0])]


def test_stage_latency_runs_every_network_in_onnxruntime_on_the_same_threads(tiny_restorer, tmp_path, monkeypatch):
    graph = export_unet(tiny_restorer, tmp_path / "int8-like.onnx")  # a stage whose network is a graph already
    as_graph = RestorerModel(tiny_restorer.config, net=OnnxNet(graph)).eval()
    rng = np.random.default_rng(0)
    degraded = tiny_restorer.task.degrade(rng.random((16, 16, 3), dtype=np.float32), rng)
    seen = {}

    def timed(models, degraded, runs, seed):
        seen.update(threads=torch.get_num_threads(), outputs=[m.restore(degraded, seed=seed) for m in models],
                    nets=[m.denoiser.net for m in models])
        return [1.0] * len(models)

    monkeypatch.setattr(latency, "restore_latency_ms", timed)
    threads = torch.get_num_threads()
    assert latency.onnxruntime_restore_latency_ms([tiny_restorer, as_graph], degraded, seed=3) == [1.0, 1.0]
    assert torch.get_num_threads() == threads and seen["threads"] == latency.THREADS
    assert all(isinstance(n, OnnxNet) for n in seen["nets"])
    assert [n.session.get_session_options().intra_op_num_threads for n in seen["nets"]] == [latency.THREADS] * 2
    assert seen["nets"][1].path == graph  # run as it is, not re-exported through torch
    want = tiny_restorer.restore(degraded, seed=3)  # the exported network is the same network
    for got in seen["outputs"]:
        np.testing.assert_allclose(got, want, atol=1e-4)
