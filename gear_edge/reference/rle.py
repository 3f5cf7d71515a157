"""Pure-numpy COCO RLE: the fallback of :mod:`gear_edge.masks` and the oracle of its C++ code.

Written for clarity, not speed. Same signatures and errors as the ``rle_*`` functions of the C++
extension (``batch`` only changes how items are named in error messages).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gear_edge.errors import InputError

MAX_PIXELS = 0xFFFFFFFF


def _label(what: str, i: int, batch: bool) -> str:
    return f"{what} {i}" if batch else what


# ---- string codec ---------------------------------------------------------------------------


def counts_to_string(counts: np.ndarray | list[int]) -> str:
    """COCO compressed form of runs (delta against run i-2 for i > 2, 5-bit groups, +48)."""
    out: list[str] = []
    for i in range(len(counts)):
        x = int(counts[i])
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # Python's >> floors, like the arithmetic shift in maskApi.c
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def counts_from_string(s: str | bytes, total: int, name: str) -> np.ndarray:
    """Parses and validates compressed counts; runs must sum to ``total``."""
    data = s.encode("utf-8", errors="surrogatepass") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p, n, acc = 0, len(data), 0
    while p < n:
        start, x, k, more = p, 0, 0, True
        while more:
            if p >= n:
                raise InputError(f"{name}: 'counts' ends inside a number (truncated string?) starting at position {start}")
            ch = data[p]
            c = ch - 48
            if c < 0 or c > 63:
                shown = f"'{chr(ch)}'" if 32 <= ch < 127 else "byte"
                raise InputError(
                    f"{name}: invalid character {shown} (code {ch}) at position {p} of 'counts'; "
                    "compressed COCO RLE uses '0'..'o'"
                )
            if k >= 8:
                raise InputError(f"{name}: run {len(counts)} in 'counts' is too long to be a pixel count (position {start})")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x -= 1 << (5 * k)  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise InputError(f"{name}: run {len(counts)} decodes to a negative length ({x})")
        if x > total:
            raise InputError(f"{name}: run {len(counts)} has length {x} but the mask has only {total} pixels")
        acc += x
        counts.append(x)
    if acc != total:
        raise InputError(f"{name}: runs sum to {acc} pixels but 'size' has {total}")
    return np.asarray(counts, dtype=np.int64)


def read_rle(obj: Any, name: str) -> tuple[int, int, np.ndarray]:
    """(h, w, runs) of one RLE dict, fully validated."""
    if not isinstance(obj, dict):
        raise InputError(f"{name}: expected a dict {{'size': [h, w], 'counts': ...}}, got {type(obj).__name__}")
    for key in ("size", "counts"):
        if key not in obj:
            raise InputError(f"{name}: missing key '{key}'")
    size = obj["size"]
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise InputError(f"{name}: 'size' must be [height, width], got {size!r}")
    dims = []
    for v in size:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise InputError(f"{name}: 'size' must hold two integers [height, width], got {v!r}")
        if v < 0 or v > MAX_PIXELS:
            raise InputError(f"{name}: 'size' values must be in 0..2^32-1, got {int(v)}")
        dims.append(int(v))
    h, w = dims
    total = h * w
    if total > MAX_PIXELS:
        raise InputError(f"{name}: a {h}x{w} mask has more pixels than a COCO RLE can hold")
    counts = obj["counts"]
    if isinstance(counts, (str, bytes)):
        return h, w, counts_from_string(counts, total, name)
    if isinstance(counts, (list, tuple)) or (isinstance(counts, np.ndarray) and counts.ndim == 1):
        runs = []
        for i, v in enumerate(counts):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise InputError(f"{name}: uncompressed 'counts' must hold integers, item {i} is {type(v).__name__}")
            if v < 0:
                raise InputError(f"{name}: run {i} is negative ({int(v)})")
            if v > total:
                raise InputError(f"{name}: run {i} has length {int(v)} but the mask has only {total} pixels")
            runs.append(int(v))
        if sum(runs) != total:
            raise InputError(f"{name}: runs sum to {sum(runs)} pixels but 'size' has {total}")
        return h, w, np.asarray(runs, dtype=np.int64)
    raise InputError(
        f"{name}: 'counts' must be a str or bytes (compressed RLE) or a list of ints (uncompressed), "
        f"got {type(counts).__name__}"
    )


def _read_all(rles: Any, what: str, batch: bool) -> list[tuple[int, int, np.ndarray]]:
    if not isinstance(rles, (list, tuple)):
        raise InputError(f"expected a list of RLE dicts, got {type(rles).__name__}")
    return [read_rle(r, _label(what, i, batch)) for i, r in enumerate(rles)]


def _make(h: int, w: int, counts: np.ndarray | list[int]) -> dict:
    return {"size": [h, w], "counts": counts_to_string(counts)}


# ---- masks <-> runs -------------------------------------------------------------------------


def runs_of(mask: np.ndarray) -> np.ndarray:
    """Column-major runs of one 2-D 0/1 mask, starting with a (possibly empty) 0-run."""
    flat = np.asarray(mask).ravel(order="F").astype(np.uint8, copy=False)
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    changes = np.flatnonzero(np.diff(flat, prepend=np.uint8(0)))
    return np.diff(np.concatenate(([0], changes, [flat.size]))).astype(np.int64)


def mask_of(h: int, w: int, runs: np.ndarray) -> np.ndarray:
    """Row-major bool [h, w] mask of column-major runs."""
    values = (np.arange(len(runs)) % 2).astype(bool)
    flat = np.repeat(values, np.asarray(runs, dtype=np.int64))
    return np.ascontiguousarray(flat.reshape(w, h).T)


def encode(masks: np.ndarray, batch: bool, threads: int = 1) -> list[dict]:
    del threads
    if masks.dtype != np.bool_ and masks.dtype != np.uint8:
        raise InputError(f"masks must be bool or uint8, got {masks.dtype}")
    if masks.ndim != 3:
        raise InputError(f"masks must be a [N, H, W] array, got {masks.ndim} dimensions")
    n, h, w = masks.shape
    if h * w > MAX_PIXELS:
        raise InputError(f"a {h}x{w} mask has more pixels than a COCO RLE can hold")
    out = []
    for i in range(n):
        m = masks[i].view(np.uint8)
        if m.size and m.max() > 1:
            y, x = np.argwhere(m > 1)[0]
            raise InputError(
                f"{_label('mask', i, batch)}: mask values must be 0 or 1, found {int(m[y, x])} at row {y}, "
                f"column {x} (pass a bool array, e.g. logits > 0)"
            )
        out.append(_make(h, w, runs_of(m)))
    return out


def decode(rles: Any, batch: bool, threads: int = 1) -> np.ndarray:
    del threads
    items = _read_all(rles, "RLE", batch)
    if not items:
        return np.zeros((0, 0, 0), dtype=bool)
    h, w = items[0][0], items[0][1]
    for i, (hi, wi, _) in enumerate(items):
        if (hi, wi) != (h, w):
            raise InputError(
                f"RLE {i} has size {hi}x{wi} but RLE 0 has {h}x{w}; decode masks of different sizes separately"
            )
    return np.stack([mask_of(h, w, runs) for _, _, runs in items]).reshape(len(items), h, w)


def sample(rles: Any, boxes: np.ndarray, steps: np.ndarray, offset: int, threads: int = 1) -> list[np.ndarray]:
    """mask_i[y0 + offset :: step][:y1] x [x0 + offset :: step][:x1] for each RLE (see masks.sample)."""
    del threads
    items = _read_all(rles, "RLE", True)
    boxes = np.asarray(boxes, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    if boxes.shape != (len(items), 4):
        raise InputError(f"boxes must be an int [N, 4] array (x0, y0, x1, y1) with N = {len(items)} (one per RLE), got shape {boxes.shape}")
    if steps.shape != (len(items),):
        raise InputError(f"steps must be an int [N] array with N = {len(items)}")
    if offset < 0:
        raise InputError(f"offset must be >= 0, got {offset}")
    out = []
    for i, ((h, w, runs), (x0, y0, x1, y1), step) in enumerate(zip(items, boxes, steps)):
        if step < 1:
            raise InputError(f"steps[{i}] must be >= 1, got {step}")
        if x0 < 0 or y0 < 0 or x1 < x0 or y1 < y0 or x1 > w or y1 > h:
            raise InputError(f"box {i} ({x0}, {y0}, {x1}, {y1}) is not a window inside the {h}x{w} mask")
        out.append(np.ascontiguousarray(mask_of(h, w, runs)[y0 + offset : y1 : step, x0 + offset : x1 : step]))
    return out


def area(rles: Any, batch: bool, threads: int = 1) -> np.ndarray:
    del threads
    return np.asarray([int(runs[1::2].sum()) for _, _, runs in _read_all(rles, "RLE", batch)], dtype=np.int64)


def bbox(rles: Any, batch: bool, threads: int = 1) -> np.ndarray:
    del threads
    out = np.zeros((len(rles) if isinstance(rles, (list, tuple)) else 0, 4), dtype=np.float64)
    for i, (h, w, runs) in enumerate(_read_all(rles, "RLE", batch)):
        m = mask_of(h, w, runs)
        ys, xs = np.nonzero(m)
        if len(xs):
            out[i] = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return out


def merge(rles: Any, intersect: bool) -> dict:
    items = _read_all(rles, "RLE", True)
    if not items:
        raise InputError("merge needs at least one RLE (the mask size is unknown for an empty list)")
    h, w = items[0][0], items[0][1]
    for i, (hi, wi, _) in enumerate(items):
        if (hi, wi) != (h, w):
            raise InputError(
                f"RLE {i} has size {hi}x{wi} but RLE 0 has {h}x{w}; only masks of one size can be merged"
            )
    if len(items) == 1:
        return _make(h, w, items[0][2])
    acc = mask_of(h, w, items[0][2])
    for _, _, runs in items[1:]:
        m = mask_of(h, w, runs)
        acc = (acc & m) if intersect else (acc | m)
    return _make(h, w, runs_of(acc))


def iou(a: Any, b: Any, iscrowd: Any, threads: int = 1) -> np.ndarray:
    del threads
    ia, ib = _read_all(a, "RLE a", True), _read_all(b, "RLE b", True)
    crowd = np.zeros(len(ib), dtype=bool)
    if iscrowd is not None:
        if len(iscrowd) != len(ib):
            raise InputError(f"iscrowd has {len(iscrowd)} entries but there are {len(ib)} masks in b")
        crowd = np.asarray([bool(c) for c in iscrowd], dtype=bool)
    for i, (ha, wa, _) in enumerate(ia):
        for j, (hb, wb, _) in enumerate(ib):
            if (ha, wa) != (hb, wb):
                raise InputError(f"RLE a {i} is {ha}x{wa} but RLE b {j} is {hb}x{wb}; IoU needs masks of one size")
    out = np.zeros((len(ia), len(ib)), dtype=np.float64)
    if not ia or not ib:
        return out
    fa = np.stack([mask_of(h, w, r).ravel() for h, w, r in ia]).astype(np.int64)
    fb = np.stack([mask_of(h, w, r).ravel() for h, w, r in ib]).astype(np.int64)
    inter = fa @ fb.T
    area_a, area_b = fa.sum(1), fb.sum(1)
    union = np.where(crowd[None, :], area_a[:, None], area_a[:, None] + area_b[None, :] - inter)
    np.divide(inter, union, out=out, where=inter > 0)
    return out


# ---- polygons -------------------------------------------------------------------------------


def polygon_runs(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Runs of one polygon rasterised with pycocotools' rleFrPoly arithmetic."""
    scale = 5.0
    k = len(xy) // 2

    def trunc(v: float) -> int:  # C's (int) cast
        return int(v)

    x = [trunc(scale * float(xy[2 * j]) + 0.5) for j in range(k)] + [0]
    y = [trunc(scale * float(xy[2 * j + 1]) + 0.5) for j in range(k)] + [0]
    x[k], y[k] = x[0], y[0]
    u: list[int] = []
    v: list[int] = []
    for j in range(k):
        xs, xe, ys, ye = x[j], x[j + 1], y[j], y[j + 1]
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        if dx == 0 and dy == 0:
            u.append(xs)
            v.append(ys)
            continue
        if dx >= dy:
            s = (ye - ys) / dx
            for d in range(dx + 1):
                t = dx - d if flip else d
                u.append(t + xs)
                v.append(trunc(ys + s * t + 0.5))
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v.append(t + ys)
                u.append(trunc(xs + s * t + 0.5))
    toggles: list[int] = []
    for j in range(1, len(u)):
        if u[j] == u[j - 1]:
            continue
        xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / scale - 0.5
        if np.floor(xd) != xd or xd < 0 or xd > w - 1:
            continue
        yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / scale - 0.5
        yd = 0.0 if yd < 0 else (float(h) if yd > h else yd)
        yd = float(np.ceil(yd))
        toggles.append(int(xd) * h + int(yd))
    # Each toggle flips the pixel values from that column-major index on.
    flips = np.zeros(h * w + 1, dtype=np.int64)
    np.add.at(flips, np.asarray(toggles, dtype=np.int64), 1)
    values = (np.cumsum(flips[:-1]) % 2).astype(np.uint8)
    return runs_of(values.reshape(w, h).T)


def from_polygons(objects: list, height: int, width: int, threads: int = 1) -> list[dict]:
    del threads
    if height < 1 or width < 1:
        raise InputError(f"polygons need a non-empty canvas, got {height}x{width}")
    limit = 16.0 * (height + width) + 1024.0
    out = []
    for o, polys in enumerate(objects):
        if len(polys) == 0:
            raise InputError(f"object {o} has no polygons")
        acc = np.zeros((height, width), dtype=bool)
        for k, p in enumerate(polys):
            p = np.asarray(p, dtype=np.float64)
            if p.ndim != 1:
                raise InputError(f"object {o}, polygon {k}: expected a flat list [x0, y0, x1, y1, ...]")
            if len(p) < 6 or len(p) % 2:
                raise InputError(f"object {o}, polygon {k}: needs an even number (>= 6) of coordinates, got {len(p)}")
            bad = ~np.isfinite(p) | (np.abs(p) > limit)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"object {o}, polygon {k}: coordinate {i} = {p[i]} is not finite or lies far outside the "
                    f"{height}x{width} canvas"
                )
            acc |= mask_of(height, width, polygon_runs(p, height, width))
        out.append(_make(height, width, runs_of(acc)))
    return out
