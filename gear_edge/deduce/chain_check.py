"""Checks the facts a direct-mode LLM states in its steps against the scene's exact facts.

The direct deducer's model writes its steps in the data engine's rationale layout (it was trained
on it, :mod:`gear_edge.data_engine.deducer_data`), the same layout as the scene-text index::

    colour red: R3, R5          (R3 and R5 are red)
    noun box, colour blue: R2   (R2 is a box and blue)
    except size small: R4       (a claim about R4 all the same)
    on top of R1: R3, R4        (R3 and R4 are on top of R1)

Each such step claims a fact of each listed region; :func:`contradicted` returns the regions whose
claimed fact the scene denies (the direct deducer drops such targets and quotes the scene). So do
the writer's caption and text steps (``caption of R3: 'a red mug'``, ``text read on R4: 'MAX'``:
false when the region has no such caption or text).

Ranking steps state an operation and its operands as well as a result::

    leftmost of R4, R5, R7: R4            (a superlative or pair comparative over the listed ids)
    largest of R2, R3, R6, second: R3
    closest to the top edge of R1, R2: R2
    from the left: R3, R4, R5 / number 2: R4   (an ordinal: the listed ids ranked, then the k-th)

:func:`recomputed` runs the operation on the listed ids with the scene's exact values (the writer's
own rankings) and returns the steps whose stated result differs (the direct deducer replaces that
result among its targets: the model chose the operation, the scene decides its outcome).

:func:`executed` goes further when every step is in the writer's layout: it runs the whole chain as a
program (descriptions narrow, references name, relations, exceptions, unions, rankings, captions,
conclusions) on the scene's facts, so the model's words decide the operations and the scene decides
which ids they give (the model often writes the right words with the wrong ids). The semantics of each word are the
data engine's (:class:`gear_edge.data_engine.facts.SceneFacts`, which read the vocabulary), so a
claim is false exactly when the writer would never have written it. Steps in any other form (free
text, "left: R6", "count: 3", a word outside the vocabulary) claim nothing checkable and are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gear_edge.data_engine.facts import (
    BRIGHTNESS_WORDS, EDGE_KEYS, NOUN_WORDS, ORDINAL_SIDES, PAIR_COMPARATIVES, POSITION_PHRASES, SHAPE_WORDS,
    SIZE_WORDS, SUPERLATIVES, TEXTURE_WORDS, Atom, SceneFacts,
)
from gear_edge.types import Scene
from gear_edge.vocabulary import COLOURS, EDGE_WORDS, ROLE_NOUNS, caption_affordance

# step prefixes the writer puts before a description (its role in the chain, not a fact)
_ROLES = ("reference", "whole", "part", "except")
# relation words of the steps -> the facts relation they claim
_RELATIONS = {"left of": "left_of", "right of": "right_of", "above": "above", "below": "below",
              "on top of": "on_top_of", "inside": "inside", "contains": "contains", "touching": "touching"}
_WORDS = {
    "colour": set(COLOURS), "size": set(SIZE_WORDS), "shape": set(SHAPE_WORDS), "noun": set(NOUN_WORDS),
    "holes": {"holes"}, "brightness": set(BRIGHTNESS_WORDS), "texture": set(TEXTURE_WORDS),
    "position": set(POSITION_PHRASES),
}
_STEP = re.compile(r"^\s*(?P<claim>[a-z][a-zA-Z0-9\- ,]*?)\s*:\s*(?P<ids>(?:R\d+)(?:\s*,\s*R\d+)*)\s*$")
_REL = re.compile(r"^(?P<rel>[a-z ]+?) R(?P<ref>\d+)$")
_IDS = r"R\d+(?:\s*,\s*R\d+)*"
# the writer's quoted steps (deducer_data writes its double quotes as single ones)
_QUOTED = re.compile(r"^\s*(?P<what>caption of|text read on) R(?P<id>\d+)\s*:\s*'(?P<text>[^']*)'")
# the whole step as the writer lays it out (a caption may end in ": a <noun> affords <purpose>")
_QUOTED_STEP = re.compile(_QUOTED.pattern + r"(?:\s*:\s*a (?P<noun>[a-z ]+?) affords (?P<purpose>[a-z ]+?))?\s*$")
_GRASP = re.compile(r"^\s*R(?P<id>\d+) is (?P<size>[a-z]+) \([^)]*\)\s*:\s*graspable\s*$")
_RANK = re.compile(rf"^\s*(?P<word>[a-z]+) of (?P<pool>{_IDS})(?P<second>\s*,\s*second)?\s*:\s*R(?P<x>\d+)\s*$")
_EDGE = re.compile(rf"^\s*closest to the (?P<edge>[a-z]+) edge of (?P<pool>{_IDS})\s*:\s*R(?P<x>\d+)\s*$")
_SIDE = re.compile(rf"^\s*from the (?P<side>[a-z]+)\s*:\s*(?P<pool>{_IDS})\s*$")
_NUMBER = re.compile(r"^\s*number (?P<k>\d+)\s*:\s*R(?P<x>\d+)\s*$")


@dataclass(frozen=True)
class Contradiction:
    """``region`` does not have the fact ``claim`` (as written in step ``step``) in the scene."""

    step: int
    claim: str
    region: int


@dataclass(frozen=True)
class Recomputed:
    """Step ``step`` ranks ``pool`` (``claim``: the operation as written) and states ``region`` as the
    result, but the scene's values make it ``correct``."""

    step: int
    claim: str
    pool: tuple[int, ...]
    region: int
    correct: int


