"""Restorers that are not edgeir's own go through save/load, compress and export with their real sizes and
their own output: a torch module with another calling convention, adapted by ``CallAdapter`` and rebuilt by a
named factory (``ExternalNetSpec``), and a diffusers ``UNet2DModel`` that predicts the whole image. What
cannot work (saving an adapter nothing can rebuild, pruning a network edgeir cannot describe, fine-tuning
another network from a preset) is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import tiny_diffusers_unet
from torch import nn

from edgeir.bundle import load_bundle
from edgeir.cli import main
from edgeir.compress.cost import macs, params
from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
from edgeir.data.images import Picture, write_image
from edgeir.errors import CheckpointError, ConfigError
from edgeir.export.bundle import export_bundle
from edgeir.export.restore import feeds
from edgeir.graphs.ort import open_session
from edgeir.load import load_restorer, save_restorer
from edgeir.models.config import ExternalNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.denoiser import CallAdapter
from edgeir.models.external import network_factory
from edgeir.models.restorer import RestorerModel
from edgeir.tasks import Degraded, SRTask


class Foreign(nn.Module):
    """Somebody else's restorer: ``net(concat(x_t, condition), t)``, working at half resolution."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.down = nn.Conv2d(in_channels, width, 3, stride=2, padding=1)
        self.time = nn.Linear(1, width)
        self.up = nn.ConvTranspose2d(width, 3, 2, stride=2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.up(F.silu(self.down(x) + self.time(t[:, None] / 1000)[:, :, None, None]))


@network_factory
def foreign_net(width: int = 8, cond_channels: int = 3) -> nn.Module:
    return CallAdapter(Foreign(3 + cond_channels, width), lambda m, x, t, c: m(torch.cat([x, c], 1), t))


CALLED = []


def unmarked(**kwargs) -> nn.Module:
    CALLED.append(kwargs)
    return foreign_net()


FACTORY = f"{__name__}:foreign_net"


def foreign_restorer(width: int = 8, steps: int = 2) -> RestorerModel:
    torch.manual_seed(0)
    spec = ExternalNetSpec(factory=FACTORY, kwargs={"width": width}, multiple_of=2)
    config = RestorerConfig(task=SRTask(scale=2), network=spec, sampler=SamplerConfig(steps=steps))
    return RestorerModel(config).eval()


def probe(size: int = 32, cond_channels: int = 3, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 3, size, size, generator=g), torch.tensor([900.0, 20.0]),
            torch.randn(2, cond_channels, size, size, generator=g))


def same_weights(a: RestorerModel, b: RestorerModel) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def tiny_recipe(tmp_path, teacher, stage: dict) -> dict:
    """A recipe running ``stage`` on ``teacher`` with two 40 px training images and one 24 px eval image, the
    way tests/test_compress_pipeline.py keeps stages cheap."""
    rng = np.random.default_rng(0)
    for split, n, size in (("train", 2, 40), ("eval", 1, 24)):
        for i in range(n):
            image = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
            write_image(tmp_path / split / f"{i}.png", Picture(image, None, 8, False))
    return {"name": "tiny", "teacher": str(teacher), "task": "sr", "seed": 0,
            "data": {"train": str(tmp_path / "train"), "eval": str(tmp_path / "eval"), "eval_size": 16},
            "stages": [stage], "targets": {"latency_ms": 1e6}}


