"""Shipped teachers, addressable by name. They are trained by ``tools/train_teacher.py`` (the command and its
results are in docs/BENCHMARKS.md) and live inside the package, so every command works offline."""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
TEACHERS = ("sr4x", "deblur", "inpaint")


def resolve(name_or_path: str | Path) -> Path:
    """A shipped teacher's folder for a bare name, else the path as given."""
    if isinstance(name_or_path, str) and name_or_path in TEACHERS and not Path(name_or_path).exists():
        return WEIGHTS / name_or_path
    return Path(name_or_path)
