import json
import subprocess
import sys

import pytest
import torch

from edgeir.errors import CheckpointError
from edgeir.load import load_restorer, save_restorer
from edgeir.tasks import InpaintTask


def test_round_trip_is_exact(tiny_restorer, tmp_path):
    save_restorer(tiny_restorer, tmp_path / "m")
    loaded = load_restorer(tmp_path / "m")
    assert loaded.config == tiny_restorer.config
    for (k, a), (k2, b) in zip(tiny_restorer.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    cond = torch.randn(1, 3, 16, 16)
    noise = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny_restorer.restore_tensor(cond, noise), loaded.restore_tensor(cond, noise))


def test_save_replaces_an_existing_folder_atomically(tiny_restorer, tmp_path):
    save_restorer(tiny_restorer, tmp_path / "m")
    save_restorer(tiny_restorer, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_pickles_are_refused_unless_trusted(tiny_restorer, tmp_path):
    folder = tmp_path / "m"
    save_restorer(tiny_restorer, folder)
    state = tiny_restorer.denoiser.net.state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "model.pt")
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_restorer(folder)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_restorer(folder / "model.pt")
    loaded = load_restorer(folder, trust_pickle=True)
    assert torch.equal(loaded.denoiser.net.conv_in.weight, state["conv_in.weight"])


def test_trusted_pickle_still_rejects_arbitrary_objects(tiny_restorer, tmp_path):
    folder = tmp_path / "m"
    save_restorer(tiny_restorer, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"x": subprocess.Popen}, folder / "model.pt")  # a class: weights_only refuses it
    with pytest.raises(CheckpointError, match="cannot load"):
        load_restorer(folder, trust_pickle=True)


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / "config.json").unlink(), "no config.json"),
    (lambda f: (f / "config.json").write_text("{not json"), "corrupt JSON"),
    (lambda f: (f / "config.json").write_text(json.dumps({"task": {"name": "sr", "scale": 99}})), "invalid config"),
    (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 50), "corrupt weights"),
    (lambda f: (f / "model.safetensors").unlink(), "no model.safetensors"),
])
def test_damaged_checkpoints_give_one_clear_error(tiny_restorer, tmp_path, damage, message):
    save_restorer(tiny_restorer, tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(CheckpointError, match=message) as e:
        load_restorer(tmp_path / "m")
    assert "\n" not in str(e.value)


def test_weights_that_do_not_match_the_config_are_refused(tiny_restorer, tmp_path):
    from conftest import tiny_config

    save_restorer(tiny_restorer, tmp_path / "m")
    other = tiny_config(InpaintTask())  # 4 condition channels: conv_in has another shape
    (tmp_path / "m" / "config.json").write_text(other.model_dump_json())
    with pytest.raises(CheckpointError, match="do not match"):
        load_restorer(tmp_path / "m")


def test_unknown_model_name():
    with pytest.raises(CheckpointError, match="shipped teachers: sr4x"):
        load_restorer("sr3x")


def test_loading_imports_no_pickle_path(tmp_path, tiny_restorer):
    """Loading our format in a fresh process never calls torch.load."""
    save_restorer(tiny_restorer, tmp_path / "m")
    code = (f"import torch; torch.load = None\n"
            f"from edgeir.load import load_restorer; load_restorer({str(tmp_path / 'm')!r}); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
