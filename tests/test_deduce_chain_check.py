"""The direct deducer checks the facts its LLM states ("colour red: R3") against the scene
(gear_edge.deduce.chain_check): false claims are found with the data engine's word meanings, a target
the scene contradicts is dropped and the chain says so; steps that claim nothing checkable pass."""

from __future__ import annotations

import json

import pytest

import gear_edge.masks as gm
from gear_edge import synthetic
from gear_edge.deduce.chain_check import Contradiction, contradicted
from gear_edge.deduce.direct import DirectDeducer
from gear_edge.describe.scene import describe_scene
from gear_edge.describe.scene_text import region_phrase
from gear_edge.types import Region
from tests.llm_fixtures import RecordingLLM

H, W = 240, 320
RED, BLUE, GREEN, YELLOW = (200, 30, 30), (30, 70, 210), (40, 150, 50), (235, 205, 40)


@pytest.fixture(scope="module")
def scene():
    """R1 blue ring with R2 (red dot) in its hole, R3 green box, R4 yellow box resting on R3."""
    img = synthetic.SyntheticScene(synthetic.background(H, W))
    shapes = [("ring", (70, 80, 40, 20), BLUE), ("disk", (70, 80, 9), RED),
              ("rect", (170, 120, 300, 220), GREEN), ("rect", (200, 140, 250, 180), YELLOW)]
    regions = []
    for k, (kind, geom, rgb) in enumerate(shapes):
        img.paste(f"o{k}", synthetic.solid_mask(kind, geom, H, W), rgb, noise=3.0, seed=k)
    for k in range(len(shapes)):
        rle = gm.encode(img.masks[f"o{k}"])
        regions.append(Region(id=k + 1, rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)), area=int(gm.area(rle))))
    return describe_scene(img.image, regions)


def test_false_claims_are_found_and_true_ones_pass(scene):
    assert scene.regions[0].attributes["colour"] == "blue" and scene.regions[1].attributes["colour"] == "red"
    steps = [
        "colour blue: R1",               # true
        "colour red: R1, R2",            # R1 is blue
        "noun box, colour green: R3",    # true (a box is rectangular / square)
        "except colour yellow: R3",      # R3 is green: the role word does not hide the claim
        "inside R1: R2",                 # true
        "on top of R4: R3",              # R3 is under R4, not on it
        "noun ring: R3",                 # R3 has no hole
        "left: R2", "count: 2", "noun hold: R1", "R1 is the one", "colour blue: none",  # nothing checkable
    ]
    got = contradicted(scene, steps)
    assert got == [Contradiction(1, "colour red", 1), Contradiction(3, "colour yellow", 3),
                   Contradiction(5, "on top of R4", 3), Contradiction(6, "noun ring", 3)]
    assert contradicted(scene, ["colour red: R9"]) == []  # ids outside the scene are the grammar's business


def test_a_target_the_scene_contradicts_is_dropped_with_the_reason(scene):
    # "the brown box": the model claims the green box is brown
    llm = RecordingLLM(json.dumps({"steps": ["colour brown: R3"], "targets": ["R3"]}))
    a = DirectDeducer(llm).deduce(scene, "the brown box")
    assert a.targets == []
    texts = [s.text for s in a.steps]
    check = [t for t in texts if t.startswith("check:")]
    assert check == [f"check: the scene does not say R3 is colour brown (dropped); it says R3: "
                     f"{region_phrase(scene.regions[2])}"] and "green" in check[0]
    assert texts[-1].startswith("answer: nothing")
    assert DirectDeducer(llm, check_steps=False).deduce(scene, "the brown box").targets == [3]
    # a false claim about a region it did not pick changes nothing; true claims keep the target
    llm = RecordingLLM(json.dumps({"steps": ["colour red: R1, R2", "inside R1: R2"], "targets": ["R2"]}))
    a = DirectDeducer(llm).deduce(scene, "the red dot in the ring")
    assert a.targets == [2]
    assert any(s.text.startswith("check: the scene does not say R1 is colour red (not a target); it says R1: ")
               and "blue" in s.text for s in a.steps)
    # of two targets, only the contradicted one goes
    llm = RecordingLLM(json.dumps({"steps": ["noun box: R3, R4", "colour green: R3, R4"], "targets": ["R3", "R4"]}))
    assert DirectDeducer(llm).deduce(scene, "the green boxes").targets == [3]
