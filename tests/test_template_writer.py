"""The template writer's noun phrases and question families (gear_edge.data_engine.generate / facts):
shape nouns from the vocabulary, ordinals, exceptions, counting, two-way comparatives, image edges and
near-miss absents, each answered exactly and read the same way by the program deducer."""

from __future__ import annotations

import random

import pytest

import gear_edge.masks as gm
from gear_edge import synthetic
from gear_edge.data_engine.facts import Atom, Description, SceneFacts
from gear_edge.data_engine.generate import ORDINAL_WORDS, TemplateWriter
from gear_edge.describe.scene import describe_scene
from gear_edge.types import Region
from gear_edge.vocabulary import SHAPE_NOUNS

H, W = 240, 320
RED, BLUE, GREEN = (200, 30, 30), (30, 70, 210), (40, 150, 50)


@pytest.fixture(scope="module")
def scene():
    """Three red discs in a row (growing left to right), a blue box at the top right, a green triangle
    at the bottom left, a smaller blue box at the top; region ids in that order."""
    img = synthetic.SyntheticScene(synthetic.background(H, W))
    shapes = [("disk", (60, 120, 14), RED), ("disk", (150, 120, 22), RED), ("disk", (250, 120, 32), RED),
              ("rect", (230, 10, 310, 60), BLUE), ("triangle", [10, 230, 70, 230, 40, 180], GREEN),
              ("rect", (110, 10, 140, 40), BLUE)]
    for k, (kind, geom, rgb) in enumerate(shapes):
        img.paste(f"o{k}", synthetic.solid_mask(kind, geom, H, W), rgb, noise=3.0, seed=k)
    regions = []
    for k in range(len(shapes)):
        rle = gm.encode(img.masks[f"o{k}"])
        regions.append(Region(id=k + 1, rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)), area=int(gm.area(rle))))
    return describe_scene(img.image, regions)


def test_shape_nouns_follow_the_vocabulary(scene):
    f = SceneFacts(scene)
    for noun in ("disc", "box", "triangle"):
        want = [i for i in f.ids if SHAPE_NOUNS[noun].holds(f.attr(i, "shape") or [])]
        assert f.matching(Description((Atom("noun", noun),))) == want
    assert f.matching(Description((Atom("noun", "disc"),))) == [1, 2, 3]
    assert f.matching(Description((Atom("noun", "box"),))) == [4, 6]
    red_disc = Description((Atom("colour", "red"), Atom("noun", "disc")))
    assert red_disc.text() == "the red disc" and red_disc.text(plural=True) == "the red discs"
    assert Description((Atom("noun", "box"),)).words(plural=True) == "boxes"
    # a head noun never replaces a shape noun; a bare "one" reads as "object"
    assert red_disc.with_head("thing").words() == "red disc"
    assert Description((Atom("colour", "red"),), "one").text() == "the red one"
    assert Description((), "one").text() == "the object"
    # a shape noun is never combined with a shape adjective (the writer's descriptions)
    for i in f.ids:
        for d in f.unique_descriptions(i, ("colour", "shape", "noun", "holes"), 2):
            assert not ({"noun", "shape"} <= d.kinds() or {"noun", "holes"} <= d.kinds())


def _by_template(scene, seed=0):
    cands = TemplateWriter(per_class=3).candidates(scene, random.Random(seed))
    out: dict[str, list] = {}
    for cs in cands.values():
        for c in cs:
            out.setdefault(c.template, []).append(c)
    return out


def test_new_question_families_have_exact_answers(scene):
    t = _by_template(scene)
    for name in ("compare.ordinal", "compare.pair", "compare.edge", "multi.except", "multi.count", "absent.combo",
                 "absent.ordinal"):
        assert t.get(name), (name, sorted(t))
    # the discs grow left to right: ordinals from the left are ids 1, 2, 3; from the right 3, 2, 1
    checked = 0
    for seed in range(4):
        for c in _by_template(scene, seed)["compare.ordinal"]:
            words = c.question.replace("?", "").split()
            if "red" in words and words[-1] in ("left", "right"):
                rank = next(k for k, ws in ORDINAL_WORDS.items() if set(ws) & set(words))
                order = (1, 2, 3) if words[-1] == "left" else (3, 2, 1)
                assert c.targets == (order[rank - 1],), c.question
                checked += 1
    assert checked
    counts = [c for c in t["multi.count"] if "red" in c.question]
    assert counts and all(c.targets == (1, 2, 3) for c in counts)
    for c in t["multi.except"]:
        assert c.targets and set(c.targets) < {1, 2, 3, 4, 5, 6}
    # the two blue boxes: the bigger / larger one is id 4, the smaller id 6
    for c in t["compare.pair"]:
        if "box" in c.question:
            assert c.targets == ((6,) if "smaller" in c.question else (4,) if ("bigger" in c.question or "larger" in c.question) else c.targets)
    for c in t["absent.combo"] + t["absent.ordinal"]:
        assert c.targets == ()
    assert any("blue disc" in c.question or "red box" in c.question or "green disc" in c.question
               for c in t["absent.combo"])


def test_program_deducer_reads_the_new_families_the_same_way(scene):
    """Every candidate of the new families is answered by the parser + executor (no LLM) with the
    writer's regions (the data engine keeps only those; here nearly all must agree)."""
    from gear_edge.deduce.program.deducer import ProgramDeducer

    deducer = ProgramDeducer(llm=None, embedder=None)
    families = ("compare.ordinal", "compare.pair", "compare.edge", "multi.except", "multi.count", "absent.combo",
                "absent.ordinal")
    total = agree = 0
    bad = []
    for seed in range(3):
        for name, cs in _by_template(scene, seed).items():
            if name not in families:
                continue
            for c in cs:
                total += 1
                got = tuple(sorted(deducer.deduce(scene, c.question).targets))
                agree += got == tuple(sorted(c.targets))
                if got != tuple(sorted(c.targets)):
                    bad.append((c.question, c.targets, got))
    assert total >= 20 and agree >= 0.9 * total, bad
