"""Cheap hole fills for the inpainting condition's base image: numpy only and O(pixels), because the runtime
builds the same condition on the device.

Both work coarse to fine on a push-pull pyramid (each level holds the mean of the known pixels under it).
``pyramid_fill`` fills a level's empty pixels from the blurred coarser level: a smooth membrane that meets the
hole's edge but flattens out inside. ``biharmonic_fill`` instead relaxes each level's empty pixels towards
``Δ²u = 0`` (what scikit-image's ``inpaint_biharmonic`` solves exactly, with a sparse solver that takes seconds at
1080p): it continues gradients into the hole, so an edge that enters a hole carries on across it."""

from __future__ import annotations

import numpy as np


def hole_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Where a fill is worked out: the holes' bounding box grown by as much as the holes span (at least 32
    pixels), not the whole frame, so a few holes in a large frame cost what the holes cost. The fill inside a
    hole comes from the known pixels around it, and a model trained on crops saw no more context than this.
    None without holes."""
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask.any(1)), np.nonzero(mask.any(0))
    y0, y1, x0, x1 = int(ys[0][0]), int(ys[0][-1]) + 1, int(xs[0][0]), int(xs[0][-1]) + 1
    margin = max(32, y1 - y0, x1 - x0)
    grid = 1 << (2 * margin - 1).bit_length()  # the crop keeps the frame's pyramid blocks up to this size
    return slice(max(0, y0 - margin) // grid * grid, y1 + margin), slice(max(0, x0 - margin) // grid * grid, x1 + margin)


def _pyramid(image: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level, finest first: (sum of known values, count of known pixels) over each 2^k x 2^k block."""
    known = (~mask).astype(np.float32)[..., None]
    levels = [(image.astype(np.float32) * known, known)]
    while min(levels[-1][1].shape[:2]) > 1:
        levels.append(tuple(_block_sums(a) for a in levels[-1]))
    return levels


def _block_sums(a: np.ndarray) -> np.ndarray:
    """Sums over 2x2 blocks, an odd last row or column padded with zeros."""
    if a.shape[0] % 2 or a.shape[1] % 2:
        a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)))
    out = a[0::2, 0::2] + a[0::2, 1::2]
    out += a[1::2, 0::2]
    out += a[1::2, 1::2]
    return out


def _coarse_to_fine(levels: list[tuple[np.ndarray, np.ndarray]], refine, finest: int = 0) -> np.ndarray:
    """The estimate at level ``finest``: the coarsest level's block means, then each finer level refined from
    the one above it."""
    v, w = levels[-1]
    est = v / np.maximum(w, 1e-8)
    for depth in range(len(levels) - 2, finest - 1, -1):
        v, w = levels[depth]
        up = np.repeat(np.repeat(est, 2, 0), 2, 1)[: v.shape[0], : v.shape[1]]
        est = refine(up, v, w, depth)
    return est


def pyramid_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Push-pull: each level's holes take the (5-point blurred) coarser level."""

    def refine(up, v, w, depth):
        up = (up + np.roll(up, 1, 0) + np.roll(up, -1, 0) + np.roll(up, 1, 1) + np.roll(up, -1, 1)) / 5
        alpha = np.minimum(w, 1.0)
        return alpha * (v / np.maximum(w, 1e-8)) + (1 - alpha) * up

    return np.where(mask[..., None], _coarse_to_fine(_pyramid(image, mask), refine), image).astype(np.float32)


def biharmonic_fill(image: np.ndarray, mask: np.ndarray, iterations: int = 8, max_iterations: int = 64
                    ) -> np.ndarray:
    """Coarse to fine, each level's empty pixels start from the coarser level and take ``iterations``
    conjugate-gradient steps towards ``Δ²u = 0`` at full resolution, twice as many at each coarser level (up to
    ``max_iterations``): a coarse level leaves only fine error to the next one, and coarse steps are cheap.
    Unlike a membrane, a biharmonic surface overshoots next to sharp edges, so the fill is clipped to [0, 1].
    The finest level is never built whole: its known pixels are the image's own, so only the holes take the
    coarser level's values and are solved, which is what keeps a few holes in a large frame cheap."""

    def refine(up, v, w, depth):
        empty = w[..., 0] == 0
        est = np.where(empty[..., None], up, v / np.maximum(w, 1e-8))
        if empty.any():
            _solve(est, empty, min(max_iterations, iterations << depth))
        return est

    out = image.astype(np.float32)
    levels = _pyramid(image, mask)
    ys, xs = np.nonzero(mask)
    if len(levels) == 1:  # a single row or column: no coarser level to start the holes from
        out[ys, xs] = 0
    elif ys.size:
        out[ys, xs] = _coarse_to_fine(levels, refine, finest=1)[ys // 2, xs // 2]
        _solve(out, mask, iterations)
    return np.clip(out, 0, 1, out=out)


def _solve(u: np.ndarray, free: np.ndarray, iterations: int) -> None:
    """Conjugate gradients on the ``free`` pixels of HxWxC ``u``, in place, minimising the squared Laplacian
    (so ``Δ²u = 0`` there) with the other pixels as the boundary condition. The Laplacian is the grid graph's
    (the image border mirrors the edge pixel), which keeps the system symmetric. The solve works on a compact
    copy of the pixels within two steps of a free one, so its buffers and steps grow with the holes, not the
    image: free pixels first, then the rest of their neighbours, then those neighbours' neighbours, each pixel
    one 16-byte row (three channels and a zero), so a neighbour sum is one gather of whole rows."""
    h, w = free.shape
    near = _dilate(free)  # where Δ is needed: the free pixels and their neighbours
    inner_px = np.flatnonzero(free)
    ring_px = np.concatenate([inner_px, np.flatnonzero(near & ~free)])
    reach = np.concatenate([ring_px, np.flatnonzero(_dilate(near) & ~near)])  # where Δ reads from
    slot = np.empty(h * w, np.intp)
    slot[reach] = np.arange(reach.size)
    n_inner, n_ring = inner_px.size, ring_px.size
    ring_nb, inner_nb = slot[_neighbours(ring_px, h, w)], slot[_neighbours(inner_px, h, w)]
    flat = u.reshape(h * w, -1)
    c = flat.shape[1]
    planes = np.zeros((reach.size, 4), np.float32)  # (N, 4): rows of 16 bytes gather as one complex128
    planes[:, :c] = flat[reach]
    scratch = np.zeros_like(planes)

    def neighbour_sum(field: np.ndarray, nb: np.ndarray) -> np.ndarray:
        rows = np.take(field.view(np.complex128)[:, 0], nb)  # (4, n)
        return rows.view(np.float32).reshape(4, -1, 4).sum(0)

    def bilaplacian(field: np.ndarray) -> np.ndarray:
        scratch[:n_ring] = neighbour_sum(field, ring_nb) - 4 * field[:n_ring]
        return neighbour_sum(scratch, inner_nb) - 4 * scratch[:n_inner]

    r = -bilaplacian(planes)
    p, rr = r.copy(), float((r * r).sum())
    step = np.zeros_like(planes)
    for _ in range(iterations):
        if rr < 1e-20:
            break
        step[:n_inner] = p
        ap = bilaplacian(step)
        curvature = float((p * ap).sum())
        if curvature <= 0:  # only rounding leaves a search direction without curvature: converged
            break
        alpha = rr / curvature
        planes[:n_inner] += alpha * p
        r -= alpha * ap
        rr, previous = float((r * r).sum()), rr
        p = r + (rr / previous) * p
    flat[inner_px] = planes[:n_inner, :c]


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
