"""Hostile-input fuzz of the runtime: encoded image bytes, config values and queries.

Each case must end in a result or a :class:`gear_edge.errors.InputError` (a clear error); anything
else — another exception type, or the process dying (segfault, abort) — is a crash. Each family runs
in its own child process so a native crash is counted (by its signal) instead of ending the run.

    python scripts/fuzz_inputs.py --cases 10000 --out results/fuzz.json

Cases are split across the families (``--split images,config,queries`` fractions); queries run on
the default profile (classical segmenter, program deducer, the real SmolLM2 LLM when a query needs
it), several threads at once. Not part of the test run (minutes); tests/test_bad_input.py and
tests/test_io.py run the same checks on a few hundred cases.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import struct
import sys
import time
import traceback
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _image_case(rng: random.Random, seeds: list[bytes]) -> bytes:
    kind = rng.random()
    if kind < 0.45:  # a real encoded image with a few bytes changed, cut or extended
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        if rng.random() < 0.2:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        return bytes(data)
    if kind < 0.7:  # a valid header with lying sizes / orientation
        w, h = rng.choice([0, 1, 7, 20000, 40000, 2**31 - 1, 2**32 - 1]), rng.choice([0, 1, 5, 30000, 2**31])
        body = _chunk(b"IHDR", struct.pack(">II", w % 2**32, h % 2**32) + bytes([8, rng.choice([0, 2, 6]), 0, 0, 0]))
        if rng.random() < 0.5:
            body += _chunk(b"eXIf", b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1,
                                                                                          rng.randrange(12), 0))
        return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IDAT", zlib.compress(b"\0" * rng.randint(1, 200))) + _chunk(b"IEND", b"")
    prefix = rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xe1\xff\xff", b"BM", b"II*\x00",
                         b"MM\x00*", b"RIFF\x20\x00\x00\x00WEBPVP8X", b"\xff\xd8\xff\xc0\x00\x11\x08"])
    return prefix + bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))


def run_images(n: int, seed: int, q: mp.Queue) -> None:
    import cv2
    import numpy as np

    from gear_edge.errors import InputError
    from gear_edge.io import decode_image

    rng = random.Random(seed)
    img = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    seeds = [cv2.imencode(ext, img)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tif", ".webp")]
    _run("images", n, lambda i: decode_image(_image_case(rng, seeds), max_pixels=1 << 22), InputError, q)


def run_config(n: int, seed: int, q: mp.Queue) -> None:
    from gear_edge.config import SCHEMA, load_config
    from gear_edge.errors import InputError

    rng = random.Random(seed)
    keys = [f"{s}.{k}" for s, ks in SCHEMA.items() for k in ks] + ["runtime.nope", "nosection.key", "threads"]
    raw = ["inf", "-inf", "nan", "[]", "[1, 2]", "{a = 1}", "true", "false", "''", '"x"', "1e400", "-0", "0x10",
           "2.5", "-1", "0", "1000", "9" * 30, '["cpu"]', '["tensorrt", 3]', "\x00", "💥"]

    def case(i):
        over = {}
        for _ in range(rng.randint(1, 4)):
            value = rng.choice([rng.choice(raw), rng.randint(-2**40, 2**40), rng.uniform(-1e6, 1e6), rng.random() < 0.5,
                                "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randint(0, 6)))])
            over[rng.choice(keys)] = value
        return load_config(rng.choice(["default", "sam2"]), over)

    _run("config", n, case, InputError, q)


def run_queries(n: int, seed: int, q: mp.Queue, threads: int = 4) -> None:
    from gear_edge.errors import InputError
    from gear_edge.pipeline import GearSeg
    from tests.llm_fixtures import box_scene

    rng = random.Random(seed)
    gs = GearSeg.from_config("default", {"describe.ocr": False, "runtime.threads": 1})
    scene = box_scene([("red", 5, 5, 40, 40), ("blue", 60, 10, 110, 50), ("green", 20, 70, 90, 110)])
    words = ["the", "red", "blue", "largest", "-3rd", "2.5th", "0th", "left", "of", "???", "🙂", "cup", "R1", "not",
             "all", "\x00", "\u202e", "box", "above", "between", "and", "or", "its", "1st", "99th", "FRAGILE", "\"", "'"]
    queries = []
    for _ in range(n):
        if rng.random() < 0.6:
            queries.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))))
        else:
            queries.append("".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x2FFF),
                                                   rng.randrange(0x1F300, 0x1F6FF)])) for _ in range(rng.randint(1, 30))))
    pool = ThreadPoolExecutor(threads)  # several threads at once, as a robot stack calls
    _run("queries", n, lambda i: gs.ask(scene, queries[i]), InputError, q, pool=pool)


def _run(family: str, n: int, case, ok_error, q: mp.Queue, pool=None) -> None:
    t0 = time.perf_counter()
    counts = {"ok": 0, "input_error": 0, "crash": 0}
    crashes: list[str] = []

    def one(i):
        try:
            case(i)
            return "ok", None
        except ok_error as exc:
            if not str(exc):
                return "crash", "empty InputError message"
            return "input_error", None
        except Exception:  # noqa: BLE001 - any other exception is what we count
            return "crash", traceback.format_exc(limit=3)

    results = pool.map(one, range(n)) if pool is not None else map(one, range(n))
    for kind, detail in results:
        counts[kind] += 1
        if detail and len(crashes) < 10:
            crashes.append(detail)
    q.put({"family": family, "cases": n, **counts, "examples": crashes, "seconds": time.perf_counter() - t0})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--split", default="0.45,0.45,0.10", help="fractions of images, config, queries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/fuzz.json")
    args = p.parse_args()
    fractions = [float(x) for x in args.split.split(",")]
    sizes = [int(args.cases * f) for f in fractions]
    sizes[0] += args.cases - sum(sizes)
    ctx = mp.get_context("spawn")
    report = {"cases": args.cases, "families": [], "crashes": 0}
    for (name, fn), size in zip((("images", run_images), ("config", run_config), ("queries", run_queries)), sizes):
        q = ctx.Queue()
        proc = ctx.Process(target=fn, args=(size, args.seed, q))
        proc.start()
        proc.join()
        if proc.exitcode != 0:  # died: a native crash (negative exit code = signal)
            result = {"family": name, "cases": size, "crash": 1, "process_exit": proc.exitcode}
        else:
            result = q.get()
        report["families"].append(result)
        report["crashes"] += result["crash"]
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"{args.cases} cases, {report['crashes']} crashes -> {out}")
    return 1 if report["crashes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
