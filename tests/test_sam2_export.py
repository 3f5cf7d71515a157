"""SAM2 → ONNX export (export/sam2_onnx.py), proof layer 1: engine parity with sam2 itself.

One seeded random-initialised SAM2.1-tiny is exported once per session; ONNX Runtime runs the files
and sam2's own ``SAM2ImagePredictor`` (``set_image`` / ``_predict``) is the reference. Tolerances are
``export.sam2_onnx.TOLERANCE`` (max |ort - torch| / max(1, max |torch|) ≤ 1e-4 per output).

Random weights never make the single-mask token stable, so sam2's dynamic multimask fallback would
only ever take one branch. The test model therefore scales the single-mask token's hypernetwork
output (``output_hypernetworks_mlps[0]``, last layer) so that the median stability of a set of
clicks sits at sam2's 0.98 threshold — both branches then occur, and the tests check they do.

Export takes a while on 2 cores; set ``GEAR_EDGE_TEST_CACHE=DIR`` to keep the exported files across
runs (key: sam2 / torch / onnx versions, seed, scale and the hashes of the exporter and this file).
Without it the files go to a per-session temporary directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from export.parity import ParityError, check_close, mask_agreement, merge_agreement, tensor_error
from gear_edge.errors import InputError

_MISSING = [m for m in ("torch", "torchvision", "sam2", "onnx") if importlib.util.find_spec(m) is None]
needs_sam2 = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"{', '.join(_MISSING)} not installed: SAM2 export needs the [export] extra (torch, onnx) and "
    "sam2==1.1.0 (SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0, which pulls torchvision)",
)

# sam2's SAM2Transforms (in every SAM2ImagePredictor) calls torch.jit.script, which torch 2.15 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

SEED = 0
UNIQUE = 16  # distinct prompts per prompt length; larger batches reuse them in a shuffled order
ROOT = Path(__file__).resolve().parent.parent


# ---- export.parity (numpy only: runs everywhere) ------------------------------------------------


def test_tensor_error_is_absolute_below_one_and_relative_above():
    ref = np.array([0.5, -0.25], np.float32)
    assert tensor_error(ref + 1e-3, ref)["error"] == pytest.approx(1e-3, rel=1e-3)
    big = np.array([100.0, -3.0], np.float32)
    err = tensor_error(big + np.array([1.0, 0.0], np.float32), big)
    assert err["max_abs"] == pytest.approx(1.0) and err["scale"] == 100.0 and err["error"] == pytest.approx(0.01)
    assert tensor_error(np.array([np.nan]), np.array([1.0]))["error"] == float("inf")
    with pytest.raises(ValueError, match="shape"):
        tensor_error(np.zeros(3), np.zeros(4))


def test_check_close_names_the_tensor_and_the_numbers():
    ref = np.zeros((2, 3), np.float32)
    assert check_close("dec low_res_masks", ref + 1e-6, ref, 1e-4)["error"] <= 1e-4
    with pytest.raises(ParityError, match=r"dec low_res_masks: .*differs .* by 0\.5.*tolerance 0\.0001"):
        check_close("dec low_res_masks", ref + 0.5, ref, 1e-4)
    with pytest.raises(ParityError, match="shape"):
        check_close("x", np.zeros(2), np.zeros(3), 1e-4)


def test_mask_agreement_counts_degenerate_masks_apart():
    ref = np.full((3, 4, 4), -1.0, np.float32)
    ref[0, :2] = 1.0  # half the mask
    ref[1] = 1.0  # full: degenerate
    test = ref.copy()
    test[0, 2, 0] = 1.0  # one extra pixel: IoU 8 / 9
    stats = mask_agreement(test, ref)
    assert stats["masks"] == 3 and stats["degenerate"] == 2
    assert stats["iou_mean"] == pytest.approx(8 / 9) and stats["iou_min"] == pytest.approx(8 / 9)
    assert stats["logit_max_abs"] == pytest.approx(2.0)
    none = mask_agreement(np.full((2, 4, 4), -1.0), np.full((2, 4, 4), -1.0))
    assert none["iou_mean"] is None and none["degenerate"] == 2
    merged = merge_agreement([stats, none])
    assert merged["masks"] == 5 and merged["degenerate"] == 4 and merged["iou_mean"] == pytest.approx(8 / 9)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx (the [export] extra) is not installed")
def test_fold_shape_computations_keeps_dynamic_axes_and_results(tmp_path):
    """Static Shape → Gather → Concat chains become constants; those of a dynamic axis stay; outputs agree."""
    import onnx
    from onnx import TensorProto, helper

    from export.onnx_graph import fold_shape_computations
    from gear_edge.engines import OnnxEngine

    i64 = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(v)], v))
    nodes = [
        helper.make_node("Shape", ["x"], ["sx"]), i64("i1", [1]), i64("i2", [2]), i64("m1", [-1]),
        helper.make_node("Gather", ["sx", "i1"], ["h"], axis=0),
        helper.make_node("Gather", ["sx", "i2"], ["w"], axis=0),
        helper.make_node("Mul", ["h", "w"], ["hw"]),
        helper.make_node("Concat", ["m1", "hw"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),  # [B, 12]
        helper.make_node("Shape", ["flat"], ["sf"]), i64("i0", [0]),
        helper.make_node("Gather", ["sf", "i0"], ["b"], axis=0),  # the dynamic batch: must stay
        helper.make_node("Concat", ["b", "m1"], ["target2"], axis=0),
        helper.make_node("Reshape", ["flat", "target2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 12])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = tmp_path / "before.onnx"
    onnx.save(model, before)
    assert fold_shape_computations(model) >= 3
    kinds = [n.op_type for n in model.graph.node]
    assert kinds.count("Shape") == 1 and kinds.count("Gather") == 1 and "Mul" not in kinds
    after = tmp_path / "after.onnx"
    onnx.save(model, after)
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    a = OnnxEngine(before, manifest=None).run({"x": x})["y"]
    b = OnnxEngine(after, manifest=None).run({"x": x})["y"]
    np.testing.assert_array_equal(a, b)
    assert b.shape == (2, 12)


# ---- the command line, fp16 / int8 (slow; before the session fixtures, see its docstring) ----------


@needs_sam2
@pytest.mark.slow
def test_fp16_int8_report_via_the_command_line(tmp_path, capsys):
    """``python -m export.sam2_onnx --precision fp32 fp16 int8`` on photos: int8 calibrated on some,
    all reported on others. fp16 must keep 1 IoU point when the masks say anything; int8 is reported.

    Runs in a subprocess (the real entry point), placed before the tests that hold the session's
    engines, so its ~9 GB peak is not added to theirs."""
    import subprocess
    import sys

    import cv2

    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the [dev] extra) provides the photos")
    from export.sam2_quantize import FP16_MIN_IOU
    from gear_edge.engines import OnnxEngine

    calib, evaluation = tmp_path / "calib", tmp_path / "eval"
    for folder, names in ((calib, ("rocket", "immunohistochemistry", "coins")), (evaluation, ("astronaut", "coffee"))):
        folder.mkdir()
        for n in names:
            img = getattr(skimage_data, n)()
            img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
            cv2.imwrite(str(folder / f"{n}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "export.sam2_onnx", "--random-init", "--seed", "0", "--out", str(out), "--threads", "2",
         "--precision", "fp32", "fp16", "int8", "--calib-dir", str(calib), "--eval-dir", str(evaluation),
         "--points-per-side", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ONNX Runtime vs sam2" in proc.stdout and "fp16:" in proc.stdout and "int8:" in proc.stdout
    report = json.loads((out / "sam2.1_hiera_tiny-random-s0.report.json").read_text())
    assert report["calibration_images"] == ["coins.png", "immunohistochemistry.png", "rocket.png"]
    assert report["evaluation_images"] == ["astronaut.png", "coffee.png"]
    for prec in ("fp16", "int8"):
        for role, path in report[prec]["files"].items():
            engine = OnnxEngine(path, threads=2)  # manifest checked at load
            assert engine.manifest.extra["precision"].startswith(prec) and "verification" in engine.manifest.extra
        e2e = report[prec]["report"]["end_to_end"]
        for mode in ("single", "multimask"):
            assert e2e[mode]["masks"] == 2 * 36 * (1 if mode == "single" else 3)
    rule = report["fp16"]["fp16_rule"]
    if rule["passed"] is not None:  # masks are informative: the 1-point rule holds
        assert rule["passed"], rule
        assert min(s["iou_mean"] for s in report["fp16"]["report"]["end_to_end"].values()) >= FP16_MIN_IOU
    summary = {prec: {mode: {k: s[k] for k in ("iou_mean", "iou_min", "degenerate", "logit_max_abs")}
                      for mode, s in report[prec]["report"]["end_to_end"].items()} for prec in ("fp16", "int8")}
    with capsys.disabled():
        print(f"\nSAM2 tiny random-init, fp16/int8 vs fp32 (end to end, logits > 0 at 256²): {json.dumps(summary)}")


# ---- fixtures (sam2) ----------------------------------------------------------------------------


def _scale_single_mask_token(model, feats, coords, labels) -> float:
    """Scales the single-mask token's logits (last layer of its hypernetwork MLP) so the median sam2
    stability score of these clicks equals sam2's threshold; returns the factor (2 significant digits)."""
    import torch

    from export.sam2_onnx import predictor_from_features

    pred = predictor_from_features(model, feats)
    dec = model.sam_mask_decoder
    with torch.inference_mode():
        sparse, dense = model.sam_prompt_encoder(points=(torch.from_numpy(coords), torch.from_numpy(labels).int()),
                                                 boxes=None, masks=None)
        masks, _, _, _ = dec.predict_masks(pred._features["image_embed"], model.sam_prompt_encoder.get_dense_pe(),
                                           sparse, dense, repeat_image=True, high_res_features=pred._features["high_res_feats"])
        token0 = masks[:, 0:1]

        def median_stability(k: float) -> float:
            return float(dec._get_stability_scores(token0 * k).median())

        lo, hi = 1.0, 1.0e4
        for _ in range(60):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if median_stability(mid) < dec.dynamic_multimask_stability_thresh else (lo, mid)
        k = float(f"{hi:.2g}")
    last = dec.output_hypernetworks_mlps[0].layers[-1]
    with torch.no_grad():
        last.weight.mul_(k)
        last.bias.mul_(k)
    return k


