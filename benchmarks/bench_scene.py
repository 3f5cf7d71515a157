"""Scene benchmark: object-level perception on held-out synthetic tabletops, RGB and RGB-D, vs exact masks.

Scenes and queries: ``benchmarks/scene_set.py`` (generated fresh from seeds; not unit-test fixtures).
For each scene the default profile perceives it four ways — ``rgb`` (own segmenter), ``rgbd`` (own
segmenter + depth), ``exact`` (the true object / table / wall masks passed in) and ``exact_rgbd``
(true masks + depth) — and answers every query. Reported (JSON + a plot):

* per-object recall at IoU 0.5 / 0.75 (best single region), object regions per true object;
* support / background returned as an answer (% of queries that ask for an object);
* text-on-object rate (a labelled box's region holds its OCR word), on-top-of and inside accuracy
  (the relation between the best-matching regions of stacked / ringed pairs);
* end-to-end accuracy per query category (IoU >= 0.5; an empty answer for absent things), gIoU, cIoU;
* RGB-D: centroid error of matched objects 0.5-1.5 m away, support-plane error;
* perceive time p50: rgb, rgbd and the previous classical segmenter (``whole_objects=False``, the
  old RAG merge and minimum area), interleaved in one run;
* overlays of real photos (scikit-image coffee, chelsea, astronaut) with region outlines by role.

    python benchmarks/bench_scene.py --scenes 40 --out results/bench_scene.json --plot results/bench_scene.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine_info, percentiles, write_json  # noqa: E402

from benchmarks.scene_set import BenchScene, gt_mask, scene_set  # noqa: E402
from gear_edge.pipeline import GearSeg  # noqa: E402
from gear_edge.segment.classical import ClassicalSegmenter  # noqa: E402

CONFIGS = ("rgb", "rgbd", "exact", "exact_rgbd")
ROLE_COLOURS = {"object": (255, 40, 40), "support": (40, 220, 40), "background": (60, 90, 255)}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def exact_masks(sc: BenchScene) -> np.ndarray:
    ms = [o.mask for o in sc.objects if o.mask.sum() > 0] + [sc.support]
    if sc.background.any():
        ms.append(sc.background)
    return np.stack(ms)


def perceive(gs: GearSeg, sc: BenchScene, config: str):
    kw = {"depth": sc.depth_mm, "intrinsics": sc.K} if config.endswith("rgbd") else {}
    masks = exact_masks(sc) if config.startswith("exact") else None
    return gs.perceive(sc.image, masks, **kw)


def match(sc: BenchScene, bitmaps: list[np.ndarray]) -> list[tuple[int, float]]:
    """Per true object: (index of its best region, IoU)."""
    out = []
    for o in sc.objects:
        ious = [iou(o.mask, m) for m in bitmaps]
        k = int(np.argmax(ious)) if ious else -1
        out.append((k, ious[k] if ious else 0.0))
    return out


def evaluate(gs: GearSeg, scenes: list[BenchScene], config: str) -> dict:
    rec, per_obj_regions, per_cat = [], [], {}
    sb_answers = sb_total = 0
    text_hit = text_n = ontop_hit = ontop_n = inside_hit = inside_n = 0
    cent_err, plane_err, ms = [], [], []
    inter_tot: dict[str, int] = {}
    union_tot: dict[str, int] = {}
    for sc in scenes:
        t0 = time.perf_counter()
        scene = perceive(gs, sc, config)
        ms.append(time.perf_counter() - t0)
        bitmaps = [r.bitmap() for r in scene.regions]
        visible = [k for k, o in enumerate(sc.objects) if o.mask.sum() >= 150]
        m = match(sc, bitmaps)
        for k in visible:
            rec.append(m[k][1])
        per_obj_regions.append((sum(r.role == "object" for r in scene.regions), len(visible)))
        rels = {(r.subject, r.predicate, r.object) for r in scene.relations}
        rid = [r.id for r in scene.regions]
        for k in visible:
            o = sc.objects[k]
            if o.prim.label and o.prim.kind == "box" and m[k][1] >= 0.5:
                text_n += 1
                text_hit += any(o.prim.label.lower() in t.lower() for t in scene.regions[m[k][0]].text)
            for attr, pred in (("on", "on_top_of"), ("inside", "inside")):
                base = getattr(o, attr)
                if base is None or base not in visible:
                    continue
                ok = m[k][1] >= 0.5 and m[base][1] >= 0.5 and m[k][0] != m[base][0]
                other = "inside" if pred == "on_top_of" else "on_top_of"
                hit = ok and (rid[m[k][0]], pred, rid[m[base][0]]) in rels and (rid[m[k][0]], other, rid[m[base][0]]) not in rels
                if pred == "on_top_of":
                    ontop_n += 1
                    ontop_hit += hit
                else:
                    inside_n += 1
                    inside_hit += hit
            g = scene.regions[m[k][0]].geometry_3d if m[k][0] >= 0 else None
            true_c = sc.centers_cam[k]
            if config.endswith("rgbd") and g is not None and m[k][1] >= 0.5 and 0.5 <= np.linalg.norm(true_c) <= 1.5:
                cent_err.append(float(np.linalg.norm(np.asarray(g.centroid_m) - true_c)))
        if config.endswith("rgbd") and scene.support_plane is not None:
            z = sc.depth_true[sc.support][::37]
            ys, xs = np.nonzero(sc.support)
            ys, xs = ys[::37], xs[::37]
            K = sc.K
            pts = np.stack([(xs - K[0, 2]) * z / K[0, 0], (ys - K[1, 2]) * z / K[1, 1], z], 1)
            pl = np.asarray(scene.support_plane)
            plane_err.append(float(np.mean(np.abs(pts @ pl[:3] + pl[3]))))
        support_like = sc.support | sc.background
        for q in sc.queries:
            ans = gs.ask(scene, q.text)
            pred = ans.bitmap(scene.image_size)
            gt = gt_mask(sc, q.targets)
            v = iou(pred, gt)
            ok = (not ans.targets) if not q.targets else v >= 0.5
            c = per_cat.setdefault(q.category, {"n": 0, "correct": 0, "iou": []})
            c["n"] += 1
            c["correct"] += bool(ok)
            c["iou"].append(v)
            inter_tot[q.category] = inter_tot.get(q.category, 0) + int((pred & gt).sum())
            union_tot[q.category] = union_tot.get(q.category, 0) + int((pred | gt).sum())
            if q.targets and q.category != "support":
                sb_total += 1
                sb_answers += any((support_like & bitmaps[rid.index(t)]).sum() >= 0.5 * bitmaps[rid.index(t)].sum()
                                  for t in ans.targets if t in rid)
    rec = np.asarray(rec)
    cats = {}
    all_n = all_c = 0
    all_iou: list[float] = []
    for k, c in sorted(per_cat.items()):
        cats[k] = {"n": c["n"], "accuracy": c["correct"] / c["n"], "gIoU": float(np.mean(c["iou"])),
                   "cIoU": inter_tot[k] / max(1, union_tot[k])}
        all_n += c["n"]
        all_c += c["correct"]
        all_iou += c["iou"]
    return {
        "objects": int(len(rec)),
        "recall@0.5": float((rec >= 0.5).mean()) if len(rec) else None,
        "recall@0.75": float((rec >= 0.75).mean()) if len(rec) else None,
        "object_regions_per_object": float(sum(a for a, _ in per_obj_regions) / max(1, sum(b for _, b in per_obj_regions))),
        "support_or_background_answered_pct": 100.0 * sb_answers / max(1, sb_total),
        "text_on_object_rate": text_hit / text_n if text_n else None, "text_boxes": text_n,
        "on_top_of_accuracy": ontop_hit / ontop_n if ontop_n else None, "on_top_pairs": ontop_n,
        "inside_accuracy": inside_hit / inside_n if inside_n else None, "inside_pairs": inside_n,
        "centroid_error_m": {"mean": float(np.mean(cent_err)), "p90": float(np.percentile(cent_err, 90)),
                             "max": float(np.max(cent_err)), "n": len(cent_err)} if cent_err else None,
        "plane_error_mm": {"mean": 1e3 * float(np.mean(plane_err)), "max": 1e3 * float(np.max(plane_err))} if plane_err else None,
        "end_to_end": {"accuracy": all_c / max(1, all_n), "gIoU": float(np.mean(all_iou)) if all_iou else None, "n": all_n,
                       "per_category": cats},
        "perceive": percentiles(ms),
    }


def timing(gs_new: GearSeg, gs_old: GearSeg, scenes: list[BenchScene], repeats: int) -> dict:
    """perceive p50 interleaved: previous segmenter, new RGB, new RGB-D (same images, one run)."""
    samples: dict[str, list[float]] = {"rgb_previous_segmenter": [], "rgb": [], "rgbd": []}
    for _ in range(repeats):
        for sc in scenes:
            for name, fn in (("rgb_previous_segmenter", lambda: gs_old.perceive(sc.image)),
                             ("rgb", lambda: gs_new.perceive(sc.image)),
                             ("rgbd", lambda: gs_new.perceive(sc.image, depth=sc.depth_mm, intrinsics=sc.K))):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    out = {k: percentiles(v) for k, v in samples.items()}
    out["rgb_over_previous"] = out["rgb"]["p50_ms"] / out["rgb_previous_segmenter"]["p50_ms"]
    out["rgbd_over_rgb"] = out["rgbd"]["p50_ms"] / out["rgb"]["p50_ms"]
    return out


def overlays(gs: GearSeg, out_dir: Path) -> list[str]:
    import cv2
    import skimage.data

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("coffee", "chelsea", "astronaut"):
        img = getattr(skimage.data, name)()
        scene = gs.perceive(img)
        vis = (img * 0.75).astype(np.uint8)
        for r in scene.regions:
            m = r.bitmap().astype(np.uint8)
            cnts, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(vis, cnts, -1, ROLE_COLOURS[r.role], 2)
            x, y = (int(v) for v in r.attributes["centroid"])
            cv2.putText(vis, f"R{r.id}", (x - 8, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, ROLE_COLOURS[r.role], 1, cv2.LINE_AA)
        p = out_dir / f"overlay_{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
        written.append(str(p))
    return written


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted({c for cfg in CONFIGS for c in result["configs"][cfg]["end_to_end"]["per_category"]})
    fig, ax = plt.subplots(figsize=(12, 4.5))
    wdt = 0.8 / len(CONFIGS)
    for k, cfg in enumerate(CONFIGS):
        pc = result["configs"][cfg]["end_to_end"]["per_category"]
        ax.bar(np.arange(len(cats)) + k * wdt, [pc.get(c, {}).get("accuracy", 0) for c in cats], wdt, label=cfg)
    ax.set_xticks(np.arange(len(cats)) + 0.4 - wdt / 2)
    ax.set_xticklabels(cats, rotation=20)
    ax.set_ylabel("accuracy (IoU >= 0.5)")
    ax.set_ylim(0, 1.05)
    ax.legend(ncol=4)
    ax.set_title(f"bench_scene: {result['n_scenes']} scenes, {result['n_queries']} queries")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--timing-scenes", type=int, default=6)
    p.add_argument("--timing-repeats", type=int, default=2)
    p.add_argument("--out", default="results/bench_scene.json")
    p.add_argument("--plot", default="results/bench_scene.png")
    p.add_argument("--overlays", default="results/overlays")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a default-profile key")
    args = p.parse_args(argv)
    scenes = scene_set(args.scenes, args.first_seed)
    from gear_edge.cli import _overrides

    gs = GearSeg.from_config("default", _overrides(args.set))
    result: dict = {"n_scenes": len(scenes), "n_queries": sum(len(s.queries) for s in scenes), "set": args.set or [],
                    "first_seed": args.first_seed, "machine": machine_info(("scikit-image",)), "configs": {}}
    for cfg in args.configs:
        t0 = time.perf_counter()
        result["configs"][cfg] = evaluate(gs, scenes, cfg)
        print(f"{cfg}: {time.perf_counter() - t0:.0f} s", {k: v for k, v in result["configs"][cfg].items() if k not in ("end_to_end", "perceive")},
              "e2e", round(result["configs"][cfg]["end_to_end"]["accuracy"], 3), flush=True)
    if all(c in result["configs"] for c in ("rgb", "exact")):
        e_rgb = result["configs"]["rgb"]["end_to_end"]["accuracy"]
        e_ex = result["configs"]["exact"]["end_to_end"]["accuracy"]
        result["rgb_over_exact_accuracy"] = e_rgb / e_ex if e_ex else None
    if args.timing_scenes > 0:
        old = GearSeg.from_config("default", segmenter=ClassicalSegmenter(whole_objects=False, min_area_frac=0.004))
        result["timing"] = timing(gs, old, scenes[: args.timing_scenes], args.timing_repeats)
        result["timing"]["note"] = "2 shared CPU cores, other jobs running: ratios measured interleaved in one run"
    if args.overlays:
        result["overlays"] = overlays(gs, Path(args.overlays))
    write_json(args.out, result)
    if args.plot and len(result["configs"]) == len(CONFIGS):
        plot(result, Path(args.plot))
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
