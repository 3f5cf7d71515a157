"""ONNX quantisation: fp16 (float32 I/O kept), dynamic int8, static int8 (QDQ, calibrated).

Every function writes the quantised model and a manifest TOML next to it (``dst.with_suffix('.toml')``:
name, file, sha256, size, licence and source copied from the source model's manifest if it has one,
precision, input/output specs), which :class:`gear_edge.engines.OnnxEngine` checks at load.

    to_fp16("enc.onnx", "enc.fp16.onnx")
    quantize_dynamic_int8("dec.onnx", "dec.int8-dyn.onnx")
    quantize_static_int8("enc.onnx", "enc.int8.onnx", calibration=[{"image": x} for x in batches])

fp16 uses ``onnxruntime.transformers.float16.convert_float_to_float16`` (shipped inside onnxruntime,
so no onnxconverter-common dependency); int8 uses ``onnxruntime.quantization``.

CLI: ``python -m export.quantize fp16|int8-dynamic|int8-static SRC DST [--calib-npz FILE ...]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.engines.base import TensorSpec, check_feeds
from gear_edge.engines.manifest_check import manifest_path_for, resolve_manifest, write_model_manifest
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import sha256_file

PathLike = str | os.PathLike
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")

# The weight type of int8 models meant for onnxruntime's CPU kernels. uint8 weights (U8U8) never saturate:
# with int8 weights (U8S8 / S8S8) x86 CPUs without VNNI (AVX2-only, e.g. many EPYC / Core parts) multiply
# through VPMADDUBSW, whose int16 pair sums saturate, and a net's outputs drift by 10x the quantisation
# noise (measured on an AVX2 EPYC: a Gemm head 3.3e-2 relative error with int8 weights, 2.4e-3 with
# uint8, 2.2e-3 for exact integer arithmetic in numpy). ARM and VNNI CPUs are exact with either.
CPU_WEIGHT_TYPE = "uint8"

_ONNX_ELEM = {  # onnx.TensorProto element types → numpy
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64,
}


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("quantisation needs the onnx package: pip install 'gear-edge[export]' (or pip install onnx)") from exc
    return onnx


def _quantization():
    try:
        from onnxruntime import quantization
    except ImportError as exc:  # pragma: no cover - onnxruntime is a runtime dependency
        raise MissingDependencyError("quantisation needs onnxruntime: pip install onnxruntime") from exc
    return quantization


def onnx_specs(path: PathLike) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph inputs (initializers excluded) and outputs of an ONNX file as TensorSpecs.

    Dynamic axes keep their symbolic name (``dim_param``) or become None when unnamed.
    """
    onnx = _onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from exc
    inits = {i.name for i in model.graph.initializer}

    def spec(vi) -> TensorSpec:
        t = vi.type.tensor_type
        if t.elem_type not in _ONNX_ELEM:
            raise InputError(f"{path}: tensor {vi.name!r} has ONNX element type {t.elem_type}, which gear_edge does not handle")
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        )
        return TensorSpec(vi.name, dims, np.dtype(_ONNX_ELEM[t.elem_type]))

    inputs = [spec(vi) for vi in model.graph.input if vi.name not in inits]
    outputs = [spec(vi) for vi in model.graph.output]
    return inputs, outputs


def _check_src_dst(src: PathLike, dst: PathLike) -> tuple[Path, Path]:
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise InputError(f"source model {src} does not exist")
    if src.resolve() == dst.resolve():
        raise InputError(f"destination {dst} is the source model; write the quantised model to another file")
    if dst.suffix != ".onnx":
        raise InputError(f"destination {dst} must end in .onnx (its manifest goes next to it as {dst.with_suffix('.toml').name})")
    src_manifest = resolve_manifest(src, "auto")
    if src_manifest is not None:
        src_manifest.verify(src)  # never quantise a tampered or truncated file
    dst.parent.mkdir(parents=True, exist_ok=True)
    return src, dst


