"""Region captioner: Florence-2 export (export/captioner_onnx.py) and the numpy runtime
(gear_edge/describe/captioner.py) on a random-initialised tiny Florence-2 + a tiny BPE tokenizer.

Parity: ONNX Runtime + our decoding loop give token ids identical to transformers' ``generate``
(greedy and beam search) on the same crops and prompts. The tiny model never emits ``</s>`` with
the real EOS id, so every one of the 16 steps is compared; the EOS / forced-token / length-penalty
paths are run with EOS set to a token the model does emit. Faulty KV-cache wirings are shown to
break the parity (the comparison has the power to catch them).

fp16 / int8 copies are checked against fp32 with tolerances (``export.captioner_onnx.TOLERANCE``)
and their generated-token agreement with fp32 must reach ``MIN_TOKEN_AGREEMENT``. Without torch / transformers / onnx
the export tests skip; set GEAR_EDGE_TEST_CAPTIONER_DIR to a pre-exported tiny model to run the
runtime-only tests without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tokenizers", reason="the captioner runtime needs tokenizers (pip install tokenizers)")

import gear_edge.masks as gm  # noqa: E402
from gear_edge.crops import crop_regions  # noqa: E402
from gear_edge.describe.captioner import Captioner, location_boxes, quantize_locations  # noqa: E402
from gear_edge.errors import InputError, MissingDependencyError  # noqa: E402

SEED = 0
PREBUILT = os.environ.get("GEAR_EDGE_TEST_CAPTIONER_DIR")


def _export_deps() -> None:
    for mod in ("torch", "transformers", "onnx"):
        pytest.importorskip(mod, reason=f"{mod} is not installed: building the tiny captioner needs the [export] extra")


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(fp32 model dir, the PyTorch model it was exported from)."""
    _export_deps()
    from export.captioner_onnx import build_tiny, build_tiny_tokenizer, tiny_model

    out = build_tiny(tmp_path_factory.mktemp("captioner") / "fp32", seed=SEED, threads=1)
    tok = build_tiny_tokenizer()
    return out, tiny_model(tok.get_vocab_size(), tok.token_to_id("<image>"), SEED)


@pytest.fixture(scope="session")
def tiny_dir(request) -> Path:
    """A tiny model directory: GEAR_EDGE_TEST_CAPTIONER_DIR, else the one exported here."""
    if PREBUILT:
        return Path(PREBUILT)
    return request.getfixturevalue("exported")[0]


@pytest.fixture(scope="session")
def cap(tiny_dir) -> Captioner:
    return Captioner.from_dir(tiny_dir, threads=1)


@pytest.fixture(scope="session")
def image(real_images) -> np.ndarray:
    return np.ascontiguousarray(real_images["astronaut"])


