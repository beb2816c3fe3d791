import json

import pytest
import torch

from edgeir.errors import CheckpointError
from edgeir.load import load_restorer, save_restorer

diffusers = pytest.importorskip("diffusers")


def make_folder(tmp_path, sidecar=True):
    unet = diffusers.UNet2DModel(sample_size=16, in_channels=6, out_channels=3, block_out_channels=(8, 16),
                                 layers_per_block=1, norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(tmp_path / "unet")
    if sidecar:
        (tmp_path / "unet" / "edgeir.json").write_text(json.dumps(
            {"task": {"name": "sr", "scale": 2}, "prediction": "eps", "sampler": {"steps": 3}}))
    return unet


def test_diffusers_folder_loads_as_a_denoiser(tmp_path):
    unet = make_folder(tmp_path)
    r = load_restorer(tmp_path / "unet")
    assert r.config.prediction == "eps" and r.config.multiple_of == 2
    x, c, t = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.tensor([10.0, 900.0])
    with torch.no_grad():
        expected = unet(torch.cat([x, c], 1), t).sample
        assert torch.allclose(r.denoiser(x, t, c), expected, atol=1e-6)
        assert r.restore_tensor(c, x).shape == (2, 3, 16, 16)


def test_diffusers_restorer_round_trips_through_our_format(tmp_path):
    make_folder(tmp_path)
    r = load_restorer(tmp_path / "unet")
    save_restorer(r, tmp_path / "ours")
    r2 = load_restorer(tmp_path / "ours")
    c, n = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(r.restore_tensor(c, n), r2.restore_tensor(c, n))


def test_diffusers_folder_without_sidecar_explains_what_is_missing(tmp_path):
    make_folder(tmp_path, sidecar=False)
    with pytest.raises(CheckpointError, match="edgeir.json"):
        load_restorer(tmp_path / "unet")
