"""Evaluation: LISA's gIoU / cIoU (:mod:`.metrics`), dataset readers (:mod:`.readers`: ReasonSeg,
RefCOCO, data engine output), the evaluation loop (:mod:`.evaluate`), the per-class plot
(:mod:`.plot`, matplotlib) and the CLI adapter (:mod:`.run`). Names are imported lazily."""

from __future__ import annotations

from typing import Any

_LAZY = {
    "IoUAccumulator": "gear_edge.eval.metrics",
    "intersection_union": "gear_edge.eval.metrics",
    "sample_iou": "gear_edge.eval.metrics",
    "Sample": "gear_edge.eval.readers",
    "read_reasonseg": "gear_edge.eval.readers",
    "read_refcoco": "gear_edge.eval.readers",
    "read_engine": "gear_edge.eval.readers",
    "evaluate": "gear_edge.eval.evaluate",
    "write_results": "gear_edge.eval.evaluate",
    "EvalResult": "gear_edge.eval.evaluate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gear_edge.eval' has no attribute {name!r}")
