"""What a GearSeg config runs: the name and sha256 of every model (or algorithm) it uses (data engine records, benchmarks).

Model files are hashed (sha256 of the bytes actually on disk; shipped manifests are checked with
:meth:`gear_edge.manifest.Manifest.verify`, which caches by file state). Algorithms without a file
(the classical segmenter) are identified by the sha256 of their canonical parameters, marked
``"kind": "algorithm"``. A model that the config names but that is not installed is recorded with the
manifest's hash and ``"installed": false`` (it cannot have produced anything, but says what would).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gear_edge.config import Config
from gear_edge.deduce.llm import DIRECT_ADAPTER, PROGRAM_ADAPTER  # llama_cpp is imported only when a model loads
from gear_edge.errors import InputError
from gear_edge.manifest import Manifest, sha256_file

OCR_MANIFESTS = ("ppocr_v4_det", "ppocr_v4_rec", "ppocr_mobile_v2_cls")
EMBED_MANIFESTS = ("minilm-l6-int8", "minilm-l6-tokenizer")
LLM_MANIFEST = "smollm2-135m-instruct-q4_1"


def _params_sha(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _manifest_entry(role: str, name: str) -> dict[str, Any]:
    m = Manifest.named(name)
    entry = {"role": role, "name": m.name, "file": m.file, "sha256": m.sha256, "kind": "model"}
    try:
        m.verify(m.locate())
        entry["installed"] = True
    except InputError:
        entry["installed"] = False
    return entry


def _file_entry(role: str, path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{role}: model file {path} does not exist")
    return {"role": role, "name": path.name, "file": str(path), "sha256": sha256_file(path), "kind": "model",
            "installed": True}


def model_inventory(config: Config) -> list[dict[str, Any]]:
    """One entry per model/algorithm of ``config``: ``role``, ``name``, ``sha256``, ``kind``, ..."""
    out: list[dict[str, Any]] = []
    kind = config.get("segment", "kind")
    if kind == "classical":
        from gear_edge.segment.classical import ClassicalSegmenter

        params = config.section("segment.classical")
        name = ClassicalSegmenter.name
        out.append({"role": "segmenter", "name": name, "sha256": _params_sha({"name": name, **params}),
                    "kind": "algorithm", "params": params})
    else:
        for key in ("encoder", "decoder"):
            p = config.path("segment.sam2", key)
            if p is None:
                raise InputError(f"config [segment.sam2] {key} is empty; the sam2 profile needs exported ONNX files")
            out.append(_file_entry(f"segmenter.{key}", p))
    if config.get("describe", "ocr", False):
        out += [_manifest_entry("ocr", n) for n in OCR_MANIFESTS]
    cap = config.path("describe", "captioner")
    if cap is not None:
        if not cap.is_dir():
            raise InputError(f"config [describe] captioner: {cap} is not a directory")
        out += [_file_entry("captioner", f) for f in sorted(cap.iterdir()) if f.is_file()]
    model = config.path("deduce", "model")
    out.append(_manifest_entry("deducer.llm", LLM_MANIFEST) if model is None else _file_entry("deducer.llm", model))
    adapter = str(config.get("deduce", "adapter", "") or "").strip()
    if adapter == "auto":  # the shipped adapter of the mode, on the default model only (assemble)
        if model is None:
            direct = config.get("deduce", "mode", "program") == "direct"
            out.append(_manifest_entry("deducer.adapter", DIRECT_ADAPTER if direct else PROGRAM_ADAPTER))
    elif adapter:
        out.append(_file_entry("deducer.adapter", config.path("deduce", "adapter")))
    if config.get("deduce", "mode", "program") == "program":
        out += [_manifest_entry("deducer.embedder", n) for n in EMBED_MANIFESTS]
    return out


def compact(inventory: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{"role", "name", "sha256"}]``: what each QA record carries."""
    return [{"role": e["role"], "name": e["name"], "sha256": e["sha256"]} for e in inventory]
