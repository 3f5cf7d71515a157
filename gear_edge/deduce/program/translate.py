"""The LLM's second job in program mode: translate a query the parser could not place into a program.

A tuned adapter (``gear-edge train-deducer train --task program``) learns, from the data engine's
verified examples, to write the compact program (:mod:`gear_edge.deduce.program.compact`) of a
request; the output is bounded by the compact grammar and becomes a typed Program the executor runs
exactly, so the LLM decides what to look for and never which region is the answer. Like the object
namer it never sees the scene: its prompt prefix (system text and examples) is the same for every
query and evaluated once, and translations are cached per query (greedy decoding is deterministic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gear_edge.deduce.grammar import parse
from gear_edge.deduce.program.ast import Program
from gear_edge.deduce.program.compact import compact_grammar, from_compact
from gear_edge.deduce.program.lru import LruCache
from gear_edge.deduce.prompts import TRANSLATE_EXAMPLES, TRANSLATE_SYSTEM, clean_query
from gear_edge.errors import GearEdgeError

TRANSLATE_SCENE_KEY = "gear_edge.program.translate"
MAX_QUERY_CHARS = 200  # the query handed to the LLM is cut to this
MAX_TOKENS = 320  # a translation longer than this is no translation (the grammar admits far longer ones)


@dataclass
class Translation:
    """The LLM's program for one query (``program`` None when it wrote none usable; ``error`` says why)."""

    query: str
    program: Program | None
    raw: str = ""
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    cached: bool = False
    over_budget: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def prompt_pair(query: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """(system, user text, few-shot turns) of the translation prompt — what training renders too."""
    return TRANSLATE_SYSTEM, clean_query(query)[:MAX_QUERY_CHARS], TRANSLATE_EXAMPLES


class ProgramTranslator:
    """Asks ``llm`` (a :class:`gear_edge.deduce.llm.LocalLLM`) for the compact program of a query;
    results cached per query in an LRU of ``cache_size`` entries."""

    def __init__(self, llm, cache_size: int = 512) -> None:
        self.llm = llm
        self.grammar = compact_grammar()
        self._cache: LruCache[Translation] = LruCache(cache_size)

    def translate(self, query: str, budget_s: float | None = None) -> Translation:
        system, text, examples = prompt_pair(query)
        hit = self._cache.get(text)
        if hit is not None:
            return Translation(hit.query, hit.program, hit.raw, hit.error, cached=True)
        t0 = time.perf_counter()
        prefix, suffix = self.llm.chat_parts(system, "", text, examples)
        kw = {} if budget_s is None else {"budget_s": float(budget_s)}
        max_tokens = min(self.grammar.max_bytes + 1, MAX_TOKENS)
        gen = self.llm.generate(TRANSLATE_SCENE_KEY, prefix, suffix, self.grammar.gbnf, max_tokens, **kw)
        stop = getattr(gen, "stop", "eog")
        program, error = None, ""
        if stop == "time":
            error = "stopped at the time budget"
        else:
            try:
                program = from_compact(parse(gen.text, self.grammar.schema), query)
            except GearEdgeError as exc:  # cut off at MAX_TOKENS, or a field from_compact refuses
                error = f"unusable program ({str(exc)[:120]})"
        out = Translation(query, program, gen.text, error, gen.prompt_tokens, gen.completion_tokens,
                          (time.perf_counter() - t0) * 1e3, False, stop == "time", dict(gen.timings))
        if stop == "time":
            return out  # not cached: a later call with more time may finish
        self._cache.put(text, Translation(query, program, gen.text, error))
        return out
