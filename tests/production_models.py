"""The production path's exported models for the tests: random-initialised SAM2.1-tiny (encoder +
decoder ONNX with manifests, ``export.sam2_onnx``) and the tiny random Florence-2 captioner
(``export.captioner_onnx.build_tiny``), the same exporters the export parity tests run.

The parity tests check the exports against torch; here the files only have to be what the exporters
write, so the export-time checks are skipped. Set ``GEAR_EDGE_TEST_CACHE=DIR`` to keep the files
across runs (key: exporter sources, torch / sam2 / transformers / onnx versions, seed); without it
they go to the session's temporary directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
EXPORT_MODULES = ("torch", "torchvision", "sam2", "transformers", "onnx", "tokenizers")
MISSING = [m for m in EXPORT_MODULES if importlib.util.find_spec(m) is None]
SKIP_REASON = (
    f"{', '.join(MISSING)} not installed: exporting SAM2.1-tiny and the tiny captioner needs the [export] extra "
    "(bash scripts/setup_export.sh: torch, onnx, transformers and sam2==1.1.0)"
)


def _key() -> str:
    from importlib.metadata import version

    h = hashlib.sha256()
    for f in ("sam2_onnx.py", "onnx_graph.py", "captioner_onnx.py", "quantize.py"):
        h.update((ROOT / "export" / f).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps([version(m) for m in ("torch", "sam2", "transformers", "onnx")] + [SEED]).encode())
    return h.hexdigest()[:16]


def _complete(folder: Path) -> bool:
    from gear_edge.errors import InputError
    from gear_edge.manifest import Manifest

    try:
        for role in ("encoder", "decoder"):
            Manifest.load(folder / "sam2" / f"{role}.toml").verify(folder / "sam2" / f"{role}.onnx")
        return (folder / "captioner" / "captioner.json").is_file()
    except InputError:
        return False


def _export(folder: Path) -> None:
    import torch

    from export import sam2_onnx as so
    from export.captioner_onnx import build_tiny

    torch.set_num_threads(2)
    (folder / "sam2").mkdir(parents=True)
    model = so.build_model("tiny", random_init=True, seed=SEED)
    so.export_encoder(model, folder / "sam2" / "encoder.onnx", check=False)
    so.export_decoder(model, folder / "sam2" / "decoder.onnx", check=False)
    del model
    build_tiny(folder / "captioner", seed=SEED, verify_tokens=False, threads=2)


_EXPORTED: dict[str, Path] = {}  # once per test session (several test modules use the models)


def production_models(tmp_dir: Path) -> dict[str, Path]:
    """``{"encoder", "decoder", "captioner"}`` paths, exported (or taken from the cache) now."""
    if _EXPORTED and all(p.exists() for p in _EXPORTED.values()):
        return dict(_EXPORTED)
    cache_root = os.environ.get("GEAR_EDGE_TEST_CACHE")
    folder = Path(cache_root) / f"production-models-{_key()}" if cache_root else Path(tmp_dir) / "production-models"
    if not _complete(folder):
        if cache_root:  # export beside the cache, then publish atomically
            Path(cache_root).mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=Path(cache_root)))
            shutil.rmtree(staging)
            _export(staging)
            shutil.rmtree(folder, ignore_errors=True)
            try:
                staging.rename(folder)
            except OSError:  # a concurrent run won
                shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            _export(folder)
    _EXPORTED.update({"encoder": folder / "sam2" / "encoder.onnx", "decoder": folder / "sam2" / "decoder.onnx",
                      "captioner": folder / "captioner"})
    return dict(_EXPORTED)
