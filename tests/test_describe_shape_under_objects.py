"""An object's shape is measured together with what lies on it (a ball on a box leaves a hole in the
box's visible pixels; the box is still rectangular), but not with what lies in its hole (a ring)."""

from __future__ import annotations

import numpy as np

import gear_edge.masks as gm
from gear_edge.describe.geometry import describe_regions

H, W = 240, 320


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _scene(masks: list[np.ndarray], colours: list[tuple[int, int, int]]):
    image = np.full((H, W, 3), 120, np.uint8)
    for m, c in zip(masks, colours):
        image[m] = c
    table = ~np.logical_or.reduce(masks)
    rles = [gm.encode(np.asfortranarray(m)) for m in masks + [table]]
    return image, rles


def test_a_box_with_a_ball_on_it_is_still_rectangular_and_has_no_hole():
    box = np.zeros((H, W), bool)
    box[60:180, 60:260] = True
    ball = _disc(160, 120, 22)
    image, rles = _scene([box & ~ball, ball], [(200, 30, 30), (40, 150, 50)])
    attrs, rels = describe_regions(image, rles, roles=["object", "object", "support"])
    assert (1, "on_top_of", 0) in {(r.subject, r.predicate, r.object) for r in rels}
    assert attrs[0]["shape"] == ["rectangular"], attrs[0]["shape"]
    assert attrs[0]["holes"] == 0
    # the box alone, as the segmenter sees it, has a hole where the ball is
    alone, _ = describe_regions(image, [rles[0], rles[2]], roles=["object", "support"])
    assert "has holes" in alone[0]["shape"]


def test_a_ring_keeps_its_hole_with_a_ball_inside_it():
    outer, hole = _disc(160, 120, 70), _disc(160, 120, 40)
    ball = _disc(160, 120, 15)
    image, rles = _scene([outer & ~hole, ball], [(30, 70, 210), (235, 205, 40)])
    attrs, rels = describe_regions(image, rles, roles=["object", "object", "support"])
    preds = {(r.subject, r.predicate, r.object) for r in rels}
    assert (1, "inside", 0) in preds and (1, "on_top_of", 0) not in preds
    assert "has holes" in attrs[0]["shape"] and attrs[0]["holes"] == 1


def test_a_box_in_perspective_is_straight_sided_and_a_can_or_a_ball_is_not():
    """A box seen from above at an angle shows its top and front faces: a convex hexagon that is no
    rectangle in the image (rectangularity < 0.9), but its outline is straight-sided."""
    hexagon = np.array([[100, 60], [200, 60], [250, 100], [250, 170], [150, 170], [100, 130]], np.int32)
    box = np.zeros((H, W), np.uint8)
    import cv2

    cv2.fillPoly(box, [hexagon], 1)
    can = np.zeros((H, W), np.uint8)  # a cylinder: straight sides, elliptic top and bottom
    cv2.ellipse(can, (160, 90), (40, 22), 0, 0, 360, 1, -1)
    cv2.ellipse(can, (160, 140), (40, 22), 0, 0, 360, 1, -1)
    can[90:141, 120:201] = 1
    ball = _disc(160, 120, 45).astype(np.uint8)
    for mask, want in ((box, {"square", "rectangular"}), (can, set()), (ball, {"round"})):
        image, rles = _scene([mask.astype(bool)], [(200, 30, 30)])
        attrs, _ = describe_regions(image, rles, roles=["object", "support"])
        got = set(attrs[0]["shape"]) & {"square", "rectangular", "round"}
        assert got <= want and (got or not want), (want, attrs[0])
    image, rles = _scene([box.astype(bool)], [(200, 30, 30)])
    attrs, _ = describe_regions(image, rles, roles=["object", "support"])
    assert attrs[0]["rectangularity"] < 0.9 and attrs[0]["straightness"] >= 0.6
