"""Deterministic template question writer: questions whose answers are computed exactly from the
scene's attributes and relations (:mod:`gear_edge.data_engine.facts`), one generator per taxonomy class.

A generator proposes every question it can justify on the scene (a referring expression that picks
out exactly the regions it claims; an "absent" request that nothing satisfies; a superlative with a
clear margin over the runner-up); :meth:`TemplateWriter.write` then keeps at most ``per_class`` per
class, preferring different target sets, chosen with the caller's seeded RNG (so a run is
reproducible). Wording is plain English that any reader (and the deducer's parser) understands.
The sentence templates around the noun phrases are a table (:data:`PHRASINGS`; ``phrasings=`` swaps
in another, e.g. the held-out one of :mod:`gear_edge.data_engine.deducer_data`).
"""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Iterable

from gear_edge.data_engine.base import Candidate, normalise_question
from gear_edge.data_engine.facts import (
    COLOURS, EDGE_KEYS, HEADS, ORDINAL_SIDES, PAIR_COMPARATIVES, SUPERLATIVES, Atom, Description, SceneFacts,
    plural_of,
)
from gear_edge.data_engine.taxonomy import (
    ABSENT, AFFORDANCE, ATTRIBUTE, CLASSES, COMPARISON, IDENTITY, MULTI_TARGET, PART_WHOLE, SPATIAL,
)
from gear_edge.errors import InputError
from gear_edge.types import Scene
from gear_edge.vocabulary import AFFORDANCE_PHRASES, caption_affordance

WRITER = "template"
OBJECT_KINDS = ("colour", "size", "shape", "noun", "holes", "brightness", "texture")
REF_KINDS = ("colour", "size", "shape", "noun", "holes")  # references: words everyone reads the same way
GRASPABLE_SIZES = ("tiny", "small")  # < 3 % of the image: one hand can hold it

PHRASINGS = {
    "find": ("{np}", "find {np}", "segment {np}", "where is {np}?", "show me {np}", "locate {np}"),
    "find_all": ("{np}", "find {np}", "segment {np}", "where are {np}?", "show me {np}"),
    "absent": ("{np}", "find {np}", "is there {a_np}?", "segment {np}"),
    "grasp": ("pick up {np}", "grab {np}", "hand me {np}", "bring me {np}", "fetch {np}", "give me {np}"),
    # {np} is the text read on the object
    "text": ('the object with the text "{np}"', 'the object that says "{np}"', 'find the object labelled "{np}"'),
    "absent_text": ('the object that says "{np}"', 'the object with the text "{np}"', 'is there anything labelled "{np}"?'),
    # {np} is a purpose ("something to drink from")
    "purpose": ("{np}", "find {np}", "I need {np}"),
    # {np} is a plural noun phrase ("red discs")
    "count": ("how many {np} are there?", "count the {np}", "how many {np} do you see?"),
}
PHRASING_KINDS = tuple(PHRASINGS)
RELATION_WORDS = {
    "left_of": ("to the left of", "left of"),
    "right_of": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "on_top_of": ("on top of", "on", "resting on"),
    "touching": ("touching",),
}
ABSENT_RELATIONS = ("left_of", "right_of", "above", "below", "inside")
ORDINAL_WORDS = {1: ("first", "1st"), 2: ("second", "2nd"), 3: ("third", "3rd"), 4: ("fourth", "4th")}
EXCEPT_WORDS = ("except", "apart from", "but not", "other than")
EDGE_PHRASES = ("closest to", "nearest", "nearest to")
EDGE_NAMES = ("the {edge} edge", "the {edge} of the image", "the {edge} side")
AREA_MARGIN = 1.25  # the largest must be this much larger than the runner-up
POS_MARGIN = 0.03  # leftmost etc.: centroids at least this fraction of the image apart
BRIGHT_MARGIN = 0.05
COMPARATIVE_MARGIN = 1.15  # "larger than X": no region within this factor of X's area
ABSENT_TEXTS = ("FRAGILE", "EXIT", "DANGER", "STOP", "KEEP OUT", "THIS SIDE UP", "HOT", "OPEN HERE")
MIN_PURPOSE_WEIGHT = 0.6  # a caption noun must afford the purpose at least this well to be asked about
MAX_PER_GENERATOR = 80  # candidates a generator proposes per scene at most (bounds the work)


