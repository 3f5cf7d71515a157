"""Captions on demand vs captioning every region: captioned regions per query, latency, same answers.

Fresh synthetic table-top scenes (gear_edge.synthetic shapes, 14 named objects each in random
colours and places, exact masks given to ``perceive``), and robot-style queries in eight categories
with several phrasings each, written before any run. Caption text comes from the scene truth
("a red mug": no trained captioner is available offline); the caption *cost* is real: each caption
request also runs the exported Florence-2 base architecture (random weights, from bench_pipeline's
cache) or the tiny random captioner on the same regions, when one is there.

The reference is captioning every region in ``perceive`` and comparing object words with every
candidate (``Executor(lazy=False)``); on demand is the default: captions requested after the exact
filters, object words compared in rank order where that fixes the answer early (``_noun_lazy``).

* **cold**: every query on a fresh scene (perceive + ask): regions captioned, ask latency, whether the
  targets equal the reference's, and whether the chain equals the one with every caption computed up
  front (same executor; the chain does not depend on when captions were computed).
* **ranked** (added with the lazy walk, reported apart from the cold set): object words under a
  superlative or a position word, cold.
* **scene session**: all cold queries asked in turn on one perceived scene (captions cached per
  scene); the reference captions each region once.
* **tracked session**: every cold query followed by the Tracker over ``--frames`` frames of a camera
  panning 4 px a frame, re-deduced every ``--rededuce`` frames (perceive + ask on that frame); the
  reference captions every region of every perceived frame; on demand a held track's region keeps
  its caption. Identical = the same mode and target mask on every frame.

``--queries scene`` runs the cold and session parts on bench_scene's tabletops (fresh seeds from 2000)
with their own queries (benchmarks/scene_set.py, written for issue 15 before captions on demand were
measured), OCR on: the robot-query set beside this file's object-word stress set.

    python benchmarks/bench_captions.py --out results/bench_captions.json [--scenes 3]
    python benchmarks/bench_captions.py --queries scene --scenes 12 --skip tracked --out results/bench_captions_scene.json
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
# added with the rank-order comparison (written before it was measured); not part of the cold set above
RANKED = ["the leftmost mug", "the biggest box", "the rightmost bottle", "the mug on the right", "the cup at the top",
          "the smallest ball"]


def scene_set_scene(seed: int):
    """(image, masks [N,H,W], captions, [(category, query)]) of bench_scene's tabletop ``seed`` (its objects,
    table and wall as exact masks; captions "a red box", "a table", "a wall"; its own queries, written for
    issue 15 before any caption was measured)."""
    from scene_set import make_scene

    sc = make_scene(seed)
    masks, captions = [], []
    for o in sc.objects:
        if o.mask.sum() > 0:
            masks.append(o.mask)
            captions.append(f"a {o.colour} {o.noun}")
    masks.append(sc.support)
    captions.append("a table")
    if sc.background.any():
        masks.append(sc.background)
        captions.append("a wall")
    return sc.image, np.stack(masks), captions, [(q.category, q.text) for q in sc.queries]


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


def _shift(a: np.ndarray, dx: int) -> np.ndarray:
    """Image / masks moved ``dx`` pixels right along the width axis (a camera panning left); the
    uncovered strip repeats the edge column (images) or is empty (masks)."""
    if dx == 0:
        return a.copy()
    ax = a.ndim - 1 if a.dtype == bool else 1  # masks [N, H, W] or [H, W]; images [H, W, 3]
    out = np.roll(a, dx, axis=ax)
    idx = [slice(None)] * a.ndim
    idx[ax] = slice(0, dx)
    if a.dtype == bool:
        out[tuple(idx)] = False
    else:
        edge = [slice(None)] * a.ndim
        edge[ax] = slice(dx, dx + 1)
        out[tuple(idx)] = out[tuple(edge)]
    return out


def _summary(rows: list[dict], key_all: str, key_od: str) -> dict:
    total_all, total_od = sum(r[key_all] for r in rows), sum(r[key_od] for r in rows)
    return {"n": len(rows), "captioned_all": total_all, "captioned_on_demand": total_od,
            "ratio_fewer": total_all / max(1, total_od), "identical": all(r["identical"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/bench_captions.json")
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--cost", choices=("tiny", "florence", "none"), default="tiny", help="caption cost model")
    ap.add_argument("--frames", type=int, default=8, help="tracked session: frames after the start frame")
    ap.add_argument("--rededuce", type=int, default=3, help="tracked session: re-deduce every N tracked frames")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: cold,ranked,session,tracked")
    ap.add_argument("--queries", choices=("objects", "scene"), default="objects",
                    help="objects: the 14-object scenes and the eight categories above; scene: bench_scene's "
                         "tabletops (seeds 2000+, fresh) and their own queries, OCR on")
    args = ap.parse_args(argv)
    skip = {p for p in args.skip.split(",") if p}
    import gear_edge.masks as gm
    from gear_edge.pipeline import GearSeg
    from gear_edge.tracker import Tracker

    cost, cost_name = real_captioner(args.cost)
    ocr = "true" if args.queries == "scene" else "false"
    base = GearSeg.from_config("default", {"describe.ocr": ocr})
    deducer = base.deducer  # one deducer (its LLM fills are cached per phrase) for every mode
    executor = deducer.executor

    def pipeline(masks, captions, mode):
        cap = TruthCaptioner(masks, captions, cost)
        gs = GearSeg.from_config("default", {"describe.ocr": ocr, "describe.captions": f'"{mode}"'},
                                 captioner=cap, deducer=deducer)
        return gs, cap

    def cold(image, masks, captions, q, mode, lazy):
        executor.lazy = lazy
        gs, cap = pipeline(masks, captions, mode)
        t0 = time.perf_counter()
        answer = gs.ask(gs.perceive(image, masks=masks), q)
        return answer, cap.regions, (time.perf_counter() - t0) * 1e3

    rows, ranked_rows, session, tracked = [], [], [], []
    for seed in range(args.scenes):
        if args.queries == "scene":
            image, masks, captions, queries = scene_set_scene(2000 + seed)
            ranked_set: list[str] = []
        else:
            image, masks, captions = build_scene(1000 + seed)
            queries, ranked_set = [(cat, q) for cat, qs in QUERIES.items() for q in qs], RANKED
        n = len(masks)
        plain = base.perceive(image, masks=masks)  # no captioner: warms the LLM's per-phrase cache
        sets = ([] if "cold" in skip else [(rows, cat, q) for cat, q in queries]) + \
               ([] if "ranked" in skip else [(ranked_rows, "ranked", q) for q in ranked_set])
        for out, cat, q in sets:
            base.ask(plain, q)  # so no timed run below pays the first LLM call
            ref, n_ref, ms_ref = cold(image, masks, captions, q, "all", lazy=False)
            od, n_od, ms_od = cold(image, masks, captions, q, "on_demand", lazy=True)
            up, _, _ = cold(image, masks, captions, q, "all", lazy=True)
            out.append({"scene": seed, "category": cat, "query": q, "regions": n, "captioned_all": n_ref,
                        "captioned_on_demand": n_od, "ms_all": ms_ref, "ms_on_demand": ms_od,
                        "identical": ref.targets == od.targets, "same_chain_as_up_front": _chain(od) == _chain(up)})
        if "session" not in skip:
            executor.lazy = True
            gs_s, cap_s = pipeline(masks, captions, "on_demand")
            scene_s = gs_s.perceive(image, masks=masks)
            executor.lazy = False
            gs_r, cap_r = pipeline(masks, captions, "all")
            scene_r = gs_r.perceive(image, masks=masks)
            same = True
            for _, q in queries:
                executor.lazy = True
                a = gs_s.ask(scene_s, q)
                executor.lazy = False
                same &= a.targets == gs_r.ask(scene_r, q).targets
            session.append({"scene": seed, "regions": n, "queries": len(queries),
                            "captioned_all": cap_r.regions, "captioned_on_demand": cap_s.regions, "identical": same})
        if "tracked" in skip:
            continue
        frames = [(_shift(image, 4 * k), _shift(masks, 4 * k)) for k in range(args.frames + 1)]
        for cat, q in queries:
            runs = {}
            for mode, lazy in (("all", False), ("on_demand", True)):
                executor.lazy = lazy
                gs, cap = pipeline(masks, captions, mode)
                tr = Tracker(gs, rededuce_every=args.rededuce)
                seq = []
                for k, (img, m) in enumerate(frames):
                    cap.truth = gm.encode(np.ascontiguousarray(m))  # this frame's truth
                    r = tr.start(img, q, masks=m) if k == 0 else tr.update(img, masks=m)
                    seq.append((r.mode, r.mask))
                runs[mode] = (cap.regions, seq, tr.stats["deduced"], tr.captions_reused)
            (n_all, seq_a, ded, _), (n_od, seq_b, _, reused) = runs["all"], runs["on_demand"]
            same = len(seq_a) == len(seq_b) and all(
                ma == mb and ((xa is None and xb is None) or (xa is not None and xb is not None and np.array_equal(xa, xb)))
                for (ma, xa), (mb, xb) in zip(seq_a, seq_b))
            tracked.append({"scene": seed, "category": cat, "query": q, "regions": n, "frames": len(frames),
                            "deduced_frames": ded, "captioned_all": n_all, "captioned_on_demand": n_od,
                            "captions_from_tracks": reused, "identical": same})
    executor.lazy = True

    def by_category(rs):
        out = {}
        for cat in dict.fromkeys(r["category"] for r in rs):
            sub = [r for r in rs if r["category"] == cat]
            out[cat] = {**_summary(sub, "captioned_all", "captioned_on_demand"),
                        **({"ms_all_median": float(np.median([r["ms_all"] for r in sub])),
                            "ms_on_demand_median": float(np.median([r["ms_on_demand"] for r in sub]))} if "ms_all" in sub[0] else {})}
            if "same_chain_as_up_front" in sub[0]:
                out[cat]["same_chain_as_up_front"] = all(r["same_chain_as_up_front"] for r in sub)
        return out

    summary = {}
    if rows:
        summary["cold"] = {**_summary(rows, "captioned_all", "captioned_on_demand"),
                           "median_ms_all": float(np.median([r["ms_all"] for r in rows])),
                           "median_ms_on_demand": float(np.median([r["ms_on_demand"] for r in rows])),
                           "same_chain_as_up_front": all(r["same_chain_as_up_front"] for r in rows)}
    if ranked_rows:
        summary["ranked"] = _summary(ranked_rows, "captioned_all", "captioned_on_demand")
    if session:
        summary["scene_session"] = _summary(session, "captioned_all", "captioned_on_demand")
    if tracked:
        summary["tracked_session"] = {**_summary(tracked, "captioned_all", "captioned_on_demand"),
                                      "frames": sum(r["frames"] for r in tracked),
                                      "deduced_frames": sum(r["deduced_frames"] for r in tracked)}
    out = {"benchmark": "captions on demand", "machine": machine_info(), "caption_cost_model": cost_name,
           "args": vars(args),
           "note": "caption text from the scene truth; cost from the named captioner run on the same regions; "
                   "box shared with other jobs, latencies noisy (ratios measured side by side)",
           "summary": summary, "cold_by_category": by_category(rows) if rows else {},
           "tracked_by_category": by_category(tracked) if tracked else {},
           "session": session, "rows": rows, "ranked_rows": ranked_rows, "tracked_rows": tracked}
    write_json(Path(args.out), out)
    for part, v in summary.items():
        print(part, {k: (round(x, 2) if isinstance(x, float) else x) for k, x in v.items()})
    for name in ("cold_by_category", "tracked_by_category"):
        for cat, v in out[name].items():
            ms = f"  ms {v['ms_all_median']:7.0f} -> {v['ms_on_demand_median']:7.0f}" if "ms_all_median" in v else ""
            print(f"{name[:4]} {cat:14s} all {v['captioned_all']:5d}  on demand {v['captioned_on_demand']:5d}  "
                  f"({v['ratio_fewer']:.1f}x){ms}  identical {v['identical']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
