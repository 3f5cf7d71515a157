"""ONNX → TensorRT plan with the ``tensorrt`` Python API (needs the ``[gpu]`` extra and an NVIDIA GPU).

    python -m export.build_engine dec.onnx --precision fp16 --axis B=1,64,64 --axis Bm=1,1,64 \\
        --axis P=1,1,8 --cache-dir models/plans

- precision 'fp32' | 'fp16' | 'int8'. int8 takes a QDQ ONNX (explicit quantisation, e.g.
  ``export.quantize.quantize_static_int8(..., for_tensorrt=True)``) or calibration batches for an
  entropy calibrator (``--calib-npz``; the calibration cache is kept next to the plan).
- optimisation profile: min/opt/max per dynamic axis (``--axis B=1,16,64``: every input axis named
  ``B`` in the ONNX file gets that range; our SAM2 decoders name the prompt batch ``B``, the mask
  batch ``Bm`` (1 or B) and the points per prompt ``P``; automatic mask generation runs B = 64,
  Bm = 1, P = 1) or per input (``--profile point_coords:1x1x2,16x3x2,64x3x2``).
- engine cache: with ``--cache-dir`` the plan is ``<stem>.<precision>.<key>.plan`` where the key
  hashes model sha256 + TensorRT version + GPU name + precision + profiles
  (:func:`gear_edge.engines.tensorrt.engine_cache_key`); an existing plan for the same key is reused.
- a manifest TOML goes next to the plan (sha256, tensor specs, key parts, profiles), checked by
  :class:`gear_edge.engines.TensorRTEngine` at load; the TensorRT timing cache is kept in the cache dir.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from gear_edge.engines.base import TensorSpec
from gear_edge.engines.manifest_check import manifest_path_for, resolve_manifest, write_model_manifest
from gear_edge.engines.tensorrt import (
    PRECISIONS,
    CudaRuntime,
    cached_plan_path,
    engine_cache_key,
    import_tensorrt,
    spec_from_trt,
)
from gear_edge.errors import GearEdgeError, InputError, MissingDependencyError
from gear_edge.manifest import sha256_file

Shape = tuple[int, ...]
Profiles = dict[str, tuple[Shape, Shape, Shape]]


# ---- pure helpers -------------------------------------------------------------------------------


def parse_shape(text: str) -> Shape:
    """'1x3x1024x1024' → (1, 3, 1024, 1024)."""
    try:
        dims = tuple(int(d) for d in text.strip().lower().split("x"))
    except ValueError:
        raise InputError(f"shape {text!r} must be integers joined by 'x', e.g. 1x3x1024x1024") from None
    if not dims or any(d < 1 for d in dims):
        raise InputError(f"shape {text!r} needs positive dims")
    return dims


def parse_profile_arg(text: str) -> tuple[str, tuple[Shape, Shape, Shape]]:
    """'point_coords:1x1x2,16x3x2,64x3x2' → ('point_coords', ((1,1,2), (16,3,2), (64,3,2)))."""
    name, sep, shapes = text.rpartition(":")
    parts = shapes.split(",")
    if not sep or not name or len(parts) != 3:
        raise InputError(f"profile {text!r} must be NAME:MINx..,OPTx..,MAXx.. (three shapes)")
    lo, opt, hi = (parse_shape(p) for p in parts)
    return name, (lo, opt, hi)


def parse_axis_arg(text: str) -> tuple[str, tuple[int, int, int]]:
    """'B=1,16,64' → ('B', (1, 16, 64))."""
    name, sep, values = text.partition("=")
    try:
        lo, opt, hi = (int(v) for v in values.split(","))
    except ValueError:
        raise InputError(f"axis range {text!r} must be NAME=MIN,OPT,MAX, e.g. B=1,16,64") from None
    if not sep or not name.strip():
        raise InputError(f"axis range {text!r} must be NAME=MIN,OPT,MAX")
    if not 1 <= lo <= opt <= hi:
        raise InputError(f"axis range {text!r}: need 1 <= MIN <= OPT <= MAX")
    return name.strip(), (lo, opt, hi)


def profiles_for(
    inputs: Sequence[TensorSpec],
    axes: Mapping[str, tuple[int, int, int]] | None = None,
    explicit: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
) -> Profiles:
    """min/opt/max shapes for every input with a dynamic axis.

    ``explicit`` profiles win; other dynamic inputs take their ranges from ``axes`` by the axis's
    symbolic name. Raises InputError naming the tensor and axis that has no range, and checks that
    explicit shapes keep the fixed dims and rank of the model.
    """
    axes = dict(axes or {})
    explicit = dict(explicit or {})
    by_name = {s.name: s for s in inputs}
    unknown = [n for n in explicit if n not in by_name]
    if unknown:
        raise InputError(f"profiles given for {unknown}, which are not inputs of the model ({list(by_name)})")
    out: Profiles = {}
    for spec in inputs:
        dynamic = [i for i, d in enumerate(spec.shape) if not isinstance(d, int)]
        if spec.name in explicit:
            lo, opt, hi = (tuple(int(d) for d in s) for s in explicit[spec.name])
            for shape in (lo, opt, hi):
                if len(shape) != len(spec.shape):
                    raise InputError(f"profile for {spec.name!r}: {list(shape)} has rank {len(shape)}, the model has {spec.describe()}")
                for axis, (got, want) in enumerate(zip(shape, spec.shape)):
                    if isinstance(want, int) and got != want:
                        raise InputError(f"profile for {spec.name!r} axis {axis}: {got} but the model fixes it to {want}")
            for axis, (a, b, c) in enumerate(zip(lo, opt, hi)):
                if not 1 <= a <= b <= c:
                    raise InputError(f"profile for {spec.name!r} axis {axis}: need 1 <= min <= opt <= max, got {a}, {b}, {c}")
            out[spec.name] = (lo, opt, hi)
            continue
        if not dynamic:
            continue
        triple: list[list[int]] = [[], [], []]
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                rng = (d, d, d)
            elif isinstance(d, str) and d in axes:
                rng = axes[d]
            else:
                label = f"named {d!r}" if d else "unnamed"
                raise InputError(
                    f"input {spec.name!r} axis {axis} is dynamic ({label}) and has no range: pass --axis "
                    f"{d or 'NAME'}=MIN,OPT,MAX or --profile {spec.name}:MIN,OPT,MAX shapes"
                )
            for k in range(3):
                triple[k].append(int(rng[k]))
        out[spec.name] = (tuple(triple[0]), tuple(triple[1]), tuple(triple[2]))
    return out


def is_qdq_model(onnx_path: str | Path) -> bool:
    """True when the ONNX graph has QuantizeLinear/DequantizeLinear nodes (explicit int8)."""
    from export.quantize import _onnx

    model = _onnx().load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def calibration_cache_path(onnx_path: Path, model_sha256: str, plan_path: str | Path | None, cache_dir: str | Path | None) -> Path:
    """Where the int8 calibration cache of a model lives: next to the plan (or in the cache dir),
    keyed by the model's sha256 (calibration scales depend on the model, not on the GPU)."""
    base = Path(plan_path).parent if plan_path is not None else Path(cache_dir if cache_dir is not None else ".")
    return base / f"{Path(onnx_path).stem}.{model_sha256[:16]}.calib"


