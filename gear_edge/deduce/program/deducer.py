"""``program`` deduction (the default): parse → (LLM fills what the parser could not) → execute.

The query becomes a typed :class:`~gear_edge.deduce.program.ast.Program` (deterministic parser);
phrases the grammar does not cover (a purpose such as "something to cut the tape with", or words
it cannot place) are handed to the LLM, which only names candidate objects under a bounded JSON
grammar (or, tuned for it, translates the whole query into a program: ``llm_role="translate"``); the
program is then executed exactly on the scene, and its executed steps — each with the ids it kept —
are the logic chain. Without a usable LLM (llama-cpp-python missing, or ``llm=None``)
every query still runs: unresolved phrases are matched by their own words and the chain says the
LLM was skipped.

When the LLM is asked (``llm_use``): only when the program, run with the phrase's own words, finds
nothing — so the LLM can add an answer but never change one — and each call is bounded by
``llm_budget_s``. With ``llm_use="auto"`` the default SmolLM2-135M is never asked: on the held-out
benchmark (``benchmarks/bench_deduce_quality.py``) its words score exactly what random words and no
LLM score (see docs/ARCHITECTURE.md), so it would only cost seconds.
"""

from __future__ import annotations

import time
from typing import Any

from gear_edge.deduce.base import DEFAULT_MAX_QUERY_CHARS, finish_answer, validate_query
from gear_edge.deduce.program.ast import Program, affordances, with_alternatives
from gear_edge.deduce.program.executor import Executor, Trace, ids_text
from gear_edge.deduce.program.fill import ObjectFiller
from gear_edge.deduce.program.parser import Parser
from gear_edge.deduce.program.semantic import SemanticMatcher, TextEmbedder
from gear_edge.deduce.program.translate import ProgramTranslator
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.types import Answer, LogicStep, Scene

AUTO = "auto"
LLM_USES = ("auto", "always", "never")
LLM_ROLES = ("fill", "translate")
# why "auto" does not ask the default model (measured; docs/ARCHITECTURE.md, deduce section)
DEFAULT_MODEL_NOTE = ("not asked: the default SmolLM2-135M names no better objects than random words on the "
                      "held-out benchmark (deduce.program_llm = 'always' to ask it anyway)")


