"""Automatic ("everything") mask generation on SAM2 engines — sam2's ``SAM2AutomaticMaskGenerator``.

Per crop (layer 0 is the whole image; ``crop_n_layers`` adds overlapping crops): the encoder runs
once; a point grid is decoded ``points_per_batch`` prompts at a time; each batch's masks are
filtered by predicted IoU (``> pred_iou_thresh``), post-processed at crop resolution by the fused
C++ kernel (``gear_edge.masks.postprocess_logits``: bilinear up-sampling as torch, thresholding,
stability score at ``mask_threshold ± stability_score_offset``, box, RLE pasted into the image
canvas), filtered by stability (``>= stability_score_thresh``; an empty-at-both-thresholds mask
scores NaN and is dropped, as 0/0 in sam2) and by boxes touching an inner crop edge; then box NMS
(``box_nms_thresh``) within the crop and, with several crops, across crops (``crop_nms_thresh``,
smaller crops preferred). Thresholds compare in float32, as torch compares float32 tensors with
Python scalars. ``min_mask_region_area > 0`` removes holes and islands smaller than that many
pixels at image resolution and re-runs NMS (sam2's ``postprocess_small_regions``; sam2 1.1.0 itself
does this clean-up on the 256² logits with a CUDA-only kernel that is skipped on CPU).

Boxes used for NMS follow sam2 (XYXY, max pixel inclusive); the Regions carry COCO XYWH boxes
(width = max - min + 1), the project's convention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import gear_edge.masks as gm
from gear_edge.engines.base import Engine
from gear_edge.errors import InputError
from gear_edge.segment.cleanup import remove_small_regions
from gear_edge.segment.grid import batches, build_all_layer_point_grids, generate_crop_boxes, points_to_model
from gear_edge.segment.nms import box_nms
from gear_edge.segment.sam_io import SamEngines
from gear_edge.types import Region


@dataclass
class MaskSet:
    """Candidate masks in image coordinates (parallel arrays of length N)."""

    rles: list[dict]
    boxes: np.ndarray  # float32 [N, 4] XYXY, max pixel inclusive (sam2's); empty masks: the crop origin
    bbox: np.ndarray  # float64 [N, 4] COCO XYWH; zeros when empty
    areas: np.ndarray  # int64 [N]
    iou: np.ndarray  # float32 [N] predicted IoU
    stability: np.ndarray  # float32 [N]
    points: np.ndarray  # float32 [N, 2] prompt (x, y) in image pixels
    crop_boxes: np.ndarray  # int64 [N, 4] XYXY crop each mask came from

    def __len__(self) -> int:
        return len(self.rles)

    def take(self, idx: np.ndarray) -> "MaskSet":
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return MaskSet(
            rles=[self.rles[i] for i in idx],
            boxes=self.boxes[idx],
            bbox=self.bbox[idx],
            areas=self.areas[idx],
            iou=self.iou[idx],
            stability=self.stability[idx],
            points=self.points[idx],
            crop_boxes=self.crop_boxes[idx],
        )

    @staticmethod
    def empty() -> "MaskSet":
        return MaskSet(
            [], np.zeros((0, 4), np.float32), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.float32),
            np.zeros(0, np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 4), np.int64),
        )

    @staticmethod
    def cat(parts: list["MaskSet"]) -> "MaskSet":
        parts = [p for p in parts if len(p)]
        if not parts:
            return MaskSet.empty()
        return MaskSet(
            rles=[r for p in parts for r in p.rles],
            boxes=np.concatenate([p.boxes for p in parts]),
            bbox=np.concatenate([p.bbox for p in parts]),
            areas=np.concatenate([p.areas for p in parts]),
            iou=np.concatenate([p.iou for p in parts]),
            stability=np.concatenate([p.stability for p in parts]),
            points=np.concatenate([p.points for p in parts]),
            crop_boxes=np.concatenate([p.crop_boxes for p in parts]),
        )


def _add(timings: dict | None, key: str, t0: float) -> None:
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + (time.perf_counter() - t0) * 1e3


def _near_crop_edge(boxes: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = 20.0) -> np.ndarray:
    """sam2's ``is_box_near_crop_edge`` on image-frame boxes: near an inner crop edge, not an image edge."""
    crop = np.asarray(crop_box, dtype=np.float32)
    orig = np.asarray(orig_box, dtype=np.float32)
    near_crop = np.abs(boxes - crop[None]) <= np.float32(atol)
    near_image = np.abs(boxes - orig[None]) <= np.float32(atol)
    return np.any(near_crop & ~near_image, axis=1)


