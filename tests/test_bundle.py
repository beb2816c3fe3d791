"""Bundles round-trip, and a tampered, incomplete or hostile bundle is refused with one clear line."""

from __future__ import annotations

import json
import zipfile

import pytest
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.bundle import load_bundle
from edgeir.bundle.io import manifest_digest
from edgeir.errors import CheckpointError


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tiny_restorer(), tmp_path_factory.mktemp("b") / "tiny")


def copy_of(bundle, tmp_path):
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(bundle, dest)
    return dest


def test_round_trip_folder_and_zip(bundle, tmp_path):
    b = load_bundle(bundle)
    assert [v.kind for v in b.manifest.variants] == ["restore", "restore", "unet"]
    assert set(b.manifest.files) == {"restore.fp32.onnx", "restore.fp32.float.onnx", "unet.fp32.onnx"}
    z = make_bundle(tiny_restorer(), tmp_path / "tiny.edgeir")
    assert zipfile.is_zipfile(z)
    same = {"producer": {}}  # which folder each was made from differs
    assert load_bundle(z).manifest.model_copy(update=same) == b.manifest.model_copy(update=same)


def test_tampered_graph_refused(bundle, tmp_path):
    dest = copy_of(bundle, tmp_path)
    data = bytearray((dest / "restore.fp32.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dest / "restore.fp32.onnx").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_bundle(dest).read("restore.fp32.onnx")


def test_incomplete_bundle_refused(bundle, tmp_path):
    dest = copy_of(bundle, tmp_path)
    (dest / "restore.fp32.onnx").unlink()
    with pytest.raises(CheckpointError, match="incomplete bundle: restore.fp32.onnx is missing"):
        load_bundle(dest)
    (dest / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_bundle(dest)


def rewrite(dest, edit, sign: bool = True):
    """Edit the manifest of bundle folder ``dest``; with ``sign``, recompute its digest as a tool would."""
    manifest = json.loads((dest / "manifest.json").read_text())
    edit(manifest)
    if sign:
        manifest["digest"] = manifest_digest(manifest)
    (dest / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit", [
    lambda m: m["variants"][0].update(temperature=0.5),
    lambda m: m["variants"][0].update(residual_scale=7.0),
    lambda m: m["task"].update(scale=3),
], ids=["temperature", "residual-scale", "task"])
def test_an_edited_manifest_is_refused(bundle, tmp_path, edit):
    dest = copy_of(bundle, tmp_path)
    rewrite(dest, edit, sign=False)
    with pytest.raises(CheckpointError, match="does not match its digest"):
        load_bundle(dest)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format="edgeir.bundle/99"), "format"),
    (lambda m: m.update(tile=33), "not a multiple"),
    (lambda m: m["variants"][2].update(kind="sampler"), "a sampler graph must map"),
    (lambda m: m["variants"][0].update(tile=None), "tile, overlap and pixels are set for restore graphs"),
    (lambda m: m["variants"][0]["steps"][0].update(c_x0=float("nan")), "finite number"),
    (lambda m: m["variants"][0]["steps"][0].update(t=-5), "out of range"),
    (lambda m: m["variants"][0].update(residual_scale=0), "greater than 0"),
    (lambda m: m.update(format="edgeir.bundle/1"), "no restore graphs"),
    (lambda m: m.update(files={"../../etc/passwd": "0" * 64, **m["files"]}), "outside the bundle"),
    (lambda m: m.update(files={}), "lists no files"),
    (lambda m: m.update(producer=[[[[0]]]] * 3), "producer"),
], ids=["format", "tile", "io", "restore-fields", "nan", "negative-t", "scale", "v1-restore", "path", "no-files",
        "producer"])
def test_hostile_manifest_refused(bundle, tmp_path, edit, message):
    dest = copy_of(bundle, tmp_path)
    rewrite(dest, edit)
    with pytest.raises(CheckpointError, match=message) as e:
        load_bundle(dest)
    assert "\n" not in str(e.value)


def test_deeply_nested_manifest_is_one_line(bundle, tmp_path):
    dest = copy_of(bundle, tmp_path)
    (dest / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_bundle(dest)


def test_a_zip_bomb_is_refused_before_anything_is_inflated(bundle, tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.edgeir"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(bundle / "manifest.json", "manifest.json")
        with z.open("restore.fp32.onnx", "w", force_zip64=True) as f:
            zeros = bytes(1 << 24)
            for _ in range(16):  # 256 MB of zeros in 250 kB
                f.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    inflated = []  # the bomb's member must be judged from the zip's directory, never inflated
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda f, n=-1: inflated.append(f.name) or real_read(f, n))
    with pytest.raises(CheckpointError, match="over the|zip bomb"):
        load_bundle(bomb)
    assert "restore.fp32.onnx" not in inflated


def test_a_zip_of_too_many_files_is_refused(bundle, tmp_path):
    crowded = tmp_path / "crowded.edgeir"
    with zipfile.ZipFile(crowded, "w") as z:
        z.write(bundle / "manifest.json", "manifest.json")
        for i in range(300):
            z.writestr(f"x{i}", b"")
    with pytest.raises(CheckpointError, match="301 entries, over the 256 limit"):
        load_bundle(crowded)


def test_only_the_files_in_use_are_read(bundle, tmp_path):
    """A tampered file no one uses does not stop a bundle from loading; reading it does."""
    dest = copy_of(bundle, tmp_path)
    with open(dest / "restore.fp32.float.onnx", "ab") as f:
        f.write(b"\0")
    b = load_bundle(dest)
    assert b.read("restore.fp32.onnx")
    with pytest.raises(CheckpointError, match="restore.fp32.float.onnx does not match its sha256"):
        b.read("restore.fp32.float.onnx")


def test_links_out_of_the_bundle_are_named(bundle, tmp_path):
    dest = copy_of(bundle, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    (dest / "unet.fp32.onnx").rename(outside)
    (dest / "unet.fp32.onnx").symlink_to(outside)
    with pytest.raises(CheckpointError, match="unet.fp32.onnx points outside the bundle"):
        load_bundle(dest)


def test_garbage_behind_a_matching_checksum_is_one_line(bundle, tmp_path):
    from edgeir.bundle.io import sha256
    from edgeir.errors import BackendError
    from edgeir.runtime import Restorer

    dest = copy_of(bundle, tmp_path)
    (dest / "restore.fp32.onnx").write_bytes(b"\x08\x07 not a protobuf at all")
    rewrite(dest, lambda m: m["files"].update({"restore.fp32.onnx": sha256((dest / "restore.fp32.onnx").read_bytes())}))
    with pytest.raises(BackendError, match="cannot open") as e:
        Restorer.load(dest, backend="ort-cpu")
    assert "\n" not in str(e.value)


def test_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.edgeir"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable bundle"):
        load_bundle(junk)
    with pytest.raises(CheckpointError, match="no such bundle"):
        load_bundle(tmp_path / "nothing")
