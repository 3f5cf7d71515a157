"""Purposes through the vocabulary's affordances: a purpose phrase names an affordance
(``vocabulary.purpose_affordance``), an object affords it when its caption's noun is one of the
affordance's nouns. Scenes and phrasings are this file's own (not the held-out benchmark's), and
the deducer runs without an embedder, so only the affordance data can find these answers."""

from __future__ import annotations

import pytest

from gear_edge import vocabulary as V
from gear_edge.deduce.program.ast import spec_to_dict
from gear_edge.deduce.program.deducer import ProgramDeducer
from gear_edge.deduce.program.parser import parse
from tests.deduce_suite import BLUE, BROWN, GREEN, GREY, ORANGE, RED, WHITE, YELLOW, Obj, SceneSpec, scene_from_spec

PANTRY = SceneSpec("affordance_pantry", (
    Obj("counter", "rect", (0, 300, 640, 480), BROWN, "a marble counter"),
    Obj("cleaver", "rect", (40, 320, 200, 336), GREY, "a meat cleaver"),
    Obj("tumbler", "rect", (240, 230, 290, 300), WHITE, "a glass tumbler"),
    Obj("jug", "rect", (320, 200, 400, 300), BLUE, "a water jug"),
    Obj("rag", "rect", (430, 340, 520, 400), YELLOW, "an old cotton rag"),
    Obj("pear", "disk", (580, 260, 30), GREEN, "a ripe pear"),
    Obj("rope", "rect", (60, 420, 300, 430), ORANGE, "a coil of rope"),
    Obj("clock", "disk", (520, 80, 40), WHITE, "a small alarm clock"),
))
STUDY = SceneSpec("affordance_study", (
    Obj("marker", "rect", (60, 100, 200, 114), RED, "a black marker"),
    Obj("pad", "rect", (260, 80, 400, 200), YELLOW, "a pad of paper"),
    Obj("hammer", "rect", (420, 300, 600, 330), GREY, "a claw hammer"),
    Obj("keyboard", "rect", (60, 300, 360, 380), GREY, "a wireless keyboard"),
))
# no captions: a robot without a captioner
BARE = SceneSpec("affordance_bare", (
    Obj("rod", "rect", (60, 100, 260, 114), GREY),
    Obj("block", "rect", (320, 100, 420, 200), BLUE),
    Obj("disc", "disk", (520, 300, 50), GREEN),
))


@pytest.fixture(scope="module")
def d():
    return ProgramDeducer(llm=None, embedder=None)  # lexical only: the affordances decide


@pytest.fixture(scope="module")
def pantry():
    return scene_from_spec(PANTRY)


@pytest.fixture(scope="module")
def study():
    return scene_from_spec(STUDY)


def _affordances(query: str) -> list[str]:
    return [f["affordance"] for t in parse(query).targets for f in spec_to_dict(t)["filters"] if f.get("affordance")]


@pytest.mark.parametrize("query, want", [
    ("what could I carve the turkey with", ["cut"]),
    ("anything I can scribble on", ["write_on"]),
    ("a vessel for juice", ["hold_liquid"]),
    ("something for chopping onions", ["cut"]),
    ("we are so thirsty", ["drink_from"]),
    ("i'm famished", ["eat"]),
    ("something to take a picture with", ["photograph"]),
    ("something to tell the time", ["tell_time"]),
    ("a thing to hang a coat on", []),  # no affordance the vocabulary knows: none invented
    ("the red cup", []),
])
def test_purpose_phrases_name_affordances(query, want):
    assert _affordances(query) == want


def test_affordance_verbs_are_recognised_in_any_inflection():
    assert [V.affordance_verb(w) for w in ("chopping", "wipes", "slicing", "scrubbed", "stirring", "table")] == \
        ["chop", "wipe", "slice", "scrub", "stir", None]
    # the last preposition picks the affordance: writing *with* a pen, writing *on* a pad
    assert V.purpose_affordance("write a postcard with".split()) == "write_with"
    assert V.purpose_affordance("write a postcard on".split()) == "write_on"
    assert V.purpose_affordance("have a quick snack".split()) == "eat"  # a light verb: its object says it


def test_caption_nouns_put_the_object_last():
    assert V.caption_nouns("a pair of pliers on the bench") == ["pliers"]
    assert V.caption_nouns("a bottle of water") == ["bottle"]
    assert V.caption_nouns("a green glass bottle next to the sink") == ["green", "glass", "bottle"]
    # a modifier counts less than the head: a glass bottle is a bottle
    assert V.affordance_weight(["green", "glass", "bottle"], "drink_from") == (0.7, "bottle")
    assert V.affordance_weight(["toy", "car"], "play") == (V.AFFORD_MODIFIER_WEIGHT, "toy")