def _boxes(image: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    wh = rng.uniform(0.08, 0.4, (n, 2)) * (w, h)
    xy = rng.uniform(0, 1, (n, 2)) * ((w, h) - wh)
    return np.concatenate([xy, wh], axis=1)


def _ellipse_rles(image: np.ndarray, boxes: np.ndarray) -> list[dict]:
    masks = np.zeros((len(boxes), *image.shape[:2]), np.uint8)
    for m, (x, y, w, h) in zip(masks, boxes):
        cv2.ellipse(m, (int(x + w / 2), int(y + h / 2)), (max(1, int(w / 2)), max(1, int(h / 2))), 0, 0, 360, 1, -1)
    return gm.encode(masks.astype(bool))


def _inputs(cap: Captioner, image: np.ndarray, boxes: np.ndarray):
    pixels = cap.crops(image, boxes)
    ids, mask = cap.prompt_ids(location_boxes(boxes, cap.config.image_size, cap.config.context, cap.config.letterbox))
    return pixels, ids, mask


def _tokens(cap: Captioner) -> dict[str, int]:
    return {"eos": cap.config.eos_id, "pad": cap.config.pad_id, "decoder_start": cap.config.decoder_start_id}


def _reference(model, cap: Captioner, pixels, ids, mask, **kw) -> np.ndarray:
    from export.captioner_onnx import hf_generate

    return hf_generate(model, pixels, ids, mask, cap.config.generation, _tokens(cap), threads=1, **kw)


# ---- export --------------------------------------------------------------------------------------


def test_export_writes_verified_files_manifests_and_config(exported):
    from export.captioner_onnx import FILES, TOLERANCE

    from gear_edge.engines.manifest_check import manifest_specs
    from gear_edge.manifest import Manifest

    model_dir, _ = exported
    cfg = json.loads((model_dir / "captioner.json").read_text())
    assert cfg["precision"] == "fp32" and cfg["architecture"] == "florence2"
    assert cfg["prompt"] == "What does the region {region} describe?"
    assert cfg["tokens"] == {"bos": 0, "eos": 2, "pad": 1, "decoder_start": 2}
    ver = cfg["verification"]
    assert set(ver["max_rel_error"]) == set(FILES)
    assert all(0 <= e <= TOLERANCE["fp32"] for e in ver["max_rel_error"].values())
    assert ver["tokens"]["agreement"] == 1.0
    for role, file in FILES.items():
        m = Manifest.load(model_dir / file.replace(".onnx", ".toml"))
        m.verify(model_dir / file)
        assert m.extra["precision"] == "fp32" and m.extra["role"] == role and m.extra["opset"] == 17
        assert m.licence and m.source.startswith("random-initialised tiny Florence-2")
        ins, outs = manifest_specs(m)
        assert all(s.shape[0] == "batch" for s in (*ins.values(), *outs.values()))
    dec_in, dec_out = manifest_specs(Manifest.load(model_dir / "decoder.toml"))
    assert dec_in["past_key_0"].shape == ("batch", 2, "past", 16)
    assert dec_in["cross_value_1"].shape == ("batch", 2, "enc", 16)
    assert dec_out["present_value_1"].shape == ("batch", 2, "total", 16)
    assert dec_out["logits"].shape == ("batch", cfg["model"]["vocab"])
    Manifest.load(model_dir / "tokenizer.toml").verify(model_dir / "tokenizer.json")
    import onnx

    # the tied lm_head reuses the token embedding: no [hidden, vocab] transposed copy in the decoder file
    shapes = [tuple(t.dims) for t in onnx.load(str(model_dir / "decoder.onnx")).graph.initializer]
    vocab, hidden = cfg["model"]["vocab"], cfg["model"]["hidden"]
    assert shapes.count((vocab, hidden)) == 1 and (hidden, vocab) not in shapes


def test_export_fails_loudly_when_onnx_runtime_disagrees(exported, tmp_path):
    """The post-export check compares against PyTorch: a model changed after export is caught."""
    import torch
    from export.captioner_onnx import (
        ExportCheckError, _modules, check_tensors, model_dims, sample_inputs, torch_threads,
    )

    model_dir, model = exported
    Vision, Text, Decoder = _modules()
    dims = model_dims(model, 64)
    feeds = sample_inputs(dims, batch=2, seed=3)
    modules = {"vision_encoder": Vision(model), "text_encoder": Text(model), "decoder": Decoder(model)}
    with torch_threads(1):
        assert max(check_tensors(model_dir, modules, feeds, 1e-4, threads=1).values()) < 1e-4
    layer = model.model.language_model.decoder.layers[1].fc1
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.mul_(2.0)
        with pytest.raises(ExportCheckError, match=r"decoder\.onnx.*tolerance"), torch_threads(1):
            check_tensors(model_dir, modules, feeds, 1e-4, threads=1)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)


# ---- parity with transformers' generate ------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 8])
def test_greedy_ids_identical_to_generate(exported, image, batch):
    model_dir, model = exported
    cap = Captioner.from_dir(model_dir, threads=1)
    pixels, ids, mask = _inputs(cap, image, _boxes(image, batch, seed=batch))
    ours = cap.generate_ids(pixels, ids, mask)
    ref = _reference(model, cap, pixels, ids, mask)
    np.testing.assert_array_equal(ours, ref)
    steps = cap.config.generation["max_new_tokens"]
    assert ours.shape == (batch, 1 + steps)  # no </s>: every decoding step is compared
    for row in ours[:, 1:]:  # the ids change along the sequence (each step reads the cache) ...
        assert len(set(row.tolist())) >= 3
    if batch > 1:  # ... and with the input
        assert len({tuple(r) for r in ours[:, 1:].tolist()}) >= batch // 2


