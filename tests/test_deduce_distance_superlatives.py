"""Distance superlatives before the head ("the nearest cup", "the second closest ball") mean the
viewer unless a reference follows ("the nearest cup to the plate"); "the highest" is the top above
the table with depth, the highest in the image without."""

from __future__ import annotations

import pytest

from gear_edge.deduce.program.deducer import ProgramDeducer
from gear_edge.deduce.program.parser import parse
from tests.deduce_suite import BLUE, GREEN, RED, Obj, SceneSpec, scene_from_spec

SPEC = SceneSpec("distance_superlatives", (
    Obj("far_ball", "disk", (380, 140, 30), RED),  # high in the image: far from a camera looking down
    Obj("near_ball", "disk", (200, 400, 30), RED),  # low in the image: near
    Obj("box", "rect", (450, 150, 560, 260), BLUE),
    Obj("cup", "disk", (500, 330, 25), GREEN),  # next to the box
))


@pytest.fixture(scope="module")
def d():
    return ProgramDeducer(llm=None)


@pytest.mark.parametrize("query, key, has_ref", [
    ("the nearest thing", "viewer", False), ("the closest red ball", "viewer", False),
    ("the second closest ball", "viewer", False), ("the furthest box", "viewer", False),
    ("the nearest cup to the plate", "distance", True), ("the cup nearest the plate", "distance", True),
    ("the closest box to me", "viewer", False), ("the one closest to the box", "distance", True),
])
def test_the_parse(query, key, has_ref):
    t = parse(query).targets[0]
    assert t.order is not None and t.order.key == key and (t.order.ref is not None) == has_ref
    assert not parse(query).unresolved


def test_without_depth_the_nearest_is_lowest_in_the_image(d):
    scene, ids = scene_from_spec(SPEC)
    assert d.deduce(scene, "the nearest thing").targets == [ids["near_ball"]]
    assert d.deduce(scene, "the furthest red ball").targets == [ids["far_ball"]]
    assert d.deduce(scene, "the nearest red ball to the box").targets == [ids["far_ball"]]
    assert d.deduce(scene, "the highest thing").targets == [ids["far_ball"]]  # no depth: highest in the image


def test_with_depth_the_nearest_and_the_highest_come_from_3d(d):
    scene, ids = scene_from_spec(SPEC)
    at = {r.id: r for r in scene.regions}
    metres = {"far_ball": (0.6, 0.05), "near_ball": (0.9, 0.04), "box": (0.8, 0.12), "cup": (0.7, 0.30)}
    for name, (dist, top) in metres.items():  # (camera distance, top above the table): made up, not the image's
        at[ids[name]].attributes.update(distance_m=dist, top_above_support_m=top)
    ans = d.deduce(scene, "the nearest thing")
    assert ans.targets == [ids["far_ball"]] and "by depth" in " ".join(s.text for s in ans.steps)
    ans = d.deduce(scene, "the highest thing")
    assert ans.targets == [ids["cup"]] and "above the table" in " ".join(s.text for s in ans.steps)
