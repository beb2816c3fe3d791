"""Training a latent teacher: the autoencoder first, then the UNet on its latents, saved as a diffusers pipeline
folder that diffusers' own pipeline class loads and runs and that edgeir loads back exactly; a rerun takes the
finished autoencoder from the work folder; a latent restorer of either kind round-trips through
``save_pipeline``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeir.cli import main
from edgeir.errors import CheckpointError
from edgeir.load import load_restorer
from edgeir.load.save_pipeline import save_pipeline
from edgeir.models.restorer import RestorerModel
from edgeir.train.teacher import AE_WEIGHTS, train_teacher

pytest.importorskip("diffusers")
import pipelines  # tests/pipelines.py: needs diffusers

KW = {"batch": 2, "patch": 32, "workers": 0, "log_every": 1000, "lr": 1e-3}


def photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 1, (48, 48, 3)).astype(np.float32) for _ in range(2)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent-teacher")
    config = load_restorer(pipelines.ldm_sr(root / "shape")).config.model_copy(update={"provenance": {}})
    model = train_teacher(config, root / "teacher", root / "work", iters=2, ae_iters=3, images=photos(), **KW)
    return root, config, model


def test_the_teacher_is_a_pipeline_diffusers_runs_and_edgeir_loads_exactly(trained):
    root, config, model = trained
    folder = root / "teacher"
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "LDMSuperResolutionPipeline"
    loaded = load_restorer(folder)
    weights = model.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in loaded.state_dict().items())
    assert loaded.config.model_copy(update={"provenance": {}}) == config
    record = loaded.config.provenance
    assert record["trained_by"] == "edgeir.train.teacher" and record["iterations"] == 2
    assert record["autoencoder"]["iterations"] == 3
    pipe = pipelines.ldm_pipeline(folder)
    low = torch.rand(1, 3, 8, 8) * 2 - 1
    out = pipe(image=low, num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()


def test_the_autoencoder_trained_and_the_unet_on_its_latents(trained):
    root, config, model = trained
    untrained = RestorerModel(config)
    torch.manual_seed(0)
    fresh = RestorerModel(config)  # the initialisation training started from (seed 0)
    ae = model.codec.autoencoder.state_dict()
    assert any(not torch.equal(v, fresh.codec.autoencoder.state_dict()[k]) for k, v in ae.items())
    assert untrained.config == model.config.model_copy(update={"provenance": {}})
    assert (root / "work" / AE_WEIGHTS).exists()


def test_a_rerun_takes_the_finished_autoencoder_from_the_work_folder(trained, tmp_path):
    root, config, model = trained
    again = train_teacher(config, tmp_path / "again", root / "work", iters=2, ae_iters=999, images=photos(),
                          resume=True, **KW)
    ae = model.codec.autoencoder.state_dict()
    assert all(torch.equal(v, ae[k]) for k, v in again.codec.autoencoder.state_dict().items())
    assert again.config.provenance["autoencoder"]["iterations"] == 3


def test_the_cli_trains_and_fine_tunes_the_latent_preset(tmp_path):
    """The preset names only the diffusers settings it changes; its saved folder has them all, and --init
    takes it back."""
    small = ["--iters", "1", "--batch", "1", "--patch", "32", "--workers", "0", "--device", "cpu"]
    res = CliRunner().invoke(main, ["train", "sr4x-latent", "-o", str(tmp_path / "t"), "--ae-iters", "1", *small])
    assert res.exit_code == 0, res.output
    model = load_restorer(tmp_path / "t")
    assert model.config.latent.factor == 4 and model.config.task.scale == 4
    assert model.config.provenance["command"]
    res = CliRunner().invoke(main, ["train", "sr4x-latent", "-o", str(tmp_path / "tuned"), "--init",
                                    str(tmp_path / "t"), *small])
    assert res.exit_code == 0, res.output
    tuned = load_restorer(tmp_path / "tuned")
    ae = model.codec.autoencoder.state_dict()  # fine-tuning moves the UNet, never the autoencoder
    assert all(torch.equal(v, ae[k]) for k, v in tuned.codec.autoencoder.state_dict().items())
    assert tuned.config.provenance["history"]


def test_init_from_another_latent_architecture_is_one_line(trained, tmp_path):
    root, _, _ = trained
    other = load_restorer(pipelines.kl_restorer(tmp_path / "kl")).config
    with pytest.raises(CheckpointError, match=r"--init .*: its \w+\.\S+ is .* where the preset's is "):
        train_teacher(other, tmp_path / "x", tmp_path / "w", iters=1, init=root / "teacher", images=photos(), **KW)


@pytest.mark.parametrize("make", [pipelines.ldm_sr, pipelines.kl_restorer])
def test_save_pipeline_round_trips_both_kinds(make, tmp_path):
    model = load_restorer(make(tmp_path / "pipe"))
    back = load_restorer(save_pipeline(model, tmp_path / "out"))
    assert back.config == model.config and back.digest() == model.digest()  # provenance included


def test_what_diffusers_has_no_form_for_is_refused_in_one_line(tmp_path):
    from conftest import tiny_config

    with pytest.raises(CheckpointError, match="not written as a diffusers pipeline: it samples in pixel space"):
        save_pipeline(RestorerModel(tiny_config()), tmp_path / "x")
    assert not (tmp_path / "x").exists()
