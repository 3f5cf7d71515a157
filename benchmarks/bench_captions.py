"""Captions on demand vs captioning every region: captioned regions per query, latency, same answers.

Fresh synthetic table-top scenes (gear_edge.synthetic shapes, 14 named objects each in random
colours and places, exact masks given to ``perceive``), and robot-style queries in eight categories
with several phrasings each, written before any run. Caption text comes from the scene truth
("a red mug": no trained captioner is available offline); the caption *cost* is real: each caption
request also runs the exported Florence-2 base architecture (random weights, from bench_pipeline's
cache) or the tiny random captioner on the same regions, when one is there. For every query, on a
fresh scene each time (a cold query): regions captioned on demand vs all, the ask latency with
captioning, and whether targets and logic chains are identical; plus one session (all queries on one
scene, captions cached across queries).

    python benchmarks/bench_captions.py --out results/bench_captions.json [--scenes 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import machine_info, write_json  # noqa: E402

COLOURS = {"red": (205, 30, 30), "blue": (30, 70, 215), "green": (40, 150, 50), "yellow": (235, 205, 40),
           "white": (235, 235, 235), "black": (25, 25, 25), "orange": (240, 130, 20), "purple": (130, 50, 160)}
OBJECTS = ("mug", "bottle", "scissors", "stapler", "book", "phone", "cup", "plate", "pen", "apple", "banana",
           "laptop", "ball", "box", "tape", "remote")

QUERIES = {
    "colour": ["the red one", "grab the blue thing", "pick up something yellow"],
    "position": ["the leftmost object", "the thing at the top right", "the biggest object"],
    "relation": ["the object left of the blue one", "whatever is next to the green thing"],
    "noun": ["the mug", "pass me the scissors", "where is the stapler"],
    "colour_noun": ["the red mug", "grab the green bottle", "hand me the yellow box"],
    "position_noun": ["the cup on the left", "the book at the bottom right"],
    "relation_noun": ["the mug next to the laptop", "the ball left of the box"],
    "purpose": ["something to cut paper with", "something I can drink from"],
}


def build_scene(seed: int):
    """(image, masks [N,H,W], captions) of a table with 14 objects in random colours, places, shapes."""
    from gear_edge.synthetic import SyntheticScene, background, coin_mask, disk, horse_mask, rect

    rng = np.random.default_rng(seed)
    h, w = 480, 640
    s = SyntheticScene(background(h, w))
    s.paste("table", rect(h, w, 10, 200, 630, 475), (125, 75, 35), seed=seed)
    captions = {"table": "a wooden table"}
    names = rng.choice(OBJECTS, 14, replace=False)
    cols = list(COLOURS)
    for k, name in enumerate(names):
        colour = cols[int(rng.integers(len(cols)))]
        x, y = int(rng.integers(20, 560)), int(rng.integers(60, 400))
        size = int(rng.integers(36, 70))
        shape = k % 4
        if shape == 0:
            m = rect(h, w, x, y, min(w, x + size), min(h, y + int(size * 0.7)))
        elif shape == 1:
            m = disk(h, w, x + size // 2, y + size // 2, size // 2)
        elif shape == 2:
            m = coin_mask(h, w, min(x, w - size), min(y, h - size), size)
        else:
            m = horse_mask(h, w, min(x, w - size - 1), min(y, h - size), size)
        s.paste(str(name), m, COLOURS[colour], seed=seed * 100 + k)
        captions[str(name)] = f"a {colour} {name}"
    keep = [n for n, m in s.masks.items() if m.sum() >= 200]  # fully occluded ones drop out
    return s.image, np.stack([s.masks[n] for n in keep]), [captions[n] for n in keep]


class TruthCaptioner:
    """Caption text from the scene truth (by region index in the order given to perceive); each request
    also runs ``cost`` (a real exported captioner) on the same regions, so the latency is real."""

    def __init__(self, masks: np.ndarray, captions: list[str], cost=None) -> None:
        import gear_edge.masks as gm

        self.truth = gm.encode(np.ascontiguousarray(masks))
        self.captions = captions
        self.cost = cost
        self.regions = 0

    def caption(self, image, rles):
        import gear_edge.masks as gm

        self.regions += len(rles)
        if self.cost is not None:
            self.cost.caption(image, rles, batch_size=8)
        iou = gm.iou(list(rles), self.truth)
        return [self.captions[int(np.argmax(row))] for row in iou]


def real_captioner(which: str):
    """(captioner, description) of the caption cost model: 'florence' (bench_pipeline's Florence-2
    base export), 'tiny' (the tests' tiny random export) or 'none'."""
    from gear_edge.describe.captioner import Captioner

    home = Path.home() / ".cache" / "gear_edge"
    globs = {"florence": (home / "bench", "florence2-base-*"), "tiny": (home / "test-cache", "production-models-*/captioner")}
    if which in globs:
        root, pattern = globs[which]
        for d in sorted(root.glob(pattern)):
            if (d / "captioner.json").is_file():
                return Captioner.from_dir(d, threads=2), f"{which} random-weight Florence-2 export ({d})"
    return None, f"none (no '{which}' captioner export in {home}; caption cost not measured)"


def _chain(answer) -> list[str]:
    """The logic chain without the LLM's cache note ('LLM (22 tokens)' vs 'LLM (cached)')."""
    return [re.sub(r"^LLM \((cached|\d+ tokens)\)", "LLM", s.text) for s in answer.steps]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/bench_captions.json")
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--cost", choices=("tiny", "florence", "none"), default="tiny", help="caption cost model")
    args = ap.parse_args(argv)
    from gear_edge.pipeline import GearSeg

    cost, cost_name = real_captioner(args.cost)
    base = GearSeg.from_config("default", {"describe.ocr": "false"})
    deducer = base.deducer  # one deducer (its LLM fills are cached per phrase) for both modes

    def pipeline(masks, captions, mode):
        cap = TruthCaptioner(masks, captions, cost)
        gs = GearSeg.from_config("default", {"describe.ocr": "false", "describe.captions": f'"{mode}"'},
                                 captioner=cap, deducer=deducer)
        return gs, cap

    rows, session = [], []
    for seed in range(args.scenes):
        image, masks, captions = build_scene(1000 + seed)
        n = len(masks)
        plain = base.perceive(image, masks=masks)  # no captioner: warms the LLM's per-phrase cache
        for cat, qs in QUERIES.items():
            for q in qs:
                base.ask(plain, q)  # so neither timed run below pays the first LLM call
                gs_all, cap_all = pipeline(masks, captions, "all")
                t0 = time.perf_counter()
                scene_all = gs_all.perceive(image, masks=masks)
                a = gs_all.ask(scene_all, q)
                all_ms = (time.perf_counter() - t0) * 1e3
                gs_od, cap_od = pipeline(masks, captions, "on_demand")
                t0 = time.perf_counter()
                scene_od = gs_od.perceive(image, masks=masks)
                b = gs_od.ask(scene_od, q)
                od_ms = (time.perf_counter() - t0) * 1e3
                rows.append({"scene": seed, "category": cat, "query": q, "regions": n,
                             "captioned_all": cap_all.regions, "captioned_on_demand": cap_od.regions,
                             "ms_all": all_ms, "ms_on_demand": od_ms,
                             "identical": a.targets == b.targets and _chain(a) == _chain(b)})
        gs_s, cap_s = pipeline(masks, captions, "on_demand")
        scene_s = gs_s.perceive(image, masks=masks)
        for qs in QUERIES.values():
            for q in qs:
                gs_s.ask(scene_s, q)
        session.append({"scene": seed, "regions": n, "queries": sum(map(len, QUERIES.values())),
                        "captioned": cap_s.regions})
    by_cat = {}
    for cat in QUERIES:
        rs = [r for r in rows if r["category"] == cat]
        by_cat[cat] = {"queries": len(rs), "captioned_all": float(np.mean([r["captioned_all"] for r in rs])),
                       "captioned_on_demand": float(np.mean([r["captioned_on_demand"] for r in rs])),
                       "ms_all_median": float(np.median([r["ms_all"] for r in rs])),
                       "ms_on_demand_median": float(np.median([r["ms_on_demand"] for r in rs])),
                       "identical": all(r["identical"] for r in rs)}
    total_all = sum(r["captioned_all"] for r in rows)
    total_od = sum(r["captioned_on_demand"] for r in rows)
    summary = {"queries": len(rows), "captioned_all": total_all, "captioned_on_demand": total_od,
               "ratio_fewer": total_all / max(1, total_od),
               "median_ms_all": float(np.median([r["ms_all"] for r in rows])),
               "median_ms_on_demand": float(np.median([r["ms_on_demand"] for r in rows])),
               "identical_answers": all(r["identical"] for r in rows),
               "session_captioned_fraction": float(np.mean([s["captioned"] / s["regions"] for s in session]))}
    out = {"benchmark": "captions on demand", "machine": machine_info(), "caption_cost_model": cost_name,
           "note": "caption text from the scene truth; cost from the named captioner run on the same regions; "
                   "box shared with other jobs, latencies noisy (ratios measured side by side)",
           "summary": summary, "by_category": by_cat, "session": session, "rows": rows}
    write_json(Path(args.out), out)
    print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()})
    for cat, v in by_cat.items():
        print(f"{cat:14s} all {v['captioned_all']:5.1f}  on demand {v['captioned_on_demand']:5.1f}  "
              f"ms {v['ms_all_median']:7.0f} -> {v['ms_on_demand_median']:7.0f}  identical {v['identical']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
