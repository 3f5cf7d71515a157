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
                     f"{region_phrase(scene.regions[2])}",
                     "check: the steps run on the scene give none, not R3; answer none"] and "green" in check[0]
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


def test_caption_and_text_claims_are_checked_against_the_region(scene):
    import copy

    s = copy.deepcopy(scene)
    s.regions[2].caption = "a green cardboard box"
    s.regions[3].text = ["MAX 3"]
    steps = ["caption of R3: 'a green box': a box affords hold",  # every word in R3's caption
             "caption of R3: 'a kitchen knife'",                  # not R3's caption
             "caption of R1: 'a ring'",                           # R1 has no caption
             "text read on R4: 'max'",                            # read on R4 (case does not matter)
             "text read on R3: 'MAX'"]                            # R3 reads nothing
    assert contradicted(s, steps) == [Contradiction(1, "caption 'a kitchen knife'", 3),
                                      Contradiction(2, "caption 'a ring'", 1), Contradiction(4, "text 'MAX'", 3)]


def test_shape_nouns_and_plurals_in_claims_read_as_the_noun(scene):
    # R3 is rectangular, R1 a ring: "shape triangle" / "noun triangles" are false of both; "noun boxes" true of R3
    assert contradicted(scene, ["shape triangle: R3", "noun triangles: R1", "noun boxes: R3", "shape rings: R1"]) == [
        Contradiction(0, "shape triangle", 3), Contradiction(1, "noun triangles", 1)]


def test_ranking_steps_are_recomputed_on_their_listed_ids(scene):
    from gear_edge.deduce.chain_check import Recomputed, recomputed

    area = {r.id: r.area for r in scene.regions}
    assert area[3] > area[1] > area[4] > area[2]  # green box, blue ring, yellow box, red dot
    steps = [
        "largest of R1, R2, R4: R4",             # the ring is larger than the yellow box
        "largest of R1, R2, R3: R3",             # true
        "smallest of R1, R2, R3, second: R3",    # by area R2, R1, R3: the second smallest is R1
        "rightmost of R1, R3: R1",               # the green box is right of the ring
        "closest to the left edge of R1, R3: R3",
        "from the left: R3, R1", "number 1: R3",  # the model's own order is wrong: R1 is further left
        "from the left: R1, R3", "number 3: R3",  # no third: nothing to recompute
        "tallest of R1, R3: R1", "leftmost of R7, R9: R9",  # not a known ranking / no scene ids
    ]
    assert recomputed(scene, steps) == [
        Recomputed(0, "largest of R1, R2, R4", (1, 4, 2), 4, 1),
        Recomputed(2, "smallest of R1, R2, R3, second", (2, 1, 3), 3, 1),
        Recomputed(3, "rightmost of R1, R3", (3, 1), 1, 3),
        Recomputed(4, "closest to the left edge of R1, R3", (1, 3), 3, 1),
        Recomputed(6, "number 1 from the left of R3, R1", (1, 3), 3, 1),
    ]


def test_a_wrong_ranking_result_is_replaced_by_the_scenes(scene):
    # a free-text step keeps the chain from being run as a whole: the ranking alone is recomputed
    llm = RecordingLLM(json.dumps({"steps": ["both are boxes", "smaller of R3, R4: R3"], "targets": ["R3"]}))
    a = DirectDeducer(llm).deduce(scene, "the smaller box")
    assert a.targets == [4]
    check = [s for s in a.steps if s.text.startswith("check:")]
    assert [s.text for s in check] == ["check: smaller of R3, R4 is R4, not R3 (the scene ranks them R4, R3); answer R4"]
    assert check[0].kept == [4]
    assert DirectDeducer(llm, check_steps=False).deduce(scene, "the smaller box").targets == [3]
    # a ranking the answer does not rest on changes nothing
    llm = RecordingLLM(json.dumps({"steps": ["smaller of R3, R4: R3", "colour red: R2"], "targets": ["R2"]}))
    assert DirectDeducer(llm).deduce(scene, "the red dot").targets == [2]


