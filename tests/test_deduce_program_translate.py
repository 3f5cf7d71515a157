"""The program translator: the compact program layout (parse → compact → grammar → Program), its
errors, the program deducer's "translate" role, and the data engine's program examples."""

from __future__ import annotations

import json

import pytest

from gear_edge.data_engine import deducer_data as dd
from gear_edge.data_engine import program_data as pd
from gear_edge.deduce.grammar import check, parse
from gear_edge.deduce.program.compact import compact_grammar, compact_schema, from_compact, to_compact
from gear_edge.deduce.program.deducer import ProgramDeducer
from gear_edge.deduce.program.parser import parse as parse_query
from gear_edge.deduce.program.translate import ProgramTranslator
from gear_edge.errors import InputError
from tests.llm_fixtures import RecordingLLM, needs_llm, shared_llm, tabletop_scene

# tabletop_scene: R1 black bar (table), R2 red box "FRAGILE", R3 blue box, R4 yellow square, R5 green bar
ROUND_TRIP = {
    "the red box": [2],
    "everything except the black one": [2, 3, 4, 5],
    "the second object from the left": [4],  # centroids: R2 30, R4 77.5, R1 80
    "the largest object": [1],
    "the thing that says FRAGILE": [2],
    "the blue thing and the yellow one": [3, 4],
    "the object left of the blue one": [2],
    "the two smallest objects": [4, 5],
}


@pytest.mark.parametrize("query", sorted(ROUND_TRIP))
def test_compact_layout_keeps_what_the_parsed_program_finds(query):
    scene = tabletop_scene()
    d = ProgramDeducer(llm=None, embedder=None)
    program = parse_query(query)
    assert sorted(d.executor.run(scene, program)[0]) == ROUND_TRIP[query]
    compact = to_compact(program)
    assert compact is not None
    text = json.dumps(compact)
    check(compact, compact_schema())  # the layout the grammar admits, field for field
    assert parse(text, compact_schema()) == compact
    assert len(text) <= compact_grammar().max_bytes
    back = from_compact(json.loads(text), query)
    assert sorted(d.executor.run(scene, back)[0]) == ROUND_TRIP[query]


def test_programs_the_layout_cannot_hold_are_refused_not_approximated():
    assert to_compact(parse_query("the box between the red one and the blue one")) is None
    assert to_compact(parse_query("all blue or yellow things")) is None  # any-of values: no atom holds them
    p = parse_query("???")
    assert p.nothing and to_compact(p) == {"targets": []}
    assert from_compact({"targets": []}).nothing


def _spec(**kw):
    return {"targets": [{"attrs": [], **kw}]}


@pytest.mark.parametrize("data, words", [
    ({}, ["$", "'targets'"]),
    ({"targets": [], "answer": 3}, ["$", "other keys"]),
    ({"targets": [{"noun": "cup"}]}, ["targets[0]", "lacks 'attrs'"]),
    ({"targets": [{"attrs": [], "colour": "red"}]}, ["targets[0]", "unknown 'colour'"]),
    (_spec(attrs=["colour=mauve"]), ["targets[0].attrs", "colour=mauve"]),
    (_spec(rel="beside"), ["targets[0].rel", "beside"]),
    (_spec(rel="on"), ["targets[0].rel", "needs a ref"]),
    (_spec(rel="on", ref={"attrs": []}), ["targets[0].ref", "names nothing"]),
    (_spec(order="area desc 9"), ["targets[0].order", "area desc 9"]),
    (_spec(order="distance asc", rel="on", ref={"attrs": [], "noun": "cup"}), ["distance", "no rel"]),
    (_spec(ref={"attrs": [], "noun": "cup"}), ["targets[0].ref", "without a rel"]),
    (_spec(all="yes"), ["targets[0].all", "true or false"]),
    (_spec(attrs=["use=cut", "use=drink_from"]), ["uses"]),
])
def test_bad_compact_programs_name_the_field(data, words):
    with pytest.raises(InputError) as exc:
        from_compact(data)
    for w in words:
        assert w in str(exc.value)


