"""Bundles: a folder (or one ``.edgeir`` zip of that folder) with ``manifest.json`` and the files it lists.

Bundles arrive on devices from elsewhere, so loading trusts nothing (docs/BUNDLE.md, section 1): the manifest
is size-limited, covered by its own digest and validated against its schema (finite numbers in range); every
listed file must be inside the bundle (no absolute paths, no ``..``, no symlinks out of it) and within the size
limits, which a zip's directory is checked against before anything is inflated; and a file is read only when it
is used, its sha256 checked on the very bytes then served, so a file swapped after the check is never run.
Anything wrong is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from edgeir.bundle.manifest import Manifest
from edgeir.errors import CheckpointError, brief, validation_message
from edgeir.files import atomic_dir, atomic_path

MANIFEST = "manifest.json"
SUFFIX = ".edgeir"
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = 2 << 30  # protobuf's own limit for one ONNX graph
MAX_TOTAL_BYTES = 4 << 30
MAX_ENTRIES = 256
MAX_RATIO = 100  # inflated / compressed bytes of a zip entry: graphs compress by a few times, bombs by thousands


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


UNCOVERED = ("digest", "signature")  # what a manifest's digest cannot cover: itself, and a signature of it


def manifest_digest(raw: dict) -> str:
    """The digest a manifest carries: of its canonical JSON without the digest and the signature."""
    body = {k: v for k, v in raw.items() if k not in UNCOVERED}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name and name != MANIFEST


class _Folder:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def size(self, name: str) -> int | None:
        p = (self.root / name).resolve()
        if not p.is_relative_to(self.root):
            raise CheckpointError(f"{self.root}: {name} points outside the bundle")
        return p.stat().st_size if p.is_file() else None

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class _Zip:
    def __init__(self, path: Path):
        self.path = path
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
        if len(infos) > MAX_ENTRIES:
            raise CheckpointError(f"{path}: {len(infos)} entries, over the {MAX_ENTRIES} limit")
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            raise CheckpointError(f"{path}: would inflate to {total:,} bytes, over the {MAX_TOTAL_BYTES:,} limit")
        bomb = next((i for i in infos if i.file_size > MAX_RATIO * i.compress_size + (1 << 20)), None)
        if bomb is not None:
            raise CheckpointError(f"{path}: {bomb.filename} inflates {bomb.file_size // max(bomb.compress_size, 1):,} "
                                  "times over (a zip bomb?)")
        self.infos = {i.filename: i for i in infos if not i.is_dir()}

    def size(self, name: str) -> int | None:
        info = self.infos.get(name)
        return None if info is None else info.file_size

    def read(self, name: str) -> bytes:
        with zipfile.ZipFile(self.path) as z:
            return z.read(name)


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    source: _Folder | _Zip
    _verified: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def digest(self) -> str:
        """Identifies this exact bundle (caches of built engines are keyed by it)."""
        return hashlib.sha256(json.dumps(self.manifest.files, sort_keys=True).encode()).hexdigest()[:16]

    def read(self, name: str) -> bytes:
        """A listed file's bytes, checked against its sha256 when first read."""
        if name not in self._verified:
            data = self.source.read(name)
            if sha256(data) != self.manifest.files[name].lower():
                raise CheckpointError(f"{self.path}: {name} does not match its sha256 in {MANIFEST} (tampered or "
                                      "corrupt bundle)")
            self._verified[name] = data
        return self._verified[name]