def _words(text: str) -> list[str]:
    return re.findall(r"[0-9a-z]+", text.lower())


def _id_list(text: str) -> tuple[int, ...]:
    """"R3, R5, R3" -> (3, 5): the listed ids, first occurrence each."""
    return tuple(dict.fromkeys(int(t.strip()[1:]) for t in text.split(",")))


def _ids(text: str, facts: SceneFacts) -> tuple[int, ...]:
    """The listed ids, first occurrence each, those of the scene only."""
    return tuple(i for i in _id_list(text) if i in facts.regions)


def _atoms(text: str) -> list[Atom] | None:
    """'noun box, colour blue' -> atoms; None when any part is not a known kind + word."""
    out = []
    for part in text.split(","):
        kind, _, word = part.strip().partition(" ")
        atom = _atom(kind, word.strip())
        if atom is None:
            return None
        out.append(atom)
    return out or None


def _atom(kind: str, word: str) -> Atom | None:
    """The atom a step's "<kind> <word>" claims: plurals read as their noun ("noun triangles"), and
    a shape noun under "shape" as the noun ("shape triangle": a triangular region); None when not
    a known kind + word."""
    if kind not in _WORDS:
        return None
    if kind == "position":  # the vocabulary's edge words: "upper left" / "lower-right" / "middle"
        parts = [EDGE_WORDS.get(p, "centre" if p in ("middle", "center") else p)
                 for p in word.replace("-", " ").split()]
        word = "-".join(parts)
    for w in (word, word[:-1] if word.endswith("s") else None, word[:-2] if word.endswith("es") else None):
        if w is None:
            continue
        if w in _WORDS[kind] and (w == word or kind in ("noun", "shape")):
            return Atom(kind, w)
        if kind == "shape" and w in _WORDS["noun"]:
            return Atom("noun", w)
    return None


def contradicted(scene: Scene, steps: list[str], facts: SceneFacts | None = None) -> list[Contradiction]:
    """Every (step, claim, region) the scene denies, in step order. Regions the scene does not hold
    are left to the grammar (which admits only the scene's ids). ``facts``: the scene's, if built."""
    facts = facts or SceneFacts(scene)
    out: list[Contradiction] = []
    for k, step in enumerate(steps):
        q = _QUOTED.match(step)
        if q:
            i = int(q["id"])
            if i in facts.regions and not _says(facts, i, q["what"], q["text"]):
                out.append(Contradiction(k, f"{q['what'].split()[0]} '{q['text']}'", i))
            continue
        m = _STEP.match(step)
        if not m:
            continue
        claim = m["claim"].strip()
        ids = [int(t.strip()[1:]) for t in m["ids"].split(",")]
        ids = [i for i in ids if i in facts.regions]
        role, _, rest = claim.partition(" ")
        if role in _ROLES and rest:
            claim = rest
        atoms = _atoms(claim)
        if atoms is not None:
            for i in ids:
                if not all(facts.holds_atom(i, a) for a in atoms):
                    out.append(Contradiction(k, claim, i))
            continue
        r = _REL.match(claim)
        if r and r["rel"] in _RELATIONS and int(r["ref"]) in facts.regions:
            rel, ref = _RELATIONS[r["rel"]], int(r["ref"])
            for i in ids:
                if not facts.holds(i, rel, ref):
                    out.append(Contradiction(k, claim, i))
    return out