@pytest.mark.parametrize("query, want", [
    ("something to carve with", "cleaver"),
    ("what could I sip from?", "tumbler"),  # the usual drinking vessel over a jug
    ("I'm parched", "tumbler"),
    ("something to scrub the counter with", "rag"),  # the counter is acted on, not the answer
    ("i'm peckish", "pear"),
    ("give me some food", "pear"),  # a kind of thing: the caption that affords eating
    ("something to check the time", "clock"),
    ("anything to cut the rope with", "cleaver"),
])
def test_purposes_found_through_affordances(d, pantry, query, want):
    scene, ids = pantry
    a = d.deduce(scene, query)
    assert a.targets == [ids[want]], [s.text for s in a.steps]


def test_what_a_purpose_acts_on_is_spared_only_when_it_affords_the_use(d, pantry):
    scene, ids = pantry
    # "water" names the jug, which is what one pours *from*: it stays a candidate and is chosen
    a = d.deduce(scene, "something to pour water from")
    assert a.targets == [ids["jug"]]
    assert any("spared" in s.text for s in a.steps)
    # the rope is what is cut: dropped, never the answer
    a = d.deduce(scene, "every thing I can cut the rope with")
    assert ids["rope"] not in a.targets and ids["cleaver"] in a.targets


def test_write_with_and_write_on_differ(d, study):
    scene, ids = study
    assert d.deduce(scene, "something to draw a map with").targets == [ids["marker"]]
    assert d.deduce(scene, "something to draw a map on").targets == [ids["pad"]]
    assert d.deduce(scene, "what can I type a report on?").targets == [ids["keyboard"]]
    assert d.deduce(scene, "something to knock a nail in with").targets == [ids["hammer"]]


def test_a_known_purpose_nothing_affords_gives_nothing(d, study):
    scene, _ = study
    a = d.deduce(scene, "something to drink from")
    assert a.targets == []
    assert any("no caption names a thing that affords drink from" in s.text for s in a.steps)


def test_without_captions_only_a_shape_that_affords_it_is_weak_evidence(d):
    scene, ids = scene_from_spec(BARE)
    a = d.deduce(scene, "something to stir with")
    assert a.targets == [ids["rod"]]
    assert any("by shape" in s.text and "weak" in s.text for s in a.steps)
    assert d.deduce(scene, "something to drink from").targets == []  # no shape affords it


def test_every_affordance_phrase_reads_back_to_its_affordance():
    """The data engine asks for purposes with AFFORDANCE_PHRASES; the parser must read each back to
    the same affordance, and each affordance must name objects (one vocabulary, no drift)."""
    for aff, phrase in V.AFFORDANCE_PHRASES.items():
        assert _affordances(phrase) == [aff], phrase
        assert V.AFFORDANCE_NOUNS[aff], aff
    assert set(V.AFFORDANCE_VERBS.values()) <= set(V.AFFORDANCE_NOUNS) | set(V.AFFORDANCE_SHAPES)


def test_data_engine_purpose_questions_come_from_the_vocabulary(pantry):
    import random

    from gear_edge.data_engine.generate import TemplateWriter

    scene, ids = pantry
    cands = [c for cs in TemplateWriter(per_class=100).candidates(scene, random.Random(0)).values() for c in cs
             if c.template == "afford.purpose"]
    got = {c.question.replace("find ", "").replace("I need ", ""): list(c.targets) for c in cands}
    # the cleaver is the only thing to cut with, the pear the only food, the rag the only cleaner
    assert got.get("something to cut with") == [ids["cleaver"]]
    assert got.get("something to eat") == [ids["pear"]]
    assert got.get("something to clean with") == [ids["rag"]]
    assert "something to drink from" in got and got["something to drink from"] == [ids["tumbler"]]
    d = ProgramDeducer(llm=None, embedder=None)
    for q, targets in got.items():  # the deducer answers the data engine's own purpose questions
        assert d.deduce(scene, q).targets == targets, q


class _BowlLLM:
    """Names a round thing for every phrase: the control for shape words from an LLM."""

    def chat_parts(self, system, scene, query, examples=()):
        return [system], [query]

    def generate(self, scene_key, prefix, suffix, grammar, max_tokens, temperature=0.0, budget_s=None):
        import json

        from gear_edge.deduce.llm import Generation

        return Generation(json.dumps({"objects": ["bowl", "plate"]}), 10, 10, 5)


def test_llm_shape_words_never_answer_a_known_purpose_nothing_affords():
    """No food here: with captions, an LLM saying "bowl" must not turn "nothing" into the round
    frisbee (a shape is weaker evidence than the vocabulary's affordance check)."""
    scene, _ = scene_from_spec(SceneSpec("affordance_no_food", (
        Obj("frisbee", "disk", (200, 240, 80), BLUE, "a blue frisbee"),
        Obj("ruler", "rect", (380, 200, 600, 220), GREY, "a steel ruler"),
    )))
    d = ProgramDeducer(llm=_BowlLLM(), llm_use="always", embedder=None)
    assert d.deduce(scene, "something to eat").targets == []
    assert d.deduce(scene, "i'm famished").targets == []
