"""TensorRT engine: a serialized plan run with the TensorRT 10 tensor API (needs the ``[gpu]`` extra).

``TensorRTEngine(plan)`` deserialises the plan, allocates device buffers with cuda-python
(``cuda.bindings.runtime``, or the older ``cuda.cudart``) or pycuda — whichever imports — and per
call sets the input shapes (checked against the optimisation profile's min/max first), grows device
buffers only when a call needs more bytes, runs ``execute_async_v3`` on its own stream and returns
numpy arrays. Same :class:`~gear_edge.engines.Engine` protocol as the ONNX Runtime engine.

The logic around the GPU is in pure functions, tested without one: dtype mapping
(:func:`numpy_dtype`), profile checks (:func:`check_profile_shape`), buffer sizes
(:func:`buffer_nbytes`, :class:`GrowOnlyBuffers`) and engine cache keys (:func:`engine_cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.engines.base import Dim, TensorSpec, check_feeds
from gear_edge.engines.manifest_check import (
    ManifestArg,
    check_against_manifest,
    manifest_specs,
    resolve_manifest,
)
from gear_edge.errors import InputError, MissingDependencyError

PRECISIONS = ("fp32", "fp16", "int8")
TRT_INSTALL = "pip install 'gear-edge[gpu]' (tensorrt>=10 and cuda-python) on a machine with an NVIDIA GPU"

# TensorRT DataType member names → numpy. BF16 / FP8 / INT4 / FP4 have no numpy equivalent.
_TRT_TO_NUMPY: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
}

Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # (min, opt, max) of one input


# ---- pure helpers (no TensorRT, no GPU) ---------------------------------------------------------


def numpy_dtype(trt_dtype: Any, tensor: str = "", source: str = "") -> np.dtype:
    """TensorRT ``DataType`` (member or its name, e.g. 'HALF' / 'DataType.HALF') → numpy dtype."""
    name = str(getattr(trt_dtype, "name", trt_dtype)).split(".")[-1].upper()
    if name not in _TRT_TO_NUMPY:
        where = f"{source}: tensor {tensor!r}" if tensor else "a tensor"
        raise InputError(
            f"{where} has TensorRT type {name}, which has no numpy equivalent "
            f"(supported: {', '.join(_TRT_TO_NUMPY)}); rebuild the plan with float32/float16 I/O"
        )
    return _TRT_TO_NUMPY[name]


def buffer_nbytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes for a tensor of ``shape`` and ``dtype``; every dim must be known (>= 0)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise InputError(f"buffer size needs a concrete shape, got {dims} (-1 = not yet resolved)")
    return int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize


def spec_from_trt(name: str, shape: Sequence[int], dtype: Any, source: str = "", symbols: Sequence[Dim] | None = None) -> TensorSpec:
    """A TensorSpec from TensorRT's view of a tensor: -1 dims are dynamic (named from ``symbols``,
    e.g. the manifest's axis names, when given and of the same rank)."""
    dims: list[Dim] = []
    for axis, d in enumerate(shape):
        if int(d) >= 0:
            dims.append(int(d))
        else:
            sym = symbols[axis] if symbols is not None and len(symbols) == len(shape) else None
            dims.append(sym if isinstance(sym, str) and sym else None)
    return TensorSpec(name, tuple(dims), numpy_dtype(dtype, name, source))


def check_profile_shape(source: str, name: str, shape: Sequence[int], profile: Profile) -> None:
    """Raises InputError naming the tensor when ``shape`` is outside the profile's [min, max]."""
    lo, _, hi = profile
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(lo):
        raise InputError(f"{source}: input {name!r} has rank {len(shape)} ({list(shape)}), the engine expects rank {len(lo)}")
    for axis, (got, a, b) in enumerate(zip(shape, lo, hi)):
        if not a <= got <= b:
            raise InputError(
                f"{source}: input {name!r} axis {axis} is {got}, outside the engine's optimisation profile "
                f"[{a}, {b}] (min {list(lo)}, max {list(hi)}); split the batch or rebuild the engine with a larger profile"
            )


