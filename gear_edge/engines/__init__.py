"""Inference engines: one protocol (named numpy inputs → named numpy outputs), several backends.

Stages depend on :class:`Engine`, never on a backend. ``OnnxEngine`` (alias ``OnnxRuntimeEngine``)
runs ONNX Runtime (CPU, CUDA or TensorRT execution providers); ``TensorRTEngine``
(``gear_edge.engines.tensorrt``) runs a serialized TensorRT plan and needs the ``[gpu]`` extra.
``load_engine`` / ``engine_from_config`` pick the backend from configuration. Model manifests that
list tensor specs are checked at load (``gear_edge.engines.manifest_check``).
"""

from gear_edge.engines.base import Engine, TensorSpec, check_feeds
from gear_edge.engines.factory import engine_from_config, engine_settings, load_engine
from gear_edge.engines.manifest_check import check_against_manifest, manifest_path_for, write_model_manifest
from gear_edge.engines.onnx import OnnxEngine, OnnxRuntimeEngine, available_providers, provider_settings
from gear_edge.engines.tensorrt import TensorRTEngine  # importable everywhere; constructing it needs tensorrt + a GPU


__all__ = [
    "Engine", "TensorSpec", "check_feeds", "OnnxEngine", "OnnxRuntimeEngine", "TensorRTEngine",
    "available_providers", "provider_settings", "load_engine", "engine_from_config", "engine_settings",
    "check_against_manifest", "manifest_path_for", "write_model_manifest",
]
