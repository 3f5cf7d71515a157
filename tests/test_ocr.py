"""OCR on real PP-OCR models (rapidocr-onnxruntime's ONNX files): text rendered inside regions lands on them."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import cv2
import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import Manifest

from gear_edge.describe import ocr

needs_models = pytest.mark.skipif(
    importlib.util.find_spec(ocr.PACKAGE) is None, reason=f"the PP-OCR model files are not installed: {ocr.INSTALL_HINT}"
)

H, W = 720, 1280
BOX = (100, 200, 520, 440)  # x, y, w, h: a cardboard box ...
LABEL = (150, 300, 420, 200)  # ... with a white label on it: "FRAGILE" / "THIS SIDE UP"
TAPE = (780, 440, 420, 160)  # a roll-of-tape sign: "TAPE"
PLAIN = (800, 90, 350, 250)  # a plain patch without text


def _rect_mask(x, y, w, h) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y : y + h, x : x + w] = True
    return m


def _fill(img, rect, rgb):
    x, y, w, h = rect
    img[y : y + h, x : x + w] = rgb


def build_scene() -> tuple[np.ndarray, dict[str, dict]]:
    """skimage's coffee photo with three flat objects pasted on it; masks exact by construction."""
    import skimage.data

    img = cv2.resize(skimage.data.coffee(), (W, H), interpolation=cv2.INTER_LINEAR)
    _fill(img, BOX, (176, 134, 86))
    _fill(img, LABEL, (240, 238, 230))
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "FRAGILE", (LABEL[0] + 30, LABEL[1] + 95), font, 2.6, (25, 20, 20), 7, cv2.LINE_AA)
    cv2.putText(img, "THIS SIDE UP", (LABEL[0] + 40, LABEL[1] + 165), font, 1.3, (25, 20, 20), 3, cv2.LINE_AA)
    _fill(img, TAPE, (250, 250, 245))
    cv2.putText(img, "TAPE", (TAPE[0] + 80, TAPE[1] + 115), font, 3.0, (20, 20, 70), 8, cv2.LINE_AA)
    _fill(img, PLAIN, (190, 200, 215))
    label = _rect_mask(*LABEL)
    rles = {
        "box": gm.encode(_rect_mask(*BOX)),  # the box mask includes the label it carries
        "label": gm.encode(label),
        "tape": gm.encode(_rect_mask(*TAPE)),
        "plain": gm.encode(_rect_mask(*PLAIN)),
    }
    return img, rles


@pytest.fixture(scope="module")
def reader():
    return ocr.OcrReader(threads=2)


@pytest.fixture(scope="module")
def scene(reader):
    img, rles = build_scene()
    return img, rles, reader.read(img)


def words(texts: list[str]) -> list[str]:
    return [w.lower() for t in texts for w in t.split()]


@needs_models
def test_rendered_text_is_read_and_lands_on_its_region(scene):
    img, rles, boxes = scene
    # every rendered line, nothing from the photo; spaces in the small line may or may not be read
    assert [b.text.upper().replace(" ", "") for b in boxes] == ["FRAGILE", "THISSIDEUP", "TAPE"], [b.text for b in boxes]
    for b in boxes:
        assert 0.5 <= b.confidence <= 1.0
        assert b.quad.shape == (4, 2) and b.quad.dtype == np.float32
        x0, y0 = b.quad.min(axis=0)
        assert b.bbox == pytest.approx((x0, y0, *(b.quad.max(axis=0) - (x0, y0))))
    names = list(rles)
    per_region = dict(zip(names, ocr.assign_text(boxes, list(rles.values()))))
    assert words(per_region["label"])[:1] == ["fragile"]
    assert words(per_region["label"])[1:] == ["this", "side", "up"] or "".join(words(per_region["label"])[1:]) == "thissideup"
    assert words(per_region["tape"]) == ["tape"]
    assert per_region["box"] == []  # the label is its own, smaller region
    assert per_region["plain"] == []  # nothing is written there
    # the FRAGILE quad sits on the rendered word's ink (the detector pads lines by a few pixels)
    lx, ly, lw, lh = LABEL
    ink = np.zeros((H, W), bool)
    ink[ly : ly + 120, lx : lx + lw] = img[ly : ly + 120, lx : lx + lw].max(axis=2) < 100  # the FRAGILE line
    ys, xs = np.nonzero(ink)
    x, y, w, h = boxes[0].bbox
    assert x <= xs.min() + 2 and y <= ys.min() + 2 and x + w >= xs.max() - 1 and y + h >= ys.max() - 1
    assert w * h <= 2.0 * (np.ptp(xs) + 1) * (np.ptp(ys) + 1)