def write_derived_manifest(
    src: PathLike,
    dst: PathLike,
    precision: str,
    *,
    licence: str | None = None,
    source: str | None = None,
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``dst``'s manifest, copying name stem, licence, source and descriptive keys from ``src``'s.

    ``src``'s manifest (``src.with_suffix('.toml')``) is verified first when it exists, so a tampered
    source cannot be laundered into a fresh manifest. Without one, ``licence`` / ``source`` default
    to 'unspecified' / 'derived from <src file>'.
    """
    src, dst = Path(src), Path(dst)
    src_manifest = resolve_manifest(src, "auto")
    fields: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    if src_manifest is not None:
        src_manifest.verify(src)
        for key, value in src_manifest.extra.items():
            if key in ("inputs", "outputs", "precision", "derived_from", "derived_from_sha256"):
                continue
            (tables if isinstance(value, Mapping) else fields)[key] = value
    fields.update({"derived_from": src.name, "derived_from_sha256": sha256_file(src)})
    fields.update(extra or {})
    inputs, outputs = onnx_specs(dst)
    return write_model_manifest(
        dst,
        inputs=inputs,
        outputs=outputs,
        name=name or dst.stem,
        licence=licence or (src_manifest.licence if src_manifest else "unspecified"),
        source=source or (src_manifest.source if src_manifest else f"derived from {src.name}"),
        precision=precision,
        extra=fields,
        tables={k: dict(v) for k, v in tables.items()},
    )


def to_fp16(
    src: PathLike,
    dst: PathLike,
    keep_io_types: bool = True,
    *,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
    licence: str | None = None,
    source: str | None = None,
) -> Path:
    """float32 → float16 weights and compute; with ``keep_io_types`` the graph's I/O stay float32
    (Cast nodes at the edges), so callers feed and receive the same arrays as for the fp32 model.

    ``op_block_list``: op types kept in float32 (default: onnxruntime's list of ops without fp16
    kernels). Returns the path of the written manifest.
    """
    src, dst = _check_src_dst(src, dst)
    onnx = _onnx()
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    try:
        model = onnx.load(str(src))
    except Exception as exc:
        raise InputError(f"{src}: not a readable ONNX model ({exc})") from exc
    blocked = list(DEFAULT_OP_BLOCK_LIST) + list(op_block_list or ())
    fp16 = convert_float_to_float16(
        model, keep_io_types=keep_io_types, op_block_list=blocked, node_block_list=list(node_block_list or [])
    )
    onnx.save(fp16, str(dst))
    return write_derived_manifest(
        src, dst, "fp16", licence=licence, source=source,
        extra={"quantizer": "onnxruntime.transformers.float16", "keep_io_types": bool(keep_io_types)},
    )


def quantize_dynamic_int8(
    src: PathLike,
    dst: PathLike,
    *,
    per_channel: bool = False,
    op_types: Sequence[str] | None = ("MatMul", "Gemm", "Attention", "LSTM", "GRU"),
    weight_type: str = CPU_WEIGHT_TYPE,
    licence: str | None = None,
    source: str | None = None,
) -> Path:
    """Dynamic int8 quantisation: 8-bit weights, activations quantised per call (no calibration).

    Suits MatMul-heavy graphs (e.g. a transformer decoder). ``op_types`` default excludes Conv
    (onnxruntime's ConvInteger has no int8-weight kernel on CPU); pass None for onnxruntime's
    default set. ``weight_type``: 'uint8' (default, exact on every CPU) or 'int8' (saturates on
    x86 CPUs without VNNI, see ``CPU_WEIGHT_TYPE``). Returns the path of the written manifest.
    """
    src, dst = _check_src_dst(src, dst)
    q = _quantization()
    wtype = weight_quant_type(q, weight_type)
    q.quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=list(op_types) if op_types else None,
        per_channel=per_channel, weight_type=wtype,
    )
    return write_derived_manifest(
        src, dst, "int8-dynamic", licence=licence, source=source,
        extra={"quantizer": "onnxruntime.quantization.quantize_dynamic", "per_channel": bool(per_channel),
               "weight_type": weight_type},
    )


def weight_quant_type(q: Any, name: str) -> Any:
    """onnxruntime.quantization.QuantType for 'int8' / 'uint8' (InputError otherwise)."""
    wtype = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8}.get(name)
    if wtype is None:
        raise InputError(f"weight_type must be 'int8' or 'uint8', got {name!r}")
    return wtype


class _FeedsReader:
    """A CalibrationDataReader over an iterable of feed dicts, each checked against the model's inputs."""

    def __init__(self, source: str, inputs: dict[str, TensorSpec], feeds: Iterable[Mapping[str, np.ndarray]], limit: int | None):
        self.source, self.inputs, self.limit = source, inputs, limit
        self._it: Iterator[Mapping[str, np.ndarray]] = iter(feeds)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.limit is not None and self.count >= self.limit:
            return None
        item = next(self._it, None)
        if item is None:
            return None
        checked = self.check(item, self.count)
        self.count += 1
        return checked

    def check(self, item: object, index: int) -> dict[str, np.ndarray]:
        if not isinstance(item, Mapping):
            raise InputError(f"{self.source}: calibration item {index} must be a dict of input name → array, got {type(item).__name__}")
        return check_feeds(f"{self.source} (calibration item {index})", self.inputs, item)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


ENTROPY_BINS = 2048  # histogram bins of the entropy calibrator (TensorRT's choice); 128 quantised bins


def _entropy_ranges(q, model_path: str, reader: "_FeedsReader", op_types: Sequence[str] | None, tmp: str) -> str:
    """Runs onnxruntime's entropy calibrator with ENTROPY_BINS bins; returns a calibration cache file."""
    import inspect

    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        raise MissingDependencyError(
            "entropy calibration needs onnxruntime's calibration_cache_path (onnxruntime>=1.32): "
            "pip install -U onnxruntime, or use method='minmax' / 'percentile'"
        )
    calibrator = create_calibrator(
        Path(model_path), list(op_types) if op_types else None,
        augmented_model_path=os.path.join(tmp, "augmented.onnx"),
        calibrate_method=q.CalibrationMethod.Entropy,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128},
    )
    calibrator.collect_data(reader)
    ranges = calibrator.compute_data()
    del calibrator
    path = os.path.join(tmp, "entropy_ranges.json")
    save_tensors_data(ranges, path)
    return path


def quantize_static_int8(
    src: PathLike,
    dst: PathLike,
    calibration: Iterable[Mapping[str, np.ndarray]],
    method: str = "minmax",
    per_channel: bool = True,
    *,
    for_tensorrt: bool = False,
    weight_type: str | None = None,
    max_samples: int | None = None,
    percentile: float = 99.999,
    preprocess: bool = True,
    op_types: Sequence[str] | None = None,
    nodes_to_exclude: Sequence[str] | None = None,
    licence: str | None = None,
    source: str | None = None,
) -> Path:
    """Static int8 in QDQ format, activation ranges calibrated on ``calibration`` (feed dicts,
    each like one ``Engine.run`` call; checked against the model's inputs).

    ``method``: 'minmax' | 'entropy' | 'percentile' (``percentile`` sets the clip point).
    ``for_tensorrt``: symmetric int8 activations and weights (what TensorRT's explicit quantisation
    takes); otherwise uint8 activations and ``weight_type`` weights (default ``CPU_WEIGHT_TYPE``,
    uint8: exact on every CPU; 'int8' is faster on VNNI CPUs but saturates on AVX2-only ones).
    ``preprocess``: onnxruntime's shape inference + graph optimisation first (recommended).
    Returns the path of the written manifest.
    """
    src, dst = _check_src_dst(src, dst)
    if method not in CALIBRATION_METHODS:
        raise InputError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    q = _quantization()
    inputs = {s.name: s for s in onnx_specs(src)[0]}
    feeds = iter(calibration)
    first = next(feeds, None)
    if first is None or max_samples == 0:
        raise InputError(f"{src}: the calibration data is empty; pass at least one feed dict (more is better)")
    reader = _FeedsReader(str(src), inputs, itertools.chain([first], feeds), max_samples)
    reader.check(first, 0)  # fail on a malformed first item before any work
    calib_method = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[method]
    extra_options: dict[str, Any] = {}
    if method == "percentile":
        extra_options["CalibPercentile"] = float(percentile)
    if for_tensorrt:
        if weight_type not in (None, "int8"):
            raise InputError(f"TensorRT takes symmetric int8 weights; weight_type {weight_type!r} "
                             "needs for_tensorrt=False")
        weight_type = "int8"
        extra_options.update({"ActivationSymmetric": True, "WeightSymmetric": True})
        act = q.QuantType.QInt8
    else:
        weight_type = weight_type or CPU_WEIGHT_TYPE
        act = q.QuantType.QUInt8
    wtype = weight_quant_type(q, weight_type)
    with tempfile.TemporaryDirectory(prefix="gear_edge_quant_") as tmp:
        model_in = str(src)
        if preprocess:
            pre = os.path.join(tmp, "preprocessed.onnx")
            q.shape_inference.quant_pre_process(str(src), pre, skip_symbolic_shape=False)
            model_in = pre
        kwargs: dict[str, Any] = {}
        if method == "entropy":
            # quantize_static's own entropy calibrator uses 128 histogram bins for 128 quantised bins,
            # which leaves a single candidate threshold (= min/max). Calibrate with 2048 bins here
            # and hand the ranges over as a calibration cache.
            kwargs["calibration_cache_path"] = _entropy_ranges(q, model_in, reader, op_types, tmp)
        q.quantize_static(
            model_in, str(dst), None if method == "entropy" else reader,
            quant_format=q.QuantFormat.QDQ, per_channel=per_channel, activation_type=act,
            weight_type=wtype, calibrate_method=calib_method,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=list(nodes_to_exclude) if nodes_to_exclude else None,
            extra_options=extra_options, **kwargs,
        )
    return write_derived_manifest(
        src, dst, "int8", licence=licence, source=source,
        extra={"quantizer": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ",
               "calibration_method": method, "calibration_samples": reader.count, "per_channel": bool(per_channel),
               "activation_type": "int8" if for_tensorrt else "uint8", "weight_type": weight_type,
               "symmetric": bool(for_tensorrt),
               **({"calibration_bins": ENTROPY_BINS} if method == "entropy" else {})},
    )


def _npz_feeds(paths: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each .npz holds one feed dict (array name = input name)."""
    for p in paths:
        with np.load(p) as data:
            yield {k: data[k] for k in data.files}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.quantize", description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("fp16", "int8-dynamic", "int8-static"))
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--calib-npz", nargs="*", default=[], help="int8-static: .npz files, one feed dict each")
    ap.add_argument("--method", choices=CALIBRATION_METHODS, default="minmax")
    ap.add_argument("--per-tensor", action="store_true", help="int8-static: per-tensor instead of per-channel weights")
    ap.add_argument("--for-tensorrt", action="store_true", help="int8-static: symmetric int8 activations")
    ap.add_argument("--weight-type", choices=("uint8", "int8"), default=None,
                    help=f"CPU models' weight type (default {CPU_WEIGHT_TYPE}: exact on every CPU; int8 saturates on "
                         "x86 CPUs without VNNI)")
    args = ap.parse_args(argv)
    try:
        if args.mode == "fp16":
            out = to_fp16(args.src, args.dst)
        elif args.mode == "int8-dynamic":
            out = quantize_dynamic_int8(args.src, args.dst, weight_type=args.weight_type or CPU_WEIGHT_TYPE)
        else:
            if not args.calib_npz:
                raise InputError("int8-static needs calibration data: --calib-npz a.npz b.npz ...")
            out = quantize_static_int8(
                args.src, args.dst, _npz_feeds(args.calib_npz), method=args.method,
                per_channel=not args.per_tensor, for_tensorrt=args.for_tensorrt, weight_type=args.weight_type,
            )
    except (InputError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} and {out}")
    return 0


__all__ = [
    "CALIBRATION_METHODS", "CPU_WEIGHT_TYPE", "manifest_path_for", "onnx_specs", "quantize_dynamic_int8",
    "quantize_static_int8", "to_fp16", "weight_quant_type", "write_derived_manifest",
]

if __name__ == "__main__":
    sys.exit(main())
