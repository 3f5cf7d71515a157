"""``gear-edge data-engine IMAGES_DIR OUT_DIR``: the CLI adapter over :class:`~.engine.DataEngine`.

Parsing, the tqdm progress bar (images/min, pairs kept/rejected), the printed summary and the
exports; everything else lives in the library.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gear_edge.data_engine.taxonomy import CLASSES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Perceive every image of IMAGES_DIR once, write questions under the manipulation taxonomy "
                     f"({', '.join(CLASSES)}), keep those the deducer answers with the same regions. "
                     "Resumable: re-running with the same arguments continues where a killed run stopped.")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images (searched recursively)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (journal, annotations.json, pairs.jsonl, summary.json)")
    p.add_argument("--profile", "--config", dest="config", default="default",
                   help="pipeline profile (default, sam2) or a TOML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--per-class", type=int, default=3, metavar="N", help="template questions per taxonomy class and image (3)")
    p.add_argument("--classes", default="all", help=f"comma-separated taxonomy classes (default all: {','.join(CLASSES)})")
    p.add_argument("--llm-questions", type=int, default=0, metavar="K",
                   help="questions per image written by the local LLM under the scene grammar (default 0)")
    p.add_argument("--llm-temperature", type=float, default=0.0, help="LLM writer sampling temperature (seeded; 0 = greedy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image question choice (0)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (sorted paths)")
    p.add_argument("--max-targets", type=int, default=8, help="most regions in one answer (8)")
    p.add_argument("--min-iou", type=float, default=None,
                   help="also keep a pair whose deducer regions differ but whose mask IoU with the expected one is >= this")
    p.add_argument("--export", action="append", choices=("coco", "yolo"), default=[],
                   help="also export OUT_DIR/exports/<format> (repeatable)")
    p.add_argument("--coco-polygons", action="store_true", help="COCO export: polygons instead of RLE (holes filled)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="YOLO export: fraction of images in val (0.2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Bar:
    """tqdm bar with images/min and kept/rejected counts."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar = None
        self.t0 = time.perf_counter()
        self.done = self.kept = self.rejected = self.failed = 0

    def start(self, pending: int, finished: int) -> None:
        from tqdm import tqdm

        if finished:
            print(f"resuming: {finished} image(s) already done, {pending} to go", file=sys.stderr)
        self.bar = tqdm(total=pending, desc="images", unit="img", disable=self.disable or pending == 0)
        self.t0 = time.perf_counter()

    def update(self, result) -> None:
        if result.status == "done":
            self.done += 1
            self.kept += result.kept
            self.rejected += result.rejected
        else:
            self.failed += 1
            if self.bar is not None:
                self.bar.write(f"  {result.file_name}: skipped: {result.error}")
        if self.bar is not None:
            minutes = max(1e-9, (time.perf_counter() - self.t0) / 60.0)
            post = {"img/min": f"{(self.done + self.failed) / minutes:.1f}", "kept": self.kept, "rejected": self.rejected}
            if self.failed:
                post["failed"] = self.failed
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_summary(summary: dict) -> str:
    run = summary.get("this_run", {})
    lines = [
        f"images: {summary['images']} ({run.get('images', 0)} this run, {run.get('skipped_finished', 0)} already done, "
        f"{run.get('failed', 0)} failed)",
        f"this run: {run.get('images_per_min', 0.0):.1f} images/min on {run.get('threads', '?')} threads, "
        f"{run.get('seconds', 0.0):.1f} s",
        f"pairs: {summary['pairs_kept']} kept, {summary['pairs_rejected']} rejected "
        f"({summary['pairs_per_image']:.2f} per image)",
        f"{'class':<14}{'cands':>7}{'kept':>7}{'rej':>7}{'rej%':>7}  reasons",
    ]
    for cls, d in summary["by_class"].items():
        rate = "-" if d["rejection_rate"] is None else f"{100 * d['rejection_rate']:.1f}"
        reasons = ", ".join(f"{k} {v}" for k, v in d["reasons"].items())
        lines.append(f"{cls:<14}{d['candidates']:>7}{d['kept']:>7}{d['rejected']:>7}{rate:>7}  {reasons}")
    for f in summary.get("failed", []):
        lines.append(f"failed: {f['file_name']}: {f['error']}")
    return "\n".join(lines)


def cli(args: argparse.Namespace) -> int:
    from gear_edge.cli import _overrides
    from gear_edge.data_engine.engine import DataEngine, EngineSettings
    from gear_edge.data_engine.taxonomy import parse_classes

    settings = EngineSettings(
        profile=args.config, overrides=_overrides(args.set), seed=args.seed, per_class=args.per_class,
        classes=parse_classes(args.classes), llm_questions=args.llm_questions, llm_temperature=args.llm_temperature,
        max_targets=args.max_targets, min_iou=args.min_iou,
    )
    out_dir = Path(args.out_dir)
    engine = DataEngine(args.images_dir, out_dir, settings)
    bar = _Bar(args.no_progress)
    try:
        summary = engine.run(limit=args.limit, progress=bar.update, on_start=bar.start)
    finally:
        bar.close()
    print(format_summary(summary))
    print(f"wrote {out_dir / 'annotations.json'}, {out_dir / 'pairs.jsonl'}, {out_dir / 'rejected.jsonl'}, "
          f"{out_dir / 'summary.json'}")
    if args.export:
        from gear_edge.data_engine.export import export_coco, export_yolo

        for fmt in dict.fromkeys(args.export):
            dest = out_dir / "exports" / fmt
            if fmt == "coco":
                path = export_coco(out_dir, dest, segmentation="polygon" if args.coco_polygons else "rle")
            else:
                path = export_yolo(out_dir, dest, val_fraction=args.val_fraction)
            print(f"exported {fmt}: {path}")
    return 1 if summary.get("this_run", {}).get("failed") else 0
