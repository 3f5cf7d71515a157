"""Benchmark of the C++ mask core against its reference implementations, side by side.

* RLE ops (encode, decode, area, bbox, iou 64x64, merge) vs pycocotools on 64 masks of
  1080x1920 with realistic shapes (real photo segmentations and SAM-like blob masks);
* fused logit post-processing vs the numpy + cv2 + pycocotools path, 64 masks 256² → 1080x1920;
* batch region crops vs a cv2 loop, 64 regions at 224².

Ours runs with 1 and with 2 threads; the references are single-threaded. Ratios are
reference p50 / ours p50 (> 1: ours is faster). Writes JSON (machine info, p50/p90/p99 per op,
ratios, targets) and prints a table.

    python benchmarks/bench_masks.py --out results/bench_masks.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, time_side_by_side, write_json  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.crops import IMAGENET_MEAN, IMAGENET_STD, crop_regions  # noqa: E402

TARGETS = {  # minimum ratio vs reference: (1 thread, 2 threads)
    "encode": (1.0, 1.5),
    "decode": (1.0, 1.5),
    "area": (1.0, 1.5),
    "bbox": (1.0, 1.5),
    "iou": (1.0, 1.5),
    "merge": (1.0, None),  # one output: not a batch op
    "postprocess": (5.0, 5.0),
    "crops_constant": (4.0, 4.0),
}


def photos() -> list[np.ndarray]:
    import skimage.data

    return [getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")]


def sam_like_logits(k: int, h: int = 256, w: int = 256, seed: int = 0) -> np.ndarray:
    """Low-res logits shaped like SAM's: signed distance to 1-3 ellipses / 8, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((k, h, w), dtype=np.float32)
    for i in range(k):
        acc = np.full((h, w), -20.0)
        for _ in range(int(rng.integers(1, 4))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.04, 0.3) * min(h, w)
            acc = np.maximum(acc, (r - np.hypot((xx - cx) * rng.uniform(0.5, 1.5), yy - cy)) / 8)
        out[i] = acc + rng.normal(0, 0.3, (h, w))
    return out


def realistic_masks(n: int, h: int, w: int) -> np.ndarray:
    """bool [n, h, w]: half real photo regions (Felzenszwalb, smooth up-sampling), half SAM-like."""
    from skimage.segmentation import felzenszwalb

    real = []
    for img in photos():
        small = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        labels = felzenszwalb(small, scale=300, sigma=0.8, min_size=100)
        counts = np.bincount(labels.ravel())
        for lab in np.argsort(-counts)[: max(1, n // 8)]:
            m = cv2.resize((labels == lab).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
            real.append(m)
    logits = sam_like_logits(n - len(real[: n // 2]), seed=1)
    blobs = [cv2.resize(lg, (w, h), interpolation=cv2.INTER_LINEAR) > 0 for lg in logits]
    out = np.stack(real[: n // 2] + blobs)[:n]
    return np.ascontiguousarray(out)


def reference_postprocess(logits: np.ndarray, h: int, w: int) -> list:
    """The numpy + cv2 path: resize, threshold three times, count, encode with pycocotools."""
    import pycocotools.mask as coco

    out = []
    for lg in logits:
        up = cv2.resize(lg, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = up > 0.0
        hi, lo = np.count_nonzero(up > 1.0), np.count_nonzero(up > -1.0)
        rle = coco.encode(np.asfortranarray(mask[:, :, None].astype(np.uint8)))[0]
        out.append((rle, hi / lo if lo else 1.0, coco.toBbox(rle), coco.area(rle)))
    return out


def reference_crops(image: np.ndarray, boxes: np.ndarray, coco_rles: list | None, size: int, background: str) -> np.ndarray:
    """A straightforward cv2 loop: window, resize, pycocotools mask decode, blend, normalise."""
    import pycocotools.mask as coco

    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    fill = np.round(mean * 255).astype(np.uint8)
    h, w = image.shape[:2]
    out = np.empty((len(boxes), 3, size, size), np.float32)
    for i, (x, y, bw, bh) in enumerate(boxes):
        x0, y0, x1, y1 = int(np.floor(x)), int(np.floor(y)), int(np.ceil(x + bw)), int(np.ceil(y + bh))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        win = cv2.copyMakeBorder(
            image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)],
            max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_CONSTANT, value=fill.tolist(),
        )
        scale = size / max(x1 - x0, y1 - y0)
        rw, rh = max(1, int((x1 - x0) * scale + 0.5)), max(1, int((y1 - y0) * scale + 0.5))
        res = cv2.resize(win, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if coco_rles is not None and background != "keep":
            m = coco.decode(coco_rles[i])[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)].astype(np.float32)
            m = cv2.copyMakeBorder(m, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_CONSTANT, value=0)
            alpha = cv2.resize(m, (rw, rh), interpolation=cv2.INTER_LINEAR)[..., None]
            bg = cv2.GaussianBlur(res.astype(np.uint8), (0, 0), 4.0).astype(np.float32) if background == "blur" else fill
            res = alpha * res + (1 - alpha) * bg
        canvas = np.empty((size, size, 3), np.float32)
        canvas[...] = fill
        ox, oy = (size - rw) // 2, (size - rh) // 2
        canvas[oy : oy + rh, ox : ox + rw] = res
        out[i] = ((canvas / 255.0 - mean) / std).transpose(2, 0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/bench_masks.json", help="JSON output path")
    parser.add_argument("--masks", type=int, default=64, help="number of masks / regions")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions per op (slow refs use fewer)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (8 masks, 270x480, 2 repeats)")
    args = parser.parse_args(argv)
    if args.quick:
        args.masks, args.height, args.width, args.repeats = 8, 270, 480, 2

    import pycocotools.mask as coco

    n, h, w, reps = args.masks, args.height, args.width, args.repeats
    print(f"preparing {n} masks of {h}x{w} ...", flush=True)
    masks = realistic_masks(n, h, w)
    rles = gm.encode(masks)
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))  # pycocotools' layout
    coco_rles = coco.encode(fortran)
    assert [r["counts"] for r in rles] == [r["counts"].decode() for r in coco_rles], "encode parity broken"
    crowd = [0] * n

    ops = {
        "encode": (lambda t: gm.encode(masks, threads=t), lambda: coco.encode(fortran)),
        "decode": (lambda t: gm.decode(rles, threads=t), lambda: coco.decode(coco_rles)),
        "area": (lambda t: gm.area(rles, threads=t), lambda: coco.area(coco_rles)),
        "bbox": (lambda t: gm.to_bbox(rles, threads=t), lambda: coco.toBbox(coco_rles)),
        "iou": (lambda t: gm.iou(rles, rles, threads=t), lambda: coco.iou(coco_rles, coco_rles, crowd)),
        "merge": (lambda t: gm.merge(rles), lambda: coco.merge(coco_rles)),
    }

    logits = sam_like_logits(n, seed=2)
    ops["postprocess"] = (
        lambda t: gm.postprocess_logits(logits, (h, w), threads=t),
        lambda: reference_postprocess(logits, h, w),
    )
    image = np.ascontiguousarray(cv2.resize(photos()[2], (w, h), interpolation=cv2.INTER_LINEAR))
    boxes = gm.to_bbox(rles)
    for mode in ("keep", "constant", "blur"):
        ops[f"crops_{mode}"] = (
            lambda t, mode=mode: crop_regions(image, boxes, None if mode == "keep" else rles, background=mode, threads=t),
            lambda mode=mode: reference_crops(image, boxes, None if mode == "keep" else coco_rles, 224, mode),
        )

    results = {}
    for name, (ours, ref) in ops.items():
        slow_ref = name == "postprocess" or name.startswith("crops")
        r = max(2, reps // 2) if slow_ref else reps
        timing = time_side_by_side({"ours_1_thread": lambda: ours(1), "ours_2_threads": lambda: ours(2), "reference": ref}, r)
        ref_p50 = timing["reference"]["p50_ms"]
        t1, t2 = TARGETS.get(name, (None, None))
        row = {
            **timing,
            "ratio_1_thread": ref_p50 / timing["ours_1_thread"]["p50_ms"],
            "ratio_2_threads": ref_p50 / timing["ours_2_threads"]["p50_ms"],
            "target_1_thread": t1,
            "target_2_threads": t2,
        }
        row["targets_met"] = all(
            target is None or row[key] >= target for key, target in (("ratio_1_thread", t1), ("ratio_2_threads", t2))
        )
        results[name] = row
        print(
            f"{name:16s} ref {ref_p50:9.2f} ms | 1 thread {timing['ours_1_thread']['p50_ms']:8.2f} ms "
            f"({row['ratio_1_thread']:5.1f}x) | 2 threads {timing['ours_2_threads']['p50_ms']:8.2f} ms "
            f"({row['ratio_2_threads']:5.1f}x) | targets {'met' if row['targets_met'] else 'MISSED'}",
            flush=True,
        )

    payload = {
        "benchmark": "masks",
        "machine": machine_info(("pycocotools", "scikit-image")),
        "config": {"masks": n, "height": h, "width": w, "repeats": reps, "logits": [256, 256], "crop_size": 224},
        "references": {
            "rle_ops": "pycocotools (Fortran uint8 [H, W, N] input prepared outside the timing)",
            "postprocess": "per mask: cv2.resize INTER_LINEAR, 3 numpy thresholds + counts, pycocotools encode/toBbox/area",
            "crops": "per region: numpy window + cv2.copyMakeBorder, cv2.resize, pycocotools decode of the mask, numpy blend/normalise",
        },
        "results": results,
        "all_targets_met": all(r["targets_met"] for r in results.values()),
    }
    path = write_json(args.out, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
