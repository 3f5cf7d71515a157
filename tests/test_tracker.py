"""gear_edge.tracker.Tracker on real perception (default profile): identity and masks while the
target moves among distractors, re-deduction when association fails, bad input."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="the default deducer needs llama-cpp-python (the [llm] extra)")

from gear_edge.errors import InputError  # noqa: E402
from gear_edge.pipeline import GearSeg  # noqa: E402
from gear_edge.tracker import Tracker  # noqa: E402
from tests.scenes import SyntheticScene, background, disk, rect  # noqa: E402

H, W = 480, 640


@pytest.fixture(scope="module")
def gs():
    return GearSeg.from_config("default", {"describe.ocr": "false"})


@pytest.fixture(scope="module")
def bg():
    return background(H, W)


def frame(bg, k: int, *, box_at=None) -> SyntheticScene:
    """A red box moving right (12 px/frame) and bobbing, a blue ball moving left, a static red disc."""
    s = SyntheticScene(bg.copy())
    s.paste("table", rect(H, W, 20, 340, 620, 470), (125, 75, 35), seed=1 + 97 * k)
    x, y = box_at or (60 + 12 * k, 170 + int(25 * np.sin(k / 4)))
    s.paste("box", rect(H, W, x, y, x + 110, y + 100), (205, 30, 30), seed=2 + 97 * k)
    s.paste("ball", disk(H, W, 560 - 8 * k, 110, 38), (30, 70, 215), seed=3 + 97 * k)
    s.paste("disc", disk(H, W, 470, 400, 32), (215, 45, 35), seed=4 + 97 * k)
    return s


def iou(a, b) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def test_target_keeps_identity_and_mask_while_moving(gs, bg):
    tr = Tracker(gs)
    first = tr.start(frame(bg, 0).image, "the red object on the left")
    assert first.mode == "deduced" and len(first.targets) == 1
    tid = first.targets[0].track_id
    for k in range(1, 16):
        s = frame(bg, k)
        r = tr.update(s.image)
        assert r.mode == "tracked", (k, r.reason)
        assert [t.track_id for t in r.targets] == [tid]
        assert iou(r.mask, s.masks["box"]) >= 0.85, k
        assert r.answer is None and r.timings["track"] > 0
    assert tr.stats == {"tracked": 15, "deduced": 1, "id_changes": 0}


def test_association_failure_rededuces_and_keeps_the_id(gs, bg):
    tr = Tracker(gs)
    tid = tr.start(frame(bg, 0).image, "the red object on the left").targets[0].track_id
    tr.update(frame(bg, 1).image)
    s = frame(bg, 2, box_at=(300, 200))  # the box jumps ~230 px: flow cannot follow
    r = tr.update(s.image)
    assert r.mode == "deduced" and "lost" in r.reason and r.answer is not None
    assert [t.track_id for t in r.targets] == [tid]  # same appearance: same identity
    assert iou(r.mask, s.masks["box"]) >= 0.85


def test_bad_input(gs, bg):
    tr = Tracker(gs)
    with pytest.raises(InputError, match="before Tracker.start"):
        tr.update(frame(bg, 0).image)
    with pytest.raises(InputError, match="non-empty query"):
        tr.start(frame(bg, 0).image, "  ")
    tr.start(frame(bg, 0).image, "the red object on the left")
    with pytest.raises(InputError, match="frame size changed"):
        tr.update(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(InputError, match="min_iou"):
        Tracker(gs, min_iou=1.5)


def test_tracked_targets_get_a_3d_centroid_from_depth(gs, bg):
    k = np.array([[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]])
    tr = Tracker(gs)
    s = frame(bg, 0)
    tr.start(s.image, "the red object on the left")
    s = frame(bg, 1)
    depth = np.full((H, W), 1.2, np.float32)
    depth[s.masks["box"]] = 0.9
    r = tr.update(s.image, depth=depth, intrinsics=k)
    assert r.mode == "tracked"
    ys, xs = np.nonzero(s.masks["box"])
    truth = np.array([((xs - 319.5) / 600 * 0.9).mean(), ((ys - 239.5) / 600 * 0.9).mean(), 0.9])
    assert np.linalg.norm(np.array(r.targets[0].centroid_3d) - truth) < 0.005


class ColourCaptioner:
    """Names a region by its mean colour and size (no trained captioner offline); records each call's
    number of regions."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def caption(self, image, rles):
        import gear_edge.masks as gm

        self.calls.append(len(rles))
        out = []
        for m in gm.decode(list(rles)):
            r, g, b = image[m].reshape(-1, 3).mean(axis=0)
            if r > 150 and g < 90:
                out.append("a red cardboard box" if m.sum() > 6000 else "a red disc")
            elif b > 150 and r < 90:
                out.append("a blue cardboard box" if m.sum() > 6000 else "a blue ball")
            elif r > 100 and b < 60:
                out.append("a wooden table")
            else:
                out.append("a grey wall")
        return out