@pytest.mark.parametrize("batch", [1, 8])
def test_beam_search_ids_identical_to_generate(exported, image, batch):
    model_dir, model = exported
    cap = Captioner.from_dir(model_dir, threads=1)
    pixels, ids, mask = _inputs(cap, image, _boxes(image, batch, seed=10 + batch))
    ours = cap.generate_ids(pixels, ids, mask, num_beams=3)
    ref = _reference(model, cap, pixels, ids, mask, num_beams=3)
    np.testing.assert_array_equal(ours, ref)
    greedy = cap.generate_ids(pixels, ids, mask)
    assert not np.array_equal(ours, greedy)  # beam search really searched


class _FaultyDecoder:
    """The decoder engine with a deliberately wrong KV-cache wiring."""

    def __init__(self, engine, fault: str) -> None:
        self.engine, self.fault = engine, fault
        self.source, self.inputs, self.outputs = engine.source, engine.inputs, engine.outputs

    def run(self, feeds, output_names=None):
        feeds = dict(feeds)
        if self.fault == "zero_past":
            feeds.update({k: np.zeros_like(v) for k, v in feeds.items() if k.startswith("past_")})
        elif self.fault == "swap_key_value":
            for i in range(sum(k.startswith("past_key_") for k in feeds)):
                feeds[f"past_key_{i}"], feeds[f"past_value_{i}"] = feeds[f"past_value_{i}"], feeds[f"past_key_{i}"]
        elif self.fault == "attend_sink":
            feeds["attention_mask"] = np.ones_like(feeds["attention_mask"])
        return self.engine.run(feeds, output_names)


@pytest.mark.parametrize("fault", ["zero_past", "swap_key_value", "attend_sink"])
def test_parity_check_catches_a_wrong_kv_cache_wiring(exported, image, fault):
    from gear_edge.engines import OnnxEngine

    model_dir, model = exported

    def factory(path: Path):
        engine = OnnxEngine(path, threads=1)
        return _FaultyDecoder(engine, fault) if path.name == "decoder.onnx" else engine

    good = Captioner.from_dir(model_dir, threads=1)
    bad = Captioner.from_dir(model_dir, engine_factory=factory)
    pixels, ids, mask = _inputs(good, image, _boxes(image, 8, seed=8))
    ref = _reference(model, good, pixels, ids, mask)
    np.testing.assert_array_equal(good.generate_ids(pixels, ids, mask), ref)
    wrong = bad.generate_ids(pixels, ids, mask)
    assert not np.array_equal(wrong, ref)
    np.testing.assert_array_equal(wrong[:, :2], ref[:, :2])  # the first step has no past: only later steps differ


@pytest.fixture(scope="module")
def eos_variant(exported, image, tmp_path_factory):
    """A copy of the model dir whose EOS is the token the model emits most after the first steps."""
    model_dir, model = exported
    cap = Captioner.from_dir(model_dir, threads=1)
    pixels, ids, mask = _inputs(cap, image, _boxes(image, 8, seed=21))
    gen = cap.generate_ids(pixels, ids, mask)[:, 2:]
    values, counts = np.unique(gen, return_counts=True)
    eos = int(values[np.argmax(counts)])
    out = tmp_path_factory.mktemp("captioner_eos")
    shutil.copytree(model_dir, out, dirs_exist_ok=True)
    cfg = json.loads((out / "captioner.json").read_text())
    cfg["tokens"]["eos"] = eos
    (out / "captioner.json").write_text(json.dumps(cfg))
    return out, model, eos, (pixels, ids, mask)


