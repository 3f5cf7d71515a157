"""Exact scene facts for the template writer: attribute look-ups, relations, and descriptions.

A :class:`Description` is a conjunction of :class:`Atom` s (colour, size, shape, holes, brightness,
texture, position), each an exact predicate on a region's attributes (``gear_edge.describe.geometry``
schema). Its wording uses plain English a reader would use ("the small red object with holes in
the top left corner"); :meth:`SceneFacts.matching` is the set of regions it denotes.

Relations come from ``scene.relations``; directional ones between regions that are not neighbours
in the relation graph are decided by the vocabulary's direction rule (:func:`gear_edge.vocabulary.direction`),
the one the describe stage uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Iterable

from gear_edge.scene_index import SceneIndex
from gear_edge.types import Scene
from gear_edge.vocabulary import COLOURS, SHAPE_NOUNS, SIZE_PHRASES, TEXTURES
from gear_edge.vocabulary import SHAPE_WORDS as _SHAPE_ADJECTIVES

# the words questions use, each a key of the vocabulary's tables (so the deducer reads them the same way)
SIZE_WORDS = SIZE_PHRASES  # size word -> size classes it covers
SHAPE_WORDS = {w: _SHAPE_ADJECTIVES[w] for w in ("elongated", "round", "square", "rectangular", "triangular",
                                                  "irregular")}
# object nouns that name a shape (the vocabulary's SHAPE_NOUNS: "the red box" is a red rectangular or
# square object); only nouns whose meaning is the shape alone (no caption-like object words)
NOUN_WORDS = tuple(w for w in ("box", "block", "rectangle", "card", "square", "tile", "ball", "disc", "circle",
                               "dot", "ring", "donut", "hoop", "loop", "stick", "bar", "rod", "strip", "triangle",
                               "wedge") if w in SHAPE_NOUNS)
PLURALS = {"box": "boxes"}
HEADS = ("object", "thing", "one", "item")  # head nouns that say nothing of the shape
BRIGHTNESS_WORDS = ("dark", "bright")
TEXTURE_WORDS = TEXTURES
# position word -> (position_h, position_v) constraint (None: any)
POSITION_PHRASES = {
    "top-left": ("in the top left corner", ("left", "top")),
    "top-right": ("in the top right corner", ("right", "top")),
    "bottom-left": ("in the bottom left corner", ("left", "bottom")),
    "bottom-right": ("in the bottom right corner", ("right", "bottom")),
    "centre": ("in the centre", ("centre", "middle")),
    "left": ("on the left", ("left", None)),
    "right": ("on the right", ("right", None)),
    "top": ("at the top", (None, "top")),
    "bottom": ("at the bottom", (None, "bottom")),
}
# rankings the writer asks about and the direct deducer's chain check recomputes: word -> (key, descending)
SUPERLATIVES = {
    "largest": ("area", True), "smallest": ("area", False), "leftmost": ("x", False), "rightmost": ("x", True),
    "topmost": ("y", False), "lowest": ("y", True), "brightest": ("brightness", True), "darkest": ("brightness", False),
}
ORDINAL_SIDES = {"left": ("x", False), "right": ("x", True), "top": ("y", False), "bottom": ("y", True)}
PAIR_COMPARATIVES = {"bigger": ("area", True), "larger": ("area", True), "smaller": ("area", False),
                     "left": ("x", False), "right": ("x", True)}
EDGE_KEYS = {"left": "x0", "right": "x1", "top": "y0", "bottom": "y1"}  # distance to that image side
KIND_ORDER = ("colour", "size", "shape", "noun", "holes", "brightness", "texture", "position")
# kinds never combined in one description: "bright red" reads as a shade of red, not a bright object;
# a shape noun already says the shape ("the round disc")
EXCLUSIVE = ({"brightness", "colour"}, {"noun", "shape"}, {"noun", "holes"})


def plural_of(noun: str) -> str:
    return PLURALS.get(noun, noun + "s")


@dataclass(frozen=True)
class Atom:
    kind: str  # one of KIND_ORDER
    word: str  # the word as written (a key of the tables above, a colour, or "holes")


@dataclass(frozen=True)
class Description:
    """A conjunction of atoms; empty = any object."""

    atoms: tuple[Atom, ...] = ()
    head: str = "object"  # the head noun when no shape noun is an atom (one of HEADS)

    def kinds(self) -> set[str]:
        return {a.kind for a in self.atoms}

    def has(self, kind: str) -> bool:
        return any(a.kind == kind for a in self.atoms)

    def words(self, plural: bool = False) -> str:
        """The noun phrase without its article: "small red object with holes on the left", "red box"."""
        by = {a.kind: a.word for a in self.atoms}
        pre = [by.get(k) for k in ("size", "brightness", "texture", "colour", "shape") if by.get(k)]
        head = by.get("noun") or (self.head if pre or self.head != "one" else "object")
        text = " ".join([*pre, plural_of(head) if plural else head])
        if "holes" in by:
            text += " with holes"
        if "position" in by:
            text += " " + POSITION_PHRASES[by["position"]][0]
        return text

    def text(self, article: str = "the", plural: bool = False) -> str:
        return f"{article} {self.words(plural)}".strip()

    def describe(self) -> str:
        """For rationales: "colour red, size small"."""
        return ", ".join(f"{a.kind} {a.word}" for a in self.atoms) or "any object"

    def with_head(self, head: str) -> "Description":
        return Description(self.atoms, head)

    def __add__(self, other: "Description") -> "Description":
        head = other.head if other.head != "object" else self.head
        return Description(tuple(sorted(set(self.atoms) | set(other.atoms), key=lambda a: (KIND_ORDER.index(a.kind), a.word))),
                           head)


class SceneFacts(SceneIndex):
    """Exact attribute and relation look-ups on one scene (``ids`` sorted: the regions with role
    "object", or every region when none has)."""

    def __init__(self, scene: Scene) -> None:
        super().__init__(scene)
        # questions are about objects, as the deducer reads them: the support / background regions only
        # when no region is an object (the executor's role rule)
        objects = sorted(i for i in self.regions if self.role(i) == "object")
        self.ids = objects or sorted(self.regions)
        self._match_cache: dict[Atom, frozenset[int]] = {}

    # ---- attributes ----------------------------------------------------------------------------

    def texts(self, i: int) -> list[str]:
        return [t for t in self.regions[i].text if isinstance(t, str) and t.strip()]

    def caption(self, i: int) -> str | None:
        c = self.regions[i].caption
        return c.strip() if isinstance(c, str) and c.strip() else None

    def holds_atom(self, i: int, atom: Atom) -> bool:
        k, w = atom.kind, atom.word
        if k == "colour":
            return self.colour(i) == w
        if k == "size":
            return self.attr(i, "size") in SIZE_WORDS[w]
        if k == "shape":
            return any(s in SHAPE_WORDS[w] for s in (self.attr(i, "shape") or []))
        if k == "noun":
            return SHAPE_NOUNS[w].holds(self.attr(i, "shape") or [])
        if k == "holes":
            return "has holes" in (self.attr(i, "shape") or [])
        if k == "brightness":
            return self.attr(i, "brightness_word") == w
        if k == "texture":
            return self.attr(i, "texture_word") == w
        if k == "position":
            want_h, want_v = POSITION_PHRASES[w][1]
            return (want_h is None or self.attr(i, "position_h") == want_h) and (
                want_v is None or self.attr(i, "position_v") == want_v)
        raise ValueError(f"unknown atom kind {k!r}")

    def atom_set(self, atom: Atom) -> frozenset[int]:
        s = self._match_cache.get(atom)
        if s is None:
            s = frozenset(i for i in self.ids if self.holds_atom(i, atom))
            self._match_cache[atom] = s
        return s

    def matching(self, d: Description, pool: Iterable[int] | None = None) -> list[int]:
        """Sorted ids of the regions (of ``pool``, default all) that satisfy every atom of ``d``."""
        out = set(self.ids if pool is None else pool)
        for a in d.atoms:
            out &= self.atom_set(a)
        return sorted(out)

    def atoms_of(self, i: int, kinds: Iterable[str] = KIND_ORDER) -> list[Atom]:
        """Every atom true of region i, in KIND_ORDER (words that cover its values)."""
        kinds = set(kinds)
        out: list[Atom] = []
        if "colour" in kinds and self.colour(i) in COLOURS:
            out.append(Atom("colour", self.colour(i)))
        if "size" in kinds:
            out += [Atom("size", w) for w, vals in SIZE_WORDS.items() if self.attr(i, "size") in vals]
        if "shape" in kinds:
            shapes = self.attr(i, "shape") or []
            out += [Atom("shape", w) for w, vals in SHAPE_WORDS.items() if any(s in vals for s in shapes)]
        if "noun" in kinds:
            out += [Atom("noun", w) for w in NOUN_WORDS if self.holds_atom(i, Atom("noun", w))]
        if "holes" in kinds and "has holes" in (self.attr(i, "shape") or []):
            out.append(Atom("holes", "holes"))
        if "brightness" in kinds and self.attr(i, "brightness_word") in BRIGHTNESS_WORDS:
            out.append(Atom("brightness", str(self.attr(i, "brightness_word"))))
        if "texture" in kinds and self.attr(i, "texture_word") in TEXTURE_WORDS:
            out.append(Atom("texture", str(self.attr(i, "texture_word"))))
        if "position" in kinds:
            out += [Atom("position", w) for w in POSITION_PHRASES if self.holds_atom(i, Atom("position", w))]
        return out

    def unique_descriptions(self, i: int, kinds: Iterable[str], max_atoms: int = 2,
                            pool: Iterable[int] | None = None) -> list[Description]:
        """The shortest descriptions (at most ``max_atoms`` atoms of different kinds among ``kinds``)
        that denote exactly region i within ``pool`` (default: all regions); [] when none does.
        Ordered by KIND_ORDER priority (colour first)."""
        pool = list(self.ids if pool is None else pool)
        atoms = self.atoms_of(i, kinds)
        for n in range(1, max_atoms + 1):
            found = []
            for combo in combinations(atoms, n):
                kinds_ = {a.kind for a in combo}
                if len(kinds_) < n or any(pair <= kinds_ for pair in EXCLUSIVE):
                    continue
                d = Description(combo)
                if self.matching(d, pool) == [i]:
                    found.append(d)
            if found:
                return found
        return []

    # ---- rankings ------------------------------------------------------------------------------

    def rank_value(self, i: int, key: str) -> float:
        """Region i's value under a ranking ``key``: "area" (px), "x" / "y" (centroid, px, image
        frame: x right, y down) or "brightness" (0..1)."""
        if key == "area":
            return self.area(i)
        if key == "x":
            return self.centroid(i)[0]
        if key == "y":
            return self.centroid(i)[1]
        return float(self.attr(i, "brightness", 0.0) or 0.0)

    def edge_distance(self, i: int, key: str) -> float:
        """Distance (px) of region i's bounding box to one image side (``key`` of EDGE_KEYS' values)."""
        x0, y0, bw, bh = self.regions[i].bbox
        return {"x0": x0, "y0": y0, "x1": self.w - (x0 + bw), "y1": self.h - (y0 + bh)}[key]

    def ranked(self, pool: Iterable[int], key: str, descending: bool) -> list[int]:
        """``pool`` ordered by :meth:`rank_value` (ties by id)."""
        return sorted(pool, key=lambda i: (-self.rank_value(i, key) if descending else self.rank_value(i, key), i))

    # ---- relations -----------------------------------------------------------------------------

    def edge(self, pred: str, s: int, o: int) -> bool:
        return (s, o) in self.edges.get(pred, ())

    def _direction(self, c: int, r: int, axis: str) -> int:
        """-1 / +1 when c is left of / right of r (axis 'x') or above / below r ('y'); 0 neither."""
        return self.direction(c, r, axis)

    def holds(self, c: int, rel: str, r: int) -> bool:
        """Whether ``c <rel> r`` holds. ``rel``: left_of, right_of, above, below, on_top_of, inside,
        contains, touching, larger_than, smaller_than."""
        if c == r:
            return False
        if rel == "left_of":
            return self._direction(c, r, "x") == -1
        if rel == "right_of":
            return self._direction(c, r, "x") == 1
        if rel == "above":
            return self.edge("on_top_of", c, r) or self._direction(c, r, "y") == -1
        if rel == "below":
            return self.edge("under", c, r) or self._direction(c, r, "y") == 1
        if rel in ("on_top_of", "inside", "contains"):
            return self.edge(rel, c, r)
        if rel == "touching":
            return any(self.edge(p, c, r) for p in ("touching", "on_top_of", "under"))
        if rel == "larger_than":
            return self.area(c) > self.area(r)
        if rel == "smaller_than":
            return self.area(c) < self.area(r)
        raise ValueError(f"unknown relation {rel!r}")

    def related(self, rel: str, refs: Iterable[int], pool: Iterable[int] | None = None) -> list[int]:
        """Sorted ids of ``pool`` (default all) for which ``rel`` holds with at least one of ``refs``."""
        refs = list(refs)
        return sorted(c for c in (self.ids if pool is None else pool) if any(self.holds(c, rel, r) for r in refs))
