"""Deduction quality on the held-out benchmark (``deduce_quality_data``): exact masks handed in.

Every scene is drawn with exact masks and described by the real describe stage; each query's answer
is compared as an exact set of region ids (a region too many or too few is wrong). Variants, on the
same queries:

* ``program_llm_off``: program mode without an LLM (``llm=None``);
* ``program_default``: ``llm="auto"``, the plain default SmolLM2-135M (not asked; the product runs
  ``program_translate``, the shipped program adapter);
* ``program_llm_on``: program mode with the default GGUF (skipped with a reason when llama-cpp-python
  or the model is missing);
* ``program_llm_random``: program mode whose LLM answers with random object words (the control: an
  LLM that earns its place beats it on the queries that reach it);
* ``direct``: the LLM reads the scene text and picks ids (``--direct``; slow), with token counts and
  latency;
* ``direct_adapter`` / ``program_adapter``: the same with a LoRA adapter (``--adapter``), and the load
  time of the model with and without it, alternated side by side;
* ``program_translate`` / ``program_translate_base``: program mode whose LLM writes the whole query's
  program (``--program-adapter``: the translator's adapter, and the plain model on the same prompt).

Direct-mode queries run grouped by scene (a robot asks several questions of one view): each LLM call
is reported as its scene prefix (evaluated once per scene) and the query itself (suffix + decoding).

Reported: overall, per category, and on the subset of queries that reach the LLM (the program asked
it for words), plus each variant's latency; the failures of each variant are listed.

    python benchmarks/bench_deduce_quality.py --out results/bench_deduce_quality.json [--direct] [--no-llm]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentiles, write_json  # noqa: E402
from deduce_quality_data import BACKGROUND, CATEGORIES, H, SCENES, W, BCase, BObj, BScene, cases  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.describe.scene import describe_scene  # noqa: E402
from gear_edge.synthetic import solid_mask  # noqa: E402
from gear_edge.types import Region, Scene  # noqa: E402

HAS_ROLE = "role" in {f.name for f in fields(Region)}
RANDOM_WORDS = ("volcano", "submarine", "giraffe", "trumpet", "glacier", "satellite", "cactus", "harbour",
                "tornado", "penguin", "cathedral", "asteroid", "saxophone", "lighthouse", "canyon", "walrus")


def _mask(o: BObj) -> np.ndarray:
    # stripes are a rectangle (the stripes are painted, not cut out)
    return solid_mask("rect" if o.shape == "stripes" else o.shape, o.geom, H, W)


def draw(spec: BScene, print_labels: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 [H, W, 3] RGB image and each object's exact visible mask (later objects occlude).

    ``print_labels``: also print each object's ``text`` on it (dark ink on light objects, white on
    dark ones, as wide as 70 % of its box; one line per text), for the end-to-end run where OCR must
    read them; the exact-mask rows get the text as data instead."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()) + 11)
    img = np.empty((H, W, 3), np.float64)
    img[:] = BACKGROUND
    img += rng.normal(0, 3, img.shape)
    masks: dict[str, np.ndarray] = {}
    for o in spec.objects:
        m = _mask(o)
        ys, xs = np.nonzero(m)
        shade = 0.9 + 0.1 * (ys - ys.min()) / max(1, ys.max() - ys.min())
        rgb = np.repeat(np.asarray(o.rgb, np.float64)[None, :], len(ys), axis=0)
        if o.shape == "stripes" and o.rgb2 is not None:
            rgb[((xs - xs.min()) // 12) % 2 == 1] = o.rgb2
        img[ys, xs] = rgb * shade[:, None] + rng.normal(0, 4, (len(ys), 3))
        for k in masks:
            masks[k] &= ~m
        masks[o.name] = m
    for k, m in masks.items():
        if not m.any():
            raise ValueError(f"{spec.name}: {k} is fully hidden")
    out = np.clip(img, 0, 255).astype(np.uint8)
    if print_labels:
        import cv2

        for o in spec.objects:
            if not o.text:
                continue
            ys, xs = np.nonzero(masks[o.name])
            x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
            ink = (20, 20, 20) if float(np.mean(o.rgb)) > 110 else (245, 245, 245)
            line_h = (y1 - y0) / (len(o.text) + 1)
            for k, t in enumerate(o.text):
                (tw, th), _ = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
                scale = min(0.7 * (x1 - x0) / tw, 0.6 * line_h / th)
                (tw, th), _ = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
                org = (int((x0 + x1 - tw) / 2), int(y0 + (k + 1) * line_h + th / 2))
                cv2.putText(out, t, org, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 2, cv2.LINE_AA)
    return out, masks


@lru_cache(maxsize=None)
def build(name: str) -> tuple[Scene, dict[str, int]]:
    """The described Scene and its object name -> region id map (ids a fixed permutation of 1..N)."""
    spec = SCENES[name]
    image, masks = draw(spec)
    perm = np.random.default_rng(zlib.crc32(name.encode()) + 5).permutation(len(spec.objects)) + 1
    ids = {o.name: int(perm[k]) for k, o in enumerate(spec.objects)}
    regions = []
    for o in spec.objects:
        rle = gm.encode(masks[o.name])
        regions.append(Region(id=ids[o.name], rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)),
                              area=int(gm.area(rle))))
    scene = describe_scene(image, regions)
    by_id = {r.id: r for r in scene.regions}
    for o in spec.objects:
        r = by_id[ids[o.name]]
        r.caption = o.caption
        r.text = list(o.text)
        if HAS_ROLE:
            r.role = o.role  # type: ignore[attr-defined]
    return scene, ids


class RandomWordsLLM:
    """Stands in for the LLM with random object words (deterministic per phrase): the control arm."""

    def chat_parts(self, system, scene, query, examples=()):
        return [system], [query]

    def generate(self, scene_key, prefix, suffix, grammar, max_tokens, temperature=0.0, budget_s=None):
        from gear_edge.deduce.llm import Generation

        text = " ".join(getattr(s, "text", s) for s in suffix)
        rng = random.Random(zlib.crc32(text.encode()))
        words = rng.sample(RANDOM_WORDS, 2)
        return Generation(json.dumps({"objects": words}), 0, 0, 0)


def _answer(ask, query: str):
    """The answer, or an empty one whose only step is the error when the query is refused (an
    InputError naming the problem, e.g. a malformed ordinal: "nothing or an error" both count as
    nothing)."""
    from gear_edge.errors import InputError
    from gear_edge.types import Answer, LogicStep

    try:
        return ask()
    except InputError as exc:
        return Answer(query, [], [LogicStep(f"refused: {exc}", [])])


def run_variant(deducer, todo: list[BCase]) -> list[dict]:
    rows = []
    for c in todo:
        scene, ids = build(c.scene)
        t0 = time.perf_counter()
        ans = _answer(lambda: deducer.deduce(scene, c.query), c.query)
        ms = (time.perf_counter() - t0) * 1e3
        want = sorted(ids[n] for n in c.answer)
        steps = [s.text for s in ans.steps]
        rows.append({
            "scene": c.scene, "category": c.category, "query": c.query, "want": want, "got": list(ans.targets),
            "ok": list(ans.targets) == want, "ms": ms, "prompt_tokens": ans.prompt_tokens,
            "completion_tokens": ans.completion_tokens,
            "reached_llm": any(s.startswith("LLM (") for s in steps), "steps": steps,
            # direct mode: the model's own targets, before the chain check ran its steps on the scene
            **({"model_got": list(ans.meta["model_targets"])} if "model_targets" in ans.meta else {}),
            **{k: ans.timings[k] for k in ("llm_prefix_ms", "llm_suffix_ms", "llm_decode_ms") if k in ans.timings},
            # how each LLM call got its scene prefix: "miss"/"off" evaluated it, "live"/"restored" reused it
            "llm_cache": [g.cache for g in getattr(deducer, "last_generations", None) or []],
        })
    return rows


def by_scene(todo: list[BCase]) -> list[BCase]:
    """The queries grouped by scene (stable within a scene), as a robot asks them: each scene's prompt
    prefix is evaluated once and reused (greedy decoding: the answers do not depend on the order)."""
    order = {name: k for k, name in enumerate(dict.fromkeys(c.scene for c in todo))}
    return sorted(todo, key=lambda c: order[c.scene])


def llm_latency(rows: list[dict]) -> dict | None:
    """Per LLM call: the scene prefix (only calls that evaluated one: the first query on a scene) and
    the query itself (its suffix + decoding, the scene prefix cached), seconds."""
    rows = [r for r in rows if "llm_decode_ms" in r]
    if not rows:
        return None
    prefix = [r["llm_prefix_ms"] / 1e3 for r in rows if set(r.get("llm_cache", ())) & {"miss", "off"}]
    query = [(r["llm_suffix_ms"] + r["llm_decode_ms"]) / 1e3 for r in rows]
    return {"scene_prefix": percentiles(prefix) if prefix else None, "query": percentiles(query),
            "scene_prefixes_evaluated": len(prefix), "calls": len(rows)}


def run_e2e(todo: list[BCase], threads: int, overrides: dict | None = None) -> tuple[list[dict], dict]:
    """The default pipeline end to end: its own segmenter, describe (roles included) and deducer on
    each scene's image; a query is right when the answer's mask has IoU >= 0.5 with the union of the
    true objects' masks (both empty: right). Printed labels exist only as data in this
    benchmark's exact-mask rows; here they are printed on the objects and read by the pipeline's OCR.
    Captions exist only as data (no captioner ships), so caption-only queries (purpose) cannot be
    answered this way."""
    from gear_edge.pipeline import GearSeg

    gs = GearSeg.from_config("default", overrides or {})
    scenes: dict[str, tuple] = {}
    t0 = time.perf_counter()
    for name in sorted({c.scene for c in todo}):
        image, masks = draw(SCENES[name], print_labels=True)
        scenes[name] = (gs.perceive(image), masks)
    perceive_s = time.perf_counter() - t0
    rows = []
    for c in todo:
        scene, masks = scenes[c.scene]
        t1 = time.perf_counter()
        ans = _answer(lambda: gs.ask(scene, c.query), c.query)
        ms = (time.perf_counter() - t1) * 1e3
        truth = np.zeros((H, W), bool)
        for n in c.answer:
            truth |= masks[n]
        got = ans.bitmap((H, W)) if ans.targets else np.zeros((H, W), bool)
        union = (got | truth).sum()
        iou = 1.0 if union == 0 else float((got & truth).sum() / union)
        rows.append({"scene": c.scene, "category": c.category, "query": c.query, "want": list(c.answer),
                     "got": list(ans.targets), "ok": iou >= 0.5, "iou": iou, "ms": ms,
                     "prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
                     "reached_llm": False, "steps": [s.text for s in ans.steps],
                     **{k: ans.timings[k] for k in ("llm_prefix_ms", "llm_suffix_ms", "llm_decode_ms")
                        if k in ans.timings}})
    return rows, {"perceive_s": perceive_s, "regions": {k: len(v[0].regions) for k, v in scenes.items()}}


def load_times(adapter: str, threads: int, repeats: int = 20) -> dict:
    """Load time of the base model alone and with the adapter, alternated side by side (the file cache
    warm for both; which loads first swaps every repeat, as the first of a pair runs slower), medians
    in seconds; ``adapter_adds`` is their difference as a fraction of the base."""
    from gear_edge.deduce.llm import LocalLLM

    base, tuned = [], []
    LocalLLM(threads=threads, lora_path=adapter, max_cached_scenes=0)  # warm-up: file cache, sha256 check
    for rep in range(repeats):
        pair = [(None, base), (adapter, tuned)]
        for lora, out in (pair if rep % 2 == 0 else pair[::-1]):
            t0 = time.perf_counter()
            llm = LocalLLM(threads=threads, lora_path=lora, max_cached_scenes=0)
            out.append(time.perf_counter() - t0)
            del llm
    b, t = float(np.median(base)), float(np.median(tuned))
    return {"base_s": b, "with_adapter_s": t, "adapter_adds": (t - b) / b, "repeats": repeats}


def summarize(rows: list[dict], subset: set[int] | None = None) -> dict:
    by = defaultdict(lambda: [0, 0])
    for r in rows:
        by[r["category"]][0] += r["ok"]
        by[r["category"]][1] += 1
    out = {
        "correct": sum(r["ok"] for r in rows), "total": len(rows),
        "accuracy": sum(r["ok"] for r in rows) / max(1, len(rows)),
        "per_category": {k: {"correct": v[0], "total": v[1], "accuracy": v[0] / v[1]}
                         for k in CATEGORIES if (v := by.get(k))},
        "latency": percentiles([r["ms"] / 1e3 for r in rows]) if rows else None,
        "llm_latency": llm_latency(rows),
        "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in rows])) if rows else 0.0,
        "completion_tokens_mean": float(np.mean([r["completion_tokens"] for r in rows])) if rows else 0.0,
    }
    if any("model_got" in r for r in rows):  # direct mode: the model alone, without the chain check
        ok = [r.get("model_got", r["got"]) == r["want"] for r in rows]  # (a refused query has no model answer)
        cat = defaultdict(lambda: [0, 0])
        for r, good in zip(rows, ok):
            cat[r["category"]][0] += good
            cat[r["category"]][1] += 1
        out["model_alone"] = {"correct": sum(ok), "total": len(rows), "accuracy": sum(ok) / len(rows),
                              "per_category": {k: v[0] / v[1] for k, v in cat.items()},
                              "fixed_by_check": sum(r["ok"] and not g for r, g in zip(rows, ok)),
                              "broken_by_check": sum(g and not r["ok"] for r, g in zip(rows, ok))}
    absent = [r for r in rows if not r["want"]]  # nothing fits: the right answer is "nothing"
    out["absent_answered_nothing"] = {"correct": sum(not r["got"] for r in absent), "total": len(absent),
                                      "accuracy": sum(not r["got"] for r in absent) / len(absent) if absent else None}
    if subset is not None:
        sub = [r for k, r in enumerate(rows) if k in subset]
        out["llm_subset"] = {"correct": sum(r["ok"] for r in sub), "total": len(sub),
                             "accuracy": sum(r["ok"] for r in sub) / len(sub) if sub else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/bench_deduce_quality.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-llm", action="store_true", help="only the LLM-off and random-words variants")
    ap.add_argument("--direct", action="store_true", help="also the direct mode (every query runs the LLM)")
    ap.add_argument("--direct-limit", type=int, default=0, help="direct mode on every k-th query (0: all)")
    ap.add_argument("--adapter", default=None,
                    help="a LoRA adapter GGUF (manifest next to it): adds direct_adapter (and, without --no-llm, "
                         "program_adapter) next to the base model's rows")
    ap.add_argument("--program-adapter", default=None,
                    help="the program translator's LoRA GGUF ('auto': the shipped models/program-lora): adds "
                         "program_translate (the adapter writes the program) and program_translate_base (the plain "
                         "model with the translator's prompt)")
    ap.add_argument("--category", default=None, help="only this category")
    ap.add_argument("--e2e", action="store_true",
                    help="also the default pipeline end to end (own masks), and the same with its LLM off")
    ap.add_argument("--e2e-direct", action="store_true",
                    help="also the default pipeline end to end in direct mode (deduce.adapter = auto: the shipped "
                         "adapter), on every --direct-limit-th query")
    ap.add_argument("--show-failures", action="store_true")
    args = ap.parse_args(argv)
    from gear_edge.deduce.program.deducer import ProgramDeducer

    todo = [c for c in cases() if args.category in (None, c.category)]
    direct_todo = by_scene(todo[::max(1, args.direct_limit)])  # every LLM-per-query variant runs these
    t0 = time.perf_counter()
    for name in SCENES:
        build(name)
    describe_s = time.perf_counter() - t0
    variants: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    variants["program_llm_off"] = run_variant(ProgramDeducer(llm=None, threads=args.threads), todo)
    variants["program_default"] = run_variant(ProgramDeducer(llm="auto", threads=args.threads), todo)
    variants["program_llm_random"] = run_variant(
        ProgramDeducer(llm=RandomWordsLLM(), llm_use="always", threads=args.threads), todo)
    llm = None
    load_s = adapter_load = program_adapter_load = None
    if not args.no_llm or args.direct:
        try:
            from gear_edge.deduce.llm import LocalLLM

            t1 = time.perf_counter()
            llm = LocalLLM(threads=args.threads)
            load_s = time.perf_counter() - t1
        except Exception as exc:  # a missing llama-cpp-python / model is reported, not fatal
            skipped["program_llm_on"] = skipped["direct"] = f"{type(exc).__name__}: {exc}"
    if llm is not None and not args.no_llm:
        variants["program_llm_on"] = run_variant(ProgramDeducer(llm=llm, llm_use="always", threads=args.threads), todo)
    if llm is not None and args.direct:
        from gear_edge.deduce.direct import DirectDeducer

        variants["direct"] = run_variant(DirectDeducer(llm), direct_todo)
    if llm is not None and args.adapter:
        from gear_edge.deduce.direct import DirectDeducer
        from gear_edge.deduce.llm import LocalLLM

        tuned = LocalLLM(threads=args.threads, lora_path=args.adapter)
        adapter_load = load_times(args.adapter, args.threads)
        if args.direct:
            variants["direct_adapter"] = run_variant(DirectDeducer(tuned), direct_todo)
        if not args.no_llm:
            variants["program_adapter"] = run_variant(ProgramDeducer(llm=tuned, llm_use="always", threads=args.threads), todo)
    if args.program_adapter:
        from gear_edge.deduce.llm import PROGRAM_ADAPTER, LocalLLM
        from gear_edge.manifest import Manifest

        path, man = args.program_adapter, None
        if path == "auto":
            man = Manifest.named(PROGRAM_ADAPTER)
            path = man.verify(man.locate())
        base_llm = llm if llm is not None else LocalLLM(threads=args.threads)
        variants["program_translate_base"] = run_variant(
            ProgramDeducer(llm=base_llm, llm_use="always", llm_role="translate", threads=args.threads), todo)
        program_adapter_load = load_times(str(path), args.threads)
        variants["program_translate"] = run_variant(
            ProgramDeducer(llm=LocalLLM(threads=args.threads, lora_path=path, lora_manifest=man), llm_use="always",
                           llm_role="translate", threads=args.threads), todo)
    e2e_info = None
    if args.e2e:
        variants["e2e_default_pipeline"], e2e_info = run_e2e(todo, args.threads)
        variants["e2e_default_pipeline_llm_off"], _ = run_e2e(todo, args.threads, {"deduce.program_llm": "never"})
    if args.e2e_direct:
        variants["e2e_direct_pipeline"], _ = run_e2e(direct_todo, args.threads, {"deduce.mode": "direct"})
    # the subset that reaches the LLM: queries whose program leaves a phrase to it and whose own
    # words find nothing (the only ones it is asked about); the same for every LLM variant
    reach_from = variants["program_llm_random"]
    subset = {k for k, r in enumerate(reach_from) if r["reached_llm"]}
    summary = {k: summarize(v, subset if k.startswith("program") else None) for k, v in variants.items()}
    result = {
        "benchmark": "deduce_quality", "machine": machine_info(("llama-cpp-python",)),
        "roles_available": HAS_ROLE, "queries": len(todo), "scenes": len(SCENES), "describe_s": describe_s,
        "llm_load_s": load_s, "adapter_load": adapter_load, "program_adapter_load": program_adapter_load,
        "skipped": skipped, "e2e": e2e_info, "summary": summary,
        "failures": {k: [{kk: r[kk] for kk in ("category", "scene", "query", "want", "got", "steps")}
                         for r in v if not r["ok"]] for k, v in variants.items()},
    }
    write_json(args.out, result)
    for k, s in summary.items():
        cats = " ".join(f"{c}={v['accuracy']:.0%}" for c, v in s["per_category"].items())
        sub = s.get("llm_subset")
        subtxt = f" llm-subset {sub['correct']}/{sub['total']}" if sub else ""
        ab = s["absent_answered_nothing"]
        subtxt += f" absent->nothing {ab['correct']}/{ab['total']}" if ab["total"] else ""
        lat = s.get("llm_latency")
        if lat:
            pre = lat["scene_prefix"]
            subtxt += (f" | LLM query p50 {lat['query']['p50_ms']:.0f} ms p90 {lat['query']['p90_ms']:.0f} ms"
                       + (f", scene prefix p50 {pre['p50_ms']:.0f} ms ({lat['scene_prefixes_evaluated']}x)" if pre else ""))
        print(f"{k}: {s['correct']}/{s['total']} = {s['accuracy']:.1%}{subtxt}\n   {cats}")
        if "model_alone" in s:
            m = s["model_alone"]
            print(f"   the model alone (no chain check): {m['correct']}/{m['total']} = {m['accuracy']:.1%}; "
                  f"the check fixed {m['fixed_by_check']}, broke {m['broken_by_check']}")
    if adapter_load:
        print(f"load: base {adapter_load['base_s']:.3f} s, with adapter {adapter_load['with_adapter_s']:.3f} s "
              f"({adapter_load['adapter_adds']:+.1%})")
    if program_adapter_load:
        p = program_adapter_load
        print(f"load: base {p['base_s']:.3f} s, with the program adapter {p['with_adapter_s']:.3f} s "
              f"({p['adapter_adds']:+.1%})")
    if args.show_failures:
        for r in variants["program_llm_off"]:
            if not r["ok"]:
                print(f"[{r['category']}] {r['scene']}: {r['query']!r} want {r['want']} got {r['got']}")
                for s in r["steps"]:
                    print("      ", s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
