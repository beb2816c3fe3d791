"""How a frame of any size is covered by tiles, and how their outputs are blended back: the index and weight
maps a restore graph is fed (numpy; ``edgeir.graphs.restore`` does the cutting and blending inside the graph).

* Along each axis, tiles of ``tile`` pixels sit at a stride of ``tile - overlap``, starting at the frame's
  edge, as many as it takes to reach its far end; what lies beyond the far end is the frame mirrored
  (symmetric reflection, any width), cropped off again at the end. A side no longer than a tile is one tile of
  just its own length (rounded up to the network's ``multiple_of``, and to at least two overlaps), so a small
  frame costs a small frame's work.
* Stride and tile are multiples of ``multiple_of``: overlapping tiles see the same pixel-unshuffle phase and
  agree closely where they overlap.
* Each tile's weight ramps linearly across the overlaps it shares, ``(k + 0.5) / overlap`` up and its mirror
  image down, so two overlapping ramps sum to one: the cross-fade leaves no seam and needs no normalisation;
  at the frame's own edges the weight is 1.
* The noise is one field for the whole frame, tiled the same way: where tiles overlap they start from the same
  noise, so their samples agree and blending does not average two different textures.
* A latent restorer's tiles are cut from the latent frame, ``factor`` times smaller, and blended after decoding,
  in pixel space (``latent_maps``): tile, overlap and ``multiple_of`` count output pixels, so tiles stay on the
  latent grid and a decoded tile covers exactly the output pixels its latent tile stands for.
"""

from __future__ import annotations

import numpy as np

from edgeir.diffusion.latent import LatentSpace


def check(tile: int, overlap: int, multiple_of: int) -> None:
    if tile % multiple_of or (tile - overlap) % multiple_of or not 0 <= 2 * overlap <= tile:
        raise ValueError(f"tile {tile} and overlap {overlap} need tile and tile - overlap multiples of "
                         f"{multiple_of}, and overlap at most half the tile")


def default_overlap(tile: int, multiple_of: int) -> int:
    """About an eighth of the tile, in whole multiples of the network's ``multiple_of``."""
    return min(tile // 2 // multiple_of, max(1, tile // 8 // multiple_of)) * multiple_of


def span(length: int, tile: int, overlap: int, multiple_of: int) -> tuple[int, int]:
    """(tiles, tile length) along a side of ``length`` pixels."""
    if length <= tile:
        return 1, max(-(-length // multiple_of) * multiple_of, 2 * overlap)
    stride = tile - overlap
    return -(-(length - overlap) // stride), tile


def positions(length: int, tile: int, overlap: int, multiple_of: int) -> np.ndarray:
    """(tiles, tile length) int64: the frame coordinate each tile pixel reads, mirrored into ``[0, length)``."""
    n, t = span(length, tile, overlap, multiple_of)
    return _reflect(np.arange(n)[:, None] * (t - overlap) + np.arange(t)[None], length)


def _reflect(p: np.ndarray, length: int) -> np.ndarray:
    m = p % (2 * length)  # symmetric reflection has period 2 * length
    return np.minimum(m, 2 * length - 1 - m).astype(np.int64)


def weights(length: int, tile: int, overlap: int, multiple_of: int) -> np.ndarray:
    """(tiles, tile length) float32: each tile's weight along the side, ramps where it shares an overlap."""
    n, t = span(length, tile, overlap, multiple_of)
    w = np.ones((n, t), np.float32)
    if overlap and n > 1:
        up = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[1:, :overlap] = up
        w[:-1, t - overlap:] = up[::-1]
    return w


def split(frame: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(C, H, W) frame -> (ny * nx, C, th, tw) tiles, row by row."""
    tiles = frame[:, rows][:, :, :, cols]  # (C, ny, th, nx, tw)
    c, ny, th, nx, tw = tiles.shape
    return np.ascontiguousarray(tiles.transpose(1, 3, 0, 2, 4)).reshape(ny * nx, c, th, tw)


def fold(tiles: np.ndarray, overlap: int) -> np.ndarray:
    """(..., n, t) -> (..., n * (t - overlap) + overlap): consecutive tiles of the second-last axis laid along
    the last axis at their stride, overlaps added."""
    n, t = tiles.shape[-2:]
    stride = t - overlap
    out = np.zeros(tiles.shape[:-2] + (n * stride + overlap,), tiles.dtype)
    for j in range(n):
        out[..., j * stride: j * stride + t] += tiles[..., j, :]
    return out


def blend(tiles: np.ndarray, row_weights: np.ndarray, col_weights: np.ndarray, height: int, width: int,
          overlap: int) -> np.ndarray:
    """(ny * nx, C, th, tw) tile outputs -> the (C, height, width) frame."""
    (ny, th), (nx, tw) = row_weights.shape, col_weights.shape
    c = tiles.shape[1]
    grid = tiles.reshape(ny, nx, c, th, tw) * row_weights[:, None, None, :, None] * col_weights[None, :, None, None]
    across = fold(grid.transpose(0, 2, 3, 1, 4), overlap)  # (ny, C, th, Wp)
    down = fold(across.transpose(1, 3, 0, 2), overlap)  # (C, Wp, Hp)
    return down.transpose(0, 2, 1)[:, :height, :width]


def maps(height: int, width: int, tile: int, overlap: int, multiple_of: int) -> dict[str, np.ndarray]:
    """A restore graph's tiling inputs for an ``height`` x ``width`` output frame."""
    return {"rows": positions(height, tile, overlap, multiple_of), "cols": positions(width, tile, overlap, multiple_of),
            "row_weights": weights(height, tile, overlap, multiple_of),
            "col_weights": weights(width, tile, overlap, multiple_of)}


def latent_maps(height: int, width: int, tile: int, overlap: int, multiple_of: int, factor: int, encoder: bool
                ) -> dict[str, np.ndarray]:
    """A latent restore graph's tiling inputs for an ``height`` x ``width`` output frame: ``rows``/``cols`` over
    the latent frame (``factor`` times smaller, rounded up), ``row_weights``/``col_weights`` over the decoded
    tiles' output pixels (the same tiles, ``factor`` times longer), and with an ``encoder`` the output-pixel
    ``pixel_rows``/``pixel_cols`` its input tiles are cut by, mirrored into the frame."""
    lh, lw = -(-height // factor), -(-width // factor)
    t, o, m = tile // factor, overlap // factor, multiple_of // factor
    maps = {"rows": positions(lh, t, o, m), "cols": positions(lw, t, o, m),
            "row_weights": weights(lh * factor, tile, overlap, multiple_of),
            "col_weights": weights(lw * factor, tile, overlap, multiple_of)}
    if encoder:
        maps["pixel_rows"] = _reflect(positions(lh * factor, tile, overlap, multiple_of), height)
        maps["pixel_cols"] = _reflect(positions(lw * factor, tile, overlap, multiple_of), width)
    return maps


def tile_maps(height: int, width: int, tile: int, overlap: int, multiple_of: int, latent: LatentSpace | None
              ) -> dict[str, np.ndarray]:
    """A restore graph's tiling inputs for an output frame of ``height`` x ``width`` (a latent restorer's:
    ``latent_maps``)."""
    if latent is None:
        return maps(height, width, tile, overlap, multiple_of)
    return latent_maps(height, width, tile, overlap, multiple_of, latent.factor, latent.condition == "latent")


def sample_shape(height: int, width: int, latent: LatentSpace | None) -> tuple[int, int]:
    """The sides of the sample (and its noise) for an output frame of ``height`` x ``width``."""
    f = latent.factor if latent else 1
    return -(-height // f), -(-width // f)
