"""Latent restorers from diffusers pipeline folders: loaded without a sidecar where the folder says
everything, sampled as diffusers' own pipeline samples them (the same initial latents in, the same decoded
image out, to 1e-4), saved in edgeir's format and loaded back, and refused in one line where not supported."""

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeir.cli import main
from edgeir.errors import CheckpointError
from edgeir.load import load_restorer, save_restorer
from edgeir.tasks import Degraded

diffusers = pytest.importorskip("diffusers")
import pipelines

PARITY = 1e-4  # max abs difference on the decoded image in [0, 1], FP32


@pytest.fixture(scope="module")
def ldm(tmp_path_factory):
    return pipelines.ldm_sr(tmp_path_factory.mktemp("ldm") / "pipe")


@pytest.fixture(scope="module")
def kl(tmp_path_factory):
    return pipelines.kl_restorer(tmp_path_factory.mktemp("kl") / "pipe")


def test_ldm_sr_needs_no_sidecar(ldm):
    r = load_restorer(ldm)
    cfg = r.config
    assert (cfg.task.name, cfg.task.scale) == ("sr", 4)
    assert cfg.latent.factor == 4 and cfg.latent.channels == 3 and cfg.latent.condition == "lowres"
    assert cfg.multiple_of == 8 and cfg.prediction == "eps" and cfg.autoencoder.scaling_factor == 1.0
    assert cfg.schedule.beta_schedule == "scaled_linear" and cfg.sampler.kind == "ddim"


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm"])
def test_ldm_sr_samples_as_diffusers_pipeline_does(tmp_path, scheduler):
    folder = pipelines.ldm_sr(tmp_path / "pipe", scheduler=scheduler)
    pipe = pipelines.ldm_pipeline(folder)
    r = load_restorer(folder)
    lr = torch.rand(1, 3, 16, 24) * 2 - 1
    # The pipeline draws its initial latents from the generator and DDPM's step noise from torch's global
    # generator (it passes none to the scheduler); ours draw the same in the same order.
    torch.manual_seed(5)
    expected = pipe(image=lr, num_inference_steps=6, eta=0.0, generator=torch.Generator().manual_seed(3),
                    output_type="pt").images
    noise = torch.randn((1, *r.sample_size(16, 24)), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    with torch.no_grad():
        ours = r.restore_tensor(lr, noise, r.steps(6))
    assert ours.shape == expected.shape == (1, 3, 64, 96)
    assert (ours - expected).abs().max() < PARITY


def test_kl_restorer_samples_as_diffusers_components_do(kl):
    r = load_restorer(kl)
    cfg = r.config
    assert cfg.task.name == "deblur" and cfg.latent.channels == 4 and cfg.latent.condition == "latent"
    assert cfg.prediction == "v" and cfg.autoencoder.scaling_factor == 0.5 and cfg.autoencoder.shift_factor == 0.1
    d = Degraded(np.random.default_rng(0).random((16, 20, 3), dtype=np.float32))
    cond = torch.from_numpy(r.condition(d)).permute(2, 0, 1)[None]
    noise = torch.randn((1, *r.sample_size(16, 20)), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = r.restore_tensor(cond, noise, r.steps(5))
    expected = pipelines.reference_loop(kl, cond, noise, 5)
    assert ours.shape == (1, 3, 16, 20)
    assert (ours - expected).abs().max() < PARITY


def test_lowres_condition_with_a_kl_autoencoder(tmp_path):
    folder = pipelines.kl_restorer(tmp_path / "pipe", task={"name": "sr", "scale": 2}, condition="lowres")
    r = load_restorer(folder)
    d = Degraded(np.random.default_rng(0).random((8, 12, 3), dtype=np.float32))
    out = r.restore(d)
    assert out.shape == (16, 24, 3) and np.isfinite(out).all()


def test_latent_restorer_round_trips_through_our_format(ldm, tmp_path):
    r = load_restorer(ldm)
    save_restorer(r, tmp_path / "ours")
    assert {p.name for p in (tmp_path / "ours").iterdir()} == {"config.json", "model.safetensors",
                                                                 "autoencoder.safetensors"}
    r2 = load_restorer(tmp_path / "ours")
    d = Degraded(np.random.default_rng(0).random((8, 8, 3), dtype=np.float32))
    assert np.array_equal(r.restore(d, seed=2), r2.restore(d, seed=2))
    assert r.digest() == r2.digest()


def test_odd_sizes_are_padded_and_cropped_back(kl):
    r = load_restorer(kl)
    d = Degraded(np.random.default_rng(0).random((13, 17, 3), dtype=np.float32))
    assert r.restore(d).shape == (13, 17, 3)


def test_eval_runs_on_a_pipeline_folder(ldm):
    res = CliRunner().invoke(main, ["eval", "--model", str(ldm), "--steps", "2", "--size", "32", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert all(np.isfinite(v) for side in ("model", "baseline") for v in data[side].values())


def broken(tmp_path, source, edit):
    folder = tmp_path / "pipe"
    shutil.copytree(source, folder)
    edit(folder)
    return folder


def edit_json(path, **changes):
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


UNSUPPORTED = {
    "text-conditioned": (lambda f: edit_json(f / "model_index.json", _class_name="StableDiffusionUpscalePipeline",
                                             text_encoder=["transformers", "CLIPTextModel"],
                                             unet=["diffusers", "UNet2DConditionModel"]),
                         "StableDiffusionUpscalePipeline is not supported: it is text-conditioned"),
    "euler": (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", _class_name="EulerDiscreteScheduler"),
              "scheduler EulerDiscreteScheduler is not supported"),
    "dpm-solver": (lambda f: edit_json(f / "scheduler" / "scheduler_config.json",
                                       _class_name="DPMSolverMultistepScheduler"),
                   "scheduler DPMSolverMultistepScheduler is not supported"),
    "thresholding": (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", thresholding=True),
                     "thresholding"),
    "unknown setting": (lambda f: edit_json(f / "scheduler" / "scheduler_config.json", karras_sigmas=True),
                        "setting karras_sigmas is not supported"),
    "wrong unet": (lambda f: edit_json(f / "unet" / "config.json", in_channels=7),
                   "unet in_channels is 7, but the latent"),
    "extra component": (lambda f: edit_json(f / "model_index.json", safety_checker=["x", "Checker"]),
                        "does not know its safety_checker"),
    "pickle": (lambda f: (f / "unet" / "diffusion_pytorch_model.safetensors").rename(
        f / "unet" / "diffusion_pytorch_model.bin"), "refusing to unpickle"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_pipelines_get_one_line_and_exit_2(ldm, tmp_path, case):
    edit, message = UNSUPPORTED[case]
    folder = broken(tmp_path, ldm, edit)
    with pytest.raises(CheckpointError, match=message):
        load_restorer(folder)
    res = CliRunner().invoke(main, ["eval", "--model", str(folder), "--size", "32"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_a_kl_restorer_without_sidecar_says_what_is_missing(kl, tmp_path):
    folder = broken(tmp_path, kl, lambda f: (f / "edgeir.json").unlink())
    with pytest.raises(CheckpointError, match="does not record this pipeline's task; add an edgeir.json"):
        load_restorer(folder)


def test_a_sidecar_condition_the_task_cannot_take_is_one_line(kl, tmp_path):
    folder = broken(tmp_path, kl, lambda f: edit_json(f / "edgeir.json", condition="lowres"))
    with pytest.raises(CheckpointError, match="low-resolution image needs super-resolution"):
        load_restorer(folder)
