"""Runs a pipeline over evaluation samples: perceive once per image, ask each query, score (LISA IoUs).

``evaluate(pipeline, samples)`` → :class:`EvalResult` (summary with gIoU / cIoU overall and per class,
and one record per sample). ``write_results`` stores ``eval.json``, ``samples.json`` and the per-class
plot (``per_class.png``, matplotlib, optional). A query the deducer rejects (InputError) is scored as
an empty prediction and its error is recorded; an unreadable image is an error naming the file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from gear_edge.errors import GearEdgeError, InputError
from gear_edge.eval.metrics import IoUAccumulator, intersection_union
from gear_edge.eval.readers import Sample


@dataclass
class EvalResult:
    summary: dict[str, Any]
    samples: list[dict[str, Any]]


def evaluate(pipeline: Any, samples: Sequence[Sample], *, progress: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
    """Scores ``pipeline`` (``perceive(image) -> Scene``, ``ask(scene, query) -> Answer``) on ``samples``."""
    import numpy as np

    from gear_edge.io import read_image

    if not samples:
        raise InputError("no samples to evaluate")
    missing = sorted({str(s.image_path) for s in samples if not Path(s.image_path).is_file()})
    if missing:
        raise InputError(f"{len(missing)} image file(s) do not exist, e.g. {missing[0]}")
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(str(s.image_path), []).append(s)
    acc = IoUAccumulator()
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    perceive_ms: list[float] = []
    for path, group in groups.items():
        image = read_image(path)
        shape = image.shape[:2]
        t0 = time.perf_counter()
        scene = pipeline.perceive(image)
        perceive_ms.append((time.perf_counter() - t0) * 1e3)
        for s in group:
            target = s.target(shape)
            t1 = time.perf_counter()
            error = None
            try:
                answer = pipeline.ask(scene, s.query)
                pred, targets = answer.bitmap(shape), list(answer.targets)
            except GearEdgeError as exc:
                if not isinstance(exc, InputError):
                    raise
                pred, targets, error = np.zeros(shape, dtype=bool), [], str(exc)
            ask_ms = (time.perf_counter() - t1) * 1e3
            inter, union = intersection_union(pred, target)
            iou = acc.add(inter, union, s.cls)
            rec = {"id": s.id, "image": path, "query": s.query, "class": s.cls, "iou": iou, "intersection": inter,
                   "union": union, "pred_area": int(pred.sum()), "target_area": int((target == 1).sum()),
                   "ignored": int((target == 255).sum()), "pred_targets": targets, "ask_ms": ask_ms, "error": error,
                   **({"meta": s.meta} if s.meta else {})}
            records.append(rec)
            if progress is not None:
                progress(rec)
    seconds = time.perf_counter() - t_start
    summary = acc.result()
    summary.update({
        "images": len(groups),
        "errors": sum(1 for r in records if r["error"]),
        "seconds": seconds,
        "mean_perceive_ms": float(np.mean(perceive_ms)) if perceive_ms else 0.0,
        "mean_ask_ms": float(np.mean([r["ask_ms"] for r in records])),
        "protocol": "LISA: pred = logits > 0 / binary mask at original resolution; target 255 ignored; "
                    "sample IoU = I / (U + 1e-5), 1.0 when U = 0; gIoU = mean sample IoU; cIoU = sum I / (sum U + 1e-10)",
    })
    return EvalResult(summary, records)


def write_results(result: EvalResult, out_dir: str | os.PathLike, *, plot: bool = True, title: str = "") -> dict[str, Path]:
    """``eval.json`` (summary), ``samples.json`` (per sample) and ``per_class.png`` (when ``plot``)."""
    from gear_edge.data_engine.journal import write_atomic

    out = Path(out_dir)
    paths = {
        "summary": write_atomic(out / "eval.json", json.dumps(result.summary, indent=1).encode()),
        "samples": write_atomic(out / "samples.json", json.dumps(result.samples, indent=1).encode()),
    }
    if plot:
        from gear_edge.eval.plot import plot_per_class

        paths["plot"] = plot_per_class(result.summary, out / "per_class.png", title=title)
    return paths
