import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from edgeir.errors import CheckpointError
from edgeir.load import load_restorer, save_restorer
from edgeir.models.restorer import RestorerModel
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
    with pytest.raises(CheckpointError, match="cannot load") as e:
        load_restorer(folder, trust_pickle=True)
    # torch's own message spans lines, carries terminal escapes and suggests weights_only=False: only its cause
    assert re.fullmatch(re.escape(f"{folder / 'model.pt'}: cannot load (Unsupported global: GLOBAL ") +
                        r"[\w.]+\.Popen was not an allowed global by default; a trusted pickle may hold tensors "
                        r"only\)", str(e.value)), str(e.value)


def test_a_named_weights_file_is_exactly_the_one_loaded(tiny_restorer, tmp_path):
    folder = tmp_path / "m"
    save_restorer(tiny_restorer, folder)
    states = {}
    for i, name in enumerate(("a.pt", "b.pt", "other.safetensors")):
        torch.manual_seed(10 + i)
        states[name] = RestorerModel(tiny_restorer.config).denoiser.net.state_dict()
        if name.endswith(".pt"):
            torch.save(states[name], folder / name)
        else:
            save_file(states[name], str(folder / name))
    for name, state in states.items():
        loaded = load_restorer(folder / name, trust_pickle=True).denoiser.net.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items()), name
    default = load_restorer(folder, trust_pickle=True)  # the folder alone: its model.safetensors
    assert torch.equal(default.denoiser.net.conv_in.weight, tiny_restorer.denoiser.net.conv_in.weight)
    with pytest.raises(CheckpointError, match=f"^{folder / 'b.pt'}: refusing to unpickle"):
        load_restorer(folder / "b.pt")


def test_several_pickles_are_not_guessed_between(tiny_restorer, tmp_path):
    folder = tmp_path / "m"
    save_restorer(tiny_restorer, folder)
    (folder / "model.safetensors").unlink()
    for name in ("b.pt", "a.pt"):
        torch.save(tiny_restorer.denoiser.net.state_dict(), folder / name)
    with pytest.raises(CheckpointError) as e:
        load_restorer(folder, trust_pickle=True)
    assert str(e.value) == (f"{folder}: no model.safetensors but 2 pickles (a.pt, b.pt); name the one to load, "
                            f"e.g. {folder / 'a.pt'}")


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
    with pytest.raises(CheckpointError, match="do not match") as e:
        load_restorer(tmp_path / "m")
    with pytest.raises(RuntimeError) as full:
        RestorerModel(other).denoiser.net.load_state_dict(tiny_restorer.denoiser.net.state_dict())
    # torch's long message, shortened to one line that ends at a word
    shown = str(e.value).removeprefix(f"{tmp_path / 'm'}: weights do not match the config (")
    assert shown.endswith(" ...)") and "\n" not in shown
    whole = " ".join(str(full.value).split())
    assert whole.startswith(shown[:-5]) and whole[len(shown) - 5] == " "


def bad_config(mutate):
    def damage(folder):
        raw = json.loads((folder / "config.json").read_text())
        mutate(raw)
        (folder / "config.json").write_text(json.dumps(raw))
    return damage


def unet_field(name, value):
    return bad_config(lambda raw: raw["network"]["config"].__setitem__(name, value))


def nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("damage, message", [
    (unet_field("channels", []), "channels: Tuple should have at least 1 item"),
    (unet_field("channels", [-8, 16]), "channels.0: Input should be greater than or equal to 1"),
    (unet_field("channels", [100_000, 16]), "channels.0: Input should be less than or equal to 8192"),
    (unet_field("channels", [8192] * 4), "network of 18,930,852,396 parameters, over the 1,000,000,000 limit"),
    (unet_field("time_embed_dim", 0), "time_embed_dim: Input should be greater than or equal to 2"),
    (unet_field("widths", {"down.0": -4}), "widths.down.0: Input should be greater than or equal to 1"),
    (bad_config(lambda raw: raw.__setitem__("provenance", {"a": json.loads(nested(100))})),
     "top level: nested more than 32 levels deep"),
    (lambda f: (f / "config.json").write_text(nested(100_000)), "config.json: corrupt JSON (nested too deeply)"),
    (lambda f: (f / "config.json").write_text(" " * (2 << 20)), "2,097,152 bytes, over the 1,048,576 limit"),
    (lambda f: ((f / "config.json").unlink(), (f / "config.json").mkdir()), "config.json: not a text file (IsADirectoryError)"),
], ids=["empty", "negative", "wide", "huge", "no-embedding", "negative-width", "deep-provenance", "deep-json",
        "big-file", "folder"])
def test_configs_that_describe_no_buildable_network_are_one_line(tiny_restorer, tmp_path, damage, message):
    save_restorer(tiny_restorer, tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(CheckpointError, match=re.escape(message)) as e:
        load_restorer(tmp_path / "m")
    assert "\n" not in str(e.value) and str(tmp_path / "m") in str(e.value)


@pytest.mark.parametrize("blocks, message", [
    ([-4, 8], "cannot build the network (RuntimeError: Trying to create tensor with negative dimension -4"),
    ([], "cannot build the network (IndexError"),
    ([4096, 8192], "parameters, over the 1,000,000,000 limit"),
])
def test_a_diffusers_config_that_cannot_be_built_is_one_line(tmp_path, blocks, message):
    from conftest import tiny_diffusers_unet

    folder = tmp_path / "unet"
    tiny_diffusers_unet().save_pretrained(folder)
    (folder / "edgeir.json").write_text(json.dumps({"task": {"name": "sr", "scale": 2}}))
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, "block_out_channels": blocks}))
    with pytest.raises(CheckpointError, match=re.escape(message)) as e:
        load_restorer(folder)
    assert "\n" not in str(e.value) and str(folder) in str(e.value)
    (folder / "edgeir.json").write_text(nested(100_000))
    with pytest.raises(CheckpointError, match=re.escape(f"{folder / 'edgeir.json'}: corrupt JSON (nested too")):
        load_restorer(folder)


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