def one_line(e: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(e.value)
    assert "\n" not in text and all(p in text for p in parts), text


# --- a CallAdapter-wrapped module, rebuilt by its factory ---------------------------------------------------

def test_an_adapted_module_round_trips_with_its_own_sizes(tmp_path):
    r = foreign_restorer()
    assert isinstance(r.denoiser.net, CallAdapter)
    save_restorer(r, tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["network"]
    assert saved == {"type": "external", "factory": FACTORY, "kwargs": {"width": 8}, "multiple_of": 2}

    loaded = load_restorer(tmp_path / "m")
    assert isinstance(loaded.denoiser.net, CallAdapter) and same_weights(loaded, r)
    assert loaded.config == r.config and loaded.config.multiple_of == 2
    # Foreign(6, 8): 6*8*9 + 8 down, 8 + 8 time, 8*3*4 + 3 up
    assert params(loaded) == sum(p.numel() for p in r.parameters()) == 432 + 8 + 16 + 96 + 3
    # at 16x16: the down conv's 8 outputs x 6 inputs x 9 taps, the transposed up conv's 8 x 3 x 4 taps; the
    # linear's 8
    assert macs(loaded, 32, 32) == 16 * 16 * (8 * 6 * 9 + 8 * 3 * 4) + 8
    with torch.no_grad():
        assert torch.equal(loaded.denoiser(*probe()), r.denoiser(*probe()))


def test_an_adapter_nothing_can_rebuild_is_not_saved(tmp_path):
    r = foreign_restorer()
    default = RestorerConfig(task=SRTask(scale=2))  # an edge_unet: what a plain config says
    with pytest.raises(CheckpointError) as e:
        save_restorer(RestorerModel(default, net=r.denoiser.net), tmp_path / "m")
    one_line(e, str(tmp_path / "m"), "not saved", "CallAdapter", "edge_unet", "ExternalNetSpec", "@network_factory")
    wider = foreign_restorer(width=16)
    with pytest.raises(CheckpointError) as e:  # the factory's kwargs build another size
        save_restorer(RestorerModel(r.config, net=wider.denoiser.net), tmp_path / "m")
    one_line(e, "not saved", "module.down.bias is (16,)", "(8,)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("factory, kwargs, message", [
    (f"{__name__}:unmarked", {}, "is not marked @edgeir.models.external.network_factory"),
    ("subprocess:run", {"args": ["touch", "pwned"]}, "is not marked"),
    ("no_such_package.nets:build", {}, "cannot import no_such_package.nets"),
    (f"{__name__}:missing", {}, f"{__name__} has no missing"),
    (FACTORY, {"depth": 3}, "unexpected keyword argument 'depth'"),
])
def test_a_factory_that_cannot_build_is_one_line_and_never_called_unmarked(tmp_path, monkeypatch, factory,
                                                                           kwargs, message):
    monkeypatch.chdir(tmp_path)
    save_restorer(foreign_restorer(), tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    raw["network"].update(factory=factory, kwargs=kwargs)
    (tmp_path / "m" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError) as e:
        load_restorer(tmp_path / "m")
    one_line(e, str(tmp_path / "m"), "cannot build the network", message)
    assert CALLED == [] and not (tmp_path / "pwned").exists()


def test_compress_distills_an_adapted_module_and_prune_refuses_it_in_one_line(tmp_path):
    save_restorer(foreign_restorer(steps=4), tmp_path / "teacher")
    distill = {"kind": "distill", "method": "direct", "steps": 1, "iterations": 2, "batch": 2, "patch": 16,
               "pairs": 4, "lr": 1e-3, "save_every": 1}
    recipe = tiny_recipe(tmp_path, tmp_path / "teacher", distill)
    report = compress(parse_recipe(recipe), tmp_path / "out")
    assert report["status"] == "completed"
    student = load_restorer(tmp_path / "out" / report["final"])
    teacher = load_restorer(tmp_path / "teacher")
    assert student.config.network == teacher.config.network and student.config.sampler.timesteps == [999]
    assert report["stages"][0]["metrics"]["params"] == params(student) == params(teacher)
    assert not same_weights(student, teacher)  # it was trained

    recipe["stages"] = [{"kind": "prune", "ratio": 0.3}]
    with pytest.raises(ConfigError) as e:
        compress(parse_recipe(recipe), tmp_path / "pruned")
    one_line(e, "stages.0.prune:", "edge_unet or diffusers_unet2d", "not external")
    assert not (tmp_path / "pruned").exists()  # refused before the run began


def test_an_adapted_module_exports_with_its_own_multiple_and_output(tmp_path):
    r = foreign_restorer(steps=1)
    save_restorer(r, tmp_path / "m")
    export_bundle(str(tmp_path / "m"), tmp_path / "b", size="2:32:64", batch="1:2:2")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.manifest.multiple_of == bundle.manifest.min_size == 2  # the network's, not EdgeUNet's 16
    unet = next(v for v in bundle.manifest.variants if v.kind == "unet")
    session = open_session(bundle.read(unet.graph), threads=1)
    x, t, c = probe(size=14)  # any even size
    (out,) = session.run(None, {"x_t": x.numpy(), "t": t.numpy(), "condition": c.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, r.denoiser(x, t, c).numpy(), atol=1e-5)


# --- a diffusers UNet2DModel that predicts the whole image ------------------------------------------------------

def image_unet_folder(tmp_path, steps: int = 1):
    """A diffusers folder whose edgeir.json says the UNet's clean sample is the image itself (times 4)."""
    pytest.importorskip("diffusers")
    unet = tiny_diffusers_unet().eval()
    unet.save_pretrained(tmp_path / "unet")
    (tmp_path / "unet" / "edgeir.json").write_text(json.dumps({
        "task": {"name": "sr", "scale": 2}, "prediction": "x0", "target": "image", "residual_scale": 4.0,
        "sampler": {"steps": steps}}))
    return tmp_path / "unet", unet


def test_a_whole_image_diffusers_unet_restores_to_its_own_prediction(tmp_path):
    folder, unet = image_unet_folder(tmp_path)
    r = load_restorer(folder)
    assert r.config.target == "image" and r.config.multiple_of == 2
    _, _, cond = probe()
    noise = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = unet(torch.cat([noise, cond], 1), torch.full((2,), 999.0)).sample / 4  # one x0 step from t=999
        restored = r.restore_tensor(cond, noise)
    expected = (pred * 0.5 + 0.5).clamp(0, 1)
    assert ((expected > 0) & (expected < 1)).float().mean() > 0.9  # the comparison is not all clipping
    torch.testing.assert_close(restored, expected, atol=1e-6, rtol=0)
    over_base = ((cond[:, :3] + pred) * 0.5 + 0.5).clamp(0, 1)  # what a residual reading would give
    assert (restored - over_base).abs().mean() > 0.1

    save_restorer(r, tmp_path / "ours")
    again = load_restorer(tmp_path / "ours")
    assert again.config == r.config and same_weights(again, r)
    with torch.no_grad():
        assert torch.equal(again.restore_tensor(cond, noise), restored)


def test_a_whole_image_diffusers_unet_is_pruned_recovered_and_exported(tmp_path):
    folder, _ = image_unet_folder(tmp_path)
    source = load_restorer(folder)
    prune = {"kind": "prune", "ratio": 0.3, "round_to": 4, "importance": "magnitude", "latency_runs": 0,
             "recovery": {"steps": 2, "batch": 2, "patch": 16}}
    report = compress(parse_recipe(tiny_recipe(tmp_path, folder, prune)), tmp_path / "out")
    pruned = load_restorer(tmp_path / "out" / report["final"])
    assert pruned.config.target == "image" and pruned.config.network.resized
    assert report["stages"][0]["metrics"]["params"] == params(pruned) == sum(p.numel() for p in
                                                                              pruned.parameters())
    assert params(pruned) < 0.8 * params(source)

    export_bundle(str(tmp_path / "out" / report["final"]), tmp_path / "b", size="2:32:64", batch="1:2:2")
    bundle = load_bundle(tmp_path / "b")
    variant = next(v for v in bundle.manifest.variants if v.name == "restore-fp32-float")
    assert variant.target == "image" and bundle.manifest.multiple_of == 2
    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 1, (16, 16, 3)) * 255).round().astype(np.float32) / 255  # one 32 px tile of output
    d = Degraded(image, None)
    noise = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    (out,) = open_session(bundle.read(variant.graph), threads=1).run(None, feeds(SRTask(scale=2), variant, 2, d,
                                                                                 noise))
    cond = torch.from_numpy(SRTask(scale=2).condition(d)).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = pruned.restore_tensor(cond, torch.from_numpy(noise))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out[0], expected, atol=1e-3)


# --- fine-tuning another network from a preset --------------------------------------------------------------

def test_train_init_from_a_diffusers_folder_is_one_line_naming_the_mismatch(tmp_path):
    folder, _ = image_unet_folder(tmp_path)
    res = CliRunner().invoke(main, ["train", "sr4x", "--init", str(folder), "-o", str(tmp_path / "out"),
                                    "--iters", "1", "--workers", "0"])
    assert res.exit_code == 2, res.output
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: --init {folder}: its network.type is 'diffusers_unet2d' where the preset's is "
                           "'edge_unet'"), line
    assert not (tmp_path / "out").exists()
