"""Prompted segmentation for robot clicks and boxes (sam2's ``SAM2ImagePredictor.predict`` on engines).

Prompts are in image pixels. Each object is one prompt set: points ``[P, 2]`` (x, y) with labels
(1 foreground, 0 background) and/or one box, given XYWH (the project's convention) and fed to
the decoder as its two corners ``(x, y)``, ``(x + w, y + h)`` with labels 2 and 3, ahead of the
points (as sam2 does). The encoder runs once per image (:meth:`PromptSegmenter.set_image`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

import gear_edge.masks as gm
from gear_edge.engines.base import Engine
from gear_edge.errors import InputError
from gear_edge.segment.grid import points_to_model
from gear_edge.segment.sam_io import SamEngines
from gear_edge.types import Region


def _as_points(points: object, labels: object) -> tuple[np.ndarray, np.ndarray] | None:
    if points is None:
        if labels is not None:
            raise InputError("point_labels given without points")
        return None
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"points must be numbers [N, 2] or [N, P, 2] (x, y pixels), got {points!r}") from None
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, None, :]  # N single clicks, one object each
    if p.ndim != 3 or p.shape[2] != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise InputError(f"points must be [N, 2] (one click per object) or [N, P, 2], got shape {p.shape}")
    if not np.isfinite(p).all():
        raise InputError("points contain NaN or infinity")
    if labels is None:
        lab = np.ones(p.shape[:2], dtype=np.float32)
    else:
        try:
            lab = np.asarray(labels, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"point_labels must be numbers (1 foreground, 0 background), got {labels!r}") from None
        if lab.shape == (p.shape[0],) and p.shape[1] == 1:
            lab = lab[:, None]
        if lab.shape != p.shape[:2]:
            raise InputError(f"point_labels must be shaped {list(p.shape[:2])} (one per point), got {list(lab.shape)}")
        if not np.isin(lab, (0, 1)).all():
            raise InputError("point_labels must be 1 (foreground) or 0 (background)")
        lab = lab.astype(np.float32)
    return p, lab


def _as_boxes(boxes: object) -> np.ndarray | None:
    if boxes is None:
        return None
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"boxes must be numbers [N, 4] XYWH pixels, got {boxes!r}") from None
    if b.ndim == 1 and b.shape == (4,):
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4 or b.shape[0] == 0:
        raise InputError(f"boxes must be [N, 4] XYWH pixels, got shape {b.shape}")
    if not np.isfinite(b).all() or (b[:, 2:] < 0).any():
        raise InputError("boxes must be finite with non-negative width and height")
    return b


class PromptSegmenter:
    """Encode an image once, then segment any number of point / box prompts on it."""

    def __init__(
        self,
        encoder: Engine,
        decoder: Engine,
        *,
        mask_threshold: float = 0.0,
        stability_offset: float = 1.0,
        threads: int | None = None,
    ) -> None:
        self.engines = SamEngines(encoder, decoder)
        self.mask_threshold = float(mask_threshold)
        self.stability_offset = float(stability_offset)
        self.threads = threads
        self._feats: dict[str, np.ndarray] | None = None
        self._hw: tuple[int, int] | None = None

    def set_image(self, image: np.ndarray, timings: dict | None = None) -> None:
        """Runs the encoder on a uint8 RGB ``[H, W, 3]`` image and keeps its features."""
        image = self.engines.check_image(image)
        self._feats = self.engines.encode(image, timings)
        self._hw = image.shape[:2]

    def predict(
        self,
        points: Sequence | np.ndarray | None = None,
        point_labels: Sequence | np.ndarray | None = None,
        boxes: Sequence | np.ndarray | None = None,
        *,
        multimask_output: bool | None = None,
        timings: dict | None = None,
    ) -> list[Region]:
        """One Region per object (id = object index): its mask, predicted IoU and stability.

        Args:
            points: ``[N, 2]`` (one click per object) or ``[N, P, 2]`` (x, y) image pixels.
            point_labels: ``[N]`` / ``[N, P]``: 1 foreground, 0 background (default all 1).
            boxes: ``[N, 4]`` XYWH image pixels; with points, N must agree.
            multimask_output: decode 3 candidates and keep the best by predicted IoU; default:
                on for single-click objects without a box (ambiguous prompts), off otherwise.
        """
        if self._feats is None or self._hw is None:
            raise InputError("call set_image(image) before predict(...)")
        pts = _as_points(points, point_labels)
        bxs = _as_boxes(boxes)
        if pts is None and bxs is None:
            raise InputError("give points and/or boxes to segment")
        n = pts[0].shape[0] if pts is not None else bxs.shape[0]
        if pts is not None and bxs is not None and bxs.shape[0] != n:
            raise InputError(f"{n} point sets but {bxs.shape[0]} boxes; give one box per object")
        coords, labels = [], []
        if bxs is not None:
            corners = np.stack([bxs[:, :2], bxs[:, :2] + bxs[:, 2:]], axis=1)  # [N, 2, 2] XYXY corners
            coords.append(corners)
            labels.append(np.tile(np.array([[2.0, 3.0]], dtype=np.float32), (n, 1)))
        if pts is not None:
            coords.append(pts[0])
            labels.append(pts[1])
        c = points_to_model(np.concatenate(coords, axis=1), self._hw, self.engines.input_size)
        lab = np.concatenate(labels, axis=1)
        if multimask_output is None:
            multimask_output = bxs is None and pts is not None and pts[0].shape[1] == 1
        logits, iou = self.engines.decode(self._feats, c, lab, bool(multimask_output), timings)
        t0 = time.perf_counter()
        best = np.argmax(iou, axis=1)
        chosen = logits[np.arange(n), best]
        pp = gm.postprocess_logits(
            chosen, self._hw, convention="sam2", mask_threshold=self.mask_threshold,
            stability_offset=self.stability_offset, threads=self.threads,
        )
        regions = [
            Region(
                id=i,
                rle=pp.rles[i],
                bbox=tuple(float(v) for v in pp.boxes[i]),
                area=int(pp.areas[i]),
                score=float(iou[i, best[i]]),
                stability=float(pp.stability[i]),
            )
            for i in range(n)
        ]
        if timings is not None:
            timings["postprocess_ms"] = timings.get("postprocess_ms", 0.0) + (time.perf_counter() - t0) * 1e3
        return regions


def segment_prompts(
    image: np.ndarray,
    points: Sequence | np.ndarray | None = None,
    boxes: Sequence | np.ndarray | None = None,
    *,
    encoder: Engine,
    decoder: Engine,
    point_labels: Sequence | np.ndarray | None = None,
    multimask_output: bool | None = None,
    mask_threshold: float = 0.0,
    threads: int | None = None,
    timings: dict | None = None,
) -> list[Region]:
    """One-shot :class:`PromptSegmenter`: encode ``image``, segment the prompts (see ``predict``)."""
    seg = PromptSegmenter(encoder, decoder, mask_threshold=mask_threshold, threads=threads)
    seg.set_image(image, timings)
    return seg.predict(points, point_labels, boxes, multimask_output=multimask_output, timings=timings)
