"""Reading and writing images safely: explicit handling of bit depth and channels, a pixel-count limit
against decompression bombs, and atomic writes so a failure never leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeir.errors import ImageError

MAX_PIXELS = 64_000_000  # ~8K x 8K; anything larger is refused before it is decoded
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class Picture:
    rgb: np.ndarray  # HxWx3 float32 in [0, 1]
    alpha: np.ndarray | None  # HxW float32 in [0, 1], kept aside and passed through untouched
    bit_depth: int  # 8 or 16
    gray: bool  # the file was single-channel; written back as such


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Picture:
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w == 0 or h == 0:
                    raise ImageError(f"{path}: image has zero size")
                if w * h > max_pixels:
                    raise ImageError(f"{path}: {w}x{h} exceeds the {max_pixels:,}-pixel limit")
                im.load()
                return _to_picture(im, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: exceeds the {max_pixels:,}-pixel limit (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({str(e).splitlines()[0][:80]})") from None


def _to_picture(im: Image.Image, path: Path) -> Picture:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.float32)
        return Picture(np.repeat((arr / 65535.0).clip(0, 1)[..., None], 3, -1), None, 16, True)
    if mode in ("L", "1", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "PA"):
        has_alpha = mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in im.info)
        gray = mode in ("L", "1", "LA")
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return Picture(rgba[..., :3], rgba[..., 3] if has_alpha else None, 8, gray)
    if mode in ("RGB;16", "RGBA;16") or mode.startswith("I;16"):
        raise ImageError(f"{path}: unsupported 16-bit mode {mode}")
    raise ImageError(f"{path}: unsupported image mode {mode}")


def read_rgb(path: str | Path) -> np.ndarray:
    return read_image(path).rgb


def to_pil(pic: Picture) -> Image.Image:
    rgb = np.clip(pic.rgb, 0, 1)
    if pic.gray and pic.bit_depth == 16 and pic.alpha is None:
        return Image.fromarray((rgb.mean(-1) * 65535 + 0.5).astype(np.uint16))
    chans = [rgb.mean(-1)] if pic.gray else [rgb[..., c] for c in range(3)]
    if pic.alpha is not None:
        chans.append(np.clip(pic.alpha, 0, 1))
    arr = (np.stack(chans, -1) * 255 + 0.5).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[len(chans)]
    return Image.fromarray(arr[..., 0] if len(chans) == 1 else arr, mode)


def write_image(path: str | Path, pic: Picture) -> None:
    """Atomic: written to a temporary file in the same folder, then renamed over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF"}.get(path.suffix.lower(), "PNG")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            to_pil(pic).save(f, fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(sorted(SUFFIXES))})")
    return files
