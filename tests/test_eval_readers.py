"""Dataset readers on small synthetic ReasonSeg / RefCOCO files, and an end-to-end ReasonSeg eval of the
real default pipeline on a synthetic tabletop with exact masks."""

from __future__ import annotations

import json
import os
import pickle

import cv2
import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.errors import InputError
from gear_edge.eval.readers import read_reasonseg, read_refcoco


def _png(path, h, w):
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


def _reasonseg(folder, name, shapes, text, is_sentence=False, size=(40, 50)):
    folder.mkdir(parents=True, exist_ok=True)
    _png(folder / f"{name}.jpg", *size)
    (folder / f"{name}.json").write_text(json.dumps({"shapes": shapes, "text": text, "is_sentence": is_sentence}))


# ---- ReasonSeg -------------------------------------------------------------------------------------------

def test_reasonseg_target_is_drawn_as_lisa_draws_it(tmp_path):
    shapes = [
        {"label": "target", "points": [[5, 5], [20.9, 5], [20.9, 15], [5, 15]]},  # int32: x 5..20
        {"label": "ignore", "points": [[8, 8], [10, 8], [10, 10], [8, 10]]},  # smaller: drawn on top
        {"label": "flag", "points": [[0, 0], [49, 0], [49, 39]]},  # deprecated: skipped
    ]
    _reasonseg(tmp_path, "a", shapes, ["the cup on the left", "the other query"], is_sentence=True)
    samples = read_reasonseg(tmp_path)
    assert len(samples) == 1  # LISA's validation: the first query of each image
    s = samples[0]
    assert (s.query, s.cls, s.image_path.name) == ("the cup on the left", "sentence", "a.jpg")
    m = s.target((40, 50))
    want = np.zeros((40, 50), np.uint8)
    want[5:16, 5:21] = 1
    want[8:11, 8:11] = 255
    assert np.array_equal(m, want)
    assert [x.query for x in read_reasonseg(tmp_path, all_queries=True)] == ["the cup on the left", "the other query"]


def test_reasonseg_bad_files_are_named(tmp_path):
    _reasonseg(tmp_path / "a", "x", [], ["q"])
    (tmp_path / "a" / "x.json").write_text(json.dumps({"shapes": []}))
    with pytest.raises(InputError, match=r"x.json: missing field 'text'"):
        read_reasonseg(tmp_path / "a")
    _reasonseg(tmp_path / "b", "y", [{"label": "target"}], ["q"])
    with pytest.raises(InputError, match=r"y.json: shapes\[0\] needs 'label' and 'points'"):
        read_reasonseg(tmp_path / "b")[0].target((40, 50))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "z.json").write_text(json.dumps({"shapes": [], "text": ["q"]}))
    with pytest.raises(InputError, match="z.json: no image next to it"):
        read_reasonseg(tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.json").write_text("{not json")
    with pytest.raises(InputError, match="w.json is not valid JSON"):
        read_reasonseg(tmp_path / "d")
    with pytest.raises(InputError, match="does not exist"):
        read_reasonseg(tmp_path / "nope")


# ---- RefCOCO ---------------------------------------------------------------------------------------------

@pytest.fixture()
def refcoco(tmp_path):
    from pycocotools import mask as mask_utils

    h, w = 30, 40
    (tmp_path / "images").mkdir()
    _png(tmp_path / "images" / "COCO_0001.jpg", h, w)
    m2 = np.zeros((h, w), np.uint8, order="F")
    m2[20:28, 25:38] = 1
    rle2 = mask_utils.encode(m2)
    rle2["counts"] = rle2["counts"].decode()
    instances = {
        "images": [{"id": 7, "file_name": "COCO_0001.jpg", "height": h, "width": w}],
        "annotations": [
            {"id": 1, "image_id": 7, "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]], "bbox": [2, 2, 10, 8]},
            {"id": 2, "image_id": 7, "segmentation": rle2, "bbox": [25, 20, 13, 8]},
            # uncompressed RLE (column-major runs), as COCO stores crowd regions: rows 1-2 of column 0
            {"id": 3, "image_id": 7, "segmentation": {"size": [h, w], "counts": [1, 2, h * w - 3]}, "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    refs = [
        {"ref_id": 10, "image_id": 7, "ann_id": 1, "split": "val", "sentences": [{"sent": "Left Box"}, {"sent": "the box"}]},
        {"ref_id": 11, "image_id": 7, "ann_id": 2, "split": "test", "sentences": [{"sent": "right one"}]},
        {"ref_id": 12, "image_id": 7, "ann_id": [1, 2], "split": "val", "sentences": [{"sent": "both"}]},
        {"ref_id": 13, "image_id": 7, "ann_id": [-1], "split": "val", "sentences": [{"sent": "a dog"}]},
        {"ref_id": 14, "image_id": 7, "ann_id": 3, "split": "val", "sentences": ["  A Crowd "]},
    ]
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    with open(tmp_path / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f)
    m1 = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[2, 2, 12, 2, 12, 10, 2, 10]], h, w)))
    return tmp_path, m1.astype(bool), m2.astype(bool)


def test_refcoco_samples_and_targets(refcoco):
    root, m1, m2 = refcoco
    for refs in ("refs.json", "refs(unc).p"):
        samples = read_refcoco(root / "instances.json", root / refs, root / "images", split="val")
        assert [(s.query, s.cls) for s in samples] == [("left box", "single"), ("the box", "single"),
                                                     ("both", "multi"), ("a dog", "none"), ("a crowd", "single")]
        crowd = np.zeros((30, 40), np.uint8)
        crowd[1:3, 0] = 1
        assert np.array_equal(samples[4].target((30, 40)), crowd)
        assert np.array_equal(samples[0].target((30, 40)), m1.astype(np.uint8))
        assert np.array_equal(samples[2].target((30, 40)), (m1 | m2).astype(np.uint8))
        assert not samples[3].target((30, 40)).any()
        assert samples[0].image_path == root / "images" / "COCO_0001.jpg"
    everything = read_refcoco(root / "instances.json", root / "refs.json", root / "images", split=None)
    assert len(everything) == 6
    with pytest.raises(InputError, match=r"image is \(31, 40\) but its annotation says \(30, 40\)"):
        everything[0].target((31, 40))


def test_refcoco_bad_inputs_and_hostile_pickles(refcoco):
    root, _, _ = refcoco

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'pwned'}",))

    (root / "evil.p").write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(InputError, match=r"evil.p: refs pickle references (posix|os)\.system"):
        read_refcoco(root / "instances.json", root / "evil.p", root / "images")
    assert not (root / "pwned").exists()
    (root / "bad_refs.json").write_text(json.dumps([{"image_id": 7, "ann_id": 99, "split": "val", "sentences": ["x"]}]))
    with pytest.raises(InputError, match=r"names ann_id \[99\] not in"):
        read_refcoco(root / "instances.json", root / "bad_refs.json", root / "images")
    with pytest.raises(InputError, match="no refs in split 'train'"):
        read_refcoco(root / "instances.json", root / "refs.json", root / "images", split="train")
    (root / "broken.json").write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="broken.json: missing list field 'annotations'"):
        read_refcoco(root / "broken.json", root / "refs.json", root / "images")


