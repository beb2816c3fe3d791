"""Latent restorers compressed: ``edgeir compress`` runs distill, prune and quantize on an LDM super-resolution
pipeline folder and on a KL latent restorer (tiny random pipelines unlike each other), in latent space, with
the autoencoder carried through unchanged; every stage is measured and gated like a pixel-space one, and the
final stage exports to a bundle that restores."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from edgeir.cli import main
from edgeir.compress import distill
from edgeir.compress.recipe import parse_recipe
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import builtin_images
from edgeir.data.images import Picture
from edgeir.errors import ConfigError
from edgeir.graphs.qdq import has_qdq
from edgeir.load import load_restorer
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.tiny_decoder import TinyDecoder
from edgeir.report.markdown import render
from edgeir.runtime import Restorer
from edgeir.tasks import Degraded

pytest.importorskip("diffusers")
import pipelines  # tests/pipelines.py: needs diffusers

PIPELINES = {"ldm_sr": pipelines.ldm_sr, "kl_restorer": pipelines.kl_restorer}
TASKS = {"ldm_sr": "sr", "kl_restorer": "deblur"}
SMALL = {"iterations": 2, "batch": 2, "patch": 32, "pairs": 2, "lr": 1e-3, "save_every": 1}


def recipe(name: str, teacher, stages: list[dict]) -> dict:
    return {"name": f"latent-{name}", "teacher": str(teacher), "task": TASKS[name], "seed": 0,
            "data": {"train": "builtin", "eval": "builtin", "eval_size": 32, "eval_images": 1}, "stages": stages}


# The order a latent restorer is made small in: steps, UNet width, decoder, then INT8 of every part that runs.
STAGES = [
    {"kind": "distill", "method": "direct", "steps": 2, "teacher_steps": 4, **SMALL},
    {"kind": "prune", "ratio": 0.25, "round_to": 1, "taylor_batches": 1, "latency_runs": 1,
     "recovery": {"steps": 2, "batch": 2, "patch": 32}},
    {"kind": "decoder", "iterations": 3, "batch": 2, "patch": 32, "save_every": 1, "latency_runs": 1,
     "gates": {"max_psnr_drop": 50}},
    {"kind": "quantize", "subset_size": 4, "crop": 32, "max_psnr_drop": 50, "min_detail_kept": 0.01},
]
# Narrower than the tiny pipelines' own decoders, so the stage makes them smaller.
DECODER_WIDTHS = {"ldm_sr": [8, 8, 4], "kl_restorer": [8, 4]}
# Every graph a restoration runs: the LDM pipeline's UNet takes the low-resolution image, not a latent.
PARTS = {"ldm_sr": ["unet", "decoder"], "kl_restorer": ["unet", "decoder", "encoder"]}
KINDS = ["distill", "prune", "decoder", "quantize"]


@pytest.fixture(scope="module", params=list(PIPELINES))
def compressed(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    folder = PIPELINES[request.param](root / "pipe")
    distilled, pruned, dec, quant = STAGES
    stages = [distilled, pruned, {**dec, "channels": DECODER_WIDTHS[request.param]},
              {**quant, "parts": PARTS[request.param]}]
    (root / "recipe.json").write_text(json.dumps(recipe(request.param, folder, stages)))
    res = CliRunner().invoke(main, ["compress", str(folder), "--recipe", str(root / "recipe.json"), "-o",
                                    str(root / "out")])
    assert res.exit_code == 0, res.output
    assert "03-decoder decoder at 32x32 in onnxruntime:" in res.output
    return request.param, folder, root / "out"


def test_every_stage_is_a_latent_restorer_with_the_teachers_autoencoder(compressed):
    _, folder, out = compressed
    teacher = load_restorer(folder)
    report = json.loads((out / "report.json").read_text())
    kinds = [s["kind"] for s in report["stages"]]
    assert report["status"] == "completed" and kinds == KINDS
    ae = teacher.codec.autoencoder.state_dict()
    for stage in report["stages"]:
        model = load_restorer(out / stage["folder"])
        assert model.config.latent == teacher.config.latent
        assert all(torch.equal(v, ae[k]) for k, v in model.codec.autoencoder.state_dict().items())
        assert len(model.steps()) == 2
        m = stage["metrics"]
        assert all(np.isfinite(m[k]) for k in ("psnr", "ssim", "haarpsi", "detail", "latency_ms"))
    distilled, pruned, _, _ = report["stages"]
    assert distilled["info"]["timesteps"] == load_restorer(out / distilled["folder"]).config.sampler.timesteps
    assert pruned["metrics"]["params"] < distilled["metrics"]["params"]
    assert pruned["metrics"]["macs"] < distilled["metrics"]["macs"]
    assert report["teacher"]["macs_per_step"] > 0


def test_the_decoder_stage_replaces_only_the_decoder_and_reports_its_share(compressed):
    name, _, out = compressed
    report = json.loads((out / "report.json").read_text())
    pruned, stage = report["stages"][1:3]
    model = load_restorer(out / stage["folder"])
    assert isinstance(model.codec.decoder, TinyDecoder)
    assert list(model.codec.spec.decoder.config.channels) == DECODER_WIDTHS[name] == stage["info"]["channels"]
    assert (out / stage["folder"] / "decoder.safetensors").exists()
    before = load_restorer(out / pruned["folder"]).denoiser.net.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in model.denoiser.net.state_dict().items())
    costs = stage["info"]["costs"]
    assert costs["after"]["decoder_params"] == sum(p.numel() for p in model.codec.decoder.parameters())
    assert costs["after"]["decoder_params"] < costs["before"]["decoder_params"]
    assert costs["after"]["decoder_macs"] < costs["before"]["decoder_macs"] == pruned["metrics"]["decoder_macs"]
    assert stage["metrics"]["decoder_macs"] == costs["after"]["decoder_macs"]
    timed = stage["info"]["latency_ms_onnxruntime"]
    for when in ("before", "after"):
        parts = timed[when]
        assert 0 < parts["decoder_share"] < 1
        assert parts["restore"] == pytest.approx(parts.get("encoder", 0) + 2 * parts["unet"] + parts["decoder"])
    assert ("encoder" in timed["before"]) == (model.config.latent.condition == "latent")
    table = render(report, [])
    header = next(line for line in table.splitlines() if line.startswith("| stage"))
    assert "autoencoder GMACs / image" in header
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len({line.count("|") for line in rows}) == 1  # every row has the header's columns


def test_the_quantize_stage_makes_every_part_that_runs_int8(compressed):
    name, _, out = compressed
    report = json.loads((out / "report.json").read_text())
    decoded, stage = report["stages"][2:]
    folder = out / stage["folder"]
    model = load_restorer(folder)
    assert isinstance(model.denoiser.net, OnnxNet)
    for part in PARTS[name][1:]:
        graph = getattr(model.codec, part)
        assert isinstance(graph, OnnxNet) and graph.path == folder / f"{part}.int8.onnx"
        assert has_qdq(onnx.load(str(graph.path)))
        assert stage["info"]["codec"][part]["tensorrt_problems"] == []
        assert stage["info"]["codec"][part]["calibration_samples"] >= 1
        # costs are the architecture's, whatever its number format
        assert stage["metrics"][f"{part}_macs"] == decoded["metrics"][f"{part}_macs"]
    assert stage["info"]["tensorrt_problems"] == []
    assert ("encoder" in model.codec.spec.graphs) == ("encoder" in PARTS[name])


def test_quantize_parts_are_checked_against_the_restorer(tmp_path):
    from edgeir.compress import quantize

    ldm = load_restorer(pipelines.ldm_sr(tmp_path / "pipe"))
    settings = quantize.QuantizeSettings(parts=["encoder"])
    with pytest.raises(ConfigError, match="never runs its encoder"):
        quantize.run(settings, _context(ldm, tmp_path / "work"))
    with pytest.raises(ConfigError, match="names a part twice"):
        parse_recipe(recipe("ldm_sr", "x", [{"kind": "quantize", "parts": ["unet", "unet"]}]))


def test_the_final_stage_exports_and_restores(compressed, tmp_path):
    """On a frame of one tile, the bundle restores what the stage's model does from the same noise, within
    INT8's own error (the runtime's CPU encoding of an INT8 graph differs from the stage's by a few levels)."""
    _, _, out = compressed
    final = out / "stages" / "04-quantize"
    res = CliRunner().invoke(main, ["export", str(final), "-o", str(tmp_path / "bundle"), "--size", "32:32:64",
                                    "--precision", "int8"])
    assert res.exit_code == 0, res.output
    model = load_restorer(final)
    assert has_qdq(onnx.load(str(tmp_path / "bundle" / "decoder.onnx")))  # the stage's INT8 decoder, shipped
    runtime = Restorer.load(tmp_path / "bundle", variant="restore-int8-float")
    assert runtime.manifest.latent.space == model.config.latent
    image = pipelines.one_tile_frame(model)
    got = runtime.restore_picture(Picture(image, None, 8, False)).rgb
    noise = pipelines.runtime_noise(model, image, len(model.steps()))
    cond = torch.from_numpy(model.condition(Degraded(image))).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = model.restore_tensor(cond, torch.from_numpy(noise))[0].permute(1, 2, 0).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 0.01
    res = CliRunner().invoke(main, ["export", str(tmp_path / "bundle"), "-o", str(tmp_path / "again"),
                                    "--step-scales"])
    assert res.exit_code == 2 and "a latent restorer's bundle keeps its shared scales" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "again").exists()