def masks_to_boxes_xyxy(bbox_xywh: np.ndarray, empty_at: tuple[int, int] = (0, 0)) -> np.ndarray:
    """COCO XYWH (w = max - min + 1) → sam2's XYXY (max inclusive) float32; empty → ``empty_at`` twice."""
    b = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1, 4)
    out = np.empty((len(b), 4), dtype=np.float32)
    out[:, 0], out[:, 1] = b[:, 0], b[:, 1]
    out[:, 2], out[:, 3] = b[:, 0] + b[:, 2] - 1, b[:, 1] + b[:, 3] - 1
    empty = (b[:, 2] <= 0) | (b[:, 3] <= 0)
    out[empty] = np.float32([empty_at[0], empty_at[1], empty_at[0], empty_at[1]])
    return out


def _check_unit(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


class AutomaticMaskGenerator:
    """Class-agnostic masks for a whole image from a SAM2 encoder + prompt decoder (any Engine).

    Defaults are sam2's. ``generate(image)`` (= ``segment(image)``, the Segmenter protocol)
    returns :class:`Region` objects sorted by area (descending; ties keep sam2's output order),
    ids 0..N-1 in that order.
    """

    name = "sam2-amg"

    def __init__(
        self,
        encoder: Engine,
        decoder: Engine,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        multimask_output: bool = True,
        threads: int | None = None,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise InputError("give exactly one of points_per_side and point_grids")
        if not isinstance(crop_n_layers, (int, np.integer)) or crop_n_layers < 0:
            raise InputError(f"crop_n_layers must be an integer >= 0, got {crop_n_layers!r}")
        if points_per_side is not None:
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
            if len(grids) < crop_n_layers + 1 or any(g.ndim != 2 or g.shape[1] != 2 for g in grids):
                raise InputError(
                    f"point_grids must hold {crop_n_layers + 1} arrays [n, 2] in [0, 1] (one per crop layer)"
                )
            self.point_grids = grids
        if not isinstance(points_per_batch, (int, np.integer)) or points_per_batch < 1:
            raise InputError(f"points_per_batch must be a positive integer, got {points_per_batch!r}")
        if not isinstance(min_mask_region_area, (int, np.integer)) or min_mask_region_area < 0:
            raise InputError(f"min_mask_region_area must be an integer >= 0, got {min_mask_region_area!r}")
        self.engines = SamEngines(encoder, decoder)
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = _check_unit("pred_iou_thresh", pred_iou_thresh, -1e9, 1e9)
        self.stability_score_thresh = _check_unit("stability_score_thresh", stability_score_thresh)
        self.stability_score_offset = _check_unit("stability_score_offset", stability_score_offset, 0.0, 1e9)
        self.mask_threshold = _check_unit("mask_threshold", mask_threshold, -1e9, 1e9)
        self.box_nms_thresh = _check_unit("box_nms_thresh", box_nms_thresh)
        self.crop_n_layers = int(crop_n_layers)
        self.crop_nms_thresh = _check_unit("crop_nms_thresh", crop_nms_thresh)
        self.crop_overlap_ratio = _check_unit("crop_overlap_ratio", crop_overlap_ratio, 0.0, 1.0)
        self.min_mask_region_area = int(min_mask_region_area)
        self.multimask_output = bool(multimask_output)
        self.threads = threads

    # -- public -------------------------------------------------------------------------------
    def generate(self, image: np.ndarray, timings: dict | None = None) -> list[Region]:
        """uint8 RGB ``[H, W, 3]`` → Regions (RLE, COCO XYWH bbox, area, score = predicted IoU, stability).

        ``timings``, if given, receives milliseconds per stage: ``preprocess_ms``, ``encoder_ms``,
        ``decoder_ms`` (+ ``decoder_batches_ms`` list), ``postprocess_ms``, ``nms_ms``,
        ``cleanup_ms``, ``total_ms``.
        """
        t0 = time.perf_counter()
        regions = self.to_regions(self.generate_masks(image, timings))
        if timings is not None:
            timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return regions

    @staticmethod
    def to_regions(data: MaskSet) -> list[Region]:
        """:meth:`generate_masks` output → Regions sorted by area (descending, stable), ids 0..N-1."""
        order = np.argsort(-data.areas, kind="stable")
        return [
            Region(
                id=k,
                rle=data.rles[i],
                bbox=tuple(float(v) for v in data.bbox[i]),
                area=int(data.areas[i]),
                score=float(data.iou[i]),
                stability=float(data.stability[i]),
            )
            for k, i in enumerate(order)
        ]

    def segment(self, image: np.ndarray) -> list[Region]:
        """The :class:`~gear_edge.segment.base.Segmenter` protocol: same as :meth:`generate`."""
        return self.generate(image)

    def generate_masks(self, image: np.ndarray, timings: dict | None = None) -> MaskSet:
        """The masks in sam2's output order (after NMS and clean-up), as parallel arrays."""
        image = self.engines.check_image(image)
        h, w = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes((h, w), self.crop_n_layers, self.crop_overlap_ratio)
        data = MaskSet.cat(
            [self._process_crop(image, box, layer, timings) for box, layer in zip(crop_boxes, layer_idxs)]
        )
        if len(crop_boxes) > 1 and len(data):
            t = time.perf_counter()
            cb = data.crop_boxes
            scores = np.float32(1.0) / ((cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])).astype(np.float32)
            data = data.take(box_nms(data.boxes, scores, self.crop_nms_thresh))
            _add(timings, "nms_ms", t)
        if self.min_mask_region_area > 0 and len(data):
            t = time.perf_counter()
            nms_thresh = max(self.box_nms_thresh, self.crop_nms_thresh)
            data = postprocess_small_regions(data, self.min_mask_region_area, nms_thresh)
            _add(timings, "cleanup_ms", t)
        return data

    # -- stages -------------------------------------------------------------------------------
    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int, timings: dict | None) -> MaskSet:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        feats = self.engines.encode(crop, timings)
        points = (self.point_grids[layer] * np.array([[cw, ch]], dtype=np.float64)).astype(np.float32)
        parts = [self._process_batch(feats, points[sl], (ch, cw), crop_box, image.shape[:2], timings)
                 for sl in batches(len(points), self.points_per_batch)]
        data = MaskSet.cat(parts)
        t = time.perf_counter()
        data = data.take(box_nms(data.boxes, data.iou, self.box_nms_thresh))
        _add(timings, "nms_ms", t)
        data.crop_boxes = np.tile(np.asarray(crop_box, dtype=np.int64), (len(data), 1))
        return data

    def _process_batch(
        self,
        feats: dict[str, np.ndarray],
        points: np.ndarray,
        crop_hw: tuple[int, int],
        crop_box: list[int],
        orig_hw: tuple[int, int],
        timings: dict | None,
    ) -> MaskSet:
        x0, y0, x1, y1 = crop_box
        h, w = orig_hw
        coords = points_to_model(points, crop_hw, self.engines.input_size)[:, None, :]
        labels = np.ones((len(points), 1), dtype=np.float32)
        logits, iou = self.engines.decode(feats, coords, labels, self.multimask_output, timings)
        t = time.perf_counter()
        m = logits.shape[1]
        logits = logits.reshape((-1,) + logits.shape[2:])
        iou = np.asarray(iou, dtype=np.float32).reshape(-1)
        pts = np.repeat(points, m, axis=0)
        keep = np.arange(len(iou))
        if self.pred_iou_thresh > 0.0:
            keep = np.flatnonzero(iou > np.float32(self.pred_iou_thresh))
        if len(keep) == 0:
            _add(timings, "postprocess_ms", t)
            return MaskSet.empty()
        pp = gm.postprocess_logits(
            logits[keep] if len(keep) < len(iou) else logits,
            crop_hw,
            convention="sam2",
            mask_threshold=self.mask_threshold,
            stability_offset=self.stability_score_offset,
            canvas_size=(h, w),
            offset=(x0, y0),
            threads=self.threads,
        )
        stability = pp.stability.astype(np.float32, copy=True)
        stability[(stability == 1.0) & (pp.areas == 0)] = np.nan  # empty at mask_threshold - offset: 0/0
        sel = np.arange(len(keep))
        if self.stability_score_thresh > 0.0:
            with np.errstate(invalid="ignore"):
                sel = np.flatnonzero(stability >= np.float32(self.stability_score_thresh))
        boxes = masks_to_boxes_xyxy(pp.boxes[sel], empty_at=(x0, y0))
        if (x0, y0, x1, y1) != (0, 0, w, h):
            inner = ~_near_crop_edge(boxes, crop_box, [0, 0, w, h])
            sel, boxes = sel[inner], boxes[inner]
        out = MaskSet(
            rles=[pp.rles[i] for i in sel],
            boxes=boxes,
            bbox=pp.boxes[sel],
            areas=pp.areas[sel].astype(np.int64),
            iou=iou[keep[sel]],
            stability=stability[sel],
            points=pts[keep[sel]] + np.array([x0, y0], dtype=np.float32),
            crop_boxes=np.zeros((len(sel), 4), dtype=np.int64),
        )
        _add(timings, "postprocess_ms", t)
        return out


