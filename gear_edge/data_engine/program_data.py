"""Training data for the program-mode translator LLM, written and verified by the data engine (no torch).

One example = a request → the compact program (:mod:`gear_edge.deduce.program.compact`) that answers
it, in the exact prompt :class:`gear_edge.deduce.program.translate.ProgramTranslator` sends (``system``,
the few-shot turns of :data:`gear_edge.deduce.prompts.TRANSLATE_EXAMPLES`, the request) and the
``target`` text it should write.

Where they come from: the data engine's questions on its random tabletops
(:func:`gear_edge.data_engine.deducer_data.random_scene`, the template writer, every taxonomy class).
A question the deterministic parser answers right gives its parse as the program — kept only when that
program, through the compact layout (``to_compact`` → ``from_compact``), still yields the question's
regions on its scene. Each such question is then *reworded*: one vocabulary word (a colour, a size, a
superlative, a shape) is replaced by a word the parser does not know ("the ruby box" for "the red
box"), keeping the program. A reworded question that reaches the LLM in the runtime (the parser leaves
a phrase unresolved) is a phrasing the grammar cannot parse: those are what the translator is for,
and ``reaches_llm`` marks them.

Splits: ``train`` rewords with :data:`TRAIN_REWORDS` and the writer's templates; ``heldout`` with
:data:`HELDOUT_REWORDS` (other words, written separately; none in common with training) and the held-out
templates and scenes of :mod:`gear_edge.data_engine.deducer_data`. Output and resumption work as
there (``<out>/train.jsonl``, ``<out>/heldout.jsonl``, ``<out>/state.json``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from typing import Any

from gear_edge.data_engine import deducer_data as dd
from gear_edge.data_engine.generate import TemplateWriter, check_phrasings
from gear_edge.deduce.program.compact import from_compact, to_compact
from gear_edge.deduce.program.translate import prompt_pair
from gear_edge.errors import InputError

FORMAT = "gear_edge.program_data/1"

# vocabulary word -> words a person may say for it that the parser's vocabulary lacks (checked by
# rewording: a substitute the parser knows gives a question that does not reach the LLM)
TRAIN_REWORDS: Mapping[str, tuple[str, ...]] = {
    "red": ("cherry", "ruby", "tomato coloured"), "green": ("emerald", "mint", "leaf coloured"),
    "blue": ("sapphire", "cobalt", "sky coloured"), "yellow": ("lemon", "mustard", "canary"),
    "orange": ("tangerine", "pumpkin coloured", "amber"), "purple": ("plum", "grape coloured", "amethyst"),
    "white": ("snowy", "ivory", "chalky"), "black": ("jet", "ebony", "coal coloured"),
    "pink": ("salmon", "flamingo coloured", "bubblegum"),
    "large": ("jumbo", "hefty", "sizeable"), "small": ("teeny", "wee", "pint sized"), "tiny": ("teensy",),
    "huge": ("colossal",), "largest": ("chunkiest", "most sizeable"), "smallest": ("teeniest", "most minute"),
    "round": ("circle like", "coin like"), "rectangular": ("brick like",), "triangular": ("pyramid like",),
}
# written separately from TRAIN_REWORDS: no substitute in common
HELDOUT_REWORDS: Mapping[str, tuple[str, ...]] = {
    "red": ("strawberry coloured", "cardinal", "ketchup coloured"), "green": ("jade", "moss coloured", "pea coloured"),
    "blue": ("ultramarine", "denim", "cornflower"), "yellow": ("banana coloured", "sunflower", "butter coloured"),
    "orange": ("carrot coloured", "apricot", "marigold"), "purple": ("aubergine", "mulberry", "orchid"),
    "white": ("milky", "pearl", "porcelain"), "black": ("inky", "onyx", "sooty"),
    "pink": ("blush", "candyfloss", "shrimp coloured"),
    "large": ("whopping", "oversized", "king size"), "small": ("itty bitty", "miniature", "petite"),
    "tiny": ("microscopic",), "huge": ("humongous",), "largest": ("heftiest", "most whopping"),
    "smallest": ("puniest", "most petite"), "round": ("wheel like", "moon shaped"), "rectangular": ("slab like",),
    "triangular": ("arrowhead like",),
}


def _check_rewords() -> None:
    common = {w for v in TRAIN_REWORDS.values() for w in v} & {w for v in HELDOUT_REWORDS.values() for w in v}
    if common:
        raise InputError(f"rewording tables share {sorted(common)}: the held-out words must never be trained on")


def reword(question: str, table: Mapping[str, tuple[str, ...]], rng: random.Random) -> tuple[str, str, str] | None:
    """(reworded question, the word replaced, its substitute) — one whole word of ``table`` replaced by
    one of its substitutes (seeded choice); None when the question holds none of its words."""
    words = [w for w in table if re.search(rf"\b{re.escape(w)}\b", question)]
    if not words:
        return None
    w = rng.choice(sorted(words))
    sub = rng.choice(table[w])
    return re.sub(rf"\b{re.escape(w)}\b", sub, question, count=1), w, sub


def _example(split: str, index: int, sseed: int, cand, query: str, compact: dict, reaches: bool, variant: str,
             parser_ok: bool, replaced: str = "", substitute: str = "") -> dict[str, Any]:
    system, user, _ = prompt_pair(query)
    return {"task": "program", "split": split, "scene_index": index, "scene_seed": sseed, "cls": cand.cls,
            "template": cand.template, "query": query, "system": system, "scene": "", "question": user,
            "target": json.dumps(compact), "targets": list(cand.targets), "reaches_llm": reaches,
            "parser_ok": parser_ok, "variant": variant, "replaced": replaced, "substitute": substitute}


def scene_examples(split: str, index: int, settings: dd.Settings, deducer=None) -> tuple[list[dict], dict[str, int]]:
    """The verified program examples of scene ``index`` of ``split`` (as written and reworded), and counts."""
    from gear_edge.deduce.program.deducer import ProgramDeducer

    if split not in dd.SPLITS:
        raise InputError(f"split must be one of {dd.SPLITS}, got {split!r}")
    _check_rewords()
    deducer = deducer or ProgramDeducer(llm=None, embedder=None)
    sseed = dd.scene_seed(settings.seed, split, index)
    scene = dd.random_scene(sseed)
    phr = check_phrasings(dd.TRAIN_PHRASINGS if split == "train" else dd.HELDOUT_PHRASINGS)
    table = TRAIN_REWORDS if split == "train" else HELDOUT_REWORDS
    writer = TemplateWriter(per_class=settings.per_class, classes=settings.classes, phrasings=phr)
    rng = random.Random(sseed)
    out: list[dict] = []
    counts: dict[str, int] = {"written": 0, "kept": 0, "reworded": 0, "reworded_reaching_llm": 0}
    seen: set[str] = set()

    def answer(program) -> list[int]:
        return sorted(deducer.executor.run(scene, program)[0])

    for cand in writer.write(scene, rng):
        counts["written"] += 1
        if cand.question in seen:
            continue
        seen.add(cand.question)
        want = sorted(cand.targets)
        program = deducer.parser.parse(cand.question)
        if answer(program) != want:
            counts["parser_wrong"] = counts.get("parser_wrong", 0) + 1
            continue
        compact = to_compact(program)
        if compact is None:
            counts["not_compact"] = counts.get("not_compact", 0) + 1
            continue
        if answer(from_compact(compact, cand.question)) != want:
            counts["compact_differs"] = counts.get("compact_differs", 0) + 1
            continue
        counts["kept"] += 1
        out.append(_example(split, index, sseed, cand, cand.question, compact, bool(program.unresolved), "as written",
                            True))
        rw = reword(cand.question, table, rng)
        if rw is None or rw[0] in seen:
            continue
        seen.add(rw[0])
        q2, word, sub = rw
        p2 = deducer.parser.parse(q2)
        reaches = bool(p2.unresolved)
        counts["reworded"] += 1
        counts["reworded_reaching_llm"] += int(reaches)
        out.append(_example(split, index, sseed, cand, q2, compact, reaches, "reworded", answer(p2) == want, word, sub))
    return out, counts


def write_dataset(out_dir, settings: dd.Settings, *, progress=None, max_seconds: float | None = None) -> dict[str, Any]:
    """Writes (or resumes) the program examples under ``out_dir`` (see the module doc)."""
    from gear_edge.deduce.program.deducer import ProgramDeducer

    deducer = ProgramDeducer(llm=None, embedder=None)
    return dd.write_splits(out_dir, settings, lambda split, i: scene_examples(split, i, settings, deducer),
                           {"format": FORMAT, "train_rewords": {k: list(v) for k, v in TRAIN_REWORDS.items()},
                            "heldout_rewords": {k: list(v) for k, v in HELDOUT_REWORDS.items()}},
                           progress=progress, max_seconds=max_seconds)


# ---- evaluation -------------------------------------------------------------------------------

EVAL_KEYS = ("scene_seed", "query", "targets", "cls", "reaches_llm", "variant")


def evaluate_program(examples: list[dict], deducers: Mapping[str, Any], *, reaching_only: bool = True, limit: int = 0,
                     progress=None) -> dict[str, Any]:
    """Accuracy of program deducers (name → ``deduce(scene, query) -> Answer``; e.g. LLM off, the base
    model translating, the tuned adapter translating) on program examples — by default only those that
    reach the LLM (``reaches_llm``). Scenes are rebuilt from their seeds. ``limit``: an even sample.
    Returns per deducer: total / correct / accuracy, per class and per replaced word kind, LLM calls
    and their latency; and the rows (what each deducer answered)."""
    todo = dd.even_sample([ex for ex in examples if ex.get("reaches_llm") or not reaching_only], limit)
    rows: list[dict] = []
    for k, (ex, scene, _) in enumerate(dd.with_scenes(todo)):
        want = sorted(int(t) for t in ex["targets"])
        row: dict[str, Any] = {"cls": ex["cls"], "query": ex["query"], "want": want, "replaced": ex.get("replaced", ""),
                               "variant": ex.get("variant", "")}
        for name, d in deducers.items():
            a = d.deduce(scene, ex["query"])
            got = sorted(int(t) for t in a.targets)
            row[name] = {"got": got, "ok": got == want, "llm_ms": a.timings.get("llm_ms"),
                         "tokens": a.completion_tokens}
        rows.append(row)
        if progress is not None and (k + 1) % 20 == 0:
            progress(f"{k + 1}/{len(todo)}: " + ", ".join(f"{n} {sum(r[n]['ok'] for r in rows)}" for n in deducers))

    def summary(name: str) -> dict[str, Any]:
        def by(key) -> dict[str, dict[str, float]]:
            return dd.tally(rows, key, lambda r: r[name]["ok"])

        ms = sorted(r[name]["llm_ms"] for r in rows if r[name]["llm_ms"] is not None)
        correct = sum(r[name]["ok"] for r in rows)
        return {"total": len(rows), "correct": correct, "accuracy": correct / len(rows) if rows else 0.0,
                "per_class": by(lambda r: r["cls"]), "per_replaced": by(lambda r: r["replaced"] or "-"),
                "llm_calls": len(ms), "llm_ms_p50": ms[len(ms) // 2] if ms else None,
                "llm_ms_p90": ms[min(len(ms) - 1, int(0.9 * len(ms)))] if ms else None}

    return {"total": len(rows), "by_deducer": {n: summary(n) for n in deducers}, "rows": rows}