@needs_models
def test_without_a_label_region_the_box_gets_the_label_text(scene):
    _, rles, boxes = scene
    box, tape, plain = ocr.assign_text(boxes, [rles["box"], rles["tape"], rles["plain"]])
    assert words(box)[:1] == ["fragile"] and words(tape) == ["tape"] and plain == []
    # a region that holds none of the text gets none, even when it is the only one
    assert ocr.assign_text(boxes, [rles["plain"]]) == [[]]


@needs_models
def test_min_confidence_filters_lines(reader, scene):
    img, _, boxes = scene
    engines = {"det": reader.det, "rec": reader.rec, "cls": reader.cls}
    strict = ocr.OcrReader(min_confidence=min(b.confidence for b in boxes) + 1e-6, engines=engines,
                           charset=reader.classes[1:-1])
    kept = strict.read(img)
    assert len(kept) == len(boxes) - 1
    assert {b.text for b in kept} < {b.text for b in boxes}


@needs_models
def test_a_ring_and_a_frame_are_not_read_as_letters_a_printed_letter_is(reader):
    """One-glyph lines need min_confidence_single: a square frame reads as '口' at ~0.92 and is dropped,
    a printed 'B' (0.999) is kept; with the bound off the frame comes back."""
    img = np.full((480, 640, 3), 220, np.uint8)
    cv2.circle(img, (120, 150), 50, (120, 120, 120), -1)
    cv2.circle(img, (120, 150), 25, (220, 220, 220), -1)  # a washer
    cv2.rectangle(img, (260, 300), (420, 440), (40, 150, 50), -1)
    cv2.rectangle(img, (278, 318), (402, 422), (220, 220, 220), -1)  # a frame
    cv2.rectangle(img, (480, 60), (600, 180), (30, 70, 210), -1)
    cv2.putText(img, "B", (505, 160), cv2.FONT_HERSHEY_SIMPLEX, 3.0, (245, 245, 245), 6, cv2.LINE_AA)
    assert [b.text for b in reader.read(img)] == ["B"]
    loose = ocr.OcrReader(min_confidence_single=0.0, engines={"det": reader.det, "rec": reader.rec, "cls": reader.cls},
                          charset=reader.classes[1:-1])
    got = {b.text for b in loose.read(img)}
    assert "B" in got and len(got) >= 2
    with pytest.raises(InputError, match="min_confidence_single"):
        ocr.OcrReader(min_confidence_single=2.0, engines={}, charset=[])


@needs_models
def test_plain_photo_and_blank_images_have_no_text(reader):
    import skimage.data

    assert reader.read(skimage.data.coffee()) == []
    assert reader.read(np.full((64, 64, 3), 255, np.uint8)) == []
    assert reader.read(np.zeros((1, 1, 3), np.uint8)) == []
    assert reader.read(np.zeros((4, 2000, 3), np.uint8)) == []  # extreme aspect ratio


