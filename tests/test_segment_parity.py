"""Proof, layer 2: our AutomaticMaskGenerator vs sam2's SAM2AutomaticMaskGenerator, same decoder outputs.

Both sides run a random-initialised SAM2.1-tiny (``export.sam2_onnx.build_model``) whose prompt
decoder is replaced by the structured decoder of ``tests/sam2_structured.py`` (masks from a real
segmentation of the photo, so dozens of masks survive the filters). sam2 calls it as a torch module through its own predictor; we call the
same function exported to ONNX through ``OnnxEngine`` (checked bit-identical to the torch module
first), with the encoder exported from the same sam2 model. The structured decoder uses every
prompt point, boxes and the encoder's features (checked to change the masks), so the encoder →
decoder wiring and the prompt encoding are exercised. On real photos the two mask sets must agree:
count within 2 %, masks paired in order — both in the generators' own output order and both sorted
by area (the Region order) — with every IoU >= 0.9 (median >= 0.98), >= 90 % bit-identical,
predicted IoUs and stability scores equal.

One photo runs by default (the proof on every test run), and the crop-layer / clean-up variant at
a small grid; the other photos and the full-size crop variant are marked slow. ``GEAR_EDGE_TEST_CACHE=DIR`` keeps the exported encoder across runs.
"""

from __future__ import annotations

import numpy as np
import pytest

sam2 = pytest.importorskip(
    "sam2", reason="sam2==1.1.0 (the [export] extra) is not installed: the parity proof runs sam2's own AMG"
)
torch = pytest.importorskip("torch", reason="torch (the [export] extra) is not installed")
pytest.importorskip("torchvision", reason="torchvision (pulled by sam2) is not installed")

import gear_edge.masks as gm  # noqa: E402
from gear_edge.engines import OnnxEngine  # noqa: E402
from gear_edge.segment import AutomaticMaskGenerator  # noqa: E402
from tests.sam2_structured import StructuredCore, export_structured_decoder, install_into_sam2, label_maps  # noqa: E402

IMAGES = ("astronaut", "coffee", "chelsea")
SEED = 0


@pytest.fixture(scope="module")
def sam2_model():
    from export.sam2_onnx import build_model

    torch.set_num_threads(2)
    return build_model("tiny", random_init=True, seed=SEED)


def _cache_key() -> str:
    import hashlib
    import json
    from pathlib import Path

    from export.sam2_onnx import versions

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in ("export/sam2_onnx.py", "export/onnx_graph.py"):
        h.update((root / f).read_bytes())
    h.update(json.dumps([versions(), SEED]).encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def encoder(sam2_model, tmp_path_factory):
    """The same model's image encoder, exported by export/sam2_onnx.py (its ORT-vs-torch check is layer 1's).

    With ``GEAR_EDGE_TEST_CACHE`` the file is kept there (keyed by the exporter's code and the
    package versions) and re-used when its manifest still verifies it."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from export.sam2_onnx import export_encoder
    from gear_edge.errors import InputError
    from gear_edge.manifest import Manifest

    cache_root = os.environ.get("GEAR_EDGE_TEST_CACHE")
    cached = Path(cache_root) / f"sam2-parity-encoder-{_cache_key()}" if cache_root else None
    if cached is not None:
        try:
            Manifest.load(cached / "encoder.toml").verify(cached / "encoder.onnx")
            return OnnxEngine(cached / "encoder.onnx", threads=2)
        except (InputError, OSError):
            pass
    path = tmp_path_factory.mktemp("sam2") / "encoder.onnx"
    export_encoder(sam2_model, path, check=False)
    if cached is not None:  # publish atomically; a concurrent run may win the rename
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cached.parent))
        for f in path.parent.iterdir():
            shutil.copy2(f, staging / f.name)
        shutil.rmtree(cached, ignore_errors=True)
        try:
            staging.rename(cached)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return OnnxEngine(path, threads=2)


@pytest.fixture(scope="module")
def photos():
    import skimage.data

    return {n: getattr(skimage.data, n)() for n in IMAGES}


def sam2_reference(model, core, image, **kwargs) -> tuple[list[dict], list[dict]]:
    """sam2's generator with its decoder replaced by ``core``; annotations as COCO RLE, (sorted by
    area, in sam2's own output order)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.utils.amg import area_from_rle, coco_encode_rle

    install_into_sam2(model, core)
    min_area = kwargs.pop("min_mask_region_area", 0)
    gen = SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", **kwargs)
    if not min_area:
        anns = gen.generate(image)
    else:  # sam2 1.1.0 never calls its full-resolution clean-up itself; apply it as segment-anything does
        data = gen._generate_masks(image)
        nms_thresh = max(gen.box_nms_thresh, gen.crop_nms_thresh)
        data = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, min_area, nms_thresh)
        anns = [
            {"segmentation": coco_encode_rle(r), "area": area_from_rle(r), "predicted_iou": float(i),
             "stability_score": float(s)}
            for r, i, s in zip(data["rles"], data["iou_preds"], data["stability_score"])
        ]
    return sorted(anns, key=lambda a: -a["area"]), anns  # stable: ties keep sam2's order, as ours do