def test_a_held_track_keeps_its_caption_and_a_lost_one_does_not(bg):
    cap = ColourCaptioner()
    gs = GearSeg.from_config("default", {"describe.ocr": "false"}, captioner=cap)
    tr = Tracker(gs, rededuce_every=2)
    first = tr.start(frame(bg, 0).image, "the box")
    assert first.mode == "deduced" and first.targets[0].caption == "a red cardboard box"
    start_calls = sum(cap.calls)
    assert start_calls >= 3  # every object: one object asked for, compared with every caption
    for k in (1, 2):
        r = tr.update(frame(bg, k).image)
        assert r.mode == "tracked" and r.targets[0].caption == "a red cardboard box"
    assert sum(cap.calls) == start_calls  # tracked frames caption nothing
    r = tr.update(frame(bg, 3).image)  # periodic re-deduction: the track holds, its region keeps its caption
    assert r.mode == "deduced" and "periodic" in r.reason
    assert r.answer.meta["captioned_regions"] == start_calls - 1, (cap.calls, r.answer.meta)
    assert [t.track_id for t in r.targets] == [first.targets[0].track_id]
    s = frame(bg, 4)  # the box turns blue where the flow expects it: the track is lost (appearance) ...
    x, y = 60 + 12 * 4, 170 + int(25 * np.sin(4 / 4))
    s.paste("box", rect(H, W, x, y, x + 110, y + 100), (30, 70, 215), seed=5)
    r = tr.update(s.image)
    assert r.mode == "deduced" and "lost" in r.reason
    assert r.answer.meta["captioned_regions"] == start_calls, (cap.calls, r.answer.meta)
    assert r.targets[0].caption == "a blue cardboard box"  # ... so its old caption is not carried over


def test_a_drifted_track_hands_its_caption_to_no_region(bg):
    """A track whose mask has drifted off its region (IoU ~0.6, over min_iou) carries no caption."""
    import cv2

    from gear_edge.tracker import TrackedTarget

    cap = ColourCaptioner()
    gs = GearSeg.from_config("default", {"describe.ocr": "false"}, captioner=cap)
    s = frame(bg, 0)
    scene = gs.perceive(s.image)
    tr = Tracker(gs)
    tr._prev_grey = cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY)
    ball = s.masks["ball"]
    shifted = ball | disk(H, W, 560 - 38 - 32, 110, 28)  # the ball and a blob beside it: IoU ~0.6 with the ball
    tr.targets = [TrackedTarget(1, 0, shifted, (0, 0, 1, 1), caption="a blue ball")]
    assert tr.reuse_captions(scene, s.image) == 0
    tr.targets = [TrackedTarget(1, 0, ball, (0, 0, 1, 1), caption="a blue ball")]
    assert tr.reuse_captions(scene, s.image) == 1 and scene.meta["captions_from_tracks"] == 1
    assert sum(r.caption == "a blue ball" for r in scene.regions) == 1
