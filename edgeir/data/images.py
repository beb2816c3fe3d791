"""Reading and writing images safely: explicit handling of bit depth and channels, a pixel-count limit
against decompression bombs, and atomic writes so a failure never leaves a half-written file.

Pillow has no 16-bit colour mode: it silently reads 16-bit RGB(A) PNG and TIFF files as 8-bit. Such files are
recognised from Pillow's raw mode and decoded at full depth by pypng (PNG) or tifffile (TIFF), both pure
Python, and written back the same way, so 16 bits in means 16 bits out. Animated files are refused: restoring
one frame and dropping the rest would lose data silently.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeir.errors import ImageError, brief
from edgeir.files import atomic_path

MAX_PIXELS = 64_000_000  # ~8K x 8K; anything larger is refused before it is decoded
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class Picture:
    rgb: np.ndarray  # HxWx3 float32 in [0, 1]
    alpha: np.ndarray | None  # HxW float32 in [0, 1], kept aside and passed through untouched
    bit_depth: int  # 8 or 16
    gray: bool  # the file was single-channel; written back as such


def from_array(arr: np.ndarray, name: str = "image") -> Picture:
    """uint8 or uint16 HxW or HxWxC (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{name}: expected uint8 or uint16 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected HxW or HxWxC with C in 1..4, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: image has zero size")
    scaled = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    c = arr.shape[2]
    rgb = np.repeat(scaled[..., :1], 3, -1) if c < 3 else scaled[..., :3]
    alpha = scaled[..., -1] if c in (2, 4) else None
    return Picture(rgb, alpha, 16 if arr.dtype == np.uint16 else 8, c < 3)


def to_array(pic: Picture) -> np.ndarray:
    """The inverse of ``from_array``: same bit depth, grey written as one channel (the mean), alpha last."""
    rgb = np.clip(pic.rgb, 0, 1)
    chans = [rgb.mean(-1)] if pic.gray else [rgb[..., c] for c in range(3)]
    if pic.alpha is not None:
        chans.append(np.clip(pic.alpha, 0, 1))
    dtype = np.uint16 if pic.bit_depth == 16 else np.uint8
    arr = (np.stack(chans, -1) * np.iinfo(dtype).max + 0.5).astype(dtype)
    return arr[..., 0] if len(chans) == 1 else arr


def _raw_mode(im: Image.Image) -> str:
    args = im.tile[0].args if im.tile else ""
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _read_16bit(path: Path, fmt: str | None) -> np.ndarray:
    if fmt == "PNG":
        import png

        with open(path, "rb") as f:
            w, h, rows, info = png.Reader(file=f).asDirect()
            return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    if fmt == "TIFF":
        import tifffile

        arr = tifffile.imread(path, key=0)
        if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (2, 3, 4):
            raise ImageError(f"{path}: unsupported 16-bit TIFF layout {arr.shape} {arr.dtype}")
        return arr
    raise ImageError(f"{path}: unsupported 16-bit {fmt} image")


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, scale: int = 1) -> Picture:
    """``max_pixels`` limits the restored image, ``scale`` times the input's size on each side; it is checked
    from the file's header, before any pixel is decoded."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO or device would block the read
        raise ImageError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w == 0 or h == 0:
                    raise ImageError(f"{path}: image has zero size")
                if w * h * scale * scale > max_pixels:
                    output = f" (a {w * scale}x{h * scale} output)" if scale > 1 else ""
                    raise ImageError(f"{path}: {w}x{h}{output} exceeds the {max_pixels:,}-pixel limit")
                if getattr(im, "is_animated", False):
                    raise ImageError(f"{path}: animated image (several frames); restore its frames one by one")
                if im.mode in ("RGB", "RGBA", "LA") and ";16" in _raw_mode(im):
                    return from_array(_read_16bit(path, im.format), str(path))
                im.load()
                return _to_picture(im, path)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - decoders of hostile files raise anything; report it in one line
        raise ImageError(f"{path}: {_read_problem(e, max_pixels)}") from None


def _read_problem(e: Exception, max_pixels: int) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"exceeds the {max_pixels:,}-pixel limit (decompression bomb?)"
    if isinstance(e, UnidentifiedImageError):
        return "not a readable image"
    if isinstance(e, OSError) and e.errno is not None:  # the file system's (a symlink loop, no permission)
        return e.strerror or str(e)
    return f"corrupt or truncated image ({brief(e, 80, first_line=True)})"  # Pillow's decoders raise errno-less OSErrors and others


def _to_picture(im: Image.Image, path: Path) -> Picture:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return from_array(np.asarray(im).clip(0, 65535).astype(np.uint16), str(path))
    if mode in ("L", "1", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "PA"):
        has_alpha = mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in im.info)
        gray = mode in ("L", "1", "LA")
        target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
        return from_array(np.asarray(im.convert(target)), str(path))
    raise ImageError(f"{path}: unsupported image mode {mode}")


def read_rgb(path: str | Path) -> np.ndarray:
    return read_image(path).rgb


def _save(f, arr: np.ndarray, fmt: str) -> None:
    if arr.dtype == np.uint16 and arr.ndim == 3:  # 16-bit with several channels: beyond Pillow
        h, w, c = arr.shape
        if fmt == "PNG":
            import png

            png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16).write_array(f, arr.reshape(-1))
        elif fmt == "TIFF" and c != 2:  # 16-bit grey+alpha TIFF: Pillow could not read it back
            import tifffile

            buf = io.BytesIO()  # tifffile wants a named file or a buffer, not a bare descriptor
            tifffile.imwrite(buf, arr, photometric="rgb" if c >= 3 else "minisblack",
                             extrasamples=["unassalpha"] if c in (2, 4) else None)
            f.write(buf.getvalue())
        else:
            raise ImageError(f"{fmt} cannot hold 16-bit {'grey+alpha' if c == 2 else 'colour'}; write .png")
        return
    if arr.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        raise ImageError(f"{fmt} cannot hold 16-bit grey; write .png or .tif")
    Image.fromarray(arr).save(f, fmt)  # Pillow infers L, I;16, LA, RGB, RGBA from dtype and shape


def write_image(path: str | Path, pic: Picture) -> None:
    """Atomic: written to a temporary file in the same folder, then renamed over the target. The format is the
    one the suffix names (PNG when it names none)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    if fmt not in Image.SAVE:
        raise ImageError(f"cannot write {path}: Pillow reads {fmt} images but cannot write them")
    arr = to_array(pic)
    try:
        with atomic_path(path) as tmp, open(tmp, "xb") as f:
            _save(f, arr, fmt)
    except ImageError as e:
        raise ImageError(f"cannot write {path}: {e}") from None
    except OSError as e:  # a full disk, a read-only folder, a folder in the way, a mode the format cannot hold
        raise ImageError(f"cannot write {path}: {e.strerror or e}") from None


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(sorted(SUFFIXES))})")
    return files
