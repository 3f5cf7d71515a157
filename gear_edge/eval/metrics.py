"""gIoU and cIoU exactly as LISA (Lai et al., CVPR 2024) computes them for reasoning segmentation.

Per sample (LISA's ``intersectionAndUnionGPU(pred, target, K=2, ignore_index=255)``, class 1):

* the prediction is ``logits > 0`` (float input) or the binary mask itself (bool / 0-1 input), at
  the target's (the original image's) resolution;
* pixels whose target is 255 are ignored (neither prediction nor target there counts);
* ``I`` = pixels predicted 1 where the target is 1, ``U`` = pixels predicted 1 or target 1;
* ``iou = I / (U + 1e-5)``, and 1.0 when ``U == 0`` (an empty prediction on an empty target).

``gIoU`` is the mean of the per-sample ious; ``cIoU`` is ``ΣI / (ΣU + 1e-10)`` over all samples
(LISA's ``intersection_meter.sum / (union_meter.sum + 1e-10)``), so it is 0 when every union is empty.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gear_edge.errors import InputError

IGNORE = 255
EPS_SAMPLE = 1e-5
EPS_CUMULATIVE = 1e-10


def binarize(pred: Any, name: str = "prediction") -> np.ndarray:
    """bool mask: ``pred > 0`` for float logits, ``pred != 0`` for bool / integer masks."""
    arr = np.asarray(pred)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D mask or logit map (H x W), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise InputError(f"{name} contains NaN logits")
        return arr > 0
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise InputError(f"{name}: an integer mask must hold only 0 and 1 (pass logits as float), "
                             f"got values in [{arr.min()}, {arr.max()}]")
        return arr != 0
    raise InputError(f"{name} must be bool, integer 0/1 or float logits, got dtype {arr.dtype}")


def check_target(target: Any, name: str = "target") -> np.ndarray:
    """uint8 target with values 0 (background), 1 (object), 255 (ignored); bool accepted."""
    arr = np.asarray(target)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D mask (H x W), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{name} must be an integer (0 / 1 / 255) or bool mask, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1, IGNORE))
    if bad.any():
        raise InputError(f"{name} values must be 0, 1 or {IGNORE} (ignored), got {np.unique(arr[bad])[:5].tolist()}")
    return arr.astype(np.uint8, copy=False)


def intersection_union(pred: Any, target: Any, ignore_index: int = IGNORE) -> tuple[int, int]:
    """(I, U) of the foreground of one sample, ignoring ``ignore_index`` pixels of the target."""
    p = binarize(pred)
    t = check_target(target)
    if p.shape != t.shape:
        raise InputError(f"prediction shape {p.shape} differs from target shape {t.shape}; "
                         "predict at the original image resolution")
    valid = t != ignore_index
    p = p & valid
    tt = t == 1
    inter = int(np.count_nonzero(p & tt))
    union = int(np.count_nonzero(p) + np.count_nonzero(tt) - inter)
    return inter, union


def sample_iou(intersection: int, union: int) -> float:
    """LISA's per-sample score: I / (U + 1e-5), or 1.0 when the union is empty."""
    if union == 0:
        return 1.0
    return float(intersection) / (float(union) + EPS_SAMPLE)


@dataclass
class IoUAccumulator:
    """Collects (I, U) per sample, optionally under a class name; :meth:`result` gives gIoU / cIoU."""

    ious: list[float] = field(default_factory=list)
    inter: int = 0
    union: int = 0
    _by_class: dict[str, list[tuple[int, int, float]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, intersection: int, union: int, cls: str | None = None) -> float:
        if intersection < 0 or union < intersection:
            raise InputError(f"need 0 <= intersection <= union, got I={intersection}, U={union}")
        iou = sample_iou(intersection, union)
        self.ious.append(iou)
        self.inter += int(intersection)
        self.union += int(union)
        if cls is not None:
            self._by_class[str(cls)].append((int(intersection), int(union), iou))
        return iou

    def add_masks(self, pred: Any, target: Any, cls: str | None = None) -> float:
        return self.add(*intersection_union(pred, target), cls=cls)

    @staticmethod
    def _scores(inter: int, union: int, ious: list[float]) -> dict[str, Any]:
        return {
            "n": len(ious),
            "gIoU": float(np.mean(ious)) if ious else None,
            "cIoU": float(inter) / (float(union) + EPS_CUMULATIVE) if ious else None,
            "intersection": int(inter),
            "union": int(union),
        }

    def result(self) -> dict[str, Any]:
        out = self._scores(self.inter, self.union, self.ious)
        out["by_class"] = {
            cls: self._scores(sum(i for i, _, _ in rows), sum(u for _, u, _ in rows), [r[2] for r in rows])
            for cls, rows in sorted(self._by_class.items())
        }
        return out
