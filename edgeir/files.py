"""Atomic writes, so a crash or Ctrl-C leaves the old file or folder or the new one, never half of one.

Stdlib only: the torch-free runtime uses it too. Temporary siblings are hidden, live in the target's folder (a
rename across filesystems is not atomic) and get the usual umask permissions, not mkstemp's private 0600/0700:
a shipped bundle or model must be readable by the user who runs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _sibling(path: Path, what: str) -> Path:
    # Ends in the target's own suffix: writers such as matplotlib and Pillow pick their format from it.
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.{what}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling of ``path`` for the caller to write as it likes; renamed over ``path`` when
    the block ends, removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        _as_created(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path`` for the caller to fill; it replaces ``path`` (and
    whatever ``path`` held) when the block ends, and is removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "partial")
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` where ``target`` is: the old one is moved aside first, so one of them is always there."""
    _as_created(new)
    old = _sibling(target, "old")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _as_created(path: Path) -> None:
    """Give ``path``, and all a folder holds, the mode open() and mkdir() give under the umask: some writers
    (safetensors, tempfile) make their files private (0600), and a model or bundle is shared."""
    mask = _umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere the only way is to set it and set it back, which
    for that instant loosens the mode of files other threads create."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask
