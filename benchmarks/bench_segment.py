"""Benchmark: our automatic mask generation on ONNX Runtime (CPU) vs sam2's SAM2AutomaticMaskGenerator (PyTorch).

Both sides run the same random-initialised SAM2.1-tiny (``export/sam2_onnx.py --random-init``: the
torch model sam2 uses and the ONNX files we use carry identical weights), on the same photos, with
the same number of threads (``torch.set_num_threads``, ONNX Runtime intra-op threads, our C++
post-processing threads). Configurations:

* ``default``: sam2's default thresholds (pred IoU 0.8, stability 0.95) — with random weights few
  masks survive, so this mostly times the networks plus the per-mask work before filtering;
* ``keep_all``: both thresholds 0 — every decoded mask is post-processed (up-sampled, scored,
  boxed, RLE-encoded) and goes through NMS: the heaviest post-processing load;
* ``structured`` (``--structured``): the decoder is replaced on both sides by the structured decoder of
  the parity proof (export/sam2_structured.py), so dozens of real-looking masks survive.

Per stage (p50/p90/p99 over images x repeats; decoder over batches): ``encoder`` (pre-processing +
image encoder), ``decoder`` (one prompt batch: prompt encoding + mask decoding), ``postprocess``
(everything else per batch: up-sampling, IoU/stability filters, boxes, RLE), ``nms``, and
``end_to_end``. For sam2 the stages are measured by wrapping ``predictor.set_image``, the prompt
encoder and mask decoder modules and ``batched_nms``; its post-processing is the remainder.
Ratios are sam2 p50 / ours p50 (> 1: ours is faster).

    python benchmarks/bench_segment.py --out results/bench_segment.json            # points_per_side 32
    python benchmarks/bench_segment.py --quick --out /tmp/bench_segment.json         # smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import machine_info, percentiles, write_json  # noqa: E402

TARGET_SPEEDUP = 3.0  # end-to-end p50, points_per_side 32
STAGES = ("encoder", "decoder", "postprocess", "nms")


def photos(names: list[str]) -> dict[str, np.ndarray]:
    import skimage.data

    return {n: getattr(skimage.data, n)() for n in names}


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def prepare_models(config: str, seed: int, out_dir: Path):
    """(sam2 torch model, encoder.onnx, decoder.onnx) with identical random-initialised weights."""
    from export import sam2_onnx

    model = sam2_onnx.build_model(config, random_init=True, seed=seed)
    name = sam2_onnx.default_name(model)
    enc, dec = out_dir / f"{name}.encoder.onnx", out_dir / f"{name}.decoder.onnx"
    sam2_onnx.export_encoder(model, enc)  # each export is checked against sam2 (ORT vs torch) and manifested
    sam2_onnx.export_decoder(model, dec)
    return model, enc, dec


# ---------------------------------------------------------------------------------------------
# sam2 instrumentation
# ---------------------------------------------------------------------------------------------
class Sam2Timer:
    """Wraps sam2's generator so each generate() call reports per-stage times (ms)."""

    def __init__(self, gen, model) -> None:
        import sam2.automatic_mask_generator as amg_mod

        self.gen, self.model, self.mod = gen, model, amg_mod
        self.current: dict = {}
        self._orig_nms = amg_mod.batched_nms
        predictor = gen.predictor
        set_image = predictor.set_image

        def timed_set_image(*a, **k):
            t0 = time.perf_counter()
            out = set_image(*a, **k)
            self.current["encoder_ms"] = self.current.get("encoder_ms", 0.0) + (time.perf_counter() - t0) * 1e3
            return out

        predictor.set_image = timed_set_image
        predict = predictor._predict

        def timed_predict(*a, **k):  # one prompt batch: decoder time is measured inside, by the hooks
            self._batch_dec = 0.0
            out = predict(*a, **k)
            self.current.setdefault("decoder_batches_ms", []).append(self._batch_dec)
            return out

        predictor._predict = timed_predict
        self._batch_dec = 0.0
        self._hooks = []
        for module in (model.sam_prompt_encoder, model.sam_mask_decoder):
            self._hooks.append(module.register_forward_pre_hook(self._pre))
            self._hooks.append(module.register_forward_hook(self._post))

        def timed_nms(*a, **k):
            t0 = time.perf_counter()
            out = self._orig_nms(*a, **k)
            self.current["nms_ms"] = self.current.get("nms_ms", 0.0) + (time.perf_counter() - t0) * 1e3
            return out

        amg_mod.batched_nms = timed_nms

    def _pre(self, module, args):
        self._t0 = time.perf_counter()

    def _post(self, module, args, out):
        self._batch_dec += (time.perf_counter() - self._t0) * 1e3

    def generate(self, image: np.ndarray) -> tuple[list, dict]:
        self.current = {}
        t0 = time.perf_counter()
        anns = self.gen.generate(image)
        total = (time.perf_counter() - t0) * 1e3
        t = self.current
        t["total_ms"] = total
        t["decoder_ms"] = float(sum(t.get("decoder_batches_ms", [])))
        t["postprocess_ms"] = total - t.get("encoder_ms", 0.0) - t["decoder_ms"] - t.get("nms_ms", 0.0)
        return anns, t

    def restore(self) -> None:
        self.mod.batched_nms = self._orig_nms
        for h in self._hooks:
            h.remove()


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------
def summarise(runs: list[dict]) -> dict:
    """Per-stage percentiles from a list of timing dicts (ms)."""
    out = {"end_to_end": percentiles([r["total_ms"] / 1e3 for r in runs])}
    out["encoder"] = percentiles([(r.get("encoder_ms", 0.0) + r.get("preprocess_ms", 0.0)) / 1e3 for r in runs])
    out["decoder_batch"] = percentiles([b / 1e3 for r in runs for b in r.get("decoder_batches_ms", [])])
    out["decoder_total"] = percentiles([r.get("decoder_ms", 0.0) / 1e3 for r in runs])
    out["postprocess"] = percentiles([r.get("postprocess_ms", 0.0) / 1e3 for r in runs])
    out["nms"] = percentiles([r.get("nms_ms", 0.0) / 1e3 for r in runs])
    return out