def run_ours(gen: AutomaticMaskGenerator, image: np.ndarray):
    """(masks in the generator's own output order, the Regions ``generate`` returns) from one run."""
    data = gen.generate_masks(image)
    return data, gen.to_regions(data)


def compare(ours, theirs, ours_native=None, theirs_native=None) -> dict:
    """Pairs masks position by position: the Regions (area order) and, if given, the native orders."""
    n = min(len(ours), len(theirs))
    a = [r.rle for r in ours[:n]]
    b = [t["segmentation"] for t in theirs[:n]]
    paired = np.diag(gm.iou(a, b)) if n else np.zeros(0)
    stats = {
        "ours": len(ours),
        "sam2": len(theirs),
        "count_diff_pct": 100.0 * (len(ours) - len(theirs)) / max(len(theirs), 1),
        "median_iou": float(np.median(paired)) if n else float("nan"),
        "min_iou": float(paired.min()) if n else float("nan"),
        "identical": int(sum(x["counts"] == y["counts"] for x, y in zip(a, b))),
        "max_score_diff": max((abs(r.score - t["predicted_iou"]) for r, t in zip(ours, theirs)), default=0.0),
        "max_stability_diff": max((abs(r.stability - t["stability_score"]) for r, t in zip(ours, theirs)), default=0.0),
    }
    if ours_native is not None:
        m = min(len(ours_native), len(theirs_native))
        na = ours_native.rles[:m]
        nb = [t["segmentation"] for t in theirs_native[:m]]
        native = np.diag(gm.iou(na, nb)) if m else np.zeros(0)
        stats["native_order_median_iou"] = float(np.median(native)) if m else float("nan")
        stats["native_order_identical"] = int(sum(x["counts"] == y["counts"] for x, y in zip(na, nb)))
        stats["native_max_score_diff"] = max(
            (abs(float(s) - t["predicted_iou"]) for s, t in zip(ours_native.iou, theirs_native)), default=0.0)
    return stats


def check(stats: dict, min_identical: float = 0.9, min_masks: int = 24) -> None:
    """Counts within 2 %, every paired mask IoU >= 0.9 (median >= 0.98), at least ``min_identical`` of
    them bit-identical, scores and stability scores equal, the same also in the generators' own order."""
    assert stats["sam2"] >= min_masks, f"too few masks survive for a meaningful proof: {stats}"
    assert abs(stats["ours"] - stats["sam2"]) <= 0.02 * stats["sam2"], stats
    assert stats["median_iou"] >= 0.98, stats
    assert stats["min_iou"] >= 0.9, stats
    assert stats["identical"] >= min_identical * min(stats["ours"], stats["sam2"]), stats
    assert stats["max_score_diff"] <= 1e-6, stats
    assert stats["max_stability_diff"] <= 1e-3, stats
    if "native_order_median_iou" in stats:  # same order before the area sort too
        assert stats["native_order_median_iou"] >= 0.98, stats
        assert stats["native_order_identical"] >= min_identical * min(stats["ours"], stats["sam2"]), stats
        assert stats["native_max_score_diff"] <= 1e-6, stats


def _prompts(rng, b: int, p: int, box: bool) -> tuple[np.ndarray, np.ndarray]:
    """Model-space prompts [b, p(+2)]: random clicks with labels 1/0/-1 (padding), optionally a box first."""
    coords = rng.uniform(0, 1024, (b, p, 2)).astype(np.float32)
    labels = rng.choice(np.array([1.0, 1.0, 0.0, -1.0], np.float32), (b, p))
    if box:
        lo = rng.uniform(0, 600, (b, 1, 2)).astype(np.float32)
        corners = np.concatenate([lo, lo + rng.uniform(50, 400, (b, 1, 2)).astype(np.float32)], axis=1)
        coords = np.concatenate([corners, coords], axis=1)
        labels = np.concatenate([np.tile(np.array([[2.0, 3.0]], np.float32), (b, 1)), labels], axis=1)
    return coords, labels