def _code_key(*parts: object) -> str:
    h = hashlib.sha256()
    for f in (ROOT / "export" / "sam2_onnx.py", ROOT / "export" / "onnx_graph.py", ROOT / "export" / "parity.py",
              Path(__file__)):
        h.update(f.read_bytes())
    h.update(json.dumps([str(p) for p in parts]).encode())
    return h.hexdigest()[:16]


def _cached_files_ok(folder: Path) -> bool:
    from gear_edge.manifest import Manifest

    try:
        for role in ("encoder", "decoder"):
            path = folder / f"{role}.onnx"
            Manifest.load(folder / f"{role}.toml").verify(path)
        return True
    except InputError:
        return False


def prompts(count: int, points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` prompts of ``points`` points: coords [count, points, 2] in 1024² pixels and labels
    mixing foreground / background clicks, box corners (2, 3) and padding (-1)."""
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, 1024, (count, points, 2)).astype(np.float32)
    if points == 1:
        labels = np.where(rng.random((count, 1)) < 0.8, 1, 0).astype(np.float32)
        return coords, labels
    patterns = [[1, 1, 0], [1, 0, -1], [2, 3, 1], [1, -1, -1], [0, 1, 1], [2, 3, -1]]
    labels = np.array([patterns[i % len(patterns)][:points] for i in range(count)], np.float32)
    for i in range(count):
        if labels[i, 0] == 2:  # a box: top-left, bottom-right
            lo, hi = np.minimum(coords[i, 0], coords[i, 1]), np.maximum(coords[i, 0], coords[i, 1])
            coords[i, 0], coords[i, 1] = lo, hi
    return coords, labels


@pytest.fixture(scope="session")
def sam2_setup(tmp_path_factory):
    """(model, predictor, model input x, features, exported paths, stability scale k)."""
    import torch

    from export import sam2_onnx as so

    torch.set_num_threads(2)
    model = so.build_model("tiny", random_init=True, seed=SEED)
    pred, x, feats = so.predictor_for(model, so.check_image(seed=SEED))
    k = _scale_single_mask_token(model, feats, *prompts(UNIQUE, 1, seed=1))
    key = _code_key(so.versions(), SEED, k)
    cache_root = os.environ.get("GEAR_EDGE_TEST_CACHE")
    cached = Path(cache_root) / f"sam2-export-{key}" if cache_root else None
    if cached is not None and _cached_files_ok(cached):
        folder = cached
    else:
        folder = tmp_path_factory.mktemp("sam2_export")
        so.export_encoder(model, folder / "encoder.onnx", reference=(x, feats), threads=2)
        so.export_decoder(model, folder / "decoder.onnx", features=feats, threads=2)
        if cached is not None:  # publish atomically; a concurrent run may win the rename
            cached.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cached.parent))
            for f in folder.iterdir():
                shutil.copy2(f, staging / f.name)
            if cached.exists():  # an incomplete or stale copy under this key
                shutil.rmtree(cached, ignore_errors=True)
            try:
                staging.rename(cached)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
    return {"model": model, "pred": pred, "x": x, "feats": feats, "k": k,
            "encoder": folder / "encoder.onnx", "decoder": folder / "decoder.onnx"}


@pytest.fixture(scope="session")
def engines(sam2_setup):
    from gear_edge.engines import OnnxEngine

    return {role: OnnxEngine(sam2_setup[role], threads=2) for role in ("encoder", "decoder")}


@pytest.fixture(scope="session")
def reference(sam2_setup):
    """sam2's outputs for UNIQUE prompts of each length, both modes: {P: (coords, labels, {mode: (masks, iou)})}."""
    from export.sam2_onnx import reference_decode

    out = {}
    for p in (1, 3):
        coords, labels = prompts(UNIQUE, p, seed=10 + p)
        out[p] = (coords, labels, {mode: reference_decode(sam2_setup["pred"], coords, labels, None, mode == "multimask")
                                   for mode in ("multimask", "single")})
    return out


# ---- encoder ------------------------------------------------------------------------------------


@needs_sam2
def test_encoder_matches_sam2_set_image(sam2_setup, engines):
    from export.sam2_onnx import FEATURES, TOLERANCE

    out = engines["encoder"].run({"image": sam2_setup["x"]})
    assert {n: out[n].shape for n in FEATURES} == {
        "image_embed": (1, 256, 64, 64), "high_res_feats_0": (1, 32, 256, 256), "high_res_feats_1": (1, 64, 128, 128)}
    for n in FEATURES:
        check_close(n, out[n], sam2_setup["feats"][n], TOLERANCE[n])
    # the features depend on the image: another picture moves every map well beyond the tolerance
    other = engines["encoder"].run({"image": np.ascontiguousarray(sam2_setup["x"][:, :, ::-1])})
    for n in FEATURES:
        assert tensor_error(other[n], out[n])["error"] > 100 * TOLERANCE[n], n


@needs_sam2
def test_encoder_includes_no_mem_embed(sam2_setup, engines):
    """set_image adds no_mem_embed to the lowest-resolution map; the export must too."""
    model = sam2_setup["model"]
    assert model.directly_add_no_mem_embed
    out = engines["encoder"].run({"image": sam2_setup["x"]}, output_names=["image_embed"])["image_embed"]
    shift = model.no_mem_embed.detach().numpy().reshape(1, -1, 1, 1)
    assert np.abs(shift).max() > 1e-3
    without = sam2_setup["feats"]["image_embed"] - shift
    assert tensor_error(out, without)["max_abs"] > 100 * tensor_error(out, sam2_setup["feats"]["image_embed"])["max_abs"]


# ---- decoder ------------------------------------------------------------------------------------


def _compare_rows(engine, feats, coords, labels, ref, rows, where):
    """ONNX Runtime on prompts ``coords[rows]`` vs sam2's outputs for those prompts (rows are independent)."""
    from export.sam2_onnx import TOLERANCE, decoder_feeds

    out = engine.run(decoder_feeds(feats, coords[rows], labels[rows]))
    assert out["low_res_masks"].shape == (len(rows), 4, 256, 256) and out["iou_predictions"].shape == (len(rows), 4)
    for mode, sl in (("multimask", slice(1, 4)), ("single", slice(0, 1))):
        masks, iou = ref[mode]
        check_close(f"{where} {mode} low_res_masks", out["low_res_masks"][:, sl], masks[rows], TOLERANCE["low_res_masks"])
        check_close(f"{where} {mode} iou_predictions", out["iou_predictions"][:, sl], iou[rows], TOLERANCE["iou_predictions"])
    return out


@needs_sam2
@pytest.mark.parametrize("points", [1, 3])
def test_decoder_matches_sam2_for_every_batch_size(sam2_setup, engines, reference, points):
    """B ∈ {1, 7, 64} against sam2's predictor, both modes. B=64 reuses the UNIQUE prompts in a
    shuffled order (each row compared with sam2's answer to its own prompt)."""
    coords, labels, ref = reference[points]
    rng = np.random.default_rng(points)
    batch64 = np.concatenate([rng.permutation(UNIQUE), rng.integers(0, UNIQUE, 64 - UNIQUE)])
    for rows in (np.arange(1), np.arange(7), batch64):
        _compare_rows(engines["decoder"], sam2_setup["feats"], coords, labels, ref, rows, f"B={len(rows)} P={points}")


@needs_sam2
@pytest.mark.parametrize("points", [1, 3])
def test_decoder_single_prompt_matches_sam2_unbatched_path(sam2_setup, engines, points):
    """B = 1 is sam2's non-batched branch (repeat_image=False); it must agree too."""
    from export.sam2_onnx import compare_decoder

    coords, labels = prompts(1, points, seed=20 + points)
    compare_decoder(engines["decoder"], sam2_setup["pred"], sam2_setup["feats"], coords, labels)


@needs_sam2
def test_both_dynamic_multimask_branches_are_exercised(reference, sam2_setup):
    """sam2's single-mask answer is token 0 when stable, else the best multimask output; the
    reference prompts must contain both cases, or the parity above proves only one branch."""
    fallback = stable = 0
    for _, _, ref in reference.values():
        multi, single = ref["multimask"][0], ref["single"][0]
        same = np.array([any(np.array_equal(single[i, 0], multi[i, j]) for j in range(3)) for i in range(len(single))])
        fallback += int(same.sum())
        stable += int((~same).sum())
    assert fallback >= 3 and stable >= 3, (fallback, stable, sam2_setup["k"])


@needs_sam2
def test_decoder_mask_input(sam2_setup, engines):
    from export.sam2_onnx import check_mask_input, compare_decoder, decoder_feeds

    coords, labels = prompts(7, 3, seed=30)
    mask = check_mask_input(7, seed=3)
    compare_decoder(engines["decoder"], sam2_setup["pred"], sam2_setup["feats"], coords, labels, mask)
    # has_mask_input = 0 ignores whatever mask_input holds
    feeds = decoder_feeds(sam2_setup["feats"], coords, labels)
    plain = engines["decoder"].run(feeds)["low_res_masks"]
    ignored = engines["decoder"].run({**feeds, "mask_input": mask})["low_res_masks"]
    np.testing.assert_array_equal(plain, ignored)
    used = engines["decoder"].run({**feeds, "mask_input": mask, "has_mask_input": np.ones(1, np.float32)})["low_res_masks"]
    assert np.abs(used - plain).max() > 1e-2


@needs_sam2
def test_decoder_mask_batch_broadcasts(sam2_setup, engines):
    """mask_input has its own batch axis Bm: one mask (or the zero mask) serves every prompt, and the
    graph computes the shared image side once; the answer is the one sam2 gives for that mask."""
    from export.sam2_onnx import check_mask_input, compare_decoder, decoder_feeds

    coords, labels = prompts(6, 2, seed=31)
    one = check_mask_input(1, seed=4)
    compare_decoder(engines["decoder"], sam2_setup["pred"], sam2_setup["feats"], coords, labels, one)
    feeds = decoder_feeds(sam2_setup["feats"], coords, labels)
    assert feeds["mask_input"].shape == (1, 1, 256, 256)
    shared = engines["decoder"].run(feeds)
    per_prompt = engines["decoder"].run({**feeds, "mask_input": np.zeros((6, 1, 256, 256), np.float32)})
    for name in ("low_res_masks", "iou_predictions"):
        np.testing.assert_allclose(shared[name], per_prompt[name], rtol=0, atol=1e-5)
    repeated = np.repeat(one, 6, axis=0)
    on = np.ones(1, np.float32)
    a = engines["decoder"].run({**feeds, "mask_input": one, "has_mask_input": on})["low_res_masks"]
    b = engines["decoder"].run({**feeds, "mask_input": repeated, "has_mask_input": on})["low_res_masks"]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


@needs_sam2
def test_decoder_outputs_depend_on_the_prompt(reference):
    coords, _, ref = reference[1]
    masks = ref["multimask"][0]
    spread = np.abs(masks - masks[:1]).reshape(len(masks), -1).max(1)[1:]
    assert spread.min() > 1e-2, spread  # every click gives other logits than the first one
    assert float(np.abs(ref["multimask"][1] - ref["multimask"][1][:1]).max()) > 1e-4


@needs_sam2
def test_export_check_catches_a_different_model(sam2_setup, engines):
    """The check that runs at export fails loudly when ONNX Runtime and sam2 disagree."""
    from export.sam2_onnx import compare_decoder

    model = sam2_setup["model"]
    bias = model.sam_mask_decoder.iou_prediction_head.layers[-1].bias
    coords, labels = prompts(2, 1, seed=40)
    original = bias.detach().clone()
    try:
        with __import__("torch").no_grad():
            bias.add_(0.5)
        with pytest.raises(ParityError, match="iou_predictions"):
            compare_decoder(engines["decoder"], sam2_setup["pred"], sam2_setup["feats"], coords, labels)
    finally:
        with __import__("torch").no_grad():
            bias.copy_(original)


# ---- manifests and bad inputs -------------------------------------------------------------------


@needs_sam2
def test_manifests_describe_and_guard_the_files(sam2_setup, engines, tmp_path):
    from export.sam2_onnx import TOLERANCE
    from gear_edge.engines import OnnxEngine
    from gear_edge.manifest import Manifest

    for role, engine in engines.items():
        m = Manifest.load(sam2_setup[role].with_suffix(".toml"))
        assert m.file == sam2_setup[role].name and m.licence == "Apache-2.0"
        assert "random-init seed 0" in m.source and m.extra["precision"] == "fp32" and m.extra["opset"] == 17
        assert m.extra["sam2"]["sam2_version"] == "1.1.0" and m.extra["sam2"]["config"].endswith("sam2.1_hiera_t.yaml")
        v = m.extra["verification"]
        errors = {k: val for k, val in v.items() if k.endswith("_error")}
        assert errors and all(0 <= e <= TOLERANCE["low_res_masks"] for e in errors.values()), errors
        assert [s["name"] for s in m.extra["inputs"]] == list(engine.inputs)
        assert [s["name"] for s in m.extra["outputs"]] == list(engine.outputs)
    dec = Manifest.load(sam2_setup["decoder"].with_suffix(".toml"))
    specs = {s["name"]: s for s in dec.extra["inputs"] + dec.extra["outputs"]}
    assert specs["point_coords"]["shape"] == ["B", "P", 2] and specs["low_res_masks"]["shape"] == ["B", 4, 256, 256]
    assert specs["has_mask_input"]["shape"] == [1] and specs["point_labels"]["dtype"] == "float32"
    assert specs["mask_input"]["shape"] == ["Bm", 1, 256, 256]
    # a tampered file fails at load, naming the problem
    bad = tmp_path / "decoder.onnx"
    shutil.copy(sam2_setup["decoder"], bad)
    shutil.copy(sam2_setup["decoder"].with_suffix(".toml"), tmp_path / "decoder.toml")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256"):
        OnnxEngine(bad)
    # the encoder's manifest next to the decoder's file: a different model
    shutil.copy(sam2_setup["decoder"], bad)
    shutil.copy(sam2_setup["encoder"].with_suffix(".toml"), tmp_path / "decoder.toml")
    with pytest.raises(InputError, match="bytes but the manifest says"):
        OnnxEngine(bad)


@needs_sam2
def test_manifest_tensor_mismatch_missing_files_and_swapped_roles(sam2_setup, engines, tmp_path):
    """A manifest with the right hash but other tensors, a missing model file, a decoder given as
    the encoder: each fails at load / construction with an error naming the file and the tensor."""
    from export.quantize import onnx_specs
    from gear_edge.engines import OnnxEngine, TensorSpec
    from gear_edge.engines.manifest_check import write_model_manifest
    from gear_edge.segment import AutomaticMaskGenerator, PromptSegmenter

    model = tmp_path / "decoder.onnx"
    shutil.copy(sam2_setup["decoder"], model)
    inputs, outputs = onnx_specs(model)
    for what, ins, outs, match in (
        ("dtype", [TensorSpec(i.name, i.shape, np.dtype(np.int64)) if i.name == "point_labels" else i for i in inputs],
         outputs, r"input 'point_labels' is float32 but the manifest says int64"),
        ("shape", inputs, [TensorSpec(o.name, ("B", 3, 256, 256), o.dtype) if o.name == "low_res_masks" else o
                           for o in outputs], r"output 'low_res_masks' has shape .* but the manifest says"),
        ("name", [i for i in inputs if i.name != "mask_input"], outputs, r"inputs .* differ from its manifest's .*mask_input"),
    ):
        write_model_manifest(model, inputs=ins, outputs=outs, licence="Apache-2.0", source="test")
        with pytest.raises(InputError, match=match):
            OnnxEngine(model)
    # a missing model file (its manifest is still there)
    model.unlink()
    with pytest.raises(InputError, match=r"decoder\.onnx does not exist"):
        OnnxEngine(model)
    # roles swapped or mixed up: the segment stage names what is wrong
    with pytest.raises(InputError, match="encoder must take one image input"):
        AutomaticMaskGenerator(engines["decoder"], engines["encoder"])
    with pytest.raises(InputError, match="the decoder has no input 'point_coords'"):
        PromptSegmenter(engines["encoder"], engines["encoder"])


@needs_sam2
def test_exported_pair_runs_through_the_segment_engines(sam2_setup, engines):
    """The runtime's SAM2 adapter accepts the pair and slices the 4-output layout as sam2 does."""
    from export.sam2_onnx import decoder_feeds
    from gear_edge.segment.sam_io import SamEngines

    sam = SamEngines(engines["encoder"], engines["decoder"])
    coords, labels = prompts(5, 1, seed=50)
    multi, iou_m = sam.decode(sam2_setup["feats"], coords, labels, multimask_output=True)
    single, iou_s = sam.decode(sam2_setup["feats"], coords, labels, multimask_output=False)
    full = engines["decoder"].run(decoder_feeds(sam2_setup["feats"], coords, labels))
    np.testing.assert_array_equal(multi, full["low_res_masks"][:, 1:])
    np.testing.assert_array_equal(single, full["low_res_masks"][:, :1])
    assert iou_m.shape == (5, 3) and iou_s.shape == (5, 1)
    # the adapter feeds a single zero mask to a decoder whose mask batch axis has its own name
    seen = []
    run = engines["decoder"].run
    try:
        engines["decoder"].run = lambda feeds, **kw: (seen.append(feeds["mask_input"].shape), run(feeds, **kw))[1]
        sam.decode(sam2_setup["feats"], coords, labels, multimask_output=True)
    finally:
        del engines["decoder"].run
    assert seen == [(1, 1, 256, 256)]


@needs_sam2
def test_build_model_rejects_bad_arguments(tmp_path):
    from export.sam2_onnx import build_model, main

    with pytest.raises(InputError, match="exactly one"):
        build_model("tiny")
    with pytest.raises(InputError, match="exactly one"):
        build_model("tiny", tmp_path / "x.pt", random_init=True)
    with pytest.raises(InputError, match="does not exist"):
        build_model("tiny", tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a SAM2 checkpoint"):
        build_model("tiny", junk)
    with pytest.raises(InputError, match="unknown SAM2 config 'huge'.*base_plus"):
        build_model("huge", random_init=True)
    assert main(["--random-init", "--out", str(tmp_path / "o"), "--precision", "int8"]) == 2  # no --calib-dir


@needs_sam2
def test_checkpoint_path_loads_the_weights_it_names(tmp_path):
    """A checkpoint in sam2's format ({"model": state_dict}) builds the same weights, with its sha256
    in the provenance (no real SAM2 weights exist offline, so the random model is saved first)."""
    import torch

    from export.sam2_onnx import PROVENANCE_ATTR, build_model, default_name
    from gear_edge.manifest import sha256_file

    original = build_model("tiny", random_init=True, seed=3)
    ckpt = tmp_path / "my_sam2.pt"
    torch.save({"model": original.state_dict()}, ckpt)
    loaded = build_model("t", ckpt)
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    prov = getattr(loaded, PROVENANCE_ATTR)
    assert prov["checkpoint_sha256"] == sha256_file(ckpt) and not prov["random_init"] and default_name(loaded) == "my_sam2"
    # weights of another architecture (a tensor of another shape, as in a checkpoint of another size) fail
    other = dict(original.state_dict())
    other["image_encoder.trunk.pos_embed"] = torch.zeros(1, 112, 7, 7)  # tiny has [1, 96, 7, 7]
    torch.save({"model": other}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a SAM2 checkpoint for config configs/sam2.1/sam2.1_hiera_t.yaml"):
        build_model("tiny", tmp_path / "other.pt")
    del other["sam_mask_decoder.iou_token.weight"]  # a missing tensor fails too
    torch.save({"model": other}, tmp_path / "partial.pt")
    with pytest.raises(InputError, match="not a SAM2 checkpoint"):
        build_model("tiny", tmp_path / "partial.pt")


# ---- slow: distinct 64-prompt batches ------------------------------------------------------------


@needs_sam2
@pytest.mark.slow
@pytest.mark.parametrize("points", [1, 3])
def test_decoder_matches_sam2_for_64_distinct_prompts(sam2_setup, engines, points):
    from export.sam2_onnx import reference_decode

    coords, labels = prompts(64, points, seed=60 + points)
    ref = {mode: reference_decode(sam2_setup["pred"], coords, labels, None, mode == "multimask") for mode in ("multimask", "single")}
    _compare_rows(engines["decoder"], sam2_setup["feats"], coords, labels, ref, np.arange(64), f"B=64 distinct P={points}")