@dataclass(frozen=True)
class BuildResult:
    plan: Path
    manifest: Path
    key: str
    cache_hit: bool
    seconds: float


# ---- the build ----------------------------------------------------------------------------------


def _make_calibrator(trt, cuda: CudaRuntime, batches: Iterable[Mapping[str, np.ndarray]], cache_file: Path | None):
    """An entropy calibrator feeding ``batches`` (dicts of input arrays) to TensorRT."""

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._it = iter(batches)
            self._ptrs: dict[str, tuple[int, int]] = {}
            self.count = 0

        def get_batch_size(self) -> int:  # explicit-batch networks: the batch is in the shapes
            return 1

        def get_batch(self, names, p_str=None):
            feed = next(self._it, None)
            if feed is None:
                return None
            ptrs = []
            for name in names:
                if name not in feed:
                    raise InputError(f"calibration batch {self.count} lacks input {name!r} (has {list(feed)})")
                arr = np.ascontiguousarray(feed[name])
                ptr, cap = self._ptrs.get(name, (0, 0))
                if cap < arr.nbytes:
                    if ptr:
                        cuda.free(ptr)
                    ptr, cap = cuda.malloc(max(arr.nbytes, 1)), max(arr.nbytes, 1)
                    self._ptrs[name] = (ptr, cap)
                cuda.htod(ptr, arr)
                ptrs.append(ptr)
            cuda.synchronize()
            self.count += 1
            return ptrs

        def read_calibration_cache(self):
            if cache_file is not None and cache_file.is_file():
                return cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_file is not None:
                cache_file.write_bytes(bytes(cache))

        def release(self) -> None:
            for ptr, _ in self._ptrs.values():
                cuda.free(ptr)
            self._ptrs.clear()

    return _Calibrator()


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path | None = None,
    *,
    precision: str = "fp16",
    axes: Mapping[str, tuple[int, int, int]] | None = None,
    profiles: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
    calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
    cache_dir: str | Path | None = None,
    workspace_gib: float | None = None,
    device_id: int = 0,
    force: bool = False,
    verbose: bool = False,
) -> BuildResult:
    """Builds (or finds in ``cache_dir``) the plan of ``onnx_path``; see the module docstring."""
    from export.quantize import onnx_specs

    t0 = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX model {onnx_path} does not exist")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if plan_path is None and cache_dir is None:
        raise InputError("say where the plan goes: an output path or --cache-dir")
    src_manifest = resolve_manifest(onnx_path, "auto")
    if src_manifest is not None:
        src_manifest.verify(onnx_path)
    model_sha = src_manifest.sha256 if src_manifest is not None else sha256_file(onnx_path)
    onnx_inputs, onnx_outputs = onnx_specs(onnx_path)
    prof = profiles_for(onnx_inputs, axes, profiles)
    qdq = precision == "int8" and is_qdq_model(onnx_path)
    calib_cache = calibration_cache_path(onnx_path, model_sha, plan_path, cache_dir)
    if precision == "int8" and not qdq and calibration is None and not calib_cache.is_file():
        raise InputError(
            f"{onnx_path}: int8 needs a QDQ model (export.quantize.quantize_static_int8(..., for_tensorrt=True)), "
            f"calibration batches (--calib-npz) or a calibration cache at {calib_cache}"
        )

    trt = import_tensorrt()
    cuda = CudaRuntime(device_id)
    try:
        gpu = cuda.device_name()
        key = engine_cache_key(model_sha, trt.__version__, gpu, precision, prof)
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        plan = Path(plan_path) if plan_path is not None else cached_plan_path(cache_dir, onnx_path.stem, precision, key)
        manifest_file = manifest_path_for(plan)
        if not force and plan.is_file() and manifest_file.is_file():
            existing = resolve_manifest(plan, manifest_file)
            if existing.extra.get("cache_key") == key:
                existing.verify(plan)
                return BuildResult(plan, manifest_file, key, True, time.perf_counter() - t0)

        logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise InputError(f"{onnx_path}: the TensorRT ONNX parser failed: {errors}")
        config = builder.create_builder_config()
        if workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        trt_profile = None
        if prof:
            trt_profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in prof.items():
                trt_profile.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(trt_profile)
        timing_file = Path(cache_dir) / "timing.cache" if cache_dir is not None else None
        timing = config.create_timing_cache(timing_file.read_bytes() if timing_file and timing_file.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=True)
        calibrator = None
        if precision == "int8" and not qdq:
            calibrator = _make_calibrator(trt, cuda, calibration or (), calib_cache)
            config.int8_calibrator = calibrator
            if trt_profile is not None:
                config.set_calibration_profile(trt_profile)
        serialized = builder.build_serialized_network(network, config)
        if calibrator is not None:
            calibrator.release()
        if serialized is None:
            raise GearEdgeError(f"{onnx_path}: TensorRT could not build a {precision} engine (see the TensorRT log)")
        if timing_file is not None:
            timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
        plan.parent.mkdir(parents=True, exist_ok=True)
        tmp = plan.with_suffix(plan.suffix + ".tmp")
        tmp.write_bytes(bytes(serialized))
        tmp.replace(plan)

        symbols = {s.name: s.shape for s in (*onnx_inputs, *onnx_outputs)}
        ins = [network.get_input(i) for i in range(network.num_inputs)]
        outs = [network.get_output(i) for i in range(network.num_outputs)]
        in_specs = [spec_from_trt(t.name, tuple(t.shape), t.dtype, str(plan), symbols.get(t.name)) for t in ins]
        out_specs = [spec_from_trt(t.name, tuple(t.shape), t.dtype, str(plan), symbols.get(t.name)) for t in outs]
        manifest = write_model_manifest(
            plan, inputs=in_specs, outputs=out_specs,
            name=plan.stem,
            licence=src_manifest.licence if src_manifest else "unspecified",
            source=src_manifest.source if src_manifest else f"built from {onnx_path.name}",
            precision=precision,
            extra={"built_from": onnx_path.name, "model_sha256": model_sha, "tensorrt_version": str(trt.__version__),
                   "gpu_name": gpu, "cache_key": key, "explicit_quantization": bool(qdq),
                   "build_seconds": round(time.perf_counter() - t0, 3)},
            tables={"profiles": {n: [list(s) for s in p] for n, p in prof.items()}} if prof else None,
        )
        return BuildResult(plan, manifest, key, False, time.perf_counter() - t0)
    finally:
        cuda.close()


