"""Adversarial suite for the ``program`` mode, on the generator of tests/test_deduce_adversarial.py
(prompt injections, fake ids like R999, JSON fragments, chat-template tokens, unicode, very long
text — in queries and in region captions / OCR text). Contract: 0 outputs that fail or name an id
outside the scene.

Program mode executes exactly on the scene, so it holds by construction; these runs check it for
real: 1000 cases through parser + MiniLM matcher + executor (no LLM), a share of them with the real
default LLM filling the phrases the parser leaves over, and (``slow``) all 1000 with the LLM.
"""

from __future__ import annotations

import pytest

from gear_edge.deduce.program import ProgramDeducer, parse
from gear_edge.deduce.program.fill import MAX_WORD_CHARS, MAX_WORDS
from gear_edge.deduce.program.semantic import TextEmbedder
from tests.llm_fixtures import needs_llm, shared_llm
from tests.test_deduce_adversarial import FULL_CASES, _check, adversarial_cases
from tests.test_deduce_adversarial import run_suite as run_adversarial

LLM_CASES = 40


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder.default(threads=1)


@pytest.fixture(scope="module")
def cases():
    return adversarial_cases(FULL_CASES, seed=1)


def test_program_adversarial_1000_without_llm(embedder, cases):
    result = run_adversarial(ProgramDeducer(llm=None, embedder=embedder), cases)
    print(f"\nadversarial[program, no LLM]: {len(cases)} cases, {result['answered']} answered, "
          f"{len(result['bad'])} bad, {result['seconds']:.1f} s")
    _check(result, len(cases))
    assert result["too_long"] == 0  # program mode never needs the context for the query


def test_generated_queries_exercise_the_llm_path(cases):
    """The generator is adversarial for this mode too: many queries leave phrases to the LLM."""
    left = [u for _, q in cases for u in parse(q).unresolved]
    assert len(left) >= 200
    assert any("ignore previous instructions" in u.text for u in left)


@needs_llm
def test_program_adversarial_with_llm(embedder, cases):
    d = ProgramDeducer(llm=shared_llm(), embedder=embedder)
    subset = cases[:LLM_CASES]
    result = run_adversarial(d, subset)
    _check(result, len(subset))
    f = d.filler()
    assert f is not None and len(f._cache) > 10  # the LLM really ran on these phrases
    for fill in f._cache.values():
        assert len(fill.raw) <= MAX_WORDS and all(len(w) <= MAX_WORD_CHARS for w in fill.raw)


@needs_llm
@pytest.mark.slow
def test_program_adversarial_1000_with_llm(embedder, cases):
    result = run_adversarial(ProgramDeducer(llm=shared_llm(), embedder=embedder), cases)
    print(f"\nadversarial[program, LLM]: {len(cases)} cases, {result['answered']} answered, "
          f"{len(result['bad'])} bad, {result['seconds']:.0f} s")
    _check(result, len(cases))
