"""Data engine: verified question–mask pairs under a manipulation taxonomy, resumable, with exports.

:class:`DataEngine` (``engine.py``) runs perceive → writers (``generate.py`` template writer,
``llm_writer.py``) → :class:`~.verify.Verifier` per image, journalled (``journal.py``);
``export.py`` turns an output into COCO / YOLO-seg datasets; ``run.py`` is the CLI adapter.
Names are imported lazily, so mounting the CLI does not load OpenCV.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "DataEngine": "gear_edge.data_engine.engine",
    "EngineSettings": "gear_edge.data_engine.engine",
    "check_complete": "gear_edge.data_engine.engine",
    "list_images": "gear_edge.data_engine.engine",
    "export_coco": "gear_edge.data_engine.export",
    "export_yolo": "gear_edge.data_engine.export",
    "CLASSES": "gear_edge.data_engine.taxonomy",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gear_edge.data_engine' has no attribute {name!r}")
