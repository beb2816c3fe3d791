"""``edgeir compress`` as a hostile or unlucky user meets it: a pickled model, a rounding that prunes more than
asked, SIGTERM mid-run, a umask, and latencies that must compare like with like."""

import io
import json
import os
import signal

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from rich.console import Console
from test_compress_pipeline import setup_run
from test_prune import small

from edgeir.cli import main
from edgeir.commands.compress import report_table, run_compress
from edgeir.compress import latency, pipeline, prune
from edgeir.compress.pipeline import compress
from edgeir.compress.prune import PruneSettings
from edgeir.compress.recipe import parse_recipe
from edgeir.compress.recover import RecoverySettings
from edgeir.compress.stage import StageContext
from edgeir.errors import QualityGateError
from edgeir.load import load_restorer
from edgeir.train import loop

ONE_STEP = {"kind": "distill", "method": "direct", "steps": 1, "iterations": 2, "batch": 2, "patch": 16,
            "pairs": 4, "lr": 1e-3, "save_every": 1}


def recipe_file(tmp_path, raw) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_a_trusted_pickle_compresses_and_outputs_honour_the_umask(tmp_path):
    teacher, raw = setup_run(tmp_path, stages=[ONE_STEP])
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tmp_path / "teacher" / "config.json").read_text())
    torch.save(load_restorer(teacher).denoiser.net.state_dict(), pickled / "model.pt")
    args = ["compress", str(pickled / "model.pt"), "--recipe", recipe_file(tmp_path, raw), "--json"]
    runner = CliRunner()

    refused = runner.invoke(main, args + ["-o", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "refusing to unpickle" in refused.stderr and "--trust-pickle" in refused.stderr
    assert not (tmp_path / "refused").exists()

    previous = os.umask(0o027)  # not the usual 022, so a hard-coded 0644 would fail too
    try:
        ok = runner.invoke(main, args + ["-o", str(tmp_path / "out"), "--trust-pickle"])
    finally:
        os.umask(previous)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "completed"
    out = tmp_path / "out"
    assert (out / "report.md").exists()  # the report, too, loaded the pickled teacher
    stage = out / "stages" / "01-distill"
    for path in (stage / "model.safetensors", stage / "config.json", stage / "stage.json", out / "report.json",
                 out / "teacher" / "outputs.npz", out / "grid.png"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o640), path
    for folder in (stage, out / "teacher"):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o750), folder

    (out / "report.md").unlink()  # edgeir report rebuilds it, vouching for the pickle the same way
    assert runner.invoke(main, ["report", str(out)]).exit_code == 2
    assert runner.invoke(main, ["report", str(out), "--trust-pickle"]).exit_code == 0
    assert (out / "report.md").exists()


def test_rounding_that_prunes_far_from_the_asked_ratio_is_warned_about(tmp_path, capsys):
    images = [np.random.default_rng(0).random((32, 32, 3), dtype=np.float32) for _ in range(2)]
    teacher = small()  # widths 16 and 32, 4 GroupNorm groups
    ctx = StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=[], work_dir=tmp_path)
    settings = PruneSettings(ratio=0.3, importance="magnitude", latency_runs=0,
                             recovery=RecoverySettings(steps=0, batch=2, patch=16))

    prune.run(settings.model_copy(update={"round_to": 16}), ctx)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    why = "counts are rounded to multiples of round_to 16, GroupNorm groups and attention heads)"
    # 32 * 0.7 = 22.4 channels -> 16, a multiple of 16: half of them; 16 * 0.7 = 11.2 -> 16: none
    assert f"warning: prune: down.1 lost 50% of its channels where 30% was asked (32 -> 16: {why}" in warnings
    assert f"warning: prune: down.0 lost 0% of its channels where 30% was asked (16 -> 16: {why}" in warnings

    prune.run(settings.model_copy(update={"round_to": 1}), ctx)  # 11.2 -> 12: 25%, 5 points off, no warning
    assert "warning:" not in capsys.readouterr().err


