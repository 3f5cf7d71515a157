"""Fused logit post-processing: bit-exact against torch.nn.functional.interpolate (both backends,
random shapes, both conventions, thresholds), and the C++ path against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gear_edge.masks as gm
from gear_edge.errors import InputError
from gear_edge.reference import postprocess as ref
from gear_edge.reference.rle import runs_of
from tests.conftest import BACKENDS, use_backend

rng = np.random.default_rng(2024)


def structured_logits(k: int, h: int = 256, w: int = 256, seed: int = 0) -> np.ndarray:
    """SAM-like logits: smooth blobs (signed distance / 8) plus noise, so masks have real shapes."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((k, h, w), dtype=np.float32)
    for i in range(k):
        acc = np.full((h, w), -20.0)
        for _ in range(int(r.integers(1, 4))):
            cx, cy, rad = r.uniform(0, w), r.uniform(0, h), r.uniform(0.04, 0.3) * min(h, w)
            acc = np.maximum(acc, (rad - np.hypot((xx - cx) * r.uniform(0.5, 1.5), yy - cy)) / 8)
        out[i] = acc + r.normal(0, 0.3, (h, w))
    return out


def torch_order_upsample(lr: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """torch's bilinear formula, float32, same order of operations: an exact oracle."""
    return ref.bilinear(lr, out_h, out_w)


def mask_ious(a_rles, b_rles) -> np.ndarray:
    """Per-pair IoU with two empty masks counted as identical (IoU 1)."""
    inter = np.diag(gm.iou(a_rles, b_rles))
    both_empty = (gm.area(a_rles) == 0) & (gm.area(b_rles) == 0)
    return np.where(both_empty, 1.0, inter)


CASES = [
    # (low-res h, w, out H, W, convention)
    (256, 256, 480, 640, "sam2"),
    (256, 256, 1080, 1920, "sam2"),
    (256, 256, 333, 517, "sam1"),
    (256, 256, 1080, 1920, "sam1"),
    (64, 48, 100, 75, "sam2"),  # non-square low-res, small output
    (256, 256, 120, 90, "sam2"),  # down-sampling
    (256, 256, 256, 256, "sam2"),  # identity size
]


@pytest.mark.parametrize("backend", ["cpp"])  # the numpy backend IS the reference: comparing it would prove nothing
@pytest.mark.parametrize("lh, lw, H, W, convention", CASES)
@pytest.mark.parametrize("kind", ["structured", "random"])
def test_cpp_matches_numpy_cv2_reference(backend, lh, lw, H, W, convention, kind):
    k = 6 if H * W < 1e6 else 2
    logits = structured_logits(k, lh, lw, seed=lh + H) if kind == "structured" else rng.normal(0, 3, (k, lh, lw)).astype(np.float32)
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (H, W), convention=convention)
    exp_rles, exp_stab, exp_boxes, exp_areas = ref.postprocess_logits(logits, H, W, 1024, convention, 0.0, 1.0, 0, 0, 0, 0)
    assert len(got) == k
    assert mask_ious(got.rles, exp_rles).min() >= 0.999
    assert np.abs(got.stability - exp_stab).max() <= 1e-4
    assert got.stability.dtype == np.float32 and got.boxes.dtype == np.float64 and got.areas.dtype == np.int64
    # outputs agree with the RLE they describe
    assert np.array_equal(got.areas, gm.area(got.rles))
    assert np.array_equal(got.boxes, gm.to_bbox(got.rles))
    assert np.abs(got.areas - exp_areas).max() <= max(1, 0.001 * exp_areas.max())


@pytest.mark.parametrize("backend", ["cpp"])  # numpy = the reference; both backends are checked against torch below
@pytest.mark.parametrize("threshold, offset", [(0.0, 1.0), (0.5, 0.25), (-1.0, 2.0), (0.0, 0.0), (0.3, -0.5)])
def test_thresholds_and_offsets(backend, threshold, offset):
    logits = structured_logits(4, seed=7)
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (300, 200), mask_threshold=threshold, stability_offset=offset)
    exp = ref.postprocess_logits(logits, 300, 200, 1024, "sam2", threshold, offset, 0, 0, 0, 0)
    assert mask_ious(got.rles, exp[0]).min() >= 0.999
    assert np.abs(got.stability - exp[1]).max() <= 1e-4