class ProgramDeducer:
    """Query program deduction. Thread-compatible (one query at a time per instance).

    ``llm``: a :class:`gear_edge.deduce.llm.LocalLLM`, a zero-argument callable returning one (called
    on first need), ``"auto"`` (the default GGUF, created on first need; skipped with a note when
    llama-cpp-python is not installed) or None (never use an LLM).
    ``embedder``: a :class:`TextEmbedder`, ``"auto"`` (MiniLM from its PyPI package, created on first
    need; lexical matching only, with a note, when the package is missing), a zero-argument callable
    returning one (called on first need, same note on MissingDependencyError) or None (lexical only).
    ``max_llm_calls``: LLM calls per query at most (one per unresolved phrase; the rest are matched
    by their own words), which bounds a query's latency; ``llm_budget_s``: seconds one call may take
    (decoding stops there and the phrase is matched by its own words).
    ``llm_use``: "auto" (ask a configured LLM, but never the default SmolLM2-135M: ``llm="auto"`` or
    ``default_model=True``), "always" or "never".
    ``llm_role``: "fill" (the LLM names objects for each unresolved phrase, :mod:`.fill`) or
    "translate" (a tuned LLM writes the whole query's program, :mod:`.translate`); either way the LLM is
    asked only when the query's own words find nothing.
    """

    mode = "program"
    captions_on_demand = True  # the executor asks the scene for the captions it reads (Scene.captions)

    def __init__(
        self,
        llm: Any = AUTO,
        embedder: TextEmbedder | str | None = AUTO,
        *,
        threads: int | None = None,
        max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
        max_llm_calls: int = 2,
        llm_budget_s: float = 20.0,
        llm_use: str = "auto",
        default_model: bool | None = None,
        llm_role: str = "fill",
    ) -> None:
        if llm_role not in LLM_ROLES:
            raise InputError(f"llm_role must be one of {list(LLM_ROLES)}, got {llm_role!r}")
        self.llm_role = llm_role
        if llm_use not in LLM_USES:
            raise InputError(f"llm_use must be one of {list(LLM_USES)}, got {llm_use!r}")
        if not llm_budget_s > 0:
            raise InputError(f"llm_budget_s must be > 0 seconds, got {llm_budget_s}")
        self.llm_use = llm_use
        self.llm_budget_s = float(llm_budget_s)
        # whether ``llm`` is the default SmolLM2-135M ("auto" means it is)
        self.default_model = (isinstance(llm, str) and llm == AUTO) if default_model is None else bool(default_model)
        if max_query_chars < 1:
            raise InputError(f"max_query_chars must be >= 1, got {max_query_chars}")
        if max_llm_calls < 0:
            raise InputError(f"max_llm_calls must be >= 0, got {max_llm_calls}")
        self.max_llm_calls = int(max_llm_calls)
        self._llm_arg = llm
        self._embedder_arg = embedder
        self.threads = threads
        self.max_query_chars = int(max_query_chars)
        self.parser = Parser()
        self._embedder: TextEmbedder | None = None
        self._embedder_note: str | None = None
        self._filler: ObjectFiller | None = None
        self._llm_note: str | None = None
        self._executor: Executor | None = None

    # ---- components (lazy) ------------------------------------------------------------------

    @property
    def embedder(self) -> TextEmbedder | None:
        if self._embedder is None and self._embedder_note is None:
            arg = self._embedder_arg
            if arg is None:
                self._embedder_note = "no sentence-embedding model configured"
            elif isinstance(arg, str) and arg == AUTO:
                try:
                    self._embedder = TextEmbedder.default(threads=self.threads)
                except MissingDependencyError as exc:
                    self._embedder_note = str(exc)
            elif callable(arg) and not hasattr(arg, "embed"):  # a provider (gear_edge.assemble)
                try:
                    self._embedder = arg()
                except MissingDependencyError as exc:
                    self._embedder_note = str(exc)
                if self._embedder is None and self._embedder_note is None:
                    self._embedder_note = "no sentence-embedding model configured"
            else:
                self._embedder = arg  # type: ignore[assignment]
        return self._embedder

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(SemanticMatcher(self.embedder))
        return self._executor

    def filler(self) -> ObjectFiller | ProgramTranslator | None:
        """The LLM object namer (or program translator, ``llm_role``), or None (``llm_note`` says why)."""
        if self._filler is None and self._llm_note is None:
            arg = self._llm_arg
            llm = None
            if self.llm_use == "never":
                self._llm_note = "not asked (llm_use = never)"
            elif arg is None:
                self._llm_note = "no LLM configured"
            elif isinstance(arg, str) and arg == AUTO:
                from gear_edge.deduce.llm import LocalLLM, import_llama_cpp

                try:
                    import_llama_cpp()
                except MissingDependencyError as exc:
                    self._llm_note = f"llama-cpp-python is not installed ({str(exc).split(';')[0]})"
                else:
                    if self.llm_use == "auto" and self.default_model:
                        self._llm_note = DEFAULT_MODEL_NOTE
                    else:
                        llm = LocalLLM(threads=self.threads)
            elif self.llm_use == "auto" and self.default_model:
                self._llm_note = DEFAULT_MODEL_NOTE
            elif callable(arg) and not hasattr(arg, "generate"):
                try:
                    llm = arg()
                except MissingDependencyError as exc:
                    self._llm_note = f"the LLM is unavailable: {exc}"
            else:
                llm = arg
            if llm is not None:
                self._filler = ProgramTranslator(llm) if self.llm_role == "translate" else ObjectFiller(llm)
        return self._filler

    @property
    def llm_note(self) -> str | None:
        return self._llm_note

    # ---- deduction -------------------------------------------------------------------------------

    def program(self, query: str) -> Program:
        """The parsed program of ``query`` (no LLM, no scene)."""
        return self.parser.parse(validate_query(query, self.max_query_chars))

    def deduce(self, scene: Scene, query: str) -> Answer:
        if not isinstance(scene, Scene):
            raise InputError(f"scene must be a gear_edge.types.Scene, got {type(scene).__name__}")
        t0 = time.perf_counter()
        query = validate_query(query, self.max_query_chars)
        timings: dict[str, float] = {}
        program = self.parser.parse(query)
        t1 = time.perf_counter()
        timings["parse_ms"] = (t1 - t0) * 1e3
        trace = Trace()
        trace.add(f"program: {program.describe()}", None)
        for note in program.notes:
            trace.add(f"parser: {note}", None)
        prompt_tokens = completion_tokens = 0
        t2 = time.perf_counter()
        if self.embedder is None and self._embedder_note:
            trace.add(f"semantic matcher skipped ({self._embedder_note}): object words matched lexically", None)
        if program.unresolved and self.filler() is not None:
            filled, prompt_tokens, completion_tokens = self._fill(program, trace, timings)
            t2 = time.perf_counter()
            # the phrase's own words decide where they find something: the LLM adds answers, never changes one
            own, own_trace = self.executor.run(scene, program, Trace())
            if own or filled is program:
                targets = own
                if filled is not program:
                    trace.add("the phrase's own words found an answer: kept it (the LLM's words only add "
                              "answers where they find nothing)", None)
                trace.steps.extend(own_trace.steps)
                trace.dropped += own_trace.dropped
            else:
                what = "program" if self.llm_role == "translate" else "words"
                trace.add(f"the phrase's own words found nothing; with the LLM's {what}:", None)
                targets, trace = self.executor.run(scene, filled, trace)
        else:
            if program.unresolved:
                for u in program.unresolved:
                    trace.add(f"LLM skipped ({self._llm_note}): '{_short(u.text)}' matched by its own words", None)
            targets, trace = self.executor.run(scene, program, trace)
        t3 = time.perf_counter()
        timings["execute_ms"] = (t3 - t2) * 1e3
        trace.steps.append(LogicStep(f"answer: {ids_text(targets)}", list(targets)))
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        answer = finish_answer(scene, query, targets, trace.steps, self.mode, prompt_tokens, completion_tokens, timings)
        identity = getattr(getattr(self._filler, "llm", None), "identity", None)
        if self._filler is not None and isinstance(identity, dict):
            answer.meta["llm"] = dict(identity)  # the model (and adapter) that named objects
        return answer

    def _fill(self, program: Program, trace: Trace, timings: dict[str, float]) -> tuple[Program, int, int]:
        """(the program with the LLM's words as alternatives — or the LLM's own program of the query
        (``llm_role`` "translate") — ``program`` itself when it gave none, prompt tokens, completion tokens)."""
        t0 = time.perf_counter()
        filler = self.filler()
        assert filler is not None
        if isinstance(filler, ProgramTranslator):
            return self._translate(filler, program, trace, timings, t0)
        words: dict[str, tuple[str, ...]] = {}
        prompt = completion = 0
        for k, u in enumerate(program.unresolved):
            if k >= self.max_llm_calls:
                trace.add(f"LLM skipped (at most {self.max_llm_calls} calls per query): '{_short(u.text)}' "
                          "matched by its own words", None)
                continue
            f = filler.fill(u.text, u.acted_on, budget_s=self.llm_budget_s)
            prompt += f.prompt_tokens
            completion += f.completion_tokens
            words[u.phrase] = f.words
            src = "cached" if f.cached else f"{f.completion_tokens} tokens, {f.ms:.0f} ms"
            if f.over_budget:
                src += f", stopped at the {self.llm_budget_s:g} s budget"
            drop = f"; dropped {', '.join(f.dropped)}" if f.dropped else ""
            shown = ", ".join(f.words) if f.words else "nothing usable"
            describe = getattr(filler.llm, "describe", None)
            who = f" (by {describe()})" if callable(describe) else ""
            trace.add(f"LLM ({src}): '{_short(u.text)}' -> {shown}{drop}{who}", None)
        timings["llm_ms"] = (time.perf_counter() - t0) * 1e3
        if not any(words.values()):
            return program, prompt, completion
        return with_alternatives(program, words), prompt, completion

    def _translate(self, translator: ProgramTranslator, program: Program, trace: Trace,
                   timings: dict[str, float], t0: float) -> tuple[Program, int, int]:
        if self.max_llm_calls < 1:
            trace.add("LLM skipped (at most 0 calls per query): the phrases are matched by their own words", None)
            return program, 0, 0
        t = translator.translate(program.query, budget_s=self.llm_budget_s)
        timings["llm_ms"] = (time.perf_counter() - t0) * 1e3
        src = "cached" if t.cached else f"{t.completion_tokens} tokens, {t.ms:.0f} ms"
        describe = getattr(translator.llm, "describe", None)
        who = f" (by {describe()})" if callable(describe) else ""
        unresolved = ", ".join(f"'{_short(u.text, 40)}'" for u in program.unresolved)
        if t.program is None or t.program.nothing:
            why = t.error or "it names nothing to look for"
            trace.add(f"LLM ({src}) translated the query for {unresolved}: no program used ({why}){who}", None)
            return program, t.prompt_tokens, t.completion_tokens
        said = affordances(program)
        lost = sorted(said - affordances(t.program))
        if lost:  # the vocabulary already knows what the purpose means: a guess that drops it is not used
            uses = ", ".join(f"'{a}'" for a in lost)
            trace.add(f"LLM ({src}) translated the query for {unresolved}: {t.program.describe()}{who}; not used: "
                      f"the vocabulary reads the purpose as use {uses}, which that program drops", None)
            return program, t.prompt_tokens, t.completion_tokens
        trace.add(f"LLM ({src}) translated the query for {unresolved}: {t.program.describe()}{who}", None)
        return t.program, t.prompt_tokens, t.completion_tokens


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