@pytest.mark.parametrize(
    "settings",
    [
        {"num_beams": 1, "stops_early": True},
        {"num_beams": 1, "forced_bos_token_id": 5, "forced_eos": True, "no_repeat_ngram_size": 2},
        {"num_beams": 3, "stops_early": True},
        {"num_beams": 3, "early_stopping": True, "stops_early": True},
        {"num_beams": 3, "length_penalty": 0.5},
        {"num_beams": 2, "length_penalty": 2.0, "early_stopping": "never", "forced_eos": True},
    ],
    ids=["greedy", "greedy-forced", "beam3", "beam3-early", "beam3-lp0.5", "beam2-never-forced"],
)
def test_eos_and_logits_processors_identical_to_generate(eos_variant, settings):
    from export.captioner_onnx import hf_generate

    model_dir, model, eos, (pixels, ids, mask) = eos_variant
    settings = dict(settings)
    stops_early = settings.pop("stops_early", False)
    if settings.pop("forced_eos", False):
        settings["forced_eos_token_id"] = eos
    cfg = json.loads((model_dir / "captioner.json").read_text())
    generation = {**cfg["generation"], **settings}
    (model_dir / "captioner.json").write_text(json.dumps({**cfg, "generation": generation}))
    try:
        cap = Captioner.from_dir(model_dir, threads=1)
        ours = cap.generate_ids(pixels, ids, mask)
    finally:
        (model_dir / "captioner.json").write_text(json.dumps(cfg))
    ref = hf_generate(model, pixels, ids, mask, generation, _tokens(cap), threads=1)
    np.testing.assert_array_equal(ours, ref)
    assert any((row[1:] == eos).any() for row in ours)  # hypotheses finished by </s>
    if stops_early:  # rows that stop before the last step: the finished-row paths ran
        assert any((row[1:-1] == eos).any() for row in ours)
    for row in ours:
        hit = np.flatnonzero(row[1:] == eos)
        if len(hit):
            assert (row[2 + hit[0] :] == cap.config.pad_id).all()
    if settings.get("forced_bos_token_id") is not None:
        assert (ours[:, 1] == 5).all()


# ---- the runtime --------------------------------------------------------------------------------


def test_caption_is_batch_size_invariant_and_decodes_generate_ids(cap, image):
    boxes = _boxes(image, 11, seed=4)
    rles = _ellipse_rles(image, boxes)
    captions = cap.caption(image, rles, batch_size=8)
    assert len(captions) == 11 and all(isinstance(c, str) for c in captions)
    t = cap.last_timings
    assert t["regions"] == 11 and [b["n"] for b in t["per_batch"]] == [8, 3]
    assert all(t[k] > 0 for k in ("crop_ms", "vision_ms", "text_encoder_ms", "decoder_ms", "total_ms"))
    assert cap.caption(image, rles, batch_size=3) == captions
    assert [b["n"] for b in cap.last_timings["per_batch"]] == [3, 3, 3, 2]
    mask_boxes = np.asarray(gm.to_bbox(rles), np.float64)
    assert cap.caption(image, mask_boxes) == captions  # background 'keep': a mask's box is all that matters
    pixels, ids, mask = _inputs(cap, image, mask_boxes)
    out = cap.generate_ids(pixels, ids, mask)
    assert cap.decode(out) == captions
    tok = cap.tokenizer
    expected = [" ".join(tok.decode([int(t) for t in row[1:]], skip_special_tokens=True).split()) for row in out]
    assert captions == expected


def test_describe_scene_fills_region_captions(cap, image):
    from gear_edge.describe.scene import describe_scene

    rles = _ellipse_rles(image, _boxes(image, 4, seed=5))
    scene = describe_scene(image, rles, captioner=cap)
    assert [r.caption for r in scene.regions] == cap.caption(image, rles)
    assert "describe.captions" in scene.timings


def test_location_tokens_point_at_the_region_inside_its_crop():
    size = 64
    image = np.zeros((300, 400, 3), np.uint8)
    box = np.array([[120.0, 90.0, 100.0, 50.0]])
    image[90:140, 120:220] = 255
    for context, letterbox in ((1.6, False), (1.6, True), (1.0, False), (3.0, True)):
        crop = crop_regions(image, box, size=size, context=context, letterbox=letterbox, mean=(0, 0, 0),
                            std=(1, 1, 1), fill=(0, 0, 0))
        ys, xs = np.nonzero(crop[0, 0] > 0.5)
        x, y, w, h = location_boxes(box, size, context, letterbox)[0]
        assert abs(x - xs.min()) <= 1 and abs(y - ys.min()) <= 1
        assert abs(x + w - (xs.max() + 1)) <= 1 and abs(y + h - (ys.max() + 1)) <= 1
    np.testing.assert_array_equal(
        quantize_locations([[0, 0, 64, 64], [16, 8, 16, 40]], 64), [[0, 0, 999, 999], [250, 125, 500, 750]]
    )


