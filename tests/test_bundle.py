"""Bundles round-trip, and a tampered, incomplete or hostile bundle is refused with one clear line."""

from __future__ import annotations

import json
import zipfile

import pytest
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.bundle import load_bundle
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
    assert set(b.files) == {"restore.fp32.onnx", "restore.fp32.float.onnx", "unet.fp32.onnx"} == set(b.manifest.files)
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
        load_bundle(dest)


def test_incomplete_bundle_refused(bundle, tmp_path):
    dest = copy_of(bundle, tmp_path)
    (dest / "restore.fp32.onnx").unlink()
    with pytest.raises(CheckpointError, match="incomplete bundle: restore.fp32.onnx is missing"):
        load_bundle(dest)
    (dest / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_bundle(dest)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format="edgeir.bundle/99"), "format"),
    (lambda m: m.update(tile=33), "not a multiple"),
    (lambda m: m["variants"][2].update(kind="sampler"), "a sampler graph must map"),
    (lambda m: m["variants"][0].update(tile=None), "tile, overlap and pixels are set for restore graphs"),
    (lambda m: m.update(files={"../../etc/passwd": "0" * 64, **m["files"]}), "outside the bundle"),
    (lambda m: m.update(files={}), "lists no files"),
])
def test_hostile_manifest_refused(bundle, tmp_path, edit, message):
    dest = copy_of(bundle, tmp_path)
    manifest = json.loads((dest / "manifest.json").read_text())
    edit(manifest)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=message) as e:
        load_bundle(dest)
    assert "\n" not in str(e.value)


def test_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.edgeir"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable bundle"):
        load_bundle(junk)
    with pytest.raises(CheckpointError, match="no such bundle"):
        load_bundle(tmp_path / "nothing")