def parity_stats(regions, anns) -> dict:
    """Our Regions vs sam2's annotations, both sorted by area (stable: ties keep sam2's output order)."""
    import gear_edge.masks as gm

    ordered = sorted(anns, key=lambda a: -a["area"])
    n = min(len(regions), len(ordered))
    a = [r.rle for r in regions[:n]]
    b = [x["segmentation"] for x in ordered[:n]]
    ious = np.diag(gm.iou(a, b)) if n else np.zeros(0)
    return {
        "ours": len(regions), "sam2": len(anns),
        "count_diff_pct": (100.0 * (len(regions) - len(anns)) / len(anns)) if anns else None,
        "paired_median_iou": float(np.median(ious)) if n else None,
        "paired_min_iou": float(ious.min()) if n else None,
        "identical_in_order": int(sum(x["counts"] == y["counts"] for x, y in zip(a, b))),
    }


def run_config(name: str, ours, theirs: Sam2Timer, images: dict, repeats: int, log, warmup=None) -> dict:
    """``repeats`` timed passes over ``images``; ``warmup()`` (if given) runs once before them, else
    one untimed full pass does. Mask counts / parity come from the first timed pass (compared
    outside the timed region)."""
    ours_runs, sam2_runs, counts = [], [], {}
    if warmup is not None:
        t0 = time.perf_counter()
        warmup()
        log(f"  {name}: warm-up {time.perf_counter() - t0:.1f} s")
    first = 1 if warmup is not None else 0
    for rep in range(first, repeats + 1):
        for img_name, image in images.items():
            timings: dict = {}
            t0 = time.perf_counter()
            regions = ours.generate(image, timings)
            timings["total_ms"] = (time.perf_counter() - t0) * 1e3
            anns, t_sam2 = theirs.generate(image)
            if img_name not in counts:
                counts[img_name] = parity_stats(regions, anns)
            if rep == 0:
                continue
            ours_runs.append(timings)
            sam2_runs.append(t_sam2)
            log(f"  {name} {img_name} rep {rep}: ours {timings['total_ms']:.0f} ms ({len(regions)} masks), "
                f"sam2 {t_sam2['total_ms']:.0f} ms ({len(anns)} masks)")
    o, s = summarise(ours_runs), summarise(sam2_runs)
    ratios = {k: (s[k]["p50_ms"] / o[k]["p50_ms"] if o[k]["p50_ms"] > 0 else None) for k in o}
    return {"ours": o, "sam2": s, "ratio_p50": ratios, "masks": counts}


