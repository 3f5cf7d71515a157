"""describe.roles: an outline rim (a thin holed region against the support, smaller than the object
filling its hole: a segmenter's shaded edge) is support, not an object; a real ring around a small
dot stays an object. Masks are built here (no segmenter)."""

from __future__ import annotations

import numpy as np

import gear_edge.masks as gm
from gear_edge.describe.roles import assign_roles
from gear_edge.synthetic import solid_mask

H, W = 480, 640


def _scene(rim_width: int):
    """A grey table filling the image, a red disc with a rim of ``rim_width`` px around it, and a
    blue ring (r 80 / 40) with a yellow dot (r 15) inside it."""
    disc = solid_mask("disk", (200, 240, 60), H, W)
    rim = solid_mask("ring", (200, 240, 60 + rim_width, 60), H, W)
    ring = solid_mask("ring", (460, 240, 80, 40), H, W)
    dot = solid_mask("disk", (460, 240, 15), H, W)
    table = ~(disc | rim | ring | dot)
    img = np.full((H, W, 3), 150, np.uint8)
    img[disc] = (200, 30, 30)
    img[rim] = (175, 90, 90)  # between the disc's red and the table's grey: neither colour
    img[ring] = (30, 60, 210)
    img[dot] = (240, 215, 50)
    masks = {"table": table, "disc": disc, "rim": rim, "ring": ring, "dot": dot}
    return img, masks


def test_an_outline_rim_is_support_and_a_real_ring_stays_an_object():
    img, masks = _scene(rim_width=6)
    names = list(masks)
    roles = dict(zip(names, assign_roles(img, [gm.encode(np.ascontiguousarray(m)) for m in masks.values()])))
    assert roles == {"table": "support", "disc": "object", "rim": "support", "ring": "object", "dot": "object"}


def test_a_wide_band_bigger_than_what_it_holds_is_an_object():
    # a band wider than the disc it surrounds (area larger than the disc's) is a thing of its own
    img, masks = _scene(rim_width=40)
    names = list(masks)
    roles = dict(zip(names, assign_roles(img, [gm.encode(np.ascontiguousarray(m)) for m in masks.values()])))
    assert roles["rim"] == "object" and roles["disc"] == "object"
