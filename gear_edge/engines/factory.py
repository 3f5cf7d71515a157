"""Build an Engine from configuration: ONNX Runtime (TensorRT → CUDA → CPU providers) or a TensorRT plan.

``[engines]`` keys read here: ``backend`` ('onnxruntime' | 'tensorrt'), ``providers`` (e.g.
``["tensorrt", "cuda", "cpu"]``, in priority order), ``plan_dir`` (TensorRT plans / the TensorRT EP's
engine cache), ``precision`` ('fp32' | 'fp16' | 'int8'), ``device_id``, ``allow_fallback`` (drop
providers this onnxruntime build lacks, with a warning, instead of failing) and ``threads``
(intra-op threads; 0 = ``[runtime] threads``). Each model family may override any of them in its own
section, ``[engines.<model>]`` for ``model`` in :data:`MODELS` (e.g. ``[engines.ocr] providers =
["cpu"]`` while the rest runs on TensorRT).

With backend 'tensorrt', a ``.plan`` / ``.engine`` path is loaded directly; an ``.onnx`` path is
looked up in ``plan_dir`` under its engine cache key (model sha256 + TensorRT version + GPU name +
precision), as written by ``python -m export.build_engine``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gear_edge.engines.base import Engine
from gear_edge.engines.manifest_check import ManifestArg, resolve_manifest
from gear_edge.errors import InputError
from gear_edge.manifest import sha256_file

BACKENDS = ("onnxruntime", "tensorrt")
MODELS = ("sam2", "ocr", "captioner", "embedder")  # the [engines.<model>] override sections
ENGINE_KEYS = ("backend", "providers", "plan_dir", "precision", "device_id", "allow_fallback", "threads")
PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def find_cached_plan(
    onnx_path: str | os.PathLike, plan_dir: str | os.PathLike, precision: str, device_id: int = 0
) -> Path:
    """The plan built from ``onnx_path`` for this TensorRT version, GPU and precision, or InputError
    giving the command that builds it. Needs tensorrt and a GPU (for the key)."""
    from gear_edge.engines.tensorrt import cached_plan_path, engine_cache_key, gpu_name, tensorrt_version

    onnx_path = Path(onnx_path)
    manifest = resolve_manifest(onnx_path, "auto")
    if manifest is not None:
        manifest.verify(onnx_path)
        sha = manifest.sha256
    else:
        sha = sha256_file(onnx_path)
    version, gpu = tensorrt_version(), gpu_name(device_id)
    plan_dir = Path(plan_dir)
    # profiles are part of the key; a build with default profiles has none, otherwise match by prefix
    exact = cached_plan_path(plan_dir, onnx_path.stem, precision, engine_cache_key(sha, version, gpu, precision))
    if exact.is_file():
        return exact
    candidates = sorted(plan_dir.glob(f"{onnx_path.stem}.{precision}.*.plan"))
    for plan in candidates:
        pm = resolve_manifest(plan, "auto")
        if pm is not None and pm.extra.get("model_sha256") == sha and pm.extra.get("tensorrt_version") == version \
                and pm.extra.get("gpu_name") == gpu and pm.extra.get("precision") == precision:
            return plan
    raise InputError(
        f"no TensorRT plan for {onnx_path} ({precision}, TensorRT {version}, {gpu}) in {plan_dir}; build it with: "
        f"python -m export.build_engine {onnx_path} --precision {precision} --cache-dir {plan_dir}"
    )


def load_engine(
    path: str | os.PathLike,
    *,
    backend: str = "onnxruntime",
    providers: Sequence[str] = ("cpu",),
    threads: int | None = None,
    plan_dir: str | os.PathLike | None = None,
    precision: str = "fp32",
    device_id: int = 0,
    manifest: ManifestArg | str = "auto",
    allow_fallback: bool = False,
    **options: Any,
) -> Engine:
    """One engine for ``path`` on the chosen backend (``options`` go to the engine's constructor).
    ``allow_fallback`` (ONNX Runtime only): skip providers this build lacks instead of raising."""
    if backend not in BACKENDS:
        raise InputError(f"engine backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"engine precision must be 'fp32', 'fp16' or 'int8', got {precision!r}")
    path = Path(path)
    if backend == "onnxruntime":
        if path.suffix in PLAN_SUFFIXES:
            raise InputError(f"{path} is a TensorRT plan; set [engines] backend = 'tensorrt' to run it")
        from gear_edge.engines.onnx import OnnxEngine

        cache = Path(plan_dir) / "ort_trt_cache" if plan_dir else None
        return OnnxEngine(
            path, providers=tuple(providers), threads=threads, manifest=manifest, fp16=precision == "fp16",
            int8=precision == "int8", cache_dir=cache, device_id=device_id, allow_fallback=allow_fallback, **options,
        )
    from gear_edge.engines.tensorrt import TensorRTEngine

    if path.suffix not in PLAN_SUFFIXES:
        if path.suffix != ".onnx":
            raise InputError(f"{path}: the tensorrt backend takes a plan ({', '.join(PLAN_SUFFIXES)}) or an .onnx with plan_dir")
        if plan_dir is None:
            raise InputError(f"{path}: the tensorrt backend needs [engines] plan_dir to find the plan built from this ONNX file")
        path = find_cached_plan(path, plan_dir, precision, device_id)
        manifest = "auto"
    return TensorRTEngine(path, manifest=manifest, device_id=device_id, **options)


def engine_settings(config: Any, model: str | None = None) -> dict[str, Any]:
    """Keyword arguments for :func:`load_engine` from a :class:`gear_edge.config.Config` or a plain
    mapping shaped like its sections (``{"engines": {...}, "engines.ocr": {...}, "runtime": {...}}``):
    ``[engines]``, overridden key by key by ``[engines.<model>]`` when ``model`` is given."""
    if model is not None and model not in MODELS:
        raise InputError(f"engine settings: unknown model family {model!r} (known: {', '.join(MODELS)})")
    if hasattr(config, "section") and hasattr(config, "path"):
        eng, runtime = config.section("engines"), config.section("runtime")
        plan_dir = config.path("engines", "plan_dir")
        if model is not None:  # None = not overridden
            own = {k: v for k, v in config.section(f"engines.{model}").items() if v is not None}
            eng.update(own)
            if own.get("plan_dir"):
                plan_dir = config.path(f"engines.{model}", "plan_dir")
    elif isinstance(config, Mapping):
        eng, runtime = dict(config.get("engines", {})), dict(config.get("runtime", {}))
        if model is not None:
            eng.update({k: v for k, v in config.get(f"engines.{model}", {}).items() if v is not None})
        plan_dir = eng.get("plan_dir") or None
    else:
        raise InputError(f"engine settings need a Config or a mapping of sections, got {type(config).__name__}")
    where = "[engines]" if model is None else f"[engines] / [engines.{model}]"
    providers = eng.get("providers", ["cpu"])
    if not isinstance(providers, (list, tuple)) or not providers:
        raise InputError(f"{where} providers must be a non-empty list such as ['tensorrt', 'cuda', 'cpu'], got {providers!r}")
    threads = eng.get("threads") or runtime.get("threads")
    settings: dict[str, Any] = {
        "backend": eng.get("backend", "onnxruntime"),
        "providers": tuple(str(p) for p in providers),
        "threads": None if threads is None else int(threads),
        "plan_dir": plan_dir,
        "precision": eng.get("precision", "fp32"),
        "allow_fallback": bool(eng.get("allow_fallback", False)),
    }
    if "device_id" in eng:
        settings["device_id"] = int(eng["device_id"])
    return settings


def allow_unverified(config: Any) -> bool:
    """``[runtime] allow_unverified_models`` of a Config or a mapping of sections (default false)."""
    if hasattr(config, "section"):
        return bool(config.get("runtime", "allow_unverified_models"))
    return bool(dict(config.get("runtime", {})).get("allow_unverified_models", False))


def engine_from_config(path: str | os.PathLike, config: Any, model: str | None = None, *, key: str | None = None,
                       sha256: str = "", **options: Any) -> Engine:
    """The engine for model file ``path`` as ``config`` says for model family ``model`` (backend,
    providers, threads, plan_dir, ...; see :func:`engine_settings`); ``options`` win over both.

    The file is verified before it is loaded: against ``sha256`` (the config's ``<key>_sha256``) when
    given, else its manifest (``manifest=`` in ``options``, or the ``<stem>.toml`` next to it); a file
    with neither is refused unless ``[runtime] allow_unverified_models``. ``key`` names the config
    setting in errors (e.g. ``segment.sam2.encoder``).
    """
    from gear_edge.manifest import check_model_file

    settings = engine_settings(config, model)
    settings.update(options)
    if settings.get("manifest", "auto") == "auto":  # an explicit manifest is checked by the engine itself
        check_model_file(path, key or f"model {Path(path).name}", sha256=sha256, allow_unverified=allow_unverified(config),
                         sha_setting=f"{key}_sha256" if key else "its sha256")
    return load_engine(path, **settings)
