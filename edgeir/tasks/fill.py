"""Cheap hole fills for the inpainting condition's base image: numpy only and O(pixels), because the runtime
computes the same fill on the device's host and hands the graph the holes' values.

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
    levels = [(np.multiply(image, known, dtype=np.float32), known)]
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
    """``image`` with its holes filled by ``biharmonic_holes``, clipped to [0, 1]."""
    out = image.astype(np.float32)
    out[mask] = biharmonic_holes(image, mask, iterations, max_iterations)
    return np.clip(out, 0, 1, out=out)


def biharmonic_holes(image: np.ndarray, mask: np.ndarray, iterations: int = 8, max_iterations: int = 64
                     ) -> np.ndarray:
    """The (N, C) values of the N holes (row-major). Coarse to fine, each level's empty pixels start from the
    coarser level and take ``iterations`` conjugate-gradient steps towards ``Δ²u = 0`` at full resolution, twice
    as many at each coarser level (up to ``max_iterations``): a coarse level leaves only fine error to the next
    one, and coarse steps are cheap. Unlike a membrane, a biharmonic surface overshoots next to sharp edges, so
    the fill is clipped to [0, 1]. The finest level is never built whole: its known pixels are the image's own,
    so only the holes take the coarser level's values and are solved, which is what keeps a few holes in a
    large frame cheap."""

    def refine(up, v, w, depth):
        empty = w[..., 0] == 0
        est = np.where(empty[..., None], up, v / np.maximum(w, 1e-8))
        if empty.any():
            _solve(est, empty, min(max_iterations, iterations << depth))
        return est

    ys, xs = np.nonzero(mask)
    levels = _pyramid(image, mask)
    if len(levels) == 1 or not ys.size:  # a single row or column: no coarser level to start the holes from
        return np.zeros((ys.size, image.shape[2]), np.float32)
    coarse = _coarse_to_fine(levels, refine, finest=1)[ys // 2, xs // 2]
    box = (slice(max(0, ys.min() - 2), ys.max() + 3), slice(max(0, xs.min() - 2), xs.max() + 3))
    u = image[box].astype(np.float32)  # what the solve reads: the holes and two pixels around them
    by, bx = ys - box[0].start, xs - box[1].start
    u[by, bx] = coarse
    _solve(u, mask[box], iterations)
    return np.clip(u[by, bx], 0, 1)


def _solve(u: np.ndarray, free: np.ndarray, iterations: int) -> None:
    """Conjugate gradients on the ``free`` pixels of HxWxC ``u``, in place, minimising the squared Laplacian
    (so ``Δ²u = 0`` there) with the other pixels as the boundary condition. The Laplacian is the grid graph's
    (the image border mirrors the edge pixel), which keeps the system symmetric. The solve works on a compact
    copy of the pixels within two steps of a free one, so its buffers and steps grow with the holes, not the
    image: free pixels first, then the rest of their neighbours, then those neighbours' neighbours, each pixel
    one 16-byte row (three channels and a zero), so a neighbour sum is one gather of whole rows. Only the free
    pixels' bounding box grown by two is indexed: nothing beyond it is read (at the image border, a clamped
    neighbour is the box's own edge pixel too)."""
    ys, xs = np.nonzero(free.any(1))[0], np.nonzero(free.any(0))[0]
    box = (slice(max(0, ys[0] - 2), ys[-1] + 3), slice(max(0, xs[0] - 2), xs[-1] + 3))
    u, free = u[box], free[box]
    h, w = free.shape
    near = _dilate(free)  # where Δ is needed: the free pixels and their neighbours
    inner_px = np.flatnonzero(free)
    ring_px = np.concatenate([inner_px, np.flatnonzero(near & ~free)])
    reach = np.concatenate([ring_px, np.flatnonzero(_dilate(near) & ~near)])  # where Δ reads from
    slot = np.empty(h * w, np.intp)
    slot[reach] = np.arange(reach.size)
    n_inner, n_ring = inner_px.size, ring_px.size
    ring_nb, inner_nb = slot[_neighbours(ring_px, h, w)], slot[_neighbours(inner_px, h, w)]
    c = u.shape[2]
    planes = np.zeros((reach.size, 4), np.float32)  # (N, 4): rows of 16 bytes gather as one complex128
    planes[:, :c] = u.reshape(h * w, c)[reach]  # a copy: the box is a view of the level
    # Every buffer made once: at 1080p a fresh temporary per operation costs more in page faults than the sums.
    scratch = np.zeros_like(planes)
    step = np.zeros_like(planes)  # the search direction p lives in its first n_inner rows, zero beyond
    p, r, ap, tmp = step[:n_inner], *(np.empty((n_inner, 4), np.float32) for _ in range(3))
    tmp_ring = np.empty((n_ring, 4), np.float32)
    gather_ring, gather_inner = np.empty(ring_nb.shape, np.complex128), np.empty(inner_nb.shape, np.complex128)

    def neighbour_sum(field: np.ndarray, nb: np.ndarray, gathered: np.ndarray, out: np.ndarray) -> None:
        np.take(field.view(np.complex128)[:, 0], nb, out=gathered, mode="clip")
        g = gathered.view(np.float32).reshape(4, -1, 4)
        np.add(g[0], g[1], out=out)
        out += g[2]
        out += g[3]

    def bilaplacian(field: np.ndarray, out: np.ndarray) -> None:
        neighbour_sum(field, ring_nb, gather_ring, scratch[:n_ring])
        scratch[:n_ring] -= np.multiply(field[:n_ring], 4, out=tmp_ring)
        neighbour_sum(scratch, inner_nb, gather_inner, out)
        out -= np.multiply(scratch[:n_inner], 4, out=tmp)

    bilaplacian(planes, r)
    np.negative(r, out=r)
    p[...] = r
    rr = float(np.vdot(r, r))
    for _ in range(iterations):
        if rr < 1e-20:
            break
        bilaplacian(step, ap)
        curvature = float(np.vdot(p, ap))
        if curvature <= 0:  # only rounding leaves a search direction without curvature: converged
            break
        alpha = rr / curvature
        planes[:n_inner] += np.multiply(p, alpha, out=tmp)
        r -= np.multiply(ap, alpha, out=tmp)
        rr, previous = float(np.vdot(r, r)), rr
        p *= rr / previous
        p += r
    u[inner_px // w, inner_px % w] = planes[:n_inner, :c]


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
