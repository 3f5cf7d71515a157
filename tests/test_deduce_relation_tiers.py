"""Relations scored in tiers (executor.EVIDENCE_FLOOR): once something really lies on X, what merely
touches X's top edge from behind is no longer "on" it; with nothing stacked, the guess stands."""

from __future__ import annotations

import pytest

from gear_edge.deduce.program.deducer import ProgramDeducer
from tests.deduce_suite import BLUE, GREEN, RED, Obj, SceneSpec, scene_from_spec

BEHIND = Obj("board", "rect", (150, 100, 450, 200), BLUE)  # wider than the box, its bottom on the box's top edge
BOX = Obj("box", "rect", (250, 200, 350, 300), RED)
BALL = Obj("ball", "disk", (300, 250, 25), GREEN)  # within the box's outline: on top of it


@pytest.fixture(scope="module")
def d():
    return ProgramDeducer(llm=None)


def test_what_is_on_the_box_is_what_lies_on_it_not_what_touches_it_from_behind(d):
    scene, ids = scene_from_spec(SceneSpec("tiers_stacked", (BEHIND, BOX, BALL)))
    rels = {(r.subject, r.predicate, r.object) for r in scene.relations}
    assert (ids["ball"], "on_top_of", ids["box"]) in rels
    assert (ids["board"], "touching", ids["box"]) in rels and (ids["board"], "on_top_of", ids["box"]) not in rels
    assert d.deduce(scene, "what is on the red box?").targets == [ids["ball"]]
    assert d.deduce(scene, "the thing on top of the red box").targets == [ids["ball"]]


def test_with_nothing_stacked_on_it_what_touches_its_top_is_the_guess(d):
    scene, ids = scene_from_spec(SceneSpec("tiers_alone", (BEHIND, BOX)))
    assert d.deduce(scene, "what is on the red box?").targets == [ids["board"]]