def test_sigterm_mid_stage_leaves_an_interrupted_resumable_run(tmp_path, monkeypatch):
    _, raw = setup_run(tmp_path, stages=[ONE_STEP])
    real = loop.ema_update

    def terminated(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        real(*args)

    monkeypatch.setattr(loop, "ema_update", terminated)
    res = CliRunner().invoke(main, ["compress", "--recipe", recipe_file(tmp_path, raw), "-o", str(tmp_path / "out")])
    assert res.exit_code == 130 and res.stderr.splitlines()[-1] == "interrupted", res.output
    assert "Traceback" not in res.stderr and "error" not in res.stderr
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler lived as long as the command
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["failure"] == "terminated by SIGTERM"
    assert report["stages"] == []

    monkeypatch.setattr(loop, "ema_update", real)
    report = run_compress(None, tmp_path / "r.yaml", tmp_path / "out", resume=True)
    assert report["status"] == "completed" and report["final"] == "stages/01-distill"


def test_a_gate_stopped_run_reports_latencies_timed_like_a_completed_one(tmp_path, monkeypatch):
    _, raw = setup_run(tmp_path, stages=[{**ONE_STEP, "gates": {"min_psnr_vs_teacher": 99.0}}])
    timed = []

    def record(models, degraded, **kw):
        timed.append(([len(m.steps()) for m in models], latency.onnxruntime_restore_latency_ms(models, degraded,
                                                                                               runs=1, **kw)))
        return timed[-1][1]

    monkeypatch.setattr(pipeline, "onnxruntime_restore_latency_ms", record)
    with pytest.raises(QualityGateError):
        compress(parse_recipe(raw), tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed" and "failed its quality gates" in report["failure"]
    rows = [report["teacher"]] + [s["metrics"] for s in report["stages"]]
    assert timed == [([4, 1], [m["latency_ms"] for m in rows])]  # teacher and stage, timed together once
    assert {m["latency_backend"] for m in rows} == {latency.backend()} == {"onnxruntime CPU, 2 threads"}

    console = Console(file=io.StringIO(), width=300)
    report_table(report, tmp_path / "out", console)
    assert "ms/img: onnxruntime CPU, 2 threads, the teacher and every stage timed together" in console.file.getvalue()


def test_fp32_and_int8_stages_are_timed_by_the_same_engine(tmp_path):
    pytest.importorskip("nncf")
    _, raw = setup_run(tmp_path, stages=[ONE_STEP, {"kind": "quantize", "subset_size": 4, "crop": 16,
                                                    "max_psnr_drop": 100, "min_detail_kept": 0}])
    report = compress(parse_recipe(raw), tmp_path / "out")
    assert [s["kind"] for s in report["stages"]] == ["distill", "quantize"]
    rows = [report["teacher"]] + [s["metrics"] for s in report["stages"]]
    assert all(m["latency_ms"] > 0 for m in rows)
    assert [m["latency_backend"] for m in rows] == [latency.backend()] * 3
    stages = [json.loads((tmp_path / "out" / s["folder"] / "stage.json").read_text()) for s in report["stages"]]
    assert all("latency_ms" not in s["metrics"] for s in stages)  # no stage keeps a figure timed on its own


@pytest.mark.parametrize("stages, message", [
    ([ONE_STEP, {"kind": "decoder"}],
     ("stages.1.decoder: the decoder stage replaces a latent restorer's decoder, and this restorer samples in "
      "pixel space")),
    ([ONE_STEP, {"kind": "quantize", "parts": ["unet", "decoder"]}],
     "stages.1.quantize.parts: decoder: this restorer samples in pixel space and has no autoencoder"),
    ([{"kind": "quantize"}, ONE_STEP],
     "stages.1: distill trains the UNet, which stage 0 makes an INT8 graph; put quantize after it"),
    ([{"kind": "quantize"}, {"kind": "quantize"}], "stages.1.quantize.parts: unet is INT8 from stage 0 already"),
    ([ONE_STEP, {**ONE_STEP, "patch": 18}], "stages.1.distill.patch: 18 is not a multiple of the model's 4"),
])
def test_a_stage_that_cannot_run_stops_the_recipe_before_any_work(tmp_path, monkeypatch, stages, message):
    """Checked against the teacher before the output folder exists or the teacher is evaluated."""
    _, raw = setup_run(tmp_path, stages)
    monkeypatch.setattr(pipeline, "measure_model", lambda *a, **k: pytest.fail("the teacher was evaluated"))
    res = CliRunner().invoke(main, ["compress", "--recipe", recipe_file(tmp_path, raw), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.strip() == f"error: {message}"
    assert not (tmp_path / "o").exists()
