"""Memory-aware tiles: the peak memory of a restore is measured (in a fresh process, at the tile and band size
the runtime uses), grows with the tile pixels a graph call holds, and the planner runs each variant in the first
tile and band size that fits a memory budget, or refuses in one line; ``edgeir bench`` shows the peak beside
graph and host time. Orderings and exact arithmetic only, never wall-clock time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_runtime_gpu import FakeCudart, install_fakes

from edgeir.cli import main
from edgeir.errors import ConfigError
from edgeir.graphs import tensorrt as trt_builder
from edgeir.runtime import Restorer, budget
from edgeir.runtime.budget import Plan, plan, synthetic_input
from edgeir.runtime.memory import MB, Peak, largest_call, measure, restore_peak

SR = Path(__file__).resolve().parent.parent / "exported" / "sr4x"  # tile 256, overlap 32, multiple_of 16


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))


def test_the_peak_grows_with_the_tile_pixels_of_a_call():
    """A call holds all its tiles at once: at 256x256, one 256 px tile < nine 128 px tiles (overlapping, 147k
    pixels) < 49 of 64 px (200k); a tall frame in bands holds fewer tiles per call than in one call."""
    peaks = [restore_peak(SR, "ort-cpu", "restore-int8", 256, 256, tile) for tile in (256, 128, 64)]
    assert [p.tiles_per_call for p in peaks] == [1, 9, 49] and all(p.calls == 1 for p in peaks)
    assert peaks[0].peak_mb < peaks[1].peak_mb < peaks[2].peak_mb
    assert all(p.peak_mb == p.host_mb and p.device_mb is None for p in peaks)  # the CPU: host memory
    whole = restore_peak(SR, "ort-cpu", "restore-int8", 512, 128, 64)
    banded = restore_peak(SR, "ort-cpu", "restore-int8", 512, 128, 64, max_call_pixels=1)
    assert (whole.calls, whole.tiles_per_call, banded.calls, banded.tiles_per_call) == (1, 45, 16, 18)
    assert banded.peak_mb < whole.peak_mb


def test_smaller_tiles_and_narrow_bands_run_and_join_exactly():
    image = synthetic_input(Restorer.load(SR, "ort-cpu").task, 512, 128)
    whole = Restorer.load(SR, "ort-cpu", tile=64)
    banded = Restorer.load(SR, "ort-cpu", tile=64, max_call_pixels=1)
    assert whole.describe()["tile"] == 64
    assert np.abs(banded.restore(image).astype(int) - whole.restore(image)).max() <= 1
    with pytest.raises(ConfigError, match="overlap at most half the tile"):
        Restorer.load(SR, "ort-cpu", tile=48)
    assert whole._for_depth(16)[0].tile == 64  # 16-bit pictures go through the float graph at the same tile


def fake_peaks(monkeypatch, mb_by_tile: dict[int, float], banded_mb: float) -> list[tuple[int, int]]:
    """The planner's measurements replaced by a table (an attention network: memory falls fast with the tile;
    bands take less again); returns the configurations it measured."""
    measured = []

    def peak(bundle, backend, variant, h, w, tile, call, workspace_mb):
        measured.append((tile, call))
        calls, _, tiles = largest_call(h, w, tile, 32, 4, 16, call)
        return Peak(banded_mb if calls > 1 else mb_by_tile[tile], 0.0, None, calls, tiles)

    monkeypatch.setattr(budget, "restore_peak", peak)
    return measured


def test_the_planner_takes_the_first_tile_that_fits_and_records_it(monkeypatch, tmp_path):
    measured = fake_peaks(monkeypatch, {256: 900, 128: 300, 64: 120}, banded_mb=100)
    chosen = plan(SR, 256, 256, memory_mb=200, backend="ort-cpu", runs=1)
    assert measured == [(256, 2_100_000), (128, 2_100_000), (64, 2_100_000)]  # own tile first, then smaller
    assert (chosen.tile, chosen.peak["peak_mb"], chosen.memory_mb, chosen.within_budget) == (64, 120, 200, True)
    assert [row["peak_mb"] for row in chosen.tried] == [900, 300, 120] and "p95_ms" in chosen.tried[-1]
    reopened = Plan.read(chosen.save(tmp_path / "plan.json")).load(SR)
    assert reopened.variant.tile == 64 and reopened.restore(np.zeros((64, 64, 3), np.uint8)).shape == (256, 256, 3)

    measured.clear()
    assert plan(SR, 256, 256, memory_mb=110, backend="ort-cpu", runs=1).max_call_pixels < 2_100_000  # a band
    measured.clear()
    with pytest.raises(ConfigError) as refused:
        plan(SR, 256, 256, memory_mb=50, backend="ort-cpu", runs=1)
    assert len(measured) == 4 and "\n" not in str(refused.value)
    assert "nothing fits 50 MB at 256x256" in str(refused.value) and "peaked at 100 MB" in str(refused.value)


def test_without_a_memory_budget_only_the_bundles_tile_is_measured(monkeypatch):
    measured = fake_peaks(monkeypatch, {256: 900}, banded_mb=100)
    chosen = plan(SR, 256, 256, budget_ms=1e9, backend="ort-cpu", runs=1)
    assert measured == [(256, 2_100_000)] and chosen.tile == 256 and chosen.peak["peak_mb"] == 900


def test_bench_shows_the_peak_beside_graph_and_host_time(tmp_path):
    result = CliRunner().invoke(main, ["bench", str(SR), "--size", "128x128", "--runs", "2", "--backend", "ort-cpu",
                                       "--memory-mb", "4096", "--plan-out", str(tmp_path / "plan.json")])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()[:2]
    assert header.split()[3:7] == ["tiles/call", "peak", "MB", "graph_ms"]
    assert row.split()[:4] == ["restore-int8", "256", "1", "1"] and float(row.split()[4]) > 0
    assert "within the 4096 MB memory budget" in result.output
    report = json.loads(CliRunner().invoke(main, ["bench", str(SR), "--size", "128x128", "--runs", "2",
                                                  "--backend", "ort-cpu", "--json"]).stdout)
    assert report["peak_mb"] > 0 and report["memory_mb"] is None and report["tiles_per_call"] == 1


def test_a_device_profile_budget_nothing_fits_is_refused_in_one_line(tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny\ndescription: test\nsize: 128x128\np95_budget_ms: 100000\nprecision: int8\n"
                       "backend: onnxruntime-cpu\nworkspace_mb: 0\nmemory_mb: 1\n")
    result = CliRunner().invoke(main, ["bench", str(SR), "--device", str(profile), "--runs", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "nothing fits 1 MB at 128x128 on ort-cpu" in result.output


class MemInfoCudart(FakeCudart):
    """The fake CUDA runtime, with free memory that falls by what is allocated and not freed."""

    TOTAL = 8 << 30

    def cudaMemGetInfo(self):
        return 0, self.TOTAL - sum(len(b) for b in self.memory.values()), self.TOTAL


def test_on_a_gpu_the_budget_holds_the_device_memory_the_restore_keeps(monkeypatch):
    cudart = MemInfoCudart()
    install_fakes(monkeypatch, cudart)
    monkeypatch.setattr(trt_builder, "build_serialized", lambda *a, **k: b"engine")
    peak = measure({"bundle": str(SR), "backend": "tensorrt", "variant": "restore-int8", "height": 256,
                    "width": 256, "tile": None, "max_call_pixels": 2_100_000, "workspace_mb": 0})
    held = sum(cudart.mallocs)  # image, noise, the four maps and the output, each allocated once
    assert held > 0 and peak.device_mb == round(held / MB, 1) and peak.peak_mb == peak.device_mb