def test_translate_role_runs_the_llms_program_only_where_the_own_words_find_nothing():
    scene = tabletop_scene()
    program = _spec(attrs=["colour=red"])
    llm = RecordingLLM(json.dumps(program))
    d = ProgramDeducer(llm=llm, embedder=None, llm_use="always", llm_role="translate")
    a = d.deduce(scene, "pass me the ruby thing")
    assert a.targets == [2]
    chain = "\n".join(s.text for s in a.steps)
    assert "translated the query" in chain and "colour red" in chain
    assert llm.calls and llm.calls[-1][2] == "pass me the ruby thing"
    # a parsed query never reaches the LLM
    n = len(llm.calls)
    assert d.deduce(scene, "the blue box").targets == [3] and len(llm.calls) == n
    # the same query again: cached, not asked again
    assert d.deduce(scene, "pass me the ruby thing").targets == [2] and len(llm.calls) == n


def test_translate_role_keeps_the_phrases_answer_when_an_unusable_program_comes_back():
    scene = tabletop_scene()
    bad = json.dumps(_spec(order="distance asc"))  # admitted by the grammar, refused by from_compact
    parse(bad, compact_schema())
    d = ProgramDeducer(llm=RecordingLLM(bad), embedder=None, llm_use="always", llm_role="translate")
    a = d.deduce(scene, "pass me the ruby thing")
    assert a.targets == []
    chain = "\n".join(s.text for s in a.steps)
    assert "no program used (unusable program" in chain and "needs a ref" in chain


def test_a_translation_that_drops_the_vocabularys_reading_of_a_purpose_is_not_used():
    """'something to cut paper with' means use 'cut' to the vocabulary; where nothing here cuts, a program
    that looks for something else (a sponge cleans) would turn "nothing" into a wrong answer."""
    from tests.llm_fixtures import box_scene

    scene = box_scene([("red", 15, 60, 45, 90), ("blue", 100, 70, 125, 90)],
                      captions=["a yellow kitchen sponge", "a round metal lid"])
    for program, used in ((_spec(attrs=["use=clean"]), False), (_spec(attrs=["shape=round"]), False),
                          (_spec(attrs=["use=cut", "colour=red"]), True)):
        d = ProgramDeducer(llm=RecordingLLM(json.dumps(program)), embedder=None, llm_use="always",
                           llm_role="translate")
        a = d.deduce(scene, "something to cut paper with")
        chain = "\n".join(s.text for s in a.steps)
        assert "translated the query" in chain, chain
        assert ("not used: the vocabulary reads the purpose as use 'cut'" in chain) is (not used), chain
        assert a.targets == [], chain
    from gear_edge.deduce.program.executor import Trace

    would, _ = ProgramDeducer(llm=None, embedder=None).executor.run(
        scene, from_compact(_spec(attrs=["use=clean"]), "something to cut paper with"), Trace())
    assert would == [1]  # what the refused program would have answered
    # a phrase the vocabulary does not place is still the translator's to read
    d = ProgramDeducer(llm=RecordingLLM(json.dumps(_spec(attrs=["colour=blue"]))), embedder=None,
                       llm_use="always", llm_role="translate")
    assert d.deduce(scene, "pass me the sapphire thing").targets == [2]


def test_unknown_llm_role_is_refused():
    with pytest.raises(InputError, match="llm_role"):
        ProgramDeducer(llm=None, llm_role="guess")


@needs_llm
def test_real_model_translations_are_grammar_bounded_and_cached():
    t = ProgramTranslator(shared_llm())
    first = t.translate("find the canary thing touching the red item", budget_s=30)
    assert not first.cached and first.completion_tokens > 0
    # whatever the base model writes parses under the layout (or is refused with the field named)
    assert (first.program is not None) != bool(first.error), (first.raw, first.error)
    again = t.translate("find the canary thing touching the red item", budget_s=30)
    assert again.cached and again.raw == first.raw


# ---- program examples from the data engine -----------------------------------------------------

SETTINGS = dd.Settings(seed=5, train_scenes=3, heldout_scenes=2, per_class=2)


def test_rewording_tables_share_no_word_and_no_substitute_is_a_vocabulary_word():
    from gear_edge.vocabulary import COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS

    train = {w for v in pd.TRAIN_REWORDS.values() for w in v}
    held = {w for v in pd.HELDOUT_REWORDS.values() for w in v}
    assert train and held and not train & held
    known = set(COLOUR_WORDS) | set(SIZE_WORDS) | set(SHAPE_WORDS)
    assert not (train | held) & known