# ---- end to end: the real default pipeline on a ReasonSeg-style folder, through the CLI ----------------------

def test_reasonseg_eval_of_the_default_pipeline(tmp_path, capsys):
    pytest.importorskip("skimage")
    from gear_edge.cli import main
    from tests.scenes import tabletop

    s = tabletop()
    folder = tmp_path / "reasonseg"
    folder.mkdir()
    for name, query, mask in (("box", "the red object", s.masks["box"]), ("nothing", "the purple elephant", None)):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))  # lossless
        shapes = [] if mask is None else [
            {"label": "target", "points": np.asarray(p).reshape(-1, 2).tolist()} for p in gm.to_polygons(mask)]
        (folder / f"{name}.json").write_text(json.dumps({"shapes": shapes, "text": [query], "is_sentence": False}))
    out = tmp_path / "eval"
    assert main(["eval", str(folder), "--out", str(out), "--set", "describe.ocr=false", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "phrase" in printed and "gIoU" in printed
    samples = json.loads((out / "samples.json").read_text())
    summary = json.loads((out / "eval.json").read_text())
    by_query = {r["query"]: r for r in samples}
    assert by_query["the purple elephant"]["iou"] == 1.0 and by_query["the purple elephant"]["union"] == 0
    # the target is drawn LISA's way (cv2 fills the polygon's boundary pixels too: one px wider than the mask)
    assert by_query["the red object"]["iou"] >= 0.95
    assert summary["format"] == "reasonseg" and summary["n"] == 2 and summary["gIoU"] >= 0.95
    assert summary["by_class"]["phrase"]["n"] == 2
    assert (out / "per_class.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_cli_errors(tmp_path, capsys, monkeypatch):
    import sys

    from gear_edge.cli import main
    from gear_edge.errors import MissingDependencyError
    from gear_edge.eval.plot import plot_per_class

    (tmp_path / "instances.json").write_text("{}")
    assert main(["eval", str(tmp_path / "instances.json"), "--no-progress"]) == 2
    assert "for RefCOCO pass --refs REFS and --images DIR" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'gear-edge\[dev\]'.*--no-plot"):
        plot_per_class({"by_class": {}, "n": 0, "gIoU": None, "cIoU": None}, tmp_path / "p.png")
