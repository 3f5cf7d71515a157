"""Numeric comparison of exported models against their reference (numpy only; no torch).

* :func:`tensor_error` / :func:`check_close`: the error measure every exporter check uses,
  ``max |actual - expected| / max(1, max |expected|)`` — absolute for values of order one or less,
  relative to the tensor's largest magnitude above that — raising :class:`ParityError` above a tolerance.
* :func:`mask_agreement`: IoU of the binary masks ``logits > threshold`` of two sets of mask logits
  (e.g. fp16 vs fp32 outputs), with the masks that cannot show anything (empty or full in the
  reference) counted apart, plus the logit error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gear_edge.errors import GearEdgeError


class ParityError(GearEdgeError):
    """An exported model disagrees with its reference beyond the stated tolerance."""


def tensor_error(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """``max_abs`` = max |actual - expected|, ``scale`` = max(1, max |expected|), ``error`` = max_abs / scale.

    Shapes must be equal (ValueError otherwise). NaN anywhere makes ``error`` infinite.
    """
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {list(a.shape)} differs from the reference's {list(b.shape)}")
    if a.size == 0:
        return {"max_abs": 0.0, "scale": 1.0, "error": 0.0}
    diff = np.abs(a - b)
    if not (np.isfinite(diff).all()):
        return {"max_abs": float("inf"), "scale": 1.0, "error": float("inf")}
    scale = max(1.0, float(np.abs(b).max()))
    max_abs = float(diff.max())
    return {"max_abs": max_abs, "scale": scale, "error": max_abs / scale}


def check_close(where: str, actual: np.ndarray, expected: np.ndarray, tolerance: float) -> dict[str, float]:
    """:func:`tensor_error` of one tensor; raises :class:`ParityError` naming ``where`` above ``tolerance``."""
    try:
        err = tensor_error(actual, expected)
    except ValueError as exc:
        raise ParityError(f"{where}: {exc}") from None
    if not err["error"] <= tolerance:
        raise ParityError(
            f"{where}: ONNX Runtime differs from the PyTorch reference by {err['max_abs']:.3g} "
            f"(error {err['error']:.3g} = max abs / max(1, max |ref| = {err['scale']:.3g})), above the tolerance {tolerance:g}"
        )
    return {**err, "tolerance": tolerance}


def check_all(where: str, actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
              tolerances: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """:func:`check_close` for every name in ``tolerances`` (missing outputs raise)."""
    out = {}
    for name, tol in tolerances.items():
        if name not in actual or name not in expected:
            raise ParityError(f"{where}: output {name!r} is missing (have {sorted(actual)}, reference {sorted(expected)})")
        out[name] = check_close(f"{where} {name}", actual[name], expected[name], tol)
    return out


def mask_agreement(test_logits: np.ndarray, ref_logits: np.ndarray, threshold: float = 0.0) -> dict[str, Any]:
    """IoU of ``test > threshold`` vs ``ref > threshold`` per mask (last two axes are H, W).

    Masks that are empty or full in the reference ("degenerate": their IoU says nothing about the
    shape) are counted in ``degenerate`` and left out of the IoU statistics. Returns ``masks``,
    ``degenerate``, ``iou_mean`` / ``iou_median`` / ``iou_p05`` / ``iou_min`` (None when no mask is
    informative), ``below_0_9`` (fraction of informative masks with IoU < 0.9), and the logit errors
    ``logit_max_abs`` / ``logit_mean_abs`` and ``ref_logit_absmax``.
    """
    a = np.asarray(test_logits, dtype=np.float32)
    b = np.asarray(ref_logits, dtype=np.float32)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"mask logits of shapes {list(a.shape)} and {list(b.shape)} cannot be compared")
    h, w = b.shape[-2:]
    ma = (a > threshold).reshape(-1, h * w)
    mb = (b > threshold).reshape(-1, h * w)
    inter = np.count_nonzero(ma & mb, axis=1)
    union = np.count_nonzero(ma | mb, axis=1)
    area = np.count_nonzero(mb, axis=1)
    informative = (area > 0) & (area < h * w)
    iou = inter[informative] / np.maximum(union[informative], 1)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    stats: dict[str, Any] = {
        "masks": int(mb.shape[0]),
        "degenerate": int(np.count_nonzero(~informative)),
        "iou_mean": None, "iou_median": None, "iou_p05": None, "iou_min": None, "below_0_9": None,
        "logit_max_abs": float(diff.max()) if diff.size else 0.0,
        "logit_mean_abs": float(diff.mean()) if diff.size else 0.0,
        "ref_logit_absmax": float(np.abs(b).max()) if b.size else 0.0,
    }
    if iou.size:
        stats.update({
            "iou_mean": float(iou.mean()), "iou_median": float(np.median(iou)),
            "iou_p05": float(np.percentile(iou, 5)), "iou_min": float(iou.min()),
            "below_0_9": float(np.mean(iou < 0.9)),
        })
    return stats


def merge_agreement(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combines :func:`mask_agreement` results of several images: counts add, maxima take the max,
    means are weighted by informative masks (IoU) or by masks (logit error); medians/percentiles
    become the worst (lowest) per-image value."""
    if not parts:
        raise ValueError("nothing to merge")
    n_inf = [p["masks"] - p["degenerate"] for p in parts]
    total_inf = sum(n_inf)
    masks = sum(p["masks"] for p in parts)
    out: dict[str, Any] = {
        "masks": masks,
        "degenerate": sum(p["degenerate"] for p in parts),
        "logit_max_abs": max(p["logit_max_abs"] for p in parts),
        "logit_mean_abs": sum(p["logit_mean_abs"] * p["masks"] for p in parts) / max(masks, 1),
        "ref_logit_absmax": max(p["ref_logit_absmax"] for p in parts),
        "iou_mean": None, "iou_median": None, "iou_p05": None, "iou_min": None, "below_0_9": None,
    }
    if total_inf:
        with_iou = [(p, n) for p, n in zip(parts, n_inf) if n]
        out["iou_mean"] = sum(p["iou_mean"] * n for p, n in with_iou) / total_inf
        out["below_0_9"] = sum(p["below_0_9"] * n for p, n in with_iou) / total_inf
        out["iou_median"] = min(p["iou_median"] for p, _ in with_iou)
        out["iou_p05"] = min(p["iou_p05"] for p, _ in with_iou)
        out["iou_min"] = min(p["iou_min"] for p, _ in with_iou)
    return out


__all__ = ["ParityError", "check_all", "check_close", "mask_agreement", "merge_agreement", "tensor_error"]
