"""Checks the facts a direct-mode LLM states in its steps against the scene's exact facts.

The direct deducer's model writes its steps in the data engine's rationale layout (it was trained
on it, :mod:`gear_edge.data_engine.deducer_data`), the same layout as the scene-text index::

    colour red: R3, R5          (R3 and R5 are red)
    noun box, colour blue: R2   (R2 is a box and blue)
    except size small: R4       (a claim about R4 all the same)
    on top of R1: R3, R4        (R3 and R4 are on top of R1)

Each such step claims a fact of each listed region; :func:`contradicted` returns the regions whose
claimed fact the scene denies (the direct deducer drops such targets and quotes the scene). The semantics of each word are the
data engine's (:class:`gear_edge.data_engine.facts.SceneFacts`, which read the vocabulary), so a
claim is false exactly when the writer would never have written it. Steps in any other form (free
text, "left: R6", "count: 3", a word outside the vocabulary) claim nothing checkable and are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gear_edge.data_engine.facts import (
    BRIGHTNESS_WORDS, NOUN_WORDS, POSITION_PHRASES, SHAPE_WORDS, SIZE_WORDS, TEXTURE_WORDS, Atom, SceneFacts,
)
from gear_edge.types import Scene
from gear_edge.vocabulary import COLOURS

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


@dataclass(frozen=True)
class Contradiction:
    """``region`` does not have the fact ``claim`` (as written in step ``step``) in the scene."""

    step: int
    claim: str
    region: int


def _atoms(text: str) -> list[Atom] | None:
    """'noun box, colour blue' -> atoms; None when any part is not a known kind + word."""
    out = []
    for part in text.split(","):
        kind, _, word = part.strip().partition(" ")
        if kind not in _WORDS or word.strip() not in _WORDS[kind]:
            return None
        out.append(Atom(kind, word.strip()))
    return out or None


def contradicted(scene: Scene, steps: list[str]) -> list[Contradiction]:
    """Every (step, claim, region) the scene denies, in step order. Regions the scene does not hold
    are left to the grammar (which admits only the scene's ids)."""
    facts = SceneFacts(scene)
    out: list[Contradiction] = []
    for k, step in enumerate(steps):
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
