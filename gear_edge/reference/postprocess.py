"""numpy reference of the fused mask post-processing (see gear_edge.masks.postprocess).

Materialises each up-sampled float map with torch's bilinear arithmetic
(``interpolate(mode="bilinear", align_corners=False)``) written in numpy float32, in torch's
order of operations, so it decides every pixel exactly as torch and the C++ path do.
(cv2.resize has the same half-pixel semantics but rounds differently, by up to ~3e-4 on logits
of magnitude 10, which flips near-threshold pixels.)
"""

from __future__ import annotations

import numpy as np

from gear_edge.errors import InputError
from gear_edge.reference.rle import _make, runs_of


def longest_side_shape(h: int, w: int, side: int) -> tuple[int, int]:
    """segment-anything's ResizeLongestSide.get_preprocess_shape."""
    scale = side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torch's align_corners=False taps (i0, i1) and float32 weights (w0, w1) for n_in -> n_out."""
    if n_in == n_out:  # torch copies
        i = np.arange(n_out)
        return i, i, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0)).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, (np.float32(1.0) - w1).astype(np.float32), w1


def bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 [h, w] -> [out_h, out_w] exactly as torch's upsample_bilinear2d computes it."""
    y0, y1, wy0, wy1 = bilinear_taps(x.shape[0], out_h)
    x0, x1, wx0, wx1 = bilinear_taps(x.shape[1], out_w)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/nan logits propagate like torch's
        top = x[y0][:, x0] * wx0 + x[y0][:, x1] * wx1
        bottom = x[y1][:, x0] * wx0 + x[y1][:, x1] * wx1
        return top * wy0[:, None] + bottom * wy1[:, None]


def upsample(logits: np.ndarray, out_h: int, out_w: int, input_size: int, convention: str) -> np.ndarray:
    """One [h, w] float32 logit map up-sampled to [out_h, out_w] under a SAM convention."""
    logits = np.asarray(logits, dtype=np.float32)
    if convention == "sam2":
        return bilinear(logits, out_h, out_w)
    if convention == "sam1":
        h_in, w_in = longest_side_shape(out_h, out_w, input_size)
        if h_in == 0 or w_in == 0:
            raise InputError(f"a {out_h}x{out_w} image resized to longest side {input_size} has an empty side")
        big = bilinear(logits, input_size, input_size)
        return bilinear(big[:h_in, :w_in], out_h, out_w)
    raise InputError(f"convention must be 'sam2' or 'sam1', got '{convention}'")


def postprocess_logits(
    logits: np.ndarray,
    out_h: int,
    out_w: int,
    input_size: int,
    convention: str,
    mask_threshold: float,
    stability_offset: float,
    canvas_h: int,
    canvas_w: int,
    off_x: int,
    off_y: int,
    threads: int = 1,
) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    del threads
    if logits.dtype != np.float32 or logits.ndim != 3:
        raise InputError("logits must be a float32 [K, h, w] array")
    if canvas_h == 0 and canvas_w == 0:
        canvas_h, canvas_w = out_h, out_w
    if off_x + out_w > canvas_w or off_y + out_h > canvas_h:
        raise InputError(
            f"a {out_h}x{out_w} mask at offset (x={off_x}, y={off_y}) does not fit in the {canvas_h}x{canvas_w} canvas"
        )
    thr = np.float32(mask_threshold)
    thr_hi = np.float32(mask_threshold + stability_offset)
    thr_lo = np.float32(mask_threshold - stability_offset)
    k = logits.shape[0]
    rles, stability = [], np.ones(k, dtype=np.float32)
    boxes, areas = np.zeros((k, 4), dtype=np.float64), np.zeros(k, dtype=np.int64)
    for i in range(k):
        up = upsample(logits[i], out_h, out_w, input_size, convention)
        mask = up > thr
        hi, lo = int(np.count_nonzero(up > thr_hi)), int(np.count_nonzero(up > thr_lo))
        stability[i] = np.float32(hi) / np.float32(lo) if lo else np.float32(1.0)
        canvas = np.zeros((canvas_h, canvas_w), dtype=bool)
        canvas[off_y : off_y + out_h, off_x : off_x + out_w] = mask
        rles.append(_make(canvas_h, canvas_w, runs_of(canvas)))
        areas[i] = int(mask.sum())
        ys, xs = np.nonzero(canvas)
        if len(xs):
            boxes[i] = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return rles, stability, boxes, areas
