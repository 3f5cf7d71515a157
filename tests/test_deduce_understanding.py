"""How people ask: shape nouns, comparatives, exclusion, containment, edges and the viewer, features,
roles, content-free queries, malformed ordinals; the one vocabulary; the parser's registry and
re-entrancy; the program-mode LLM policy. Scenes here are this file's own (the held-out benchmark
in benchmarks/ is never used as a fixture)."""

from __future__ import annotations

import threading

import pytest

from gear_edge import vocabulary as V
from gear_edge.deduce.program import parser as P
from gear_edge.deduce.program.deducer import DEFAULT_MODEL_NOTE, ProgramDeducer
from gear_edge.deduce.program.parser import Parser, parse
from gear_edge.types import Geometry3D, Box3D
from tests.deduce_suite import BLUE, BROWN, GREEN, GREY, ORANGE, PINK, PURPLE, RED, WHITE, YELLOW, Obj, SceneSpec, scene_from_spec
from tests.llm_fixtures import needs_llm, shared_llm

# no captions: object words can only be checked by shape, text or role
BENCH = SceneSpec("understanding_bench", (
    Obj("wide_box", "rect", (40, 40, 200, 130), ORANGE),
    Obj("small_disc", "disk", (300, 90, 25), BLUE),
    Obj("big_disc", "disk", (450, 100, 60), BLUE),
    Obj("ring", "ring", (120, 330, 60, 28), PINK),
    Obj("dot_in_ring", "disk", (120, 330, 12), YELLOW),
    Obj("tri_big", "triangle", (250, 450, 400, 450, 325, 320), GREEN),
    Obj("tri_small", "triangle", (440, 450, 500, 450, 470, 395), GREEN),
    Obj("tri_purple", "triangle", (540, 450, 620, 450, 580, 380), PURPLE),
    Obj("rod", "rect", (560, 200, 580, 340), GREY, text=("AX-7",)),
))
TABLE = SceneSpec("understanding_table", (
    Obj("wall", "rect", (0, 0, 640, 180), WHITE),
    Obj("table", "rect", (0, 180, 640, 480), BROWN),
    Obj("red_block", "rect", (60, 250, 180, 330), RED),
    Obj("blue_block", "rect", (300, 300, 420, 420), BLUE),
    Obj("yellow_disc", "disk", (520, 230, 30), YELLOW),
))


@pytest.fixture(scope="module")
def bench():
    return scene_from_spec(BENCH)


@pytest.fixture(scope="module")
def table():
    scene, ids = scene_from_spec(TABLE)
    roles = {"wall": "background", "table": "support"}
    for r in scene.regions:
        name = next(k for k, v in ids.items() if v == r.id)
        r.role = roles.get(name, "object")
    return scene, ids


@pytest.fixture(scope="module")
def deducer():
    return ProgramDeducer(llm=None, embedder=None)


def ask(deducer, scene_ids, query):
    scene, ids = scene_ids
    inv = {v: k for k, v in ids.items()}
    a = deducer.deduce(scene, query)
    return {inv[t] for t in a.targets}, [s.text for s in a.steps]


# ---- the vocabulary ------------------------------------------------------------------------------

def test_describe_measures_triangles_and_uses_the_vocabularys_classes(bench):
    scene, ids = bench
    shapes = {n: scene.region(i).attributes["shape"] for n, i in ids.items()}
    assert all("triangular" in shapes[n] for n in ("tri_big", "tri_small", "tri_purple"))
    assert not any("triangular" in shapes[n] for n in ("wide_box", "small_disc", "big_disc", "ring", "rod"))
    assert scene.region(ids["tri_big"]).attributes["vertices"] == 3
    for r in scene.regions:  # the size class is the vocabulary's, from the area fraction
        assert r.attributes["size"] == V.size_class(r.attributes["area_frac"])
        assert set(r.attributes["shape"]) <= set(V.SHAPES)
    from gear_edge.data_engine import facts
    from gear_edge.describe import colours
    from gear_edge.deduce.program import ast

    assert colours.COLOUR_NAMES is V.COLOURS and ast.COLOURS is V.COLOURS and facts.COLOURS is V.COLOURS
    assert P.RELATION_PHRASES is V.RELATION_PHRASES


