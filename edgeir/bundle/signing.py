"""Signed bundles: an ed25519 signature over a manifest's digest, so a device can tell a bundle made by a key it
trusts from one edited on the way (the digest alone only shows the manifest agrees with itself: whoever edits
it can compute a new one).

The digest covers the canonical manifest, every file's sha256 among it, so signing the digest signs the whole
bundle. The signature sits beside the digest in ``manifest.json`` (docs/BUNDLE.md, section 1): ``{"key": the
signing key's fingerprint, "value": base64 of the 64-byte signature of the digest's ASCII hex}``. Keys are
PEM files as ``cryptography`` writes them (``edgeir keygen``): a private key the exporter signs with, a public
key devices are given. ``cryptography`` is needed only to sign or to verify (``pip install edgeir[sign]``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from edgeir.errors import CheckpointError, ConfigError
from edgeir.files import write_atomic

MAX_KEY_BYTES = 16 << 10


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError("signed bundles need the cryptography package: pip install 'edgeir[sign]'") from None
    return serialization, ed25519, InvalidSignature


def _read_key(path: str | Path, private: bool):
    serialization, ed25519, _ = _crypto()
    path = Path(path)
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise ConfigError(f"{path}: not a key file (over {MAX_KEY_BYTES:,} bytes)")
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the key ({e.strerror or type(e).__name__})") from None
    kind = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, kind):
        raise ConfigError(f"{path}: not an ed25519 {'private' if private else 'public'} key in PEM form "
                          f"(edgeir keygen makes one)")
    return key


def key_fingerprint(path: str | Path, private: bool) -> str:
    """The fingerprint of the key in ``path`` (of its public half), or ``ConfigError`` if it is no ed25519 key
    of that kind: checks a key before minutes of work that end in signing or verifying."""
    key = _read_key(path, private)
    return fingerprint(key.public_key() if private else key)


def fingerprint(public_key) -> str:
    serialization, _, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(path: str | Path) -> tuple[Path, Path]:
    """A new key pair: the private key at ``path`` (readable by its owner only), the public one at
    ``path.pub``. Refuses to overwrite either."""
    serialization, ed25519, _ = _crypto()
    private, public = Path(path), Path(f"{path}.pub")
    for p in (private, public):
        if p.exists():
            raise ConfigError(f"{p} exists: keys are not overwritten")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    write_atomic(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def sign(digest: str, private_key_path: str | Path) -> dict[str, str]:
    """The signature entry for a manifest with ``digest``."""
    key = _read_key(private_key_path, private=True)
    return {"key": fingerprint(key.public_key()),
            "value": base64.b64encode(key.sign(digest.encode("ascii"))).decode("ascii")}


def verify(where: Path, digest: str, signature: object, trusted_keys: Sequence[str | Path]) -> str:
    """The fingerprint of the trusted key that signed ``digest``, or ``CheckpointError`` in one line: unsigned,
    signed by another key, or a signature that does not match."""
    invalid = _crypto()[2]
    keys = {fingerprint(k): k for k in (_read_key(p, private=False) for p in trusted_keys)}
    if not isinstance(signature, dict) or not {"key", "value"} <= set(signature):
        raise CheckpointError(f"{where}: the bundle is not signed, and only bundles signed by a trusted key are "
                              "accepted")
    key = keys.get(str(signature["key"]))
    if key is None:
        raise CheckpointError(f"{where}: signed by key {str(signature['key'])[:16]}, which is not among the "
                              f"trusted keys ({', '.join(sorted(keys))})")
    try:
        key.verify(base64.b64decode(str(signature["value"]), validate=True), digest.encode("ascii"))
    except (invalid, ValueError):
        raise CheckpointError(f"{where}: its signature does not match its manifest (edited after signing)") from None
    return str(signature["key"])