def _article(words: str) -> str:
    return "an" if words[:1].lower() in "aeiou" else "a"


def _phrase(rng: random.Random, kind: str, np: str, a_np: str | None = None, phrasings=None) -> str:
    return rng.choice((phrasings or PHRASINGS)[kind]).format(np=np, a_np=a_np or np)


def check_phrasings(phrasings) -> dict[str, tuple[str, ...]]:
    """A phrasing table (kind → templates with ``{np}``, optionally ``{a_np}``) checked: every kind of
    :data:`PHRASINGS`, each a non-empty tuple of templates that name ``{np}`` or ``{a_np}``."""
    out = {}
    for kind in PHRASING_KINDS:
        ts = tuple(phrasings.get(kind, ()))
        if not ts:
            raise InputError(f"phrasings: kind {kind!r} has no templates")
        for t in ts:
            if "{np}" not in t and "{a_np}" not in t:
                raise InputError(f"phrasings: {kind} template {t!r} names neither {{np}} nor {{a_np}}")
        out[kind] = ts
    unknown = sorted(set(phrasings) - set(PHRASING_KINDS))
    if unknown:
        raise InputError(f"phrasings: unknown kind(s) {unknown} (known: {', '.join(PHRASING_KINDS)})")
    return out


def _ids(ids: Iterable[int]) -> str:
    ids = list(ids)
    return ", ".join(f"R{i}" for i in ids) if ids else "none"


def _norm_text(text: str) -> str:
    return " ".join(re.findall(r"[0-9a-z]+", str(text).lower()))


@dataclass
class _Ctx:
    facts: SceneFacts
    rng: random.Random
    max_targets: int
    max_atoms: int
    phrasings: dict | None = None  # None: PHRASINGS

    def phrase(self, kind: str, np: str, a_np: str | None = None) -> str:
        return _phrase(self.rng, kind, np, a_np, self.phrasings)

    def h(self, d: Description) -> Description:
        """``d`` with a head noun drawn from :data:`HEADS` ("the red object / thing / one / item")."""
        return d.with_head(self.rng.choices(HEADS, weights=(4, 3, 3, 1))[0])

    def explain(self, d: Description, pool: Iterable[int] | None = None) -> list[str]:
        """Rationale steps: the regions left after each atom of ``d``."""
        steps, cur = [], sorted(self.facts.ids if pool is None else pool)
        for a in d.atoms:
            cur = [i for i in cur if i in self.facts.atom_set(a)]
            steps.append(f"{a.kind} {a.word}: {_ids(cur)}")
        return steps

    def ref(self, r: int) -> Description | None:
        """A description that picks out exactly region r (reference words only), or None."""
        ds = self.facts.unique_descriptions(r, REF_KINDS, self.max_atoms)
        return ds[0] if ds else None

    def narrowing(self, c: int, pool: list[int], kinds=OBJECT_KINDS, allow_empty: bool = True) -> Description | None:
        """The shortest description that picks c out of ``pool`` (the empty one when pool == [c])."""
        if allow_empty and pool == [c]:
            return Description()
        return next(iter(self.facts.unique_descriptions(c, kinds, self.max_atoms, pool=pool)), None)


def _cand(cls: str, template: str, question: str, targets: Iterable[int], rationale: list[str]) -> Candidate:
    return Candidate(question, tuple(targets), cls, WRITER, template, tuple(rationale))


# ---- generators (one per class) -------------------------------------------------------------------