def test_a_ranking_ranges_over_the_objects_the_chain_did_not_refute(scene):
    import copy

    from gear_edge.deduce.chain_check import Recomputed, recomputed

    # one listed id: a relation claim, not a ranking; a pool cut to one id ranks nothing
    assert recomputed(scene, ["right of R3: R1", "largest of R1, R3: R1"], excluded={3}) == []
    # the chain said R3 is a ring (false): the largest of the rest is R1, as stated
    assert recomputed(scene, ["largest of R1, R2, R3: R1"], excluded={3}) == []
    assert recomputed(scene, ["largest of R1, R2, R3: R1"]) == [Recomputed(0, "largest of R1, R2, R3", (3, 1, 2), 1, 3)]
    # the support is never a ranking's answer, even when the model lists it
    s = copy.deepcopy(scene)
    s.regions[2].role = "support"
    assert recomputed(s, ["largest of R1, R2, R3: R1"]) == []
    assert recomputed(s, ["largest of R2, R3, R4: R3"]) == [Recomputed(0, "largest of R2, R4", (4, 2), 3, 4)]


def test_steps_in_the_writers_layout_are_run_on_the_scene(scene):
    from gear_edge.deduce.chain_check import Execution, executed

    # the right operations with wrong ids: a noun filter, a colour filter, a ranking
    assert executed(scene, ["noun box: R1, R2", "colour yellow: R1"]) == Execution((4,), (1,), False)
    assert executed(scene, ["noun box: R3, R4", "smaller of R3, R4: R3"]) == Execution((4,), (3,), False)
    # a reference named by a description, then a relation to it and a narrowing within
    assert executed(scene, ["reference colour blue: R3", "inside R3: R4"]) == Execution((2,), (4,), False)
    assert executed(scene, ["reference colour yellow: R4", "on top of R4: R3"]) == Execution((), (3,), False)
    assert executed(scene, ["reference colour green: R3", "colour yellow: R4",
                            "none of them is on top of R3"]) == Execution((4,), (), True)
    # exceptions, unions, conclusions
    assert executed(scene, ["noun box: R3, R4", "except colour green: R3", "left: R4"]) == Execution((4,), (4,), False, True)
    assert executed(scene, ["colour red: R2", "colour green: R3", "union: R2, R3"]) == Execution((2, 3), (2, 3), False, True)
    assert executed(scene, ["colour red: R2", "noun box: R3", "none is both"]) == Execution((), (), True)
    assert executed(scene, ["no region has any purple"]) == Execution((), (), True)
    # outside the layout: nothing is run
    assert executed(scene, ["no region has any red"]) is None  # false: R2 is red
    assert executed(scene, ["colour red: R2", "the red one is small"]) is None
    assert executed(scene, ["noun elephant: R2"]) is None
    assert executed(scene, ["reference noun box: R1", "inside R1: R2"]) is None  # R1 is no box, and two are


def test_the_run_replaces_the_answer_only_when_the_answer_is_the_chains(scene):
    # answer = the last step's ids: the run decides (the yellow box, not the ring the model wrote)
    llm = RecordingLLM(json.dumps({"steps": ["noun box: R1, R4", "colour yellow: R1"], "targets": ["R1"]}))
    a = DirectDeducer(llm).deduce(scene, "the yellow box")
    assert a.targets == [4]
    assert "check: the steps run on the scene give R4, not R1; answer R4" in [s.text for s in a.steps]
    # "nothing" after a false conclusion: the run finds the red dot in the ring
    llm = RecordingLLM(json.dumps({"steps": ["reference colour blue: R1", "colour red: R2",
                                             "none of them is inside R1"], "targets": []}))
    assert DirectDeducer(llm).deduce(scene, "the red thing inside the blue ring").targets == [2]
    # targets that are not the last step's ids: not the chain's answer, left to the checks
    llm = RecordingLLM(json.dumps({"steps": ["noun box: R3, R4", "colour yellow: R4"], "targets": ["R3"]}))
    assert DirectDeducer(llm).deduce(scene, "the yellow box").targets == [3]
    assert DirectDeducer(llm, check_steps=False).deduce(scene, "the yellow box").targets == [3]


def test_a_description_before_a_relation_or_exception_names_its_reference_or_part(scene):
    from gear_edge.deduce.chain_check import Execution, executed

    # "colour yellow: R4" describes the reference, not the answer: on top of it is nothing, and the
    # yellow box is on the green one
    assert executed(scene, ["colour green: R3", "on top of R3: R4"]) == Execution((4,), (4,), False)
    assert executed(scene, ["colour blue: R1", "inside R1: R2"]) == Execution((2,), (2,), False)
    # "everything but the red one": the red step names the part left out
    assert executed(scene, ["colour red: R2", "except colour red: R2", "left: R1, R3, R4"]) == Execution(
        (1, 3, 4), (1, 3, 4), False, True)