def engine_cache_key(
    model_sha256: str,
    trt_version: str,
    gpu_name: str,
    precision: str,
    profiles: Mapping[str, Sequence[Sequence[int]]] | None = None,
) -> str:
    """A 20-hex-digit key for a built plan: model sha256 + TensorRT version + GPU name + precision
    (+ the min/opt/max profile shapes). Any change in these gives a different key; the order of
    ``profiles`` does not matter."""
    sha = str(model_sha256).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise InputError(f"engine cache key: model_sha256 must be 64 hex digits, got {model_sha256!r}")
    if precision not in PRECISIONS:
        raise InputError(f"engine cache key: precision must be one of {PRECISIONS}, got {precision!r}")
    if not str(trt_version).strip() or not str(gpu_name).strip():
        raise InputError("engine cache key: the TensorRT version and the GPU name must be non-empty")
    canon_profiles = {
        k: [[int(d) for d in s] for s in v] for k, v in sorted((profiles or {}).items())
    }
    payload = json.dumps(
        {"model": sha, "tensorrt": str(trt_version).strip(), "gpu": " ".join(str(gpu_name).split()),
         "precision": precision, "profiles": canon_profiles},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cached_plan_path(cache_dir: str | os.PathLike, model_stem: str, precision: str, key: str) -> Path:
    """Where the plan with cache ``key`` lives: ``<cache_dir>/<stem>.<precision>.<key>.plan``."""
    return Path(cache_dir) / f"{model_stem}.{precision}.{key}.plan"


class GrowOnlyBuffers:
    """Named device buffers that are reallocated only when a call needs more bytes than they hold.

    ``alloc(nbytes) -> pointer`` and ``free(pointer)`` come from the CUDA backend. ``ensure``
    returns the pointer for ``name`` holding at least ``nbytes`` (at least 1 byte is allocated so a
    zero-sized tensor still gets a valid address).
    """

    def __init__(self, alloc: Callable[[int], int], free: Callable[[int], None]) -> None:
        self._alloc, self._free = alloc, free
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity bytes)
        self.allocations = 0

    def ensure(self, name: str, nbytes: int) -> int:
        need = max(int(nbytes), 1)
        held = self._buffers.get(name)
        if held is not None and held[1] >= need:
            return held[0]
        if held is not None:
            self._free(held[0])
            del self._buffers[name]
        ptr = int(self._alloc(need))
        self._buffers[name] = (ptr, need)
        self.allocations += 1
        return ptr

    def capacity(self, name: str) -> int:
        return self._buffers.get(name, (0, 0))[1]

    def release(self) -> None:
        for ptr, _ in self._buffers.values():
            self._free(ptr)
        self._buffers.clear()


# ---- optional dependencies ----------------------------------------------------------------------


