"""Follow a query's targets from frame to frame without re-running perceive + ask on every frame.

    tracker = Tracker(gs)                       # gs: a GearSeg
    first = tracker.start(image, "the red mug") # full perceive + ask
    for frame in frames:
        r = tracker.update(frame)               # cheap: flow + appearance; re-deduces only when lost

Per target, per frame (images RGB uint8 [H, W, 3], masks bool [H, W], pixels):
1. **Optical flow**: pyramidal Lucas-Kanade on corner features inside the previous mask (and its
   boundary) gives a robust motion (median translation, or a partial affine when enough points agree);
   the previous mask is warped by it: the *prediction*.
2. **Appearance**: a hue-saturation histogram of the target against its surroundings (the ratio
   model of mean-shift trackers), learnt at start and adapted slowly, is back-projected in a window
   around the prediction; the connected component overlapping the prediction most is the new mask.
3. **Association**: the new mask is kept when its IoU with the prediction >= ``min_iou`` and its
   histogram matches the target's (Bhattacharyya similarity >= ``min_appearance``); otherwise the
   query is re-deduced on this frame (perceive + ask), and the re-found target keeps the track id
   when it overlaps the prediction or looks like the target, else it gets a new id.

**Captions per track**: a target keeps its region's caption (``TrackedTarget.caption``, once a query
has read it) for as long as the track holds. When the tracker perceives again while the track still
holds (``rededuce_every``, or :meth:`Tracker.reuse_captions` on a frame perceived for another query),
the new scene's region that the flow-predicted mask matches (IoU >= 0.7 and >= ``min_iou``) gets that caption
instead of being captioned again (``scene.meta["captions_from_tracks"]`` counts them). A lost track
(association failed) is re-deduced with no caption carried over; the new target starts with its new
region's caption. This trades exactness for cost on purpose: the reused caption is the one of the
same tracked object on an earlier frame, not a fresh caption of the new crop.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.crops import check_image
from gear_edge.errors import InputError
from gear_edge.types import Answer

_track_ids = itertools.count(1)
_HIST_BINS = (30, 16)  # hue (0..180), saturation (0..256)
# a held track hands its caption on only to a region its predicted mask matches this well (and at least
# min_iou): a track that has drifted over two neighbours (IoU 0.5 with each) names neither
CAPTION_IOU = 0.7


@dataclass
class TrackedTarget:
    """One followed target: ``track_id`` is stable while the target is associated."""

    track_id: int
    region_id: int  # its region id in the scene it was last deduced on
    mask: np.ndarray  # bool [H, W]
    bbox: tuple[float, float, float, float]  # XYWH pixels
    iou_with_prediction: float = 1.0
    appearance: float = 1.0
    centroid_3d: tuple[float, float, float] | None = None  # camera optical frame, metres (with depth)
    caption: str | None = None  # its region's caption, kept while the track holds (None: not read yet)
    _ratio: np.ndarray | None = field(default=None, repr=False)  # appearance model (see Tracker._model)
    _fg: np.ndarray | None = field(default=None, repr=False)


@dataclass
class TrackResult:
    """The targets on one frame. ``mode``: "deduced" (perceive + ask ran on this frame: start, or
    association failed) or "tracked" (flow + appearance only). ``answer`` is the full Answer on
    deduced frames, None on tracked ones. ``timings`` in milliseconds."""

    frame: int
    mode: str
    targets: list[TrackedTarget]
    answer: Answer | None
    timings: dict[str, float]
    reason: str = ""  # why a deduced frame was re-deduced

    @property
    def mask(self) -> np.ndarray | None:
        """bool [H, W] union of the targets (None when there are none)."""
        if not self.targets:
            return None
        out = self.targets[0].mask.copy()
        for t in self.targets[1:]:
            out |= t.mask
        return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / u if u else 0.0


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))


class Tracker:
    """Tracks the targets of one query (see the module docstring). Not thread-safe.

    ``gs`` is a GearSeg (``perceive`` / ``ask``); ``perceive_kwargs`` (e.g. depth, intrinsics) can be
    given per frame to ``start`` / ``update`` and are passed to ``perceive`` when it runs.
    """

    def __init__(self, gs: Any, *, min_iou: float = 0.5, min_appearance: float = 0.5, max_features: int = 80,
                 adapt: float = 0.1, rededuce_every: int = 0) -> None:
        for name, v in (("min_iou", min_iou), ("min_appearance", min_appearance), ("adapt", adapt)):
            if not 0.0 <= v <= 1.0:
                raise InputError(f"Tracker {name} must be in [0, 1], got {v}")
        if max_features < 4:
            raise InputError(f"Tracker max_features must be >= 4, got {max_features}")
        self.gs = gs
        self.min_iou, self.min_appearance = float(min_iou), float(min_appearance)
        self.max_features, self.adapt = int(max_features), float(adapt)
        self.rededuce_every = int(rededuce_every)  # also re-deduce every N frames (0 = only when lost)
        self.query: str | None = None
        self.targets: list[TrackedTarget] = []
        self.frame = -1
        self._prev_grey: np.ndarray | None = None
        self._since_deduce = 0
        self.stats = {"tracked": 0, "deduced": 0, "id_changes": 0}
        self.captions_reused = 0  # regions that got a held track's caption instead of a new one

    # ---- public ----------------------------------------------------------------------------

    def start(self, image: np.ndarray, query: str, **perceive_kwargs) -> TrackResult:
        """Perceive + ask ``query`` on ``image`` and start following its targets (new track ids)."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("Tracker.start needs a non-empty query string")
        self.query, self.targets, self.frame = query, [], -1
        return self._deduce(check_image(image), perceive_kwargs, reason="start", keep_ids=False)

    def adopt(self, image: np.ndarray, query: str, scene: Any, answer: Answer) -> TrackResult:
        """Start following an answer already deduced on ``image`` (no second perceive + ask)."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("Tracker.adopt needs a non-empty query string")
        self.query, self.targets, self.frame = query, [], -1
        return self._associate(check_image(image), scene, answer, 0.0, reason="start", keep_ids=False)

    def update(self, image: np.ndarray, **perceive_kwargs) -> TrackResult:
        """The targets on the next frame (same size as the first)."""
        if self.query is None:
            raise InputError("Tracker.update called before Tracker.start")
        image = check_image(image)
        if self._prev_grey is not None and image.shape[:2] != self._prev_grey.shape:
            raise InputError(f"frame size changed from {self._prev_grey.shape} to {image.shape[:2]}; call start again")
        if not self.targets:
            return self._deduce(image, perceive_kwargs, reason="no target to follow", keep_ids=True)
        if self.rededuce_every and self._since_deduce >= self.rededuce_every:
            return self._deduce(image, perceive_kwargs, reason=f"periodic ({self.rededuce_every} frames)", keep_ids=True,
                                reuse=True)
        t0 = time.perf_counter()
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        new: list[TrackedTarget] = []
        failed = ""
        for t in self.targets:
            pred = self._predict(self._prev_grey, grey, t.mask)
            mask, sim = self._refine(hsv, pred, t)
            iou = _iou(mask, pred)
            if iou < self.min_iou or sim < self.min_appearance:
                failed = f"target {t.track_id} lost (IoU with prediction {iou:.2f}, appearance {sim:.2f})"
                break
            t2 = TrackedTarget(t.track_id, t.region_id, mask, _bbox(mask), iou, sim, caption=t.caption,
                               _ratio=t._ratio, _fg=t._fg)
            self._adapt_model(t2, hsv)
            new.append(t2)
        if failed:
            return self._deduce(image, perceive_kwargs, reason=failed, keep_ids=True,
                                prediction=[self._predict(self._prev_grey, grey, t.mask) for t in self.targets])
        self._measure_3d(new, perceive_kwargs)
        self.targets, self._prev_grey = new, grey
        self.frame += 1
        self._since_deduce += 1
        self.stats["tracked"] += 1
        return TrackResult(self.frame, "tracked", list(new), None, {"track": (time.perf_counter() - t0) * 1e3})

    # ---- steps -----------------------------------------------------------------------------

    def reuse_captions(self, scene: Any, image: np.ndarray) -> int:
        """Gives the regions of ``scene`` (perceived on ``image``, the frame after the last one tracked)
        the captions of the targets whose tracks hold: the region the flow-predicted mask overlaps most,
        when IoU >= max(``min_iou``, ``CAPTION_IOU``) and it has no caption yet. Returns how many (also added to
        ``scene.meta["captions_from_tracks"]``)."""
        with_caption = [t for t in self.targets if t.caption is not None]
        if not with_caption or self._prev_grey is None or not scene.regions:
            return 0
        grey = cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY)
        if grey.shape != self._prev_grey.shape:
            return 0
        rles = [r.rle for r in scene.regions]
        n = 0
        for t in with_caption:
            pred = gm.encode(self._predict(self._prev_grey, grey, t.mask))
            ious = gm.iou([pred], rles)[0]
            k = int(np.argmax(ious))
            region = scene.regions[k]
            if float(ious[k]) >= max(self.min_iou, CAPTION_IOU) and region.caption is None:
                region.caption = t.caption
                n += 1
        scene.meta["captions_from_tracks"] = scene.meta.get("captions_from_tracks", 0) + n
        self.captions_reused += n
        return n

    def _deduce(self, image, perceive_kwargs, *, reason: str, keep_ids: bool, prediction=None,
                reuse: bool = False) -> TrackResult:
        t0 = time.perf_counter()
        scene = self.gs.perceive(image, **perceive_kwargs)
        if reuse:  # the tracks still hold: their regions keep their captions
            self.reuse_captions(scene, image)
        answer = self.gs.ask(scene, self.query)
        return self._associate(image, scene, answer, t0, reason=reason, keep_ids=keep_ids, prediction=prediction)

    def _associate(self, image, scene, answer, t0: float, *, reason: str, keep_ids: bool, prediction=None) -> TrackResult:
        """Targets of a fresh answer, keeping the track ids of the old targets they match."""
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        old = self.targets
        new: list[TrackedTarget] = []
        for rid in answer.targets:
            mask = scene.region(rid).bitmap()
            t = TrackedTarget(-1, rid, mask, _bbox(mask), caption=scene.region(rid).caption)
            t._ratio, t._fg = self._model(hsv, mask)
            if keep_ids and old:  # identity: the old target this one overlaps (or resembles) most
                preds = prediction or [o.mask for o in old]
                scores = [max(_iou(mask, p), 0.0) + 0.5 * self._similarity(t._fg, o._fg) for o, p in zip(old, preds)]
                k = int(np.argmax(scores))
                if _iou(mask, preds[k]) >= 0.2 or self._similarity(t._fg, old[k]._fg) >= self.min_appearance:
                    t.track_id = old[k].track_id
            if t.track_id < 0:
                t.track_id = next(_track_ids)
                if keep_ids and old:
                    self.stats["id_changes"] += 1
            new.append(t)
        for t in new:
            geo = getattr(scene.region(t.region_id), "geometry_3d", None)
            if geo is not None:
                t.centroid_3d = tuple(float(v) for v in geo.centroid_m)
        self.targets = new
        self._prev_grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        self.frame += 1
        self._since_deduce = 0
        self.stats["deduced"] += 1
        timings = {**scene.timings, **answer.timings, "track": (time.perf_counter() - t0) * 1e3 if t0 else 0.0}
        return TrackResult(self.frame, "deduced", list(new), answer, timings, reason)

    @staticmethod
    def _measure_3d(targets: list[TrackedTarget], kw: dict) -> None:
        """Each target's 3D centroid (trimmed mean of its back-projected depth pixels) when the frame
        came with ``depth`` and ``intrinsics`` (as ``perceive`` takes them)."""
        if kw.get("depth") is None or kw.get("intrinsics") is None:
            return
        from gear_edge.camera import as_intrinsics, backproject, depth_to_metres, robust_centroid

        depth = depth_to_metres(kw["depth"], targets[0].mask.shape if targets else None, scale=kw.get("depth_scale"))
        k = as_intrinsics(kw["intrinsics"])
        for t in targets:
            pts = backproject(depth, k, t.mask)
            if len(pts):
                t.centroid_3d = tuple(float(v) for v in robust_centroid(pts))

    def _predict(self, prev: np.ndarray, grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The previous mask moved by the LK flow of its features (bool [H, W])."""
        m8 = mask.astype(np.uint8)
        x, y, w, h = cv2.boundingRect(m8)
        if w == 0 or h == 0:
            return mask
        pad = 24
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(mask.shape[1], x + w + pad), min(mask.shape[0], y + h + pad)
        region = cv2.dilate(m8[y0:y1, x0:x1], np.ones((7, 7), np.uint8))
        pts = cv2.goodFeaturesToTrack(prev[y0:y1, x0:x1], self.max_features, 0.01, 5, mask=region)
        if pts is None or len(pts) < 4:
            return mask
        pts = pts + np.array([[x0, y0]], np.float32)
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, pts, None, winSize=(21, 21), maxLevel=3)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, prev, nxt, None, winSize=(21, 21), maxLevel=3)
        ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) < 1.0)
        if ok.sum() < 4:
            return mask
        a, b = pts[ok, 0], nxt[ok, 0]
        d = np.median(b - a, axis=0)
        m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
        if ok.sum() >= 8:
            aff, inl = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=1.5)
            if aff is not None and inl is not None and inl.mean() > 0.6 and 0.8 < np.hypot(aff[0, 0], aff[0, 1]) < 1.25:
                m = aff.astype(np.float32)
        warped = cv2.warpAffine(m8, m, (mask.shape[1], mask.shape[0]), flags=cv2.INTER_NEAREST)
        return warped.astype(bool)

    def _refine(self, hsv: np.ndarray, pred: np.ndarray, t: TrackedTarget) -> tuple[np.ndarray, float]:
        """The component of the appearance back-projection that overlaps the prediction most."""
        p8 = pred.astype(np.uint8)
        x, y, w, h = cv2.boundingRect(p8)
        if w == 0 or h == 0:
            return pred, 0.0
        pad = max(8, int(0.15 * max(w, h)))
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(pred.shape[1], x + w + pad), min(pred.shape[0], y + h + pad)
        roi = np.ascontiguousarray(hsv[y0:y1, x0:x1])
        prob = cv2.calcBackProject([roi], [0, 1], t._ratio, [0, 180, 0, 256], 1)
        fg = (prob > 127).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        n, lab = cv2.connectedComponents(fg, connectivity=8)
        if n <= 1:
            return pred, 0.0
        overlap = np.bincount(lab[p8[y0:y1, x0:x1] > 0], minlength=n)
        overlap[0] = 0
        k = int(np.argmax(overlap))
        if overlap[k] == 0:
            return pred, 0.0
        out = np.zeros_like(pred)
        out[y0:y1, x0:x1] = lab == k
        return out, self._similarity(self._raw_hist(hsv, out), t._fg)

    # ---- appearance ------------------------------------------------------------------------

    @staticmethod
    def _raw_hist(hsv: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Normalised hue-saturation histogram (float32 [30, 16], sums to 1) of the masked pixels."""
        h = cv2.calcHist([hsv], [0, 1], mask.astype(np.uint8), list(_HIST_BINS), [0, 180, 0, 256])
        s = float(h.sum())
        return h / s if s > 0 else h

    def _model(self, hsv: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ratio, fg): the target-vs-surroundings ratio histogram scaled to 0..255 (for
        back-projection) and the target's own histogram (for similarity), float32 [30, 16] each."""
        fg = self._raw_hist(hsv, mask)
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool) & ~mask
        bg = self._raw_hist(hsv, ring)
        ratio = fg / (fg + bg + 1e-6)
        ratio[fg < 1e-3] = 0.0
        return (ratio * 255).astype(np.float32), fg.astype(np.float32)

    @staticmethod
    def _similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
        """Bhattacharyya similarity (1 = same distribution) of two normalised histograms."""
        if a is None or b is None:
            return 0.0
        return float(max(0.0, 1.0 - cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA)))

    def _adapt_model(self, t: TrackedTarget, hsv: np.ndarray) -> None:
        ratio, fg = self._model(hsv, t.mask)
        t._ratio = ((1 - self.adapt) * t._ratio + self.adapt * ratio).astype(np.float32)
        t._fg = ((1 - self.adapt) * t._fg + self.adapt * fg).astype(np.float32)
