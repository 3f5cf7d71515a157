"""Several threads on one model: LocalLLM (native llama.cpp state) and GearSeg.ask serialise instead
of crashing, and give exactly the answers a single thread gives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gear_edge.deduce.llm import Content
from tests.llm_fixtures import box_scene, needs_llm, shared_llm

THREADS, PER_THREAD = 4, 25
SCENES = [f"Scene {k}: R1 red box left, R2 blue cup right, R{k + 3} green ball." for k in range(2)]
QUERIES = ["Which region is red?", "Name the cup.", "Which is green?"]


def _job(llm, i: int):
    k = i % len(SCENES)  # threads alternate scenes, so prefixes are stored, restored and evicted concurrently
    prefix = ["<|im_start|>user\n", Content(SCENES[k])]
    suffix = [Content(" " + QUERIES[i % len(QUERIES)]), "<|im_end|>\n<|im_start|>assistant\n"]
    grammar = 'root ::= "R" [1-9]' if i % 2 else None  # half the calls also build a grammar sampler
    g = llm.generate(f"scene-{k}", prefix, suffix, grammar, max_tokens=2)
    return i, g.text


@needs_llm
def test_local_llm_from_four_threads_is_serialised_and_exact():
    llm = shared_llm()
    jobs = list(range(THREADS * PER_THREAD))
    expected = dict(_job(llm, i) for i in range(len(SCENES) * len(QUERIES) * 2))  # one thread: the reference
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(mine):
        start.wait()
        out = []
        for i in mine:
            try:
                out.append(_job(llm, i))
            except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(exc)
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        results = [r for part in pool.map(worker, [jobs[t::THREADS] for t in range(THREADS)]) for r in part]
    assert not errors, errors[:3]
    assert len(results) == THREADS * PER_THREAD
    for i, text in results:
        assert text == expected[i % len(expected)], (i, text)


@needs_llm
def test_gearseg_ask_from_four_threads_builds_once_and_answers_as_one_thread():
    from gear_edge.config import load_config
    from gear_edge.pipeline import GearSeg

    # nothing preloaded: the four threads' first asks race to build the deducer and the LLM
    gs = GearSeg(load_config("default", {"deduce.mode": "direct", "describe.ocr": False, "deduce.n_ctx": 1024, "runtime.threads": 1}))
    scene = box_scene([("red", 5, 5, 40, 40), ("blue", 60, 10, 110, 50), ("green", 20, 70, 90, 110)])
    queries = ["the red box", "the thing on the right"] * 2
    start = threading.Barrier(THREADS)

    def first_ask(q):
        start.wait()
        return gs.deducer, gs.ask(scene, q)

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(first_ask, queries))
    assert len({id(d) for d, _ in got}) == 1 and gs.deducer.llm is gs.llm  # one deducer, one model
    reference = {q: gs.ask(scene, q).targets for q in set(queries)}  # one thread, afterwards
    for q, (_, a) in zip(queries, got):
        assert a.mode == "direct" and a.completion_tokens > 0  # the LLM answered it
        assert a.targets == reference[q], q