def test_structured_decoder_onnx_equals_torch_and_uses_every_input(photos, tmp_path):
    core = StructuredCore(label_maps(photos["astronaut"])).eval()
    dec = OnnxEngine(export_structured_decoder(core, tmp_path / "dec.onnx"), threads=2)
    rng = np.random.default_rng(0)
    names = ("image_embed", "high_res_feats_0", "high_res_feats_1")
    for b, p, box in ((1, 1, False), (7, 3, False), (64, 1, False), (5, 2, True), (3, 0, True)):
        coords, labels = _prompts(rng, b, p, box)
        feats = {n: rng.standard_normal((1,) + tuple(dec.inputs[n].shape[1:])).astype(np.float32) for n in names}
        out = dec.run({**feats, "point_coords": coords, "point_labels": labels})
        with torch.no_grad():
            logits, iou = core(torch.from_numpy(coords), torch.from_numpy(labels), *(torch.from_numpy(feats[n]) for n in names))
        np.testing.assert_array_equal(out["low_res_masks"], logits.numpy())
        np.testing.assert_array_equal(out["iou_predictions"], iou.numpy())
        # each feature map, each extra point and the box change the masks: the wiring is exercised
        for n in names:
            other = dict(feats, **{n: rng.standard_normal(feats[n].shape).astype(np.float32)})
            changed = dec.run({**other, "point_coords": coords, "point_labels": labels})["low_res_masks"]
            assert ((changed > 0) != (out["low_res_masks"] > 0)).any(), n
    one = dec.run({**feats, "point_coords": coords[:, -1:], "point_labels": np.ones((b, 1), np.float32)})
    two = dec.run({**feats, "point_coords": np.concatenate([coords[:, -1:], coords[:, -1:] * 0 + 500], 1),
                   "point_labels": np.array([[1.0, 0.0]] * b, np.float32)})
    assert ((one["low_res_masks"] > 0) != (two["low_res_masks"] > 0)).any()  # a background point subtracts


