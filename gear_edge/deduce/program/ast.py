"""The typed query program: what to look for in a scene, as data the executor runs exactly.

A :class:`Program` holds one :class:`ObjectSpec` per target phrase ("the cup and the book": two;
the answer is their union); an ObjectSpec's filters are applied in order:

* :class:`AttrFilter` — one of the exact region attributes (colour, size, position, shape,
  brightness, texture), any of several values, optionally negated;
* :class:`TextFilter` — text read on the object (``Region.text``, OCR);
* :class:`NounFilter` — object words matched semantically against captions / OCR text;
* :class:`RelationFilter` — a relation to the regions another ObjectSpec finds (``ref``), or two
  (``between``);
* :class:`Exclude` — drop what another ObjectSpec finds ("everything except the table");

then an optional :class:`Order` (superlative or ordinal: "the largest", "the second from the left")
and the ``quantity`` ("one" keeps the best-scoring region, "all" keeps every fit). An empty result
is a valid answer ("nothing in the scene fits").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Union

from gear_edge.vocabulary import BRIGHTNESS, COLOURS, POSITION_WORDS, SHAPES, SIZES, TEXTURES

# "writing": the region has text read on it (any), from "with writing on it"
ATTR_KINDS = ("colour", "size", "position", "shape", "brightness", "texture", "writing")
ATTR_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOURS, "size": SIZES, "position": POSITION_WORDS, "shape": SHAPES,
    "brightness": BRIGHTNESS, "texture": TEXTURES, "writing": ("some",),
}

# Relations the executor decides; scene predicates in parentheses (subject = the target):
RELATIONS = (
    "on",  # on_top_of, or inside a larger region (a thing lying on a surface seen from above)
    "under",  # under / below
    "above",  # above / on_top_of
    "below",  # below / under
    "inside",  # inside
    "contains",  # contains
    "left_of", "right_of",
    "near",  # touching, or the bbox gap is small against the image
    "touching",
    "in_front_of",  # occludes
    "behind",  # occluded_by
    "larger_than", "smaller_than",  # exact areas
    "same_colour_as",  # dominant colour
    "between",  # two references
    "carries",  # the reference lies on it or inside it ("the tray with a cup on it")
)
# edge_*: the bbox's distance to that image border; viewer: distance to the camera (depth where the
# regions have it, else how far the region's lowest point is from the image bottom); height: above
# the support (attribute height_m, from depth) or else the bbox height in pixels; elevation ("the
# highest"): how high its top is above the support (top_above_support_m, from depth), else how high
# it is in the image
ORDER_KEYS = ("area", "x", "y", "brightness", "elongation", "circularity", "distance", "edge_top", "edge_bottom",
              "edge_left", "edge_right", "viewer", "height", "elevation")

Quantity = Literal["one", "all"]


@dataclass(frozen=True)
class AttrFilter:
    kind: str  # one of ATTR_KINDS
    values: tuple[str, ...]  # any of these (ATTR_VALUES[kind])
    negated: bool = False

    def describe(self) -> str:
        v = " or ".join(self.values)
        return f"{'not ' if self.negated else ''}{self.kind} {v}"


@dataclass(frozen=True)
class TextFilter:
    text: str  # compared case- and punctuation-insensitively, tolerating OCR slips
    negated: bool = False
    strict: bool = True  # False: a hint (an all-caps word); dropped when no region reads it

    def describe(self) -> str:
        return f"{'not ' if self.negated else ''}text \"{self.text}\"{'' if self.strict else '?'}"


@dataclass(frozen=True)
class NounFilter:
    phrase: str  # the object words of the query ("coffee mug", "something to cut with")
    head: str | None = None  # head noun for the lexical check
    alternatives: tuple[str, ...] = ()  # more object words for the same thing (from the LLM)
    negated: bool = False
    purpose: bool = False  # the phrase says what the object is for ("something to cut with")
    affordance: str = ""  # the vocabulary's affordance the purpose names ("cut"; AFFORDANCE_NOUNS), if any

    def describe(self) -> str:
        alt = f" (or {', '.join(self.alternatives)})" if self.alternatives else ""
        return f"{'not ' if self.negated else ''}{'use' if self.purpose else 'object'} '{self.phrase}'{alt}"


@dataclass(frozen=True)
class RelationFilter:
    relation: str  # one of RELATIONS
    ref: "ObjectSpec"
    ref2: "ObjectSpec | None" = None  # the second reference of "between"
    negated: bool = False

    def describe(self) -> str:
        tail = f" and {self.ref2.describe()}" if self.ref2 is not None else ""
        return f"{'not ' if self.negated else ''}{self.relation.replace('_', ' ')} [{self.ref.describe()}{tail}]"


@dataclass(frozen=True)
class Exclude:
    spec: "ObjectSpec"

    def describe(self) -> str:
        return f"except [{self.spec.describe()}]"


Filter = Union[AttrFilter, TextFilter, NounFilter, RelationFilter, Exclude]


@dataclass(frozen=True)
class Order:
    """Superlative / ordinal: sort by ``key`` (descending when ``descending``) and keep rank ``rank``
    (1-based; 0 = the middle one of the candidates, "the middle box"). ``ref`` is the reference of key
    'distance' ("closest to the cup")."""

    key: str  # one of ORDER_KEYS
    descending: bool
    rank: int = 1
    count: int = 1  # how many to keep from ``rank`` on ("the two largest")
    word: str = ""  # as the query said it ("largest", "second from the left")
    ref: "ObjectSpec | None" = None

    def describe(self) -> str:
        ref = f" [{self.ref.describe()}]" if self.ref is not None else ""
        return f"{self.word or self.key}{ref}"


@dataclass(frozen=True)
class ObjectSpec:
    filters: tuple[Filter, ...] = ()
    order: Order | None = None
    quantity: Quantity = "one"

    def describe(self) -> str:
        parts = [f.describe() for f in self.filters]
        if self.order is not None:
            parts.append(self.order.describe())
        body = ", ".join(parts) if parts else "any object"
        return f"{'all' if self.quantity == 'all' else 'the'} {body}"

    @property
    def noun(self) -> NounFilter | None:
        return next((f for f in self.filters if isinstance(f, NounFilter) and not f.negated), None)


@dataclass(frozen=True)
class Unresolved:
    """A part of the query the parser could not turn into filters: the LLM maps it to object words.

    ``kind``: 'purpose' ("something to cut the tape with") or 'phrase' (words the grammar does not
    cover); ``acted_on``: words the purpose acts on ("tape"), which are never the answer's object.
    """

    text: str
    kind: Literal["purpose", "phrase"] = "phrase"
    acted_on: tuple[str, ...] = ()
    phrase: str = ""  # the NounFilter phrase whose ``alternatives`` the LLM's words fill


@dataclass(frozen=True)
class Program:
    """``targets``: one ObjectSpec, or several joined by "and" (the answer is their union)."""

    query: str
    targets: tuple[ObjectSpec, ...]
    unresolved: tuple[Unresolved, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what the parser decided that the chain should say
    nothing: str = ""  # non-empty: the query can denote nothing (content-free, a malformed ordinal); why

    def describe(self) -> str:
        return " + ".join(t.describe() for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "targets": [spec_to_dict(t) for t in self.targets],
                "unresolved": [{"text": u.text, "kind": u.kind, "acted_on": list(u.acted_on), "phrase": u.phrase}
                               for u in self.unresolved],
                "notes": list(self.notes), "nothing": self.nothing}


def spec_to_dict(spec: ObjectSpec) -> dict[str, Any]:
    """A JSON-able form (for logs and tests)."""

    def f2d(f: Filter) -> dict[str, Any]:
        if isinstance(f, AttrFilter):
            return {"attr": f.kind, "values": list(f.values), "negated": f.negated}
        if isinstance(f, TextFilter):
            return {"text": f.text, "negated": f.negated, "strict": f.strict}
        if isinstance(f, NounFilter):
            d = {"noun": f.phrase, "head": f.head, "alternatives": list(f.alternatives), "negated": f.negated,
                 "purpose": f.purpose}
            if f.affordance:
                d["affordance"] = f.affordance
            return d
        if isinstance(f, RelationFilter):
            d = {"relation": f.relation, "ref": spec_to_dict(f.ref), "negated": f.negated}
            if f.ref2 is not None:
                d["ref2"] = spec_to_dict(f.ref2)
            return d
        return {"except": spec_to_dict(f.spec)}

    d: dict[str, Any] = {"quantity": spec.quantity, "filters": [f2d(f) for f in spec.filters]}
    if spec.order is not None:
        o = spec.order
        d["order"] = {"key": o.key, "descending": o.descending, "rank": o.rank, "count": o.count, "word": o.word}
        if o.ref is not None:
            d["order"]["ref"] = spec_to_dict(o.ref)
    return d


def affordances(program: Program) -> set[str]:
    """The vocabulary affordances the program's (non-negated) purpose filters name, at any depth."""
    out: set[str] = set()

    def spec(s: ObjectSpec | None) -> None:
        if s is None:
            return
        for f in s.filters:
            if isinstance(f, NounFilter) and f.purpose and f.affordance and not f.negated:
                out.add(f.affordance)
            elif isinstance(f, RelationFilter):
                spec(f.ref)
                spec(f.ref2)
            elif isinstance(f, Exclude):
                spec(f.spec)
        if s.order is not None:
            spec(s.order.ref)

    for t in program.targets:
        spec(t)
    return out


def with_alternatives(program: Program, words: dict[str, tuple[str, ...]]) -> Program:
    """A copy of ``program`` whose (non-negated) NounFilters with a phrase in ``words`` get those
    alternatives, at any depth (references included)."""

    def spec(s: ObjectSpec | None) -> ObjectSpec | None:
        if s is None:
            return None
        out: list[Filter] = []
        for f in s.filters:
            if isinstance(f, NounFilter) and not f.negated and f.phrase in words:
                f = replace(f, alternatives=tuple(dict.fromkeys((*f.alternatives, *words[f.phrase]))))
            elif isinstance(f, RelationFilter):
                f = replace(f, ref=spec(f.ref), ref2=spec(f.ref2))
            elif isinstance(f, Exclude):
                f = replace(f, spec=spec(f.spec))
            out.append(f)
        order = s.order
        if order is not None and order.ref is not None:
            order = replace(order, ref=spec(order.ref))
        return ObjectSpec(tuple(out), order, s.quantity)

    return replace(program, targets=tuple(spec(t) for t in program.targets))  # type: ignore[misc]
