import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from edgeir.cli import main
from edgeir.compress import distill, latency, pipeline
from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
from edgeir.data.builtin import EXTRA, TRAIN, builtin_images
from edgeir.data.images import Picture, write_image
from edgeir.errors import ConfigError, QualityGateError
from edgeir.load import load_restorer, save_restorer
from edgeir.models.restorer import RestorerModel
from edgeir.train import loop


def setup_run(tmp_path, stages=None) -> tuple[str, dict]:
    """A tiny 4-step teacher on disk, small image folders and a recipe dict that distills it in seconds."""
    torch.manual_seed(0)
    save_restorer(RestorerModel(tiny_config()), tmp_path / "teacher")
    rng = np.random.default_rng(0)
    for split, n, size in (("train", 2, 40), ("eval", 1, 24)):
        for i in range(n):
            img = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
            write_image(tmp_path / split / f"{i}.png", Picture(img, None, 8, False))
    small = {"iterations": 3, "batch": 2, "patch": 16, "pairs": 4, "lr": 1e-3, "save_every": 1}
    recipe = {
        "name": "tiny", "teacher": str(tmp_path / "teacher"), "task": "sr", "seed": 0,
        "data": {"train": str(tmp_path / "train"), "eval": str(tmp_path / "eval"), "eval_size": 16},
        "stages": stages or [{"kind": "distill", "method": "direct", "steps": 2, **small,
                              "gates": {"max_psnr_drop": 50}},
                             {"kind": "distill", "method": "progressive", "steps": 1, **small}],
        "targets": {"latency_ms": 1e6, "size_mb": 1e-6}}
    return str(tmp_path / "teacher"), recipe


def weights(folder) -> dict:
    return load_restorer(folder).denoiser.net.state_dict()