@needs_models
def test_upside_down_text_is_turned_by_the_direction_classifier(reader):
    import skimage.data

    img = skimage.data.astronaut().copy()
    patch = np.full((90, 330, 3), 240, np.uint8)
    cv2.putText(patch, "FRAGILE", (12, 68), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (25, 25, 25), 5, cv2.LINE_AA)
    img[380:470, 150:480] = patch[::-1, ::-1]  # rotated by 180 degrees
    assert [b.text.upper() for b in reader.read(img)] == ["FRAGILE"]
    no_cls = ocr.OcrReader(use_cls=False, engines={"det": reader.det, "rec": reader.rec}, charset=reader.classes[1:-1])
    assert [b.text.upper() for b in no_cls.read(img)] != ["FRAGILE"]


@needs_models
def test_matches_rapidocr_on_the_same_models(reader, scene):
    """Our pre/post-processing vs rapidocr's own pipeline on the same image and detector resolution.

    rapidocr 1.4.4 with ``det_limit_type="max"`` runs detection unscaled for a longer side in
    [960, 1500), so our reader runs at ``det_side=1280`` here: same lines, same text, quads within
    rapidocr's integer rounding, confidences close (crops cut from float vs rounded quads).
    """
    for mod in ("pyclipper", "shapely", "yaml", "PIL"):
        pytest.importorskip(mod, reason=f"rapidocr's own pipeline (the reference) needs {mod}")
    from rapidocr_onnxruntime import RapidOCR

    img, _, boxes = scene
    full = ocr.OcrReader(det_side=W, det_min_side=None, engines={"det": reader.det, "rec": reader.rec,
                         "cls": reader.cls}, charset=reader.classes[1:-1])
    mine = full.read(img)
    ref = RapidOCR(det_limit_type="max", intra_op_num_threads=2, inter_op_num_threads=1)
    result, _ = ref(np.ascontiguousarray(img[:, :, ::-1]))  # rapidocr takes BGR arrays
    assert [r[1] for r in result] == [b.text for b in mine] == [b.text for b in boxes]
    for (quad, _, conf), b in zip(result, mine):
        assert np.abs(np.asarray(quad) - b.quad).max() <= 2.5
        assert conf == pytest.approx(b.confidence, abs=0.05)


@needs_models
def test_small_frames_are_detected_upscaled_as_rapidocr_does(reader, scene):
    """A 640x360 frame: the shorter side is scaled up to 736 for detection, as rapidocr's default
    (``det_limit_type="min"``, 736) does: the same lines and text as rapidocr (a space inside the
    small line may differ: our crops come from float quads), quads within its rounding."""
    for mod in ("pyclipper", "shapely", "yaml", "PIL"):
        pytest.importorskip(mod, reason=f"rapidocr's own pipeline (the reference) needs {mod}")
    from rapidocr_onnxruntime import RapidOCR

    img = cv2.resize(scene[0], (640, 360), interpolation=cv2.INTER_AREA)
    mine = reader.read(img)
    result, _ = RapidOCR(intra_op_num_threads=2, inter_op_num_threads=1)(np.ascontiguousarray(img[:, :, ::-1]))
    nospace = lambda t: t.replace(" ", "")  # noqa: E731 - a space in a small line hangs on a pixel of the crop
    assert [nospace(r[1]) for r in result] == [nospace(b.text) for b in mine]
    assert {"FRAGILE", "TAPE"} <= {b.text.upper() for b in mine}
    for (quad, _, conf), b in zip(result, mine):
        assert np.abs(np.asarray(quad) - b.quad).max() <= 2.5
        assert conf == pytest.approx(b.confidence, abs=0.05)


# ---- model files -----------------------------------------------------------------------------------


@needs_models
def test_manifests_match_the_installed_files():
    files = ocr.default_model_files()
    assert set(files) == {"det", "rec", "cls"}
    for role, (path, m) in files.items():
        assert m.name == ocr.MANIFESTS[role] and m.package == ocr.PACKAGE
        assert path.stat().st_size == m.size and "Apache-2.0" in m.licence and "rapidocr-onnxruntime==1.4.4" in m.source
    chars = ocr.charset_from_model(files["rec"][0], files["rec"][1].extra["charset_size"])
    assert len(chars) == 6623 and set("FRAGILETAPEfragiletape0123456789") <= set(chars)
    assert ocr.read_onnx_metadata(files["det"][0]) == {}
    with pytest.raises(InputError, match="no 'character' metadata"):
        ocr.charset_from_model(files["det"][0])
    with pytest.raises(InputError, match="manifest says 5"):
        ocr.charset_from_model(files["rec"][0], 5)