def import_tensorrt():
    """The ``tensorrt`` module (>= 10), or MissingDependencyError saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(f"tensorrt not installed: {TRT_INSTALL}") from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise MissingDependencyError(f"tensorrt {trt.__version__} is too old: the engine uses the TensorRT 10 tensor API; {TRT_INSTALL}")
    return trt


class CudaRuntime:
    """Device memory, copies and a stream through cuda-python or pycuda (whichever imports)."""

    def __init__(self, device_id: int = 0) -> None:
        self.device_id = int(device_id)
        self.backend, self._rt = self._load()
        if self.backend == "cuda-python":
            count = self._check(self._rt.cudaGetDeviceCount())
            if count < 1:
                raise MissingDependencyError("no CUDA device: cudaGetDeviceCount() reports 0 GPUs")
            if self.device_id >= count:
                raise InputError(f"CUDA device {self.device_id} does not exist ({count} device(s))")
            self._check(self._rt.cudaSetDevice(self.device_id))
            self._stream = self._check(self._rt.cudaStreamCreate())
            self.stream_handle = int(self._stream)
        else:
            drv = self._rt
            if drv.Device.count() < 1:
                raise MissingDependencyError("no CUDA device: pycuda reports 0 GPUs")
            self._ctx = drv.Device(self.device_id).retain_primary_context()
            self._ctx.push()
            self._stream = drv.Stream()
            self.stream_handle = int(self._stream.handle)
            self._allocs: dict[int, Any] = {}

    @staticmethod
    def _load():
        try:
            from cuda.bindings import runtime as rt  # cuda-python >= 12.6

            return "cuda-python", rt
        except ImportError:
            pass
        try:
            from cuda import cudart as rt  # older cuda-python

            return "cuda-python", rt
        except ImportError:
            pass
        try:
            import pycuda.driver as drv

            drv.init()
            return "pycuda", drv
        except ImportError:
            raise MissingDependencyError(
                "no CUDA Python bindings: pip install cuda-python (or pycuda, which needs the CUDA toolkit)"
            ) from None
        except Exception as exc:  # pycuda raises its own errors when no driver/device is present
            raise MissingDependencyError(f"no CUDA device: pycuda could not initialise the driver ({exc})") from exc

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        code = int(getattr(err, "value", err))
        if code != 0:
            try:
                msg = self._rt.cudaGetErrorString(err)[1].decode()
            except Exception:  # pragma: no cover - best effort message
                msg = str(err)
            if code in (35, 100):  # cudaErrorInsufficientDriver, cudaErrorNoDevice
                raise MissingDependencyError(f"no CUDA device: {msg}")
            raise RuntimeError(f"CUDA error {code}: {msg}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else tuple(rest)

    def device_name(self) -> str:
        if self.backend == "cuda-python":
            props = self._check(self._rt.cudaGetDeviceProperties(self.device_id))
            name = props.name
            return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()
        return str(self._rt.Device(self.device_id).name())

    def malloc(self, nbytes: int) -> int:
        if self.backend == "cuda-python":
            return int(self._check(self._rt.cudaMalloc(int(nbytes))))
        alloc = self._rt.mem_alloc(int(nbytes))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        if self.backend == "cuda-python":
            self._check(self._rt.cudaFree(ptr))
        else:
            self._allocs.pop(int(ptr)).free()

    def htod(self, ptr: int, array: np.ndarray) -> None:
        if self.backend == "cuda-python":
            kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._check(self._rt.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self._stream))
        else:
            self._rt.memcpy_htod_async(ptr, array, self._stream)

    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        if self.backend == "cuda-python":
            kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._check(self._rt.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, self._stream))
        else:
            self._rt.memcpy_dtoh_async(array, ptr, self._stream)

    def synchronize(self) -> None:
        if self.backend == "cuda-python":
            self._check(self._rt.cudaStreamSynchronize(self._stream))
        else:
            self._stream.synchronize()

    def close(self) -> None:
        if self.backend == "cuda-python":
            if getattr(self, "_stream", None) is not None:
                self._rt.cudaStreamDestroy(self._stream)
                self._stream = None
        elif getattr(self, "_ctx", None) is not None:
            self._ctx.pop()
            self._ctx = None


# ---- the engine ---------------------------------------------------------------------------------


class TensorRTEngine:
    """A TensorRT plan (``.plan`` / ``.engine``) behind the Engine protocol.

    ``manifest``: as for :class:`~gear_edge.engines.OnnxEngine` ('auto' = the sibling ``.toml``,
    written by ``export/build_engine.py``); its dynamic axis names label the engine's -1 dims so
    inputs sharing an axis are checked to agree. ``profile_index``: which optimisation profile
    the execution context uses.
    """

    def __init__(
        self,
        plan_path: str | os.PathLike,
        *,
        manifest: ManifestArg | str = "auto",
        device_id: int = 0,
        profile_index: int = 0,
        verbose: bool = False,
    ) -> None:
        self.source = str(plan_path)
        if not Path(plan_path).is_file():
            raise InputError(f"TensorRT plan {self.source} does not exist")
        self.manifest = resolve_manifest(plan_path, manifest)
        if self.manifest is not None:
            self.manifest.verify(plan_path)
        trt = import_tensorrt()
        self._trt = trt
        self.cuda = CudaRuntime(device_id)
        self._buffers = GrowOnlyBuffers(self.cuda.malloc, self.cuda.free)
        self._logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise InputError(
                f"{self.source}: TensorRT {trt.__version__} cannot deserialise this plan; plans are tied to the "
                "TensorRT version and GPU they were built with — rebuild it with python -m export.build_engine"
            )
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            raise InputError(
                f"{self.source}: profile_index {profile_index} out of range (the plan has "
                f"{self.engine.num_optimization_profiles} optimisation profile(s))"
            )
        self.context = self.engine.create_execution_context()
        self.profile_index = int(profile_index)
        if profile_index:
            self.context.set_optimization_profile_async(profile_index, self.cuda.stream_handle)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        listed = manifest_specs(self.manifest) if self.manifest is not None else None
        symbols = {**(listed[0] if listed else {}), **(listed[1] if listed else {})}
        self.inputs: dict[str, TensorSpec] = {}
        self.outputs: dict[str, TensorSpec] = {}
        self.profiles: dict[str, Profile] = {}
        for name in names:
            shape = tuple(self.engine.get_tensor_shape(name))
            sym = symbols[name].shape if name in symbols else None
            spec = spec_from_trt(name, shape, self.engine.get_tensor_dtype(name), self.source, sym)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs[name] = spec
                if any(int(d) < 0 for d in shape):
                    lo, opt, hi = self.engine.get_tensor_profile_shape(name, self.profile_index)
                    self.profiles[name] = (tuple(lo), tuple(opt), tuple(hi))
            else:
                self.outputs[name] = spec
        if self.manifest is not None:
            check_against_manifest(self.source, self.inputs, self.outputs, self.manifest)

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        feeds = check_feeds(self.source, self.inputs, feeds)
        names = list(output_names) if output_names is not None else list(self.outputs)
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise InputError(f"{self.source}: unknown outputs {unknown}; the engine has {list(self.outputs)}")
        for name, arr in feeds.items():
            if name in self.profiles:
                check_profile_shape(self.source, name, arr.shape, self.profiles[name])
            if not self.context.set_input_shape(name, tuple(arr.shape)):
                raise InputError(f"{self.source}: TensorRT rejected shape {list(arr.shape)} for input {name!r}")
        for name, arr in feeds.items():
            ptr = self._buffers.ensure(name, arr.nbytes)
            self.cuda.htod(ptr, arr)
            self.context.set_tensor_address(name, ptr)
        results: dict[str, tuple[np.ndarray, int]] = {}
        for name, spec in self.outputs.items():  # every output needs an address, requested or not
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputError(f"{self.source}: output {name!r} shape {list(shape)} is unresolved after setting the inputs")
            ptr = self._buffers.ensure(name, buffer_nbytes(shape, spec.dtype))
            self.context.set_tensor_address(name, ptr)
            if name in names:
                results[name] = (np.empty(shape, dtype=spec.dtype), ptr)
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise RuntimeError(f"{self.source}: TensorRT execute_async_v3 failed (see the TensorRT log above)")
        for out, ptr in results.values():
            self.cuda.dtoh(out, ptr)
        self.cuda.synchronize()
        return {n: results[n][0] for n in names}

    def close(self) -> None:
        """Frees the device buffers and the stream (the engine is unusable afterwards)."""
        if getattr(self, "_buffers", None) is not None:
            self._buffers.release()
            self._buffers = None
        if getattr(self, "cuda", None) is not None:
            self.cuda.close()
            self.cuda = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the CUDA bindings may already be gone
            pass

    def __enter__(self) -> "TensorRTEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TensorRTEngine({self.source!r})"


def tensorrt_version() -> str:
    return str(import_tensorrt().__version__)


def gpu_name(device_id: int = 0) -> str:
    """Name of CUDA device ``device_id`` (part of the engine cache key)."""
    rt = CudaRuntime(device_id)
    try:
        return rt.device_name()
    finally:
        rt.close()
