"""Polygons: from_polygons byte-identical to pycocotools; to_polygons round-trips exactly."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as coco
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage as ndi

import gear_edge.masks as gm
from gear_edge.errors import InputError
from tests.conftest import BACKENDS, use_backend
from tests.strategies import masks, polygons


@st.composite
def polygon_objects(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    obj = draw(st.lists(polygons(h, w), min_size=1, max_size=3))
    return h, w, obj


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=polygon_objects())
def test_from_polygons_matches_pycocotools(backend, case):
    h, w, obj = case
    with use_backend(backend):
        ours = gm.from_polygons(obj, h, w)
    theirs = coco.merge(coco.frPyObjects(obj, h, w))
    assert ours["counts"] == theirs["counts"].decode()
    assert ours["size"] == [h, w]


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_polygons_shapes_of_input(backend):
    with use_backend(backend):
        square = [1, 1, 3, 1, 3, 3, 1, 3]
        one = gm.from_polygons(square, 6, 6)  # a single flat polygon
        assert gm.decode(one)[1:3, 1:3].all() and gm.area(one) == 4
        assert gm.from_polygons([square], 6, 6) == one  # one object = list of polygons
        assert gm.from_polygons(np.array(square, dtype=float).reshape(-1, 2), 6, 6) == one  # [K, 2] array
        batch = gm.from_polygons([[square], [square, [4, 4, 5, 4, 5, 5]]], 6, 6)  # list of objects
        assert isinstance(batch, list) and len(batch) == 2 and batch[0] == one


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "polys, h, w, message",
    [
        ([[1, 1, 3, 1]], 6, 6, "needs an even number \\(>= 6\\)"),
        ([[1, 1, 3, 1, 3]], 6, 6, "needs an even number"),
        ([[1, 1, 3, 1, float("nan"), 3]], 6, 6, "not finite"),
        ([[1, 1, 3, 1, 1e12, 3]], 6, 6, "far outside"),
        ([[1, 1, 3, 1, 3, 3]], 0, 6, "height must be a positive integer"),
        ([[1, 1, 3, 1, 3, 3]], 6, 2.5, "width must be a positive integer"),
        ([], 6, 6, "empty list"),
        ("1,1,3,1,3,3", 6, 6, "expected numbers"),
        ([[[1, 1, 3, 1, 3, 3]], [[1, "a", 3, 1, 3, 3]]], 6, 6, "object 1, polygon 0"),
    ],
)
def test_bad_polygons(backend, polys, h, w, message):
    with use_backend(backend):
        with pytest.raises(InputError, match=message):
            gm.from_polygons(polys, h, w)


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=masks(max_n=2))
def test_to_polygons_round_trips_exactly(backend, ms):
    with use_backend(backend):
        polys = gm.to_polygons(ms)
        for m, p in zip(ms, polys):
            filled = ndi.binary_fill_holes(m)
            if not p:
                assert not m.any()
                continue
            back = gm.decode(gm.from_polygons(p, *m.shape))
            assert np.array_equal(back, filled)
            # pycocotools reads our polygons the same way
            assert np.array_equal(coco.decode(coco.merge(coco.frPyObjects(p, *m.shape))).astype(bool), filled)


def test_to_polygons_on_real_masks_and_rles(real_masks):
    for ms in real_masks.values():
        rles = gm.encode(ms[:10])
        from_rles = gm.to_polygons(rles)
        assert from_rles == gm.to_polygons(ms[:10])
        for m, p in zip(ms[:10], from_rles):
            back = gm.decode(gm.from_polygons(p, *m.shape))
            assert np.array_equal(back, ndi.binary_fill_holes(m))
            simple = gm.to_polygons(m, tolerance=1.0)
            assert sum(len(q) for q in simple) < sum(len(q) for q in p)
            approx = gm.decode(gm.from_polygons(simple, *m.shape))
            assert (approx & back).sum() / (approx | back).sum() >= 0.9


def test_to_polygons_bad_input():
    with pytest.raises(InputError, match="tolerance"):
        gm.to_polygons(np.ones((3, 3), dtype=bool), tolerance=-1)
    with pytest.raises(InputError, match="bool or uint8"):
        gm.to_polygons(np.ones((3, 3), dtype=np.float32))
    assert gm.to_polygons(np.zeros((3, 3), dtype=bool)) == []