def _says(facts: SceneFacts, i: int, what: str, text: str) -> bool:
    """Whether region i's caption (``what`` "caption of") or read text holds every word of ``text``."""
    have = facts.caption(i) or "" if what == "caption of" else " ".join(facts.texts(i))
    want, got = _words(text), set(_words(have))
    return bool(have.strip()) and all(w in got for w in want)


def recomputed(scene: Scene, steps: list[str], excluded: Iterable[int] = (),
               facts: SceneFacts | None = None) -> list[Recomputed]:
    """Every ranking step whose stated result is not what its operation gives on its listed ids.

    A ranking ranges over objects (the writer's and the executor's rule): support and background
    regions in a listed pool are left out, as are ``excluded`` ids (those the chain's own claims are
    false of, :func:`contradicted`: a pool built from a false "noun box: ..." loses that region).
    Pools of fewer than two ids rank nothing (the writer ranks two or more; "right of R3: R5" is a
    relation claim)."""
    facts = facts or SceneFacts(scene)
    objects, excluded = set(facts.ids), set(excluded)

    def pool_of(text: str) -> tuple[int, ...]:
        return tuple(i for i in _ids(text, facts) if i in objects and i not in excluded)

    out: list[Recomputed] = []
    for k, step in enumerate(steps):
        ranked: list[int] | None = None
        claim = ""
        m = _RANK.match(step)
        e = _EDGE.match(step)
        if m and (m["word"] in SUPERLATIVES or m["word"] in PAIR_COMPARATIVES):
            key, desc = SUPERLATIVES.get(m["word"]) or PAIR_COMPARATIVES[m["word"]]
            pool = pool_of(m["pool"])
            ranked = facts.ranked(pool, key, desc)
            rank, x = (2 if m["second"] else 1), int(m["x"])
            claim = f"{m['word']} of {', '.join(f'R{i}' for i in pool)}" + (", second" if m["second"] else "")
        elif e and e["edge"] in EDGE_KEYS:
            pool = pool_of(e["pool"])
            ranked = sorted(pool, key=lambda i: (facts.edge_distance(i, EDGE_KEYS[e["edge"]]), i))
            rank, x = 1, int(e["x"])
            claim = f"closest to the {e['edge']} edge of {', '.join(f'R{i}' for i in pool)}"
        elif (s := _SIDE.match(step)) and s["side"] in ORDINAL_SIDES and k + 1 < len(steps):
            n = _NUMBER.match(steps[k + 1])
            if n:
                key, desc = ORDINAL_SIDES[s["side"]]
                pool = pool_of(s["pool"])
                ranked = facts.ranked(pool, key, desc)
                rank, x, k = int(n["k"]), int(n["x"]), k + 1
                claim = f"number {rank} from the {s['side']} of {', '.join(f'R{i}' for i in pool)}"
        if not ranked or len(ranked) < 2 or not 1 <= rank <= len(ranked) or x not in facts.regions:
            continue
        if ranked[rank - 1] != x:
            out.append(Recomputed(k, claim, tuple(ranked), x, ranked[rank - 1]))
    return out


# ---- executing the steps ------------------------------------------------------------------------

_NEGATIVE = re.compile(r"^\s*(none is both|none of them is (?P<rel>[a-z ]+?) R(?P<ref>\d+)|no region fits)\s*$")
_ABSENT_COLOUR = re.compile(r"^\s*no region has any (?P<c>[a-z]+)\s*$")
_COMMENT = re.compile(r"^\s*(no other (caption names|region reads) it|count: \d+)\s*$")
_RESULT = re.compile(rf"^\s*(left|found|both of them|union)\s*:\s*(?P<ids>{_IDS})\s*$")
_REF = re.compile(rf"^\s*(?P<role>reference|whole)\s+(?P<desc>[^:]+?)\s*(\(\d+ px\))?\s*:\s*(?P<ids>{_IDS})\s*$")
_COMPARATIVE = {"larger than": "larger_than", "smaller than": "smaller_than"}
# a superlative whose id list ran past the step's length (the model repeating ids): no stated result
_CUT_RANK = re.compile(r"^\s*(?P<word>[a-z]+) of (?P<pool>R\d+(?:\s*,\s*R\d+)*)(?:\s*,\s*R?|\s*,?\s*\.\.\.)?\s*$")