def _context(model, tmp_path) -> StageContext:
    images = [im[:64, :64] for _, im in builtin_images("train")[:2]]
    return StageContext(teacher=model, student=model, train_images=images, eval_cases=[], work_dir=tmp_path,
                        seed=0)


def test_direct_distillation_can_match_decoded_images(tmp_path):
    """``match: image`` regresses the decoder's images of the student's and the teacher's latents: its loss is
    in pixel space, so it differs from the latent loss, and training moves the UNet, never the autoencoder."""
    teacher = load_restorer(pipelines.kl_restorer(tmp_path / "pipe"))
    settings = distill.DistillSettings(method="direct", steps=1, teacher_steps=2, match="image", **SMALL)
    out = distill.run(settings, _context(teacher, tmp_path / "work"))
    ae = teacher.codec.autoencoder.state_dict()
    assert all(torch.equal(v, ae[k]) for k, v in out.model.codec.autoencoder.state_dict().items())
    before, after = teacher.denoiser.net.state_dict(), out.model.denoiser.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_match_image_is_refused_for_a_pixel_space_restorer(tmp_path):
    from conftest import tiny_config

    from edgeir.models.restorer import RestorerModel

    settings = distill.DistillSettings(method="direct", steps=1, teacher_steps=2, match="image", **SMALL)
    model = RestorerModel(tiny_config())
    with pytest.raises(ConfigError, match="match: image compares decoded latents"):
        distill.run(settings, _context(model, tmp_path))
    with pytest.raises(ConfigError, match="applies to direct distillation"):
        parse_recipe(recipe("kl_restorer", "x", [{"kind": "distill", "method": "progressive", "match": "image"}]))


