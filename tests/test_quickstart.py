"""The README's commands as a user runs them, on tiny models: ``edgeir quickstart`` end to end (compress ->
report -> export -> bench -> restore, then again to show it resumes), and ``edgeir train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import tiny_config
from PIL import Image
from test_compress_pipeline import setup_run

from edgeir.bundle import load_bundle
from edgeir.cli import main
from edgeir.load import load_restorer


@pytest.mark.slow
def test_quickstart_runs_the_whole_pipeline_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))
    _, raw = setup_run(tmp_path, stages=[
        {"kind": "distill", "method": "direct", "steps": 1, "iterations": 3, "batch": 2, "patch": 16, "pairs": 4,
         "lr": 1e-3},
        {"kind": "quantize", "subset_size": 4, "crop": 16, "max_psnr_drop": 100, "min_detail_kept": 0}])
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump(raw))
    args = ["quickstart", "-o", str(tmp_path / "qs"), "--recipe", str(tmp_path / "quick.yaml"), "--json"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    qs = tmp_path / "qs"
    assert (qs / "compress" / "report.md").exists() and (qs / "compress" / "pareto.png").exists()
    bundle = load_bundle(qs / "bundle")
    assert bundle.manifest.variants[0].kind == "restore" and bundle.manifest.variants[0].precision == "int8"
    assert result["final_stage"] == "stages/02-quantize" and result["bench"]["graph_ms"] > 0
    (restored,) = result["restored"]
    out = np.asarray(Image.open(restored["output"]))
    low = np.asarray(Image.open(qs / "sample" / "chelsea-degraded.png"))
    assert out.shape == (low.shape[0] * 2, low.shape[1] * 2, 3)  # the tiny teacher is a 2x super-resolver
    before = (qs / "compress" / "report.json").stat().st_mtime_ns
    again = CliRunner().invoke(main, args)  # finished steps are kept, not redone
    assert again.exit_code == 0, again.output
    assert (qs / "compress" / "report.json").stat().st_mtime_ns == before


def test_train_command_writes_a_loadable_teacher_and_resumes(tmp_path, monkeypatch):
    from edgeir.train import presets

    monkeypatch.setitem(presets.PRESETS, "sr4x", tiny_config())
    monkeypatch.setattr("edgeir.train.teacher.builtin_images", lambda split: [
        ("a", np.random.default_rng(0).random((40, 40, 3), dtype=np.float32))])
    base = ["train", "sr4x", "-o", str(tmp_path / "t"), "--batch", "2", "--patch", "16", "--workers", "0"]
    first = CliRunner().invoke(main, [*base, "--iters", "2"])
    assert first.exit_code == 0, first.output
    assert load_restorer(tmp_path / "t").config.provenance["iterations"] == 2
    more = CliRunner().invoke(main, [*base, "--iters", "4"])  # picks up the state in t.train
    assert more.exit_code == 0, more.output
    assert load_restorer(tmp_path / "t").config.provenance["iterations"] == 4
    bad = CliRunner().invoke(main, [*base, "--iters", "2", "--init", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.output
