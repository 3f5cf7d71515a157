"""Hypothesis strategies for masks, RLEs and polygons."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# Sizes that exercise edge cases: 1x1, 1xW, Hx1, sizes around the 8-byte word width, odd sizes.
dims = st.one_of(st.integers(1, 3), st.integers(7, 9), st.integers(1, 48))


@st.composite
def masks(draw, max_n: int = 4, dims=dims) -> np.ndarray:
    """bool [N, H, W] with random, structured (rectangles), striped or extreme content."""
    n = draw(st.integers(1, max_n))
    h, w = draw(dims), draw(dims)
    kind = draw(st.sampled_from(["random", "rects", "stripes", "empty", "full", "checker"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "random":
        out = rng.random((n, h, w)) < draw(st.floats(0.0, 1.0))
    elif kind == "rects":
        out = np.zeros((n, h, w), dtype=bool)
        for i in range(n):
            for _ in range(int(rng.integers(1, 4))):
                y0, x0 = rng.integers(0, h), rng.integers(0, w)
                out[i, y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
    elif kind == "stripes":  # many small runs
        period = int(rng.integers(1, 4))
        out = np.zeros((n, h, w), dtype=bool)
        out[:, ::period, :] = True
        out[:, :, :: period + 1] ^= True
    elif kind == "checker":
        out = np.broadcast_to((np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool), (n, h, w)).copy()
    elif kind == "empty":
        out = np.zeros((n, h, w), dtype=bool)
    else:
        out = np.ones((n, h, w), dtype=bool)
    return out


@st.composite
def polygons(draw, h: int, w: int) -> list[float]:
    """A closed polygon with 3..12 vertices, sometimes outside the canvas or with repeats."""
    k = draw(st.integers(3, 12))
    coord_x = st.floats(-0.3 * w, 1.3 * w, allow_nan=False)
    coord_y = st.floats(-0.3 * h, 1.3 * h, allow_nan=False)
    pts = [(draw(coord_x), draw(coord_y)) for _ in range(k)]
    if draw(st.booleans()):  # repeated vertex (pycocotools divides 0/0 there)
        i = draw(st.integers(0, k - 1))
        pts.insert(i, pts[i])
    if draw(st.booleans()):  # integer / half-integer coordinates hit exact boundaries
        pts = [(round(x * 2) / 2, round(y * 2) / 2) for x, y in pts]
    return [float(v) for p in pts for v in p]
