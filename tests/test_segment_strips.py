"""Boundary strips of the classical segmenter: the mixed pixels along a large ring's inner and outer
outlines (downscaling blends the ring's colour with the table's) are a few pixels wide but long, so
their area grows with the outline; they must not stay as ring-coloured objects of their own (a
"thing inside the ring")."""

from __future__ import annotations

import numpy as np

import gear_edge.masks as gm
from gear_edge.segment.classical import ClassicalSegmenter


def _ring_scene():
    """A purple ring (radii 90 / 50 px) with a yellow dot in its hole on a light table, sensor noise."""
    rng = np.random.default_rng(1)
    h, w = 480, 640
    img = np.empty((h, w, 3), np.float64)
    img[:] = (222, 220, 214)
    img += rng.normal(0, 3, img.shape)
    yy, xx = np.mgrid[:h, :w]
    d2 = (yy - 200) ** 2 + (xx - 470) ** 2
    ring = (d2 < 90 ** 2) & (d2 >= 50 ** 2)
    img[ring] = np.array((130, 30, 165)) + rng.normal(0, 4, (int(ring.sum()), 3))
    dot = d2 < 20 ** 2
    img[dot] = (240, 215, 50)
    return np.clip(img, 0, 255).astype(np.uint8), ring, dot


def test_a_rings_outline_strips_are_not_objects_of_their_own():
    img, ring, dot = _ring_scene()
    regions = ClassicalSegmenter().segment(img)
    masks = [gm.decode(r.rle).astype(bool) for r in regions]
    ious = [(m & ring).sum() / (m | ring).sum() for m in masks]
    best = int(np.argmax(ious))
    assert ious[best] >= 0.85
    purple = np.array((130, 30, 165), np.float64)
    for k, m in enumerate(masks):
        if k == best or m.sum() == 0:
            continue
        mean = img[m].astype(np.float64).mean(0)
        # no other region is the ring's colour (a strip of it would be), and no region is mostly rim
        assert np.linalg.norm(mean - purple) > 60, (k, m.sum(), mean)
