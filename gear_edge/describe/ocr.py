"""Text read inside regions: PP-OCR (detect → orient → recognise) once per image, words assigned by mask overlap.

Models: PP-OCRv4 mobile detector (DB) and recogniser (SVTR-LCNet + CTC) and the PP-OCR v2.0 direction
classifier, the ONNX files shipped in the PyPI wheel ``rapidocr-onnxruntime==1.4.4`` (manifests
``models/ppocr_v4_det.toml``, ``ppocr_v4_rec.toml``, ``ppocr_mobile_v2_cls.toml``; each file is
size + sha256 checked before use). Only the model files are taken from that package: the pre- and
post-processing are implemented here and the models run on any :class:`gear_edge.engines.Engine`
(ONNX Runtime CPU / CUDA / TensorRT), so rapidocr's own Python code and its extra dependencies
(pyclipper, shapely, PyYAML, opencv-python, ...) are not needed at runtime.

Pipeline of :meth:`OcrReader.read` (image: uint8 RGB ``[H, W, 3]``):

1. detection at PP-OCR's resolution rule: an image whose shorter side is under ``det_min_side`` (736,
   rapidocr's default) is scaled up to it, so a 640x480 camera frame is detected at 992x736 (small
   printed words are found at that scale and missed at 640x480); otherwise the longer side is scaled
   down to ``det_side``; never above ``det_max_side`` on the longer side; both sides rounded to multiples of 32:
   text probability map → threshold 0.3 → 2×2 dilation → contours → min-area rectangles, kept when the
   mean probability inside is ≥ ``box_thresh``, then grown by ``area·unclip_ratio / perimeter`` pixels
   per side (DB's unclip of a rectangle) and mapped back to image pixels;
2. each quad is cut out of the full-resolution image with a perspective warp (tall crops turned 90°),
   the classifier turns upside-down lines (p(180°) > 0.9) back;
3. the recogniser reads each line at height 48; greedy CTC decoding; confidence = mean of the kept
   characters' probabilities; lines under ``min_confidence`` are dropped.

Results are text *lines* (PP-OCR detects lines; a line of several words is one :class:`TextBox`), in
reading order. :func:`assign_text` gives each line to the smallest region whose mask holds at least
``min_overlap`` of the line's quad, so a label that is its own region gets the text and the box it is
stuck on does not; without a label region the box gets it.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.engines.base import Engine
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import Manifest

PACKAGE = "rapidocr_onnxruntime"
INSTALL_HINT = "pip install --no-deps rapidocr-onnxruntime==1.4.4"
MANIFESTS = {"det": "ppocr_v4_det", "rec": "ppocr_v4_rec", "cls": "ppocr_mobile_v2_cls"}

_MEAN_STD = 0.5  # all three models take (x / 255 - 0.5) / 0.5 on BGR
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
CLS_SHAPE = (48, 192)  # (height, width)
CLS_THRESH = 0.9
BATCH = 6  # line crops per recogniser / classifier call (sorted by aspect ratio to limit padding)


@dataclass(frozen=True, eq=False)
class TextBox:
    """One text line read in an image.

    ``quad``: float32 ``[4, 2]`` corners (x, y) in image pixels, clockwise from top-left;
    ``bbox``: its XYWH box (float pixels); ``confidence``: mean character probability in [0, 1].
    """

    text: str
    confidence: float
    quad: np.ndarray
    bbox: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": float(self.confidence),
                "quad": [[float(x), float(y)] for x, y in self.quad], "bbox": [float(v) for v in self.bbox]}


# ---- model files ---------------------------------------------------------------------------------


def default_model_files(
    use_cls: bool = True, manifests: Mapping[str, Manifest] | None = None
) -> dict[str, tuple[Path, Manifest]]:
    """``{"det"|"rec"|"cls": (path, manifest)}`` of the installed PP-OCR files, each verified.

    ``manifests`` overrides the shipped ones per role. A package that is not installed raises
    :class:`MissingDependencyError` with the pip command; a wrong or tampered file raises InputError
    naming it.
    """
    roles = ("det", "rec", "cls") if use_cls else ("det", "rec")
    out: dict[str, tuple[Path, Manifest]] = {}
    for role in roles:
        m = (manifests or {}).get(role) or Manifest.named(MANIFESTS[role])
        if m.package and importlib.util.find_spec(m.package) is None:
            raise MissingDependencyError(
                f"OCR needs the PP-OCR model files from the {m.package!r} package ({m.source}): {INSTALL_HINT}"
            )
        out[role] = (m.verify(m.locate()), m)
    return out


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file (ModelProto field 14), read straight from the protobuf bytes.

    Only the top-level fields are walked (the graph is skipped by its length), so this costs one read.
    """
    data = Path(path).read_bytes()
    props: dict[str, str] = {}
    pos = 0
    try:
        while pos < len(data):
            tag, pos = _varint(data, pos)
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                n, pos = _varint(data, pos)
                if field == 14:
                    key, value = _string_pair(data[pos : pos + n])
                    props[key] = value
                pos += n
            else:
                raise ValueError(f"wire type {wire}")
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None
    return props


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _string_pair(msg: bytes) -> tuple[str, str]:
    """StringStringEntryProto: key = 1, value = 2."""
    out = {1: "", 2: ""}
    pos = 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        if tag & 7 != 2:
            raise ValueError("metadata entry with a non-string field")
        n, pos = _varint(msg, pos)
        out[tag >> 3] = msg[pos : pos + n].decode("utf-8")
        pos += n
    return out[1], out[2]


