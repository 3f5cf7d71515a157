"""SAM2 fp16 / int8 copies of an fp32 export and their accuracy report against fp32.

Used by :mod:`export.sam2_onnx` (``--precision fp16 int8``). fp16: ``export.quantize.to_fp16``
(float32 I/O kept). int8: the encoder static QDQ calibrated on images
(:func:`quantize_static_int8_low_memory`), the decoder dynamic (default) or static. The report
(:func:`compare_precision`) runs an AMG-style click grid on images not used for calibration and
compares the ``logits > 0`` masks, logits and IoU predictions with the fp32 files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.parity import ParityError, mask_agreement, merge_agreement, tensor_error
from export.sam2_onnx import ENCODER_INPUT, FEATURES, INPUT_SIZE, NUM_OUTPUTS, PRECISIONS, decoder_feeds, remove_outputs
from gear_edge.engines.manifest_check import manifest_path_for, write_model_manifest
from gear_edge.errors import InputError
from gear_edge.manifest import Manifest

FP16_MIN_IOU = 0.99  # fp16 vs fp32: mean IoU of the logits > 0 masks (informative ones)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def load_images(folder: str | Path, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(file name, uint8 RGB) for the image files in ``folder``, sorted by name."""
    import cv2

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for f in files[:limit]:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{f}: not a readable image")
        out.append((f.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def grid_prompts(points_per_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The AMG point grid (cell centres) in 1024² model pixels: coords [n², 1, 2], labels ones [n², 1]."""
    offset = 1.0 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.meshgrid(side, side)
    coords = (np.stack([xs.ravel(), ys.ravel()], -1) * INPUT_SIZE).astype(np.float32)[:, None, :]
    return coords, np.ones(coords.shape[:2], np.float32)


def encoder_calibration(images: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Feed dicts ``{"image": preprocess(img)}`` for static int8 calibration of the encoder."""
    from gear_edge.segment.preprocess import preprocess

    for img in images:
        yield {ENCODER_INPUT: preprocess(img, INPUT_SIZE)}


def decoder_calibration(encoder, images: Iterable[np.ndarray], prompts: int = 16, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Feed dicts for static int8 calibration of the decoder: fp32 encoder features of each image
    with ``prompts`` random single-click prompts (no mask input)."""
    from gear_edge.segment.preprocess import preprocess

    rng = np.random.default_rng(seed)
    for img in images:
        feats = encoder.run({ENCODER_INPUT: preprocess(img, INPUT_SIZE)})
        coords = rng.uniform(0, INPUT_SIZE, (prompts, 1, 2)).astype(np.float32)
        yield decoder_feeds(feats, coords, np.ones((prompts, 1), np.float32))


def reference_runs(engines: Mapping[str, Any], images: Sequence[np.ndarray], points_per_side: int = 8) -> list[dict[str, Any]]:
    """The reference (fp32) side of :func:`compare_precision`, run once: per image the model input,
    the encoder features and the decoder outputs for the click grid, plus the seconds it took.
    Keeping these (≈ 16 MB + 1 MB per click per image) lets the fp32 sessions go before the
    candidates load, so only one pair of sessions is in memory at a time."""
    from gear_edge.segment.preprocess import preprocess

    coords, labels = grid_prompts(points_per_side)
    runs = []
    for img in images:
        x = {ENCODER_INPUT: preprocess(img, INPUT_SIZE)}
        t0 = time.perf_counter()
        feats = engines["encoder"].run(x)
        out = engines["decoder"].run(decoder_feeds(feats, coords, labels))
        runs.append({"input": x, "features": feats, "outputs": out, "seconds": time.perf_counter() - t0,
                     "coords": coords, "labels": labels})
    return runs


def compare_precision(reference: Sequence[Mapping[str, Any]], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """``candidate`` engines (``encoder`` / ``decoder``, e.g. fp16) vs :func:`reference_runs` (fp32).

    Per image: encoder outputs (tensor error), then the click grid through the candidate decoder on
    the candidate's features ("end_to_end") and on the reference features ("decoder_only"). Masks
    are ``logits > 0`` at 256²; ``single`` = output 0, ``multimask`` = outputs 1..3 (see
    :func:`export.parity.mask_agreement`).
    """
    enc_err: dict[str, float] = {}
    parts: dict[str, list[dict[str, Any]]] = {}
    iou_pred_err = 0.0
    t_cand = 0.0
    for run in reference:
        f_ref, out_ref, coords, labels = run["features"], run["outputs"], run["coords"], run["labels"]
        t0 = time.perf_counter()
        f_c = candidate["encoder"].run(run["input"])
        out_e2e = candidate["decoder"].run(decoder_feeds(f_c, coords, labels))
        t_cand += time.perf_counter() - t0
        out_dec = candidate["decoder"].run(decoder_feeds(f_ref, coords, labels))
        for n in FEATURES:
            enc_err[n] = max(enc_err.get(n, 0.0), tensor_error(f_c[n], f_ref[n])["error"])
        for kind, out in (("end_to_end", out_e2e), ("decoder_only", out_dec)):
            for mode, sl in (("single", slice(0, 1)), ("multimask", slice(1, NUM_OUTPUTS))):
                parts.setdefault(f"{kind}.{mode}", []).append(
                    mask_agreement(out["low_res_masks"][:, sl], out_ref["low_res_masks"][:, sl]))
            iou_pred_err = max(iou_pred_err, float(np.abs(out["iou_predictions"] - out_ref["iou_predictions"]).max()))
    report: dict[str, Any] = {
        "images": len(reference), "prompts_per_image": int(reference[0]["coords"].shape[0]) if reference else 0,
        "encoder_error": enc_err, "iou_predictions_max_abs": iou_pred_err,
        "seconds_reference": round(sum(r["seconds"] for r in reference), 2), "seconds_candidate": round(t_cand, 2),
    }
    for key, lst in parts.items():
        kind, mode = key.split(".")
        report.setdefault(kind, {})[mode] = merge_agreement(lst)
    return report


def quantize_static_int8_low_memory(src: Path, dst: Path, feeds: Iterable[Mapping[str, np.ndarray]], *,
                                    preprocess: bool = True) -> Path:
    """Static int8 (QDQ, per-channel uint8 weights (CPU_WEIGHT_TYPE), uint8 activations, min-max calibration), as
    ``export.quantize.quantize_static_int8`` with its defaults, but calibrated in bounded memory.

    onnxruntime's calibrator adds a ReduceMin/ReduceMax pair per tensor and runs that graph in
    onnxruntime's default execution order, which evaluates the whole network before the reductions
    and so keeps every activation alive: for SAM2-tiny's encoder 9.6 GB RSS on the first image and
    +7 GB per further image (6 images exhausted 23 GB). Here the same augmented graph runs in
    ``ExecutionOrder.PRIORITY_BASED`` (1.7 GB, flat), the ranges go to a calibration cache, and
    onnxruntime's ``quantize_static`` quantises from that cache. The manifest is written by
    ``export.quantize.write_derived_manifest``. Returns the manifest path.
    """
    import tempfile

    import onnxruntime as ort
    from onnxruntime import quantization as q
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    from export import quantize as qz

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it, self.count = iter(feeds), 0

        def get_next(self):
            item = next(self.it, None)
            if item is None:
                return None
            self.count += 1
            return dict(item)

    reader = Reader()
    with tempfile.TemporaryDirectory(prefix="gear_edge_sam2_quant_") as tmp:
        model_in = str(src)
        if preprocess:
            model_in = str(Path(tmp) / "preprocessed.onnx")
            q.shape_inference.quant_pre_process(str(src), model_in, skip_symbolic_shape=False)
        calibrator = create_calibrator(Path(model_in), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as onnxruntime's calibrator
        opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, opts,
                                                        providers=["CPUExecutionProvider"])
        calibrator.collect_data(reader)  # raises ValueError when the reader yields nothing
        cache = str(Path(tmp) / "ranges.json")
        save_tensors_data(calibrator.compute_data(), cache)
        del calibrator
        q.quantize_static(
            model_in, str(dst), None, quant_format=q.QuantFormat.QDQ, per_channel=True,
            activation_type=q.QuantType.QUInt8, weight_type=qz.weight_quant_type(q, qz.CPU_WEIGHT_TYPE),
            calibrate_method=q.CalibrationMethod.MinMax, calibration_cache_path=cache,
        )
    return qz.write_derived_manifest(src, dst, "int8", extra={
        "quantizer": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ", "calibration_method": "minmax",
        "calibration_samples": reader.count, "per_channel": True, "activation_type": "uint8",
        "weight_type": qz.CPU_WEIGHT_TYPE, "symmetric": False, "preprocessed": bool(preprocess)})


def fp16_verdict(report: Mapping[str, Any]) -> tuple[bool | None, str]:
    """(passed, explanation) of the fp16 rule: mean IoU ≥ FP16_MIN_IOU in every end-to-end mode.
    None when every reference mask is degenerate (empty / full) — the rule cannot be judged."""
    worst, informative = None, 0
    for mode, stats in report["end_to_end"].items():
        informative += stats["masks"] - stats["degenerate"]
        if stats["iou_mean"] is not None:
            worst = stats["iou_mean"] if worst is None else min(worst, stats["iou_mean"])
    if worst is None:
        return None, "every fp32 mask is empty or full: the IoU rule cannot be judged on these weights/images"
    ok = worst >= FP16_MIN_IOU
    return ok, f"worst mean IoU {worst:.4f} over {informative} informative masks (rule: >= {FP16_MIN_IOU})"


def _rewrite_derived_manifest(path: Path, verification: Mapping[str, Any]) -> Path:
    """Replaces the ``[verification]`` table export.quantize copied from the fp32 manifest."""
    from export.quantize import onnx_specs

    m = Manifest.load(manifest_path_for(path))
    fields = {k: v for k, v in m.extra.items()
              if not isinstance(v, Mapping) and k not in ("inputs", "outputs", "precision", "package", "package_path")}
    tables = {k: dict(v) for k, v in m.extra.items() if isinstance(v, Mapping)}
    tables["verification"] = dict(verification)
    inputs, outputs = onnx_specs(path)
    return write_model_manifest(path, inputs=inputs, outputs=outputs, licence=m.licence, source=m.source, name=m.name,
                                precision=m.extra.get("precision"), extra=fields, tables=tables)


def _report_table(rep: Mapping[str, Any], verdict: tuple[bool | None, str] | None) -> dict[str, Any]:
    """Scalar summary of :func:`compare_precision` for a manifest table."""
    out: dict[str, Any] = {"reference": "fp32 ONNX export", "images": rep["images"],
                           "prompts_per_image": rep["prompts_per_image"],
                           "iou_predictions_max_abs": rep["iou_predictions_max_abs"]}
    for n, e in rep["encoder_error"].items():
        out[f"{n}_error"] = e
    for kind in ("end_to_end", "decoder_only"):
        for mode, s in rep[kind].items():
            for k in ("iou_mean", "iou_min", "degenerate", "masks", "logit_max_abs"):
                if s[k] is not None:
                    out[f"{kind}_{mode}_{k}"] = s[k]
    if verdict is not None:
        out["fp16_rule"] = verdict[1]
    return out


def derive_precisions(
    fp32: Mapping[str, Path],
    precisions: Sequence[str],
    *,
    calibration: Sequence[np.ndarray] = (),
    evaluation: Sequence[np.ndarray] = (),
    decoder_int8: str = "dynamic",
    points_per_side: int = 8,
    threads: int | None = None,
    strict_fp16: bool = True,
    keep_failed: bool = False,
) -> dict[str, Any]:
    """fp16 / int8 copies of the fp32 ``{"encoder": path, "decoder": path}`` and their report vs fp32.

    int8: the encoder static (QDQ, per-channel, min-max calibration on ``calibration`` images); the
    decoder ``decoder_int8`` = 'dynamic' (int8 MatMul weights; the default: on random-init tiny it
    kept mean mask IoU 0.99 where static QDQ fell to 0.76) or 'static' (calibrated with fp32 encoder
    features of the calibration images and random clicks). The report uses ``evaluation`` images (which must not be
    calibration images). fp16 failing :func:`fp16_verdict` raises ParityError when ``strict_fp16``.
    Returns ``{precision: {"files": {role: path}, "report": {...}, "fp16_rule": ...}}``.
    """
    from export.quantize import quantize_dynamic_int8, to_fp16
    from gear_edge.engines import OnnxEngine

    if decoder_int8 not in ("dynamic", "static"):
        raise InputError(f"decoder_int8 must be 'dynamic' or 'static', got {decoder_int8!r}")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise InputError(f"unknown precision(s) {unknown}; choose from {PRECISIONS}")
    if "int8" in precisions and not calibration:
        raise InputError("int8 needs calibration images (--calib-dir)")
    if not evaluation and any(p != "fp32" for p in precisions):
        raise InputError("the fp16 / int8 report needs evaluation images not used for calibration")
    ref_engines = {role: OnnxEngine(p, threads=threads) for role, p in fp32.items()}
    ref = reference_runs(ref_engines, evaluation, points_per_side)
    del ref_engines  # one pair of sessions in memory at a time
    results: dict[str, Any] = {}
    for prec in precisions:
        if prec == "fp32":
            continue
        files = {role: p.with_name(f"{p.stem}.{prec}.onnx") for role, p in fp32.items()}
        t0 = time.perf_counter()
        if prec == "fp16":
            for role in files:
                to_fp16(fp32[role], files[role])
        else:
            quantize_static_int8_low_memory(fp32["encoder"], files["encoder"], encoder_calibration(calibration))
            if decoder_int8 == "static":
                # preprocess=False: onnxruntime's symbolic shape inference cannot merge the batch axis
                # of sam2's repeat_interleave with the prompt batch (it stops on the first Add)
                quantize_static_int8_low_memory(
                    fp32["decoder"], files["decoder"],
                    decoder_calibration(OnnxEngine(fp32["encoder"], threads=threads), calibration), preprocess=False)
            else:
                quantize_dynamic_int8(fp32["decoder"], files["decoder"])
        convert_s = time.perf_counter() - t0
        cand = {role: OnnxEngine(p, threads=threads) for role, p in files.items()}
        rep = compare_precision(ref, cand)
        del cand
        rep["convert_s"] = round(convert_s, 2)
        verdict = fp16_verdict(rep) if prec == "fp16" else None
        table = _report_table(rep, verdict)
        table["convert_s"] = rep["convert_s"]
        if prec == "int8":
            table["decoder_int8"] = decoder_int8
            table["calibration_images"] = len(calibration)
        for path in files.values():
            _rewrite_derived_manifest(path, table)
        results[prec] = {"files": {k: str(v) for k, v in files.items()}, "report": rep}
        if verdict is not None:
            results[prec]["fp16_rule"] = {"passed": verdict[0], "detail": verdict[1]}
            if verdict[0] is False and strict_fp16:
                if not keep_failed:
                    remove_outputs(*files.values())
                raise ParityError(f"fp16 export lost more than 1 IoU point against fp32: {verdict[1]}")
    return results


__all__ = [
    "FP16_MIN_IOU", "compare_precision", "decoder_calibration", "reference_runs", "derive_precisions", "encoder_calibration",
    "fp16_verdict", "grid_prompts", "load_images", "quantize_static_int8_low_memory",
]
