"""Greedy box non-maximum suppression in numpy with ``torchvision.ops.batched_nms`` semantics.

* boxes are XYXY float32, areas ``(x2 - x1) * (y2 - y1)`` (no +1), IoU in float32 arithmetic
  compared (as a double) with ``iou_threshold``: a box is dropped when IoU > threshold, so a
  zero-area pair (0 / 0 = NaN) never suppresses;
* candidates are visited by score, descending, ties in index order (torchvision sorts stably);
  NaN scores come first, as in torch's descending sort;
* the kept indices are returned by descending score, ties in index order.
"""

from __future__ import annotations

import numpy as np

from gear_edge.errors import InputError


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, stable, NaN first (``torch.sort(descending=True, stable=True)``)."""
    scores = np.asarray(scores)
    nan = np.isnan(scores)
    if not nan.any():
        return np.argsort(-scores, kind="stable")
    rest = np.flatnonzero(~nan)
    return np.concatenate([np.flatnonzero(nan), rest[np.argsort(-scores[rest], kind="stable")]])


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices (int64) of the boxes kept, by descending score.

    Args:
        boxes: ``[N, 4]`` XYXY (cast to float32, as sam2 does with ``.float()``).
        scores: ``[N]`` float32 scores.
        iou_threshold: suppress a box whose IoU with a kept, higher-scored box exceeds this.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes must be [N, 4] XYXY, got shape {boxes.shape}")
    if scores.shape != (boxes.shape[0],):
        raise InputError(f"scores must be [N] with N = {boxes.shape[0]} boxes, got shape {scores.shape}")
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = score_order(scores)
    b = boxes.astype(np.float32)[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    zero = np.float32(0)
    thr = float(iou_threshold)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(n):
            if suppressed[i]:
                continue
            keep.append(i)
            if i + 1 == n:
                break
            s = slice(i + 1, n)
            w = np.maximum(zero, np.minimum(x2[i], x2[s]) - np.maximum(x1[i], x1[s]))
            h = np.maximum(zero, np.minimum(y2[i], y2[s]) - np.maximum(y1[i], y1[s]))
            inter = w * h
            ovr = inter / (areas[i] + areas[s] - inter)
            suppressed[s] |= ovr.astype(np.float64) > thr
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)
