"""Any image size through fixed-size tiles (Real-ESRGAN style): overlapping tiles, feathered blending, one
noise field.

* Tiles all have the same shape, so one graph profile (and one TensorRT engine) serves every image, and tiles
  can be batched. Their origins sit on multiples of the network's ``multiple_of``, so overlapping tiles see the
  same pixel-unshuffle phase and agree closely where they overlap.
* The noise for the whole image is drawn once and sliced per tile: where tiles overlap they start from the same
  noise, so their samples agree and blending does not average two different textures.
* Each tile's weight ramps linearly across its overlap with each neighbour (its outermost pixels, where the
  network sees least context, weigh least); neighbouring ramps add up to one, so the cross-fade leaves no seam.
* Memory: the graph only ever sees ``batch`` tiles; whole-image buffers (condition, noise, output) cost a fixed
  number of bytes per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RunTiles = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (B,C,h,w) condition, (B,K,h,w) noise -> (B,3,h,w)


def noise_field(seed: int, channels: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, height, width), dtype=np.float32)


def pad_to_multiple(arr: np.ndarray, multiple: int) -> np.ndarray:
    """(C, H, W) padded at the bottom/right to multiples, the same way ``Restorer.restore_tensor`` pads."""
    h, w = arr.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return arr
    return np.pad(arr, ((0, 0), (0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Origins of ``tile``-long tiles covering ``length`` with at least ``overlap``, spread evenly."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return sorted({round(i * (length - tile) / (n - 1) / multiple) * multiple for i in range(n)})


def feather(starts: list[int], tile: int) -> list[np.ndarray]:
    """1-D weight of each tile: linear ramps across the overlap with each neighbour, 1 elsewhere."""
    weights = []
    for i, s in enumerate(starts):
        w = np.ones(tile, np.float32)
        if i > 0 and (o := starts[i - 1] + tile - s) > 0:
            w[:o] = (np.arange(o, dtype=np.float32) + 0.5) / o
        if i + 1 < len(starts) and (o := s + tile - starts[i + 1]) > 0:
            w[tile - o:] = np.minimum(w[tile - o:], (o - 0.5 - np.arange(o, dtype=np.float32)) / o)
        weights.append(w)
    return weights


def restore_tiled(run: RunTiles, cond: np.ndarray, noise: np.ndarray, tile: int, overlap: int, multiple: int,
                  batch: int = 1) -> np.ndarray:
    """(C, H, W) condition and (K, H, W) noise -> (3, H, W) image, ``batch`` tiles per graph call. ``tile``
    must be a multiple of ``multiple``; an image smaller than a tile is one (padded) tile."""
    h, w = cond.shape[1:]
    cond, noise = pad_to_multiple(cond, multiple), pad_to_multiple(noise, multiple)
    hp, wp = cond.shape[1:]
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, overlap, multiple), tile_starts(wp, tw, overlap, multiple)
    wy, wx = feather(ys, th), feather(xs, tw)
    out = np.zeros((3, hp, wp), np.float32)
    wsum = np.zeros((hp, wp), np.float32)
    boxes = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for k in range(0, len(boxes), batch):
        group = boxes[k:k + batch]
        crops = [(slice(ys[i], ys[i] + th), slice(xs[j], xs[j] + tw)) for i, j in group]
        images = run(np.stack([cond[:, sy, sx] for sy, sx in crops]),
                     np.stack([noise[:, sy, sx] for sy, sx in crops]))
        for (i, j), (sy, sx), image in zip(group, crops, images):
            weight = wy[i][:, None] * wx[j][None, :]
            out[:, sy, sx] += image * weight
            wsum[sy, sx] += weight
    out /= wsum
    return out[:, :h, :w]
