"""``gear-edge bench``: latency of every stage and of the whole loop (an adapter, like the CLI).

For each image: ``perceive`` (segment + describe), a **cold** ask (first query on a new scene: the
LLM evaluates the scene prefix) and **warm** asks (later queries on the same scene reuse the
evaluated prefix). N iterations after warm-up; p50/p90/p99 per stage, peak RSS, model hashes, and a
PNG plot. With ``--with-stages`` it also runs the per-stage reference benchmarks in ``benchmarks/``
(masks, describe, deduce, segment), so one command reproduces every ratio the stages report.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gear_edge import __version__, _native

STAGE_SCRIPTS = ("bench_masks.py", "bench_describe.py", "bench_deduce.py", "bench_segment.py")
DEFAULT_QUERIES = (
    "the red object", "the largest object", "the object left of the blue ball", "the yellow object",
    "something to write with",  # a purpose: the LLM names candidate objects
)


def _pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "n": int(a.size)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _images(names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in names:
        if name == "tabletop":
            from gear_edge.synthetic import tabletop  # the synthetic scene with exact masks

            out.append((name, tabletop().image))
        elif Path(name).is_file():
            from gear_edge.io import read_image

            out.append((Path(name).name, read_image(name)))
        else:
            import skimage.data

            img = getattr(skimage.data, name)()
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            out.append((name, np.ascontiguousarray(img)))
    return out


def _model_hashes(gs) -> list[dict]:
    """Name, file and sha256 of every model (or algorithm parameters) the profile uses."""
    from gear_edge.model_inventory import model_inventory

    return model_inventory(gs.config)


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("numpy", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "llama_cpp_python", "scikit-image"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _mean_or_none(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None  # None (JSON null) when no query reached the LLM


LLM_BENCH_PHRASE = "something to open a jar with"


def llm_timings(gs) -> dict:
    """The deducer LLM's load time, one program-mode call on a new phrase and the same phrase again
    (served from the cache), in the program deducer's role (``fill``: object names; ``translate``: the
    query's program); ``skipped`` says why when no LLM can load."""
    from gear_edge.deduce.program.fill import ObjectFiller
    from gear_edge.deduce.program.translate import ProgramTranslator

    t0 = time.perf_counter()
    try:
        llm = gs.llm
    except Exception as exc:  # llama-cpp-python or the GGUF missing: reported, not fatal
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    load_ms = (time.perf_counter() - t0) * 1e3
    role = getattr(gs.deducer, "llm_role", "fill")
    budget_ms = int(gs.config.get("deduce", "llm_budget_ms", 20_000))
    if role == "translate":
        translator = ProgramTranslator(llm)
        call = lambda: translator.translate(LLM_BENCH_PHRASE)  # noqa: E731 - unbounded: measured whole
    else:
        filler = ObjectFiller(llm)
        call = lambda: filler.fill(LLM_BENCH_PHRASE)  # noqa: E731
    new = call()
    t1 = time.perf_counter()
    cached = call()
    cached_ms = (time.perf_counter() - t1) * 1e3
    words = list(new.words) if role != "translate" else []
    program = new.program.describe() if role == "translate" and new.program is not None else None
    return {"load_ms": load_ms, "phrase": LLM_BENCH_PHRASE, "role": role, "new_phrase_ms": new.ms,
            "new_phrase_completion_tokens": new.completion_tokens, "llm_budget_ms": budget_ms,
            "new_phrase_over_budget": new.ms > budget_ms, "new_phrase_words": words, "new_phrase_program": program,
            "cached_ms": cached_ms, "cached": cached.cached,
            "program_llm": gs.config.get("deduce", "program_llm", "auto")}


