import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeir.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "edgeir", "--help"], check=False, capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("eval", "train"):
        assert cmd in out.stdout


def test_eval_json_has_model_and_baseline_means():
    res = run("eval", "--model", "sr4x", "--steps", "2", "--size", "64", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for side in ("model", "baseline"):
        assert set(data[side]) == {"psnr", "ssim", "haarpsi", "detail"}
        assert all(np.isfinite(v) for v in data[side].values())


def save(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path)
    return path


@pytest.fixture
def photo():
    from edgeir.data.builtin import builtin_images

    return (builtin_images("heldout")[0][1][:64, :64] * 255).astype(np.uint8)


def test_eval_on_a_folder_handles_gray_and_rgba(tmp_path, photo):
    save(tmp_path / "rgb.png", photo)
    save(tmp_path / "gray.png", photo[..., 0])
    save(tmp_path / "rgba.png", np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)]))
    res = run("eval", "--model", "deblur", "--data", str(tmp_path), "--steps", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"]["psnr"] > 15


def one_line_error(res, fragment):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_unknown_model(tmp_path):
    one_line_error(run("eval", "--model", "nope", "--json"), "no such model folder")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{")
    one_line_error(run("eval", "--model", str(tmp_path / "m")), "corrupt JSON")


def test_corrupt_and_truncated_images(tmp_path, photo):
    save(tmp_path / "ok.png", photo)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    one_line_error(run("eval", "--model", "sr4x", "--data", str(tmp_path)), "trunc.png")
    (tmp_path / "trunc.png").write_bytes(b"not an image at all")
    one_line_error(run("eval", "--model", "sr4x", "--data", str(tmp_path)), "not a readable image")


def test_image_smaller_than_the_network_minimum(tmp_path, photo):
    save(tmp_path / "small.png", photo[:8, :8])
    one_line_error(run("eval", "--model", "sr4x", "--data", str(tmp_path)), "smaller than the model's minimum")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    one_line_error(run("eval", "--model", "sr4x", "--data", str(tmp_path)), "pixel limit")


def test_empty_folder(tmp_path):
    one_line_error(run("eval", "--model", "sr4x", "--data", str(tmp_path)), "no images")
