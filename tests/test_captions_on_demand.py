"""Captions on demand (gear_edge.describe.captions): only the regions a query still considers after
its exact filters are captioned, once per scene, and the answers equal captioning every region.

The captioner here names each region by the synthetic scene's ground truth (the object whose exact
mask it is) and counts its calls: no trained captioner ships offline, and what is under test is which
regions get captioned when, not caption quality (tests/test_production_path.py runs the exported
captioner through the same path).
"""

from __future__ import annotations

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
        assert [st.text for st in a.steps] == [st.text for st in b.steps], q
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