def write_bundle(dest: str | Path, files: dict[str, str | Path], manifest: Manifest,
                 sign_key: str | Path | None = None) -> Path:
    """Write ``files`` (bundle-relative name -> source file) and the manifest, with checksums and its digest
    filled in, and signed with the ed25519 private key at ``sign_key`` if given (``edgeir.bundle.signing``). ``dest`` ending in ``.edgeir`` gives a single zip, anything else a folder. Atomic either way:
    built next to ``dest`` and renamed into place, so a reader never sees half a bundle."""
    dest = Path(dest)
    bad = [n for n in files if not _safe_name(n)]
    if bad:
        raise CheckpointError(f"{dest}: invalid file name in bundle: {bad[0]!r}")
    missing = sorted(set(manifest.graphs) - set(files))
    if missing:
        raise CheckpointError(f"{dest}: the manifest's graph {missing[0]} is not among the bundle's files")
    data = {name: Path(src).read_bytes() for name, src in files.items()}
    raw = manifest.model_copy(update={"files": {n: sha256(b) for n, b in sorted(data.items())}}).model_dump(
        mode="json")
    Manifest.model_validate(raw)  # what we write must load
    raw["digest"] = manifest_digest(raw)
    if sign_key is not None:
        from edgeir.bundle.signing import sign

        raw["signature"] = sign(raw["digest"], sign_key)
    text = json.dumps(raw, indent=2) + "\n"
    if dest.suffix == SUFFIX:
        with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, text)
            for name, b in data.items():
                z.writestr(name, b)
        return dest
    with atomic_dir(dest) as tmpdir:
        for name, b in data.items():
            (tmpdir / name).parent.mkdir(parents=True, exist_ok=True)
            (tmpdir / name).write_bytes(b)
        (tmpdir / MANIFEST).write_text(text)
    return dest


def load_bundle(path: str | Path, trusted_keys: Sequence[str | Path] | None = None) -> Bundle:
    """A verified bundle, or ``CheckpointError`` with one line saying what is wrong. Files are checked against
    their sha256 when read (``Bundle.read``). With ``trusted_keys`` (ed25519 public key files), the bundle must
    also be signed by one of them."""
    path = Path(path)
    if path.is_dir():
        return _load(path, _Folder(path), trusted_keys)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such bundle (a folder with {MANIFEST}, or a {SUFFIX} file)")
    try:
        return _load(path, _Zip(path), trusted_keys)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as e:
        raise CheckpointError(f"{path}: not a readable bundle ({type(e).__name__}: {brief(e, 80)})") from None


def _load(path: Path, src: _Folder | _Zip, trusted_keys: Sequence[str | Path] | None) -> Bundle:
    size = src.size(MANIFEST)
    if size is None:
        raise CheckpointError(f"{path}: incomplete bundle: no {MANIFEST}")
    if size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path}: {MANIFEST} is {size:,} bytes, over the {MAX_MANIFEST_BYTES:,} limit")
    try:
        raw = json.loads(src.read(MANIFEST))
    except RecursionError:
        raise CheckpointError(f"{path}: {MANIFEST} is not a manifest (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: {MANIFEST} is not a manifest ({brief(e, 80)})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: {MANIFEST} is not a manifest (not a JSON object)")
    if raw.get("format") != "edgeir.bundle/1" and raw.get("digest") != manifest_digest(raw):
        raise CheckpointError(f"{path}: {MANIFEST} does not match its digest (edited or corrupt bundle)")
    if trusted_keys is not None:
        from edgeir.bundle.signing import verify

        verify(path, str(raw.get("digest")), raw.get("signature"), trusted_keys)
    try:
        manifest = Manifest.model_validate({k: v for k, v in raw.items() if k not in UNCOVERED})
    except ValidationError as e:
        raise CheckpointError(f"{path}: invalid {MANIFEST}: {validation_message(e)}") from None
    if not manifest.files:
        raise CheckpointError(f"{path}: {MANIFEST} lists no files with checksums")
    missing = sorted(set(manifest.graphs) - set(manifest.files))
    if missing:
        raise CheckpointError(f"{path}: {MANIFEST} has no checksum for graph {missing[0]}")
    total = 0
    for name in manifest.files:
        if not _safe_name(name):
            raise CheckpointError(f"{path}: refusing file name {name!r} (outside the bundle)")
        size = src.size(name)
        if size is None:
            raise CheckpointError(f"{path}: incomplete bundle: {name} is missing")
        if size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path}: {name} is {size:,} bytes, over the {MAX_FILE_BYTES:,} limit")
        total += size
    if total > MAX_TOTAL_BYTES:
        raise CheckpointError(f"{path}: its files add up to {total:,} bytes, over the {MAX_TOTAL_BYTES:,} limit")
    return Bundle(path, manifest, src)
