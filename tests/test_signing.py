"""Signed bundles: a device given trusted keys runs only bundles signed by one of them, and a manifest edited
after signing (its digest recomputed, as anyone editing it would) is refused; every refusal is one line."""

from __future__ import annotations

import base64
import builtins
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeir.bundle import load_bundle, write_bundle
from edgeir.bundle.io import manifest_digest
from edgeir.bundle.signing import generate_key, key_fingerprint
from edgeir.cli import main
from edgeir.errors import CheckpointError, ConfigError
from edgeir.runtime import Restorer

SR4X = Path(__file__).resolve().parent.parent / "exported" / "sr4x"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """The shipped sr4x bundle signed with a new key, and a second key that did not sign it."""
    root = tmp_path_factory.mktemp("sign")
    key, pub = generate_key(root / "keys" / "me")
    _, other = generate_key(root / "other")
    b = load_bundle(SR4X)
    files = {name: SR4X / name for name in b.manifest.files}
    out = write_bundle(root / "signed", files, b.manifest, key)
    return out, key, pub, other


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    done = CliRunner().invoke(main, ["keygen", str(tmp_path / "k")])
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert key_fingerprint(tmp_path / "k", private=True) == key_fingerprint(tmp_path / "k.pub", private=False)
    again = CliRunner().invoke(main, ["keygen", str(tmp_path / "k")])
    assert again.exit_code == 2 and "not overwritten" in again.output


def test_a_signed_bundle_runs_where_its_key_is_trusted_and_nowhere_else(signed, tmp_path):
    out, _, pub, other = signed
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["signature"]["key"] == key_fingerprint(pub, private=False)
    assert Restorer.load(out, "ort-cpu", trusted_keys=[other, pub]).bundle.manifest.task.name == "sr"
    assert Restorer.load(out, "ort-cpu").bundle.manifest.task.name == "sr"  # no keys given: digest checks only
    with pytest.raises(CheckpointError, match="not among the trusted keys"):
        load_bundle(out, trusted_keys=[other])
    with pytest.raises(CheckpointError, match="is not signed"):
        load_bundle(SR4X, trusted_keys=[pub])
    Image.fromarray((np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    ok = CliRunner().invoke(main, ["restore", str(out), str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                   "--trusted-key", str(pub)])
    assert ok.exit_code == 0, ok.output
    refused = CliRunner().invoke(main, ["restore", str(SR4X), str(tmp_path / "a.png"), "-o", str(tmp_path / "p"),
                                        "--trusted-key", str(pub)])
    assert refused.exit_code == 2 and "not signed" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "p").exists()
    bench = CliRunner().invoke(main, ["bench", str(SR4X), "--size", "32x32", "--runs", "1", "--trusted-key",
                                      str(pub)])
    assert bench.exit_code == 2 and "not signed" in bench.output


def test_an_edit_after_signing_is_refused_even_with_a_fresh_digest(signed, tmp_path):
    out, _, pub, _ = signed
    raw = json.loads((out / "manifest.json").read_text())
    edited = dict(raw, min_size=raw["min_size"] * 2)
    edited["digest"] = manifest_digest(edited)  # what anyone editing the manifest would do
    forged = dict(raw, signature={"key": raw["signature"]["key"], "value": base64.b64encode(bytes(64)).decode()})
    for name, manifest in (("edited", edited), ("forged", forged)):
        folder = tmp_path / name
        folder.mkdir()
        for f in raw["files"]:
            os.link(out / f, folder / f)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        load_bundle(folder)  # the digest alone cannot tell
        with pytest.raises(CheckpointError, match="does not match its manifest"):
            load_bundle(folder, trusted_keys=[pub])


def test_keys_that_are_not_keys_and_a_missing_library_are_one_line(signed, tmp_path, monkeypatch):
    out, _, pub, _ = signed
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="not an ed25519 public key"):
        load_bundle(out, trusted_keys=[tmp_path / "junk.pub"])
    with pytest.raises(ConfigError, match="not an ed25519 private key"):
        key_fingerprint(pub, private=True)
    wrong = CliRunner().invoke(main, ["export", str(SR4X), "-o", str(tmp_path / "x"), "--sign", str(pub)])
    assert wrong.exit_code == 2 and "private key" in wrong.output and not (tmp_path / "x").exists()
    real_import = builtins.__import__

    def no_crypto(name, *args, **kwargs):
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_crypto)
    with pytest.raises(ConfigError, match=r"pip install 'edgeir\[sign\]'"):
        load_bundle(out, trusted_keys=[pub])