def test_runtime_imports_no_torch(tiny_dir, image):
    code = (
        "import sys, json, numpy as np\n"
        "from gear_edge.describe.captioner import Captioner\n"
        f"cap = Captioner.from_dir({str(tiny_dir)!r}, threads=1)\n"
        "img = np.zeros((64, 80, 3), np.uint8); img[10:40, 20:60] = 200\n"
        "caps = cap.caption(img, np.array([[20.0, 10.0, 40.0, 30.0]]))\n"
        "print(json.dumps([len(caps), [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEAR_EDGE_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, []]


# ---- precision variants ----------------------------------------------------------------------


# generated tokens (column 0, the decoder start token, excluded) equal to fp32's greedy ids
MIN_TOKEN_AGREEMENT = {"fp16": 0.95, "int8": 0.5, "tensorrt-fp16": 0.95}


@pytest.fixture(scope="session")
def variants(exported, tmp_path_factory):
    from export.captioner_onnx import check_derived, derive_precision

    model_dir, _ = exported
    out = {}
    for precision in ("fp16", "int8"):
        dst = derive_precision(model_dir, tmp_path_factory.mktemp("captioner") / precision, precision)
        check_derived(model_dir, dst, threads=1)
        out[precision] = dst
    return out


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_int8_variants_load_and_caption(variants, exported, image, precision, record_property):
    import onnx
    from export.captioner_onnx import TOLERANCE

    from gear_edge.manifest import Manifest

    model_dir = variants[precision]
    cfg = json.loads((model_dir / "captioner.json").read_text())
    ver = cfg["verification"]
    assert cfg["precision"] == precision and ver["tolerance"] == TOLERANCE[precision]
    assert all(e <= TOLERANCE[precision] for e in ver["max_rel_error_vs_fp32"].values())
    record_property(f"{precision}_tokens_vs_fp32", ver["tokens_vs_fp32"])
    print(f"{precision} vs fp32: max rel error {ver['max_rel_error_vs_fp32']}, tokens {ver['tokens_vs_fp32']}")
    m = Manifest.load(model_dir / "decoder.toml")
    assert m.extra["precision"] == ("fp16" if precision == "fp16" else "int8-dynamic")
    graph = onnx.load(str(model_dir / "decoder.onnx")).graph
    if precision == "fp16":
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    else:
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in graph.node)
    assert all(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for i in graph.input)  # float32 I/O kept
    cap = Captioner.from_dir(model_dir, threads=1)
    boxes = _boxes(image, 5, seed=6)
    captions = cap.caption(image, boxes)
    assert len(captions) == 5
    fp32 = Captioner.from_dir(exported[0], threads=1)
    pixels, ids, mask = _inputs(fp32, image, boxes)
    a, b = cap.generate_ids(pixels, ids, mask), fp32.generate_ids(pixels, ids, mask)
    width = min(a.shape[1], b.shape[1])
    agreement = float((a[:, 1:width] == b[:, 1:width]).mean())  # column 0 is the decoder start token
    first = float((a[:, 1] == b[:, 1]).mean())
    record_property(f"{precision}_caption_token_agreement", agreement)
    print(f"{precision} vs fp32 generated-token agreement {agreement:.3f}, first token {first:.3f}")
    # measured on this tiny random model: fp16 1.000 (first token 1.0), int8 0.700 (first token 0.8);
    # a wrong conversion (bad scales, a swapped weight) gives near-chance agreement (~1/vocab)
    assert agreement >= MIN_TOKEN_AGREEMENT[precision], (precision, agreement)
    assert first >= MIN_TOKEN_AGREEMENT[precision], (precision, first)
    assert ver["tokens_vs_fp32"]["token_agreement"] >= MIN_TOKEN_AGREEMENT[precision], ver["tokens_vs_fp32"]


