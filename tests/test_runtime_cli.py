"""``edgeir restore`` and ``edgeir bench``: hostile inputs are reported while the rest of a batch completes,
outputs are never half-written nor written over an input, and budgets set the exit code."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.cli import main
from edgeir.errors import ImageError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))  # plans and engines stay out of ~/.cache


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tiny_restorer(), tmp_path_factory.mktemp("cli") / "sr")


def png_header_only(path, width, height):
    """A PNG that declares its size and holds no pixels: what a decompression bomb looks like up front."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_bad_files_reported_and_the_rest_restored(bundle, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(good).save(src / "good.png")
    Image.fromarray(good[..., 0]).save(src / "grey.jpg")
    (src / "truncated.png").write_bytes((src / "good.png").read_bytes()[:100])
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    png_header_only(src / "huge.png", 30000, 30000)
    png_header_only(src / "zero.png", 0, 10)
    Image.fromarray(np.zeros((8, 8), np.float32)).save(src / "float.tif")  # mode F: not a photo
    result = run("restore", bundle, src, "missing.png", tmp_path / "glob*.png", "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert sorted(p["output"].rsplit("/", 1)[1] for p in report["restored"]) == ["good.png", "grey.jpg"]
    errors = {e["input"].rsplit("/", 1)[-1]: e["error"] for e in report["failed"]}
    assert "truncated" in errors["truncated.png"]
    assert "not a readable image" in errors["empty.png"] and "not a readable image" in errors["text.png"]
    assert "pixel limit" in errors["huge.png"] or "DecompressionBomb" in errors["huge.png"]
    assert "zero.png" in errors
    assert "unsupported image mode F" in errors["float.tif"]
    assert "no such file" in errors["missing.png"] and "no images" in errors["glob*.png"]
    assert all("\n" not in e for e in errors.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png", "grey.jpg"]
    assert Image.open(tmp_path / "out" / "grey.jpg").mode == "L"
    assert Image.open(tmp_path / "out" / "good.png").size == (48, 40)


def test_outputs_never_half_written(bundle, tmp_path, monkeypatch):
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"previous result")

    def broken_save(f, arr, fmt):
        f.write(b"half an image")
        raise ImageError("disk full")

    monkeypatch.setattr("edgeir.data.images._save", broken_save)
    result = run("restore", bundle, tmp_path / "a.png", "-o", out)
    assert result.exit_code == 1 and "disk full" in result.output
    assert [p.name for p in out.iterdir()] == ["a.png"]  # no temporary file left behind
    assert (out / "a.png").read_bytes() == b"previous result"


def test_never_overwrites_an_input(bundle, tmp_path):
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    result = run("restore", bundle, tmp_path / "a.png", "-o", tmp_path)
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert (tmp_path / "a.png").read_bytes() == before


def test_bench_budget_exit_codes(bundle, tmp_path):
    ok = run("bench", bundle, "--size", "32x48", "--runs", "2", "--budget-ms", "1e6", "--json",
             "--plan-out", tmp_path / "plan.json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert {"p50_ms", "p95_ms", "p99_ms", "graph_ms", "host_ms", "peak_mb", "backend",
            "within_budget"} <= set(report)
    assert report["within_budget"] is True and report["backend"] in ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt")
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"] and report["peak_mb"] > 0
    assert report["graph_ms"] > 0 and report["host_ms"] >= 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["variant"] == report["variant"] and plan["tried"][0]["graph_ms"] > 0
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(tmp_path / "a.png")
    planned = run("restore", bundle, tmp_path / "a.png", "-o", tmp_path / "out", "--plan", tmp_path / "plan.json")
    assert planned.exit_code == 0, planned.output
    over = run("bench", bundle, "--size", "32x48", "--runs", "2", "--budget-ms", "0.001", "--json")
    assert over.exit_code == 1 and json.loads(over.stdout)["within_budget"] is False
    plain = run("bench", bundle, "--size", "32x48", "--runs", "2")
    assert plain.exit_code == 0 and "p95" in plain.output and "in the graph" in plain.output
    stream = run("bench", bundle, "--size", "32x48", "--runs", "5", "--stream", "--json")
    assert stream.exit_code == 0, stream.output
    streamed = json.loads(stream.stdout)
    assert streamed["stream"] and streamed["fps"] > 0 and streamed["runs"] == 5


@pytest.mark.parametrize("args, message", [
    (["--size", "big"], "expected HxW"),
    (["--size", "32x32", "--backend", "cuda9"], "unknown backend"),
])
def test_bench_user_errors(bundle, args, message):
    result = run("bench", bundle, *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_tampered_bundle_refused_by_the_cli(bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    with open(copy / "restore.fp32.onnx", "ab") as f:
        f.write(b"\0")
    result = run("restore", copy, tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "does not match its sha256" in result.output
    assert len(result.output.strip().splitlines()) == 1
