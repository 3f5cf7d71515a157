"""Malformed input to gear_edge.masks raises InputError (a ValueError) naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gear_edge.masks as gm
from gear_edge.errors import InputError
from gear_edge.reference import rle as ref
from tests.conftest import BACKENDS, use_backend

GOOD = {"size": [4, 5], "counts": "5220003"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "rle, message",
    [
        ({"size": [4, 5], "counts": "52~0003"}, "invalid character '~'"),
        ({"size": [4, 5], "counts": "52é0003"}, "invalid character"),
        ({"size": [4, 5], "counts": "522000"}, "runs sum to 15 pixels but 'size' has 20"),
        ({"size": [4, 5], "counts": "5220004"}, "runs sum to 21 pixels but 'size' has 20"),
        ({"size": [4, 5], "counts": "111K"}, "negative length"),
        ({"size": [4, 5], "counts": "52P"}, "ends inside a number"),
        ({"size": [4, 5], "counts": "oooooooooo"}, "too long"),
        ({"size": [4, 5], "counts": [5, -2, 15]}, "negative"),
        ({"size": [4, 5], "counts": [5, 2]}, "runs sum to 7 pixels"),
        ({"size": [4, 5], "counts": [5, 2.0, 13]}, "must hold integers"),
        ({"size": [4, 5], "counts": 17}, "'counts' must be a str or bytes"),
        ({"size": [4], "counts": "5220003"}, "'size' must be [height, width]"),
        ({"size": "45", "counts": "5220003"}, "'size' must be [height, width]"),
        ({"size": [4, -5], "counts": "5220003"}, "'size' values must be in"),
        ({"size": [4.0, 5], "counts": "5220003"}, "two integers"),
        ({"size": [100000, 100000], "counts": "0"}, "more pixels than a COCO RLE can hold"),
        ({"counts": "5220003"}, "missing key 'size'"),
        ({"size": [4, 5]}, "missing key 'counts'"),
        ([4, 5], "expected a dict"),
        ({"size": [10**30, 1], "counts": "0"}, "'size' values must be in"),
        ({"size": [True, 5], "counts": "5220003"}, "two integers"),
        ({"size": [4, 5], "counts": [10**30]}, "has length 1000000000000000000000000000000"),
        ({"size": [4, 5], "counts": [0, True, 19]}, "must hold integers, item 1 is bool"),
        ({"size": [4, 5], "counts": "\ud800"}, "(not a valid string|invalid character)"),
    ],
)
def test_bad_rles_are_named(backend, rle, message):
    with use_backend(backend):
        for call in (gm.decode, gm.area, gm.to_bbox):
            with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]") if "(" not in message else message):
                call([GOOD, rle])
        with pytest.raises(ValueError, match="RLE 1"):  # batch errors name the item
            gm.decode([GOOD, rle])
        with pytest.raises(ValueError, match="RLE"):
            gm.merge([GOOD, rle])
        with pytest.raises(ValueError, match="RLE b 0"):
            gm.iou([GOOD], [rle])


@pytest.mark.parametrize("backend", BACKENDS)
def test_size_mismatches(backend):
    with use_backend(backend):
        other = gm.encode(np.zeros((5, 4), dtype=bool))
        with pytest.raises(InputError, match="RLE 1 has size 5x4 but RLE 0 has 4x5"):
            gm.decode([GOOD, other])
        with pytest.raises(InputError, match="only masks of one size can be merged"):
            gm.merge([GOOD, other])
        with pytest.raises(InputError, match="IoU needs masks of one size"):
            gm.iou([GOOD], [other])
        with pytest.raises(InputError, match="iscrowd has 2 entries but there are 1 masks in b"):
            gm.iou([GOOD], [GOOD], iscrowd=[True, False])
        with pytest.raises(InputError, match="at least one RLE"):
            gm.merge([])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_mask_arrays(backend):
    with use_backend(backend):
        with pytest.raises(InputError, match="bool or uint8"):
            gm.encode(np.zeros((3, 3), dtype=np.float32))
        with pytest.raises(InputError, match="bool or uint8"):
            gm.encode(np.zeros((3, 3), dtype=np.int64))
        with pytest.raises(InputError, match="numpy array"):
            gm.encode([[True, False]])
        with pytest.raises(InputError, match=r"\[H, W\] or \[N, H, W\]"):
            gm.encode(np.zeros((2, 3, 3, 1), dtype=bool))
        with pytest.raises(InputError, match="not contiguous"):
            gm.encode(np.zeros((6, 6), dtype=bool)[::2])
        with pytest.raises(InputError, match="not contiguous"):
            gm.encode(np.zeros((4, 6, 6), dtype=bool)[::2])
        with pytest.raises(InputError, match="not contiguous"):
            gm.encode(np.zeros((2, 6, 6), dtype=bool)[:, 1:4, 1:4])
        bad = np.zeros((3, 4), dtype=np.uint8)
        bad[1, 2] = 2
        with pytest.raises(InputError, match="found 2 at row 1, column 2"):
            gm.encode(bad)
        with pytest.raises(InputError, match="mask 1: mask values must be 0 or 1"):
            gm.encode(np.stack([np.zeros((3, 4), np.uint8), bad]))
        with pytest.raises(InputError, match="RLE dict"):
            gm.decode("5220003")
        with pytest.raises(InputError, match="threads"):
            gm.encode(np.zeros((3, 3), dtype=bool), threads=0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    counts=st.one_of(st.text(max_size=24), st.binary(max_size=24), st.text(alphabet="0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmno", max_size=24)),
    h=st.integers(0, 12),
    w=st.integers(0, 12),
)
def test_fuzz_decoder_entry_points(backend, counts, h, w):
    """Arbitrary counts: a clear ValueError or a valid mask that re-encodes consistently."""
    rle = {"size": [h, w], "counts": counts}
    with use_backend(backend):
        try:
            m = gm.decode(rle)
        except ValueError as exc:
            assert str(exc)
            for call in (gm.area, gm.to_bbox, lambda r: gm.merge([r]), lambda r: gm.iou(r, r)):
                with pytest.raises(ValueError):
                    call(rle)
            return
        assert m.shape == (h, w) and m.dtype == bool
        assert gm.area(rle) == int(m.sum())
        canonical = gm.encode(m)
        assert np.array_equal(gm.decode(canonical), m)
        ys, xs = np.nonzero(m)
        expect = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] if len(xs) else [0, 0, 0, 0]
        assert gm.to_bbox(rle).tolist() == [float(v) for v in expect]
        assert gm.iou(rle, canonical).tolist() == [[1.0 if m.any() else 0.0]]
        assert np.array_equal(gm.decode(gm.merge([rle, canonical])), m)


@given(
    counts=st.one_of(st.text(max_size=16), st.binary(max_size=16), st.lists(st.integers(-3, 30), max_size=6)),
    h=st.integers(0, 6),
    w=st.integers(0, 6),
)
def test_fuzz_backends_agree_on_acceptance(counts, h, w):
    rle = {"size": [h, w], "counts": counts}
    outcomes = []
    for backend in BACKENDS:
        with use_backend(backend):
            try:
                outcomes.append(gm.decode(rle).tolist())
            except ValueError:
                outcomes.append("rejected")
    assert outcomes[0] == outcomes[1]


@given(obj=st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.floats(), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["size", "counts", "x"]), c, max_size=3), max_leaves=8))
def test_fuzz_arbitrary_objects_never_crash(obj):
    for backend in BACKENDS:
        with use_backend(backend):
            for call in (gm.decode, gm.area, gm.to_bbox):
                try:
                    call(obj)
                except ValueError:
                    pass
                # TypeError etc. would fail the test: every bad input must be a ValueError.


def test_reference_reports_invalid_uint8_position():
    bad = np.zeros((1, 2, 3), dtype=np.uint8)
    bad[0, 1, 0] = 9
    with pytest.raises(InputError, match="found 9 at row 1, column 0"):
        ref.encode(bad, False)


def _long_rle(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    m = np.zeros((120, 160), dtype=bool)
    m[10:90, 20:140] = rng.random((80, 120)) < 0.5
    return gm.encode(m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_deep_inside_long_strings_are_named(backend):
    """Corruption in the middle of a long string (the C++ block parser's territory) is reported
    with the same message and position as at its start."""
    good = _long_rle(0)
    s = good["counts"]
    assert len(s) > 500
    with use_backend(backend):
        for pos in (70, 200, 333):
            bad = {"size": good["size"], "counts": s[:pos] + "~" + s[pos + 1:]}
            with pytest.raises(InputError, match=f"invalid character '~' \\(code 126\\) at position {pos} "):
                gm.area([good, bad])
        with pytest.raises(InputError, match="runs sum to"):
            gm.area({"size": good["size"], "counts": s[:300] + "0" + s[300:]})


@given(seed=st.integers(0, 50), data=st.data())
def test_corrupted_long_strings_agree_across_backends(seed, data):
    """Any one-character change of a long string: the C++ parser and the numpy reference give the
    same area, or both reject it."""
    if gm.backend() != "cpp":
        pytest.skip("needs the C++ extension")
    good = _long_rle(seed)
    s = good["counts"]
    pos = data.draw(st.integers(0, len(s) - 1))
    ch = data.draw(st.sampled_from([chr(c) for c in range(40, 120)]))
    rle = {"size": good["size"], "counts": s[:pos] + ch + s[pos + 1:]}
    results = []
    for backend in ("cpp", "numpy"):
        with use_backend(backend):
            try:
                results.append(("ok", int(gm.area(rle)), gm.to_bbox(rle).tolist()))
            except InputError as exc:
                results.append(("error", str(exc).split(":")[0]))
    assert results[0][0] == results[1][0], results
    if results[0][0] == "ok":
        assert results[0] == results[1]
