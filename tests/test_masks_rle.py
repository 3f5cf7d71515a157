"""gear_edge.masks RLE ops: byte-identity and value parity with pycocotools, on both backends."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as coco
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gear_edge.masks as gm
from gear_edge.reference import rle as ref
from tests.conftest import BACKENDS, use_backend
from tests.strategies import masks


def coco_encode(m: np.ndarray) -> list[dict]:
    """pycocotools' encode of bool [N, H, W] (it wants Fortran uint8 [H, W, N])."""
    return coco.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))


def counts_str(rles) -> list[str]:
    return [r["counts"].decode() if isinstance(r["counts"], bytes) else r["counts"] for r in rles]


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_vectors(backend):
    with use_backend(backend):
        m = np.zeros((4, 5), dtype=bool)
        m[1:3, 1:4] = True
        assert gm.encode(m) == {"size": [4, 5], "counts": "5220003"}
        assert gm.encode(np.ones((2, 2), dtype=bool)) == {"size": [2, 2], "counts": "04"}
        r = {"size": [4, 5], "counts": "5220003"}
        assert np.array_equal(gm.decode(r), m)
        assert gm.area(r) == 6
        assert gm.to_bbox(r).tolist() == [1.0, 1.0, 3.0, 2.0]


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=masks())
def test_encode_decode_area_bbox_match_pycocotools(backend, ms):
    with use_backend(backend):
        ours = gm.encode(ms)
        theirs = coco_encode(ms)
        assert counts_str(ours) == counts_str(theirs)
        assert all(r["size"] == [ms.shape[1], ms.shape[2]] for r in ours)
        assert np.array_equal(gm.decode(ours), ms)
        assert np.array_equal(gm.decode(theirs), ms)  # bytes counts accepted
        assert np.array_equal(gm.area(ours), coco.area(theirs).astype(np.int64))
        assert np.array_equal(gm.to_bbox(ours), coco.toBbox(theirs))
        # single-mask API answers in kind
        one = gm.encode(ms[0])
        assert one == ours[0]
        assert gm.decode(one).shape == ms.shape[1:]
        assert isinstance(gm.area(one), int)
        assert gm.to_bbox(one).shape == (4,)


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=masks(max_n=1), data=st.data())
def test_fortran_order_and_uint8_encode_identically(backend, ms, data):
    with use_backend(backend):
        expected = gm.encode(ms)
        assert gm.encode(np.asfortranarray(ms[0])) == expected[0]
        assert gm.encode(ms.astype(np.uint8)) == expected
        # a batch whose masks are each column-major (pycocotools' [H, W, N] layout, moved)
        hwn = np.asfortranarray(np.repeat(ms.transpose(1, 2, 0), 2, axis=2))
        assert gm.encode(np.moveaxis(hwn, 2, 0)) == expected * 2


