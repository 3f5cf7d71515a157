"""Distillation exports of a data engine output: COCO instance segmentation and YOLO-seg.

Both read ``annotations.json`` (one class-agnostic ``object`` instance per region) and the images
under the output's ``images_dir``. Each export is built in a temporary folder next to its target and
then renamed into place, so an interrupted export never leaves a half-written dataset under the
final name.

* COCO (``<dest>/annotations/instances.json`` + ``<dest>/images/``): segmentation as RLE (exact, the
  default) or polygons (holes filled, as COCO polygons cannot carry them).
* YOLO-seg (``<dest>/images/{train,val}``, ``<dest>/labels/{train,val}/*.txt``, ``data.yaml``): one
  line per instance, ``class x1 y1 x2 y2 ...`` normalised to [0, 1]. YOLO-seg allows one polygon per
  instance, so the parts and holes of a mask are joined into one ring by zero-width bridges (each
  bridge is walked there and back, so it encloses nothing): rasterised with the even-odd rule the
  ring gives the mask back, holes included. The train/val split is a hash of the file name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

import gear_edge.masks as gm
from gear_edge.data_engine.engine import ANNOTATIONS, check_complete
from gear_edge.data_engine.journal import fsync_dir, share_dir
from gear_edge.errors import InputError


def load_output(out_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> tuple[dict[str, Any], Path]:
    """(COCO dict, images directory) of a finished data engine output."""
    out = Path(out_dir)
    check_complete(out)
    try:
        coco = json.loads((out / ANNOTATIONS).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{out / ANNOTATIONS} is unreadable: {exc}") from None
    img_dir = Path(images_dir) if images_dir is not None else Path(str((coco.get("info") or {}).get("images_dir") or ""))
    if not str(img_dir) or not img_dir.is_dir():
        raise InputError(f"the images of {out} are not at {img_dir or '(unknown)'}; pass the images directory")
    return coco, img_dir


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not src.is_file():
        raise InputError(f"image {src} (listed in the annotations) does not exist")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _build_dir(dest: Path, build: Callable[[Path], None]) -> Path:
    """Runs ``build(tmp)`` then swaps ``tmp`` in as ``dest`` (the old one is removed after)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.build-"))
    try:
        share_dir(tmp)
        build(tmp)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
            os.rmdir(old)
            os.replace(dest, old)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def export_coco(out_dir: str | os.PathLike, dest: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
                segmentation: str = "rle") -> Path:
    """COCO instance segmentation dataset at ``dest``; returns the path of ``instances.json``."""
    if segmentation not in ("rle", "polygon"):
        raise InputError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    coco, img_dir = load_output(out_dir, images_dir)

    def build(tmp: Path) -> None:
        anns = []
        for a in coco["annotations"]:
            a = {k: v for k, v in a.items() if k in ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")}
            if segmentation == "polygon":
                a["segmentation"] = gm.to_polygons(a["segmentation"])
            anns.append(a)
        for im in coco["images"]:
            _place(img_dir / im["file_name"], tmp / "images" / im["file_name"])
        out = {"info": coco.get("info", {}), "licenses": [], "images": coco["images"], "annotations": anns,
               "categories": coco["categories"]}
        (tmp / "annotations").mkdir(parents=True, exist_ok=True)
        (tmp / "annotations" / "instances.json").write_text(json.dumps(out, separators=(",", ":")))

    return _build_dir(Path(dest), build) / "annotations" / "instances.json"


# ---- one polygon per mask (YOLO-seg) -------------------------------------------------------------------

def _ring(c: np.ndarray, x0: int, y0: int) -> np.ndarray:
    v = c.reshape(-1, 2).astype(np.int64)
    v = (v + (v & 1)) // 2 + np.array([x0, y0])  # 2x up-sampled contour -> original pixel corners
    keep = np.ones(len(v), dtype=bool)
    keep[1:] = np.any(v[1:] != v[:-1], axis=1)
    v = v[keep]
    if len(v) > 1 and np.all(v[0] == v[-1]):
        v = v[:-1]
    return v


def _splice(ring: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``ring`` with ``other`` inserted through a zero-width bridge between their closest vertices."""
    d = ((ring[:, None, :] - other[None, :, :]) ** 2).sum(-1)
    a, b = np.unravel_index(int(np.argmin(d)), d.shape)
    loop = np.concatenate([other[b:], other[: b + 1]])  # closes back on other[b]
    return np.concatenate([ring[: a + 1], loop, ring[a:]])


def mask_to_polygon(mask: np.ndarray) -> list[float]:
    """One flat polygon ``[x0, y0, x1, y1, ...]`` (pixel corners) for a bool mask: all parts and holes
    joined by zero-width bridges; [] for an empty mask."""
    import cv2

    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return []
    x0, y0 = int(cols[0]), int(rows[0])
    sub = mask[y0 : int(rows[-1]) + 1, x0 : int(cols[-1]) + 1].astype(np.uint8)
    up = np.repeat(np.repeat(sub, 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    hier = hierarchy[0]
    parts: list[np.ndarray] = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue  # a hole: spliced into its outer contour below
        ring = _ring(c, x0, y0)
        child = hier[i][2]
        while child != -1:
            hole = _ring(contours[child], x0, y0)
            if len(hole) >= 1 and len(ring) >= 1:
                ring = _splice(ring, hole)
            child = hier[child][0]
        parts.append(ring)
    parts.sort(key=len, reverse=True)
    ring = parts[0]
    for p in parts[1:]:
        ring = _splice(ring, p)
    if len(ring) < 3:  # a one-pixel-wide sliver collapses to a line: use its pixel boxes
        ys, xs = np.nonzero(mask)
        x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        ring = np.array([[x_lo, y_lo], [x_hi, y_lo], [x_hi, y_hi], [x_lo, y_hi]])
    return ring.astype(np.float64).ravel().tolist()


def _split(file_name: str, val_fraction: float) -> str:
    h = int(hashlib.sha256(file_name.encode()).hexdigest()[:8], 16) / 2**32
    return "val" if h < val_fraction else "train"


def _flat(image_id: int, file_name: str) -> str:
    """A unique flat name (``x.png`` and ``x.jpg`` would share a label file otherwise)."""
    return f"{int(image_id):06d}_" + file_name.replace("/", "__")


def export_yolo(out_dir: str | os.PathLike, dest: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
                val_fraction: float = 0.2) -> Path:
    """YOLO-seg dataset at ``dest``; returns the path of its ``data.yaml``."""
    if not (0.0 <= val_fraction < 1.0):
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    coco, img_dir = load_output(out_dir, images_dir)
    names = [im["file_name"] for im in coco["images"]]
    split = {n: _split(n, val_fraction) for n in names}
    if val_fraction > 0 and len(names) >= 2 and "val" not in split.values():
        # tiny datasets: the image whose hash is lowest goes to val, so both splits exist
        split[min(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())] = "val"
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    cat_index = {c["id"]: k for k, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}

    def build(tmp: Path) -> None:
        for im in coco["images"]:
            s = split[im["file_name"]]
            flat = _flat(im["id"], im["file_name"])
            _place(img_dir / im["file_name"], tmp / "images" / s / flat)
            h, w = int(im["height"]), int(im["width"])
            lines = []
            for a in by_image.get(im["id"], []):
                poly = mask_to_polygon(gm.decode(a["segmentation"]))
                if not poly:
                    continue
                xy = np.asarray(poly).reshape(-1, 2) / np.array([w, h], dtype=np.float64)
                coords = " ".join(f"{v:.6f}" for v in np.clip(xy, 0.0, 1.0).ravel())
                lines.append(f"{cat_index[a['category_id']]} {coords}")
            label = tmp / "labels" / s / (Path(flat).stem + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines))
        for s in ("train", "val"):
            (tmp / "images" / s).mkdir(parents=True, exist_ok=True)
            (tmp / "labels" / s).mkdir(parents=True, exist_ok=True)
        names_yaml = "".join(f"  {cat_index[c['id']]}: {json.dumps(c['name'])}\n" for c in coco["categories"])
        (tmp / "data.yaml").write_text(
            f"# YOLO-seg dataset exported by gear_edge data engine from {json.dumps(str(Path(out_dir).resolve()))}\n"
            f"path: {json.dumps(str(Path(dest).resolve()))}\ntrain: images/train\nval: images/val\nnames:\n{names_yaml}")

    return _build_dir(Path(dest), build) / "data.yaml"