def test_a_run_writes_one_loadable_model_per_stage_and_a_report(tmp_path, monkeypatch):
    _, raw = setup_run(tmp_path)
    timed = []

    def record(models, degraded, **kw):
        timed.append([len(m.steps()) for m in models])
        ms = latency.onnxruntime_restore_latency_ms(models, degraded, runs=1, **kw)
        timed.append(ms)
        return ms

    monkeypatch.setattr(pipeline, "onnxruntime_restore_latency_ms", record)
    report = compress(parse_recipe(raw), tmp_path / "out")
    out = tmp_path / "out"
    assert report == json.loads((out / "report.json").read_text())
    assert report["status"] == "completed" and report["final"] == "stages/02-distill"
    first, second = (load_restorer(out / s["folder"]) for s in report["stages"])
    assert first.config.sampler.timesteps == [999, 499] and second.config.sampler.timesteps == [999]
    m = report["stages"][1]["metrics"]
    for key in ("psnr", "ssim", "haarpsi", "detail", "psnr_vs_teacher", "params", "macs", "latency_ms"):
        assert m[key] is not None
    assert m["steps"] == 1 and report["teacher"]["steps"] == 4
    assert m["macs"] * 4 == report["teacher"]["macs"]  # same network, a quarter of the evaluations
    assert report["stages"][0]["gates"][0]["gate"] == "max_psnr_drop" and report["stages"][0]["gates"][0]["passed"]
    assert report["targets"]["latency_ms"]["met"] and not report["targets"]["size_mb"]["met"]
    # the teacher and both stages were timed together once, at the end, and those are the figures reported
    assert timed[0] == [4, 2, 1]
    assert [report["teacher"]["latency_ms"]] + [s["metrics"]["latency_ms"] for s in report["stages"]] == timed[1]
    assert report["targets"]["latency_ms"]["measured"] == timed[1][-1]
    assert not (out / "work").exists() or not any((out / "work").iterdir())
    leftovers = [p.name for p in out.rglob(".*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_resume_after_an_interrupted_stage_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    _, raw = setup_run(tmp_path)
    recipe = parse_recipe(raw)
    compress(recipe, tmp_path / "straight")

    calls = {"n": 0}
    real = loop.ema_update

    def interrupt_in_second_stage(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # stage 1 makes 3 updates; this is stage 2's second, after one checkpoint
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(loop, "ema_update", interrupt_in_second_stage)
    with pytest.raises(KeyboardInterrupt):
        compress(recipe, tmp_path / "resumed")
    report = json.loads((tmp_path / "resumed" / "report.json").read_text())
    assert report["status"] == "interrupted" and len(report["stages"]) == 1
    assert not (tmp_path / "resumed" / "stages" / "02-distill").exists()
    assert list((tmp_path / "resumed" / "work" / "02-distill").glob("round-1-*.state"))

    monkeypatch.setattr(loop, "ema_update", real)
    report = compress(recipe, tmp_path / "resumed", resume=True)
    assert [s["resumed"] for s in report["stages"]] == [True, False]
    a, b = weights(tmp_path / "straight/stages/02-distill"), weights(tmp_path / "resumed/stages/02-distill")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert report["stages"][1]["metrics"] == json.loads(
        (tmp_path / "straight" / "report.json").read_text())["stages"][1]["metrics"] | {
        "latency_ms": report["stages"][1]["metrics"]["latency_ms"]}


def test_chained_distill_stages_make_the_teachers_outputs_once(tmp_path, monkeypatch):
    _, raw = setup_run(tmp_path)
    raw["stages"][1] = {**raw["stages"][0], "steps": 1, "gates": {}}  # 2 steps, then 1 from the 2-step student
    made, real = [], distill.save_file

    def save(tensors, path, *args):
        made.append(path)
        real(tensors, path, *args)

    monkeypatch.setattr(distill, "save_file", save)
    report = compress(parse_recipe(raw), tmp_path / "out")
    assert report["status"] == "completed" and len(made) == 1
    assert "/work/shared/" in made[0] and not (tmp_path / "out" / "work" / "shared").exists()
    second = load_restorer(tmp_path / "out" / "stages" / "02-distill")
    assert second.config.sampler.timesteps == [999]
    assert second.config.provenance["history"][-1]["method"] == "direct"  # it started from the 2-step student


def test_a_failing_gate_stops_the_run_in_one_line_and_is_recorded(tmp_path):
    _, raw = setup_run(tmp_path)
    raw["stages"][0]["gates"] = {"min_psnr_vs_teacher": 99.0}
    with pytest.raises(QualityGateError) as e:
        compress(parse_recipe(raw), tmp_path / "out")
    msg = str(e.value)
    assert "stage 01-distill failed its quality gates: psnr_vs_teacher" in msg and "< 99" in msg
    assert "\n" not in msg
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed" and report["failure"] == msg and report["final"] is None
    assert report["stages"][0]["gates"] == [{"gate": "min_psnr_vs_teacher", "limit": 99.0, "passed": False,
                                             "value": report["stages"][0]["metrics"]["psnr_vs_teacher"]}]
    # Relaxing the gate and resuming re-judges the stored stage instead of retraining it.
    raw["stages"][0]["gates"] = {"min_psnr_vs_teacher": 1.0}
    report = compress(parse_recipe(raw), tmp_path / "out", resume=True)
    assert report["status"] == "completed" and report["stages"][0]["resumed"]


def test_a_changed_stage_is_rerun_on_resume(tmp_path):
    _, raw = setup_run(tmp_path)
    raw["stages"] = raw["stages"][:1]
    compress(parse_recipe(raw), tmp_path / "out")
    raw["stages"][0]["iterations"] = 4
    report = compress(parse_recipe(raw), tmp_path / "out", resume=True)
    assert not report["stages"][0]["resumed"]
    assert load_restorer(tmp_path / "out/stages/01-distill").config.provenance["iterations"] == 4


def test_output_folder_and_task_are_checked(tmp_path):
    _, raw = setup_run(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        compress(parse_recipe(raw), tmp_path / "busy")
    with pytest.raises(ConfigError, match="not an edgeir compress output folder"):
        compress(parse_recipe(raw), tmp_path / "busy", resume=True)
    with pytest.raises(ConfigError, match="the recipe is for deblur but .* is a sr model"):
        compress(parse_recipe({**raw, "task": "deblur"}), tmp_path / "new")


def test_cli_prints_json_and_turns_gate_failures_into_one_line(tmp_path):
    import yaml

    _, raw = setup_run(tmp_path)
    raw["stages"] = raw["stages"][:1]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    ok = runner.invoke(main, ["compress", "--recipe", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "a"),
                              "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "completed"

    raw["stages"][0]["gates"] = {"min_detail_kept": 50}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    bad = runner.invoke(main, ["compress", "--recipe", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "b")])
    assert bad.exit_code == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr
    assert errors[0].startswith("error: stage 01-distill failed its quality gates: detail_kept")
    # The table still shows what was measured, and which gate failed.
    assert "FAIL" in bad.stdout and "01-distill gate min_detail_kept 50:" in bad.stdout

    (tmp_path / "bad.yaml").write_text("name: x\nteacher: sr4x\ntask: sr\nstages: [{kind: distill, steps: 0}]\n")
    worse = runner.invoke(main, ["compress", "--recipe", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "c")])
    assert worse.exit_code == 2
    assert worse.stderr.strip() == (f"error: {tmp_path / 'bad.yaml'}: stages.0.distill.steps: Input should be "
                                    "greater than or equal to 1")
    assert not (tmp_path / "c").exists()


def test_builtin_wide_adds_the_extra_photographs_to_the_teachers_training_ones(tmp_path):
    teacher, raw = setup_run(tmp_path)
    got = {}
    for name in ("builtin", "builtin-wide"):
        raw["data"]["train"] = name
        got[name], _ = pipeline._data(parse_recipe(raw), load_restorer(teacher))
    want = [im for _, im in builtin_images("train")] + [im for _, im in builtin_images("extra")]
    assert len(got["builtin-wide"]) == len(TRAIN) + len(EXTRA) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(got["builtin-wide"], want))
    assert all(np.array_equal(a, b) for a, b in zip(got["builtin"], want[: len(TRAIN)]))


def test_an_unknown_training_set_is_one_line_and_leaves_no_output_folder(tmp_path):
    _, raw = setup_run(tmp_path)
    raw["data"]["train"] = "builtin-wdie"
    with pytest.raises(ConfigError, match=r"^data.train: builtin-wdie is neither a built-in set \(builtin, "
                                          r"builtin-wide\) nor a folder$"):
        compress(parse_recipe(raw), tmp_path / "out")
    assert not (tmp_path / "out").exists()