@pytest.mark.parametrize("backend", BACKENDS)
@given(a=masks(max_n=4, dims=st.just(13)), b=masks(max_n=3, dims=st.just(13)), data=st.data())
def test_iou_matches_pycocotools(backend, a, b, data):
    with use_backend(backend):
        crowd = data.draw(st.lists(st.booleans(), min_size=len(b), max_size=len(b)))
        ra, rb = gm.encode(a), gm.encode(b)
        ours = gm.iou(ra, rb, iscrowd=crowd)
        theirs = coco.iou(coco_encode(a), coco_encode(b), crowd)
        assert ours.shape == (len(a), len(b))
        assert np.array_equal(ours, np.asarray(theirs).reshape(len(a), len(b)))
        assert np.array_equal(gm.iou(ra, rb), np.asarray(coco.iou(coco_encode(a), coco_encode(b), [0] * len(b))).reshape(len(a), len(b)))


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=masks(max_n=5), intersect=st.booleans())
def test_merge_matches_pycocotools(backend, ms, intersect):
    with use_backend(backend):
        ours = gm.merge(gm.encode(ms), intersect=intersect)
        theirs = coco.merge(coco_encode(ms), intersect=int(intersect))
        assert ours["counts"] == theirs["counts"].decode()
        expect = ms.all(axis=0) if intersect else ms.any(axis=0)
        assert np.array_equal(gm.decode(ours), expect)


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=masks(max_n=17), intersect=st.booleans(), data=st.data())
def test_merge_of_many_masks_matches_pycocotools_fold(backend, ms, intersect, data):
    """The C++ merge reduces pairwise in a balanced tree; bytes must equal pycocotools' left fold.
    With zero-length runs (legal, non-canonical COCO) the layout depends on the order, so those
    inputs take the fold; pycocotools can loop forever on some of them, so there only the merged
    mask is checked (the numpy reference returns canonical runs)."""
    rles = gm.encode(ms)
    non_canonical = data.draw(st.booleans(), label="non_canonical") and ms.size > 0
    if non_canonical:
        h, w = ms.shape[1:]
        for k in data.draw(st.lists(st.integers(0, len(rles) - 1), min_size=1, max_size=4), label="which"):
            counts = ref.counts_from_string(rles[k]["counts"], h * w, "rle").tolist()
            at = data.draw(st.integers(1, len(counts)), label="at")
            counts[at:at] = [0, 0]  # same mask, extra empty runs
            rles[k] = {"size": [h, w], "counts": ref.counts_to_string(counts)}
    with use_backend(backend):
        ours = gm.merge(rles, intersect=intersect)
    assert np.array_equal(gm.decode(ours), ms.all(axis=0) if intersect else ms.any(axis=0))
    assert np.array_equal(gm.decode(ours), gm.decode(ref.merge(rles, intersect)))
    if not non_canonical:
        theirs = coco.merge([{"size": r["size"], "counts": r["counts"].encode()} for r in rles], intersect=int(intersect))
        assert ours["counts"] == theirs["counts"].decode()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (1, 1), (1, 9), (9, 1), (1, 1000), (1000, 1)])