def postprocess_small_regions(data: MaskSet, min_area: int, nms_thresh: float) -> MaskSet:
    """Fills holes / drops islands smaller than ``min_area`` pixels, then box NMS preferring unchanged masks.

    sam2's ``SAM2AutomaticMaskGenerator.postprocess_small_regions``: score 1 for unchanged masks,
    0 for changed ones; changed masks that survive get a new RLE, box and area.
    """
    if len(data) == 0:
        return data
    boxes = np.zeros((len(data), 4), dtype=np.float32)
    scores = np.zeros(len(data), dtype=np.float32)
    changed: dict[int, np.ndarray] = {}
    for i, rle in enumerate(data.rles):
        mask = gm.decode(rle)
        mask, c1 = remove_small_regions(mask, min_area, "holes")
        mask, c2 = remove_small_regions(mask, min_area, "islands")
        if c1 or c2:
            changed[i] = mask
            cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
            if len(cols):
                boxes[i] = [cols[0], rows[0], cols[-1], rows[-1]]
        else:
            scores[i] = 1.0
            b = data.bbox[i]
            if b[2] > 0 and b[3] > 0:
                boxes[i] = [b[0], b[1], b[0] + b[2] - 1, b[1] + b[3] - 1]
    keep = box_nms(boxes, scores, nms_thresh)
    out = data.take(keep)
    out.rles = list(out.rles)
    for k, i in enumerate(keep):
        if i in changed:
            rle = gm.encode(np.asfortranarray(changed[i]))
            out.rles[k] = rle
            out.boxes[k] = boxes[i]
            out.bbox[k] = gm.to_bbox(rle)
            out.areas[k] = gm.area(rle)
    return out