def light_warmup(make_ours, make_theirs, image: np.ndarray, points_per_side: int = 8):
    """A warm-up callable: both generators at ``points_per_side`` (8: one full 64-prompt batch, so
    ONNX Runtime's arena and torch's allocator see the timed batch shape) on ``image``."""

    def run() -> None:
        make_ours(points_per_side).generate(image)
        make_theirs(points_per_side).generate(image)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/bench_segment.json", help="JSON output path")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--images", default="astronaut,coffee,chelsea", help="scikit-image photo names")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the images (after one warm-up pass)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="tiny", help="SAM2.1 config for the random-initialised model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default="default,keep_all", help="comma list of: default, keep_all, structured")
    parser.add_argument("--structured", action="store_true", help="also run the structured-decoder configuration")
    parser.add_argument("--models", default=None, help="directory for the exported ONNX files (default: a temp dir)")
    parser.add_argument("--structured-images", default=None,
                        help="images of the structured configuration (default: --images)")
    parser.add_argument("--warmup", choices=("light", "full"), default="light",
                        help="light: one points_per_side 8 run of each side before timing (one full prompt "
                        "batch); full: one untimed pass over all images at the timed settings")
    parser.add_argument("--quick", action="store_true", help="smoke run: points_per_side 8, one image, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.points_per_side, args.images, args.repeats = 8, "astronaut", 1
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    try:
        import torch
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    except ImportError as exc:
        print(f"bench_segment needs the [export] extra (torch, sam2==1.1.0): {exc}", file=sys.stderr)
        return 2
    import cv2

    import gear_edge.masks as gm
    from gear_edge.engines import OnnxEngine
    from gear_edge.segment import AutomaticMaskGenerator

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    gm.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    images = photos(args.images.split(","))
    configs = args.configs.split(",") + (["structured"] if args.structured and "structured" not in args.configs else [])

    tmp = tempfile.TemporaryDirectory()
    out_dir = Path(args.models) if args.models else Path(tmp.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, enc_path, dec_path = prepare_models(args.config, args.seed, out_dir)
    log(f"models ready in {time.perf_counter() - t0:.1f} s: {enc_path}, {dec_path}")
    encoder = OnnxEngine(enc_path, threads=args.threads)
    decoder = OnnxEngine(dec_path, threads=args.threads)

    results = {}
    for name in configs:
        thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if name == "keep_all" else {}
        common = dict(points_per_side=args.points_per_side, **thresholds)
        if name == "structured":
            s_images = photos(args.structured_images.split(",")) if args.structured_images else images
            results[name] = run_structured(model, encoder, s_images, common, args, log)
            continue
        ours = AutomaticMaskGenerator(encoder, decoder, threads=args.threads, **common)
        theirs = Sam2Timer(SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", **common), model)
        warm = None
        if args.warmup == "light":
            warm = light_warmup(
                lambda n: AutomaticMaskGenerator(encoder, decoder, threads=args.threads, points_per_side=n, **thresholds),
                lambda n: SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", points_per_side=n, **thresholds),
                next(iter(images.values())),
            )
        try:
            results[name] = run_config(name, ours, theirs, images, args.repeats, log, warm)
        finally:
            theirs.restore()
    e2e = results.get("default", next(iter(results.values())))["ratio_p50"]["end_to_end"]
    payload = {
        "benchmark": "segment",
        "machine": machine_info(("torch", "torchvision", "sam2")),
        "settings": {
            "points_per_side": args.points_per_side, "points_per_batch": 64, "threads": args.threads,
            "images": {k: list(v.shape) for k, v in images.items()}, "repeats": args.repeats,
            "warmup": args.warmup,
            "structured_images": args.structured_images.split(",") if args.structured_images else list(images),
            "model": f"sam2.1_hiera_{args.config} random-init seed {args.seed}", "ours": "ONNX Runtime CPU fp32",
            "sam2": "sam2 1.1.0 SAM2AutomaticMaskGenerator, PyTorch CPU fp32, output_mode coco_rle",
        },
        "results": results,
        "target": {"end_to_end_speedup": TARGET_SPEEDUP, "points_per_side": 32},
        "end_to_end_speedup_p50": e2e,
        "target_met": bool(args.points_per_side == 32 and e2e is not None and e2e >= TARGET_SPEEDUP),
    }
    path = write_json(args.out, payload)
    print_table(results)
    print(f"wrote {path}")
    return 0


def run_structured(model, encoder, images: dict, common: dict, args, log) -> dict:
    """Both sides with the structured decoder (one per image: it is built from the image's segmentation)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    from gear_edge.engines import OnnxEngine
    from gear_edge.segment import AutomaticMaskGenerator
    from export.sam2_structured import StructuredCore, export_structured_decoder, install_into_sam2, label_maps

    original = (model.sam_prompt_encoder, model.sam_mask_decoder)
    merged: dict = {"ours": [], "sam2": []}
    masks = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            for img_name, image in images.items():
                core = StructuredCore(label_maps(image)).eval()
                dec = OnnxEngine(export_structured_decoder(core, Path(d) / f"{img_name}.onnx"), threads=args.threads)
                install_into_sam2(model, core)
                ours = AutomaticMaskGenerator(encoder, dec, threads=args.threads, **common)
                theirs = Sam2Timer(SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", **common), model)
                warm = None
                if args.warmup == "light":
                    warm = light_warmup(
                        lambda n: AutomaticMaskGenerator(encoder, dec, threads=args.threads, points_per_side=n),
                        lambda n: SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", points_per_side=n),
                        image,
                    )
                try:
                    res = run_config("structured", ours, theirs, {img_name: image}, args.repeats, log, warm)
                finally:
                    theirs.restore()
                masks.update(res["masks"])
                merged["ours"].append(res["ours"])
                merged["sam2"].append(res["sam2"])
    finally:
        model.sam_prompt_encoder, model.sam_mask_decoder = original
    # per-image percentiles are kept; the headline ratio uses the median of per-image p50s
    o = {k: merged["ours"][0][k] if len(images) == 1 else _median_of(merged["ours"], k) for k in merged["ours"][0]}
    s = {k: merged["sam2"][0][k] if len(images) == 1 else _median_of(merged["sam2"], k) for k in merged["sam2"][0]}
    return {"ours": o, "sam2": s, "ratio_p50": {k: s[k]["p50_ms"] / o[k]["p50_ms"] if o[k]["p50_ms"] else None for k in o},
            "masks": masks, "note": "percentiles are medians of per-image percentiles"}


def _median_of(items: list[dict], key: str) -> dict:
    fields = items[0][key]
    return {f: float(np.median([it[key][f] for it in items])) for f in fields}


def print_table(results: dict) -> None:
    print(f"{'config':<12}{'stage':<16}{'ours p50 ms':>14}{'sam2 p50 ms':>14}{'ratio':>9}")
    for name, res in results.items():
        for stage in ("end_to_end", "encoder", "decoder_batch", "decoder_total", "postprocess", "nms"):
            o, s = res["ours"][stage]["p50_ms"], res["sam2"][stage]["p50_ms"]
            r = res["ratio_p50"][stage]
            print(f"{name:<12}{stage:<16}{o:>14.1f}{s:>14.1f}{(f'{r:.2f}' if r else '-'):>9}")
        print(f"{'':<12}masks: {res['masks']}")


if __name__ == "__main__":
    sys.exit(main())
