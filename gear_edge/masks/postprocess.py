"""Fused post-processing of SAM-family low-resolution mask logits (C++; numpy+cv2 fallback).

One call turns decoder logits ``[..., h, w]`` (SAM2: ``[B, M, 256, 256]``) into, per mask, the
COCO RLE at image resolution of ``upsampled > mask_threshold``, sam2's stability score, the XYWH
box and the area — without materialising full-resolution float maps. Up-sampling follows
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gear_edge import _native
from gear_edge.errors import InputError
from gear_edge.masks.rle import RLE
from gear_edge.reference import postprocess as _ref

Convention = Literal["sam2", "sam1"]


@dataclass(frozen=True)
class PostprocessedMasks:
    """Results for K masks; index k runs over the flattened leading dims of the logits."""

    rles: list[RLE]  # K canvas-sized RLEs
    stability: np.ndarray  # float32 [K]: IoU of the masks at threshold ± offset (1 if both empty)
    boxes: np.ndarray  # float64 [K, 4]: XYWH in canvas pixels, zeros for an empty mask
    areas: np.ndarray  # int64 [K]: pixels above the threshold

    def __len__(self) -> int:
        return len(self.rles)


def _pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise InputError(f"{name} must be a pair of integers >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def postprocess_logits(
    logits: np.ndarray,
    orig_size: tuple[int, int],
    *,
    input_size: int = 1024,
    convention: Convention = "sam2",
    mask_threshold: float = 0.0,
    stability_offset: float = 1.0,
    canvas_size: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
    threads: int | None = None,
) -> PostprocessedMasks:
    """Thresholds, scores and RLE-encodes up-sampled mask logits.

    Args:
        logits: float array ``[..., h, w]`` of low-resolution logits (copied to C-contiguous
            float32 if it is not already).
        orig_size: ``(H, W)`` the masks are produced at: the image (or the crop, for SAM's
            crop layers).
        input_size: model input side (1024); used by the ``"sam1"`` convention.
        convention: ``"sam2"`` resizes ``h x w → H x W`` directly (sam2); ``"sam1"`` resizes to
            ``input_size²``, crops the longest-side-resized image, then resizes to ``H x W``.
        mask_threshold, stability_offset: as in sam2 (0.0 and 1.0 by default).
        canvas_size, offset: paste each ``H x W`` mask at ``offset = (x, y)`` into a zero canvas
            ``(H_canvas, W_canvas)`` (SAM's uncrop); default: the canvas is the mask.
    """
    if not isinstance(logits, np.ndarray) or logits.dtype.kind != "f":
        raise InputError(f"logits must be a float numpy array, got {getattr(logits, 'dtype', type(logits).__name__)}")
    if logits.ndim < 2:
        raise InputError(f"logits must be [..., h, w], got shape {logits.shape}")
    h, w = _pair(orig_size, "orig_size", 1)
    if not isinstance(input_size, (int, np.integer)) or input_size < 1:
        raise InputError(f"input_size must be a positive integer, got {input_size!r}")
    if convention not in ("sam2", "sam1"):
        raise InputError(f"convention must be 'sam2' or 'sam1', got {convention!r}")
    for name, v in (("mask_threshold", mask_threshold), ("stability_offset", stability_offset)):
        if not isinstance(v, (int, float, np.floating)) or not np.isfinite(v):
            raise InputError(f"{name} must be a finite number, got {v!r}")
    ch, cw = (h, w) if canvas_size is None else _pair(canvas_size, "canvas_size", 1)
    ox, oy = _pair(offset, "offset", 0)
    if logits.shape[-2] == 0 or logits.shape[-1] == 0:
        raise InputError(f"logits have an empty spatial size {logits.shape[-2:]}")
    flat = np.ascontiguousarray(logits.reshape((-1,) + logits.shape[-2:]), dtype=np.float32)
    args = (flat, h, w, int(input_size), convention, float(mask_threshold), float(stability_offset), ch, cw, ox, oy)
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    rles, stability, boxes, areas = cpp.postprocess_logits(*args, t) if cpp else _ref.postprocess_logits(*args)
    return PostprocessedMasks(rles=rles, stability=stability, boxes=boxes, areas=areas)