class _Recording:
    """An engine that keeps the first feeds it was run with (everything else is the wrapped engine's)."""

    def __init__(self, engine) -> None:
        self._engine, self.first = engine, None

    def run(self, feeds, *args, **kwargs):
        if self.first is None:
            self.first = {k: np.array(v) for k, v in feeds.items()}
        return self._engine.run(feeds, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def check_features_matter(decoder, feeds: dict) -> None:
    """The encoder's features reached the decoder and shape its masks (so the wiring is exercised)."""
    names = ("image_embed", "high_res_feats_0", "high_res_feats_1")
    assert all(np.abs(feeds[n]).max() > 0 for n in names)
    real = decoder.run(feeds)["low_res_masks"] > 0
    for n in names:
        zeroed = decoder.run({**feeds, n: np.zeros_like(feeds[n])})["low_res_masks"] > 0
        assert (zeroed != real).any(), f"{n} does not change the masks"


@pytest.mark.parametrize("name", [IMAGES[0]] + [pytest.param(n, marks=pytest.mark.slow) for n in IMAGES[1:]])
def test_amg_parity_with_sam2(name, photos, sam2_model, encoder, tmp_path, record_property):
    image = photos[name]
    core = StructuredCore(label_maps(image)).eval()
    decoder = _Recording(OnnxEngine(export_structured_decoder(core, tmp_path / "dec.onnx"), threads=2))
    data, ours = run_ours(AutomaticMaskGenerator(encoder, decoder, points_per_side=16), image)
    theirs, native = sam2_reference(sam2_model, core, image, points_per_side=16)
    stats = compare(ours, theirs, data, native)
    record_property("parity", stats)
    print(name, stats)
    check(stats)
    check_features_matter(decoder, decoder.first)


@pytest.mark.parametrize("points, min_masks", [(6, 12), pytest.param(12, 24, marks=pytest.mark.slow)])
def test_amg_parity_with_sam2_crops_and_cleanup(points, min_masks, photos, sam2_model, encoder, tmp_path, record_property):
    """Crop layers (1 + 4 crops, each its own encoder run), crop NMS and the small-region clean-up;
    a 6-point grid by default so CI runs it on every change."""
    image = photos["coffee"]
    core = StructuredCore(label_maps(image)).eval()
    decoder = OnnxEngine(export_structured_decoder(core, tmp_path / "dec.onnx"), threads=2)
    kw = dict(points_per_side=points, crop_n_layers=1, crop_n_points_downscale_factor=2, min_mask_region_area=60)
    data, ours = run_ours(AutomaticMaskGenerator(encoder, decoder, **kw), image)
    theirs, native = sam2_reference(sam2_model, core, image, **kw)
    stats = compare(ours, theirs, data, native)
    record_property("parity", stats)
    print("coffee crops+cleanup", points, stats)
    check(stats, min_masks=min_masks)


def test_prompt_parity_with_sam2_predictor(photos, sam2_model, encoder, tmp_path):
    """Robot clicks and boxes: our PromptSegmenter vs sam2's SAM2ImagePredictor.predict, same decoder."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from gear_edge.segment import PromptSegmenter

    image = photos["chelsea"]
    h, w = image.shape[:2]
    core = StructuredCore(label_maps(image)).eval()
    decoder = OnnxEngine(export_structured_decoder(core, tmp_path / "dec.onnx"), threads=2)
    ours = PromptSegmenter(encoder, decoder)
    ours.set_image(image)
    install_into_sam2(sam2_model, core)
    predictor = SAM2ImagePredictor(sam2_model)
    predictor.set_image(image)
    clicks = np.array([[0.3 * w, 0.5 * h], [0.7 * w, 0.2 * h], [0.52 * w, 0.81 * h], [5.0, 5.0]])
    for labels in (np.ones(len(clicks)), np.array([1, 0, 1, 1])):
        regions = ours.predict(points=clicks, point_labels=labels, multimask_output=True)
        masks, ious, _ = predictor.predict(
            point_coords=clicks[:, None, :], point_labels=labels[:, None], multimask_output=True
        )
        for i, r in enumerate(regions):
            best = int(np.argmax(ious[i]))
            assert r.rle == gm.encode(np.asfortranarray(masks[i, best] > 0)), (i, labels)
            assert r.score == pytest.approx(float(ious[i, best]), abs=1e-6)
    boxes_xywh = np.array([[0.2 * w, 0.3 * h, 0.3 * w, 0.4 * h], [10.0, 20.0, 100.0, 80.0]])
    xyxy = np.concatenate([boxes_xywh[:, :2], boxes_xywh[:, :2] + boxes_xywh[:, 2:]], axis=1)
    multi = np.array([[[0.3 * w, 0.5 * h], [0.35 * w, 0.45 * h], [0.6 * w, 0.6 * h]],
                      [[0.4 * w, 0.4 * h], [0.45 * w, 0.42 * h], [30.0, 40.0]]])
    multi_labels = np.array([[1, 1, 0], [1, 0, 1]], dtype=np.float64)
    for kwargs, theirs in (
        (dict(boxes=boxes_xywh), dict(box=xyxy)),  # boxes alone
        (dict(points=multi, point_labels=multi_labels), dict(point_coords=multi, point_labels=multi_labels)),
        (dict(points=multi, point_labels=multi_labels, boxes=boxes_xywh),  # points inside boxes
         dict(point_coords=multi, point_labels=multi_labels, box=xyxy)),
    ):
        regions = ours.predict(multimask_output=True, **kwargs)
        masks, ious, _ = predictor.predict(multimask_output=True, **theirs)
        masks, ious = masks.reshape(len(regions), -1, h, w), ious.reshape(len(regions), -1)
        for i, r in enumerate(regions):
            best = int(np.argmax(ious[i]))
            assert r.rle == gm.encode(np.asfortranarray(masks[i, best] > 0)), (i, list(kwargs))
            assert r.score == pytest.approx(float(ious[i, best]), abs=1e-6)
    # the prompts matter: a box around one click gives another mask than the click alone
    alone = ours.predict(points=multi[:1, :1], multimask_output=True)[0]
    boxed = ours.predict(points=multi[:1, :1], boxes=np.array([[0.28 * w, 0.48 * h, 0.05 * w, 0.05 * h]]),
                         multimask_output=True)[0]
    assert alone.rle != boxed.rle


@pytest.mark.slow
def test_bench_segment_quick(tmp_path):
    """benchmarks/bench_segment.py runs end to end and writes well-formed JSON (no timing assertions)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_segment.py"), "--quick", "--configs", "default,structured",
         "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=900, cwd=root,
    )
    data = json.loads(out.read_text())
    assert data["settings"]["points_per_side"] == 8 and data["target_met"] is False  # targets are judged at 32 only
    for name in ("default", "structured"):
        res = data["results"][name]
        for side in ("ours", "sam2"):
            for stage in ("end_to_end", "encoder", "decoder_batch", "postprocess", "nms"):
                assert res[side][stage]["n"] >= 1 and res[side][stage]["p50_ms"] >= 0, (name, side, stage)
        assert res["ratio_p50"]["end_to_end"] > 0
    assert data["results"]["structured"]["masks"]["astronaut"]["paired_median_iou"] >= 0.98