def test_direction_rule_is_one_function():
    # 50 % overlap on x: no left/right; less: the centroid order decides
    assert V.direction((0, 0, 10, 10), (5, 0, 10, 10), (5, 5), (10, 5), "x") == 0
    assert V.direction((0, 0, 10, 10), (6, 0, 10, 10), (5, 5), (11, 5), "x") == -1
    assert V.direction((0, 20, 10, 10), (0, 0, 10, 10), (5, 25), (5, 5), "y") == 1


def test_shape_nouns_have_exact_meanings():
    ring, disc, box, tri = (V.SHAPE_NOUNS[w] for w in ("washer", "coin", "carton", "wedge"))
    assert ring.holds(["round", "has holes"]) and not ring.holds(["round"]) and not ring.holds(["square", "has holes"])
    assert disc.holds(["round"]) and not disc.holds(["round", "has holes"])
    assert box.holds(["rectangular"]) and box.holds(["square"]) and not box.holds(["round"])
    assert tri.holds(["triangular"]) and not tri.holds(["rectangular"])


# ---- nouns -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, want", [
    ("the ring", {"ring"}),
    ("the donut", {"ring"}),
    ("the triangles", {"tri_big", "tri_small", "tri_purple"}),
    ("the triangular one that is purple", {"tri_purple"}),
    ("the orange box", {"wide_box"}),
    ("the blue coins", {"small_disc", "big_disc"}),
    ("the grey rod", {"rod"}),
    ("the blue triangle", set()),  # a noun is a check, never dropped: no blue triangle
    ("the pink disc", set()),  # the pink thing has a hole: a ring, not a disc
    ("the green box", set()),
])
def test_nouns_are_shape_checks_without_a_captioner(deducer, bench, query, want):
    got, steps = ask(deducer, bench, query)
    assert got == want, steps


def test_an_uncheckable_noun_is_never_dropped_silently(deducer, bench):
    got, steps = ask(deducer, bench, "the elephant")
    assert got == set() and any("nothing" in s for s in steps)
    got, steps = ask(deducer, bench, "the grey hammer")  # the colour decides; the chain says the noun was not
    assert got == {"rod"} and any("NOT CHECKED" in s for s in steps)


# ---- comparatives, exclusion, containment, features -------------------------------------------------

@pytest.mark.parametrize("query, want", [
    ("the bigger blue disc", {"big_disc"}),
    ("the smaller of the blue discs", {"small_disc"}),
    ("the big green triangle", {"tri_big"}),  # within the green triangles, not an absolute size class
    ("the small green triangle", {"tri_small"}),
    ("every triangle apart from the purple one", {"tri_big", "tri_small"}),
    ("all the triangles except the smallest one", {"tri_big", "tri_purple"}),
    ("everything but the triangles and the ring", {"wide_box", "small_disc", "big_disc", "dot_in_ring", "rod"}),
    ("the triangle that isn't green", {"tri_purple"}),
    ("what's in the middle of the pink ring?", {"dot_in_ring"}),
    ("the thing within the ring", {"dot_in_ring"}),
    ("the ring with something in it", {"ring"}),
    ("the object with writing on it", {"rod"}),
    ("the thing that says ax-7", {"rod"}),
    ("the objects with a hole", {"ring"}),
    ("whichever one is orange", {"wide_box"}),
    ("how many green triangles are there?", {"tri_big", "tri_small"}),
])
def test_how_people_ask(deducer, bench, query, want):
    got, steps = ask(deducer, bench, query)
    assert got == want, steps