def gen_identity(ctx: _Ctx) -> list[Candidate]:
    f, out = ctx.facts, []
    for i in f.ids:
        for t in f.texts(i):
            clean = " ".join(t.replace('"', " ").split())
            norm = _norm_text(clean)
            if not (2 <= len(norm) <= 30):
                continue
            others = [j for j in f.ids if j != i and norm in _norm_text(" ".join(f.texts(j)) + " " + (f.caption(j) or ""))]
            if others:
                continue
            q = ctx.phrase("text", clean)
            out.append(_cand(IDENTITY, "identity.text", q, [i], [f'text read on R{i}: "{clean}"', "no other region reads it"]))
        cap = f.caption(i)
        if cap:
            words = cap.split()
            if words and words[0].lower() in ("a", "an", "the"):
                words = words[1:]
            np = " ".join(words[:6])
            if np and not any(j != i and f.caption(j) and _norm_text(np) in _norm_text(f.caption(j) or "") for j in f.ids):
                out.append(_cand(IDENTITY, "identity.caption", ctx.phrase("find", f"the {np}"), [i],
                                 [f'caption of R{i}: "{cap}"', "no other caption names it"]))
    return out


def gen_attribute(ctx: _Ctx) -> list[Candidate]:
    out = []
    for i in ctx.facts.ids:
        ds = ctx.facts.unique_descriptions(i, OBJECT_KINDS, ctx.max_atoms)
        if not ds:
            continue
        d = ctx.rng.choice(ds)
        q = ctx.phrase("find", ctx.h(d).text())
        out.append(_cand(ATTRIBUTE, f"attribute.{'+'.join(sorted(d.kinds()))}", q, [i], ctx.explain(d)))
    return out


