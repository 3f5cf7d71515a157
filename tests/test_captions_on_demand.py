"""Captions on demand (gear_edge.describe.captions): only the regions a query still considers after
its exact filters are captioned, once per scene, and the answers equal captioning every region.

The captioner here names each region by the synthetic scene's ground truth (the object whose exact
mask it is) and counts its calls: no trained captioner ships offline, and what is under test is which
regions get captioned when, not caption quality (tests/test_production_path.py runs the exported
captioner through the same path).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.errors import InputError
from gear_edge.pipeline import GearSeg
from gear_edge.synthetic import tabletop

NAMES = {"table": "a wooden table", "box": "a red cardboard box", "ball": "a blue ball", "horse": "a green toy horse",
         "coin": "a gold coin"}


class TruthCaptioner:
    """Captions a region with the name of the ground-truth object its mask equals; records every call."""

    def __init__(self, masks: dict[str, np.ndarray]) -> None:
        self.truth = {name: gm.encode(m) for name, m in masks.items()}
        self.calls: list[int] = []

    def caption(self, image, rles):
        self.calls.append(len(rles))
        out = []
        for rle in rles:
            iou = {n: float(gm.iou([rle], [t])[0, 0]) for n, t in self.truth.items()}
            out.append(NAMES[max(iou, key=iou.get)])
        return out


@pytest.fixture()
def setup():
    s = tabletop()
    names = list(s.masks)
    masks = np.stack([s.masks[n] for n in names])

    def pipeline(captions: str):
        cap = TruthCaptioner(s.masks)
        gs = GearSeg.from_config("default", {"describe.ocr": "false", "describe.captions": f'"{captions}"'},
                                 captioner=cap)
        return gs, cap, gs.perceive(s.image, masks=masks)

    return s, names, pipeline


def test_nothing_is_captioned_until_a_query_reads_captions(setup):
    s, names, pipeline = setup
    gs, cap, scene = pipeline("on_demand")
    assert cap.calls == [] and all(r.caption is None for r in scene.regions)
    a = gs.ask(scene, "the red object")  # colour alone decides: no caption is read
    assert a.meta["captioned_regions"] == 0 and cap.calls == []
    a = gs.ask(scene, "the ball")
    assert [names[t] for t in a.targets] == ["ball"]
    assert 0 < a.meta["captioned_regions"] <= len(names) and cap.calls == [a.meta["captioned_regions"]]
    again = gs.ask(scene, "pass me the ball")
    assert again.meta["captioned_regions"] == 0 and again.targets == a.targets  # cached on the scene


def test_exact_filters_first_then_captions_of_what_is_left(setup):
    s, names, pipeline = setup
    gs, cap, scene = pipeline("on_demand")
    a = gs.ask(scene, "the blue ball on the right")
    assert [names[t] for t in a.targets] == ["ball"]
    assert a.meta["captioned_regions"] < len(names) - 1, (a.meta, [st.text for st in a.steps])


def _untimed(text: str) -> str:
    """A chain step without its LLM timing ("LLM (16 tokens, 2425 ms)"), which differs run to run."""
    return re.sub(r"\(\d+ tokens, \d+ ms", "(N tokens, T ms", text)


def test_answers_equal_captioning_every_region(setup):
    s, names, pipeline = setup
    queries = ["the ball", "the red box", "the coin next to the horse", "something to sit on", "the toy horse",
               "the largest object", "the thing left of the ball"]
    gs_all, cap_all, scene_all = pipeline("all")
    assert cap_all.calls == [len(names)]  # everything, during perceive
    gs_od, cap_od, scene_od = pipeline("on_demand")
    for q in queries:
        a, b = gs_all.ask(scene_all, q), gs_od.ask(scene_od, q)
        assert a.targets == b.targets, q
        assert [_untimed(st.text) for st in a.steps] == [_untimed(st.text) for st in b.steps], q
    assert sum(cap_od.calls) <= len(names)  # each region at most once, however many queries


def test_direct_mode_and_unknown_ids(setup):
    s, names, pipeline = setup
    _, cap, scene = pipeline("on_demand")
    assert set(scene.captions([1, 2])) == {1, 2} and cap.calls == [2]
    assert scene.captions() and cap.calls == [2, len(names) - 2]  # the rest, once
    with pytest.raises(InputError, match="no region with id"):
        scene.captions([99])
    with pytest.raises(InputError, match="captions"):
        GearSeg.from_config("default", {"describe.captions": '"sometimes"'})


# ---- object words compared in rank order (Executor._noun_lazy) ------------------------------------------

# a shelf of look-alikes: the ordering, not the colour, tells them apart; the noun decides which count
SHELF = [  # (name, caption, colour, x0, y0, size)
    ("cup1", "a white cup", (235, 235, 235), 30, 240, 50), ("mug1", "a red mug", (205, 30, 30), 110, 250, 60),
    ("cup2", "a red cup", (205, 30, 30), 200, 240, 44), ("bottle1", "a green bottle", (40, 150, 50), 270, 230, 40),
    ("mug2", "a blue mug", (30, 70, 215), 330, 250, 66), ("cup3", "a blue cup", (30, 70, 215), 420, 245, 52),
    ("book", "a yellow book", (235, 205, 40), 490, 240, 70), ("mug3", "a white mug", (235, 235, 235), 570, 300, 50),
    ("cup4", "a green cup", (40, 150, 50), 60, 380, 58), ("phone", "a black phone", (25, 25, 25), 200, 390, 48),
]
# "the rightmost cup": the white mug further right scores 0.49 for "cup" (over the floor, under the margin of
# a cup's 0.92), so a walk that kept the first region over the floor would answer the mug
ORDERED = ["the rightmost cup", "the leftmost bottle", "the leftmost cup", "the rightmost mug", "the biggest mug", "the second cup from the left", "the smallest cup",
           "the topmost cup", "the lowest mug", "the rightmost red cup", "the leftmost spoon", "the two leftmost cups",
           "the third mug from the right"]

# one object, then a position word: the candidates in that part of the image are compared first
SOFT = ["the cup on the left", "the mug on the right", "the cup at the bottom", "the bottle on the right",
        "the phone in the middle"]


@pytest.fixture(scope="module")
def shelf():
    from gear_edge.synthetic import SyntheticScene, background, rect

    s = SyntheticScene(background(480, 640))
    s.paste("table", rect(480, 640, 5, 200, 635, 475), (125, 75, 35), seed=1)
    for k, (name, _, colour, x, y, size) in enumerate(SHELF):
        s.paste(name, rect(480, 640, x, y, x + size, y + int(size * 0.8)), colour, seed=10 + k)
    names = list(s.masks)
    caps = {"table": "a wooden table", **{n: c for n, c, *_ in SHELF}}
    masks = np.stack([s.masks[n] for n in names])
    return s, names, masks, caps


class NamedCaptioner(TruthCaptioner):
    def __init__(self, masks, caps):
        super().__init__(masks)
        self.caps = caps

    def caption(self, image, rles):
        self.calls.append(len(rles))
        out = []
        for rle in rles:
            iou = {n: float(gm.iou([rle], [t])[0, 0]) for n, t in self.truth.items()}
            out.append(self.caps[max(iou, key=iou.get)])
        return out


def _shelf_pipeline(shelf, captions: str, lazy: bool, deducer=None):
    s, names, masks, caps = shelf
    cap = NamedCaptioner(s.masks, caps)
    gs = GearSeg.from_config("default", {"describe.ocr": "false", "describe.captions": f'"{captions}"'},
                             captioner=cap, **({"deducer": deducer} if deducer is not None else {}))
    gs.deducer.executor.lazy = lazy
    return gs, cap, gs.perceive(s.image, masks=masks)


@pytest.mark.parametrize("semantic", [True, False], ids=["minilm", "lexical"])
def test_ordered_object_words_caption_in_rank_order_with_the_same_answers(shelf, semantic):
    """Each query on a fresh scene: the lazy walk (captions on demand) gives the targets of comparing every
    region (all captioned, full comparison), captions fewer regions on the ordered queries, and its chain
    is the same whether the captions were computed on demand or all up front."""
    from gear_edge.deduce.program.deducer import ProgramDeducer

    s, names, masks, caps = shelf
    deducers = (None, None, None) if semantic else tuple(ProgramDeducer(llm=None, embedder=None) for _ in range(3))
    fewer = 0
    for q in ORDERED + SOFT + ["the mug", "the red mug", "the cup left of the book"]:
        ref_gs, ref_cap, ref_scene = _shelf_pipeline(shelf, "all", lazy=False, deducer=deducers[0])
        od_gs, od_cap, od_scene = _shelf_pipeline(shelf, "on_demand", lazy=True, deducer=deducers[1])
        all_gs, _, all_scene = _shelf_pipeline(shelf, "all", lazy=True, deducer=deducers[2])
        ref, lazy, lazy_all = ref_gs.ask(ref_scene, q), od_gs.ask(od_scene, q), all_gs.ask(all_scene, q)
        assert lazy.targets == ref.targets, (q, [st.text for st in lazy.steps], [st.text for st in ref.steps])
        assert [st.text for st in lazy.steps] == [st.text for st in lazy_all.steps], q
        assert sum(od_cap.calls) <= sum(ref_cap.calls), q
        if q in ORDERED[:10] or q in SOFT[:3]:
            assert lazy.targets, q
            fewer += sum(od_cap.calls) < len(names)
    assert ref_gs.ask(ref_scene, "the leftmost cup").targets == [names.index("cup1")]
    assert fewer >= 8, fewer


def test_lazy_order_stops_at_the_first_sure_match(shelf):
    s, names, masks, caps = shelf
    gs, cap, scene = _shelf_pipeline(shelf, "on_demand", lazy=True)
    a = gs.ask(scene, "the leftmost cup")
    assert [names[t] for t in a.targets] == ["cup1"]
    assert cap.calls == [4], (cap.calls, [st.text for st in a.steps])  # the first step of the walk decides
    assert any(f"4 of {len(names)} compared (in leftmost order)" in st.text for st in a.steps), [st.text for st in a.steps]


def test_lexical_best_match_stops_early(shelf):
    """Without an embedder every caption naming the head noun scores the same, so the largest one left
    after the exact filters wins and the walk stops at it; the answer equals the full comparison."""
    from gear_edge.deduce.program.deducer import ProgramDeducer

    s, names, masks, caps = shelf
    gs, cap, scene = _shelf_pipeline(shelf, "on_demand", lazy=True, deducer=ProgramDeducer(llm=None, embedder=None))
    ref_gs, _, ref_scene = _shelf_pipeline(shelf, "all", lazy=False, deducer=ProgramDeducer(llm=None, embedder=None))
    a, ref = gs.ask(scene, "the mug"), ref_gs.ask(ref_scene, "the mug")
    assert a.targets == ref.targets == [names.index("mug2")]  # the biggest mug
    assert sum(cap.calls) < len(names), cap.calls


def test_a_bare_object_word_is_named_and_the_walk_stops_at_the_first_named(shelf):
    """With MiniLM: a caption naming a bare object word scores NAMED_SCORE whatever its other words, so
    "the mug" is the biggest mug (as without an embedder) and the walk stops there; a phrase with more
    words is still ranked by similarity."""
    from gear_edge.deduce.program.semantic import NAMED_SCORE, bare_phrase
    from gear_edge.types import Region

    s, names, masks, caps = shelf
    gs, cap, scene = _shelf_pipeline(shelf, "on_demand", lazy=True)
    ref_gs, ref_cap, ref_scene = _shelf_pipeline(shelf, "all", lazy=False)
    a, ref = gs.ask(scene, "the mug"), ref_gs.ask(ref_scene, "the mug")
    assert a.targets == ref.targets == [names.index("mug2")], [st.text for st in a.steps]
    assert sum(cap.calls) < len(names), cap.calls
    assert any("the others cannot change the answer" in st.text for st in a.steps)
    assert bare_phrase("mug", "mug") and bare_phrase("mugs", "mugs") and not bare_phrase("coffee mug", "mug")
    r0 = ref_scene.regions[0]
    regions = [Region(id=0, rle=r0.rle, bbox=r0.bbox, area=r0.area, caption="a red mug"),
               Region(id=1, rle=r0.rle, bbox=r0.bbox, area=r0.area, caption="a mug"),
               Region(id=2, rle=r0.rle, bbox=r0.bbox, area=r0.area, caption="a coffee mug")]
    matcher = gs.deducer.executor.matcher
    ns = matcher.score(regions, "mug", head="mug")
    assert ns.scores == {0: NAMED_SCORE, 1: NAMED_SCORE, 2: NAMED_SCORE}
    coffee = matcher.score(regions, "coffee mug", head="mug")
    assert coffee.scores[2] > coffee.scores[0] and max(coffee.scores.values()) < NAMED_SCORE


def test_a_position_word_with_no_exact_candidate_walks_most_so_first(shelf):
    """"the bottle on the left": no bottle is in the left third, so the word keeps the leftmost bottle of
    all; the walk compares the left third, then the others left to right, and stops at the first bottle
    (a full comparison gives the same answer)."""
    s, names, masks, caps = shelf
    gs, cap, scene = _shelf_pipeline(shelf, "on_demand", lazy=True)
    ref_gs, _, ref_scene = _shelf_pipeline(shelf, "all", lazy=False)
    a, ref = gs.ask(scene, "the bottle on the left"), ref_gs.ask(ref_scene, "the bottle on the left")
    assert a.targets == ref.targets == [names.index("bottle1")], [st.text for st in a.steps]
    assert sum(cap.calls) < len(names) - 1, (cap.calls, [st.text for st in a.steps])


def test_a_role_noun_is_decided_by_the_role_without_captions():
    """"the table" is the region whose role is support (an exact fact of the scene): no caption is
    read, also for "on the table" as a relation's reference; with no support region, captions decide."""
    from gear_edge.synthetic import SyntheticScene, background, disk, rect

    s = SyntheticScene(background(480, 640))
    s.paste("table", rect(480, 640, 0, 180, 640, 480), (125, 75, 35), seed=1)  # fills the lower part: support
    s.paste("box", rect(480, 640, 100, 250, 180, 310), (205, 30, 30), seed=2)
    s.paste("ball", disk(480, 640, 400, 320, 30), (30, 70, 215), seed=3)
    names = list(s.masks)
    masks = np.stack([s.masks[n] for n in names])
    cap = TruthCaptioner(s.masks)
    gs = GearSeg.from_config("default", {"describe.ocr": "false"}, captioner=cap)
    scene = gs.perceive(s.image, masks=masks)
    assert [r.role for r in scene.regions] == ["support", "object", "object"]
    a = gs.ask(scene, "the table")
    assert a.targets == [0] and cap.calls == [], [st.text for st in a.steps]
    assert any("names the support" in st.text for st in a.steps)
    b = gs.ask(scene, "the smallest thing on the table")
    assert b.targets == [names.index("ball")] and cap.calls == [], [st.text for st in b.steps]
    # a scene with no support region (the shelf-like tabletop() has none): the captions name the table
    t = tabletop()
    cap2 = TruthCaptioner(t.masks)
    gs2 = GearSeg.from_config("default", {"describe.ocr": "false"}, captioner=cap2)
    scene2 = gs2.perceive(t.image, masks=np.stack(list(t.masks.values())))
    assert all(r.role == "object" for r in scene2.regions)
    c = gs2.ask(scene2, "the table")
    assert c.targets == [list(t.masks).index("table")] and sum(cap2.calls) > 0


def test_the_data_engine_still_captions_every_region(tmp_path):
    """Captions on demand is the default, but the data engine's writers read every region's caption."""
    pytest.importorskip("skimage")
    from gear_edge.data_engine.engine import DataEngine, EngineSettings
    from tests.data_engine_helpers import PHOTOS, write_photos

    class Anything:
        def __init__(self):
            self.calls: list[int] = []

        def caption(self, image, rles):
            self.calls.append(len(rles))
            return ["a thing"] * len(rles)

    cap = Anything()
    gs = GearSeg.from_config("default", {"describe.ocr": "false"}, captioner=cap)
    assert gs.config.get("describe", "captions") == "on_demand"
    scenes = []
    perceive = gs.perceive

    def recording(*a, **kw):
        scenes.append(perceive(*a, **kw))
        return scenes[-1]

    gs.perceive = recording
    write_photos(tmp_path / "images", PHOTOS[:1], width=96)
    DataEngine(tmp_path / "images", tmp_path / "out", EngineSettings(per_class=1), pipeline=gs).run()
    assert scenes and all(r.caption == "a thing" for s in scenes for r in s.regions)
    assert sum(cap.calls) == sum(len(s.regions) for s in scenes)  # each region once
