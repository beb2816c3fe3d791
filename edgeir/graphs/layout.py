"""How a frame of any size is covered by same-size tiles, and how their outputs are blended back (numpy; the
restore graph computes the same inside itself, ``edgeir.graphs.restore``).

* Tiles are ``tile`` x ``tile`` output pixels on a grid of stride ``tile - overlap``, so neighbours overlap by
  ``overlap`` pixels. Stride and tile are multiples of the network's ``multiple_of``: overlapping tiles see the
  same pixel-unshuffle phase and agree closely where they overlap.
* The grid starts ``overlap`` pixels before the frame and ends at least ``overlap`` after it; what lies outside
  the frame is the frame mirrored (symmetric reflection, any width). So every frame pixel is either in one
  tile's core or in an overlap where two tiles cross-fade, and tiles at the frame's edge need no special case.
* Each tile's weight ramps linearly across its overlaps, ``(k + 0.5) / overlap`` up and the mirror image down,
  so two overlapping ramps sum to one: the cross-fade leaves no seam and needs no normalisation.
* The noise is one field for the whole frame, tiled the same way: where tiles overlap they start from the same
  noise, so their samples agree and blending does not average two different textures.
"""

from __future__ import annotations

import numpy as np


def check(tile: int, overlap: int, multiple_of: int) -> None:
    if tile % multiple_of or (tile - overlap) % multiple_of or not 0 <= 2 * overlap <= tile:
        raise ValueError(f"tile {tile} and overlap {overlap} need tile and tile - overlap multiples of "
                         f"{multiple_of}, and overlap at most half the tile")


def default_overlap(tile: int, multiple_of: int) -> int:
    """About an eighth of the tile, in whole multiples of the network's ``multiple_of``."""
    return min(tile // 2 // multiple_of, max(1, tile // 8 // multiple_of)) * multiple_of


def count(length: int, tile: int, overlap: int) -> int:
    """Tiles along a side of ``length`` pixels: enough to reach ``overlap`` past its end."""
    stride = tile - overlap
    return -(-(length + overlap) // stride)


def positions(length: int, tile: int, overlap: int) -> np.ndarray:
    """(count, tile) int64: the frame coordinate each tile pixel reads, mirrored into ``[0, length)``."""
    stride = tile - overlap
    p = np.arange(count(length, tile, overlap))[:, None] * stride + np.arange(tile)[None] - overlap
    m = (p + 2 * length * overlap) % (2 * length)  # symmetric reflection has period 2 * length
    return np.minimum(m, 2 * length - 1 - m).astype(np.int64)


def ramp(tile: int, overlap: int) -> np.ndarray:
    """(tile,) float32: a tile's weight along one axis."""
    w = np.ones(tile, np.float32)
    if overlap:
        up = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap], w[tile - overlap:] = up, up[::-1]
    return w


def split(frame: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(C, H, W) frame -> (ny * nx, C, tile, tile) tiles, row by row."""
    tiles = frame[:, rows][:, :, :, cols]  # (C, ny, T, nx, T)
    c, ny, t, nx, _ = tiles.shape
    return np.ascontiguousarray(tiles.transpose(1, 3, 0, 2, 4)).reshape(ny * nx, c, t, t)


def fold(tiles: np.ndarray, overlap: int) -> np.ndarray:
    """(..., n, tile) -> (..., n * stride + overlap): consecutive tiles of the second-last axis laid along the
    last axis at their stride, overlaps added."""
    n, tile = tiles.shape[-2:]
    stride = tile - overlap
    out = np.zeros(tiles.shape[:-2] + (n * stride + overlap,), tiles.dtype)
    for j in range(n):
        out[..., j * stride: j * stride + tile] += tiles[..., j, :]
    return out


def blend(tiles: np.ndarray, ny: int, nx: int, height: int, width: int, overlap: int) -> np.ndarray:
    """(ny * nx, C, tile, tile) tile outputs -> the (C, height, width) frame."""
    c, tile = tiles.shape[1], tiles.shape[-1]
    w = ramp(tile, overlap)
    grid = (tiles * w[:, None] * w[None, :]).reshape(ny, nx, c, tile, tile)
    across = fold(grid.transpose(0, 2, 3, 1, 4), overlap)  # (ny, C, T, Wp)
    down = fold(across.transpose(1, 3, 0, 2), overlap)  # (C, Wp, Hp)
    return down.transpose(0, 2, 1)[:, overlap: overlap + height, overlap: overlap + width]