def test_the_models_pick_stands_when_the_run_allows_it(scene):
    # the steps leave a word out ("at the top on the left"): the run gives both boxes, the model's
    # pick is one of them and stays
    llm = RecordingLLM(json.dumps({"steps": ["noun box: R4"], "targets": ["R4"]}))
    a = DirectDeducer(llm).deduce(scene, "the small box")
    assert a.targets == [4] and not any(s.text.startswith("check:") for s in a.steps)
    # a pick the run excludes is replaced
    llm = RecordingLLM(json.dumps({"steps": ["noun box: R1"], "targets": ["R1"]}))
    assert DirectDeducer(llm).deduce(scene, "the small box").targets == [3, 4]


def test_a_false_premise_or_an_affordance_the_vocabulary_denies_stops_the_run(scene):
    import copy

    from gear_edge.deduce.chain_check import Execution, executed

    s = copy.deepcopy(scene)
    s.regions[2].caption, s.regions[3].caption = "a roll of tape", "a kitchen knife"
    size4 = s.regions[3].attributes["size"]
    other = "huge" if size4 != "huge" else "tiny"
    assert executed(s, [f"R4 is {other} (2.0% of the image): graspable", f"size {other}: R4"]) is None
    assert executed(s, [f"R4 is {size4} (2.0% of the image): graspable", "noun box: R4"]) == Execution((3, 4), (4,), False)
    # the caption is found where it is; the purpose must be one the vocabulary gives that caption's noun
    assert executed(s, ["caption of R1: 'a kitchen knife': a knife affords cut"]) == Execution((4,), (1,), False)
    assert executed(s, ["caption of R3: 'a roll of tape': a tape affords eat"]) == Execution((), (3,), False)
    assert executed(s, ["caption of R3: 'a roll of tape': a tape slicer"]) is None


def test_stated_results_and_cut_off_rankings_are_run(scene):
    from gear_edge.deduce.chain_check import Execution, executed

    # "union: ..." / "both of them: ..." state the result: the run gives it even where the model
    # copied only part of it into its targets
    assert executed(scene, ["noun box: R3, R4", "both of them: R4"]) == Execution((3, 4), (4,), False, True)
    llm = RecordingLLM(json.dumps({"steps": ["colour red: R2", "colour blue: R1", "union: R2, R1"], "targets": ["R2"]}))
    assert DirectDeducer(llm).deduce(scene, "the red dot and the blue ring").targets == [1, 2]
    # a superlative whose ids ran past the step's length: the operation is run on the current set
    cut = "smallest of R1, R2, R3, R4, R1, R2, R3, R4, R1, R"
    assert executed(scene, [cut]) == Execution((2,), (1, 2, 3, 4), False)
    llm = RecordingLLM(json.dumps({"steps": [cut], "targets": ["R1", "R2", "R3", "R4"]}))
    assert DirectDeducer(llm).deduce(scene, "the smallest thing").targets == [2]
    assert executed(scene, [cut, "colour red: R2"]) is None  # not the last step: free text in the chain


def test_position_synonyms_and_role_nouns_in_steps(scene):
    import copy

    from gear_edge.deduce.chain_check import Execution, executed

    pos = {r.id: r.attributes["position"] for r in scene.regions}
    assert pos[3] == "bottom-right"
    want = tuple(sorted(i for i, p in pos.items() if p == "bottom-right"))
    for words in ("bottom-right", "lower right", "lower-right"):
        assert executed(scene, [f"position {words}: R1"]) == Execution(want, (1,), False)
    assert contradicted(scene, ["position lower right: R1"]) == [Contradiction(0, "position lower right", 1)]
    # "the table": the support, never an object
    s = copy.deepcopy(scene)
    s.regions[2].role = "support"
    assert executed(s, ["noun table: R4"]) == Execution((3,), (4,), False)
    assert executed(s, ["noun box: R3, R4"]) == Execution((4,), (3, 4), False)


def test_union_and_left_are_results_only_in_the_writers_layout(scene):
    from gear_edge.deduce.chain_check import Execution, executed

    # descriptions of one target each, then "union": both; a narrowing of one group, then "union": the group
    assert executed(scene, ["colour red: R2", "noun box: R3", "union: R2, R3"]) == Execution((2, 3, 4), (2, 3), False, True)
    assert executed(scene, ["colour red: R2", "colour green: R3", "union: R2, R3"]) == Execution((2, 3), (2, 3), False, True)
    assert executed(scene, ["noun boxes: R3, R4", "colour yellow: R3, R4", "union: R3, R4"]) == Execution(
        (4,), (3, 4), False, True)
    # "left: ..." without an exception is no stated result
    assert executed(scene, ["noun box: R3, R4", "left: R3"]) == Execution((3, 4), (3,), False, False)
