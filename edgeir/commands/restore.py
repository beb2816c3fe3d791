"""``edgeir restore``: restore files, folders and globs with a bundle. A bad input (unreadable, too small or too
large, animated, a symlink loop, an output that cannot be written) is reported in one line naming it and skipped;
the rest are restored. Outputs are written atomically and never over an input."""

from __future__ import annotations

import glob
import time
from pathlib import Path

from edgeir.data.images import SUFFIXES, read_image, write_image
from edgeir.errors import EdgeirError, ImageError
from edgeir.progress import progress_bar
from edgeir.runtime import Restorer
from edgeir.runtime.budget import Plan


def _failure(name: str | Path, problem: str) -> dict:
    prefix = f"{name}: "
    return {"input": str(name), "error": problem if problem.startswith(prefix) else prefix + problem}


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except RuntimeError:  # a symlink loop (Python 3.13+ returns the path instead, and reading it then fails)
        raise ImageError(f"{path}: symlink loop") from None


def _listed(path: Path) -> bool:
    # A link that leads nowhere is listed so that it is reported, not silently skipped.
    return path.is_file() or (path.is_symlink() and not path.exists())


def expand_inputs(inputs: list[str]) -> tuple[dict[Path, Path], list[dict]]:
    """Image files named by ``inputs`` (files, folders, globs), in order, once each, with their resolved paths;
    and what matched nothing or cannot be followed."""
    files: dict[Path, Path] = {}
    failed, seen = [], set()
    for spec in inputs:
        p = Path(spec)
        try:
            if p.is_dir():
                found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and _listed(f))
            elif p.exists() or not glob.has_magic(spec):
                found = [p]
            else:
                found = sorted(Path(f) for f in glob.glob(spec, recursive=True) if _listed(Path(f)))
        except OSError as e:  # a folder on the way that cannot be read
            failed.append(_failure(spec, e.strerror or str(e)))
            continue
        if not found:
            failed.append(_failure(spec, "no images"))
        for f in (f for f in found if f not in seen):
            seen.add(f)
            try:
                files[f] = _resolved(f)
            except ImageError as e:
                failed.append(_failure(f, str(e)))
    return files, failed


def run_restore(bundle: str | Path, inputs: list[str], outdir: Path, variant: str | None = None, seed: int = 0,
                backend: str = "auto", plan: Path | None = None, trusted_keys: list[Path] | None = None) -> dict:
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ImageError(f"{outdir}: not a folder (-o names the folder for the restored images)")
    restorer = (Plan.read(plan).load(bundle, trusted_keys) if plan else
                Restorer.load(bundle, backend, variant, trusted_keys=trusted_keys))
    files, failed = expand_inputs(inputs)
    protected = set(files.values())
    restored, taken = [], set()
    with progress_bar("restore", len(files)) as advance:
        for src in files:
            dest = outdir / src.name
            try:
                if dest.is_dir():
                    raise ImageError(f"its output {dest} is a folder")
                real = _resolved(dest)
                if real in protected:
                    raise ImageError(f"its output {dest} would overwrite an input; choose another -o")
                if real in taken:
                    raise ImageError(f"another input already wrote {dest}")
                start = time.perf_counter()
                # The pixel limit holds for the output, so an input too large for it is refused from its header.
                pic = read_image(src, scale=restorer.task.scale)
                write_image(dest, restorer.restore_picture(pic, seed))
                taken.add(_resolved(dest))
                restored.append({"input": str(src), "output": str(dest),
                                 "ms": round((time.perf_counter() - start) * 1000, 1)})
            except EdgeirError as e:
                failed.append(_failure(src, str(e)))
            except MemoryError:
                failed.append(_failure(src, "out of memory (try a smaller --tile)"))
            advance(1)
    return {**restorer.describe(), "notes": restorer.notes, "restored": restored, "failed": failed}