def run_pipeline_bench(config: str, overrides: dict, images: list[str], queries: list[str], iterations: int, warmup: int) -> dict:
    from gear_edge.pipeline import GearSeg

    gs = GearSeg.from_config(config, overrides)
    loads = [r.to_dict() for r in gs.load()]  # every model now: load ms, RSS growth, engines per component
    llm = llm_timings(gs)  # first: the load is measured cold
    stages: dict[str, list[float]] = {}
    loop = {"perceive": [], "ask_cold": [], "ask_warm": [], "segment_total": []}
    tokens = {"cold_prompt_tokens_evaluated": [], "warm_prompt_tokens_evaluated": []}
    data = _images(images)
    for it in range(warmup + iterations):
        for name, image in data:
            t0 = time.perf_counter()
            scene = gs.perceive(image)
            t1 = time.perf_counter()
            scene.meta["bench_iteration"] = it  # a fresh scene object each time
            clear = getattr(gs.llm, "clear_cache", None)
            if callable(clear):
                clear()  # make the first ask truly cold
            cold = gs.ask(scene, queries[0])
            t2 = time.perf_counter()
            warm_ms, warm_tok = [], []
            for q in queries[1:]:
                t3 = time.perf_counter()
                warm = gs.ask(scene, q)
                warm_ms.append((time.perf_counter() - t3) * 1e3)
                warm_tok.append(warm.timings.get("prompt_tokens_evaluated", np.nan))
            if it < warmup:
                continue
            loop["perceive"].append((t1 - t0) * 1e3)
            loop["ask_cold"].append((t2 - t1) * 1e3)
            loop["ask_warm"].extend(warm_ms)
            loop["segment_total"].append((t2 - t0) * 1e3)
            tokens["cold_prompt_tokens_evaluated"].append(cold.timings.get("prompt_tokens_evaluated", np.nan))
            tokens["warm_prompt_tokens_evaluated"].extend(warm_tok)
            for k, v in {**scene.timings, **{f"ask.{k}": v for k, v in cold.timings.items() if k.endswith("ms") or "." in k}}.items():
                if isinstance(v, (int, float)):
                    stages.setdefault(k, []).append(float(v))
    return {
        "config": config,
        "overrides": overrides,
        "images": [n for n, _ in data],
        "queries": queries,
        "iterations": iterations,
        "warmup": warmup,
        "loop": {k: _pct(v) for k, v in loop.items()},
        "stages": {k: _pct(v) for k, v in stages.items()},
        "tokens": {k: _mean_or_none(v) for k, v in tokens.items()},
        "model_hashes": _model_hashes(gs),
        "model_loads": loads,
        "llm": llm,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _plot(result: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [(k, v) for k, v in {**result["loop"], **result["stages"]}.items() if v]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    names = [k for k, _ in rows]
    p50 = [v["p50_ms"] for _, v in rows]
    p90 = [v["p90_ms"] for _, v in rows]
    y = np.arange(len(rows))
    ax.barh(y, p90, color="#c9d6ea", label="p90")
    ax.barh(y, p50, color="#3b6ea8", label="p50")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.set_xscale("log")
    ax.set_title(f"gear_edge {__version__} — {result['config']} — {platform.machine()}, {_native.get_num_threads()} threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _count(lo: int):
    """argparse type: an integer >= ``lo`` (argparse turns the ValueError into a usage error naming the flag)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {value}")
        return value

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default", help="profile name or TOML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--images", nargs="+", default=["tabletop", "coffee"],
                   help="image files, scikit-image names, or 'tabletop' (synthetic scene)")
    p.add_argument("--query", action="append", help="queries (first = cold, rest = warm); repeatable")
    p.add_argument("--iterations", type=_count(1), default=5, help="timed iterations (>= 1)")
    p.add_argument("--warmup", type=_count(0), default=1, help="untimed iterations first (>= 0)")
    p.add_argument("--out", default="results/bench", help="output directory (JSON + PNG)")
    p.add_argument("--with-stages", action="store_true", help="also run benchmarks/bench_*.py (reference ratios)")


def cli(args: argparse.Namespace) -> int:
    from gear_edge.cli import _overrides
    from gear_edge.io import write_atomic

    from gear_edge.cli import output_dir

    out = output_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    queries = list(args.query or DEFAULT_QUERIES)
    if len(queries) < 2:
        raise SystemExit("give at least two queries: the first is asked cold, the rest warm")
    result = {
        "benchmark": "pipeline",
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "python": sys.version.split()[0],
                    "threads": _native.get_num_threads(), "gear_edge": __version__, "backend": _native.backend(),
                    "versions": _versions()},
        "pipeline": run_pipeline_bench(args.config, _overrides(args.set), args.images, queries, args.iterations, args.warmup),
    }
    if args.with_stages:
        bench_dir = Path(__file__).resolve().parents[1] / "benchmarks"
        result["stage_benchmarks"] = {}
        for script in STAGE_SCRIPTS:
            path = bench_dir / script
            if not path.is_file():
                result["stage_benchmarks"][script] = "not found (run from a source checkout)"
                continue
            target = out / script.replace(".py", ".json")
            proc = subprocess.run([sys.executable, str(path), "--out", str(target)], capture_output=True, text=True)
            result["stage_benchmarks"][script] = (
                json.loads(target.read_text()) if proc.returncode == 0 and target.exists() else f"failed: {proc.stderr[-2000:]}"
            )
    path = write_atomic(out / "bench_pipeline.json", json.dumps(result, indent=1, allow_nan=False).encode())
    png = _plot(result["pipeline"], out / "bench_pipeline.png")
    loop = result["pipeline"]["loop"]
    for k, v in loop.items():
        if v:
            print(f"{k:15s} p50 {v['p50_ms']:9.1f} ms   p90 {v['p90_ms']:9.1f} ms")
    llm = result["pipeline"]["llm"]
    if "load_ms" in llm:
        print(f"LLM load {llm['load_ms']:.0f} ms; new phrase {llm['new_phrase_ms']:.0f} ms; cached {llm['cached_ms']:.2f} ms")
    print(f"peak RSS {result['pipeline']['peak_rss_mb']:.0f} MB; wrote {path}" + (f" and {png}" if png else ""))
    return 0
