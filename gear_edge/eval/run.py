"""``gear-edge eval DATASET``: the CLI adapter over :mod:`gear_edge.eval` (parsing, progress, printing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("auto", "reasonseg", "refcoco", "engine")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("gIoU / cIoU (LISA's definitions) of a pipeline profile on a dataset: a ReasonSeg folder, "
                     "RefCOCO-style COCO annotations + refs, or a data engine output folder.")
    p.add_argument("dataset", metavar="DATASET",
                   help="ReasonSeg folder (image + JSON pairs), data engine OUT_DIR, or RefCOCO instances.json")
    p.add_argument("--format", choices=FORMATS, default="auto", help="dataset layout (default: detect)")
    p.add_argument("--images", help="image folder (RefCOCO: required; engine output: overrides the recorded one)")
    p.add_argument("--refs", help="RefCOCO refs file (refs(unc).p pickle or JSON list)")
    p.add_argument("--split", default="val", help="RefCOCO split (default val; 'all' for every ref)")
    p.add_argument("--all-queries", action="store_true",
                   help="ReasonSeg: every query of an image (LISA's validation uses the first only)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N samples")
    p.add_argument("--out", default="results/eval", help="output folder (eval.json, samples.json, per_class.png)")
    p.add_argument("--config", "--profile", dest="config", default="default", help="profile (default, sam2) or a TOML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--no-plot", action="store_true", help="skip the matplotlib plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def detect_format(dataset: Path, refs: str | None) -> str:
    from gear_edge.errors import InputError

    if dataset.is_dir():
        if (dataset / "annotations.json").is_file() and (dataset / "pairs.jsonl").is_file():
            return "engine"
        if any(dataset.glob("*.json")):
            return "reasonseg"
        raise InputError(f"{dataset}: neither a data engine output (annotations.json + pairs.jsonl) nor a ReasonSeg "
                         "folder (*.json next to images)")
    if dataset.is_file() and refs:
        return "refcoco"
    if dataset.is_file():
        raise InputError(f"{dataset} is a file: for RefCOCO pass --refs REFS and --images DIR")
    raise InputError(f"dataset {dataset} does not exist")


def load_samples(args: argparse.Namespace):
    from gear_edge.errors import InputError
    from gear_edge.eval import readers

    dataset = Path(args.dataset)
    fmt = args.format if args.format != "auto" else detect_format(dataset, args.refs)
    if fmt == "reasonseg":
        samples = readers.read_reasonseg(dataset, all_queries=args.all_queries)
    elif fmt == "refcoco":
        if not args.refs or not args.images:
            raise InputError("RefCOCO evaluation needs --refs REFS and --images DIR")
        samples = readers.read_refcoco(dataset, args.refs, args.images, split=None if args.split == "all" else args.split)
    else:
        samples = readers.read_engine(dataset, args.images)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit must be >= 1, got {args.limit}")
        samples = samples[: args.limit]
    return fmt, samples


def format_summary(summary: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.4f}"

    lines = [f"{'class':<16}{'n':>6}{'gIoU':>9}{'cIoU':>9}"]
    for cls, d in summary["by_class"].items():
        lines.append(f"{cls:<16}{d['n']:>6}{f(d['gIoU']):>9}{f(d['cIoU']):>9}")
    lines.append(f"{'all':<16}{summary['n']:>6}{f(summary['gIoU']):>9}{f(summary['cIoU']):>9}")
    lines.append(f"{summary['images']} images, {summary['errors']} query errors, {summary['seconds']:.1f} s "
                 f"(perceive {summary['mean_perceive_ms']:.0f} ms/image, ask {summary['mean_ask_ms']:.1f} ms/query)")
    return "\n".join(lines)


def cli(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gear_edge.cli import _overrides
    from gear_edge.eval.evaluate import evaluate, write_results
    from gear_edge.pipeline import GearSeg

    fmt, samples = load_samples(args)
    gs = GearSeg.from_config(args.config, _overrides(args.set))
    bar = tqdm(total=len(samples), desc=f"eval {fmt}", unit="q", disable=args.no_progress)

    def progress(rec: dict) -> None:
        bar.update(1)

    try:
        result = evaluate(gs, samples, progress=progress)
    finally:
        bar.close()
    result.summary.update({"dataset": str(Path(args.dataset).resolve()), "format": fmt, "config": gs.config.source})
    paths = write_results(result, args.out, plot=not args.no_plot, title=f"{Path(args.dataset).name} ({fmt}, {args.config})")
    print(format_summary(result.summary))
    for k, p in paths.items():
        print(f"wrote {k}: {p}")
    if result.summary["errors"]:
        print(f"{result.summary['errors']} queries raised errors (scored as empty predictions; see samples.json)",
              file=sys.stderr)
    return 0