def _fake_package(tmp_path, monkeypatch, role: str, tamper: bool) -> Manifest:
    """A package 'fake_ppocr' on sys.path holding a copy of the real model, and a manifest pointing at it."""
    real = Manifest.named(ocr.MANIFESTS[role])
    pkg = tmp_path / "fake_ppocr"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    copy = pkg / "models" / real.file
    shutil.copyfile(real.locate(), copy)
    if tamper:
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit, same size
        copy.write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(tmp_path))
    toml = real.path.read_text().replace(f'package = "{ocr.PACKAGE}"', 'package = "fake_ppocr"')
    (tmp_path / "m.toml").write_text(toml)
    m = Manifest.load(tmp_path / "m.toml")
    assert m.package == "fake_ppocr" and m.locate() == copy
    return m


@needs_models
def test_a_tampered_model_file_is_refused_by_name(tmp_path, monkeypatch):
    m = _fake_package(tmp_path, monkeypatch, "det", tamper=True)
    with pytest.raises(InputError, match=r"fake_ppocr/models/ch_PP-OCRv4_det_infer\.onnx has sha256 .*tampered"):
        ocr.default_model_files(manifests={"det": m})
    with pytest.raises(InputError, match=r"ch_PP-OCRv4_det_infer\.onnx has sha256"):
        ocr.OcrReader(manifests={"det": m})


@needs_models
def test_an_intact_copy_is_accepted(tmp_path, monkeypatch):
    m = _fake_package(tmp_path, monkeypatch, "cls", tamper=False)
    files = ocr.default_model_files(manifests={"cls": m})
    assert files["cls"][0].parent.parent.name == "fake_ppocr"
    assert hashlib.sha256(files["cls"][0].read_bytes()).hexdigest() == m.sha256


def test_missing_package_names_the_pip_command(tmp_path):
    real = Manifest.named(ocr.MANIFESTS["rec"])
    (tmp_path / "m.toml").write_text(real.path.read_text().replace(ocr.PACKAGE, "no_such_ocr_package_xyz"))
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps rapidocr-onnxruntime==1\.4\.4"):
        ocr.default_model_files(manifests={"rec": Manifest.load(tmp_path / "m.toml")})


def test_unreadable_onnx_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 16)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        ocr.read_onnx_metadata(bad)


# ---- bad input -------------------------------------------------------------------------------------


