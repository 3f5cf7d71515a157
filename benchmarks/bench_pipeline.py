"""Latency budget of the production architectures on this machine's CPU (ONNX Runtime, llama.cpp).

Random weights, real shapes: SAM2.1 tiny and small (sam2's own configs, exported by
export/sam2_onnx.py), Florence-2 base (transformers' Florence2 architecture at the base checkpoint's
dimensions, random-initialised, exported by export/captioner_onnx.py), PP-OCRv4 (the shipped model)
and GGUFs with the shapes of Qwen2.5-0.5B- and 1.5B-Instruct (random weights, Q4_0, written with the
``gguf`` package; vocabulary and chat template of the shipped SmolLM2 GGUF, padded to Qwen's 151,936
tokens). Per stage p50/p90 at 640x480: SAM2 encoder, prompt batches, post-processing; captions (per
batch of 8 regions, per decode step); OCR; LLM prompt evaluation and decode in both deduce modes, with
the tokens per query. Random weights decide nothing about quality and not much about counts: SAM2's
masks are degenerate (regions per scene are reported from the classical segmenter on photos
instead), the random base-size captioner emits end-of-sequence at its first step (use the per-step cost)
and the LLM's answers are grammar-bounded noise; the per-step and per-token costs are what carries
over. Exported models are cached under ``~/.cache/gear_edge/bench`` (keyed by the exporter sources;
nothing depends on the cache). The ``gguf`` package is looked up on ``sys.path`` and in
``~/.cache/gear_edge/pydeps`` (``pip install --target ~/.cache/gear_edge/pydeps gguf``).

    python benchmarks/bench_pipeline.py --out results/bench_pipeline.json [--repeats 3] [--skip llm-1.5b]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import machine_info, percentiles, write_json  # noqa: E402

CACHE = Path.home() / ".cache" / "gear_edge" / "bench"
H, W = 480, 640
THREADS = 2

# Florence-2 base (microsoft/Florence-2-base config.json): DaViT vision tower, BART-base language model
FLORENCE2_BASE_VISION = {
    "depths": [1, 1, 9, 1], "embed_dim": [128, 256, 512, 1024], "num_heads": [4, 8, 16, 32],
    "num_groups": [4, 8, 16, 32], "window_size": 12, "projection_dim": 768, "drop_path_rate": 0.0,
    "max_position_embeddings": 50, "max_temporal_embeddings": 100,
}
FLORENCE2_BASE_TEXT = {
    "d_model": 768, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 12,
    "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "max_position_embeddings": 1024,
    "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "init_std": 0.02,
}
FLORENCE2_VOCAB = 51289
FLORENCE2_IMAGE = 768
CAPTION_TOKENS = 20  # decode steps per caption (random weights never stop earlier)

# Qwen2.5-Instruct config.json values
QWEN2 = {
    "0.5b": {"hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "ffn": 4864},
    "1.5b": {"hidden": 1536, "layers": 28, "heads": 12, "kv_heads": 2, "ffn": 8960},
}
QWEN_VOCAB = 151936


def _key(*files: str, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update((ROOT / f).read_bytes())
    return h.hexdigest()[:12]


def _image() -> np.ndarray:
    from gear_edge.synthetic import tabletop

    return tabletop(H, W).image


def _stats(ms: list[float]) -> dict:
    return percentiles([m / 1e3 for m in ms])


# ---- SAM2 -------------------------------------------------------------------------------------------


def sam2_files(size: str) -> dict[str, Path]:
    from export import sam2_onnx as so

    folder = CACHE / f"sam2-{size}-{_key('export/sam2_onnx.py', 'export/onnx_graph.py', extra=str(so.versions()))}"
    files = {r: folder / f"{r}.onnx" for r in ("encoder", "decoder")}
    if not all(p.is_file() for p in files.values()):
        import torch

        torch.set_num_threads(THREADS)
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = so.build_model(size, random_init=True, seed=0)
        so.export_encoder(model, tmp / "encoder.onnx", check=False)
        so.export_decoder(model, tmp / "decoder.onnx", check=False)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return files


def bench_sam2(size: str, repeats: int) -> dict:
    from gear_edge.engines import OnnxEngine
    from gear_edge.segment.amg import AutomaticMaskGenerator

    t0 = time.perf_counter()
    files = sam2_files(size)
    export_s = time.perf_counter() - t0
    amg = AutomaticMaskGenerator(OnnxEngine(files["encoder"], threads=THREADS), OnnxEngine(files["decoder"], threads=THREADS),
                                 points_per_side=32, points_per_batch=64, threads=THREADS)
    image = _image()
    runs = []
    for _ in range(repeats + 1):
        tm: dict = {}
        regions = amg.generate(image, tm)
        runs.append((tm, len(regions)))
    runs = runs[1:]  # the first run warms up
    batches = [b for tm, _ in runs for b in tm["decoder_batches_ms"]]
    return {
        "model": f"SAM2.1 hiera {size} (random init, fp32 ONNX)", "export_or_cache_s": round(export_s, 1),
        "points": 32 * 32, "points_per_batch": 64, "prompt_batches": len(runs[0][0]["decoder_batches_ms"]),
        "encoder": _stats([tm["encoder_ms"] for tm, _ in runs]),
        "prompt_batch": _stats(batches),
        "decoder_all_batches": _stats([tm["decoder_ms"] for tm, _ in runs]),
        "postprocess": _stats([tm.get("postprocess_ms", 0.0) + tm.get("nms_ms", 0.0) + tm.get("cleanup_ms", 0.0)
                               for tm, _ in runs]),
        "total": _stats([tm["total_ms"] for tm, _ in runs]),
        "regions_random_weights": [n for _, n in runs],
    }


# ---- Florence-2 base ----------------------------------------------------------------------------------


def florence_dir() -> Path:
    folder = CACHE / f"florence2-base-{_key('export/captioner_onnx.py')}"
    if (folder / "captioner.json").is_file():
        return folder
    import torch
    import transformers

    from export.captioner_onnx import build_tiny_tokenizer, export_model
    from gear_edge.crops import IMAGENET_MEAN, IMAGENET_STD

    torch.set_num_threads(THREADS)
    tokenizer = build_tiny_tokenizer()
    text = dict(FLORENCE2_BASE_TEXT, model_type="bart", vocab_size=FLORENCE2_VOCAB, pad_token_id=1, bos_token_id=0,
                eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None, forced_bos_token_id=None)
    cfg = transformers.Florence2Config(vision_config=dict(FLORENCE2_BASE_VISION), text_config=text,
                                       image_token_id=int(tokenizer.token_to_id("<image>")))
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Florence2ForConditionalGeneration(cfg).eval()
    tmp = folder.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_model(model, tokenizer, tmp, pre={"image_size": FLORENCE2_IMAGE, "mean": list(IMAGENET_MEAN),
                                              "std": list(IMAGENET_STD)},
                 generation={"max_new_tokens": CAPTION_TOKENS, "num_beams": 1}, licence="random weights",
                 source="random-initialised Florence-2 base architecture (bench_pipeline)", verify_tokens=False,
                 threads=THREADS)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def bench_captioner(repeats: int) -> dict:
    from gear_edge.describe.captioner import Captioner

    t0 = time.perf_counter()
    folder = florence_dir()
    export_s = time.perf_counter() - t0
    cap = Captioner.from_dir(folder, threads=THREADS)
    image = _image()
    rng = np.random.default_rng(0)
    boxes = np.stack([rng.uniform(0, W - 120, 8), rng.uniform(0, H - 120, 8), rng.uniform(40, 120, 8),
                      rng.uniform(40, 120, 8)], axis=1)
    runs = []
    for _ in range(repeats + 1):
        cap.caption(image, boxes, batch_size=8)
        runs.append(dict(cap.last_timings))
    runs = runs[1:]
    steps = runs[0]["decode_steps"]
    return {
        "model": "Florence-2 base architecture (random init, fp32 ONNX), 768x768 crops", "export_or_cache_s": round(export_s, 1),
        "regions_per_batch": 8, "decode_steps": steps,
        "batch_of_8": _stats([t["total_ms"] for t in runs]),
        "vision_encoder_batch": _stats([t["vision_ms"] for t in runs]),
        "text_encoder_batch": _stats([t["text_encoder_ms"] for t in runs]),
        "decoder_step_batch": _stats([t["decoder_ms"] / max(1, t["decode_steps"]) for t in runs]),
        "per_region_ms": float(np.median([t["total_ms"] for t in runs]) / 8),
    }


# ---- OCR, regions per scene ---------------------------------------------------------------------------


def bench_ocr(repeats: int) -> dict:
    import cv2

    from gear_edge.describe.ocr import OcrReader

    image = _image().copy()
    for k, word in enumerate(("FRAGILE", "KEEP DRY", "NO. 42")):
        cv2.putText(image, word, (80 + 170 * k, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (20, 20, 20), 2)
    ocr = OcrReader(threads=THREADS)
    ms, found = [], 0
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        boxes = ocr.read(image)
        if i:
            ms.append((time.perf_counter() - t0) * 1e3)
        found = len(boxes)
    return {"model": "PP-OCRv4 det + mobile v2 cls + v4 rec (shipped)", "read": _stats(ms), "lines_found": found}


def regions_per_scene() -> dict:
    import skimage.data

    from gear_edge.segment.classical import ClassicalSegmenter

    seg = ClassicalSegmenter()
    out = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(skimage.data, name)()
        out[name] = len(seg.segment(np.ascontiguousarray(img)))
    return {"segmenter": "classical (default profile, max_regions 40)", "regions": out}


# ---- LLM --------------------------------------------------------------------------------------------


def _gguf():
    try:
        import gguf
    except ImportError:
        sys.path.insert(0, str(Path.home() / ".cache" / "gear_edge" / "pydeps"))
        import gguf  # noqa: F401  (pip install --target ~/.cache/gear_edge/pydeps gguf)
    return gguf


def qwen_gguf(size: str) -> Path:
    """A Q4_0 GGUF with Qwen2.5-<size>-Instruct's shapes and random weights."""
    gguf = _gguf()
    from gear_edge.manifest import Manifest

    path = CACHE / f"qwen2.5-{size}-shape-random-q4_0.gguf"
    if path.is_file():
        return path
    smol = Manifest.named("smollm2-135m-instruct-q4_1").locate()
    reader = gguf.GGUFReader(str(smol))

    def field(name):
        f = reader.fields[name]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]]

    tokens = list(field("tokenizer.ggml.tokens"))
    types = list(field("tokenizer.ggml.token_type"))
    merges = list(field("tokenizer.ggml.merges"))
    pad = QWEN_VOCAB - len(tokens)
    tokens += [f"[PAD{i}]" for i in range(pad)]
    types += [int(gguf.TokenType.UNUSED)] * pad
    d = QWEN2[size]
    hd = d["hidden"] // d["heads"]
    tmp = path.with_suffix(".tmp")
    w = gguf.GGUFWriter(str(tmp), "qwen2")
    w.add_name(f"random weights, Qwen2.5-{size}-Instruct shapes")
    w.add_context_length(32768)
    w.add_embedding_length(d["hidden"])
    w.add_block_count(d["layers"])
    w.add_feed_forward_length(d["ffn"])
    w.add_head_count(d["heads"])
    w.add_head_count_kv(d["kv_heads"])
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(str(field("tokenizer.ggml.pre")))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key in ("bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id"):
        name = f"tokenizer.ggml.{key}"
        if name in reader.fields:
            getattr(w, f"add_{key.replace('padding', 'pad').replace('unknown', 'unk')}")(int(field(name)))
    w.add_chat_template(str(field("tokenizer.chat_template")))
    if "tokenizer.ggml.add_bos_token" in reader.fields:
        w.add_add_bos_token(bool(field("tokenizer.ggml.add_bos_token")))
    if "tokenizer.ggml.add_space_prefix" in reader.fields:
        w.add_add_space_prefix(bool(field("tokenizer.ggml.add_space_prefix")))
    rng = np.random.default_rng(0)
    q4 = gguf.GGMLQuantizationType.Q4_0

    def mat(name, rows, cols):
        a = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02)
        w.add_tensor(name, gguf.quants.quantize(a, q4), raw_dtype=q4)

    def vec(name, n, value=None):
        a = np.ones(n, np.float32) if value is None else rng.standard_normal(n, dtype=np.float32) * value
        w.add_tensor(name, a)

    mat("token_embd.weight", QWEN_VOCAB, d["hidden"])  # tied output, as in the Qwen2.5 0.5B / 1.5B checkpoints
    vec("output_norm.weight", d["hidden"])
    kv = d["kv_heads"] * hd
    for i in range(d["layers"]):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", d["hidden"])
        mat(p + "attn_q.weight", d["hidden"], d["hidden"])
        vec(p + "attn_q.bias", d["hidden"], 0.02)
        mat(p + "attn_k.weight", kv, d["hidden"])
        vec(p + "attn_k.bias", kv, 0.02)
        mat(p + "attn_v.weight", kv, d["hidden"])
        vec(p + "attn_v.bias", kv, 0.02)
        mat(p + "attn_output.weight", d["hidden"], d["hidden"])
        vec(p + "ffn_norm.weight", d["hidden"])
        mat(p + "ffn_gate.weight", d["ffn"], d["hidden"])
        mat(p + "ffn_up.weight", d["ffn"], d["hidden"])
        mat(p + "ffn_down.weight", d["hidden"], d["ffn"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)
    return path


def bench_llm(size: str, repeats: int) -> dict:
    from gear_edge.deduce.direct import DirectDeducer
    from gear_edge.deduce.llm import LocalLLM
    from gear_edge.deduce.program.fill import ObjectFiller
    from gear_edge.manifest import sha256_file
    from gear_edge.pipeline import GearSeg

    t0 = time.perf_counter()
    path = qwen_gguf(size)
    build_s = time.perf_counter() - t0
    llm = LocalLLM(model_path=path, sha256=sha256_file(path), n_ctx=4096, threads=THREADS)
    gs = GearSeg.from_config("default", {"describe.ocr": "false"})
    import skimage.data

    scene = gs.perceive(np.ascontiguousarray(skimage.data.astronaut()))
    direct = DirectDeducer(llm)
    filler = ObjectFiller(llm)
    cold, warm, fills = [], [], []
    for i in range(repeats + 1):
        llm.clear_cache() if hasattr(llm, "clear_cache") else None
        scene.meta["bench"] = i  # a new scene key: the prefix is evaluated again
        a = direct.deduce(scene, "the object left of the person")
        b = direct.deduce(scene, "the largest object at the top")  # the cached scene prefix
        filler._cache.clear()
        t1 = time.perf_counter()
        f = filler.fill(f"something to write with {i}")
        fill_ms = (time.perf_counter() - t1) * 1e3
        if i:
            cold.append(a)
            warm.append(b)
            fills.append((fill_ms, f))

    def per(answers, key):
        return _stats([x.timings[key] for x in answers])

    decode_tok = [x.timings["llm_decode_ms"] / max(1, x.completion_tokens) for x in cold + warm]
    return {
        "model": f"Qwen2.5-{size}-Instruct shapes, random weights, Q4_0 GGUF (llama.cpp)", "build_or_cache_s": round(build_s, 1),
        "file_mb": round(path.stat().st_size / 2**20, 1), "scene_regions": len(scene.regions),
        "direct_cold": {"prompt_tokens": int(np.median([x.prompt_tokens for x in cold])),
                        "completion_tokens": int(np.median([x.completion_tokens for x in cold])),
                        "prefix": per(cold, "llm_prefix_ms"), "suffix": per(cold, "llm_suffix_ms"),
                        "decode": per(cold, "llm_decode_ms"), "total": per(cold, "deduce_ms")},
        "direct_warm": {"prompt_tokens": int(np.median([x.prompt_tokens for x in warm])),
                        "completion_tokens": int(np.median([x.completion_tokens for x in warm])),
                        "prefix": per(warm, "llm_prefix_ms"), "suffix": per(warm, "llm_suffix_ms"),
                        "decode": per(warm, "llm_decode_ms"), "total": per(warm, "deduce_ms")},
        "decode_ms_per_token": _stats(decode_tok),
        "program_fill": {"prompt_tokens": int(np.median([f.prompt_tokens for _, f in fills])),
                         "completion_tokens": int(np.median([f.completion_tokens for _, f in fills])),
                         "total": _stats([ms for ms, _ in fills])},
    }


STAGES = ("regions", "ocr", "llm-0.5b", "sam2-tiny", "captioner", "sam2-small", "llm-1.5b")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/bench_pipeline.json")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per stage (after one warm-up)")
    ap.add_argument("--skip", nargs="*", default=[], choices=STAGES)
    args = ap.parse_args(argv)
    result = {"benchmark": "pipeline budget (production shapes, random weights)", "machine": machine_info(("torch",)),
              "threads": THREADS, "image": [H, W], "repeats": args.repeats, "stages": {}}
    runners = {"sam2-tiny": lambda: bench_sam2("tiny", args.repeats), "sam2-small": lambda: bench_sam2("small", args.repeats),
               "captioner": lambda: bench_captioner(args.repeats), "ocr": lambda: bench_ocr(args.repeats),
               "regions": regions_per_scene, "llm-0.5b": lambda: bench_llm("0.5b", args.repeats),
               "llm-1.5b": lambda: bench_llm("1.5b", args.repeats)}
    for name in STAGES:
        if name in args.skip:
            continue
        t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        try:
            result["stages"][name] = runners[name]()
        except Exception as exc:  # one stage failing (a missing package) never loses the others' numbers
            result["stages"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        # how much of the machine this stage got: CPU seconds of all our threads per wall second
        # (THREADS = full use); the load average says how many others wanted the cores too
        result["stages"][name].update({"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                       "effective_cores": round(cpu / max(wall, 1e-9), 2),
                                       "loadavg_1min": [round(load0, 1), round(os.getloadavg()[0], 1)]})
        print(f"{name}: {result['stages'][name]}", flush=True)
        write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