def gen_spatial(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    # image position: needed to single the region out
    for i in f.ids:
        for pos in f.atoms_of(i, ["position"]):
            for base in [Description()] + [Description((a,)) for a in f.atoms_of(i, ("colour", "size", "shape"))]:
                d = base + Description((pos,))
                if f.matching(d) == [i] and f.matching(base) != [i]:
                    out.append(_cand(SPATIAL, f"spatial.position.{pos.word}", ctx.phrase("find", ctx.h(d).text()), [i],
                                     ctx.explain(d)))
                    break
    # relation to a reference object
    refs = list(f.ids)
    rng.shuffle(refs)
    rel_out: list[Candidate] = []
    for r in refs:
        dr = ctx.ref(r)
        if dr is None:
            continue
        for rel, words in RELATION_WORDS.items():
            held = f.related(rel, [r])
            if not held:
                continue
            for c in rng.sample(held, min(2, len(held))):
                d1 = ctx.narrowing(c, held, kinds=REF_KINDS)
                if d1 is None or f.matching(d1) == [c]:
                    continue  # not expressible, or the relation is not needed to find it
                q = ctx.phrase("find", f"{ctx.h(d1).text()} {rng.choice(words)} {ctx.h(dr).text()}")
                steps = [f"reference {dr.describe()}: R{r}", f"{rel.replace('_', ' ')} R{r}: {_ids(held)}"]
                steps += ctx.explain(d1, held)
                rel_out.append(_cand(SPATIAL, f"spatial.relation.{rel}", q, [c], steps))
        if len(rel_out) >= MAX_PER_GENERATOR:
            break
    return out + rel_out


def gen_part_whole(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    for w in f.ids:
        parts = f.related("inside", [w])
        dw = ctx.ref(w)
        if not parts or dw is None:
            continue
        steps = [f"whole {dw.describe()}: R{w}", f"inside R{w}: {_ids(parts)}"]
        if len(parts) == 1:
            out.append(_cand(PART_WHOLE, "part.inside.one", ctx.phrase("find", f"the object inside {ctx.h(dw).text()}"), parts, steps))
        elif len(parts) <= ctx.max_targets:
            out.append(_cand(PART_WHOLE, "part.inside.all", ctx.phrase("find_all", f"all the objects inside {ctx.h(dw).text()}"),
                             parts, steps))
            for p in rng.sample(parts, min(2, len(parts))):
                d1 = ctx.narrowing(p, parts, kinds=REF_KINDS, allow_empty=False)
                if d1 is not None and f.matching(d1) != [p]:
                    out.append(_cand(PART_WHOLE, "part.inside.which", ctx.phrase("find", f"{ctx.h(d1).text()} inside {ctx.h(dw).text()}"),
                                     [p], steps + ctx.explain(d1, parts)))
    for p in f.ids:
        wholes = f.related("contains", [p])
        dp = ctx.ref(p)
        if not wholes or dp is None:
            continue
        steps = [f"part {dp.describe()}: R{p}", f"contains R{p}: {_ids(wholes)}"]
        d1 = ctx.narrowing(wholes[0], wholes, kinds=REF_KINDS) if len(wholes) > 1 else Description()
        if len(wholes) == 1:
            out.append(_cand(PART_WHOLE, "part.whole", ctx.phrase("find", f"the object containing {ctx.h(dp).text()}"), wholes, steps))
        elif d1 is not None:
            # nested containers: name the outer one
            out.append(_cand(PART_WHOLE, "part.whole.which", ctx.phrase("find", f"{ctx.h(d1).text()} containing {ctx.h(dp).text()}"),
                             [wholes[0]], steps + ctx.explain(d1, wholes)))
    return out


def gen_multi(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    seen: set[tuple[int, ...]] = set()
    atoms = sorted({a for i in f.ids for a in f.atoms_of(i, ("colour", "size", "shape", "holes", "position"))},
                   key=lambda a: (a.kind, a.word))
    for a in atoms:
        if a.kind == "position" and a.word not in ("left", "right", "top", "bottom"):
            continue
        s = tuple(f.matching(Description((a,))))
        if 2 <= len(s) <= ctx.max_targets and s not in seen:
            seen.add(s)
            d = Description((a,))
            np = f"every {ctx.h(d).words()}" if rng.random() < 0.3 else f"all the {ctx.h(d).words(plural=True)}"
            out.append(_cand(MULTI_TARGET, f"multi.all.{a.kind}", ctx.phrase("find_all", np), s, ctx.explain(d)))
    # exceptions: a group minus a named part of it ("all the boxes except the red one")
    for a in atoms:
        if a.kind not in ("noun", "shape") and not (a.kind == "colour" and rng.random() < 0.3):
            continue
        group = f.matching(Description((a,)))
        if len(group) < 3:
            continue
        for b in sorted({b for i in group for b in f.atoms_of(i, ("colour", "size"))}, key=lambda b: (b.kind, b.word)):
            if b.kind == a.kind:
                continue
            cut = f.matching(Description((b,)), group)
            keep = [i for i in group if i not in cut]
            if not cut or not (1 <= len(keep) <= ctx.max_targets):
                continue
            d = ctx.h(Description((a,)))
            part = f"the {b.word} one" + ("s" if len(cut) > 1 else "")
            np = rng.choice((f"all the {d.words(plural=True)} {rng.choice(EXCEPT_WORDS)} {part}",
                             f"every {d.words()} {rng.choice(EXCEPT_WORDS)} {part}",
                             f"the {d.words(plural=True)} that are not {b.word}"))
            out.append(_cand(MULTI_TARGET, "multi.except", ctx.phrase("find_all", np), keep,
                             ctx.explain(Description((a,))) + [f"except {b.kind} {b.word}: {_ids(cut)}",
                                                                f"left: {_ids(keep)}"]))
    # counting: "how many red discs are there?" (the answer is the regions counted)
    for a in atoms:
        d = ctx.h(Description((a,)))
        s_ = f.matching(d)
        if 2 <= len(s_) <= ctx.max_targets and a.kind != "position":
            out.append(_cand(MULTI_TARGET, "multi.count", ctx.phrase("count", d.words(plural=True)), s_,
                             ctx.explain(d) + [f"count: {len(s_)}"]))
    # two named objects
    named = [(i, ds[0]) for i in f.ids if (ds := f.unique_descriptions(i, REF_KINDS, ctx.max_atoms))]
    pairs = list(combinations(named, 2))
    rng.shuffle(pairs)
    for (i, di), (j, dj) in pairs[: MAX_PER_GENERATOR // 4]:
        q = ctx.phrase("find_all", f"{ctx.h(di).text()} and {ctx.h(dj).text()}")
        out.append(_cand(MULTI_TARGET, "multi.pair", q, [i, j],
                         [f"{di.describe()}: R{i}", f"{dj.describe()}: R{j}", f"union: {_ids(sorted((i, j)))}"]))
    return out


def _key(f: SceneFacts, key: str) -> Callable[[int], float]:
    return lambda i: f.rank_value(i, key)


def _edge_key(f: SceneFacts, key: str) -> Callable[[int], float]:
    """Distance (px) of a region's bounding box to one image side."""
    return lambda i: f.edge_distance(i, key)


def _clear_winner(f: SceneFacts, key: str, ranked: list[int], rank: int = 1) -> bool:
    """Whether the region at ``rank`` (1-based) stands clear of its neighbours in the ranking."""
    k = _key(f, key)
    idx = rank - 1
    neighbours = [ranked[j] for j in (idx - 1, idx + 1) if 0 <= j < len(ranked)]
    for n in neighbours:
        a, b = k(ranked[idx]), k(n)
        if key == "area":
            hi, lo = max(a, b), min(a, b)
            if hi < AREA_MARGIN * max(lo, 1.0):
                return False
        elif key in ("x", "y"):
            if abs(a - b) < POS_MARGIN * (f.w if key == "x" else f.h):
                return False
        elif abs(a - b) < BRIGHT_MARGIN:
            return False
    return True


def gen_comparison(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    singles = sorted({a for i in f.ids for a in f.atoms_of(i, ("colour", "shape", "noun"))}, key=lambda a: (a.kind, a.word))
    pools = [Description()] + [Description((a,)) for a in singles]
    # "the second red disc from the left": colour + shape noun groups too
    pairs = [Description((a,)) + Description((b,)) for a in singles if a.kind == "colour" for b in singles
             if b.kind == "noun"]
    pairs = [d for d in pairs if len(f.matching(d)) >= 2]
    for d in pools:
        pool = f.matching(d)
        if len(pool) < 2:
            continue
        for word, (key, desc) in SUPERLATIVES.items():
            k = _key(f, key)
            ranked = sorted(pool, key=lambda i: (-k(i) if desc else k(i), i))
            if _clear_winner(f, key, ranked):
                q = ctx.phrase("find", f"the {word} {ctx.h(d).words()}")
                out.append(_cand(COMPARISON, f"compare.superlative.{word}", q, [ranked[0]],
                                 ctx.explain(d) + [f"{word} of {_ids(pool)}: R{ranked[0]}"]))
            if key == "area" and len(pool) >= 3 and _clear_winner(f, key, ranked, 2):
                q = ctx.phrase("find", f"the second {word} {ctx.h(d).words()}")
                out.append(_cand(COMPARISON, f"compare.second.{word}", q, [ranked[1]],
                                 ctx.explain(d) + [f"{word} of {_ids(pool)}, second: R{ranked[1]}"]))
    # ordinals along an axis ("the second red one from the left"), each neighbour clear of the next
    for d in pools + pairs:
        pool = f.matching(d)
        if len(pool) < 2:
            continue
        for side, (key, desc) in ORDINAL_SIDES.items():
            k = _key(f, key)
            ranked = sorted(pool, key=lambda i: (-k(i) if desc else k(i), i))
            for rank in range(1, min(len(ranked), 4) + 1):
                if rank == 1 and len(ranked) < 3:
                    continue  # "the first from the left" of two is a superlative: asked above
                if not _clear_winner(f, key, ranked, rank):
                    continue
                word = rng.choice(ORDINAL_WORDS[rank])
                q = ctx.phrase("find", f"the {word} {ctx.h(d).words()} from the {side}")
                out.append(_cand(COMPARISON, "compare.ordinal", q, [ranked[rank - 1]],
                                 ctx.explain(d) + [f"from the {side}: {_ids(ranked)}", f"number {rank}: R{ranked[rank - 1]}"]))
    # two of a kind: "the bigger of the two discs", "the smaller red one"
    for d in pools[1:]:
        pool = f.matching(d)
        if len(pool) != 2:
            continue
        for word, (key, desc) in PAIR_COMPARATIVES.items():
            k = _key(f, key)
            ranked = sorted(pool, key=lambda i: (-k(i) if desc else k(i), i))
            if not _clear_winner(f, key, ranked):
                continue
            dh = ctx.h(d)
            np = rng.choice((f"the {word} {dh.words()}", f"the {word} of the two {dh.words(plural=True)}",
                             f"the {word} of the {dh.words(plural=True)}"))
            out.append(_cand(COMPARISON, "compare.pair", ctx.phrase("find", np), [ranked[0]],
                             ctx.explain(d) + [f"{word} of {_ids(pool)}: R{ranked[0]}"]))
    # closest to an image edge (bounding box side; a clear margin to the runner-up)
    for d in pools:
        pool = f.matching(d)
        if len(pool) < 2:
            continue
        for edge, key in EDGE_KEYS.items():
            k = _edge_key(f, key)
            ranked = sorted(pool, key=lambda i: (k(i), i))
            if abs(k(ranked[0]) - k(ranked[1])) < POS_MARGIN * (f.w if edge in ("left", "right") else f.h):
                continue
            np = f"the {ctx.h(d).words()} {rng.choice(EDGE_PHRASES)} {rng.choice(EDGE_NAMES).format(edge=edge)}"
            out.append(_cand(COMPARISON, "compare.edge", ctx.phrase("find", np), [ranked[0]],
                             ctx.explain(d) + [f"closest to the {edge} edge of {_ids(pool)}: R{ranked[0]}"]))
    # comparatives against a named reference
    refs = list(f.ids)
    rng.shuffle(refs)
    for r in refs[: MAX_PER_GENERATOR // 4]:
        dr = ctx.ref(r)
        if dr is None:
            continue
        ar = f.area(r)
        if any(j != r and ar / COMPARATIVE_MARGIN < f.area(j) < ar * COMPARATIVE_MARGIN for j in f.ids):
            continue  # a near tie: "larger than" would hinge on a few pixels
        for rel, word in (("larger_than", "larger"), ("smaller_than", "smaller")):
            held = f.related(rel, [r])
            if 1 <= len(held) <= ctx.max_targets:
                if len(held) == 1:
                    np = f"the object {word} than {ctx.h(dr).text()}"
                else:
                    np = f"all the objects {word} than {ctx.h(dr).text()}"
                out.append(_cand(COMPARISON, f"compare.{rel}", ctx.phrase("find" if len(held) == 1 else "find_all", np),
                                 held, [f"reference {dr.describe()}: R{r} ({int(ar)} px)",
                                        f"{word} than R{r}: {_ids(held)}"]))
    return out


def gen_affordance(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    for i in f.ids:
        if f.attr(i, "size") not in GRASPABLE_SIZES:
            continue
        ds = f.unique_descriptions(i, REF_KINDS, ctx.max_atoms)
        if not ds:
            continue
        d = rng.choice(ds)
        frac = float(f.attr(i, "area_frac", 0.0) or 0.0)
        out.append(_cand(AFFORDANCE, "afford.grasp", ctx.phrase("grasp", ctx.h(d).text()), [i],
                         [f"R{i} is {f.attr(i, 'size')} ({frac:.1%} of the image): graspable"] + ctx.explain(d)))
    # purposes, from the caption nouns the vocabulary says afford them (vocabulary.AFFORDANCE_NOUNS);
    # asked only where exactly one region affords it
    by_purpose: dict[str, list[tuple[int, str]]] = {}
    for i in f.ids:
        for aff in AFFORDANCE_PHRASES:
            weight, word = caption_affordance(f.caption(i), aff)
            if weight >= MIN_PURPOSE_WEIGHT:
                by_purpose.setdefault(aff, []).append((i, word))
    for aff, hits in sorted(by_purpose.items()):
        if len(hits) == 1:
            (i, word), purpose = hits[0], AFFORDANCE_PHRASES[aff]
            out.append(_cand(AFFORDANCE, "afford.purpose", ctx.phrase("purpose", purpose),
                             [i], [f'caption of R{i}: "{f.caption(i)}": a {word} affords {aff.replace("_", " ")}']))
    return out


def gen_absent(ctx: _Ctx) -> list[Candidate]:
    f, rng, out = ctx.facts, ctx.rng, []
    present = {c for i in f.ids for c in f.colours(i)} | {f.colour(i) for i in f.ids}
    for c in COLOURS:
        if c in present:
            continue
        d = Description((Atom("colour", c),))
        out.append(_cand(ABSENT, "absent.colour", ctx.phrase("absent", ctx.h(d).text(), ctx.h(d).text(_article(c))), [],
                         [f"no region has any {c}"]))
    # a relation nothing satisfies: colour (exact) + relation to a named reference
    refs = list(f.ids)
    rng.shuffle(refs)
    colours = sorted({f.colour(i) for i in f.ids if f.colour(i) in COLOURS})
    rel_out = []
    for r in refs:
        dr = ctx.ref(r)
        if dr is None:
            continue
        for rel in ABSENT_RELATIONS:
            held = set(f.related(rel, [r]))
            for c in colours:
                d1 = Description((Atom("colour", c),))
                s = [i for i in f.matching(d1) if i != r]
                if s and not held.intersection(s):
                    words = "inside" if rel == "inside" else rng.choice(RELATION_WORDS[rel])
                    q = ctx.phrase("absent", f"{ctx.h(d1).text()} {words} {ctx.h(dr).text()}", f"{ctx.h(d1).text(_article(c))} {words} {ctx.h(dr).text()}")
                    rel_out.append(_cand(ABSENT, f"absent.relation.{rel}", q, [],
                                         [f"reference {dr.describe()}: R{r}", f"colour {c}: {_ids(s)}",
                                          f"none of them is {rel.replace('_', ' ')} R{r}"]))
                    break
        if len(rel_out) >= MAX_PER_GENERATOR:
            break
    # near misses: two words each true of some region, never of one together ("the green disc")
    combos = []
    present_atoms = sorted({a for i in f.ids for a in f.atoms_of(i, ("colour", "noun", "shape", "size"))},
                           key=lambda a: (a.kind, a.word))
    for a, b in combinations(present_atoms, 2):
        if a.kind == b.kind or {a.kind, b.kind} in ({"noun", "shape"},):
            continue
        d = ctx.h(Description((a,)) + Description((b,)))
        if not f.matching(d):
            combos.append(_cand(ABSENT, "absent.combo", ctx.phrase("absent", d.text(), d.text(_article(d.words()))), [],
                                [f"{a.kind} {a.word}: {_ids(f.matching(Description((a,))))}",
                                 f"{b.kind} {b.word}: {_ids(f.matching(Description((b,))))}", "none is both"]))
    rng.shuffle(combos)
    out += combos[:MAX_PER_GENERATOR // 4]
    # an ordinal past the end: "the third red one" with two red ones
    for a in present_atoms:
        if a.kind not in ("colour", "noun"):
            continue
        n = len(f.matching(Description((a,))))
        if 1 <= n <= 3:
            d = ctx.h(Description((a,)))
            word = rng.choice(ORDINAL_WORDS[n + 1])
            out.append(_cand(ABSENT, "absent.ordinal", ctx.phrase("absent", f"the {word} {d.words()}"), [],
                             ctx.explain(Description((a,))) + [f"only {n}: no number {n + 1}"]))
    texts = [_norm_text(" ".join(f.texts(i)) + " " + (f.caption(i) or "")) for i in f.ids]
    for word in ABSENT_TEXTS:
        w = _norm_text(word)
        if any(w in t or difflib.SequenceMatcher(None, w, t).find_longest_match(0, len(w), 0, len(t)).size >= max(3, len(w) // 2)
               for t in texts if t):
            continue
        q = ctx.phrase("absent_text", word)
        out.append(_cand(ABSENT, "absent.text", q, [], [f'no region reads "{word}"']))
    return out + rel_out


GENERATORS: dict[str, Callable[[_Ctx], list[Candidate]]] = {
    IDENTITY: gen_identity, ATTRIBUTE: gen_attribute, SPATIAL: gen_spatial, AFFORDANCE: gen_affordance,
    PART_WHOLE: gen_part_whole, MULTI_TARGET: gen_multi, COMPARISON: gen_comparison, ABSENT: gen_absent,
}


class TemplateWriter:
    """Writes up to ``per_class`` questions per taxonomy class per scene, answers computed exactly.

    ``max_targets`` bounds multi-region answers; ``max_atoms`` the words of a description
    ("small red" is 2). Deterministic for a given scene and RNG state.
    """

    name = WRITER

    def __init__(self, per_class: int = 3, classes: Iterable[str] = CLASSES, max_targets: int = 8, max_atoms: int = 2,
                 phrasings=None) -> None:
        if per_class < 0:
            raise InputError(f"per_class must be >= 0, got {per_class}")
        if max_targets < 2 or max_atoms < 1:
            raise InputError(f"max_targets must be >= 2 and max_atoms >= 1, got {max_targets}, {max_atoms}")
        self.per_class = int(per_class)
        self.classes = tuple(classes)
        self.max_targets = int(max_targets)
        self.max_atoms = int(max_atoms)
        self.phrasings = None if phrasings is None else check_phrasings(phrasings)

    def settings(self) -> dict:
        out = {"per_class": self.per_class, "classes": list(self.classes), "max_targets": self.max_targets,
               "max_atoms": self.max_atoms}
        if self.phrasings is not None:
            out["phrasings"] = {k: list(v) for k, v in self.phrasings.items()}
        return out

    def candidates(self, scene: Scene, rng: random.Random) -> dict[str, list[Candidate]]:
        """Every candidate of every class (before the per-class selection)."""
        ctx = _Ctx(SceneFacts(scene), rng, self.max_targets, self.max_atoms, self.phrasings)
        return {cls: GENERATORS[cls](ctx) for cls in self.classes}

    def write(self, scene: Scene, rng: random.Random) -> list[Candidate]:
        out: list[Candidate] = []
        for cls, cands in self.candidates(scene, rng).items():
            out += select(cands, self.per_class, rng)
        return out


def select(cands: list[Candidate], n: int, rng: random.Random) -> list[Candidate]:
    """At most n candidates: distinct questions, different target sets and templates first."""
    pool = list(cands)
    rng.shuffle(pool)
    chosen: list[Candidate] = []
    seen_q: set[str] = set()
    for strict in (2, 1, 0):
        for c in pool:
            if len(chosen) >= n:
                return chosen
            q = normalise_question(c.question)
            if q in seen_q:
                continue
            if strict >= 1 and any(c.targets == x.targets for x in chosen):
                continue
            if strict >= 2 and any(c.template == x.template for x in chosen):
                continue
            chosen.append(c)
            seen_q.add(q)
    return chosen
