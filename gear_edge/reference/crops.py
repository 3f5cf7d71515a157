"""cv2 loop reference of the batched region crops (see gear_edge.crops for the semantics)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from gear_edge.errors import InputError
from gear_edge.reference.rle import mask_of, read_rle


def layout(box: np.ndarray, size: int, context: float, letterbox: bool) -> tuple[int, int, int, int, int, int, int, int]:
    """(x0, y0, x1, y1, rw, rh, ox, oy): integer window, resized content size, canvas offset."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w * 0.5, y + h * 0.5
    hw, hh = w * context * 0.5, h * context * 0.5
    x0, x1 = math.floor(cx - hw), math.ceil(cx + hw)
    y0, y1 = math.floor(cy - hh), math.ceil(cy + hh)
    x1 = max(x1, x0 + 1)
    y1 = max(y1, y0 + 1)
    cw, ch = x1 - x0, y1 - y0
    if letterbox:
        scale = size / max(cw, ch)
        rw = min(size, max(1, int(cw * scale + 0.5)))
        rh = min(size, max(1, int(ch * scale + 0.5)))
        return x0, y0, x1, y1, rw, rh, (size - rw) // 2, (size - rh) // 2
    return x0, y0, x1, y1, size, size, 0, 0


def _window(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, fill) -> np.ndarray:
    """img[y0:y1, x0:x1] with out-of-image pixels set to fill."""
    h, w = img.shape[:2]
    out = np.empty((y1 - y0, x1 - x0) + img.shape[2:], dtype=img.dtype)
    out[...] = fill
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def crop_regions(
    image: np.ndarray,
    boxes: np.ndarray,
    masks,
    size: int,
    context: float,
    letterbox: bool,
    background: str,
    fill,
    blur_sigma: float,
    mean,
    std,
    threads: int = 1,
) -> np.ndarray:
    del threads
    if background not in ("keep", "constant", "blur"):
        raise InputError(f"background must be 'keep', 'constant' or 'blur', got '{background}'")
    n = len(boxes)
    out = np.empty((n, 3, size, size), dtype=np.float32)
    fill_arr = np.asarray(fill, dtype=np.uint8)
    mean32 = np.asarray(mean, dtype=np.float32)
    std32 = np.asarray(std, dtype=np.float32)
    h, w = image.shape[:2]
    for i in range(n):
        x0, y0, x1, y1, rw, rh, ox, oy = layout(boxes[i], size, context, letterbox)
        win = _window(image, x0, y0, x1, y1, fill_arr)
        res = cv2.resize(win, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if masks is not None and background != "keep":
            mh, mw, runs = read_rle(masks[i], f"mask {i}")
            mwin = _window(mask_of(mh, mw, runs).astype(np.float32), x0, y0, x1, y1, 0.0)
            alpha = cv2.resize(mwin, (rw, rh), interpolation=cv2.INTER_LINEAR)[..., None]
            if background == "blur":
                bg = cv2.GaussianBlur(res.astype(np.uint8), (0, 0), blur_sigma).astype(np.float32)
            else:
                bg = fill_arr.astype(np.float32)
            res = alpha * res + (1.0 - alpha) * bg
        canvas = np.empty((size, size, 3), dtype=np.float32)
        canvas[...] = fill_arr.astype(np.float32)
        canvas[oy : oy + rh, ox : ox + rw] = res
        out[i] = ((canvas / np.float32(255.0) - mean32) / std32).transpose(2, 0, 1)
    return out
