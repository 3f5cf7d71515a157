"""GearSeg end to end on the default profile: real segmenter, real describe, real LLM deducer.

Scenes are synthetic with exact masks (tests/scenes.py); the answer's mask must match the truth.
Most queries are parsed without the LLM; ``test_the_llm_is_called_*`` asks ones that need it and
checks that the real SmolLM2 GGUF ran (tokens evaluated and generated, its step in the chain).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.errors import InputError
from gear_edge.io import read_image, write_png
from gear_edge.pipeline import GearSeg
from gear_edge.types import Answer, Scene
from tests.scenes import TABLETOP_QUERIES, tabletop

llama_cpp = pytest.importorskip("llama_cpp", reason="the default deducer needs llama-cpp-python (the [llm] extra)")


@pytest.fixture(scope="module")
def gs():
    return GearSeg.from_config("default", {"describe.ocr": "false"})


@pytest.fixture(scope="module")
def table_scene(gs):
    s = tabletop()
    return s, gs.perceive(s.image)


def mask_iou(rle, truth: np.ndarray) -> float:
    return float(gm.iou([rle], [gm.encode(truth)])[0, 0])


@pytest.mark.parametrize("query", list(TABLETOP_QUERIES))
def test_tabletop_queries(gs, table_scene, query):
    s, scene = table_scene
    answer = gs.ask(scene, query)
    want = TABLETOP_QUERIES[query]
    assert answer.steps, "the logic chain is empty"
    assert all(t in scene.ids for t in answer.targets)
    if not want:
        assert answer.targets == [] and answer.mask is None
        return
    truth = np.logical_or.reduce([s.masks[n] for n in want])
    assert answer.mask is not None, f"{query!r}: no target ({[st.text for st in answer.steps]})"
    assert mask_iou(answer.mask, truth) >= 0.9, (query, answer.targets, [st.text for st in answer.steps])


def test_scene_and_answer_round_trip_json(gs, table_scene):
    _, scene = table_scene
    again = Scene.from_json(scene.to_json())
    assert again.to_dict() == json.loads(scene.to_json())
    answer = gs.ask(scene, "the red object")
    assert Answer.from_dict(json.loads(answer.to_json())) == answer
    assert answer.bitmap().shape == scene.image_size
    assert {"segment", "describe.geometry", "perceive"} <= set(scene.timings)
    assert "ask" in answer.timings


def test_segment_is_perceive_plus_ask(gs):
    s = tabletop()
    answer = gs.segment(s.image, "the red object")
    assert mask_iou(answer.mask, s.masks["box"]) >= 0.9
    assert "perceive" in answer.timings and "ask" in answer.timings


def test_bad_queries_do_not_lose_the_scene(gs, table_scene):
    s, scene = table_scene
    for bad in ("", "   "):
        with pytest.raises(InputError, match="query"):
            gs.ask(scene, bad)
    with pytest.raises(InputError, match="query"):
        gs.ask(scene, "the red object " * 5000)  # longer than the context
    answer = gs.ask(scene, "the red object")
    assert mask_iou(answer.mask, s.masks["box"]) >= 0.9


def test_bad_images_are_named(gs, tmp_path):
    with pytest.raises(InputError, match="uint8"):
        gs.perceive(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match="H x W x 3"):
        gs.perceive(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="empty"):
        gs.perceive(np.zeros((0, 10, 3), np.uint8))
    png = write_png(tmp_path / "t.png", tabletop().image)
    data = png.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff not a jpeg \xff\xd9")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "junk.jpg")
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_missing_model_is_named(tmp_path):
    gs = GearSeg.from_config("default", {"describe.ocr": "false", "deduce.model": str(tmp_path / "nope.gguf")})
    s = tabletop()
    scene = gs.perceive(s.image)  # perception does not need the LLM
    with pytest.raises(InputError, match="nope.gguf"):
        gs.ask(scene, "the red object")


def test_callers_masks_skip_the_segmenter(gs):
    s = tabletop()
    masks = np.stack([s.masks[k] for k in ("table", "box", "ball")])
    scene = gs.perceive(s.image, masks=masks)
    assert scene.meta["segmenter"] == "caller" and len(scene.regions) == 3
    answer = gs.ask(scene, "the red object")
    assert answer.targets == [1]


def _llm_calls(gs) -> int:
    return sum(gs.llm.stats[k] for k in ("hits", "misses", "live"))


def test_the_llm_is_called_in_program_mode(gs, table_scene):
    _, scene = table_scene
    # the default profile translates with the shipped program adapter: a word the parser does not know
    # ("ruby"), whose own words find nothing, reaches it and the chain shows its program
    assert gs.deducer.llm_role == "translate"
    before = _llm_calls(gs)
    answer = gs.ask(scene, "pass me the ruby thing")
    assert _llm_calls(gs) == before + 1, "the query did not reach the LLM"
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert answer.meta["llm"]["adapter"] == "program-lora.gguf"
    assert any("translated the query" in st.text for st in answer.steps), [st.text for st in answer.steps]
    assert set(answer.targets) <= set(scene.ids)
    # without an adapter "auto" never asks the plain SmolLM2-135M: measured not to help
    # (benchmarks/bench_deduce_quality.py); "always" asks it to name objects
    plain = GearSeg.from_config("default", {"describe.ocr": "false", "deduce.adapter": ""})
    skipped = plain.ask(scene, "something to drink coffee from")
    assert skipped.prompt_tokens == 0
    assert any("LLM skipped" in st.text and "SmolLM2-135M" in st.text for st in skipped.steps)
    always = GearSeg.from_config("default", {"describe.ocr": "false", "deduce.adapter": "",
                                             "deduce.program_llm": "always"})
    answer = always.ask(scene, "something to drink coffee from")  # a use, not a word the parser knows
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert any(st.text.startswith("LLM (") for st in answer.steps), [st.text for st in answer.steps]
    assert set(answer.targets) <= set(scene.ids)


def test_the_llm_is_called_in_direct_mode(gs, table_scene):
    s, scene = table_scene
    direct = GearSeg.from_config("default", {"describe.ocr": "false", "deduce.mode": "direct"})
    before = _llm_calls(direct)
    answer = direct.ask(scene, "the red object")
    assert _llm_calls(direct) > before and answer.mode == "direct"
    assert answer.prompt_tokens > 100 and answer.completion_tokens > 0
    assert set(answer.targets) <= set(scene.ids)  # SmolLM2-135M's choice is reported, not scored here