def test_the_decoder_stage_refuses_what_it_cannot_build_in_one_line(tmp_path):
    from conftest import tiny_config

    from edgeir.compress import decoder
    from edgeir.models.restorer import RestorerModel

    with pytest.raises(ConfigError, match="replaces a latent restorer's decoder"):
        decoder.run(decoder.DecoderSettings(), _context(RestorerModel(tiny_config()), tmp_path))
    latent = load_restorer(pipelines.kl_restorer(tmp_path / "pipe"))
    with pytest.raises(ConfigError, match=r"^decoder.channels: channels needs 2 widths for factor 2, got 3$"):
        decoder.run(decoder.DecoderSettings(channels=[8, 8, 8]), _context(latent, tmp_path / "work"))


def test_a_vq_decoder_is_made_int8_with_its_codebook_search_in_float(tmp_path):
    """The search for the nearest codebook entry comes before the decoder's first convolution, so
    ``@first_conv`` keeps it (and the codebook) in floating point: INT8 steps would pick other entries."""
    from edgeir.compress import quantize
    from edgeir.evaluate import degrade_set

    ldm = load_restorer(pipelines.ldm_sr(tmp_path / "pipe"))
    ctx = _context(ldm, tmp_path / "work")
    ctx.eval_cases = degrade_set(ldm.task, builtin_images("heldout")[:1], 32)
    settings = quantize.QuantizeSettings(parts=["decoder"], subset_size=len(ldm.steps()), crop=32,
                                         max_psnr_drop=50, min_detail_kept=0.01)
    out = quantize.run(settings, ctx)
    kept = out.info["codec"]["decoder"]["keep_fp"]["@first_conv"]
    assert "argmin.0" in kept and "autoencoder.quantize.embedding" in kept
    assert out.artifacts == {"int8_decoder": "decoder.int8.onnx"} and out.model.denoiser.net is ldm.denoiser.net
    assert out.info["gate"]["nonfinite"] == 0 and out.info["codec"]["decoder"]["tensorrt_problems"] == []
    assert has_qdq(onnx.load(str(tmp_path / "work" / "decoder.int8.onnx")))


def test_progressive_distillation_halves_a_latent_restorers_steps(tmp_path):
    """Each round's states are noised latents of training crops (``RestorerModel.training_batch``)."""
    teacher = load_restorer(pipelines.ldm_sr(tmp_path / "pipe"))
    settings = distill.DistillSettings(method="progressive", steps=1, teacher_steps=2, **SMALL)
    out = distill.run(settings, _context(teacher, tmp_path / "work"))
    assert out.info["rounds"] == ["2->1"] and len(out.model.steps()) == 1
    before, after = teacher.denoiser.net.state_dict(), out.model.denoiser.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
