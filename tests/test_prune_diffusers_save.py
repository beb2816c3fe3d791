"""A pruned diffusers UNet2DModel is saved in our folder format (its config records the per-layer sizes) and
loads without torch-pruning; the prune stage takes diffusers restorers."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_diffusers_unet
from safetensors.torch import load_file, save_file
from test_prune import MAGNITUDE, inputs

from edgeir.compress.cost import macs, params
from edgeir.compress.prune import PruneSettings, prune_restorer, run
from edgeir.compress.recover import RecoverySettings
from edgeir.compress.stage import StageContext
from edgeir.errors import CheckpointError, ConfigError
from edgeir.load import load_restorer, save_restorer
from edgeir.models.config import RestorerConfig
from edgeir.models.denoiser import CallAdapter
from edgeir.models.restorer import RestorerModel

pytest.importorskip("diffusers")
SIZES = [(16, 16), (32, 16)]


def diffusers_restorer() -> RestorerModel:
    from edgeir.models.diffusers_unet import DiffusersUNet

    unet = tiny_diffusers_unet()
    config = RestorerConfig.model_validate({"task": {"name": "sr", "scale": 2}, "sampler": {"steps": 2},
                                            "network": {"type": "diffusers_unet2d", "config": dict(unet.config)}})
    return RestorerModel(config, net=DiffusersUNet(unet)).eval()


def test_pruned_diffusers_restorer_loads_in_a_fresh_process_without_torch_pruning(tmp_path):
    r = diffusers_restorer()
    p, _ = prune_restorer(r, PruneSettings(ratio=0.3, round_to=4, **MAGNITUDE))
    resized = p.config.network.resized
    assert resized["conv_in"] == {"out_channels": 12}
    assert resized["down_blocks.0.downsamplers.0"] == {"channels": 12, "out_channels": 12}  # forward asserts it
    assert resized["mid_block.attentions.0.to_q"] == {"in_features": 24, "out_features": 24}
    assert params(p) < 0.7 * params(r) and macs(p, 32, 32) < 0.7 * macs(r, 32, 32)

    save_restorer(p, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["network"]["resized"] == resized
    batches = {f"{k}{i}": v for i, size in enumerate(SIZES) for k, v in zip("xtc", inputs(size))}
    save_file(batches, str(tmp_path / "in.safetensors"))
    code = (
        "import sys; sys.modules['torch_pruning'] = None  # any import of it now fails\n"
        "import torch; from safetensors.torch import load_file, save_file\n"
        "from edgeir.load import load_restorer\n"
        f"r = load_restorer({str(tmp_path / 'm')!r}); d = load_file({str(tmp_path / 'in.safetensors')!r})\n"
        "with torch.no_grad():\n"
        f"    y = {{f'y{{i}}': r.denoiser(d[f'x{{i}}'], d[f't{{i}}'], d[f'c{{i}}']) for i in range({len(SIZES)})}}\n"
        f"save_file(y, {str(tmp_path / 'out.safetensors')!r}); print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip() == "ok", out.stderr
    ys = load_file(str(tmp_path / "out.safetensors"))
    with torch.no_grad():
        for i, size in enumerate(SIZES):
            expected = p.denoiser(batches[f"x{i}"], batches[f"t{i}"], batches[f"c{i}"])
            assert expected.shape == (2, 3, *size)
            assert torch.allclose(ys[f"y{i}"], expected, atol=1e-5)
    loaded = load_restorer(tmp_path / "m")
    assert loaded.config.model_dump(mode="json") == p.config.model_dump(mode="json")  # JSON has no tuples
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), p.state_dict().values()))


def test_prune_stage_prunes_and_recovers_a_diffusers_restorer(tmp_path):
    source = diffusers_restorer()
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(2)]
    ctx = StageContext(teacher=source, student=source, train_images=images, eval_cases=[], work_dir=tmp_path)
    settings = PruneSettings(ratio=0.3, round_to=4, taylor_batches=1,
                             recovery=RecoverySettings(steps=3, batch=2, patch=16, feature_weight=0.1))
    out = run(settings, ctx)
    assert out.info["params"][1] < out.info["params"][0]
    assert out.info["macs_256x256"][1] < out.info["macs_256x256"][0]
    assert out.model.config.network.resized and np.isfinite(out.info["recovery_loss"]).all()
    save_restorer(out.model, tmp_path / "m")
    loaded = load_restorer(tmp_path / "m")
    x, t, c = inputs((16, 16))
    with torch.no_grad():
        assert torch.allclose(loaded.denoiser(x, t, c), out.model.denoiser(x, t, c), atol=1e-5)


def test_prune_refuses_a_network_it_cannot_describe():
    r = diffusers_restorer()
    adapted = RestorerModel(r.config, net=CallAdapter(r.denoiser.net, lambda m, x, t, c: m(x, t, c)))
    with pytest.raises(ConfigError, match="edge_unet or diffusers_unet2d"):
        prune_restorer(adapted, PruneSettings(**MAGNITUDE))


def test_a_config_resizing_a_layer_the_network_lacks_is_a_checkpoint_error(tmp_path):
    save_restorer(diffusers_restorer(), tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    raw["network"]["resized"] = {"down_blocks.7.conv": {"out_channels": 4}}
    (tmp_path / "m" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="resized names 'down_blocks.7.conv'"):
        load_restorer(tmp_path / "m")
