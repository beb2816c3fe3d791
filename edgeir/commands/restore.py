"""``edgeir restore``: restore files, folders and globs with a bundle. A bad file is reported and skipped, the
rest are restored; outputs are written atomically and never over an input."""

from __future__ import annotations

import glob
import time
from pathlib import Path

from edgeir.data.images import SUFFIXES, read_image, write_image
from edgeir.errors import EdgeirError, ImageError
from edgeir.progress import progress_bar
from edgeir.runtime import Restorer
from edgeir.runtime.budget import Plan


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict]]:
    """Image files named by ``inputs`` (files, folders, globs), in order, once each; and what matched nothing."""
    files: list[Path] = []
    failed = []
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.exists() or not glob.has_magic(spec):
            found = [p]
        else:
            found = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
        if not found:
            failed.append({"input": spec, "error": f"{spec}: no images"})
        files += found
    return list(dict.fromkeys(files)), failed


def run_restore(bundle: str | Path, inputs: list[str], outdir: Path, variant: str | None = None, seed: int = 0,
                backend: str = "auto", plan: Path | None = None) -> dict:
    restorer = Plan.read(plan).load(bundle) if plan else Restorer.load(bundle, backend, variant)
    files, failed = expand_inputs(inputs)
    protected = {f.resolve() for f in files}
    restored, taken = [], set()
    with progress_bar("restore", len(files)) as advance:
        for src in files:
            dest = outdir / src.name
            try:
                if dest.resolve() in protected:
                    raise ImageError(f"{src}: its output {dest} would overwrite an input; choose another -o")
                if dest.resolve() in taken:
                    raise ImageError(f"{src}: another input already wrote {dest}")
                start = time.perf_counter()
                write_image(dest, restorer.restore_picture(read_image(src), seed))
                taken.add(dest.resolve())
                restored.append({"input": str(src), "output": str(dest),
                                 "ms": round((time.perf_counter() - start) * 1000, 1)})
            except EdgeirError as e:
                failed.append({"input": str(src), "error": str(e)})
            except MemoryError:
                failed.append({"input": str(src), "error": f"{src}: out of memory (try a smaller --tile)"})
            advance(1)
    return {**restorer.describe(), "notes": restorer.notes, "restored": restored, "failed": failed}