# ---- CLI ----------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", help="the ONNX model (its manifest .toml next to it is verified when present)")
    p.add_argument("-o", "--output", help="plan path (default: <cache-dir>/<stem>.<precision>.<key>.plan)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument("--axis", action="append", default=[], metavar="NAME=MIN,OPT,MAX",
                   help="range of a named dynamic axis, e.g. B=1,16,64 (repeatable)")
    p.add_argument("--profile", action="append", default=[], metavar="INPUT:MIN,OPT,MAX",
                   help="shapes of one input, e.g. point_coords:1x1x2,16x3x2,64x3x2 (repeatable)")
    p.add_argument("--cache-dir", help="engine cache directory (plans keyed by model/TensorRT/GPU/precision)")
    p.add_argument("--calib-npz", nargs="*", default=[], help="int8 without QDQ: .npz files, one feed dict each")
    p.add_argument("--workspace-gib", type=float, default=None)
    p.add_argument("--device", type=int, default=0, help="CUDA device id")
    p.add_argument("--force", action="store_true", help="rebuild even when the cache has the plan")
    p.add_argument("--trt-verbose", action="store_true", help="TensorRT's verbose log")


def cli(args: argparse.Namespace) -> int:
    from export.quantize import _npz_feeds

    axes = dict(parse_axis_arg(a) for a in args.axis)
    profiles = dict(parse_profile_arg(a) for a in args.profile)
    result = build_engine(
        args.onnx, args.output, precision=args.precision, axes=axes, profiles=profiles,
        calibration=_npz_feeds(args.calib_npz) if args.calib_npz else None, cache_dir=args.cache_dir,
        workspace_gib=args.workspace_gib, device_id=args.device, force=args.force, verbose=args.trt_verbose,
    )
    state = "cached" if result.cache_hit else f"built in {result.seconds:.1f} s"
    print(f"{result.plan} ({state}; key {result.key}; manifest {result.manifest})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.build_engine", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return cli(args)
    except (GearEdgeError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