@needs_models
@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((32, 32, 3), np.float32), "uint8"),
        (np.zeros((32, 32), np.uint8), "H x W x 3"),
        (np.zeros((32, 32, 4), np.uint8), "H x W x 3"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_input_errors(reader, image, match):
    with pytest.raises(InputError, match=match):
        reader.read(image)


@needs_models
def test_bad_settings_are_input_errors(reader):
    with pytest.raises(InputError, match="min_confidence"):
        ocr.OcrReader(min_confidence=1.5, engines={}, charset=[])
    with pytest.raises(InputError, match="det_side"):
        ocr.OcrReader(det_side=8, engines={}, charset=[])
    with pytest.raises(InputError, match="without charset"):
        ocr.OcrReader(engines={"det": reader.det, "rec": reader.rec, "cls": reader.cls})
    with pytest.raises(InputError, match=r"lacks \['cls'\]"):
        ocr.OcrReader(engines={"det": reader.det, "rec": reader.rec}, charset=reader.classes[1:-1])
    with pytest.raises(InputError, match="6625 classes but the charset gives 5"):
        ocr.OcrReader(engines={"det": reader.det, "rec": reader.rec, "cls": reader.cls}, charset=["a", "b", "c"])


# ---- assignment (geometry only, no model) ---------------------------------------------------------


def _box(text: str, x: float, y: float, w: float, h: float) -> "ocr.TextBox":
    quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    return ocr.TextBox(text, 0.9, quad, (x, y, w, h))


def test_assign_text_overlap_threshold_smallest_region_and_reading_order():
    big = gm.encode(_rect_mask(0, 0, 600, 400))
    small = gm.encode(_rect_mask(100, 100, 300, 200))
    right = gm.encode(_rect_mask(800, 0, 200, 200))
    boxes = [
        _box("second", 260, 150, 100, 20),  # same line as "first", further right
        _box("first", 120, 152, 100, 20),
        _box("third", 120, 200, 100, 20),  # next line
        _box("outside", 300, 350, 100, 20),  # in big only
        _box("half", 750, 10, 100, 20),  # exactly half inside `right`
        _box("nowhere", 1100, 600, 100, 20),
    ]
    assert ocr.assign_text(boxes, [big, small, right]) == [["outside"], ["first", "second", "third"], ["half"]]
    assert ocr.assign_text(boxes, [big, small, right], min_overlap=0.6)[2] == []
    assert ocr.assign_text(boxes, [big, small, right], min_overlap=1.0)[1] == ["first", "second", "third"]
    # a rotated quad counts by its polygon area, not its bbox: 82 % of this diamond lies right of
    # x = 760, but only 70 % of its bbox
    diamond = ocr.TextBox("diamond", 0.9, np.array([[700, 100], [800, 50], [900, 100], [800, 150]], np.float32),
                          (700, 50, 200, 100))
    strip = gm.encode(_rect_mask(760, 0, 240, 200))
    assert ocr.assign_text([diamond], [strip], min_overlap=0.8) == [["diamond"]]
    assert ocr.assign_text([diamond], [strip], min_overlap=0.85) == [[]]


def test_assign_text_edge_cases():
    r = gm.encode(_rect_mask(0, 0, 100, 100))
    assert ocr.assign_text([], [r]) == [[]]
    assert ocr.assign_text([_box("x", 10, 10, 20, 20)], []) == []
    flat = ocr.TextBox("flat", 0.9, np.array([[10, 10], [50, 10], [50, 10], [10, 10]], np.float32), (10, 10, 40, 0))
    assert ocr.assign_text([flat], [r]) == [[]]  # covers no pixel
    other = gm.encode(np.zeros((50, 50), bool))
    with pytest.raises(InputError, match="one image size"):
        ocr.assign_text([_box("x", 10, 10, 20, 20)], [r, other])
    with pytest.raises(InputError, match="COCO RLE dicts"):
        ocr.assign_text([_box("x", 10, 10, 20, 20)], [np.zeros((4, 4), bool)])
    with pytest.raises(InputError, match="min_overlap"):
        ocr.assign_text([_box("x", 10, 10, 20, 20)], [r], min_overlap=0)
    bad = ocr.TextBox("bad", 0.9, np.zeros((3, 2), np.float32), (0, 0, 0, 0))
    with pytest.raises(InputError, match=r"boxes\[0\]\.quad"):
        ocr.assign_text([bad], [r])


def test_reading_order():
    assert ocr.reading_order([]) == []
    # two lines; the second line's boxes are given first and right-to-left
    bbs = [(300, 100, 50, 20), (10, 102, 50, 20), (200, 10, 50, 20), (20, 8, 50, 20)]
    assert ocr.reading_order(bbs) == [3, 2, 1, 0]


def test_text_box_to_dict():
    d = _box("TAPE", 1, 2, 3, 4).to_dict()
    assert d == {"text": "TAPE", "confidence": pytest.approx(0.9), "quad": [[1, 2], [4, 2], [4, 6], [1, 6]], "bbox": [1, 2, 3, 4]}