# ---- integrity and bad inputs ------------------------------------------------------------------


@pytest.mark.parametrize("file", ["decoder.onnx", "vision_encoder.onnx", "tokenizer.json"])
def test_tampered_file_is_rejected_naming_it(tiny_dir, tmp_path, file):
    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    data = bytearray((d / file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / file).write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{file.replace('.', '[.]')}.*sha256"):
        Captioner.from_dir(d)


def test_missing_manifest_or_bad_config_is_rejected(tiny_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    (d / "text_encoder.toml").unlink()
    with pytest.raises(InputError, match=r"text_encoder\.onnx has no manifest"):
        Captioner.from_dir(d)
    shutil.copy2(tiny_dir / "text_encoder.toml", d / "text_encoder.toml")
    cfg = json.loads((d / "captioner.json").read_text())
    (d / "captioner.json").write_text(json.dumps({**cfg, "format": "something else"}))
    with pytest.raises(InputError, match=r"captioner\.json.*format"):
        Captioner.from_dir(d)
    del cfg["tokens"]
    (d / "captioner.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"captioner\.json.*tokens"):
        Captioner.from_dir(d)
    with pytest.raises(InputError, match="does not exist"):
        Captioner.from_dir(tmp_path / "nowhere")


def test_bad_inputs_raise_clear_errors(cap, image):
    box = np.array([[10.0, 20.0, 50.0, 40.0]])
    with pytest.raises(InputError, match="uint8"):
        cap.caption(image.astype(np.float32), box)
    with pytest.raises(InputError, match=r"H x W x 3"):
        cap.caption(np.ascontiguousarray(image[..., 0]), box)
    with pytest.raises(InputError, match=r"H x W x 3"):
        cap.caption(np.zeros((20, 20, 4), np.uint8), box)
    with pytest.raises(InputError, match="no regions"):
        cap.caption(image, [])
    with pytest.raises(InputError, match="no regions"):
        cap.caption(image, np.zeros((0, 4)))
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        cap.caption(image, np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(InputError, match="w, h > 0"):
        cap.caption(image, np.array([[1.0, 2.0, 0.0, 5.0]]))
    with pytest.raises(InputError, match="mask 0 has size"):
        cap.caption(image, gm.encode(np.ones((2, 10, 10), bool)))
    with pytest.raises(InputError, match="batch_size"):
        cap.caption(image, box, batch_size=0)
    with pytest.raises(InputError, match=r"pixel_values must be \[B, 3, 64, 64\]"):
        cap.generate_ids(np.zeros((2, 3, 32, 32), np.float32), np.zeros((2, 4), np.int64))
    with pytest.raises(InputError, match="float32"):
        cap.generate_ids(np.zeros((2, 3, 64, 64), np.float64), np.zeros((2, 4), np.int64))
    with pytest.raises(InputError, match="prompt_ids"):
        cap.generate_ids(np.zeros((2, 3, 64, 64), np.float32), np.zeros((3, 4), np.int64))
    with pytest.raises(InputError, match=r"needs each region's box"):
        cap.generate_ids(np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(InputError, match="max_new_tokens"):
        cap.caption(image, box, max_new_tokens=0)


# ---- CLI, checkpoints, exporters, TensorRT -----------------------------------------------------


def test_cli_exports_a_saved_checkpoint_with_a_caption_prompt(exported, tmp_path):
    """--checkpoint on a transformers-native directory (the tiny model saved with save_pretrained),
    the <CAPTION> task (no location tokens): ids identical to generate, per export verification."""
    from export.captioner_onnx import build_tiny_tokenizer, main

    _, model = exported
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    build_tiny_tokenizer().save(str(ckpt / "tokenizer.json"))
    pre = {"size": {"height": 64, "width": 64}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (ckpt / "preprocessor_config.json").write_text(json.dumps(pre))
    out = tmp_path / "out"
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--task", "caption", "--licence", "MIT", "--threads", "1"]
    assert main(args) == 0
    cfg = json.loads((out / "captioner.json").read_text())
    assert cfg["prompt"] == "What does the image describe?" and cfg["mean"] == [0.5, 0.5, 0.5]
    assert cfg["verification"]["tokens"]["agreement"] == 1.0
    cap = Captioner.from_dir(out, threads=1)
    assert len(cap.generate_ids(np.zeros((3, 3, 64, 64), np.float32))) == 3  # one prompt for all crops
    assert main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "x")]) == 2  # no config.json
    with pytest.raises(SystemExit):
        main(["--random-init", "--out", str(tmp_path / "y")])  # full-size random export refused


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_ids(tmp_path):
    _export_deps()
    from export.captioner_onnx import build_tiny

    from gear_edge.manifest import Manifest

    out = build_tiny(tmp_path / "dyn", seed=SEED, dynamo=True, threads=1)
    cfg = json.loads((out / "captioner.json").read_text())
    assert cfg["verification"]["tokens"]["agreement"] == 1.0
    assert Manifest.load(out / "decoder.toml").extra["opset"] == 18


def test_tensorrt_profiles_cover_every_dynamic_axis(tiny_dir):
    pytest.importorskip("onnx", reason="onnx is not installed (the [export] extra)")
    from export.build_engine import profiles_for
    from export.captioner_onnx import FILES, tensorrt_axes
    from export.quantize import onnx_specs

    cfg = json.loads((tiny_dir / "captioner.json").read_text())
    axes = tensorrt_axes(cfg, max_batch=24, opt_batch=8)
    prof = {role: profiles_for(onnx_specs(tiny_dir / f)[0], axes) for role, f in FILES.items()}
    steps = cfg["generation"]["max_new_tokens"]
    assert prof["decoder"]["past_key_0"] == ((1, 2, 1, 16), (8, 2, steps // 2, 16), (24, 2, steps + 1, 16))
    assert prof["decoder"]["attention_mask"][2] == (24, steps + 2)
    enc = cfg["model"]["num_image_tokens"] + cfg["model"]["prompt_tokens"]
    assert prof["text_encoder"]["input_ids"][0] == (1, cfg["model"]["prompt_tokens"])
    assert prof["decoder"]["cross_key_1"][1] == (8, 2, enc, 16)
    assert prof["vision_encoder"]["pixel_values"] == ((1, 3, 64, 64), (8, 3, 64, 64), (24, 3, 64, 64))


def test_tensorrt_build(tiny_dir, tmp_path, image):
    """Plans of the three files through export/build_engine.py, run through the same decoding loop."""
    from export.captioner_onnx import build_tensorrt

    from gear_edge.engines import TensorRTEngine

    try:
        plans = build_tensorrt(tiny_dir, tmp_path / "plans", precision="fp16", max_batch=8)
    except MissingDependencyError as exc:  # no tensorrt package, or no CUDA device
        assert "tensorrt" in str(exc).lower() or "cuda" in str(exc).lower(), exc
        pytest.skip(f"no TensorRT build on this machine: {exc}")
    by_file = {f"{role}.onnx": plan for role, plan in plans.items()}
    trt_cap = Captioner.from_dir(tiny_dir, engine_factory=lambda p: TensorRTEngine(by_file[p.name]))
    ort_cap = Captioner.from_dir(tiny_dir, threads=1)
    boxes = _boxes(image, 8, seed=30)
    pixels, ids, mask = _inputs(ort_cap, image, boxes)
    a, b = trt_cap.generate_ids(pixels, ids, mask), ort_cap.generate_ids(pixels, ids, mask)
    width = min(a.shape[1], b.shape[1])
    agreement = float((a[:, 1:width] == b[:, 1:width]).mean())  # column 0 is the decoder start token
    print(f"TensorRT fp16 vs ORT fp32 generated-token agreement: {agreement:.3f}")
    assert (a[:, 0] == b[:, 0]).all() and agreement >= MIN_TOKEN_AGREEMENT["tensorrt-fp16"], agreement
    assert len(trt_cap.caption(image, boxes)) == 8
