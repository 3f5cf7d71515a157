"""``direct`` deduction (the paper's way): the LLM reads the scene lines and the query and returns the
logic chain and the target ids under a per-scene grammar (ids = this scene's ids, bounded lists and
strings), so it can only name regions that exist.

Scenes whose lines do not fit the context budget are deduced in two stages: the regions are cut into
chunks that fit, the LLM shortlists at most ``shortlist_per_chunk`` ids per chunk, then it decides
among the shortlisted (shortlisting again while they still do not fit). Every stage's steps are
recorded in the chain. Each prompt prefix (system + few-shot + scene/chunk lines) is cached by the
LLM's scene cache, keyed by a hash of its text.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gear_edge.deduce import prompts
from gear_edge.deduce.base import finish_answer, validate_query
from gear_edge.deduce.grammar import compile_schema, max_bytes, parse_scene_answer, scene_answer_schema
from gear_edge.deduce.llm import Generation, LocalLLM
from gear_edge.describe.scene_text import region_line, region_phrase, scene_lines
from gear_edge.errors import GearEdgeError, InputError
from gear_edge.types import Answer, LogicStep, Region, Scene


@dataclass
class _Call:
    steps: list[str]
    targets: list[int]
    gen: Generation


@dataclass
class DirectDeducer:
    """LLM picks the targets. ``max_targets`` None → up to every id of the scene (each at most once).

    ``max_regions``: scenes with more regions than this (or whose lines overflow the context) go
    two-stage. ``last_generations`` holds the LLM calls of the latest :meth:`deduce` (for benchmarks).
    ``check_steps``: the facts the model states in its final steps ("colour red: R3") are checked
    against the scene (:mod:`gear_edge.deduce.chain_check`); a target the scene contradicts is dropped,
    and the chain says what the scene says instead; a ranking step whose result the scene's values
    contradict ("leftmost of R4, R5: R4" when R5 is further left) has its result replaced.
    """

    llm: LocalLLM | None = None
    max_steps: int = 4
    max_targets: int | None = None
    max_step_chars: int = 80
    max_regions: int = 40
    shortlist_per_chunk: int = 4
    temperature: float = 0.0
    max_query_chars: int = 8000
    examples: tuple[tuple[str, str], ...] = prompts.DIRECT_EXAMPLES
    mode: str = "direct"
    check_steps: bool = True
    last_generations: list[Generation] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.llm is None:
            self.llm = LocalLLM()
        if self.max_steps < 1 or self.max_step_chars < 1 or self.shortlist_per_chunk < 1 or self.max_regions < 1:
            raise InputError("max_steps, max_step_chars, shortlist_per_chunk and max_regions must be >= 1")
        if self.max_targets is not None and self.max_targets < 1:
            raise InputError(f"max_targets must be >= 1 or None, got {self.max_targets}")

    # ---- public ---------------------------------------------------------------------------------

    def deduce(self, scene: Scene, query: str) -> Answer:
        t0 = time.perf_counter()
        query = validate_query(query, self.max_query_chars)
        self.last_generations = []
        question = prompts.question_block(query)
        system = prompts.direct_system(self.max_steps)
        regions = sorted(scene.regions, key=lambda r: r.id)
        # Raises InputError when the query cannot fit even beside the smallest scene.
        self._line_budget(system, self.examples, question, self._answer_bytes(regions[:1]))
        lines = scene_lines(scene, self.max_regions) if len(regions) <= self.max_regions else None
        steps: list[LogicStep] = []
        final_steps: list[str] = []  # the model's steps of the final call (the ones checked)
        if lines is not None and self._fits(lines, regions, system, question):
            call = self._ask(system, self.examples, lines, question, self._final_schema(regions))
            steps += [LogicStep(s) for s in call.steps]
            targets, final_steps = call.targets, call.steps
        else:
            candidates = self._shortlist(scene, regions, question, steps)
            if candidates:
                cand_lines = [region_line(scene, r) for r in candidates]
                ids = [r.id for r in candidates]
                steps.append(LogicStep(prompts.STAGE2_STEP.format(n=len(ids), ids=prompts.id_list(ids)), list(ids)))
                call = self._ask(system, self.examples, cand_lines, question, self._final_schema(candidates))
                steps += [LogicStep(s) for s in call.steps]
                targets, final_steps = call.targets, call.steps
            else:
                targets = []
        if steps:
            steps[-1] = LogicStep(steps[-1].text, list(dict.fromkeys(targets)))
        by_id = {r.id: r for r in scene.regions}
        model_targets = sorted(dict.fromkeys(targets))  # the model's own answer, before the scene's checks
        if self.check_steps:
            targets = self._checked(by_id, scene, final_steps, targets, steps)
        # the chain quotes the scene's own facts for each chosen region (not the model's paraphrase)
        for t in dict.fromkeys(targets):
            if t in by_id:
                steps.append(LogicStep(f"scene says {region_line(scene, by_id[t])}", [t]))
        if not targets:
            steps.append(LogicStep("answer: nothing in the scene fits", []))
        gens = self.last_generations
        timings = {
            "deduce_ms": (time.perf_counter() - t0) * 1e3,
            "llm_prefix_ms": sum(g.timings["prefix_ms"] for g in gens),
            "llm_suffix_ms": sum(g.timings["suffix_ms"] for g in gens),
            "llm_decode_ms": sum(g.timings["decode_ms"] for g in gens),
        }
        # the chain closes with which model (and LoRA adapter) answered, and its answer
        identity = getattr(self.llm, "identity", None)
        describe = getattr(self.llm, "describe", None)
        if callable(describe):
            steps.append(LogicStep(f"LLM: {describe()}", list(dict.fromkeys(targets))))
        answer = finish_answer(
            scene, query, targets, steps, self.mode,
            prompt_tokens=sum(g.prompt_tokens for g in gens),
            completion_tokens=sum(g.completion_tokens for g in gens),
            timings=timings,
        )
        if isinstance(identity, dict):
            answer.meta["llm"] = dict(identity)
        answer.meta["model_targets"] = model_targets
        return answer

    # ---- internals ------------------------------------------------------------------------------

    def _checked(self, by_id: dict[int, Region], scene: Scene, model_steps: list[str], targets: list[int],
                 steps: list[LogicStep]) -> list[int]:
        """The targets as the scene decides them, one chain step for each change.

        When the model's steps are all in the writer's layout and its targets are its last step's ids
        (or none, after a "none is both"-style conclusion; or some of them, after a stated result such as
        "union: R2, R5"), the steps are run on the scene
        (:func:`~gear_edge.deduce.chain_check.executed`) and their result is the answer unless it
        includes every target the model chose and the chain has no stated result (the steps may leave
        out a word the model used to choose: "position top: R4" for "the one at the top in the
        middle"). Otherwise
        targets a step states a false fact of are dropped, and the result of each ranking step the
        scene ranks otherwise is replaced by the scene's."""
        from gear_edge.data_engine.facts import SceneFacts
        from gear_edge.deduce.chain_check import contradicted, executed, recomputed

        facts = SceneFacts(scene)  # one look-up of the scene for the three checks
        wrong = contradicted(scene, model_steps, facts)
        run = executed(scene, model_steps, facts)
        if run is not None and not (
                (set(targets) <= set(run.stated) if run.explicit else set(run.stated) == set(targets))
                if targets else run.negative):
            run = None  # the targets do not come from the chain's last step
        if run is not None and targets and not run.explicit and set(targets) <= set(run.targets):
            run = None  # the run allows the model's pick (its steps may leave out words it read)
        dropped = {c.region for c in wrong if c.region in targets}
        kept = [t for t in targets if t not in dropped]
        if run is not None:
            kept = list(run.targets)
        for c in wrong:
            fate = "dropped" if c.region in dropped and c.region not in kept else (
                "not a target" if c.region not in targets else "kept: the steps run on the scene select it")
            steps.append(LogicStep(f"check: the scene does not say R{c.region} is {c.claim} ({fate}); it says "
                                   f"R{c.region}: {region_phrase(by_id[c.region])}", kept))
        if run is not None:
            if set(run.targets) != set(targets):
                got = prompts.id_list(list(run.targets))
                steps.append(LogicStep(f"check: the steps run on the scene give {got}, not "
                                       f"{prompts.id_list(targets)}; answer {got}", list(run.targets)))
            return list(run.targets)
        for r in recomputed(scene, model_steps, excluded={c.region for c in wrong}, facts=facts):
            if r.region not in kept:
                continue  # a ranking the answer does not rest on (or a dropped target)
            kept = list(dict.fromkeys(r.correct if t == r.region else t for t in kept))
            order = ", ".join(f"R{i}" for i in r.pool)
            steps.append(LogicStep(f"check: {r.claim} is R{r.correct}, not R{r.region} (the scene ranks them "
                                   f"{order}); answer R{r.correct}", kept))
        return kept

    def _final_schema(self, regions: Sequence[Region]):
        return scene_answer_schema([r.id for r in regions], self.max_steps, self.max_step_chars, self.max_targets)

    def _answer_bytes(self, regions: Sequence[Region]) -> int:
        return max_bytes(self._final_schema(regions))

    def _fits(self, lines: Sequence[str], regions: Sequence[Region], system: str, question: str) -> bool:
        """Whether the final prompt over these lines, with room for its longest answer, fits n_ctx."""
        if len(regions) > self.max_regions:
            return False
        try:
            budget = self._line_budget(system, self.examples, question, self._answer_bytes(regions))
        except InputError:
            return False
        return self._tokens_of(lines) <= budget

    def _shortlist_schema(self, regions: Sequence[Region]):
        return scene_answer_schema([r.id for r in regions], 1, self.max_step_chars, self.shortlist_per_chunk)

    def _tokens_of(self, lines: Sequence[str]) -> int:
        assert self.llm is not None
        return self.llm.count_tokens(prompts.scene_block(lines))

    def _line_budget(self, system: str, examples, question: str, answer_bytes: int) -> int:
        """Tokens left for scene lines once instructions, question and the longest answer are counted."""
        assert self.llm is not None
        pre, suf = self.llm.chat_parts(system, "", question, examples)
        fixed = self.llm.count_tokens(pre) + self.llm.count_tokens(suf) + answer_bytes + 1 + 2
        left = self.llm.n_ctx - fixed
        if left <= 0:
            q = self.llm.count_tokens(prompts.question_block(""))
            raise InputError(
                f"the query takes {self.llm.count_tokens(suf) - q} tokens; with the instructions and the "
                f"{answer_bytes + 1}-token answer budget the prompt needs {fixed} tokens but the LLM context "
                f"holds n_ctx={self.llm.n_ctx}; shorten the query or raise n_ctx"
            )
        return left

    def _ask(self, system: str, examples, lines: Sequence[str], question: str, schema) -> _Call:
        assert self.llm is not None
        grammar = compile_schema(schema)
        scene_text = prompts.scene_block(lines)
        prefix, suffix = self.llm.chat_parts(system, scene_text, question, examples)
        key = "scene:" + hashlib.sha1("\x00".join([system, scene_text]).encode()).hexdigest()
        gen = self.llm.generate(key, prefix, suffix, grammar.gbnf, grammar.max_bytes + 1, self.temperature)
        self.last_generations.append(gen)
        if gen.stop != "eog":  # cannot happen: max_tokens covers the grammar's longest output
            raise GearEdgeError(f"LLM output did not close within {grammar.max_bytes + 1} tokens: {gen.text[:200]!r}")
        steps, targets = parse_scene_answer(gen.text, schema)
        return _Call(steps, targets, gen)

    def _chunks(self, scene: Scene, regions: Sequence[Region], budget: int) -> list[list[Region]]:
        """Consecutive groups of regions whose lines fit ``budget`` tokens (at least one region each)."""
        assert self.llm is not None
        header = self.llm.count_tokens(prompts.scene_block([]))
        chunks: list[list[Region]] = []
        cur: list[Region] = []
        used = header
        for r in regions:
            n = self.llm.count_tokens(region_line(scene, r) + "\n")
            if cur and used + n > budget:
                chunks.append(cur)
                cur, used = [], header
            if used + n > budget:
                raise InputError(f"region R{r.id}'s line alone ({n} tokens) exceeds the context budget ({budget})")
            cur.append(r)
            used += n
        if cur:
            chunks.append(cur)
        return chunks

    def _shortlist(
        self, scene: Scene, regions: Sequence[Region], question: str, steps: list[LogicStep]
    ) -> list[Region]:
        """Stage 1 (repeated while needed): the shortlisted regions, which fit the final prompt."""
        system = prompts.shortlist_system(self.shortlist_per_chunk)
        final_system = prompts.direct_system(self.max_steps)
        pool = list(regions)
        while True:
            if self._fits([region_line(scene, r) for r in pool], pool, final_system, question):
                return pool
            budget = self._line_budget(system, (), question, self._shortlist_grammar_bytes())
            chunks = self._chunks(scene, pool, budget)
            kept: list[Region] = []
            for i, chunk in enumerate(chunks):
                call = self._ask(system, (), [region_line(scene, r) for r in chunk], question,
                                 self._shortlist_schema(chunk))
                ids = set(call.targets)
                chosen = [r for r in chunk if r.id in ids]
                kept += chosen
                steps.append(LogicStep(
                    prompts.STAGE1_STEP.format(
                        part=i + 1, parts=len(chunks), first=f"R{chunk[0].id}", last=f"R{chunk[-1].id}",
                        n=len(chunk), steps="; ".join(call.steps) or "-", kept=prompts.id_list([r.id for r in chosen]),
                    ),
                    [r.id for r in chosen],
                ))
            if not kept or len(kept) < len(pool):
                pool = kept
                if not pool:
                    return []
                continue
            # No progress (chunks no larger than the per-chunk cap): keep what fits, in id order.
            fit: list[Region] = []
            for r in pool:
                if not self._fits([region_line(scene, x) for x in fit + [r]], fit + [r], final_system, question):
                    break
                fit.append(r)
            steps.append(LogicStep(
                prompts.TRUNCATED_STEP.format(n=len(fit), total=len(pool), ids=prompts.id_list([r.id for r in fit])),
                [r.id for r in fit],
            ))
            return fit

    def _shortlist_grammar_bytes(self) -> int:
        # Longest shortlist answer: one step plus shortlist_per_chunk ids of up to "R" + 10 digits.
        worst = scene_answer_schema(list(range(10**9, 10**9 + self.shortlist_per_chunk)), 1,
                                    self.max_step_chars, self.shortlist_per_chunk)
        return max_bytes(worst)
