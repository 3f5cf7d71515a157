"""Phrasings the parser reads as general rules: command verbs before the object ("keep watching
the ...", "lock onto ..."), text "written / printed ... on it", and a label said before the noun
in a scene without captions. Scenes and phrasings are this file's own (not the held-out benchmark's)."""

from __future__ import annotations

import threading

import pytest

from gear_edge.deduce.program.deducer import ProgramDeducer
from gear_edge.deduce.program.parser import Parser, parse
from tests.deduce_suite import BLUE, BROWN, GREEN, GREY, RED, WHITE as WHITE_, YELLOW, Obj, SceneSpec, scene_from_spec

# no captions: object words are checked by shape and text only
YARD = SceneSpec("phrasings_yard", (
    Obj("crate_big", "rect", (40, 60, 240, 240), BROWN, text=("SPARE PARTS",)),
    Obj("crate_small", "rect", (300, 80, 420, 200), BROWN, text=("OLD CABLES",)),
    Obj("disc", "disk", (520, 140, 40), YELLOW, text=("OLD",)),
    Obj("pipe", "rect", (60, 380, 360, 400), GREY, text=("P-9",)),
    Obj("cone", "triangle", (450, 440, 560, 440, 505, 330), RED),
    Obj("puck", "disk", (250, 330, 20), BLUE),
    Obj("big_puck", "disk", (600, 380, 30), GREEN),
))


@pytest.fixture(scope="module")
def yard():
    return scene_from_spec(YARD)


@pytest.fixture(scope="module")
def d():
    return ProgramDeducer(llm=None, embedder=None)


@pytest.mark.parametrize("query, program", [
    ("keep watching the yellow disc", "the colour yellow, object 'disc'"),
    ("monitor every red cone", "all colour red, object 'cone'"),
    ("lock onto the small blue puck", "the size tiny or small, colour blue, object 'puck'"),
    ("start following the pipe", "the object 'pipe'"),
    ("keep your eye on the leftmost crate", "the object 'crate', leftmost"),
    # the same words as nouns stay nouns
    ("the watch", "the object 'watch'"),
    ("the race track", "the object 'race track'"),
    ("pick the watch on the left", "the object 'watch', position left-column"),
])
def test_command_verbs_are_request_words(query, program):
    assert parse(query).describe() == program


@pytest.mark.parametrize("query, text, negated", [
    ("the crate with SPARE PARTS stencilled on its side", "SPARE PARTS", False),
    ("the pipe that has p-9 engraved on it", "p 9", False),  # the tokens' text: matched punctuation-blind
    ("a crate without old cables written on it", "old cables", True),
    ("the sign with the words no entry painted on it", "no entry", False),
])
def test_text_written_on_it(query, text, negated):
    f = [f for t in parse(query).targets for f in t.filters if type(f).__name__ == "TextFilter"]
    assert [(x.text, x.negated) for x in f] == [(text, negated)]


def test_written_text_finds_the_labelled_object(d, yard):
    scene, ids = yard
    assert d.deduce(scene, "track the crate with old cables printed on it").targets == [ids["crate_small"]]
    assert d.deduce(scene, "the crate without old cables printed on it").targets == [ids["crate_big"]]
    assert d.deduce(scene, "keep an eye on the red cone").targets == [ids["cone"]]
    assert d.deduce(scene, "follow every puck").targets == sorted([ids["puck"], ids["big_puck"], ids["disc"]])


def test_a_label_before_the_noun_picks_the_labelled_one_of_that_shape(d, yard):
    scene, ids = yard
    # "old" is also read on the disc, and the bigger crate would win a tie: only the small crate is
    # both a crate (boxy) and labelled "old cables"
    a = d.deduce(scene, "the old cables crate")
    assert a.targets == [ids["crate_small"]], [s.text for s in a.steps]
    assert d.deduce(scene, "the spare parts box").targets == [ids["crate_big"]]


def test_command_parsing_is_reentrant():
    shared = Parser()
    queries = ["keep watching the yellow disc", "the box with FRAGILE written on it", "track every red cone"]
    want = [parse(q).describe() for q in queries]
    out: list[list[str]] = []

    def work():
        out.append([shared.parse(q).describe() for q in queries * 20][: len(queries)])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 4


BIN = SceneSpec("phrasings_bin", (
    Obj("tray", "rect", (40, 80, 300, 360), GREY),
    Obj("bolt", "disk", (110, 160, 25), RED),
    Obj("nut", "rect", (180, 240, 250, 310), BLUE),
    Obj("hoop", "ring", (480, 200, 70, 35), YELLOW),
    Obj("coin", "disk", (480, 400, 30), GREEN),
))


@pytest.fixture(scope="module")
def bin_scene():
    return scene_from_spec(BIN)


@pytest.mark.parametrize("query, program", [
    ("the round things that aren't rings", "all shape round, not object 'rings'"),
    ("whichever one is not a triangle", "the not object 'triangle'"),
    ("the thing that is a hoop and is yellow", "the object 'hoop', colour yellow"),
])
def test_a_noun_in_a_relative_clause_is_an_object_check(query, program):
    assert parse(query).describe() == program


def test_clause_nouns_execute_with_their_negation(d, bin_scene):
    scene, ids = bin_scene
    assert d.deduce(scene, "the round things that aren't rings").targets == sorted([ids["bolt"], ids["coin"]])
    assert d.deduce(scene, "every object that isn't a ring").targets == sorted(
        [ids["tray"], ids["bolt"], ids["nut"], ids["coin"]])


def test_what_is_in_or_on_something_lists_all_of_it(d, bin_scene):
    scene, ids = bin_scene
    a = d.deduce(scene, "what's lying in the tray?")
    assert a.targets == sorted([ids["bolt"], ids["nut"]])
    assert any("every object that fits" in s.text for s in a.steps)
    # a direction still picks the one that fits best; "which" asks for one
    assert parse("what's to the left of the hoop").targets[0].quantity == "one"
    assert parse("which one is inside the tray").targets[0].quantity == "one"


DINNER = SceneSpec("phrasings_dinner", (
    Obj("plate", "disk", (220, 240, 110), WHITE_),
    Obj("apple", "disk", (220, 240, 35), RED),
    Obj("knife", "rect", (400, 150, 600, 166), GREY),
    Obj("coaster", "disk", (500, 380, 50), BLUE),
))


def test_dishes_may_hold_food_and_cutlery_is_long(d):
    """Without captions: a plate with food on it has a hole in its mask and is still a plate; a
    knife is elongated (``vocabulary.SHAPE_NOUNS``). The plate's shape is measured with the apple
    lying on it: round, without a hole, so it is no ring."""
    scene, ids = scene_from_spec(DINNER)
    assert d.deduce(scene, "the plate").targets == [ids["plate"]]
    assert d.deduce(scene, "the knife").targets == [ids["knife"]]
    assert d.deduce(scene, "the red thing on the plate").targets == [ids["apple"]]
    assert "has holes" not in scene.regions[[r.id for r in scene.regions].index(ids["plate"])].attributes["shape"]
    assert d.deduce(scene, "the ring").targets != [ids["plate"]]  # a ring has a hole: not the plate
