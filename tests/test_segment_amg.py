"""Segment stage units: point grids, crop boxes, NMS, pre-processing, clean-up, AMG and prompt behaviour.

References: sam2's own functions and torchvision's ``batched_nms`` where the ``[export]`` stack is
installed (skipped elsewhere, with the reason), a literal transcription of torchvision's NMS loop,
torch's ``interpolate(antialias=True)``, and exact properties of the outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.engines import TensorSpec
from gear_edge.errors import InputError
from gear_edge.segment import (
    AutomaticMaskGenerator,
    PromptSegmenter,
    box_nms,
    build_all_layer_point_grids,
    build_point_grid,
    generate_crop_boxes,
    preprocess,
    remove_small_regions,
    segment_prompts,
)
from gear_edge.segment.amg import MaskSet, postprocess_small_regions
from gear_edge.segment.preprocess import aa_bilinear_taps, resize_antialias
from tests.conftest import BACKENDS, use_backend

F32 = np.dtype(np.float32)
FEATURES = {"image_embed": (1, 256, 64, 64), "high_res_feats_0": (1, 32, 256, 256), "high_res_feats_1": (1, 64, 128, 128)}


def _sam2_amg():
    return pytest.importorskip("sam2.utils.amg", reason="sam2 (the [export] extra) is not installed")


# ---------------------------------------------------------------------------------------------
# Engines for behaviour tests. The decoder is a real function of the prompt (discs around the
# click, radius per output, IoU from the click position); the encoder's features are not used
# by it. These test the AMG / prompt logic; engine numerics are tested with the exported models.
# ---------------------------------------------------------------------------------------------
class FeatureEncoder:
    """Encoder engine: image [1, 3, 1024, 1024] → per-channel means broadcast into SAM2's feature shapes."""

    source = "feature-encoder"
    inputs = {"image": TensorSpec("image", (1, 3, 1024, 1024), F32)}
    outputs = {n: TensorSpec(n, s, F32) for n, s in FEATURES.items()}

    def __init__(self) -> None:
        self.calls = 0

    def run(self, feeds, output_names=None):
        self.calls += 1
        x = feeds["image"]
        assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32
        m = float(x.mean())
        names = output_names if output_names else list(self.outputs)
        return {n: np.full(FEATURES[n], m, np.float32) for n in names}


class DiscDecoder:
    """Decoder engine: logits = (r_m - distance to the first point) * gain_m at 256², m = 0..2."""

    source = "disc-decoder"

    def __init__(self, radii=(6.0, 18.0, 40.0), gains=(20.0, 12.0, 0.5), labels_dtype=np.float32, extra_inputs=()):
        self.radii, self.gains = radii, gains
        self.inputs = {n: TensorSpec(n, s, F32) for n, s in FEATURES.items()}
        self.inputs["point_coords"] = TensorSpec("point_coords", ("B", "P", 2), F32)
        self.inputs["point_labels"] = TensorSpec("point_labels", ("B", "P"), np.dtype(labels_dtype))
        for name, spec in extra_inputs:
            self.inputs[name] = spec
        self.outputs = {
            "low_res_masks": TensorSpec("low_res_masks", ("B", 3, 256, 256), F32),
            "iou_predictions": TensorSpec("iou_predictions", ("B", 3), F32),
        }
        self.feeds: list[dict] = []

    def run(self, feeds, output_names=None):
        from gear_edge.engines import check_feeds

        feeds = check_feeds(self.source, self.inputs, feeds)
        self.feeds.append(feeds)
        c = feeds["point_coords"][:, 0, :] / 4.0  # 1024 → 256 grid
        yy, xx = np.mgrid[0:256, 0:256].astype(np.float32) + 0.5
        d = np.hypot(xx[None] - c[:, 0, None, None], yy[None] - c[:, 1, None, None])
        logits = np.stack([(r - d) * g for r, g in zip(self.radii, self.gains)], axis=1).astype(np.float32)
        sign = np.where(feeds["point_labels"][:, :1] > 0.5, 1.0, -1.0).astype(np.float32)
        logits *= sign[:, :, None, None]
        iou = np.stack(
            [0.75 + 0.25 * np.abs(np.sin(c[:, 0] * (0.05 + 0.02 * m) + c[:, 1] * 0.031 * (m + 1)))
             for m in range(len(self.radii))],
            axis=1,
        ).astype(np.float32)
        if "multimask_output" in feeds and not bool(feeds["multimask_output"].reshape(-1)[0]):
            logits, iou = logits[:, :1], iou[:, :1]
        out = {"low_res_masks": logits, "iou_predictions": iou}
        return {k: out[k] for k in (output_names or out)}


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return skimage.data.astronaut()[::2, ::3].copy()  # 256 x 171


