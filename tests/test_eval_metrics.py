"""gIoU / cIoU on hand-computed cases, and against a transcription of LISA's own arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from gear_edge.errors import InputError
from gear_edge.eval.metrics import IoUAccumulator, intersection_union, sample_iou


def grid(rows: list[str]) -> np.ndarray:
    """'1' -> 1, '.' -> 0, 'x' -> 255 (ignored)."""
    table = {"1": 1, ".": 0, "x": 255}
    return np.array([[table[c] for c in r] for r in rows], dtype=np.uint8)


def test_hand_computed_sample():
    target = grid(["11..",
                   "11..",
                   "....",
                   "...."])
    pred = grid(["1...",
                 "11..",
                 "11..",
                 "...."]).astype(bool)
    # I = 3 (three of the four target pixels), U = 5 predicted + 4 target - 3 = 6
    assert intersection_union(pred, target) == (3, 6)
    assert sample_iou(3, 6) == 3 / (6 + 1e-5)


def test_ignored_pixels_count_for_neither_side():
    target = grid(["11xx",
                   "11xx",
                   "....",
                   "...."])
    pred = np.ones((4, 4), dtype=bool)  # everything predicted
    # valid pixels: 12; predicted there: 12; target: 4 -> I = 4, U = 12
    assert intersection_union(pred, target) == (4, 12)


def test_logits_are_thresholded_at_zero_and_empty_on_empty_is_one():
    logits = np.array([[2.0, 0.0], [-1.0, 1e-6]], dtype=np.float32)
    target = grid(["1.", ".."])
    assert intersection_union(logits, target) == (1, 2)  # 0.0 is not > 0; 1e-6 is
    empty = np.zeros((3, 3), dtype=np.uint8)
    assert intersection_union(np.full((3, 3), -5.0), empty) == (0, 0)
    assert sample_iou(0, 0) == 1.0
    assert sample_iou(*intersection_union(np.ones((3, 3), bool), empty)) == 0.0  # something where nothing is
    assert sample_iou(*intersection_union(np.zeros((3, 3), bool), grid(["1..", "...", "..."]))) == 0.0
    # a prediction only on ignored pixels of an empty target is still "empty on empty"
    assert intersection_union(np.ones((2, 2), bool), grid(["xx", ".."])) == (0, 2)
    assert intersection_union(grid(["11", ".."]), grid(["xx", ".."])) == (0, 0)


def test_giou_and_ciou_with_classes():
    acc = IoUAccumulator()
    acc.add(3, 5, "spatial")  # 0.6
    acc.add(0, 0, "absent")  # 1.0 (empty on empty)
    acc.add(10, 40, "spatial")  # 0.25
    acc.add(0, 7, "absent")  # 0.0
    r = acc.result()
    g = [3 / (5 + 1e-5), 1.0, 10 / (40 + 1e-5), 0.0]
    assert r["n"] == 4
    assert r["gIoU"] == pytest.approx(sum(g) / 4, abs=1e-15)
    assert r["cIoU"] == pytest.approx(13 / (52 + 1e-10), abs=1e-15)
    sp, ab = r["by_class"]["spatial"], r["by_class"]["absent"]
    assert sp["n"] == 2 and sp["gIoU"] == pytest.approx((g[0] + g[2]) / 2) and sp["cIoU"] == pytest.approx(13 / 45)
    assert ab["n"] == 2 and ab["gIoU"] == pytest.approx(0.5) and ab["cIoU"] == 0.0
    assert IoUAccumulator().result()["gIoU"] is None


def _lisa(output: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """LISA's intersectionAndUnionGPU(output, target, K=2, ignore_index=255), class 1, in numpy."""
    output = output.astype(np.int64).copy()
    target = target.astype(np.int64)
    output[target == 255] = 255
    inter = output[output == target]
    area_i = np.histogram(inter, bins=2, range=(0, 1))[0]
    area_o = np.histogram(output, bins=2, range=(0, 1))[0]
    area_t = np.histogram(target, bins=2, range=(0, 1))[0]
    return float(area_i[1]), float(area_o[1] + area_t[1] - area_i[1])


def test_matches_lisa_arithmetic_on_random_masks():
    rng = np.random.default_rng(3)
    acc = IoUAccumulator()
    lisa_i = lisa_u = 0.0
    lisa_acc = []
    for k in range(60):
        h, w = rng.integers(1, 40, size=2)
        target = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        target[rng.random((h, w)) < 0.1] = 255
        if k % 7 == 0:
            target[target == 1] = 0  # some empty targets
        logits = rng.normal(size=(h, w)) + (0 if k % 5 else -10)  # some empty predictions
        i, u = _lisa((logits > 0).astype(np.int64), target)
        lisa_i += i
        lisa_u += u
        lisa_acc.append(i / (u + 1e-5) + (1.0 if u == 0 else 0.0))
        assert intersection_union(logits, target) == (int(i), int(u))
        acc.add_masks(logits, target)
    r = acc.result()
    assert r["gIoU"] == pytest.approx(float(np.mean(lisa_acc)), abs=1e-12)
    assert r["cIoU"] == pytest.approx(lisa_i / (lisa_u + 1e-10), abs=1e-12)


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="differs from target shape"):
        intersection_union(np.zeros((2, 3), bool), np.zeros((3, 2), np.uint8))
    with pytest.raises(InputError, match=r"target values must be 0, 1 or 255 \(ignored\), got \[7\]"):
        intersection_union(np.zeros((2, 2), bool), np.full((2, 2), 7, np.uint8))
    with pytest.raises(InputError, match="integer mask must hold only 0 and 1"):
        intersection_union(np.full((2, 2), 3, np.int32), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        intersection_union(np.full((2, 2), np.nan), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="2-D"):
        intersection_union(np.zeros((2, 2, 1), bool), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="intersection <= union"):
        IoUAccumulator().add(5, 3)
