"""Bundles: a folder (or one ``.edgeir`` zip of that folder) with ``manifest.json`` and the graphs it lists.

Bundles arrive on devices from elsewhere, so loading trusts nothing: the manifest is size-limited and validated
against its schema, every listed file must exist inside the bundle (no absolute paths, no ``..``, no symlinks
out of it) and match its sha256, and the graphs are then served from the verified bytes, so a file swapped after
the check is never run. Anything wrong is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from edgeir.bundle.manifest import Manifest
from edgeir.errors import CheckpointError, validation_message
from edgeir.files import atomic_dir, atomic_path

MANIFEST = "manifest.json"
SUFFIX = ".edgeir"
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = 4 << 30


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    files: dict[str, bytes]  # verified content of every file the manifest lists

    @property
    def digest(self) -> str:
        """Identifies this exact bundle (caches of built engines are keyed by it)."""
        return hashlib.sha256(json.dumps(self.manifest.files, sort_keys=True).encode()).hexdigest()[:16]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name and name != MANIFEST


def write_bundle(dest: str | Path, files: dict[str, str | Path], manifest: Manifest) -> Path:
    """Write ``files`` (bundle-relative name -> source file) and the manifest, with checksums filled in.
    ``dest`` ending in ``.edgeir`` gives a single zip, anything else a folder. Atomic either way: built next
    to ``dest`` and renamed into place, so a reader never sees half a bundle."""
    dest = Path(dest)
    bad = [n for n in files if not _safe_name(n)]
    if bad:
        raise CheckpointError(f"{dest}: invalid file name in bundle: {bad[0]!r}")
    missing = sorted({v.graph for v in manifest.variants} - set(files))
    if missing:
        raise CheckpointError(f"{dest}: the manifest's graph {missing[0]} is not among the bundle's files")
    data = {name: Path(src).read_bytes() for name, src in files.items()}
    manifest = manifest.model_copy(update={"files": {n: sha256(b) for n, b in sorted(data.items())}})
    text = manifest.model_dump_json(indent=2) + "\n"
    Manifest.model_validate_json(text)  # what we write must load
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


class _Folder:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def size(self, name: str) -> int | None:
        p = (self.root / name).resolve()
        if not p.is_relative_to(self.root) or not p.is_file():
            return None
        return p.stat().st_size

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class _Zip:
    def __init__(self, z: zipfile.ZipFile):
        self.z = z
        self.infos = {i.filename: i for i in z.infolist() if not i.is_dir()}

    def size(self, name: str) -> int | None:
        info = self.infos.get(name)
        return None if info is None else info.file_size

    def read(self, name: str) -> bytes:
        return self.z.read(name)


def load_bundle(path: str | Path) -> Bundle:
    """A verified bundle, or ``CheckpointError`` with one line saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        return _load(path, _Folder(path))
    if not path.is_file():
        raise CheckpointError(f"{path}: no such bundle (a folder with {MANIFEST}, or a {SUFFIX} file)")
    try:
        with zipfile.ZipFile(path) as z:
            return _load(path, _Zip(z))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as e:
        raise CheckpointError(f"{path}: not a readable bundle ({type(e).__name__}: {str(e)[:80]})") from None


def _load(path: Path, src: _Folder | _Zip) -> Bundle:
    size = src.size(MANIFEST)
    if size is None:
        raise CheckpointError(f"{path}: incomplete bundle: no {MANIFEST}")
    if size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path}: {MANIFEST} is {size:,} bytes, over the {MAX_MANIFEST_BYTES:,} limit")
    try:
        manifest = Manifest.model_validate_json(src.read(MANIFEST))
    except ValidationError as e:
        raise CheckpointError(f"{path}: invalid {MANIFEST}: {validation_message(e)}") from None
    if not manifest.files:
        raise CheckpointError(f"{path}: {MANIFEST} lists no files with checksums")
    missing = sorted({v.graph for v in manifest.variants} - set(manifest.files))
    if missing:
        raise CheckpointError(f"{path}: {MANIFEST} has no checksum for graph {missing[0]}")
    files = {}
    for name, digest in manifest.files.items():
        if not _safe_name(name):
            raise CheckpointError(f"{path}: refusing file name {name!r} (outside the bundle)")
        size = src.size(name)
        if size is None:
            raise CheckpointError(f"{path}: incomplete bundle: {name} is missing")
        if size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path}: {name} is {size:,} bytes, over the {MAX_FILE_BYTES:,} limit")
        data = src.read(name)
        if sha256(data) != digest.lower():
            raise CheckpointError(f"{path}: {name} does not match its sha256 in {MANIFEST} (tampered or "
                                  "corrupt bundle)")
        files[name] = data
    return Bundle(path, manifest, files)