def test_edges_and_the_viewer(deducer, bench):
    assert ask(deducer, bench, "the thing nearest the top edge")[0] == {"wide_box"}
    assert ask(deducer, bench, "the object closest to the right border of the image")[0] == {"tri_purple"}
    got, steps = ask(deducer, bench, "the one closest to me")  # no depth: lowest in the image
    assert got in ({"tri_big"}, {"tri_small"}, {"tri_purple"}) and any("no depth" in s for s in steps)
    # with depth (Region.geometry_3d) the nearest is the smallest distance to the camera
    scene, ids = scene_from_spec(BENCH)
    for r in scene.regions:
        d = 0.5 if r.id == ids["small_disc"] else 2.0
        r.geometry_3d = Geometry3D((0.0, 0.0, d), Box3D((0.0, 0.0, d), (0.1, 0.1, 0.1), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))), d)
    got, steps = ask(deducer, (scene, ids), "the object closest to the camera")
    assert got == {"small_disc"} and any("by depth" in s for s in steps)
    assert ask(deducer, (scene, ids), "the thing furthest from me")[0] != {"small_disc"}


def test_roles_keep_superlatives_to_objects_unless_the_query_names_the_table(deducer, table):
    assert ask(deducer, table, "the biggest object")[0] == {"blue_block"}
    assert ask(deducer, table, "everything")[0] == {"red_block", "blue_block", "yellow_disc"}
    assert ask(deducer, table, "the table")[0] == {"table"}
    assert ask(deducer, table, "the wall")[0] == {"wall"}
    assert ask(deducer, table, "the things on the table")[0] == {"red_block", "blue_block", "yellow_disc"}
    assert ask(deducer, table, "the object nearest the top edge")[0] == {"yellow_disc"}


@pytest.mark.parametrize("query", ["???", "the", "   the  ,", "the tenth triangle", "the red one that is not red",
                                   "the round and square thing"])
def test_content_free_and_contradictory_give_nothing_with_a_reason(deducer, bench, query):
    got, steps = ask(deducer, bench, query)
    assert got == set(), steps
    assert len(steps) >= 2  # the chain says why (a parser note / an empty step), then the answer


@pytest.mark.parametrize("query, word", [("the -3rd object", "-3rd"), ("the 2.5th triangle", "2.5th"),
                                         ("the 0th one", "0th")])
def test_malformed_ordinals_are_an_error_or_nothing(deducer, bench, query, word):
    from gear_edge.errors import InputError

    try:
        got, steps = ask(deducer, bench, query)
    except InputError as exc:  # the query check names the word
        assert word in str(exc)
    else:
        assert got == set() and any(word in s for s in steps)
    p = parse(query)  # the parser on its own: a program that denotes nothing, saying why
    assert p.nothing and word in p.nothing


# ---- the parser: registry, precedence, re-entrancy ------------------------------------------------------

def test_phrase_kinds_are_registered_once_with_explicit_precedence():
    names = [k.name for k in P.POSTMODIFIERS]
    precs = [k.precedence for k in P.POSTMODIFIERS]
    assert precs == sorted(precs) and len(set(names)) == len(names) and names[-1] == "rest"
    # "with holes" is read as the hole feature, not a "with <object>" reference
    assert names.index("holes") < names.index("with")
    assert "shape has holes" in parse("the box with holes").describe()
    assert "relation" not in parse("the box with holes").describe()


def test_premodifier_kinds_are_registered_too():
    names = [k.name for k in P.PREMODIFIERS]
    assert [k.precedence for k in P.PREMODIFIERS] == sorted(k.precedence for k in P.PREMODIFIERS)
    assert names.index("colour") < names.index("gradable") < names.index("position")
    # "the orange": the fruit word and its colour; "light blue": the shade is blue
    assert parse("the orange").describe() == "the object 'orange', colour orange"
    assert parse("the light blue box").describe() == "the colour blue, object 'box'"
    assert parse("the two largest red or blue discs").describe() == "all colour red or blue, object 'discs', largest"