def test_program_examples_are_verified_on_their_scene_and_rewordings_keep_the_program():
    d = ProgramDeducer(llm=None, embedder=None)
    held_subs = {w for v in pd.HELDOUT_REWORDS.values() for w in v}
    reaching = 0
    for split in dd.SPLITS:
        for i in range(2):
            examples, counts = pd.scene_examples(split, i, SETTINGS)
            assert counts["kept"] == sum(e["variant"] == "as written" for e in examples) > 0
            scene = dd.random_scene(dd.scene_seed(SETTINGS.seed, split, i))
            written = {}
            for ex in examples:
                assert ex["task"] == "program" and ex["scene"] == "" and ex["question"] == ex["query"]
                program = from_compact(json.loads(ex["target"]), ex["query"])
                assert sorted(d.executor.run(scene, program)[0]) == sorted(ex["targets"])
                assert ex["reaches_llm"] == bool(d.parser.parse(ex["query"]).unresolved)
                if ex["variant"] == "as written":
                    written[ex["template"], tuple(ex["targets"])] = ex["target"]
                else:
                    assert ex["substitute"] in ex["query"] and ex["replaced"] not in ex["query"].split()
                    assert (split == "heldout") == (ex["substitute"] in held_subs)
                    assert written[ex["template"], tuple(ex["targets"])] == ex["target"]
                    reaching += ex["reaches_llm"]
    assert reaching > 0


def test_program_dataset_resumes_to_the_same_files(tmp_path):
    whole = pd.write_dataset(tmp_path / "whole", SETTINGS)
    part = pd.write_dataset(tmp_path / "part", SETTINGS, max_seconds=0.0)
    assert part["splits"]["train"]["scenes"] < 3
    with open(tmp_path / "part" / "train.jsonl", "ab") as f:
        f.write(b'{"half": ')  # an interrupted write after the last recorded scene
    pd.write_dataset(tmp_path / "part", SETTINGS)
    for split in dd.SPLITS:
        name = f"{split}.jsonl"
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()
    assert whole["settings"]["format"] == pd.FORMAT
    with pytest.raises(InputError, match="other settings"):
        dd.write_dataset(tmp_path / "whole", SETTINGS)  # a direct-mode writer on a program folder


# ---- the shipped program adapter ---------------------------------------------------------------

@needs_llm
def test_default_profile_translates_with_the_shipped_program_adapter():
    """Program mode on the default model: deduce.adapter = "auto" loads models/program-lora (its manifest
    says task = "program"), so the role is "translate" and the tuned model is asked; "fill" or no adapter
    go back to the object namer and the plain model (which "auto" never asks)."""
    from gear_edge.assemble import Assembly
    from gear_edge.config import load_config

    d = Assembly(load_config("default", {"describe.ocr": "false"})).get("deducer")
    assert d.llm_role == "translate" and not d.default_model
    scene = tabletop_scene()
    a = d.deduce(scene, "pass me the ruby thing")
    assert a.meta["llm"]["adapter"] == "program-lora.gguf"
    assert any("translated the query" in s.text for s in a.steps), [s.text for s in a.steps]
    fill = Assembly(load_config("default", {"deduce.program_llm_role": "fill"})).get("deducer")
    assert fill.llm_role == "fill"
    plain = Assembly(load_config("default", {"deduce.adapter": ""})).get("deducer")
    assert plain.llm_role == "fill" and plain.default_model


@needs_llm
def test_shipped_program_adapter_earns_its_place_on_unseen_rewordings():
    """Ablation on held-out rewordings (words never trained on) over scenes of another seed: on the
    queries that reach the LLM, the tuned translator answers clearly more exactly than no LLM."""
    from gear_edge.deduce.llm import PROGRAM_ADAPTER, LocalLLM
    from gear_edge.manifest import Manifest

    settings = dd.Settings(seed=11, per_class=2)
    cases = []
    for i in range(4):
        scene = dd.random_scene(dd.scene_seed(settings.seed, "heldout", i))
        cases += [(scene, ex["query"], ex["targets"]) for ex in pd.scene_examples("heldout", i, settings)[0]
                  if ex["reaches_llm"]]
    assert len(cases) >= 12
    off = ProgramDeducer(llm=None, embedder=None)
    tuned = ProgramDeducer(llm=LocalLLM(threads=2, lora_path=Manifest.named(PROGRAM_ADAPTER).locate()), embedder=None,
                           llm_use="always", llm_role="translate")
    scores = {name: sum(sorted(d.deduce(s, q).targets) == sorted(t) for s, q, t in cases) / len(cases)
              for name, d in (("off", off), ("tuned", tuned))}
    assert scores["tuned"] >= scores["off"] + 0.15, scores