@given(
    lh=st.integers(1, 24),
    lw=st.integers(1, 24),
    H=st.integers(1, 70),
    W=st.integers(1, 70),
    scale=st.floats(0.01, 50),
    seed=st.integers(0, 2**31),
)
def test_cpp_equals_the_numpy_transcription_exactly(lh, lw, H, W, scale, seed):
    """The run-emitting C++ path decides every pixel exactly as the numpy transcription of torch's
    arithmetic (:func:`gear_edge.reference.postprocess.bilinear`); torch itself is the oracle in
    :func:`test_bit_exact_against_torch_interpolate`."""
    logits = (np.random.default_rng(seed).normal(0, 1, (1, lh, lw)) * scale).astype(np.float32)
    with use_backend("cpp"):
        got = gm.postprocess_logits(logits, (H, W))
    up = torch_order_upsample(logits[0], H, W)
    assert got.rles[0]["counts"] == gm.encode(up > 0)["counts"]
    hi, lo = int((up > 1).sum()), int((up > -1).sum())
    assert got.stability[0] == (np.float32(hi) / np.float32(lo) if lo else 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_uncrop_pastes_into_canvas(backend):
    logits = structured_logits(3, seed=3)
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (100, 150), canvas_size=(300, 400), offset=(50, 60))
        plain = gm.postprocess_logits(logits, (100, 150))
    for pasted, small in zip(gm.decode(got.rles), gm.decode(plain.rles)):
        assert pasted.shape == (300, 400)
        assert np.array_equal(pasted[60:160, 50:200], small)
        assert pasted.sum() == small.sum()
    shifted = plain.boxes.copy()
    nonempty = plain.areas > 0
    shifted[nonempty, 0] += 50
    shifted[nonempty, 1] += 60
    assert np.array_equal(got.boxes, shifted)
    assert np.array_equal(got.stability, plain.stability)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_shape_and_non_float32_input(backend):
    logits = structured_logits(6, 64, 64, seed=5).reshape(2, 3, 64, 64)
    with use_backend(backend):
        a = gm.postprocess_logits(logits, (90, 120))
        b = gm.postprocess_logits(logits.astype(np.float64), (90, 120))  # converted to float32
        c = gm.postprocess_logits(np.asfortranarray(logits), (90, 120))  # made contiguous
    assert len(a) == 6 and a.rles == b.rles == c.rles


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_logits(backend):
    logits = structured_logits(2, 32, 32, seed=9)
    logits[0, 5:9, 5:9] = np.nan
    logits[1, 0:4, :] = np.inf
    logits[1, 10:12, :] = -np.inf
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (64, 64))
    up = torch_order_upsample(np.nan_to_num(logits[0], nan=-100.0), 64, 64)
    nan_region = np.isnan(torch_order_upsample(logits[0], 64, 64))
    m = gm.decode(got.rles[0])
    assert not m[nan_region].any()  # NaN is never "above threshold"
    assert np.array_equal(m[~nan_region], (up > 0)[~nan_region])
    assert 0.0 <= got.stability[0] <= 1.0 and 0.0 <= got.stability[1] <= 1.0


def test_results_do_not_depend_on_thread_count():
    logits = structured_logits(9, seed=11)
    base = gm.postprocess_logits(logits, (400, 300), threads=1)
    for t in (2, 4):
        other = gm.postprocess_logits(logits, (400, 300), threads=t)
        assert other.rles == base.rles
        assert np.array_equal(other.stability, base.stability)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(logits=np.zeros((2, 8, 8), np.int32), orig_size=(4, 4)), "float numpy array"),
        (dict(logits=np.zeros(8, np.float32), orig_size=(4, 4)), r"\[\.\.\., h, w\]"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(0, 4)), "orig_size"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(4, 4), convention="sam3"), "convention"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(4, 4), mask_threshold=float("nan")), "mask_threshold"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(40, 40), canvas_size=(30, 50)), "does not fit"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(4, 4), offset=(-1, 0)), "offset"),
        (dict(logits=np.zeros((1, 0, 8), np.float32), orig_size=(4, 4)), "empty spatial size"),
        (dict(logits=np.zeros((1, 8, 8), np.float32), orig_size=(1, 5000), convention="sam1"), "empty side"),
    ],
)
def test_bad_input(backend, kwargs, message):
    with use_backend(backend):
        with pytest.raises(InputError, match=message):
            gm.postprocess_logits(**kwargs)


