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


def test_eval_under_another_degradation_names_every_baseline():
    res = run("eval", "--model", "sr4x", "--steps", "1", "--size", "64", "--degradation", "real", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["degradation"] == "real" and list(data["baselines"]) == ["bicubic + NL-means", "bicubic"]
    assert data["baseline"] == data["baselines"]["bicubic + NL-means"]
    clean = json.loads(run("eval", "--model", "sr4x", "--steps", "1", "--size", "64", "--json").stdout)
    assert clean["degradation"] == "clean" and clean["model"]["psnr"] > data["model"]["psnr"]


def test_deblur_baseline_is_deconvolution_with_the_known_kernel():
    data = json.loads(run("eval", "--model", "deblur", "--steps", "1", "--size", "64", "--json").stdout)
    assert list(data["baselines"]) == ["Wiener, known kernel", "blurred input"]
    assert data["baseline"]["psnr"] > data["baselines"]["blurred input"]["psnr"]


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


def test_eval_on_a_folder_under_the_real_degradation(tmp_path, photo):
    save(tmp_path / "rgb.png", photo)
    res = run("eval", "--model", "sr4x", "--data", str(tmp_path), "--steps", "1", "--degradation", "real")
    assert res.exit_code == 0, res.output
    assert "real degradation" in res.stdout and "bicubic + NL-means" in res.stdout


def one_line_error(res, fragment):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert "Traceback" not in res.output


def test_unknown_or_inapplicable_degradation():
    one_line_error(run("eval", "--model", "sr4x", "--degradation", "nope", "--json"), "no degradation 'nope'")
    one_line_error(run("eval", "--model", "deblur", "--degradation", "real"), "deblur task has no degradation")


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
