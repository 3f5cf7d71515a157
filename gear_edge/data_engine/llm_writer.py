"""LLM question writer: the local LLM writes questions about a scene under a per-scene grammar.

The LLM reads the scene as text (the deducer's own region lines, :mod:`gear_edge.describe.scene_text`)
and, for a requested taxonomy class and a focus region, writes one question plus the ids of the
regions that answer it. The output is constrained by a GBNF grammar built from the scene
(:mod:`gear_edge.deduce.grammar`): ``{"question": "<8..N printable chars>", "targets": [ids]}`` where
ids are an ordered subset of *this scene's* ids (at most ``max_targets``, possibly none), so every
output parses and names only real regions. The scene part of the prompt is evaluated once per scene
(the LLM's prefix cache); each question costs only its request and answer tokens.

A tiny model (the default SmolLM2-135M) writes few questions whose ids are right; that is what
verification is for. Questions that name region ids ("R3"), are too short, or copy a few-shot
example's question verbatim are marked invalid (``meta["invalid"]``) and rejected by the engine
before verification (reason ``writer_invalid``): a user would never say the first, and the last says
nothing about this scene.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any, Sequence

from gear_edge.data_engine.base import Candidate, normalise_question
from gear_edge.data_engine.taxonomy import ABSENT, CLASSES, DESCRIPTIONS, IDENTITY
from gear_edge.deduce import prompts as deduce_prompts
from gear_edge.deduce.grammar import Array, Enum, GrammarViolation, Object, String, compile_schema, parse, region_token
from gear_edge.describe.scene_text import region_phrase, scene_lines, select_regions
from gear_edge.errors import InputError
from gear_edge.types import Scene

WRITER = "llm"

SYSTEM = (
    "You write questions for a robot that looks at an image. The image is described one region per line: "
    "its id (R1, R2, ...), size, colour, shape, position, text written on it and its relations to other "
    "regions. Write one short question or instruction of the requested kind that a person could say about "
    "this image, and list the ids of the regions that answer it ([] if no region does). Describe regions "
    "by colour, size, shape, position and relations; never write ids in the question. Reply with JSON only."
)
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        deduce_prompts.SCENE_HEADER
        + "R1: large grey rectangular object, centre\n"
        + "R2: small red round object, top-left; on top of R1\n"
        + "R3: small blue object, right; right of R1\n"
        + "Kind: spatial (picks an object by where it is in the image or relative to another object). About: R2.",
        '{"question": "the red object on top of the grey object", "targets": ["R2"]}',
    ),
    (
        deduce_prompts.SCENE_HEADER
        + "R1: large brown object, bottom\n"
        + "R2: medium white round object, centre; on top of R1\n"
        + "Kind: absent (asks for something that is not in the image (the answer is no region)). About: nothing.",
        '{"question": "the green object on the table", "targets": []}',
    ),
)
_ID_WORD = re.compile(r"\b[Rr]\d+\b")
# the few-shot answers' questions: a tiny model often copies them whatever the scene
_EXAMPLE_QUESTIONS = frozenset(normalise_question(json.loads(a)["question"]) for _, a in EXAMPLES)


def request_text(cls: str, focus_line: str | None) -> str:
    about = f"About: {focus_line}." if focus_line else "About: nothing."
    return f"Kind: {cls} ({DESCRIPTIONS[cls]}). {about}"


class LLMQuestionWriter:
    """Writes ``n`` questions per scene with ``llm`` (a :class:`gear_edge.deduce.llm.LocalLLM`).

    ``classes``: the taxonomy classes requested (cycled in a seeded random order); ``max_regions``:
    scene lines shown (largest regions first, bounds the prompt); ``max_question_chars`` and
    ``max_targets`` bound the output (and so the tokens decoded).
    """

    name = WRITER

    def __init__(self, llm: Any, n: int = 2, classes: Sequence[str] = CLASSES, max_regions: int = 16,
                 max_question_chars: int = 80, max_targets: int = 4, temperature: float = 0.0) -> None:
        if n < 0 or max_regions < 1 or max_question_chars < 8 or max_targets < 1:
            raise InputError("LLMQuestionWriter needs n >= 0, max_regions >= 1, max_question_chars >= 8, max_targets >= 1")
        self.llm = llm
        self.n = int(n)
        self.classes = tuple(c for c in classes if c != IDENTITY) or tuple(classes)
        self.max_regions = int(max_regions)
        self.max_question_chars = int(max_question_chars)
        self.max_targets = int(max_targets)
        self.temperature = float(temperature)

    def settings(self) -> dict:
        return {"n": self.n, "classes": list(self.classes), "max_regions": self.max_regions,
                "max_question_chars": self.max_question_chars, "max_targets": self.max_targets,
                "temperature": self.temperature, "system": SYSTEM, "examples": [list(e) for e in EXAMPLES]}

    def schema(self, ids: Sequence[int]) -> Object:
        question = String(self.max_question_chars, min_chars=8)
        if ids:
            targets = Array(Enum(tuple(region_token(i) for i in ids)), max_items=min(self.max_targets, len(ids)), distinct=True)
        else:
            targets = Array(Enum(("R0",)), max_items=0)
        return Object((("question", question), ("targets", targets)))

    def write(self, scene: Scene, rng: random.Random) -> list[Candidate]:
        if self.n == 0 or not scene.regions:
            return []
        shown = select_regions(scene, self.max_regions)
        ids = [r.id for r in shown]
        lines = scene_lines(scene, self.max_regions)
        scene_block = deduce_prompts.scene_block(lines)
        grammar = compile_schema(self.schema(ids))
        key = "qwriter:" + hashlib.sha1("\x00".join([SYSTEM, scene_block]).encode()).hexdigest()
        order = list(self.classes)
        rng.shuffle(order)
        out: list[Candidate] = []
        for k in range(self.n):
            cls = order[k % len(order)]
            focus = None if cls == ABSENT else rng.choice(shown)
            focus_line = None if focus is None else f"R{focus.id} ({region_phrase(focus)})"
            prefix, suffix = self.llm.chat_parts(SYSTEM, scene_block, request_text(cls, focus_line), EXAMPLES)
            gen = self.llm.generate(key, prefix, suffix, grammar.gbnf, grammar.max_bytes + 1, self.temperature)
            try:
                value = parse(gen.text, grammar.schema)
            except GrammarViolation as exc:  # cannot happen under the grammar; recorded if it does
                out.append(Candidate("(unparsable LLM output)", (), cls, WRITER, "llm.invalid",
                                     (f"LLM output broke the grammar: {exc}",), {"invalid": str(exc)}))
                continue
            question = " ".join(value["question"].split())
            targets = tuple(int(t[1:]) for t in value["targets"])
            rationale = (f"LLM asked for a {cls} question about {focus_line or 'nothing in the image'}",
                         f"LLM answer: {', '.join(value['targets']) or 'none'}")
            meta = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                    "focus": None if focus is None else focus.id}
            if _ID_WORD.search(question):
                meta["invalid"] = "the question names region ids"
            elif len(question) < 8:
                meta["invalid"] = "the question is too short"
            elif normalise_question(question) in _EXAMPLE_QUESTIONS:
                meta["invalid"] = "the question copies the prompt's example"
            out.append(Candidate(question or "(empty)", targets, cls, WRITER, f"llm.{cls}", rationale, meta))
        return out
