"""The shared deduce interface (validate_query, finish_answer, Deducer) and the ``direct`` mode with
the real default LLM: answers name only scene ids, carry the chain and the merged mask, reuse the
scene prefix, go two-stage on scenes larger than the budget, and reject bad queries clearly."""

from __future__ import annotations

import json

import pytest

import gear_edge.masks as gm
from gear_edge.deduce.base import Deducer, finish_answer, validate_query
from gear_edge.errors import InputError
from gear_edge.types import Answer, LogicStep
from tests.llm_fixtures import box_scene, needs_llm, shared_llm, tabletop_scene

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "purple", "orange"]


# ---- interface helpers (no model) ---------------------------------------------------------------

def test_validate_query():
    assert validate_query("  the red cup \n") == "the red cup"
    for bad in ["", "   ", "\n\t"]:
        with pytest.raises(InputError, match="empty"):
            validate_query(bad)
    with pytest.raises(InputError, match="characters"):
        validate_query("x" * 11, max_chars=10)
    with pytest.raises(InputError, match="string"):
        validate_query(None)  # type: ignore[arg-type]


def test_finish_answer_checks_dedupes_and_merges():
    scene = tabletop_scene()
    a = finish_answer(scene, "q", [3, 2, 3], ["s1", LogicStep("s2", [3, 2])], "direct", 10, 5, {"x_ms": 1})
    assert a.targets == [3, 2]
    assert a.steps[0] == LogicStep("s1") and a.steps[1].kept == [3, 2]
    union = gm.decode(scene.region(2).rle) | gm.decode(scene.region(3).rle)
    assert (gm.decode(a.mask) == union).all()
    assert a.prompt_tokens == 10 and a.completion_tokens == 5 and a.mode == "direct"
    assert Answer.from_dict(a.to_dict()) == a
    empty = finish_answer(scene, "q", [], [], "direct")
    assert empty.mask is None and empty.targets == []
    for bad in ([99], [1, 99], ["1"], [True]):
        with pytest.raises(InputError, match="not in the scene"):
            finish_answer(scene, "q", bad, [], "direct")


# ---- direct mode with the real model ------------------------------------------------------------

@pytest.fixture(scope="module")
def direct():
    from gear_edge.deduce.direct import DirectDeducer

    return DirectDeducer(shared_llm())


@needs_llm
def test_direct_is_a_deducer_and_answers_with_scene_ids(direct):
    assert isinstance(direct, Deducer) and direct.mode == "direct"
    scene = tabletop_scene()
    for q in ["the red box", "the object with FRAGILE written on it", "the purple elephant"]:
        a = direct.deduce(scene, q)
        assert set(a.targets) <= set(scene.ids) and len(set(a.targets)) == len(a.targets)
        assert a.steps[-1].text == "LLM: SmolLM2-135M-Instruct.Q4_1.gguf" and a.meta["llm"]["adapter"] is None
        # the model's own steps (bounded), then one "scene says" line per target (or "answer: nothing")
        quoted = [s for s in a.steps[:-1] if s.text.startswith("scene says ")]
        checks = [s for s in a.steps[:-1] if s.text.startswith("check: the scene does not say R")]  # chain_check
        own = [s for s in a.steps[:-1] if s not in quoted and s not in checks
               and s.text != "answer: nothing in the scene fits"]
        assert 1 <= len(own) <= direct.max_steps and all(len(s.text) <= 80 for s in own)
        assert [s.kept for s in quoted] == [[t] for t in a.targets]
        assert a.steps[-1].kept == a.targets
        if a.targets:
            assert a.mask == gm.merge([scene.region(t).rle for t in a.targets])
        else:
            assert a.mask is None
        assert a.prompt_tokens > 100 and a.completion_tokens > 0 and a.timings["deduce_ms"] > 0
        assert Answer.from_dict(json.loads(a.to_json())) == a


@needs_llm
def test_direct_reuses_the_scene_prefix_and_is_repeatable(direct):
    scene, other = tabletop_scene(), box_scene([("white", 10, 10, 60, 60), ("orange", 80, 20, 120, 90)])
    first = direct.deduce(scene, "the green bar")
    cold = direct.last_generations[0]
    again = direct.deduce(scene, "the blue box")
    warm = direct.last_generations[0]
    assert warm.cache in ("live", "restored") and warm.prompt_tokens_evaluated * 5 < cold.prompt_tokens
    direct.deduce(other, "the white square")
    repeat = direct.deduce(scene, "the green bar")
    assert direct.last_generations[0].cache == "restored"
    assert (repeat.targets, [s.text for s in repeat.steps]) == (first.targets, [s.text for s in first.steps])
    assert again.query == "the blue box"


@needs_llm
def test_direct_two_stage_records_both_stages(direct):
    from gear_edge.deduce.direct import DirectDeducer

    scene = tabletop_scene()
    small = DirectDeducer(shared_llm(), max_regions=3, shortlist_per_chunk=2)
    a = small.deduce(scene, "the red box with FRAGILE on it")
    texts = [s.text for s in a.steps]
    assert any(t.startswith("shortlist 1/") for t in texts), texts
    stage1 = [s for s in a.steps if s.text.startswith("shortlist")]
    shortlisted = [i for s in stage1 for i in s.kept]
    assert all(len(s.kept) <= 2 for s in stage1)
    chunks = int(texts[0].split()[1].split("/")[1])  # "shortlist 1/K ...": every chunk of round 1 is recorded
    assert [t.split()[1] for t in texts[:chunks]] == [f"{k}/{chunks}" for k in range(1, chunks + 1)], texts
    assert len(small.last_generations) >= chunks
    assert set(a.targets) <= set(shortlisted) <= set(scene.ids)
    # both outcomes are checked: with a shortlist a second stage decides among exactly those ids;
    # without one nothing is asked again and the answer is empty
    decide = [s for s in a.steps if s.text.startswith("decide among")]
    if shortlisted:
        assert decide and set(decide[0].kept) <= set(shortlisted)
        assert len(small.last_generations) > chunks
    else:
        assert not decide and a.targets == [] and a.mask is None
        assert len(small.last_generations) == chunks


@needs_llm
def test_direct_two_stage_on_a_scene_larger_than_max_regions(direct):
    boxes = [(COLOURS[i % len(COLOURS)], (i % 9) * 17, (i // 9) * 17, (i % 9) * 17 + 12, (i // 9) * 17 + 12)
             for i in range(45)]
    scene = box_scene(boxes, size=(120, 160), ids=range(100, 145))
    a = direct.deduce(scene, "a purple square")
    texts = [s.text for s in a.steps]
    assert texts[0].startswith("shortlist 1/"), texts
    assert set(a.targets) <= set(scene.ids)


@needs_llm
def test_direct_empty_scene_has_no_targets(direct):
    from gear_edge.types import Scene

    a = direct.deduce(Scene(image_size=(10, 10), regions=[]), "the cup")
    assert a.targets == [] and a.mask is None


@needs_llm
def test_direct_rejects_bad_queries(direct):
    scene = tabletop_scene()
    for bad in ["", "  \n "]:
        with pytest.raises(InputError, match="empty"):
            direct.deduce(scene, bad)
    with pytest.raises(InputError, match=r"n_ctx=2048"):
        direct.deduce(scene, "where is the red cup " * 380)  # ~7600 chars, over 2000 tokens
    with pytest.raises(InputError, match="characters"):
        direct.deduce(scene, "x" * 9000)