def test_parser_is_reentrant():
    shared = Parser()
    queries = ["the red cup on the table", "every triangle except the pink one", "the second box from the left",
               "something to cut with", "the object closest to the top edge"] * 20
    want = {q: parse(q) for q in set(queries)}
    bad: list[str] = []

    def work(qs):
        for q in qs:
            if shared.parse(q) != want[q]:
                bad.append(q)

    threads = [threading.Thread(target=work, args=(queries[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert not hasattr(shared, "toks") and not hasattr(shared, "i")


# ---- the program-mode LLM policy -----------------------------------------------------------------------

class _WordsLLM:
    """Answers every object-naming call with fixed words (a control arm, not a stand-in for the real LLM)."""

    def __init__(self, words):
        self.words, self.calls = words, 0

    def chat_parts(self, system, scene, query, examples=()):
        return [system], [query]

    def generate(self, scene_key, prefix, suffix, grammar, max_tokens, temperature=0.0, budget_s=None):
        import json

        from gear_edge.deduce.llm import Generation

        self.calls += 1
        return Generation(json.dumps({"objects": self.words}), 10, 10, 5)


def test_default_model_is_never_asked_in_auto():
    d = ProgramDeducer(llm="auto", embedder=None)
    scene, _ = scene_from_spec(BENCH)
    a = d.deduce(scene, "something to cut the tape with")
    assert d.filler() is None and (d.llm_note == DEFAULT_MODEL_NOTE or "not installed" in d.llm_note)
    assert a.prompt_tokens == 0 and any("LLM skipped" in s.text for s in a.steps)


def test_llm_words_add_answers_but_never_change_one(bench):
    scene, ids = bench
    words = _WordsLLM(["ring"])
    d = ProgramDeducer(llm=words, llm_use="always", embedder=None)
    # the phrase's own words find the rod (its text): the LLM's "ring" must not change that
    a = d.deduce(scene, "the thing labelled AX-7 that you can hang things from")
    off = ProgramDeducer(llm=None, embedder=None).deduce(scene, "the thing labelled AX-7 that you can hang things from")
    assert a.targets == off.targets
    # own words find nothing ("a thing to hang a towel on"): the LLM's words may add an answer
    a = d.deduce(scene, "a thing to hang a towel on")
    assert words.calls >= 1 and a.targets == [ids["ring"]]
    assert any("with the LLM's words" in s.text for s in a.steps)
    never = ProgramDeducer(llm=_WordsLLM(["ring"]), llm_use="never", embedder=None)
    assert never.deduce(scene, "a thing to hang a towel on").targets == []


@needs_llm
def test_llm_call_is_bounded_by_its_time_budget():
    from gear_edge.deduce.program.fill import ObjectFiller

    f = ObjectFiller(shared_llm()).fill("something to carry soup in, unique phrase 7", budget_s=1e-4)
    assert f.over_budget and f.words == () and f.completion_tokens <= 2


@needs_llm
def test_real_llm_never_loses_to_random_words_or_no_llm(embedder):
    """On a small fixed subset of purpose queries (the suite's scenes, with captions) the real LLM
    scores at least what random words and no LLM score. It does not score more with the default
    SmolLM2-135M (measured on the held-out benchmark), which is why ``llm_use="auto"`` skips it."""
    from tests.deduce_suite import CASES, build

    subset = [c for c in CASES if c.kind == "semantic" and c.query.startswith("something")][:4]
    arms = {"real": ProgramDeducer(llm=shared_llm(), llm_use="always", embedder=embedder),
            "random": ProgramDeducer(llm=_WordsLLM(["volcano", "submarine"]), llm_use="always", embedder=embedder),
            "off": ProgramDeducer(llm=None, embedder=embedder)}
    score = dict.fromkeys(arms, 0)
    for c in subset:
        scene, ids = build(c.scene)
        want = sorted(ids[n] for n in c.answer)
        for name, d in arms.items():
            score[name] += d.deduce(scene, c.query).targets == want
    assert score["real"] >= score["random"] and score["real"] >= score["off"], score


@pytest.fixture(scope="module")
def embedder():
    from gear_edge.deduce.program import semantic as sem

    try:
        return sem.TextEmbedder.default(threads=1)
    except Exception as exc:  # the MiniLM package missing: lexical matching only
        pytest.skip(f"no sentence-embedding model: {exc}")