# ---------------------------------------------------------------------------------------------
# grids and crop boxes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 16, 32])
def test_point_grid_cell_centres_x_fastest(n):
    g = build_point_grid(n)
    assert g.shape == (n * n, 2) and g.dtype == np.float64
    centres = (np.arange(n) + 0.5) / n
    np.testing.assert_allclose(g[:n, 0], centres, atol=1e-15)  # first row: x varies
    np.testing.assert_allclose(g[::n, 1], centres, atol=1e-15)  # first column: y varies
    assert np.all(g[:n, 1] == g[0, 1])


def test_layer_grids_downscale():
    grids = build_all_layer_point_grids(32, 2, 2)
    assert [len(g) for g in grids] == [32 * 32, 16 * 16, 8 * 8]
    assert [len(g) for g in build_all_layer_point_grids(7, 1, 3)] == [49, 4]  # int(7 / 3) = 2 a side
    with pytest.raises(InputError, match="points_per_side"):
        build_point_grid(0)
    with pytest.raises(InputError, match="crop layer 2"):
        build_all_layer_point_grids(3, 2, 2)


@pytest.mark.parametrize("size", [(512, 512), (400, 600), (1080, 1920), (37, 1001)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_crop_boxes_cover_image_and_overlap(size, layers):
    h, w = size
    boxes, idx = generate_crop_boxes(size, layers, 512 / 1500)
    assert boxes[0] == [0, 0, w, h] and idx[0] == 0
    for layer in range(1, layers + 1):
        mine = [b for b, i in zip(boxes, idx) if i == layer]
        assert len(mine) == 4**layer
        cover = np.zeros((h, w), dtype=np.int32)
        for x0, y0, x1, y1 in mine:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            cover[y0:y1, x0:x1] += 1
        assert cover.min() >= 1  # crops tile the image
        assert cover.max() >= 2  # ... with overlap


@pytest.mark.parametrize("pps, layers, factor", [(32, 0, 1), (16, 2, 2), (10, 1, 3), (32, 3, 2)])
def test_grids_and_crops_equal_sam2(pps, layers, factor):
    amg = _sam2_amg()
    for a, b in zip(build_all_layer_point_grids(pps, layers, factor), amg.build_all_layer_point_grids(pps, layers, factor)):
        np.testing.assert_array_equal(a, b)
    for size in [(512, 512), (400, 600), (1080, 1920), (37, 1001)]:
        for ratio in (512 / 1500, 0.25):
            assert generate_crop_boxes(size, layers, ratio) == amg.generate_crop_boxes(size, layers, ratio)


# ---------------------------------------------------------------------------------------------
# NMS
# ---------------------------------------------------------------------------------------------
def literal_torchvision_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    """torchvision's CPU kernel loop transcribed scalar by scalar (float32 maths, stable order)."""
    b = boxes.astype(np.float32)
    x1, y1, x2, y2 = b.T
    areas = (x2 - x1) * (y2 - y1)
    order = sorted(range(len(scores)), key=lambda i: (-np.inf if np.isnan(scores[i]) else -scores[i], i))
    suppressed = np.zeros(len(scores), bool)
    keep = []
    with np.errstate(invalid="ignore"):
        for _i, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            for j in order[_i + 1 :]:
                if suppressed[j]:
                    continue
                w = max(np.float32(0), min(x2[i], x2[j]) - max(x1[i], x1[j]))
                h = max(np.float32(0), min(y2[i], y2[j]) - max(y1[i], y1[j]))
                inter = np.float32(w * h)
                ovr = np.float32(inter / np.float32(areas[i] + areas[j] - inter))
                if float(ovr) > thr:
                    suppressed[j] = True
    return np.array(keep, dtype=np.int64)


def random_boxes(rng, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    xy = rng.integers(0, 200, (n, 2))
    wh = rng.integers(0, 80, (n, 2))
    wh[rng.random(n) < 0.05] = 0  # zero-area boxes: 0/0 never suppresses
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    if ties:
        scores = np.round(scores * 4).astype(np.float32) / 4
    return boxes, scores


@pytest.mark.parametrize(
    "n, ties, thr",
    [(0, False, 0.7), (1, False, 0.7), (50, False, 0.7), (300, True, 0.7), (200, True, 0.0), (120, False, 1.0)],
)
def test_nms_equals_literal_torchvision_loop(n, ties, thr):
    rng = np.random.default_rng(n)
    boxes, scores = random_boxes(rng, n, ties)
    np.testing.assert_array_equal(box_nms(boxes, scores, thr), literal_torchvision_nms(boxes, scores, thr))


def test_nms_hand_cases():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    # IoU(0,1) = 81 / 119 = 0.68: kept at 0.7, suppressed at 0.6; box 3 duplicates box 0.
    assert box_nms(boxes, np.float32([0.9, 0.8, 0.7, 0.9]), 0.7).tolist() == [0, 1, 2]
    assert box_nms(boxes, np.float32([0.9, 0.8, 0.7, 0.95]), 0.6).tolist() == [3, 2]
    # NaN scores sort first (torch's descending order)
    assert box_nms(boxes[:3], np.float32([0.1, np.nan, 0.5]), 0.99).tolist() == [1, 2, 0]
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        box_nms(np.zeros((3, 3)), np.zeros(3), 0.5)
    with pytest.raises(InputError, match="scores"):
        box_nms(np.zeros((3, 4)), np.zeros(2), 0.5)


# n > 1000 takes torchvision's other (per-class) path
@pytest.mark.parametrize("n, ties", [(40, False), (400, True), (1500, True), (1500, False)])
def test_nms_equals_torchvision_batched_nms(n, ties):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops", reason="torchvision (the [export] extra) is not installed")
    rng = np.random.default_rng(7 + n)
    boxes, scores = random_boxes(rng, n, ties)
    for thr in (0.7, 0.3):
        idxs = torch.zeros(n, dtype=torch.int64)
        ref = ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), idxs, thr).numpy()
        ours = box_nms(boxes, scores, thr)
        if n <= 1000:  # torchvision's coordinate-trick path: one stable-sorted nms
            np.testing.assert_array_equal(ours, ref)
        else:  # its per-class path re-sorts the kept set with an unstable sort: ties may come in any order
            assert sorted(ours.tolist()) == sorted(ref.tolist())
            np.testing.assert_array_equal(scores[ours], scores[ref])


# ---------------------------------------------------------------------------------------------
# pre-processing
# ---------------------------------------------------------------------------------------------
def test_preprocess_shape_and_normalisation():
    img = np.zeros((5, 7, 3), np.uint8)
    img[..., 0] = 255
    x = preprocess(img)
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[0, :, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)


@pytest.mark.parametrize("n_in, n_out", [(512, 1024), (1080, 1024), (1920, 1024), (3, 1024), (1024, 1024), (1500, 7)])
def test_aa_taps_are_normalised(n_in, n_out):
    idx, w = aa_bilinear_taps(n_in, n_out)
    assert idx.min() >= 0 and idx.max() < n_in
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("h, w", [(512, 512), (400, 600), (1080, 1920), (3, 5), (2000, 700), (1024, 1024)])
def test_resize_matches_torch_antialias(h, w):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(h).random((h, w, 3), dtype=np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(2, 0, 1)[None], size=(1024, 1024), mode="bilinear", align_corners=False, antialias=True
    )[0].permute(1, 2, 0).numpy()
    assert np.abs(resize_antialias(x, 1024, 1024) - ref).max() <= 5e-7


@pytest.mark.parametrize("h, w", [(512, 512), (300, 451), (1080, 1920)])
def test_preprocess_matches_sam2_transforms(h, w):
    transforms = pytest.importorskip("sam2.utils.transforms", reason="sam2 (the [export] extra) is not installed")
    img = np.random.default_rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = transforms.SAM2Transforms(resolution=1024, mask_threshold=0.0)(img)[None].numpy()
    assert np.abs(preprocess(img) - ref).max() <= 2e-6


BAD_IMAGES = [
    (np.zeros((8, 8), np.uint8), "H x W x 3"),
    (np.zeros((8, 8, 4), np.uint8), "H x W x 3"),
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 3), np.uint16), "uint8"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    (np.zeros((8, 0, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
]


@pytest.mark.parametrize("image, match", BAD_IMAGES)
def test_bad_images_raise_input_error(image, match):
    with pytest.raises(InputError, match=match):
        preprocess(image)
    amg = AutomaticMaskGenerator(FeatureEncoder(), DiscDecoder(), points_per_side=2)
    with pytest.raises(InputError, match=match):
        amg.generate(image)
    with pytest.raises(InputError, match=match):
        segment_prompts(image, points=[[1, 1]], encoder=FeatureEncoder(), decoder=DiscDecoder())


def test_strided_image_is_accepted(photo):
    view = photo[:, ::-1]  # negative stride
    np.testing.assert_array_equal(preprocess(view), preprocess(np.ascontiguousarray(view)))


def test_engine_mismatch_is_named_at_construction():
    dec = DiscDecoder()
    del dec.inputs["point_labels"]
    with pytest.raises(InputError, match="point_labels"):
        AutomaticMaskGenerator(FeatureEncoder(), dec)
    dec = DiscDecoder(extra_inputs=[("other_feature", TensorSpec("other_feature", (1, 8), F32))])
    with pytest.raises(InputError, match="other_feature"):
        AutomaticMaskGenerator(FeatureEncoder(), dec)
    with pytest.raises(InputError, match="Engine"):
        AutomaticMaskGenerator(object(), DiscDecoder())
    with pytest.raises(InputError, match="exactly one"):
        AutomaticMaskGenerator(FeatureEncoder(), DiscDecoder(), points_per_side=None)


def test_decoder_multimask_interfaces(photo):
    flag = TensorSpec("multimask_output", (1,), np.dtype(np.bool_))
    switch = DiscDecoder(extra_inputs=[("multimask_output", flag)])
    amg = AutomaticMaskGenerator(FeatureEncoder(), switch, points_per_side=4, multimask_output=False,
                                 pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    assert len(amg.generate_masks(photo)) == 16  # one mask per prompt
    assert switch.feeds[-1]["multimask_output"].tolist() == [False]
    all4 = DiscDecoder(radii=(12.0, 6.0, 18.0, 40.0), gains=(20.0, 20.0, 12.0, 0.5))  # sam2's 4 mask tokens
    all4.outputs["low_res_masks"] = TensorSpec("low_res_masks", ("B", 4, 256, 256), F32)
    seg = PromptSegmenter(FeatureEncoder(), all4)
    seg.set_image(photo)
    from gear_edge.reference.postprocess import bilinear

    h, w = photo.shape[:2]
    single = seg.predict(points=[[60, 60]], multimask_output=False)[0]
    multi = seg.predict(points=[[60, 60]], multimask_output=True)[0]
    out = all4.run(all4.feeds[-1])
    best = 1 + int(np.argmax(out["iou_predictions"][0, 1:]))
    for region, token in ((single, 0), (multi, best)):  # single: token 0; multimask: best of tokens 1..3
        expected = gm.encode(np.asfortranarray(bilinear(out["low_res_masks"][0, token], h, w) > 0))
        assert region.rle == expected
        assert region.score == pytest.approx(float(out["iou_predictions"][0, token]))


# ---------------------------------------------------------------------------------------------
# small-region clean-up
# ---------------------------------------------------------------------------------------------
def test_remove_small_regions_holes_and_islands():
    m = np.zeros((40, 40), bool)
    m[5:30, 5:30] = True
    m[10:12, 10:12] = False  # 4-px hole
    m[35:37, 35:37] = True  # 4-px island
    filled, changed = remove_small_regions(m, 5, "holes")
    assert changed and filled[10:12, 10:12].all() and filled[35:37, 35:37].all()
    cleaned, changed = remove_small_regions(filled, 5, "islands")
    assert changed and not cleaned[35:37, 35:37].any() and cleaned[5:30, 5:30].all()
    same, changed = remove_small_regions(cleaned, 5, "islands")
    assert not changed and same is cleaned
    tiny = np.zeros((9, 9), bool)
    tiny[1, 1] = tiny[5:7, 5:7] = True  # every island small: the largest stays
    kept, _ = remove_small_regions(tiny, 100, "islands")
    assert kept.sum() == 4 and kept[5:7, 5:7].all()


def test_remove_small_regions_equals_sam2(real_masks):
    amg = _sam2_amg()
    for masks in real_masks.values():
        for m in masks[:8]:
            for mode in ("holes", "islands"):
                for thr in (10, 200):
                    ours, c1 = remove_small_regions(m, thr, mode)
                    ref, c2 = amg.remove_small_regions(m, thr, mode)
                    assert c1 == c2
                    np.testing.assert_array_equal(ours, ref)


# ---------------------------------------------------------------------------------------------
# AMG behaviour
# ---------------------------------------------------------------------------------------------
def sam2_box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_amg_outputs_are_consistent(photo):
    enc, dec = FeatureEncoder(), DiscDecoder()
    amg = AutomaticMaskGenerator(enc, dec, points_per_side=8, points_per_batch=20)
    timings: dict = {}
    regions = amg.generate(photo, timings)
    assert enc.calls == 1 and len(dec.feeds) == 4  # 64 points in batches of 20
    assert [f["point_coords"].shape[0] for f in dec.feeds] == [20, 20, 20, 4]
    assert len(regions) >= 5
    assert [r.id for r in regions] == list(range(len(regions)))
    areas = [r.area for r in regions]
    assert areas == sorted(areas, reverse=True)
    rles = [r.rle for r in regions]
    np.testing.assert_array_equal(gm.area(rles), areas)
    np.testing.assert_array_equal(gm.to_bbox(rles), [r.bbox for r in regions])
    assert all(r.rle["size"] == list(photo.shape[:2]) for r in regions)
    assert all(r.score > np.float32(0.8) and r.stability >= np.float32(0.95) for r in regions)
    boxes = [np.array([x, y, x + w - 1, y + h - 1]) for x, y, w, h in (r.bbox for r in regions)]
    assert max(sam2_box_iou(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]) <= 0.7
    for key in ("preprocess_ms", "encoder_ms", "decoder_ms", "postprocess_ms", "nms_ms", "total_ms"):
        assert timings[key] >= 0
    assert len(timings["decoder_batches_ms"]) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_amg_masks_are_the_decoder_masks(photo, backend):
    """Every kept mask is, pixel for pixel, the up-sampled logit map of one (point, output) pair."""
    from gear_edge.reference.postprocess import bilinear

    dec = DiscDecoder()
    amg = AutomaticMaskGenerator(FeatureEncoder(), dec, points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    with use_backend(backend):
        data = amg.generate_masks(photo)
    h, w = photo.shape[:2]
    coords = np.concatenate([f["point_coords"] for f in dec.feeds])
    ones = np.ones((len(coords), 1), np.float32)
    logits = dec.run({**dec.feeds[0], "point_coords": coords, "point_labels": ones})["low_res_masks"]
    pts = (build_point_grid(6) * [w, h]).astype(np.float32)
    for k in range(len(data)):
        i = int(np.flatnonzero((pts == data.points[k]).all(axis=1))[0])
        candidates = [gm.encode(np.asfortranarray(bilinear(logits[i, m], h, w) > 0)) for m in range(3)]
        assert data.rles[k] in candidates


def test_amg_filters_follow_thresholds(photo):
    dec = DiscDecoder()
    def amg(iou: float, stability: float) -> AutomaticMaskGenerator:
        return AutomaticMaskGenerator(FeatureEncoder(), dec, points_per_side=8, pred_iou_thresh=iou,
                                      stability_score_thresh=stability, box_nms_thresh=1.0)

    everything = amg(0.0, 0.0).generate_masks(photo)
    assert len(everything) == 64 * 3  # nothing filtered, nothing suppressed
    assert len(amg(0.9, 0.0).generate_masks(photo)) == int((everything.iou > np.float32(0.9)).sum())
    assert len(amg(0.0, 0.9).generate_masks(photo)) == int((everything.stability >= np.float32(0.9)).sum())
    single = AutomaticMaskGenerator(FeatureEncoder(), DiscDecoder(), points_per_side=4, multimask_output=False)
    with pytest.raises(InputError, match="no 'multimask_output' input"):  # a fixed 3-mask decoder
        single.generate_masks(photo)


def test_amg_crop_layers_and_cleanup(photo):
    enc = FeatureEncoder()
    amg = AutomaticMaskGenerator(enc, DiscDecoder(), points_per_side=8, crop_n_layers=1, min_mask_region_area=30)
    timings: dict = {}
    data = amg.generate_masks(photo, timings)
    assert enc.calls == 5  # whole image + 4 crops, one encoder run each
    assert "cleanup_ms" in timings and len(data) > 0
    crops = {tuple(c) for c in data.crop_boxes.tolist()}
    assert len(crops) > 1
    import cv2

    for rle in data.rles:  # no hole below the area survives, nor an island unless it is the only one
        m = gm.decode(rle)
        assert not remove_small_regions(m, 30, "holes")[1]
        n, _, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        assert n == 2 or stats[1:, cv2.CC_STAT_AREA].min() >= 30
    h, w = photo.shape[:2]
    boxes, _ = generate_crop_boxes((h, w), 1, 512 / 1500)
    for cb, b in zip(data.crop_boxes, data.boxes):
        if tuple(cb) == (0, 0, w, h):
            continue
        near_crop = np.abs(b - cb) <= 20
        near_img = np.abs(b - np.array([0, 0, w, h])) <= 20
        assert not (near_crop & ~near_img).any()


def test_postprocess_small_regions_prefers_unchanged_masks():
    h, w = 30, 30
    a = np.zeros((h, w), bool)
    a[2:20, 2:20] = True
    b = a.copy()
    b[8:10, 8:10] = False  # same object with a small hole
    c = np.zeros((h, w), bool)
    c[22:28, 22:28] = True
    rles = gm.encode(np.stack([b, a, c]))
    data = MaskSet(
        rles=rles, boxes=np.zeros((3, 4), np.float32), bbox=gm.to_bbox(rles), areas=gm.area(rles),
        iou=np.float32([0.99, 0.9, 0.95]), stability=np.ones(3, np.float32), points=np.zeros((3, 2), np.float32),
        crop_boxes=np.zeros((3, 4), np.int64),
    )
    out = postprocess_small_regions(data, 10, 0.7)
    assert len(out) == 2  # the filled copy of b duplicates a; a (unchanged) wins
    assert out.rles[0] == rles[1] and out.rles[1] == rles[2]


# ---------------------------------------------------------------------------------------------
# prompts
# ---------------------------------------------------------------------------------------------
def test_prompts_feed_sam2_coordinates_and_box_corners(photo):
    h, w = photo.shape[:2]
    dec = DiscDecoder(labels_dtype=np.int32)
    seg = PromptSegmenter(FeatureEncoder(), dec)
    seg.set_image(photo)
    regions = seg.predict(points=[[50, 60], [100, 20]])
    assert [r.id for r in regions] == [0, 1]
    c = dec.feeds[-1]["point_coords"]
    np.testing.assert_allclose(c[:, 0], [[50 / w * 1024, 60 / h * 1024], [100 / w * 1024, 20 / h * 1024]], rtol=1e-6)
    assert dec.feeds[-1]["point_labels"].dtype == np.int32
    regions = seg.predict(
        points=[[[60, 70], [10, 10]]], point_labels=[[1, 0]], boxes=[[40, 50, 30, 40]], multimask_output=True
    )
    c, lab = dec.feeds[-1]["point_coords"], dec.feeds[-1]["point_labels"]
    np.testing.assert_allclose(c[0, :2], [[40 / w * 1024, 50 / h * 1024], [70 / w * 1024, 90 / h * 1024]], rtol=1e-6)
    assert lab.tolist() == [[2, 3, 1, 0]]
    assert len(regions) == 1 and regions[0].area > 0


def test_prompt_mask_is_the_best_candidate(photo):
    from gear_edge.reference.postprocess import bilinear

    dec = DiscDecoder()
    h, w = photo.shape[:2]
    regions = segment_prompts(photo, points=[[80, 40]], encoder=FeatureEncoder(), decoder=dec)
    out = dec.run(dec.feeds[-1])
    best = int(np.argmax(out["iou_predictions"][0]))
    expected = gm.encode(np.asfortranarray(bilinear(out["low_res_masks"][0, best], h, w) > 0))
    assert regions[0].rle == expected and regions[0].score == pytest.approx(float(out["iou_predictions"][0, best]))
    # a background click inverts the disc decoder's logits
    neg = segment_prompts(
        photo, points=[[80, 40]], encoder=FeatureEncoder(), decoder=dec, point_labels=[0], multimask_output=True
    )
    assert neg[0].area > h * w // 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "points and/or boxes"),
        ({"points": [[1, 2, 3]]}, r"\[N, 2\]"),
        ({"points": [[np.nan, 2]]}, "NaN"),
        ({"points": [[1, 2]], "point_labels": [[1, 1]]}, "point_labels must be shaped"),
        ({"points": [[1, 2]], "point_labels": [5]}, "foreground"),
        ({"point_labels": [1]}, "without points"),
        ({"boxes": [[0, 0, -1, 5]]}, "non-negative"),
        ({"boxes": [[0, 0, 5]]}, "XYWH"),
        ({"points": [[1, 2], [3, 4]], "boxes": [[0, 0, 5, 5]]}, "one box per object"),
    ],
)
def test_bad_prompts_raise_input_error(photo, kwargs, match):
    seg = PromptSegmenter(FeatureEncoder(), DiscDecoder())
    with pytest.raises(InputError, match="set_image"):
        seg.predict(points=[[1, 1]])
    seg.set_image(photo)
    with pytest.raises(InputError, match=match):
        seg.predict(**kwargs)


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
def test_factory_builds_the_amg_from_a_config(tmp_path, photo):
    torch = pytest.importorskip("torch", reason="exporting the test models to ONNX needs torch")
    from gear_edge.config import load_config
    from gear_edge.segment.base import Segmenter
    from gear_edge.segment.factory import sam2_segmenter_from_config
    from tests.sam2_structured import StructuredCore, export_structured_decoder, label_maps

    class PooledEncoder(torch.nn.Module):  # image → SAM2-shaped features (pooled 1x1 projections)
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ModuleList(torch.nn.Conv2d(3, c, 1) for c in (256, 32, 64))

        def forward(self, image):
            pool = torch.nn.functional.adaptive_avg_pool2d
            return self.p[0](pool(image, 64)), self.p[1](pool(image, 256)), self.p[2](pool(image, 128))

    torch.onnx.export(PooledEncoder(), (torch.zeros(1, 3, 1024, 1024),), str(tmp_path / "enc.onnx"), input_names=["image"],
                      output_names=list(FEATURES), opset_version=17, dynamo=False)
    export_structured_decoder(StructuredCore(label_maps(photo)).eval(), tmp_path / "dec.onnx")
    cfg = tmp_path / "robot.toml"
    cfg.write_text(
        '[runtime]\nthreads = 1\nallow_unverified_models = true\n[segment]\nkind = "sam2"\n[segment.sam2]\nencoder = "enc.onnx"\ndecoder = "dec.onnx"\n'
        'points_per_side = 8\npred_iou_thresh = 0.75\n[engines]\nbackend = "onnxruntime"\nproviders = ["cpu"]\n'
    )
    seg = sam2_segmenter_from_config(load_config(cfg))
    assert isinstance(seg, Segmenter) and isinstance(seg, AutomaticMaskGenerator)
    assert seg.point_grids[0].shape == (64, 2) and seg.pred_iou_thresh == 0.75 and seg.threads == 1
    regions = seg.segment(photo)
    assert regions and [r.id for r in regions] == list(range(len(regions)))
    (tmp_path / "dec.onnx").unlink()
    with pytest.raises(InputError, match=r"\[segment.sam2\] decoder = .*does not exist"):
        sam2_segmenter_from_config(load_config(cfg))
