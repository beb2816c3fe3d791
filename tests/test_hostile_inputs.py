"""Hostile inputs, made here and small: each is one line `error: ...` naming the file, the documented exit code,
no traceback, nothing half-written or temporary left behind, and the rest of a batch still restored."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_runtime_cli import png_header_only

from edgeir.cli import main

BUNDLE = Path(__file__).resolve().parent.parent / "exported" / "sr4x"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def errors(result) -> list[str]:
    """The error lines, after checking that nothing else went wrong on the way."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def picture(path: Path, h: int = 16, w: int = 20, seed: int = 0) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def batch(tmp_path) -> tuple[Path, Path]:
    """Two good inputs, a.png and b.png, and the output folder (not yet made)."""
    src = tmp_path / "in"
    src.mkdir()
    picture(src / "a.png", seed=1)
    picture(src / "b.png", seed=2)
    return src, tmp_path / "out"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # temporary files are hidden siblings: they would show


def test_output_that_is_a_file_is_refused_up_front(batch):
    src, out = batch
    out.write_bytes(b"keep me")
    result = run("restore", BUNDLE, src, "-o", out)
    assert result.exit_code == 2
    assert errors(result) == [f"error: {out}: not a folder (-o names the folder for the restored images)"]
    assert out.read_bytes() == b"keep me"


def test_output_name_taken_by_a_folder(batch):
    src, out = batch
    (out / "a.png").mkdir(parents=True)
    result = run("restore", BUNDLE, src, "-o", out)
    assert result.exit_code == 1
    assert errors(result) == [f"error: {src / 'a.png'}: its output {out / 'a.png'} is a folder"]
    assert listing(out) == ["a.png", "b.png"] and (out / "b.png").is_file() and (out / "a.png").is_dir()


def test_read_only_output_folder(batch, monkeypatch):
    src, out = batch
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: refuse as the folder would refuse anyone else
        def denied(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr("edgeir.data.images.open", denied, raising=False)
    try:
        result = run("restore", BUNDLE, src, "-o", out)
    finally:
        out.chmod(0o755)
    assert result.exit_code == 1
    lines = errors(result)
    assert len(lines) == 2 and all("Permission denied" in line for line in lines)
    assert [line.split(": ")[1] for line in lines] == [str(src / "a.png"), str(src / "b.png")]
    assert listing(out) == []


def test_full_disk_fails_one_file_and_leaves_nothing_half_written(batch, monkeypatch):
    from edgeir.data import images

    src, out = batch
    real_save = images._save

    def save(f, arr, fmt):
        if Path(f.name).name.startswith(".a."):  # a.png's temporary sibling
            f.write(b"half an image")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(f, arr, fmt)

    monkeypatch.setattr(images, "_save", save)
    result = run("restore", BUNDLE, src, "-o", out)
    assert result.exit_code == 1
    assert errors(result) == [f"error: {src / 'a.png'}: cannot write {out / 'a.png'}: No space left on device"]
    assert listing(out) == ["b.png"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    from edgeir.data.images import from_array, write_image
    from edgeir.errors import ImageError

    (tmp_path / "x.png").mkdir()
    with pytest.raises(ImageError, match=r"^cannot write .*x\.png: Is a directory$"):
        write_image(tmp_path / "x.png", from_array(np.zeros((4, 4, 3), np.uint8)))
    assert listing(tmp_path) == ["x.png"]


def test_symlink_loops_among_the_inputs(batch):
    src, out = batch
    (src / "loop1.png").symlink_to("loop2.png")
    (src / "loop2.png").symlink_to("loop1.png")
    (src / "self.png").symlink_to("self.png")
    (src / "dangling.png").symlink_to("nowhere.png")
    result = run("restore", BUNDLE, src / "self.png", src, "-o", out)  # self.png named twice: reported once
    assert result.exit_code == 1
    assert sorted(errors(result)) == [f"error: {src / 'dangling.png'}: no such file",
                                      f"error: {src / 'loop1.png'}: symlink loop",
                                      f"error: {src / 'loop2.png'}: symlink loop",
                                      f"error: {src / 'self.png'}: symlink loop"]
    assert listing(out) == ["a.png", "b.png"]


def test_a_fifo_is_refused_not_waited_on(batch):
    src, out = batch
    os.mkfifo(src / "pipe.png")  # opening it for reading would block until a writer came
    result = run("restore", BUNDLE, src / "pipe.png", src / "a.png", "-o", out)
    assert result.exit_code == 1
    assert errors(result) == [f"error: {src / 'pipe.png'}: not a regular file"]
    assert listing(out) == ["a.png"]


def test_images_the_restorer_cannot_take(batch):
    src, out = batch
    picture(src / "tiny.png", 2, 2)  # 8x8 output, under the bundle's 16 px minimum
    png_header_only(src / "huge.png", 7000, 7000)  # 49 MP: a 784 MP output; no pixels, so decoding would fail
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(src / "apng.png", save_all=True, append_images=frames[1:])
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    frames[0].save(src / "still.gif")
    names = ["anim.gif", "apng.png", "pages.tif", "huge.png", "tiny.png"]
    result = run("restore", BUNDLE, *(src / n for n in names), src / "a.png", src / "still.gif", "-o", out)
    assert result.exit_code == 1
    lines = dict(line.split(": ", 2)[1:] for line in errors(result))
    assert sorted(lines) == sorted(str(src / n) for n in names)
    for n in ("anim.gif", "apng.png", "pages.tif"):
        assert lines[str(src / n)].startswith("animated image")
    assert lines[str(src / "huge.png")] == "7000x7000 (a 28000x28000 output) exceeds the 64,000,000-pixel limit"
    assert lines[str(src / "tiny.png")].startswith("2x2 is too small")
    assert listing(out) == ["a.png", "still.gif"]
    assert (out / "still.gif").read_bytes()[:4] == b"GIF8"  # the format its suffix names, not PNG bytes
    assert Image.open(out / "still.gif").size == (32, 32)


def test_a_single_bad_image(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    result = run("restore", BUNDLE, tmp_path / "bad.png", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert errors(result) == [f"error: {tmp_path / 'bad.png'}: not a readable image"]
    assert not (tmp_path / "out").exists()


def test_eval_crop_too_small_for_ssim():
    result = run("eval", "--model", "sr4x", "--size", "16", "--steps", "1")
    assert result.exit_code == 2
    [line] = errors(result)
    assert "16x16 is too small to score" in line and "20x20" in line
    ok = run("eval", "--model", "sr4x", "--size", "20", "--steps", "1", "--json")
    assert ok.exit_code == 0, ok.output


DEEP_YAML = ("a: " + "[" * 20000 + "]" * 20000 + "\n").encode()


@pytest.mark.parametrize("command", ["compress --recipe", "bench --device"])
@pytest.mark.parametrize("content, problem", [
    (DEEP_YAML, "nested too deeply to be a "),
    (bytes(range(256)) * 4, "not a text file (UnicodeDecodeError)"),
    (None, "not a text file (IsADirectoryError)"),
])
def test_hostile_recipes_and_device_profiles(tmp_path, command, content, problem):
    path = tmp_path / "c.yaml"
    path.mkdir() if content is None else path.write_bytes(content)
    if command == "compress --recipe":
        result = run("compress", "--recipe", path, "-o", tmp_path / "run")
        assert not (tmp_path / "run").exists()
    else:
        result = run("bench", BUNDLE, "--device", path)
    assert result.exit_code == 2
    [line] = errors(result)
    assert line.startswith(f"error: {path}: {problem}")
