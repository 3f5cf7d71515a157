"""Direct-mode training data from the data engine (gear_edge.data_engine.deducer_data): verified,
in the grammar's answer layout, the exact prompt the direct deducer sends, separate held-out
phrasings, deterministic and resumable."""

from __future__ import annotations

import json

import pytest

from gear_edge.data_engine import deducer_data as dd
from gear_edge.data_engine.generate import PHRASINGS
from gear_edge.deduce.grammar import parse_scene_answer, scene_answer_schema
from gear_edge.errors import InputError
from tests.llm_fixtures import RecordingLLM

SETTINGS = dd.Settings(seed=3, train_scenes=3, heldout_scenes=2, per_class=2)


def test_heldout_phrasings_share_no_template_with_training():
    assert set(dd.HELDOUT_PHRASINGS) == set(PHRASINGS)
    train = {t for ts in dd.TRAIN_PHRASINGS.values() for t in ts}
    held = {t for ts in dd.HELDOUT_PHRASINGS.values() for t in ts}
    assert not train & held
    ex, _ = dd.scene_examples("heldout", 0, SETTINGS)
    assert ex and not {e["query"] for e in ex} & {e["query"] for e in dd.scene_examples("train", 0, SETTINGS)[0]}
    assert dd.scene_seed(0, "train", 7) != dd.scene_seed(0, "heldout", 7)


def test_examples_are_verified_grammar_answers_of_the_direct_prompt():
    from gear_edge.deduce.direct import DirectDeducer
    from gear_edge.deduce import prompts

    classes, absent = set(), 0
    for split in dd.SPLITS:
        for i in range(2):
            examples, counts = dd.scene_examples(split, i, SETTINGS)
            scene = dd.random_scene(dd.scene_seed(SETTINGS.seed, split, i))
            assert counts["kept"] == len(examples) and counts["written"] >= len(examples)
            for ex in examples:
                classes.add(ex["cls"])
                assert ex["verified"] == "agree" and ex["split"] == split
                schema = scene_answer_schema(sorted(scene.ids), dd.MAX_STEPS, dd.MAX_STEP_CHARS)
                steps, targets = parse_scene_answer(ex["target"], schema)
                assert targets == ex["targets"] and 1 <= len(steps) <= dd.MAX_STEPS
                absent += not targets
                # the direct deducer, given this target as the model's output, answers with these
                # regions, and prompted with exactly this example's pieces
                llm = RecordingLLM(ex["target"])
                a = DirectDeducer(llm).deduce(scene, ex["query"])
                assert sorted(a.targets) == ex["targets"]
                system, scene_text, question, examples_used = llm.calls[-1]
                assert (system, scene_text, question) == (ex["system"], ex["scene"], ex["question"])
                assert examples_used == prompts.DIRECT_EXAMPLES
    assert absent > 0 and len(classes) >= 6, classes


def test_dataset_is_deterministic_and_resumes_to_the_same_files(tmp_path):
    whole = dd.write_dataset(tmp_path / "whole", SETTINGS)
    assert whole["splits"]["train"]["scenes"] == 3 and whole["splits"]["heldout"]["scenes"] == 2
    assert whole["splits"]["train"]["examples"] > 10
    part = tmp_path / "part"
    dd.write_dataset(part, dd.Settings(**{**SETTINGS.__dict__, "train_scenes": 1, "heldout_scenes": 0}))
    with open(part / "train.jsonl", "ab") as f:
        f.write(b'{"interrupted": ')  # a scene cut off mid-write: dropped on resume
    dd.write_dataset(part, SETTINGS)
    for split in dd.SPLITS:
        assert (part / f"{split}.jsonl").read_bytes() == (tmp_path / "whole" / f"{split}.jsonl").read_bytes()
    lines = [json.loads(x) for x in (part / "train.jsonl").read_text().splitlines()]
    assert len(lines) == whole["splits"]["train"]["examples"]
    with pytest.raises(InputError, match="other settings"):
        dd.write_dataset(part, dd.Settings(**{**SETTINGS.__dict__, "seed": 4}))


def test_evaluation_rebuilds_each_scene_and_scores_answers(tmp_path):
    """evaluate_direct on a written split: the program deducer (which verified every example) scores
    100 %; a deducer that always answers nothing scores exactly the absent examples; a scene block the
    current scene text would not write, and a broken line, are refused by name."""
    from gear_edge.deduce.program.deducer import ProgramDeducer
    from gear_edge.types import Answer

    dd.write_dataset(tmp_path, SETTINGS)
    examples = dd.read_examples(tmp_path / "heldout.jsonl", dd.EVAL_KEYS)
    res = dd.evaluate_direct(examples, ProgramDeducer(llm=None, embedder=None))
    assert res["total"] == len(examples) and res["correct"] == res["total"]
    n_absent = sum(not ex["targets"] for ex in examples)
    assert 0 < n_absent < len(examples)

    class Nothing:
        def deduce(self, scene, query):
            return Answer(query=query, targets=[], steps=[], mode="direct")

    res = dd.evaluate_direct(examples, Nothing(), limit=len(examples) - 1)
    assert res["total"] == len(examples) - 1
    assert res["correct"] == sum(not r["want"] for r in res["rows"]) == res["absent_answered_nothing"]["correct"]
    assert sum(t["total"] for t in res["per_class"].values()) == res["total"]
    stale = [dict(examples[0], scene=examples[0]["scene"].replace("R1:", "R1: old"))]
    with pytest.raises(InputError, match="another version"):
        dd.evaluate_direct(stale, Nothing())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(examples[0]) + "\n{\"query\": \n")
    with pytest.raises(InputError, match="bad.jsonl:2"):
        dd.read_examples(bad, dd.EVAL_KEYS)
    bad.write_text(json.dumps({k: v for k, v in examples[0].items() if k != "cls"}) + "\n")
    with pytest.raises(InputError, match="bad.jsonl:1: example lacks cls"):
        dd.read_examples(bad, dd.EVAL_KEYS)
