"""Training data for the direct-mode deducer LLM, written and verified by the data engine (no torch).

One example = the exact prompt pieces :class:`gear_edge.deduce.direct.DirectDeducer` sends for a
scene and a query (``system``, the ``scene`` block of region lines, the ``question`` block; the
few-shot turns are :data:`gear_edge.deduce.prompts.DIRECT_EXAMPLES`) → the ``target`` text the
model should write: the direct mode's JSON ``{"steps": [...], "targets": ["R3"]}`` in the grammar's
layout (``targets: []`` — "nothing" — for absent queries), with the writer's short reason chain as
steps. Every target text is parsed back with the scene's own answer schema
(:func:`gear_edge.deduce.grammar.parse_scene_answer`), so it is an output the grammar admits.

Scenes: random synthetic tabletops (:func:`random_scene`: flat-coloured solids, a horse figure and
coins from :mod:`gear_edge.synthetic`, pasted with exact masks; printed words and captions on some),
described exactly by :func:`gear_edge.describe.scene.describe_scene`. Questions: the template writer
(:class:`gear_edge.data_engine.generate.TemplateWriter`, every taxonomy class); each is kept only when
the deterministic program deducer (parser + executor, no LLM) answers it with the same regions on
that scene (:class:`gear_edge.data_engine.verify.Verifier`).

Splits: ``train`` uses the writer's own sentence templates (:data:`TRAIN_PHRASINGS`); ``heldout``
uses :data:`HELDOUT_PHRASINGS`, written separately, none of which occurs in training, and its own
scenes (another seed stream). Output: ``<out>/train.jsonl``, ``<out>/heldout.jsonl`` and
``<out>/state.json`` (settings + per split: scenes done, bytes, examples). Each scene's lines are
appended and flushed, then the state is written (atomically); a resumed run truncates each file to
the recorded bytes and continues with the next scene, so an interrupted run resumed gives the same
files as an uninterrupted one (deterministic by seed).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.data_engine.generate import PHRASINGS, TemplateWriter, check_phrasings
from gear_edge.data_engine.taxonomy import CLASSES
from gear_edge.deduce import prompts
from gear_edge.deduce.grammar import parse_scene_answer, scene_answer_schema
from gear_edge.errors import InputError
from gear_edge.types import Scene

FORMAT = "gear_edge.deducer_data/1"
SPLITS = ("train", "heldout")
MAX_STEPS = 4  # DirectDeducer's defaults: the answer schema the runtime grammar enforces
MAX_STEP_CHARS = 80
MAX_REGIONS = 40

TRAIN_PHRASINGS: Mapping[str, tuple[str, ...]] = PHRASINGS
# Written separately from the data engine's PHRASINGS (no template in common): questions, polite and
# terse commands, other verbs and word orders.
HELDOUT_PHRASINGS: Mapping[str, tuple[str, ...]] = {
    "find": ("could you point out {np}?", "I'm looking for {np}", "which one is {np}?", "{np}, please",
             "highlight {np}", "mark {np} for me"),
    "find_all": ("could you point out {np}?", "highlight {np}", "I want {np}", "{np}, please", "mark {np} for me"),
    "absent": ("do you see {a_np}?", "could you point out {np}?", "I'm looking for {np}", "highlight {np}"),
    "grasp": ("can you pick up {np}?", "please take {np}", "pass me {np}", "go and get {np}", "I need you to grab {np}"),
    "text": ('the thing with "{np}" on it', 'which object reads "{np}"?', 'the item marked "{np}"'),
    "absent_text": ('which object reads "{np}"?', 'the thing with "{np}" on it', 'do you see anything marked "{np}"?'),
    "purpose": ("I am looking for {np}", "is there {np}?", "could you find me {np}"),
    "count": ("what number of {np} can you see?", "tell me how many {np} there are", "{np}: how many?"),
}

PALETTE = {  # names the colour namer gives these RGB values (flat solids, little noise)
    "red": (200, 30, 30), "green": (40, 150, 50), "blue": (30, 70, 210), "yellow": (235, 205, 40),
    "orange": (240, 130, 20), "purple": (125, 45, 160), "white": (238, 238, 238), "black": (30, 30, 32),
    "pink": (240, 125, 175),
}
WORDS = ("FRAGILE", "MILK", "SUGAR", "TOOLS", "SALT", "RICE", "TEA", "SPARE", "FLOUR", "SOAP")
# captions by solid, so identity / affordance questions have object words to use
CAPTIONS = {
    "rect": ("a cardboard box", "a book", "a phone", "a sponge", "a towel"),
    "disk": ("a ball", "a plate", "a cup seen from above", "a bowl"),
    "ellipse": ("a bowl", "a plate", "a bag"),
    "ring": ("a roll of tape", "a ring"),
    "frame": ("a picture frame", "a basket"),
    "triangle": ("a wedge", "a slice of cake"),
    "horse": ("a toy horse",),
    "coin": ("a coin", "a key"),
}


# ---- scenes -----------------------------------------------------------------------------------

def random_scene(seed: int, size: tuple[int, int] = (240, 320)) -> Scene:
    """A random tabletop of 3-9 objects with exact masks, described exactly (attributes, relations,
    roles); some boxes carry a printed word (``Region.text``), some objects a caption."""
    from gear_edge import synthetic
    from gear_edge.describe.scene import describe_scene
    import gear_edge.masks as gm
    from gear_edge.types import Region

    rng = np.random.default_rng(seed)
    h, w = size
    img = synthetic.SyntheticScene(synthetic.background(h, w))
    n = int(rng.integers(3, 10))
    colours = list(PALETTE)
    kinds, texts, captions = [], [], []
    for k in range(n):
        kind = str(rng.choice(["rect", "rect", "disk", "ellipse", "ring", "frame", "triangle", "horse", "coin"]))
        side = int(rng.integers(min(h, w) // 8, min(h, w) // 2.5))
        x, y = int(rng.integers(2, max(3, w - side - 2))), int(rng.integers(2, max(3, h - side - 2)))
        if kind == "rect":
            aspect = float(rng.uniform(0.35, 2.5))
            mask = synthetic.solid_mask("rect", (x, y, min(w - 1, x + int(side * aspect)), y + side), h, w)
        elif kind == "disk":
            mask = synthetic.solid_mask("disk", (x + side // 2, y + side // 2, side // 2), h, w)
        elif kind == "ellipse":
            mask = synthetic.solid_mask("ellipse", (x + side // 2, y + side // 2, side // 2, max(3, side // 4)), h, w)
        elif kind == "ring":
            mask = synthetic.solid_mask("ring", (x + side // 2, y + side // 2, side // 2, side // 4), h, w)
        elif kind == "frame":
            mask = synthetic.solid_mask("frame", (x, y, x + side, y + side, max(2, side // 6)), h, w)
        elif kind == "triangle":
            mask = synthetic.solid_mask("triangle", [x, y + side, x + side, y + side, x + side // 2, y], h, w)
        elif kind == "horse":
            mask = synthetic.horse_mask(h, w, x, y, min(side, w - x - 1))
        else:
            mask = synthetic.coin_mask(h, w, x, y, min(side // 2 + 8, h - y - 1, w - x - 1))
        colour = colours.pop(int(rng.integers(len(colours)))) if rng.random() < 0.8 or not colours else None
        if colour is None:
            colour = str(rng.choice(list(PALETTE)))
        img.paste(f"o{k}", mask, PALETTE[colour], noise=3.0, seed=int(rng.integers(1 << 30)))
        kinds.append(kind)
        texts.append([str(rng.choice(WORDS))] if kind == "rect" and rng.random() < 0.4 else None)
        captions.append(str(rng.choice(CAPTIONS[kind])) if rng.random() < 0.5 else None)
    regions, kept = [], []
    for k in range(n):
        m = img.masks[f"o{k}"]
        if m.sum() < 40:  # occluded away
            continue
        rle = gm.encode(m)
        regions.append(Region(id=len(regions) + 1, rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)),
                              area=int(gm.area(rle))))
        kept.append(k)
    scene = describe_scene(img.image, regions)
    for r, k in zip(scene.regions, kept):
        if texts[k]:
            r.text = list(texts[k])
        if captions[k]:
            r.caption = captions[k]
    scene.meta["synthetic"] = {"seed": int(seed), "kinds": [kinds[k] for k in kept]}
    return scene


def scene_seed(seed: int, split: str, index: int) -> int:
    """The scene seed of ``index`` in ``split``: separate streams, so no held-out scene is a training one."""
    return int(seed) * 1_000_003 + (0 if split == "train" else 500_000) + int(index)


# ---- examples ---------------------------------------------------------------------------------

def prompt_parts(scene: Scene, query: str) -> dict[str, str]:
    """The direct deducer's prompt pieces for (scene, query), exactly as
    :meth:`gear_edge.deduce.direct.DirectDeducer.deduce` builds them (single-stage scenes)."""
    from gear_edge.describe.scene_text import scene_lines

    return {
        "system": prompts.direct_system(MAX_STEPS),
        "scene": prompts.scene_block(scene_lines(scene, MAX_REGIONS)),
        "question": prompts.question_block(query),
    }


def _clean_step(text: str) -> str:
    text = "".join(ch if 0x20 <= ord(ch) < 0x7F else " " for ch in str(text))
    text = " ".join(text.replace('"', "'").replace("\\", "/").split())
    return text if len(text) <= MAX_STEP_CHARS else text[: MAX_STEP_CHARS - 3].rstrip() + "..."


def target_text(scene: Scene, targets, rationale) -> str:
    """The answer the model should write (the grammar's JSON layout), checked against the scene's
    answer schema: at most :data:`MAX_STEPS` steps (the last ones of the rationale, which end at the
    answer), each at most :data:`MAX_STEP_CHARS` grammar characters."""
    steps = [_clean_step(s) for s in rationale if _clean_step(s)][-MAX_STEPS:]
    if not steps:
        steps = ["no region fits" if not targets else "found " + ", ".join(f"R{t}" for t in targets)]
    ids = sorted(r.id for r in scene.regions)
    text = json.dumps({"steps": steps, "targets": [f"R{t}" for t in sorted(targets)]})
    got_steps, got = parse_scene_answer(text, scene_answer_schema(ids, MAX_STEPS, MAX_STEP_CHARS))
    assert got == sorted(targets) and got_steps == steps
    return text


@dataclass
class Settings:
    seed: int = 0
    train_scenes: int = 100
    heldout_scenes: int = 20
    per_class: int = 2
    classes: tuple[str, ...] = CLASSES

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "seed": self.seed, "per_class": self.per_class, "classes": list(self.classes),
                "train_phrasings": {k: list(v) for k, v in TRAIN_PHRASINGS.items()},
                "heldout_phrasings": {k: list(v) for k, v in HELDOUT_PHRASINGS.items()}}


def _verifier():
    from gear_edge.data_engine.verify import Verifier
    from gear_edge.deduce.program.deducer import ProgramDeducer

    return Verifier(ProgramDeducer(llm=None, embedder=None))


def scene_examples(split: str, index: int, settings: Settings, verifier=None) -> tuple[list[dict], dict[str, int]]:
    """Every verified example of scene ``index`` of ``split``, and counts (written / kept / rejected
    per reason)."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    verifier = verifier or _verifier()
    sseed = scene_seed(settings.seed, split, index)
    scene = random_scene(sseed)
    phr = check_phrasings(TRAIN_PHRASINGS if split == "train" else HELDOUT_PHRASINGS)
    writer = TemplateWriter(per_class=settings.per_class, classes=settings.classes, phrasings=phr)
    rng = random.Random(sseed)
    out: list[dict] = []
    counts: dict[str, int] = {"written": 0, "kept": 0}
    seen: set[str] = set()
    for cand in writer.write(scene, rng):
        counts["written"] += 1
        if cand.question in seen:
            counts["duplicate"] = counts.get("duplicate", 0) + 1
            continue
        seen.add(cand.question)
        verdict = verifier.verify(scene, cand)
        if not verdict.kept:
            counts[verdict.reason] = counts.get(verdict.reason, 0) + 1
            continue
        counts["kept"] += 1
        out.append({
            "split": split, "scene_index": index, "scene_seed": sseed, "cls": cand.cls, "template": cand.template,
            "query": cand.question, **prompt_parts(scene, cand.question),
            "targets": list(cand.targets), "target": target_text(scene, cand.targets, cand.rationale),
            "verified": verdict.reason, "regions": len(scene.regions),
        })
    return out, counts


def write_dataset(out_dir: str | os.PathLike, settings: Settings, *, progress: Callable[[str], None] | None = None,
                  max_seconds: float | None = None) -> dict[str, Any]:
    """Writes (or resumes) ``train.jsonl`` and ``heldout.jsonl`` under ``out_dir``; returns the state.

    A state whose settings differ from ``settings`` (other than the scene counts, which may grow) is
    refused. ``max_seconds``: stop after the scene that passes this wall time (resume later)."""
    verifier = _verifier()
    return write_splits(out_dir, settings, lambda split, i: scene_examples(split, i, settings, verifier), {},
                        progress=progress, max_seconds=max_seconds)


def write_splits(out_dir: str | os.PathLike, settings: Settings,
                 make: Callable[[str, int], tuple[list[dict], dict[str, int]]], extra: Mapping[str, Any], *,
                 progress: Callable[[str], None] | None = None, max_seconds: float | None = None) -> dict[str, Any]:
    """The resumable writer of both splits: ``make(split, scene index)`` gives a scene's examples and
    counts; ``extra`` joins (and overrides) the settings recorded in ``state.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    want = {**settings.to_dict(), **extra}
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("settings") != want:
            raise InputError(f"{state_path}: written with other settings; use a new output folder "
                             "(or the same --seed / --per-class / classes)")
    else:
        state = {"settings": want, "splits": {s: {"scenes": 0, "bytes": 0, "examples": 0, "counts": {}} for s in SPLITS}}
    t0 = time.perf_counter()
    for split, n_scenes in (("train", settings.train_scenes), ("heldout", settings.heldout_scenes)):
        st = state["splits"][split]
        path = out / f"{split}.jsonl"
        with open(path, "ab") as f:
            f.truncate(st["bytes"])  # drop what an interrupted run wrote after its last recorded scene
        while st["scenes"] < n_scenes:
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                return state
            examples, counts = make(split, st["scenes"])
            with open(path, "ab") as f:
                for ex in examples:
                    f.write((json.dumps(ex, sort_keys=True) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
                st["bytes"] = f.tell()
            st["scenes"] += 1
            st["examples"] += len(examples)
            for k, v in counts.items():
                st["counts"][k] = st["counts"].get(k, 0) + v
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            os.replace(tmp, state_path)
            if progress is not None:
                progress(f"{split}: scene {st['scenes']}/{n_scenes}, {st['examples']} examples "
                         f"({counts['kept']}/{counts['written']} verified in this scene)")
    return state


def read_examples(path: str | os.PathLike, required: tuple[str, ...] = ()) -> list[dict]:
    """The examples of one ``<split>.jsonl``, each holding the ``required`` keys; InputError naming the
    file and line of a broken one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file (write it with 'gear-edge train-deducer data')")
    out = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}:{n}: not JSON ({exc.msg})") from None
            missing = [k for k in required if k not in ex]
            if missing:
                raise InputError(f"{p}:{n}: example lacks {', '.join(missing)}")
            out.append(ex)
    return out


