"""The LLM's only job in program mode: name objects for a phrase the parser could not place.

"something to cut the tape with" → ``{"objects": ["scissors", "knife"]}``. The output is bounded
JSON under a GBNF grammar (1..``MAX_WORDS`` strings of at most ``MAX_WORD_CHARS`` characters), so it
always closes; the words are then cleaned (lower-case letters, digits and spaces only), words the
phrase acts on ("tape") and generic words are dropped; the semantic matcher weighs each remaining
word by how plausibly it names the phrase (:func:`~gear_edge.deduce.program.semantic.plausibility`).
The LLM never sees the scene: region text cannot steer it, and its prompt prefix (system text and
examples) is the same for every query, so the LLM's prefix cache evaluates it once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from gear_edge.deduce.grammar import Array, Grammar, Object, String, compile_schema, parse
from gear_edge.deduce.program.lru import LruCache
from gear_edge.deduce.program.semantic import singular
from gear_edge.deduce.prompts import FILL_EXAMPLES, FILL_SYSTEM
from gear_edge.errors import GearEdgeError

MAX_WORDS = 3
MAX_WORD_CHARS = 24
MAX_PHRASE_CHARS = 160  # the phrase handed to the LLM is cut to this (the parser bounds it already)
FILL_SCENE_KEY = "gear_edge.program.fill"

GENERIC = {"object", "objects", "thing", "things", "item", "items", "something", "stuff", "tool", "device", "none",
           "nothing", "unknown", "r", "id", "ids", "target", "targets"}


def fill_schema() -> Object:
    return Object((("objects", Array(String(MAX_WORD_CHARS, 2), max_items=MAX_WORDS, min_items=1)),))


@dataclass
class Fill:
    """The LLM's words for one phrase (``words`` kept, ``raw`` as generated) and its accounting."""

    phrase: str
    words: tuple[str, ...]
    raw: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    cached: bool = False
    over_budget: bool = False  # decoding hit the call's time budget (the words are then empty)
    timings: dict[str, float] = field(default_factory=dict)


def clean_word(word: str) -> str:
    """Lower-case letters/digits, single spaces ('Coat-Rack!' → 'coat rack')."""
    return " ".join(re.findall(r"[a-z0-9]+", str(word).lower()))


class ObjectFiller:
    """Asks ``llm`` (a :class:`gear_edge.deduce.llm.LocalLLM`) for object names; results cached per
    (phrase, acted_on) in an LRU of ``cache_size`` entries (greedy decoding is deterministic)."""

    def __init__(self, llm, cache_size: int = 512) -> None:
        self.llm = llm
        self.grammar: Grammar = compile_schema(fill_schema())
        self._cache: LruCache[Fill] = LruCache(cache_size)

    def prompt(self, phrase: str):
        """(prefix, suffix) chat segments; the phrase is untrusted Content inside the user turn."""
        return self.llm.chat_parts(FILL_SYSTEM, "", phrase, FILL_EXAMPLES)

    def fill(self, phrase: str, acted_on: tuple[str, ...] = (), budget_s: float | None = None) -> Fill:
        """The LLM's words for ``phrase`` (cached); ``budget_s`` bounds the call (seconds)."""
        phrase = " ".join(str(phrase).split())[:MAX_PHRASE_CHARS]
        key = (phrase, tuple(acted_on))
        hit = self._cache.get(key)
        if hit is not None:
            return Fill(hit.phrase, hit.words, hit.raw, hit.dropped, cached=True)
        t0 = time.perf_counter()
        prefix, suffix = self.prompt(phrase)
        kw = {} if budget_s is None else {"budget_s": float(budget_s)}
        gen = self.llm.generate(FILL_SCENE_KEY, prefix, suffix, self.grammar.gbnf, self.grammar.max_bytes + 1, **kw)
        over = getattr(gen, "stop", "eog") == "time"
        try:
            raw = () if over else tuple(str(w) for w in parse(gen.text, self.grammar.schema)["objects"])
        except GearEdgeError:  # cannot happen under the grammar; an unusable answer is no answer
            raw = ()
        words, dropped = self._keep(phrase, raw, acted_on)
        out = Fill(phrase, words, raw, dropped, gen.prompt_tokens, gen.prompt_tokens_evaluated, gen.completion_tokens,
                   (time.perf_counter() - t0) * 1e3, False, dict(gen.timings), over)
        if over:
            return out  # not cached: a later call with more time may finish
        self._cache.put(key, Fill(phrase, words, raw, dropped))
        return out

    def _keep(self, phrase: str, raw: tuple[str, ...], acted_on: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        acted = {singular(w) for a in acted_on for w in clean_word(a).split()}
        kept: list[str] = []
        dropped: list[str] = []
        for r in raw:
            w = clean_word(r)
            toks = w.split()
            if not w or w in kept or not any(c.isalpha() for c in w) or all(t in GENERIC for t in toks) \
                    or (toks and singular(toks[-1]) in acted):
                if w and w not in kept:
                    dropped.append(w)
                continue
            kept.append(w)
        return tuple(kept), tuple(dropped)
