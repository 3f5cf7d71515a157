"""COCO RLE mask ops, byte-identical to pycocotools, on the C++ extension (numpy fallback).

Conventions: masks are bool (or 0/1 uint8) arrays ``[H, W]`` or batches ``[N, H, W]``; an RLE
is ``{"size": [h, w], "counts": str}`` (pycocotools' compressed string; ``bytes`` and
uncompressed ``list[int]`` counts are accepted as input). Every function takes one item or a
batch and answers in kind. Batch functions take ``threads`` (default:
:func:`gear_edge.masks.get_num_threads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, Union

import numpy as np

from gear_edge import _native
from gear_edge.errors import InputError
from gear_edge.masks import _inputs
from gear_edge.reference import rle as _ref


class RLE(TypedDict):
    size: list[int]
    counts: str


RLELike = Union[RLE, dict]


def encode(masks: np.ndarray, *, threads: int | None = None) -> RLE | list[RLE]:
    """Encodes bool/uint8 masks ``[H, W]`` → RLE, or ``[N, H, W]`` → list of N RLEs.

    Each mask must be C- or Fortran-contiguous and a batch stacked contiguously (a strided view
    raises :class:`InputError`; pass ``np.ascontiguousarray``). uint8 values must be 0 or 1.
    """
    arr, single = _inputs.mask_batch(masks)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    out = cpp.rle_encode(arr, not single, t) if cpp else _ref.encode(arr, not single)
    return out[0] if single else out


def decode(rles: RLELike | Sequence[RLELike], *, threads: int | None = None) -> np.ndarray:
    """RLE → bool ``[H, W]``; list of RLEs (all one size) → bool ``[N, H, W]`` (``[0, 0, 0]`` if empty)."""
    items, single = _inputs.rle_batch(rles)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    out = cpp.rle_decode(items, not single, t) if cpp else _ref.decode(items, not single)
    return out[0] if single else out


def sample(
    rles: Sequence[RLELike],
    boxes: np.ndarray | Sequence[Sequence[int]],
    steps: np.ndarray | Sequence[int] | int = 1,
    *,
    offset: int = 0,
    threads: int | None = None,
) -> list[np.ndarray]:
    """Strided windows of masks without decoding them in full.

    For RLE i with window ``boxes[i] = (x0, y0, x1, y1)`` (int pixels, end exclusive) and step
    ``s = steps[i]`` returns bool ``mask[y0 + offset : y1 : s, x0 + offset : x1 : s]``.
    Cost is proportional to the runs plus the samples, so a 1080p mask sampled to 256 px is cheap.
    """
    items, _ = _inputs.rle_batch(rles)
    n = len(items)
    box_what = f"an int [N, 4] array (x0, y0, x1, y1) with N = {n} (one per RLE)"
    boxes_arr = _inputs.int_array(boxes, "boxes", box_what) if n else np.zeros((0, 4), np.int64)
    if n and (boxes_arr.ndim not in (1, 2) or boxes_arr.shape[-1] != 4 or (boxes_arr.ndim == 1 and n != 1)):
        raise InputError(f"boxes must be {box_what}, got shape {'x'.join(map(str, boxes_arr.shape))}")
    boxes_arr = boxes_arr.reshape(-1, 4)
    steps_arr = _inputs.int_array(steps, "steps", f"an int or an int [N] array with N = {n}")
    steps_arr = np.full(n, int(steps_arr), np.int64) if steps_arr.ndim == 0 else steps_arr
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    if cpp:
        return cpp.rle_sample(items, boxes_arr, steps_arr, int(offset), t)
    return _ref.sample(items, boxes_arr, steps_arr, int(offset))


def area(rles: RLELike | Sequence[RLELike], *, threads: int | None = None) -> int | np.ndarray:
    """Number of 1-pixels: ``int`` for one RLE, int64 ``[N]`` for a list."""
    items, single = _inputs.rle_batch(rles)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    out = cpp.rle_area(items, not single, t) if cpp else _ref.area(items, not single)
    return int(out[0]) if single else out


def to_bbox(rles: RLELike | Sequence[RLELike], *, threads: int | None = None) -> np.ndarray:
    """Tight box of the 1-pixels as XYWH float64 pixels: ``[4]`` or ``[N, 4]``; zeros when empty."""
    items, single = _inputs.rle_batch(rles)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    out = cpp.rle_bbox(items, not single, t) if cpp else _ref.bbox(items, not single)
    return out[0] if single else out


def merge(rles: Sequence[RLELike], *, intersect: bool = False) -> RLE:
    """Union (or intersection) of one or more same-size RLEs; pycocotools' exact run layout."""
    items, _ = _inputs.rle_batch(rles)
    cpp = _native.native()
    return cpp.rle_merge(items, bool(intersect)) if cpp else _ref.merge(items, bool(intersect))


def iou(
    a: RLELike | Sequence[RLELike],
    b: RLELike | Sequence[RLELike],
    *,
    iscrowd: Sequence[bool] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Mask IoU float64 ``[len(a), len(b)]`` (pycocotools' ``iou(a, b, iscrowd)``).

    Where ``iscrowd[j]`` is true, column j holds ``|a_i ∩ b_j| / |a_i|`` instead.
    """
    ia, _ = _inputs.rle_batch(a, "a")
    ib, _ = _inputs.rle_batch(b, "b")
    if iscrowd is not None and not isinstance(iscrowd, (list, tuple, np.ndarray)):
        raise InputError(f"iscrowd must be a sequence of bools (one per mask in b), got {type(iscrowd).__name__}")
    crowd = None if iscrowd is None else [bool(c) for c in iscrowd]
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    return cpp.rle_iou(ia, ib, crowd, t) if cpp else _ref.iou(ia, ib, crowd)


def from_polygons(polygons: Any, height: int, width: int, *, threads: int | None = None) -> RLE | list[RLE]:
    """COCO polygons (pixel-corner coordinates) → RLE, as pycocotools' ``frPyObjects`` + ``merge``.

    ``polygons`` is one object — a list of flat ``[x0, y0, x1, y1, ...]`` polygons (a COCO
    ``segmentation`` field), or a single polygon — giving one RLE, or a list of objects giving a
    list of RLEs. Each polygon needs at least 3 points.
    """
    objects, single = _inputs.polygon_objects(polygons)
    h, w = _inputs.canvas_size(height, width)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    out = cpp.rle_from_polygons(objects, h, w, t) if cpp else _ref.from_polygons(objects, h, w)
    return out[0] if single else out


def to_polygons(masks: Any, *, tolerance: float = 0.0) -> list[list[float]] | list[list[list[float]]]:
    """Outer boundaries of a mask (bool ``[H, W]`` or RLE) as COCO polygons ``[x0, y0, x1, y1, ...]``.

    Vertices lie on pixel corners, so :func:`from_polygons` gives the mask back exactly, except
    that holes are filled (COCO polygons of one object are unioned and cannot carry holes).
    ``tolerance`` > 0 simplifies each polygon (Douglas-Peucker, pixels). A batch (``[N, H, W]``
    or list of RLEs) gives one list of polygons per mask.
    """
    import cv2  # runtime dependency; imported here to keep `import gear_edge.masks` light

    if not (isinstance(tolerance, (int, float)) and np.isfinite(tolerance) and tolerance >= 0):
        raise InputError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if isinstance(masks, np.ndarray):
        arr, single = _inputs.mask_batch(masks)
        stack = arr.astype(bool, copy=False)
    else:
        items, single = _inputs.rle_batch(masks, "masks")
        stack = [decode(r) for r in items]
    out = [_mask_polygons(np.asarray(m), tolerance, cv2) for m in stack]
    return out[0] if single else out


def _mask_polygons(mask: np.ndarray, tolerance: float, cv2: Any) -> list[list[float]]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(xs) == 0:
        return []
    x0, y0 = int(xs[0]), int(ys[0])
    sub = mask[y0 : int(ys[-1]) + 1, x0 : int(xs[-1]) + 1].astype(np.uint8)
    # Contours of the 2x nearest up-sampled mask run through sub-pixel centres; mapping each
    # coordinate v to ceil(v / 2) puts the vertices on the original pixel corners.
    up = np.repeat(np.repeat(sub, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        v = c.reshape(-1, 2).astype(np.int64)
        v = (v + (v & 1)) // 2 + np.array([x0, y0])
        if tolerance > 0:
            v = cv2.approxPolyDP(v.astype(np.float32).reshape(-1, 1, 2), float(tolerance), True).reshape(-1, 2)
        keep = np.ones(len(v), dtype=bool)
        keep[1:] = np.any(v[1:] != v[:-1], axis=1)
        v = v[keep]
        if len(v) >= 3:
            polys.append(v.astype(np.float64).ravel().tolist())
    return polys