# ---- evaluation -------------------------------------------------------------------------------

# what :func:`evaluate_direct` reads of an example
EVAL_KEYS = ("scene_seed", "query", "targets", "cls", "scene")


def even_sample(examples: list[dict], limit: int = 0) -> list[dict]:
    """An even sample of ``limit`` examples (every k-th; 0 = all), ordered by scene then query."""
    todo = list(examples)
    if limit and len(todo) > limit:
        step = len(todo) / limit
        todo = [todo[int(k * step)] for k in range(limit)]
    return sorted(todo, key=lambda ex: (ex["scene_seed"], ex["query"]))


def with_scenes(examples: list[dict]):
    """(example, its scene rebuilt from ``scene_seed``, whether that scene was just rebuilt) per example;
    examples in scene order share one rebuild."""
    scene, seed = None, None
    for ex in examples:
        fresh = ex["scene_seed"] != seed
        if fresh:
            seed = ex["scene_seed"]
            scene = random_scene(int(seed))
        yield ex, scene, fresh


def tally(rows: list[dict], key: Callable[[dict], str], ok: Callable[[dict], bool]) -> dict[str, dict[str, float]]:
    """total / correct / accuracy of ``rows`` per ``key(row)``, correct where ``ok(row)``; sorted by key."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        t = out.setdefault(key(r), {"total": 0, "correct": 0})
        t["total"] += 1
        t["correct"] += int(ok(r))
    for t in out.values():
        t["accuracy"] = t["correct"] / t["total"]
    return dict(sorted(out.items()))


def evaluate_direct(examples: list[dict], deducer, *, limit: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Accuracy of a direct deducer (``deducer.deduce(scene, query) -> Answer``) on data-engine examples:
    each example's scene is rebuilt from its seed (:func:`random_scene`), and the prompt's scene block
    must equal the stored one (else the data was written by another version of the scene text:
    InputError). ``limit``: an even sample of that many (every k-th, 0 = all), run scene by scene so
    the LLM's scene prefix is evaluated once per scene. Returns total / correct / accuracy, per class,
    per template family (the template's first two parts) and absent -> nothing, plus the rows."""
    todo = even_sample(examples, limit)
    rows: list[dict] = []
    for k, (ex, scene, fresh) in enumerate(with_scenes(todo)):
        if fresh and prompt_parts(scene, ex["query"])["scene"] != ex["scene"]:
            raise InputError(f"scene seed {ex['scene_seed']}: the stored scene text differs from what this "
                             "version writes (the data was written by another version; regenerate it with "
                             "'train-deducer data')")
        answer = deducer.deduce(scene, ex["query"])
        got = sorted(int(t) for t in answer.targets)
        want = sorted(int(t) for t in ex["targets"])
        own = answer.meta.get("model_targets")  # the model's answer before the direct deducer's chain check
        rows.append({"cls": ex["cls"], "template": ex.get("template", ""), "query": ex["query"],
                     "want": want, "got": got, "ok": got == want,
                     "model_got": None if own is None else sorted(int(t) for t in own)})
        if progress is not None and (k + 1) % 20 == 0:
            progress(f"{k + 1}/{len(todo)}: {sum(r['ok'] for r in rows)} right")

    def by(key) -> dict[str, dict[str, float]]:
        return tally(rows, key, lambda r: r["ok"])

    absent = [r for r in rows if not r["want"]]
    correct = sum(r["ok"] for r in rows)
    return {"total": len(rows), "correct": correct, "accuracy": correct / len(rows) if rows else 0.0,
            "per_class": by(lambda r: r["cls"]),
            "per_family": by(lambda r: ".".join(r["template"].split(".")[:2])),
            "absent_answered_nothing": {"total": len(absent), "correct": sum(not r["got"] for r in absent)},
            "model_alone": {"correct": sum(r["model_got"] == r["want"] for r in rows if r["model_got"] is not None),
                            "total": sum(r["model_got"] is not None for r in rows)},
            "rows": rows}
