"""Latent restorers exported and run: ``edgeir export`` on a diffusers pipeline folder writes a bundle whose
restore graph holds encoder (where the UNet takes a latent), sampler loop and decoder, with the autoencoder's
graphs beside it; the runtime restores with it what torch (held to diffusers) computes, to the graph gate, on
a frame of one tile; bands join exactly; ``edgeir restore`` and recomposing from the bundle work; a bundle
missing its decoder is refused in one line, and is never written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from edgeir.bundle.io import load_bundle, write_bundle
from edgeir.cli import main
from edgeir.data.images import Picture
from edgeir.diffusion.steps import noise_channels
from edgeir.errors import CheckpointError
from edgeir.load import load_restorer
from edgeir.runtime import Restorer
from edgeir.tasks import Degraded

pytest.importorskip("diffusers")
import pipelines  # tests/pipelines.py: needs diffusers

STEPS = 4
GATE = 1e-3  # the FP32 restore graph's gate against the host loop (edgeir.export.restore)
PIPELINES = {"ldm_sr": pipelines.ldm_sr, "kl_restorer": pipelines.kl_restorer}


@pytest.fixture(scope="module", params=list(PIPELINES))
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    folder = PIPELINES[request.param](root / "pipe")
    res = CliRunner().invoke(main, ["export", str(folder), "-o", str(root / "bundle"), "--size", "16:32:64",
                                    "--steps", str(STEPS), "--graph", "all"])
    assert res.exit_code == 0, res.output
    return folder, root / "bundle"


def test_the_bundle_declares_its_latent_space_and_carries_the_autoencoder(exported):
    folder, bundle = exported
    cfg = load_restorer(folder).config
    m = load_bundle(bundle).manifest
    assert m.latent is not None and m.latent.space == cfg.latent
    expected = ["encoder.onnx", "decoder.onnx"] if cfg.latent.condition == "latent" else ["decoder.onnx"]
    assert m.latent.files == expected and set(expected) <= set(m.files)
    restore = m.variant()
    assert restore.sample_channels == cfg.sample_channels
    assert restore.noise_channels == noise_channels(restore.steps, cfg.sample_channels)
    checks = {c["file"]: c for c in m.producer["checks"]}
    for name in [*expected, restore.graph, "unet.fp32.onnx", "sampler.fp32.onnx"]:
        assert checks[name]["tensorrt_problems"] == [], name
    for name in expected:
        assert max(checks[name]["max_abs_diff"].values()) <= 1e-4


def test_the_runtime_restores_what_torch_and_diffusers_do_on_one_tile(exported):
    folder, bundle = exported
    restorer = load_restorer(folder).eval()
    image = pipelines.one_tile_frame(restorer)
    out = Restorer.load(bundle, variant="restore-fp32-float").restore_picture(Picture(image, None, 8, False)).rgb
    noise = pipelines.runtime_noise(restorer, image, STEPS)
    cond = torch.from_numpy(restorer.condition(Degraded(image))).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = restorer.restore_tensor(cond, torch.from_numpy(noise), restorer.steps(STEPS))[0]
        # diffusers' own components stepped by its scheduler, from the same latents (its LDM pipeline takes no
        # latents, only a generator: test_latent_pipelines holds torch to it that way)
        if restorer.config.latent.condition == "latent":
            diffusers_out = pipelines.reference_loop(folder, cond, torch.from_numpy(noise), STEPS)[0]
            assert (expected - diffusers_out).abs().max() <= 1e-4
    assert out.shape == tuple(expected.shape[1:]) + (3,)
    assert np.abs(out - expected.permute(1, 2, 0).numpy()).max() <= GATE


def test_bands_join_exactly(exported):
    folder, bundle = exported
    scale = load_restorer(folder).config.task.scale
    frame = (np.random.default_rng(4).random((96 // scale, 80 // scale, 3)) * 255).astype(np.uint8)
    whole = Restorer.load(bundle).restore(frame)
    banded = Restorer.load(bundle, max_call_pixels=40 * 80)
    assert len(banded._plan(96, 80, 0, banded.variant)) > 1
    assert whole.shape == (96, 80, 3)
    np.testing.assert_array_equal(banded.restore(frame), whole)


def test_restore_cli_and_recomposing_from_the_bundle(exported, tmp_path):
    folder, bundle = exported
    scale = load_restorer(folder).config.task.scale
    Image.fromarray((np.random.default_rng(5).random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    res = CliRunner().invoke(main, ["restore", str(bundle), str(tmp_path / "a.png"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "out" / "a.png").size == (48 * scale, 40 * scale)
    res = CliRunner().invoke(main, ["export", str(bundle), "-o", str(tmp_path / "again"), "--tile", "16"])
    assert res.exit_code == 0, res.output
    again = load_bundle(tmp_path / "again").manifest
    assert again.latent == load_bundle(bundle).manifest.latent and again.variant().tile == 16
    res = CliRunner().invoke(main, ["restore", str(tmp_path / "again"), str(tmp_path / "a.png"), "-o",
                                    str(tmp_path / "out16")])
    assert res.exit_code == 0, res.output


def test_a_bundle_without_its_decoder_is_refused_in_one_line(exported, tmp_path):
    _, bundle = exported
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "decoder.onnx").unlink()
    with pytest.raises(CheckpointError, match="decoder.onnx"):
        load_bundle(broken)
    res = CliRunner().invoke(main, ["restore", str(broken), str(bundle / "manifest.json"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    files = {p.name: p for p in bundle.iterdir() if p.name not in ("manifest.json", "decoder.onnx")}
    with pytest.raises(CheckpointError, match="decoder.onnx is not among the bundle's files"):
        write_bundle(tmp_path / "unwritten", files, load_bundle(bundle).manifest)
    assert not (tmp_path / "unwritten").exists()
