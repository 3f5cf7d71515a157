"""gear_edge.masks.sample: strided windows of RLE masks, equal to slicing the decoded mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gear_edge.masks as gm
from gear_edge.errors import InputError
from tests.conftest import BACKENDS, use_backend
from tests.strategies import masks


@st.composite
def windows(draw, h: int, w: int):
    x0 = draw(st.integers(0, w))
    x1 = draw(st.integers(x0, w))
    y0 = draw(st.integers(0, h))
    y1 = draw(st.integers(y0, h))
    return [x0, y0, x1, y1]


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_sample_equals_slicing_the_decoded_mask(backend, data):
    ms = data.draw(masks())
    n, h, w = ms.shape
    boxes = [data.draw(windows(h, w)) for _ in range(n)]
    steps = [data.draw(st.integers(1, 6)) for _ in range(n)]
    offset = data.draw(st.integers(0, 4))
    with use_backend(backend):
        out = gm.sample(gm.encode(ms), boxes, steps, offset=offset)
    assert len(out) == n
    for m, (x0, y0, x1, y1), s, got in zip(ms, boxes, steps, out):
        want = m[y0 + offset : y1 : s, x0 + offset : x1 : s]
        assert got.dtype == bool and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_real_masks_full_frame(backend, real_masks):
    for ms in real_masks.values():
        rles = gm.encode(ms)
        n, h, w = ms.shape
        with use_backend(backend):
            out = gm.sample(rles, np.tile([0, 0, w, h], (n, 1)), 5, offset=2)
        for m, got in zip(ms, out):
            assert np.array_equal(got, m[2::5, 2::5])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_bad_windows_are_named(backend):
    rles = gm.encode(np.ones((2, 4, 5), bool))
    with use_backend(backend):
        with pytest.raises(InputError, match="box 1"):
            gm.sample(rles, [[0, 0, 5, 4], [0, 0, 6, 4]], 1)
        with pytest.raises(InputError, match="steps\\[0\\]"):
            gm.sample(rles, [[0, 0, 5, 4], [0, 0, 5, 4]], [0, 1])
        with pytest.raises(InputError, match="boxes"):
            gm.sample(rles, [[0, 0, 5, 4]], 1)
        with pytest.raises(InputError, match="offset"):
            gm.sample(rles, [[0, 0, 5, 4]] * 2, 1, offset=-1)
        with pytest.raises(InputError):
            gm.sample([{"size": [4, 5], "counts": "5220"}], [[0, 0, 5, 4]], 1)