def test_degenerate_shapes(backend, shape):
    with use_backend(backend):
        for fill in (False, True):
            m = np.full(shape, fill, dtype=bool)
            r = gm.encode(m)
            assert r["counts"] == coco.encode(np.asfortranarray(m[..., None].astype(np.uint8)))[0]["counts"].decode()
            assert gm.decode(r).shape == shape
            assert np.array_equal(gm.decode(r), m)
            assert gm.area(r) == int(m.sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_canonical_counts_decode_and_merge(backend):
    # Zero-length runs inside the counts are legal COCO; merge keeps pycocotools' layout where
    # pycocotools' own result is valid, and is always the right mask.
    with use_backend(backend):
        a = {"size": [1, 5], "counts": [3, 0, 2]}
        b = {"size": [1, 5], "counts": [5]}
        assert np.array_equal(gm.decode(a), np.zeros((1, 5), dtype=bool))
        merged = gm.merge([a, b])
        assert np.array_equal(gm.decode(merged), np.zeros((1, 5), dtype=bool))
        c = {"size": [1, 6], "counts": [1, 2, 0, 1, 2]}  # 0 11 (no zeros) 1 00 -> 011100
        assert gm.decode(c).astype(int).tolist() == [[0, 1, 1, 1, 0, 0]]
        assert gm.area(c) == 3
        assert gm.to_bbox(c).tolist() == [1.0, 0.0, 3.0, 1.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_segmentations_match_pycocotools(backend, real_masks):
    with use_backend(backend):
        for name, ms in real_masks.items():
            ours, theirs = gm.encode(ms), coco_encode(ms)
            assert counts_str(ours) == counts_str(theirs), name
            assert np.array_equal(gm.decode(ours), ms), name
            assert np.array_equal(gm.area(ours), coco.area(theirs).astype(np.int64)), name
            assert np.array_equal(gm.to_bbox(ours), coco.toBbox(theirs)), name
            k = min(len(ms), 12)
            expect_iou = np.asarray(coco.iou(theirs[:k], theirs[:k], [0] * k))
            assert np.array_equal(gm.iou(ours[:k], ours[:k]), expect_iou), name
            assert gm.merge(ours[:k])["counts"] == coco.merge(theirs[:k])["counts"].decode(), name


def test_cpp_and_reference_agree_on_real_masks(real_masks):
    """The C++ core against its numpy oracle, function by function, on real region shapes."""
    with use_backend("cpp"):
        for ms in real_masks.values():
            rles = gm.encode(ms)
            assert rles == ref.encode(ms, True)
            assert np.array_equal(gm.decode(rles), ref.decode(rles, True))
            assert np.array_equal(gm.area(rles), ref.area(rles, True))
            assert np.array_equal(gm.to_bbox(rles), ref.bbox(rles, True))
            assert np.array_equal(gm.iou(rles[:8], rles[:8]), ref.iou(rles[:8], rles[:8], None))
            assert gm.merge(rles[:8]) == ref.merge(rles[:8], False)
            assert gm.merge(rles[:8], intersect=True) == ref.merge(rles[:8], True)


def test_results_do_not_depend_on_thread_count(real_masks):
    ms = real_masks["astronaut"]
    base = gm.encode(ms, threads=1)
    for t in (2, 3, 7):
        assert gm.encode(ms, threads=t) == base
        assert np.array_equal(gm.decode(base, threads=t), ms)
        assert np.array_equal(gm.iou(base, base, threads=t), gm.iou(base, base, threads=1))
        assert np.array_equal(gm.to_bbox(base, threads=t), gm.to_bbox(base, threads=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_uncompressed_counts_are_accepted(backend):
    with use_backend(backend):
        r = {"size": [4, 5], "counts": [5, 2, 2, 2, 2, 2, 5]}
        assert gm.merge([r])["counts"] == "5220003"
        assert gm.area(r) == 6
        assert gm.iou(r, {"size": [4, 5], "counts": "5220003"}).tolist() == [[1.0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batches(backend):
    with use_backend(backend):
        assert gm.encode(np.zeros((0, 3, 4), dtype=bool)) == []
        assert gm.decode([]).shape == (0, 0, 0)
        assert gm.area([]).shape == (0,)
        assert gm.to_bbox([]).shape == (0, 4)
        assert gm.iou([], []).shape == (0, 0)
        r = gm.encode(np.ones((2, 2), dtype=bool))
        assert gm.iou([r], []).shape == (1, 0)


@st.composite
def long_masks(draw) -> np.ndarray:
    """bool [N, H, W] whose strings are thousands of characters with 1- to 5-character numbers:
    noise patches (many short runs) in large empty or full areas (runs of 10^4..10^5 pixels)."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(100, 400)), draw(st.integers(100, 500))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = np.zeros((n, h, w), dtype=bool) if draw(st.booleans()) else np.ones((n, h, w), dtype=bool)
    for i in range(n):
        for _ in range(int(rng.integers(1, 4))):
            ph, pw = int(rng.integers(12, 60)), int(rng.integers(12, 60))
            y0, x0 = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
            out[i, y0:y0 + ph, x0:x0 + pw] = rng.random((ph, pw)) < rng.uniform(0.2, 0.8)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@given(ms=long_masks())
def test_long_strings_match_pycocotools(backend, ms):
    """The block parser (64 characters at a time) on long strings with long numbers."""
    with use_backend(backend):
        theirs = coco_encode(ms)
        ours = gm.encode(ms)
        assert counts_str(ours) == counts_str(theirs)
        assert max(len(s) for s in counts_str(ours)) > 72
        assert np.array_equal(gm.decode(ours), ms)
        assert np.array_equal(gm.area(ours), coco.area(theirs).astype(np.int64))
        assert np.array_equal(gm.to_bbox(ours), coco.toBbox(theirs))
        assert counts_str([gm.merge(ours)]) == counts_str([coco.merge(theirs)])