def charset_from_model(path: str | os.PathLike, expected: int | None = None) -> list[str]:
    """The recogniser's character list (metadata key ``character``, one per line)."""
    meta = read_onnx_metadata(path)
    if "character" not in meta:
        raise InputError(f"{path}: the model has no 'character' metadata; pass charset= explicitly")
    chars = meta["character"].splitlines()
    if expected is not None and len(chars) != expected:
        raise InputError(f"{path}: {len(chars)} characters in its metadata, the manifest says {expected}")
    return chars


# ---- the reader ----------------------------------------------------------------------------------


class OcrReader:
    """PP-OCR text reading: ``read(image) -> list[TextBox]`` (see the module docstring for the steps).

    ``threads``: intra-op threads per model (None = ONNX Runtime's choice). ``min_confidence``: lines
    read with a lower mean character probability are dropped; a line of one character needs
    ``min_confidence_single`` (a ring's outline reads as "O" at 0.6, a square frame as "口" at 0.7-0.92;
    a printed letter reads at > 0.95). ``det_min_side``: an image whose shorter
    side is under it is scaled up to it for detection (pixels; 736 is rapidocr's default, None: never
    scale up). ``det_side``: otherwise the longer side of the detector input (pixels; 960 is PP-OCR's
    default, larger finds smaller text at quadratic cost). ``det_max_side``: the upscaled longer side
    never exceeds it (pixels).
    ``engines``: ``{"det", "rec"[, "cls"]}`` Engines to use instead of the installed ONNX files
    (then ``charset`` is required); ``use_cls=False`` skips the direction classifier.
    ``engine_factory(role, path, manifest) -> Engine`` builds the installed files' engines (default: ONNX
    Runtime on ``providers`` with ``threads`` threads; :mod:`gear_edge.assemble` passes one that
    follows ``[engines]`` / ``[engines.ocr]``).
    """

    def __init__(
        self,
        threads: int | None = None,
        min_confidence: float = 0.5,
        *,
        min_confidence_single: float = 0.95,
        det_side: int = 960,
        det_min_side: int | None = 736,
        det_max_side: int = 2000,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        use_cls: bool = True,
        providers: Sequence[str] = ("cpu",),
        engines: Mapping[str, Engine] | None = None,
        charset: Sequence[str] | None = None,
        manifests: Mapping[str, Manifest] | None = None,
        engine_factory: Callable[[str, Path, Manifest], Engine] | None = None,
    ) -> None:
        if not (isinstance(min_confidence, (int, float)) and 0.0 <= min_confidence <= 1.0):
            raise InputError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
        if not (isinstance(min_confidence_single, (int, float)) and 0.0 <= min_confidence_single <= 1.0):
            raise InputError(f"min_confidence_single must be a number in [0, 1], got {min_confidence_single!r}")
        if not (isinstance(det_side, int) and det_side >= 32):
            raise InputError(f"det_side must be an int >= 32 (pixels), got {det_side!r}")
        if det_min_side is not None and not (isinstance(det_min_side, int) and det_min_side >= 32):
            raise InputError(f"det_min_side must be None or an int >= 32 (pixels), got {det_min_side!r}")
        if not (isinstance(det_max_side, int) and det_max_side >= det_side):
            raise InputError(f"det_max_side must be an int >= det_side ({det_side}) pixels, got {det_max_side!r}")
        if not 0.0 < box_thresh < 1.0:
            raise InputError(f"box_thresh must be in (0, 1), got {box_thresh!r}")
        if not unclip_ratio > 0:
            raise InputError(f"unclip_ratio must be > 0, got {unclip_ratio!r}")
        if engines is None:
            if engine_factory is None:
                from gear_edge.engines.onnx import OnnxEngine

                def engine_factory(role: str, path: Path, m: Manifest) -> Engine:
                    return OnnxEngine(path, threads=threads, providers=providers, manifest=m)

            files = default_model_files(use_cls, manifests)
            engines = {role: engine_factory(role, path, m) for role, (path, m) in files.items()}
            if charset is None:
                rec_path, rec_m = files["rec"]
                size = rec_m.extra.get("charset_size")
                charset = charset_from_model(rec_path, None if size is None else int(size))
        elif charset is None:
            raise InputError("engines= given without charset=: pass the recogniser's character list")
        missing = [r for r in (("det", "rec", "cls") if use_cls else ("det", "rec")) if r not in engines]
        if missing:
            raise InputError(f"engines lacks {missing}; give Engines for 'det', 'rec' (and 'cls' unless use_cls=False)")
        self.det, self.rec = engines["det"], engines["rec"]
        self.cls = engines["cls"] if use_cls else None
        for role, eng in (("det", self.det), ("rec", self.rec), ("cls", self.cls)):
            if eng is not None and (len(eng.inputs) != 1 or len(eng.outputs) != 1):
                raise InputError(f"{eng.source}: the OCR {role} engine must have one input and one output, "
                                 f"has {list(eng.inputs)} -> {list(eng.outputs)}")
        # CTC classes: blank, the characters, then a space
        self.classes = ["", *[str(c) for c in charset], " "]
        n_out = list(self.rec.outputs.values())[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.classes):
            raise InputError(f"{self.rec.source}: recogniser has {n_out} classes but the charset gives "
                             f"{len(self.classes)} (blank + {len(charset)} characters + space)")
        self.min_confidence = float(min_confidence)
        self.min_confidence_single = max(float(min_confidence), float(min_confidence_single))
        self.det_side = det_side
        self.det_min_side = det_min_side
        self.det_max_side = det_max_side
        self.box_thresh = float(box_thresh)
        self.unclip_ratio = float(unclip_ratio)
        self.bin_thresh = 0.3
        self.max_candidates = 1000

    # -- public -------------------------------------------------------------------------------------

    def read(self, image: np.ndarray) -> list[TextBox]:
        """Text lines in ``image`` (uint8 RGB ``[H, W, 3]``), in reading order (top-to-bottom, left-to-right)."""
        bgr = _check_image(image)[:, :, ::-1]
        bgr = np.ascontiguousarray(bgr)
        quads = self._detect(bgr)
        if not quads:
            return []
        crops = [_crop_quad(bgr, q) for q in quads]
        if self.cls is not None:
            crops = self._orient(crops)
        read = self._recognise(crops)
        out = []
        for quad, (text, conf) in zip(quads, read):
            text = text.strip()
            if text and conf >= (self.min_confidence_single if len(text) == 1 else self.min_confidence):
                out.append(TextBox(text, conf, quad, _bbox(quad)))
        return out

    def _detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        """Text-line quads (float32 ``[4, 2]``, image pixels) in a BGR uint8 image, in reading order."""
        h, w = bgr.shape[:2]
        if self.det_min_side is not None and min(h, w) < self.det_min_side:
            scale = min(self.det_min_side / min(h, w), self.det_max_side / max(h, w))
        else:
            scale = min(1.0, self.det_side / max(h, w))
        dh, dw = (max(32, int(round(int(s * scale) / 32)) * 32) for s in (h, w))
        resized = cv2.resize(bgr, (dw, dh), interpolation=cv2.INTER_LINEAR) if (dh, dw) != (h, w) else bgr
        x = _normalise(resized)[None]
        name_in, name_out = next(iter(self.det.inputs)), next(iter(self.det.outputs))
        prob = self.det.run({name_in: x}, [name_out])[name_out][0, 0]
        quads = self._boxes_from_map(prob, w / dw, h / dh, w, h)
        return [quads[i] for i in reading_order([_bbox(q) for q in quads])]

    # -- steps ----------------------------------------------------------------------------------------

    def _boxes_from_map(self, prob: np.ndarray, sx: float, sy: float, w: int, h: int) -> list[np.ndarray]:
        bitmap = cv2.dilate((prob > self.bin_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads = []
        for contour in contours[: self.max_candidates]:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < 3:
                continue
            box = cv2.boxPoints(((cx, cy), (rw, rh), angle))
            if _mean_inside(prob, box) < self.box_thresh:
                continue
            # DB unclip of a rectangle: offsetting it by d (round joins) and taking the min-area
            # rectangle again grows each side by d
            d = rw * rh * self.unclip_ratio / (2.0 * (rw + rh))
            rw, rh = rw + 2 * d, rh + 2 * d
            if min(rw, rh) < 5:
                continue
            quad = _order_clockwise(cv2.boxPoints(((cx, cy), (rw, rh), angle)))
            quad[:, 0] = np.clip(quad[:, 0] * sx, 0, w)
            quad[:, 1] = np.clip(quad[:, 1] * sy, 0, h)
            if np.linalg.norm(quad[0] - quad[1]) <= 3 or np.linalg.norm(quad[0] - quad[3]) <= 3:
                continue
            quads.append(quad.astype(np.float32))
        return quads

    def _orient(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Turns lines the classifier finds upside down (p(180°) > 0.9) by 180°."""
        assert self.cls is not None
        ch, cw = CLS_SHAPE
        name_in, name_out = next(iter(self.cls.inputs)), next(iter(self.cls.outputs))
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops], kind="stable")
        out = list(crops)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            batch = np.stack([_resize_pad(crops[i], ch, cw) for i in idx])
            probs = self.cls.run({name_in: batch}, [name_out])[name_out]
            for i, p in zip(idx, probs):
                if int(np.argmax(p)) == 1 and float(p[1]) > CLS_THRESH:
                    out[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return out

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        name_in, name_out = next(iter(self.rec.inputs)), next(iter(self.rec.outputs))
        ratios = [c.shape[1] / c.shape[0] for c in crops]
        order = np.argsort(ratios, kind="stable")
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            width = max(REC_MIN_WIDTH, int(math.ceil(REC_HEIGHT * max(ratios[i] for i in idx))))
            batch = np.stack([_resize_pad(crops[i], REC_HEIGHT, width) for i in idx])
            probs = self.rec.run({name_in: batch}, [name_out])[name_out]
            for i, p in zip(idx, probs):
                out[i] = self._ctc_decode(p)
        return out

    def _ctc_decode(self, probs: np.ndarray) -> tuple[str, float]:
        """Greedy CTC over ``[columns, classes]``: collapse repeats, drop blanks; confidence = mean kept prob."""
        best = probs.argmax(axis=1)
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]
        if not keep.any():
            return "", 0.0
        text = "".join(self.classes[k] for k in best[keep])
        return text, float(probs.max(axis=1)[keep].mean())


# ---- assignment to regions -----------------------------------------------------------------------


def assign_text(boxes: Sequence[TextBox], rles: Sequence[Mapping], min_overlap: float = 0.5) -> list[list[str]]:
    """Per region, the texts whose quad area lies at least ``min_overlap`` inside the region's mask.

    Each text goes to one region only: the smallest (by mask area) of those that hold enough of it.
    Texts of a region are in reading order (top-to-bottom, left-to-right). ``rles``: COCO RLEs of one
    image size; ``boxes``: :meth:`OcrReader.read` results on that image.
    """
    if not (isinstance(min_overlap, (int, float)) and 0.0 < min_overlap <= 1.0):
        raise InputError(f"min_overlap must be a number in (0, 1], got {min_overlap!r}")
    out: list[list[str]] = [[] for _ in rles]
    if not rles or not boxes:
        return out
    try:
        sizes = {tuple(int(v) for v in r["size"]) for r in rles}
    except (TypeError, KeyError, IndexError, ValueError):
        raise InputError("rles must be COCO RLE dicts {'size': [h, w], 'counts': ...}") from None
    if len(sizes) != 1:
        raise InputError(f"rles must all have one image size, got sizes {sorted(sizes)}")
    h, w = sizes.pop()
    polys = []
    for i, b in enumerate(boxes):
        q = np.asarray(b.quad, dtype=np.float64)
        if q.shape != (4, 2) or not np.isfinite(q).all():
            raise InputError(f"boxes[{i}].quad must be 4 finite (x, y) corners, got shape {q.shape}")
        polys.append([q.reshape(-1).tolist()])
    word_rles = gm.from_polygons(polys, h, w)
    word_area = gm.area(word_rles)
    region_area = gm.area(list(rles))
    inside = gm.iou(word_rles, list(rles), iscrowd=[True] * len(rles))  # |word ∩ region| / |word|
    owners: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        if word_area[i] == 0:  # a degenerate quad covers no pixel
            continue
        ok = np.flatnonzero(inside[i] >= min_overlap - 1e-9)
        if ok.size:
            j = int(ok[np.argmin(region_area[ok])])  # smallest region holding enough of it
            owners.setdefault(j, []).append(i)
    for j, idx in owners.items():
        out[j] = [boxes[idx[k]].text for k in reading_order([boxes[i].bbox for i in idx])]
    return out


def reading_order(bboxes: Sequence[Sequence[float]]) -> list[int]:
    """Indices of XYWH boxes top-to-bottom, then left-to-right within a line.

    A box joins the current line when its vertical centre lies within half the line's first box height.
    """
    if not bboxes:
        return []
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    cy = b[:, 1] + b[:, 3] / 2
    order = list(np.argsort(cy, kind="stable"))
    lines: list[list[int]] = []
    for i in order:
        if lines and abs(cy[i] - cy[lines[-1][0]]) <= max(1.0, b[lines[-1][0], 3] / 2):
            lines[-1].append(int(i))
        else:
            lines.append([int(i)])
    return [i for line in lines for i in sorted(line, key=lambda k: (b[k, 0], cy[k]))]


# ---- helpers -------------------------------------------------------------------------------------


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (uint8 H x W x 3 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 RGB, got dtype {image.dtype}; convert with (x * 255).astype(np.uint8) "
                         "if it is float in [0, 1]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be H x W x 3 (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    return image


def _normalise(bgr: np.ndarray) -> np.ndarray:
    """uint8 ``[h, w, 3]`` → float32 ``[3, h, w]`` in [-1, 1]."""
    x = bgr.astype(np.float32) * (1.0 / (255.0 * _MEAN_STD)) - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _resize_pad(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to ``height`` keeping the aspect (at most ``width`` wide), normalise, zero-pad on the right."""
    h, w = crop.shape[:2]
    rw = min(width, int(math.ceil(height * w / h)))
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :rw] = _normalise(cv2.resize(crop, (rw, height), interpolation=cv2.INTER_LINEAR))
    return out


def _mean_inside(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean of ``prob`` inside the polygon ``box`` (its bounding patch only)."""
    h, w = prob.shape
    x0, y0 = (int(np.clip(np.floor(box[:, k].min()), 0, lim - 1)) for k, lim in ((0, w), (1, h)))
    x1, y1 = (int(np.clip(np.ceil(box[:, k].max()), 0, lim - 1)) for k, lim in ((0, w), (1, h)))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(box - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _order_clockwise(pts: np.ndarray) -> np.ndarray:
    """Four points → [top-left, top-right, bottom-right, bottom-left] (image coordinates, y down)."""
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float64)


def _bbox(quad: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def _crop_quad(bgr: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad warped to an upright rectangle (cubic, edges replicated); tall crops turned 90° anticlockwise."""
    cw = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    ch = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    cw, ch = max(cw, 1), max(ch, 1)
    dst = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop = cv2.warpPerspective(bgr, m, (cw, ch), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if ch / cw >= 1.5:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop
