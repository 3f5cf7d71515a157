"""Benchmark of the describe stage on a 1080p photo.

* exact attributes + relations (``describe_regions``) for 10 / 50 / 200 regions of the image's own
  segmentation (target: <= 20 ms for 50 regions on 2 threads);
* OCR once per image (PP-OCRv4 through rapidocr-onnxruntime), when installed;
* captioner encoder / decoder time per batch of 8 crops on ONNX Runtime CPU, on a tiny
  random-initialised Florence-2 exported on the fly (needs the [export] extra), when available.

    python benchmarks/bench_describe.py --out results/bench_describe.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentiles, write_json  # noqa: E402
from bench_masks import photos, realistic_masks  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge import _native  # noqa: E402
from gear_edge.describe.geometry import describe_regions  # noqa: E402

TARGET_MS_50 = 20.0


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return percentiles(ts)


def scene_masks(image: np.ndarray, n: int) -> list[dict]:
    """n region masks of the image itself, like a segmenter's output: the n largest Felzenszwalb
    segments (computed at half resolution, up-sampled) — a partition, plus nesting from merges."""
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    min_size = max(20, small.size // 3 // (4 * n))
    for _ in range(8):  # finer segmentations until there are at least n segments
        labels = felzenszwalb(small, scale=100, sigma=0.8, min_size=min_size)
        if labels.max() + 1 >= n or min_size <= 5:
            break
        min_size = max(5, min_size // 2)
    labels = cv2.resize(labels.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids[np.argsort(-counts)[:n]]
    return [gm.encode(np.ascontiguousarray(labels == k)) for k in keep]


def bench_geometry(image: np.ndarray, counts: list[int], repeats: int) -> dict:
    out = {}
    for n in counts:
        rles = scene_masks(image, n)
        attrs, rels = describe_regions(image, rles)
        out[str(n)] = {"regions": len(rles), "relations": len(rels), **timed(lambda: describe_regions(image, rles), repeats)}
        print(f"geometry  {n:4d} regions  p50 {out[str(n)]['p50_ms']:8.2f} ms  ({len(rels)} relations)")
    return out


def bench_ocr(image: np.ndarray, repeats: int) -> dict | str:
    try:
        from gear_edge.describe.ocr import OcrReader
    except ImportError as exc:
        return f"skipped: {exc}"
    try:
        reader = OcrReader(threads=_native.get_num_threads())
    except Exception as exc:  # missing extra / model: say why in the JSON
        return f"skipped: {exc}"
    stats = timed(lambda: reader.read(image), repeats)
    print(f"ocr       1 image        p50 {stats['p50_ms']:8.2f} ms")
    return stats


def bench_captioner(image: np.ndarray, repeats: int) -> dict | str:
    try:
        from export.captioner_onnx import build_tiny
        from gear_edge.describe.captioner import Captioner
    except ImportError as exc:
        return f"skipped: {exc}"
    h, w = image.shape[:2]
    rles = gm.encode(realistic_masks(8, h, w))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model_dir = build_tiny(Path(tmp) / "captioner", seed=0)
        except Exception as exc:
            return f"skipped: cannot build the tiny captioner ({exc})"
        cap = Captioner.from_dir(model_dir, threads=_native.get_num_threads())
        stats = timed(lambda: cap.caption(image, rles, batch_size=8), repeats)
        detail = getattr(cap, "last_timings", None)
    print(f"captioner 8 crops        p50 {stats['p50_ms']:8.2f} ms  (tiny random Florence-2)")
    return {"batch": 8, "model": "tiny random-initialised Florence-2 (architecture check, not a real model)",
            "total": stats, "last_call_breakdown_ms": detail}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/bench_describe.json")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smoke run: 270x480, 10 regions, 2 repeats, no models")
    args = parser.parse_args()
    if args.quick:
        size, counts, repeats = (270, 480), [10], 2
    else:
        size, counts, repeats = (1080, 1920), [10, 50, 200], args.repeats
    image = np.ascontiguousarray(cv2.resize(photos()[0], (size[1], size[0]), interpolation=cv2.INTER_LINEAR))
    result = {
        "benchmark": "describe",
        "machine": machine_info(),
        "config": {"image": f"skimage astronaut resized to {size[1]}x{size[0]}", "repeats": repeats,
                   "threads": _native.get_num_threads()},
        "geometry": bench_geometry(image, counts, repeats),
    }
    if not args.quick:
        result["ocr"] = bench_ocr(image, max(3, repeats // 3))
        result["captioner"] = bench_captioner(image, max(3, repeats // 3))
        p50 = result["geometry"]["50"]["p50_ms"]
        result["targets"] = {"geometry_50_regions_ms": TARGET_MS_50, "measured_p50_ms": p50, "met": p50 <= TARGET_MS_50}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