@dataclass(frozen=True)
class Execution:
    """The model's steps run on the scene: ``targets`` (sorted ids) where its chain ends, and
    ``stated`` the ids its last step wrote (what the model's targets should equal for the run to
    stand in for them)."""

    targets: tuple[int, ...]
    stated: tuple[int, ...]
    negative: bool  # the chain ends in a conclusion that nothing fits ("none is both", ...)
    explicit: bool = False  # the chain ends in a stated result ("union: ...", "left: ...", "both of them: ...")


def executed(scene: Scene, steps: list[str], facts: SceneFacts | None = None) -> Execution | None:
    """Runs the steps as the writer's program (:mod:`gear_edge.data_engine.generate`'s rationale
    layout) on the scene's exact facts, or None when any step is outside that layout (free text with
    ids, an unknown word, a reference that names no single region, a ranking past its pool).

    Semantics (objects only, as the writer and the executor): a description step ("colour red: ...")
    narrows the current set; "reference/whole <description>: R5" names the reference (the one region
    it describes, else the stated one when it fits) without narrowing; "<relation> R5: ..." keeps the
    objects of the current set in that relation to the reference (all objects when the current set
    holds the reference: the steps before described it); "except <description>: ..." removes (from
    all objects when every one so far is of that description: the steps before named the part);
    "union: ..." joins the description steps before it, each on its own, when each named one region
    (else the narrowing stands); "left: ..." after an exception states its result; rankings take the current
    set's rank-th; caption / text steps keep the objects whose caption / text holds the words; a
    role noun ("noun table", "noun wall") gives the regions of that role;
    "none is both" / "none of them is <relation> R5" conclude on the current set."""
    facts = facts or SceneFacts(scene)
    objects = list(facts.ids)
    cur: list[int] = list(objects)
    singles: list[tuple[set[int], int]] = []  # each description step's own set and ids stated, for "union"
    excepted = False
    refs: dict[int, int] = {}  # stated reference id -> the scene's
    stated: tuple[int, ...] = ()
    negative = explicit = False

    for k, raw in enumerate(steps):
        step = raw.strip()
        negative = explicit = False
        if _COMMENT.match(step) or (_NUMBER.match(step) and k > 0 and _SIDE.match(steps[k - 1].strip())):
            continue  # commentary, or an ordinal's "number k" (run with its "from the <side>" step)
        if (n := _NEGATIVE.match(step)):
            if n["rel"]:
                rel = _RELATIONS.get(n["rel"])
                ref = refs.get(int(n["ref"]), int(n["ref"]))
                if rel is None or ref not in facts.regions:
                    return None
                cur = [i for i in cur if facts.holds(i, rel, ref)]
            stated, negative = (), True
            continue
        if (a := _ABSENT_COLOUR.match(step)):
            if a["c"] not in _WORDS["colour"] or facts.atom_set(Atom("colour", a["c"])):
                return None  # only "nothing is <colour>" when it is true stands
            cur, stated, negative = [], (), True
            continue
        if (r := _RESULT.match(step)):
            word = step.split(":")[0].strip()
            if word == "union" and singles and all(n == 1 for _, n in singles):
                # the writer's "X and Y": each description step named one region
                cur = sorted(set().union(*(have for have, _ in singles)))
            # "left: ..." is a result only after an exception ("except ...: ...", then what is left)
            stated, explicit = _id_list(r["ids"]), word != "left" or excepted
            continue
        if (c := _CUT_RANK.match(step)) and c["word"] in SUPERLATIVES and k == len(steps) - 1:
            # "largest of R1, R2, R3, R1, R2, R" cut off: the operation is stated, its result is not; the
            # model's answer is then the ids it listed
            key, desc = SUPERLATIVES[c["word"]]
            if not cur:
                return None
            stated = tuple(i for i in _id_list(c["pool"]) if i in objects)
            cur = facts.ranked(cur, key, desc)[:1]
            continue
        if (f := _REF.match(step)):
            atoms = _atoms(f["desc"])
            ids = _id_list(f["ids"])
            if atoms is None or len(ids) != 1:
                return None
            match = [i for i in facts.ids if all(facts.holds_atom(i, x) for x in atoms)]
            if ids[0] in match:
                refs[ids[0]] = ids[0]
            elif len(match) == 1:
                refs[ids[0]] = match[0]
            else:
                return None
            stated = ids
            continue
        if (g := _GRASP.match(step)):  # the grasp layout: "R7 is small (2.0% of the image): graspable"
            i = int(g["id"])
            if i not in facts.regions or facts.attr(i, "size") != g["size"]:
                return None  # a false premise: the chain is not the scene's
            continue
        if _QUOTED.match(step):
            q = _QUOTED_STEP.match(step)
            if q is None:
                return None
            cur = [i for i in cur if _says(facts, i, q["what"], q["text"])]
            if q["purpose"]:  # "...: a knife affords cut": only a caption the vocabulary says affords it
                purpose = q["purpose"].strip().replace(" ", "_")
                cur = [i for i in cur if caption_affordance(facts.caption(i), purpose)[0] > 0]
            stated = (int(q["id"]),)
            continue
        m = _STEP.match(step)
        if m is None:
            return None
        claim, ids = m["claim"].strip(), _id_list(m["ids"])
        role, _, rest = claim.partition(" ")
        if role == "noun" and rest.strip() in ROLE_NOUNS:  # "noun table: R6": the support, not an object
            cur = sorted(i for i in facts.regions if facts.role(i) == ROLE_NOUNS[rest.strip()])
            stated = ids
            continue
        except_ = role == "except" and bool(rest)
        if role in _ROLES and rest:
            claim = rest
        atoms = _atoms(claim)
        if atoms is not None:
            have = {i for i in objects if all(facts.holds_atom(i, x) for x in atoms)}
            if except_:
                excepted = True
                if cur and set(cur) <= have:  # the steps so far named the part to leave out
                    cur = list(objects)
                cur = [i for i in cur if i not in have]
            else:
                singles.append((have, len(ids)))
                cur = [i for i in cur if i in have]
            stated = ids
            continue
        rel = _REL.match(claim)
        if rel and (rel["rel"] in _RELATIONS or rel["rel"] in _COMPARATIVE):
            name = _RELATIONS.get(rel["rel"]) or _COMPARATIVE[rel["rel"]]
            ref = refs.get(int(rel["ref"]), int(rel["ref"]))
            if ref not in facts.regions:
                return None
            if ref in cur:  # the steps so far described the reference ("colour red: R8", "on top of R8: ...")
                cur = list(objects)
            cur = [i for i in cur if facts.holds(i, name, ref)]
            stated = ids
            continue
        if _RANK.match(step) or _SIDE.match(step) or _EDGE.match(step):
            rank = _rank_step(facts, step, steps[k + 1] if k + 1 < len(steps) else None, cur)
            if rank is None:
                return None
            cur, stated = rank
            continue
        return None
    return Execution(tuple(sorted(cur)), tuple(stated), negative, explicit)


def _rank_step(facts: SceneFacts, step: str, following: str | None, cur: list[int]):
    """(new current set, stated ids) of a ranking step over the current set, or None."""
    m, e, s = _RANK.match(step), _EDGE.match(step), _SIDE.match(step)
    if m and (m["word"] in SUPERLATIVES or m["word"] in PAIR_COMPARATIVES):
        key, desc = SUPERLATIVES.get(m["word"]) or PAIR_COMPARATIVES[m["word"]]
        ranked, rank, x = facts.ranked(cur, key, desc), (2 if m["second"] else 1), int(m["x"])
    elif e and e["edge"] in EDGE_KEYS:
        ranked = sorted(cur, key=lambda i: (facts.edge_distance(i, EDGE_KEYS[e["edge"]]), i))
        rank, x = 1, int(e["x"])
    elif s and s["side"] in ORDINAL_SIDES and following is not None and (n := _NUMBER.match(following.strip())):
        key, desc = ORDINAL_SIDES[s["side"]]
        ranked, rank, x = facts.ranked(cur, key, desc), int(n["k"]), int(n["x"])
    else:
        return None
    if not 1 <= rank <= len(ranked):
        return None
    return [ranked[rank - 1]], (x,)
