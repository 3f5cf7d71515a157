"""Evaluation datasets as lists of :class:`Sample` (image file, query, target mask loader, class).

* :func:`read_reasonseg` — ReasonSeg layout (LISA): ``<name>.jpg`` + ``<name>.json`` per image, the JSON
  holding ``shapes`` (``label``, ``points`` polygons; label "ignore" → 255, "flag" skipped) and ``text``
  (query list) + ``is_sentence``. The target is drawn exactly as LISA's ``get_mask_from_json``
  (``cv2.polylines`` + ``cv2.fillPoly`` on int32 points, larger shapes first). Like LISA's
  validation, only the first query of an image is used unless ``all_queries``. Class: "sentence"
  (``is_sentence`` true) or "phrase".
* :func:`read_refcoco` — RefCOCO/+/g layout (refer API): COCO ``instances.json`` + refs (a JSON list,
  or the original ``refs(unc).p`` pickle, read with an unpickler that admits only plain containers)
  + the COCO image folder; one sample per sentence of every ref of ``split``. ``ann_id`` may be a
  list (gRefCOCO; -1 / empty = no target). The target is the union of the annotations' masks
  (polygons rasterised as pycocotools' ``frPyObjects``). Class: "single", "multi" or "none".
* :func:`read_engine` — our data engine output (``annotations.json`` + ``pairs.jsonl``, checked
  complete against ``summary.json``); the target is the union of the pair's target annotations
  (empty for "absent" pairs); class: the taxonomy class.

Every error names the file and the field.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gear_edge.errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Shape = tuple[int, int]


@dataclass
class Sample:
    """One (image, query, target) triple. ``target(shape)`` gives the uint8 (0/1/255) mask for an
    image of ``shape`` (h, w) — the loaders check it matches what the annotation says."""

    id: str
    image_path: Path
    query: str
    cls: str
    target: Callable[[Shape], np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None


# ---- ReasonSeg ------------------------------------------------------------------------------------------

def reasonseg_mask(shapes: list[dict], shape: Shape, source: str = "annotation") -> np.ndarray:
    """LISA's ``get_mask_from_json`` target: uint8 (h, w) with 1 = target, 255 = ignore."""
    import cv2

    h, w = shape
    valid, areas = [], []
    for k, s in enumerate(shapes):
        if not isinstance(s, dict) or "label" not in s or "points" not in s:
            raise InputError(f"{source}: shapes[{k}] needs 'label' and 'points'")
        if str(s["label"]).lower() == "flag":
            continue
        try:
            pts = np.array([s["points"]], dtype=np.int32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: shapes[{k}].points must be a list of [x, y] numbers ({exc})") from None
        if pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[1] < 1:
            raise InputError(f"{source}: shapes[{k}].points must be a list of [x, y] pairs, got shape {pts.shape[1:]}")
        tmp = np.zeros((h, w), dtype=np.uint8)
        cv2.polylines(tmp, pts, True, 1, 1)
        cv2.fillPoly(tmp, pts, 1)
        areas.append(int(tmp.sum()))
        valid.append((s, pts))
    mask = np.zeros((h, w), dtype=np.uint8)
    for idx in np.argsort(areas)[::-1]:
        s, pts = valid[int(idx)]
        value = 255 if "ignore" in str(s["label"]).lower() else 1
        cv2.polylines(mask, pts, True, value, 1)
        cv2.fillPoly(mask, pts, value)
    return mask


def _image_for(json_path: Path) -> Path:
    for ext in IMAGE_EXTS:
        for cand in (json_path.with_suffix(ext), json_path.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    raise InputError(f"{json_path}: no image next to it ({json_path.stem}{{{','.join(IMAGE_EXTS)}}})")


def read_reasonseg(folder: str | os.PathLike, *, all_queries: bool = False) -> list[Sample]:
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"ReasonSeg folder {root} does not exist")
    files = sorted(root.glob("*.json"))
    if not files:
        raise InputError(f"ReasonSeg folder {root} has no .json annotation files")
    samples: list[Sample] = []
    for jp in files:
        anno = _load_json(jp)
        if not isinstance(anno, dict):
            raise InputError(f"{jp}: expected a JSON object with 'shapes' and 'text'")
        for key in ("shapes", "text"):
            if key not in anno:
                raise InputError(f"{jp}: missing field '{key}'")
        shapes, texts = anno["shapes"], anno["text"]
        if not isinstance(shapes, list):
            raise InputError(f"{jp}: 'shapes' must be a list")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError(f"{jp}: 'text' must be a non-empty list of non-empty strings")
        img = _image_for(jp)
        cls = "sentence" if anno.get("is_sentence") else "phrase"

        def target(shape: Shape, shapes=shapes, src=str(jp)) -> np.ndarray:
            return reasonseg_mask(shapes, shape, src)

        for q, text in enumerate(texts if all_queries else texts[:1]):
            samples.append(Sample(f"{jp.stem}:{q}", img, text.strip(), cls, target, {"annotation": str(jp)}))
    return samples


# ---- RefCOCO ---------------------------------------------------------------------------------------------

class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only builtin containers and scalars (refs files hold nothing else); any class is refused."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise InputError(f"refs pickle references {module}.{name}; only plain lists/dicts/strings are accepted")


def load_refs(path: str | os.PathLike) -> list[dict[str, Any]]:
    p = Path(path)
    if p.suffix.lower() in (".p", ".pkl", ".pickle"):
        try:
            with open(p, "rb") as f:
                refs = _PlainUnpickler(f, encoding="latin1").load()
        except FileNotFoundError:
            raise InputError(f"refs file {p} does not exist") from None
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise InputError(f"refs file {p} is not a readable pickle: {exc}") from None
    else:
        refs = _load_json(p)
    if isinstance(refs, dict) and "refs" in refs:
        refs = refs["refs"]
    if not isinstance(refs, list):
        raise InputError(f"refs file {p} must hold a list of refs")
    return refs


def _ann_mask(ann: dict, h: int, w: int, src: str) -> np.ndarray:
    import gear_edge.masks as gm

    seg = ann.get("segmentation")
    if seg is None:
        raise InputError(f"{src}: annotation {ann.get('id')} has no 'segmentation'")
    try:
        if isinstance(seg, list):
            polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
            if not polys:
                return np.zeros((h, w), dtype=bool)
            return gm.decode(gm.from_polygons(polys, h, w))
        if isinstance(seg, dict):
            counts = seg.get("counts")
            if isinstance(counts, bytes):
                counts = counts.decode("ascii")
            m = gm.decode({"size": list(seg.get("size", [h, w])), "counts": counts})
            if m.shape != (h, w):
                raise InputError(f"{src}: annotation {ann.get('id')} RLE size {m.shape} differs from its image ({h}, {w})")
            return m
    except InputError as exc:
        raise InputError(f"{src}: annotation {ann.get('id')}: {exc}") from None
    raise InputError(f"{src}: annotation {ann.get('id')}: 'segmentation' must be polygons or an RLE dict")


def read_refcoco(instances: str | os.PathLike, refs: str | os.PathLike, images_dir: str | os.PathLike,
                 *, split: str | None = "val") -> list[Sample]:
    inst_path = Path(instances)
    coco = _load_json(inst_path)
    if not isinstance(coco, dict):
        raise InputError(f"{inst_path}: expected a COCO object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(coco.get(key), list):
            raise InputError(f"{inst_path}: missing list field '{key}'")
    try:
        images = {int(im["id"]): im for im in coco["images"]}
        anns = {int(a["id"]): a for a in coco["annotations"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{inst_path}: every image and annotation needs an integer 'id' ({exc!r})") from None
    img_dir = Path(images_dir)
    if not img_dir.is_dir():
        raise InputError(f"images directory {img_dir} does not exist")
    src = str(inst_path)
    samples: list[Sample] = []
    for k, ref in enumerate(load_refs(refs)):
        if not isinstance(ref, dict):
            raise InputError(f"{refs}: ref {k} is not an object")
        if split is not None and ref.get("split") != split:
            continue
        for key in ("image_id", "ann_id", "sentences"):
            if key not in ref:
                raise InputError(f"{refs}: ref {ref.get('ref_id', k)} lacks '{key}'")
        image = images.get(int(ref["image_id"]))
        if image is None:
            raise InputError(f"{refs}: ref {ref.get('ref_id', k)} names image_id {ref['image_id']} not in {inst_path}")
        ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        ids = [int(i) for i in ids if int(i) >= 0]
        missing = [i for i in ids if i not in anns]
        if missing:
            raise InputError(f"{refs}: ref {ref.get('ref_id', k)} names ann_id {missing} not in {inst_path}")
        try:
            h, w = int(image["height"]), int(image["width"])
            path = img_dir / image["file_name"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{inst_path}: image {image.get('id')} needs file_name, height, width ({exc!r})") from None
        cls = "none" if not ids else ("single" if len(ids) == 1 else "multi")

        def target(shape: Shape, ids=tuple(ids), h=h, w=w) -> np.ndarray:
            if tuple(shape) != (h, w):
                raise InputError(f"{src}: image is {tuple(shape)} but its annotation says ({h}, {w})")
            m = np.zeros((h, w), dtype=bool)
            for i in ids:
                m |= _ann_mask(anns[i], h, w, src)
            return m.astype(np.uint8)

        sentences = ref["sentences"]
        if not isinstance(sentences, list):
            raise InputError(f"{refs}: ref {ref.get('ref_id', k)}: 'sentences' must be a list")
        for j, s in enumerate(sentences):
            text = s.get("sent", s.get("raw")) if isinstance(s, dict) else s
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{refs}: ref {ref.get('ref_id', k)} sentence {j} has no 'sent' text")
            samples.append(Sample(f"{ref.get('ref_id', k)}:{j}", path, text.strip().lower(), cls, target,
                                  {"ref_id": ref.get("ref_id"), "ann_ids": ids}))
    if not samples:
        raise InputError(f"{refs}: no refs in split {split!r}")
    return samples


# ---- our data engine ---------------------------------------------------------------------------------------

def read_engine(out_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> list[Sample]:
    import gear_edge.masks as gm
    from gear_edge.data_engine.engine import PAIRS
    from gear_edge.data_engine.export import load_output

    out = Path(out_dir)
    coco, img_dir = load_output(out, images_dir)
    images = {im["id"]: im for im in coco["images"]}
    anns = {a["id"]: a for a in coco["annotations"]}
    samples: list[Sample] = []
    with open(out / PAIRS, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                p = json.loads(line)
                im = images[p["image_id"]]
                ids = [int(i) for i in p["target_ann_ids"]]
                query, cls = str(p["question"]), str(p["class"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{out / PAIRS} line {lineno}: malformed pair ({exc!r})") from None
            missing = [i for i in ids if i not in anns]
            if missing:
                raise InputError(f"{out / PAIRS} line {lineno}: target_ann_ids {missing} are not in annotations.json")
            h, w = int(im["height"]), int(im["width"])

            def target(shape: Shape, ids=tuple(ids), h=h, w=w, name=im["file_name"]) -> np.ndarray:
                if tuple(shape) != (h, w):
                    raise InputError(f"{name}: image is {tuple(shape)} but annotations.json says ({h}, {w})")
                if not ids:
                    return np.zeros((h, w), dtype=np.uint8)
                return gm.decode(gm.merge([anns[i]["segmentation"] for i in ids])).astype(np.uint8)

            samples.append(Sample(str(p.get("id", lineno)), img_dir / im["file_name"], query, cls, target,
                                  {"image_id": p["image_id"], "target_ann_ids": ids}))
    return samples
