"""Argument checks shared by the C++ and numpy backends of :mod:`gear_edge.masks`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gear_edge.errors import InputError


def mask_batch(masks: Any, name: str = "masks") -> tuple[np.ndarray, bool]:
    """Checks a bool/uint8 mask ``[H, W]`` or batch ``[N, H, W]``.

    Returns a 3-D view (no copy) and whether the input was a single mask. Each mask must be
    row-major or column-major contiguous and a batch must be stacked contiguously, so the C++
    code can read it in place; anything else is refused rather than silently copied.
    """
    if not isinstance(masks, np.ndarray):
        raise InputError(f"{name} must be a numpy array (bool [H, W] or [N, H, W]), got {type(masks).__name__}")
    if masks.dtype != np.bool_ and masks.dtype != np.uint8:
        raise InputError(
            f"{name} must be bool or uint8 (0/1), got {masks.dtype}; threshold first, e.g. logits > 0"
        )
    if masks.ndim == 2:
        if not (masks.flags.c_contiguous or masks.flags.f_contiguous):
            raise InputError(f"{name} is not contiguous (strides {masks.strides}); pass np.ascontiguousarray({name})")
        return masks[np.newaxis], True
    if masks.ndim != 3:
        raise InputError(f"{name} must be [H, W] or [N, H, W], got shape {masks.shape}")
    n, h, w = masks.shape
    if n and h * w > 1:
        s0, s1, s2 = masks.strides
        row_major = (h == 1 or s1 == w) and (w == 1 or s2 == 1)
        col_major = (h == 1 or s1 == 1) and (w == 1 or s2 == h)
        if not (row_major or col_major) or (n > 1 and s0 != h * w):
            raise InputError(
                f"{name} is not contiguous (shape {masks.shape}, strides {masks.strides}); "
                f"pass np.ascontiguousarray({name})"
            )
    return masks, False


def rle_batch(rles: Any, name: str = "rles") -> tuple[list, bool]:
    """A single RLE dict becomes a one-item list (single=True); a list/tuple is used as is."""
    if isinstance(rles, dict):
        return [rles], True
    if isinstance(rles, (list, tuple)):
        return list(rles), False
    raise InputError(f"{name} must be an RLE dict {{'size': [h, w], 'counts': ...}} or a list of them, got {type(rles).__name__}")


def _depth(x: Any, where: str) -> int:
    """Nesting depth of a polygon argument: number 0, flat polygon 1, object 2, batch 3."""
    if isinstance(x, np.ndarray):
        return 1
    if isinstance(x, (str, bytes, dict)):
        raise InputError(f"{where}: expected numbers or lists of numbers, got {type(x).__name__}")
    if isinstance(x, Sequence):
        if len(x) == 0:
            raise InputError(f"{where}: empty list")
        return 1 + _depth(x[0], where)
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        return 0
    raise InputError(f"{where}: expected numbers, got {type(x).__name__}")


def polygon_objects(polygons: Any) -> tuple[list[list[np.ndarray]], bool]:
    """Normalises COCO polygons to a list of objects, each a list of float64 ``[2K]`` arrays.

    Accepts one polygon (``[x0, y0, x1, y1, ...]`` or an array ``[K, 2]``), one object (a list of
    polygons, like a COCO ``segmentation`` field) or a list of objects. Returns the objects and
    whether a single object was given.
    """
    depth = _depth(polygons, "polygons")
    if depth == 1:
        objects, single = [[polygons]], True
    elif depth == 2:
        objects, single = [polygons], True
    elif depth == 3:
        objects, single = list(polygons), False
    else:
        raise InputError(f"polygons must be a polygon, a list of polygons or a list of objects; got nesting depth {depth}")
    out: list[list[np.ndarray]] = []
    for o, obj in enumerate(objects):
        if isinstance(obj, np.ndarray) or _depth(obj, f"object {o}") != 2:
            raise InputError(f"object {o}: expected a list of flat polygons [x0, y0, x1, y1, ...]")
        polys = []
        for k, poly in enumerate(obj):
            try:
                arr = np.asarray(poly, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"object {o}, polygon {k}: not a list of numbers ({exc})") from None
            if arr.ndim == 2 and arr.shape[1] == 2:
                arr = arr.reshape(-1)
            if arr.ndim != 1:
                raise InputError(f"object {o}, polygon {k}: expected [x0, y0, x1, y1, ...] or [K, 2], got shape {arr.shape}")
            polys.append(np.ascontiguousarray(arr))
        out.append(polys)
    return out, single


MAX_SIDE = 2**31 - 1  # a mask side is an int32 in the C++ extension and in COCO RLE sizes


def canvas_size(height: Any, width: Any) -> tuple[int, int]:
    for label, v in (("height", height), ("width", width)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= v <= MAX_SIDE:
            raise InputError(f"{label} must be a positive integer <= {MAX_SIDE}, got {v!r}")
    return int(height), int(width)


def int_array(value: Any, name: str, what: str) -> np.ndarray:
    """``value`` as int64 when it holds only integral numbers (bools refused), else InputError naming
    ``name`` and the expected ``what`` (e.g. 'an int [N, 4] array (x0, y0, x1, y1)')."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise InputError(f"{name} must be {what}, got {type(value).__name__} ({exc})") from None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be {what}, got {arr.dtype} values")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"{name} must be {what}: whole numbers, got non-integral or non-finite values")
        if arr.size and np.abs(arr).max() >= 2**62:
            raise InputError(f"{name} must be {what}: values out of range")
    if arr.dtype.kind == "u" and arr.size and arr.max() >= 2**63:
        raise InputError(f"{name} must be {what}: values out of range")
    return arr.astype(np.int64)
