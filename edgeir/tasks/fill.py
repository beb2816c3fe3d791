"""Cheap hole fills for the inpainting condition's base image: numpy only and O(pixels), because the runtime
builds the same condition on the device.

Both work coarse to fine on a push-pull pyramid (each level holds the mean of the known pixels under it).
``pyramid_fill`` fills a level's empty pixels from the blurred coarser level: a smooth membrane that meets the
hole's edge but flattens out inside. ``biharmonic_fill`` instead relaxes each level's empty pixels towards
``Δ²u = 0`` (what scikit-image's ``inpaint_biharmonic`` solves exactly, with a sparse solver that takes seconds at
1080p): it continues gradients into the hole, so an edge that enters a hole carries on across it."""

from __future__ import annotations

import numpy as np


def near_holes(fill, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``fill(image, mask)`` worked out on the holes' bounding box grown by as much as the holes span (at least
    32 pixels) rather than on the whole frame: a few holes in a large frame cost what the holes cost. The fill
    inside a hole comes from the known pixels around it, and a model trained on crops saw no more context than
    this."""
    if not mask.any():
        return image.astype(np.float32)
    ys, xs = np.nonzero(mask.any(1)), np.nonzero(mask.any(0))
    y0, y1, x0, x1 = int(ys[0][0]), int(ys[0][-1]) + 1, int(xs[0][0]), int(xs[0][-1]) + 1
    margin = max(32, y1 - y0, x1 - x0)
    grid = 1 << (2 * margin - 1).bit_length()  # the crop keeps the frame's pyramid blocks up to this size
    box = (slice(max(0, y0 - margin) // grid * grid, y1 + margin), slice(max(0, x0 - margin) // grid * grid, x1 + margin))
    out = image.astype(np.float32)
    out[box] = fill(image[box], mask[box])
    return out


def _pyramid(image: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level, finest first: (sum of known values, count of known pixels) over each 2^k x 2^k block."""
    known = (~mask).astype(np.float32)[..., None]
    levels = [(image.astype(np.float32) * known, known)]
    while min(levels[-1][1].shape[:2]) > 1:
        v, w = levels[-1]
        h2, w2 = -(-v.shape[0] // 2), -(-v.shape[1] // 2)
        pad = ((0, 2 * h2 - v.shape[0]), (0, 2 * w2 - v.shape[1]), (0, 0))
        v, w = np.pad(v, pad), np.pad(w, pad)
        levels.append(tuple(a.reshape(h2, 2, w2, 2, -1).sum((1, 3)) for a in (v, w)))
    return levels


def _coarse_to_fine(image: np.ndarray, mask: np.ndarray, refine) -> np.ndarray:
    levels = _pyramid(image, mask)
    v, w = levels[-1]
    est = v / np.maximum(w, 1e-8)
    for depth in range(len(levels) - 2, -1, -1):
        v, w = levels[depth]
        up = np.repeat(np.repeat(est, 2, 0), 2, 1)[: v.shape[0], : v.shape[1]]
        est = refine(up, v, w, depth)
    return np.where(mask[..., None], est, image).astype(np.float32)


def pyramid_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Push-pull: each level's holes take the (5-point blurred) coarser level."""

    def refine(up, v, w, depth):
        up = (up + np.roll(up, 1, 0) + np.roll(up, -1, 0) + np.roll(up, 1, 1) + np.roll(up, -1, 1)) / 5
        alpha = np.minimum(w, 1.0)
        return alpha * (v / np.maximum(w, 1e-8)) + (1 - alpha) * up

    return _coarse_to_fine(image, mask, refine)


def biharmonic_fill(image: np.ndarray, mask: np.ndarray, iterations: int = 8, max_iterations: int = 64
                    ) -> np.ndarray:
    """Coarse to fine, each level's empty pixels start from the coarser level and take ``iterations``
    conjugate-gradient steps towards ``Δ²u = 0`` at full resolution, twice as many at each coarser level (up to
    ``max_iterations``): a coarse level leaves only fine error to the next one, and coarse steps are cheap.
    Unlike a membrane, a biharmonic surface overshoots next to sharp edges, so the fill is clipped to [0, 1]."""

    def refine(up, v, w, depth):
        empty = w[..., 0] == 0
        est = np.where(empty[..., None], up, v / np.maximum(w, 1e-8))
        if empty.any():
            _solve(est, empty, min(max_iterations, iterations << depth))
        return est

    return np.clip(_coarse_to_fine(image, mask, refine), 0, 1)


def _solve(u: np.ndarray, free: np.ndarray, iterations: int) -> None:
    """Conjugate gradients on the ``free`` pixels of HxWxC ``u``, in place, minimising the squared Laplacian
    (so ``Δ²u = 0`` there) with the other pixels as the boundary condition. The Laplacian is the grid graph's
    (the image border mirrors the edge pixel), which keeps the system symmetric. The solve works on a compact
    copy of the pixels within two steps of a free one, so its buffers and steps grow with the holes, not the
    image."""
    h, w = free.shape
    near = _dilate(free)  # where Δ is needed: the free pixels and their neighbours
    reach = np.flatnonzero(_dilate(near))  # where Δ reads from
    slot = np.full(h * w, -1, np.intp)
    slot[reach] = np.arange(reach.size)
    inner_px, ring_px = np.flatnonzero(free), np.flatnonzero(near)
    ring_nb, inner_nb = slot[_neighbours(ring_px, h, w)], slot[_neighbours(inner_px, h, w)]
    inner, ring = slot[inner_px], slot[ring_px]  # positions in the compact copy
    flat = u.reshape(h * w, -1)
    planes = np.ascontiguousarray(flat[reach].T)  # (C, N): gathers run along contiguous rows
    scratch = np.zeros_like(planes)

    def bilaplacian(field: np.ndarray) -> np.ndarray:
        scratch[:, ring] = field[:, ring_nb].sum(1) - 4 * field[:, ring]
        return scratch[:, inner_nb].sum(1) - 4 * scratch[:, inner]

    r = -bilaplacian(planes)
    p, rr = r.copy(), float((r * r).sum())
    step = np.zeros_like(planes)
    for _ in range(iterations):
        if rr < 1e-20:
            break
        step[:, inner] = p
        ap = bilaplacian(step)
        curvature = float((p * ap).sum())
        if curvature <= 0:  # only rounding leaves a search direction without curvature: converged
            break
        alpha = rr / curvature
        planes[:, inner] += alpha * p
        r -= alpha * ap
        rr, previous = float((r * r).sum()), rr
        p = r + (rr / previous) * p
    flat[inner_px] = planes[:, inner].T


def _dilate(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def _neighbours(idx: np.ndarray, h: int, w: int) -> np.ndarray:
    """(4, N) flat indices of the 4-neighbours of flat indices ``idx``, clamped at the border."""
    y, x = np.divmod(idx, w)
    return np.stack([np.maximum(y - 1, 0) * w + x, np.minimum(y + 1, h - 1) * w + x,
                     y * w + np.maximum(x - 1, 0), y * w + np.minimum(x + 1, w - 1)])