def test_cv2_resize_is_only_close_to_torch():
    """Why the oracle is numpy and not cv2: same semantics, different rounding (documented)."""
    import cv2

    lr = structured_logits(1, seed=13)[0]
    up_cv2 = cv2.resize(lr, (400, 300), interpolation=cv2.INTER_LINEAR)
    diff = np.abs(up_cv2 - torch_order_upsample(lr, 300, 400))
    assert diff.max() < 1e-3
    assert runs_of(up_cv2 > 0).sum() == 300 * 400


TORCH_REASON = "torch (the [export] extra: pip install 'gear-edge[export]') is the oracle of this parity check"


def _torch_upsample(logits: np.ndarray, H: int, W: int, convention: str) -> np.ndarray:
    """float32 [K, H, W]: what SAM's own code computes (F.interpolate, bilinear, align_corners=False)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(logits))[None]
    if convention == "sam2":
        up = F.interpolate(t, (H, W), mode="bilinear", align_corners=False)
    else:  # SAM 1: to the 1024 input frame, crop the padding, then to the image size
        h_in, w_in = ref.longest_side_shape(H, W, 1024)
        big = F.interpolate(t, (1024, 1024), mode="bilinear", align_corners=False)[..., :h_in, :w_in]
        up = F.interpolate(big, (H, W), mode="bilinear", align_corners=False)
    return up.numpy()[0]


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    lh=st.integers(1, 40), lw=st.integers(1, 40), H=st.integers(1, 130), W=st.integers(1, 130),
    convention=st.sampled_from(["sam2", "sam1"]), scale=st.floats(0.01, 50), seed=st.integers(0, 2**31),
    threshold=st.sampled_from([0.0, 0.0, 0.5, -1.0]), offset=st.sampled_from([1.0, 1.0, 0.25, 2.0]),
)
def test_bit_exact_against_torch_interpolate(backend, lh, lw, H, W, convention, scale, seed, threshold, offset):
    """Every pixel of every mask and every stability score equal to torch's (pixels within float32
    rounding of a threshold excepted, see below)."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    torch.set_num_threads(1)
    logits = (np.random.default_rng(seed).normal(0, 1, (2, lh, lw)) * scale).astype(np.float32)
    up = _torch_upsample(logits, H, W, convention)
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (H, W), convention=convention, mask_threshold=threshold,
                                    stability_offset=offset)
    # torch's vectorised CPU kernels (AVX2 / AVX-512, chosen by the machine) fuse multiply-adds, so on
    # some CPUs a logit within float32 rounding of a threshold lands on the other side (seen: -6.6e-8
    # vs 0 on an AVX-512 machine; its scalar kernel, ATEN_CPU_CAPABILITY=default, agrees with ours
    # there). Pixels that far from a threshold may differ; every other pixel must be equal.
    eps = 4 * np.finfo(np.float32).eps * max(1.0, float(np.abs(up).max()))
    for i in range(2):
        mine = gm.decode(got.rles[i]).astype(bool)
        ref = up[i] > threshold
        assert np.all(np.abs(up[i][mine != ref] - threshold) <= eps), "a pixel differs from torch beyond rounding"
        counts = []
        for t in (threshold + offset, threshold - offset):
            near = int((np.abs(up[i] - t) <= eps).sum())
            counts.append(((up[i] > t).sum(), near))
        (hi, n_hi), (lo, n_lo) = counts
        if n_hi == n_lo == 0 and (mine == ref).all():
            assert got.rles[i]["counts"] == gm.encode(np.ascontiguousarray(ref))["counts"]
            assert got.stability[i] == (np.float32(hi) / np.float32(lo) if lo else np.float32(1.0))
        else:  # the ratio of counts that may each be off by their near-threshold pixels
            assert any(got.stability[i] == (np.float32(hi + a) / np.float32(lo + b) if lo + b else np.float32(1.0))
                       for a in range(-n_hi, n_hi + 1) for b in range(-n_lo, n_lo + 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("convention, H, W", [("sam2", 480, 640), ("sam1", 480, 640), ("sam2", 1080, 1920)])
def test_production_sizes_bit_exact_against_torch(backend, convention, H, W):
    pytest.importorskip("torch", reason=TORCH_REASON)
    logits = structured_logits(2, seed=17)
    up = _torch_upsample(logits, H, W, convention)
    with use_backend(backend):
        got = gm.postprocess_logits(logits, (H, W), convention=convention)
    for i in range(2):
        assert got.rles[i]["counts"] == gm.encode(np.ascontiguousarray(up[i] > 0))["counts"]
        hi, lo = int((up[i] > 1).sum()), int((up[i] > -1).sum())
        assert got.stability[i] == np.float32(hi) / np.float32(max(lo, 1))
