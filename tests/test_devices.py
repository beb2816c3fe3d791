import json

import pytest
from click.testing import CliRunner
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.cli import main
from edgeir.devices import available, load_profile
from edgeir.errors import ConfigError


def test_shipped_profiles_are_valid_and_labelled_targets():
    assert set(available()) >= {"orin-nano", "orin-agx", "rtx-desktop", "cpu"}
    for name in available():
        p = load_profile(name)
        assert p.status == "target" and p.p95_budget_ms > 0 and min(p.hw) > 0


def test_bad_profiles_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such device profile"):
        load_profile("jetson-tx1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: y\nsize: 1080p\np95_budget_ms: 5\nprecision: int8\n"
                   "backend: tensorrt\nworkspace_mb: 1\n")
    with pytest.raises(ConfigError, match="size"):
        load_profile(str(bad))


def test_bench_with_a_device_profile_uses_its_size_and_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))
    bundle = make_bundle(tiny_restorer(), tmp_path / "b")
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny\ndescription: test\nsize: 32x48\np95_budget_ms: 100000\nprecision: fp32\n"
                       "backend: onnxruntime-cpu\nworkspace_mb: 0\n")
    res = CliRunner().invoke(main, ["bench", str(bundle), "--device", str(profile), "--runs", "2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["size"] == "32x48" and out["budget_ms"] == 100000 and out["within_budget"] is True
    assert out["backend"] == "ort-cpu" and out["device_profile"]["status"] == "target"


def test_bench_needs_a_size_or_a_profile(tmp_path):
    res = CliRunner().invoke(main, ["bench", str(tmp_path)])
    assert res.exit_code == 2 and "--size" in res.output
