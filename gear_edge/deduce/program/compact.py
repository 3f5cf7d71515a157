"""The compact program: a query program as bounded JSON an LLM can write under a grammar.

When the parser cannot place a phrase, a tuned LLM may translate the whole query into a program
(:class:`~gear_edge.deduce.program.translate.ProgramTranslator`). It writes this layout, which the
GBNF grammar of :func:`compact_schema` bounds, and :func:`from_compact` turns into a typed
:class:`~gear_edge.deduce.program.ast.Program` that the executor runs exactly::

    {"targets": [{"attrs": ["colour=red", "shape!=round"], "rel": "on", "ref": {"attrs": [], "noun": "box"},
                  "order": "area desc"}]}

Only ``attrs`` is required; a key left out has its empty value (``noun`` / ``text`` / ``rel`` /
``order`` ``""``, no ``ref`` / ``except``, ``all`` false), so a plain request costs a dozen tokens.

* ``targets``: 0..:data:`MAX_TARGETS` object specs, their answers joined; none = "nothing fits";
* ``attrs``: ``kind=value`` (``!=`` negated) with kinds and values of
  :data:`~gear_edge.deduce.program.ast.ATTR_VALUES` (the vocabulary's words);
  and ``use=<affordance>`` (what the object is for: the vocabulary's ``AFFORDANCE_NOUNS``);
* ``noun``: object words matched against captions / OCR and shape nouns;
  ``text``: text read on the object;
* ``rel`` (:data:`~gear_edge.deduce.program.ast.RELATIONS` but ``between``) to the ``ref`` spec;
  ``order``: ``"<key> asc|desc[ <rank>][ x<count>]"`` (:data:`~gear_edge.deduce.program.ast.ORDER_KEYS`;
  rank 0 = the middle one); key ``distance`` ranks by distance to ``ref`` (then ``rel`` is empty);
* ``ref`` / ``except``: a flat spec (``attrs``, ``noun``, ``all``); ``except`` drops what it finds;
* ``all``: every match, not the best one.

The layout covers what the parser writes for most queries, not all (no two relations, no ``between``,
no nested references); :func:`to_compact` returns None for a program outside it.
"""

from __future__ import annotations

from typing import Any

from gear_edge.deduce.grammar import Array, Enum, Grammar, Object, String, compile_schema
from gear_edge.deduce.program.ast import (
    ATTR_KINDS, ATTR_VALUES, ORDER_KEYS, RELATIONS, AttrFilter, Exclude, Filter, NounFilter, ObjectSpec, Order,
    Program, RelationFilter, TextFilter,
)
from gear_edge.errors import InputError
from gear_edge.vocabulary import AFFORDANCE_NOUNS

MAX_TARGETS = 3
MAX_ATTRS = 4
MAX_REF_ATTRS = 3
MAX_NOUN_CHARS = 24
MAX_TEXT_CHARS = 24
MAX_RANK = 3
MAX_COUNT = 3

USES: tuple[str, ...] = tuple(sorted(AFFORDANCE_NOUNS))
ATOMS: tuple[str, ...] = (tuple(f"{k}{op}{v}" for op in ("=", "!=") for k in ATTR_KINDS for v in ATTR_VALUES[k])
                          + tuple(f"use={u}" for u in USES))
COMPACT_RELATIONS: tuple[str, ...] = tuple(r for r in RELATIONS if r != "between")


def order_atom(key: str, descending: bool, rank: int = 1, count: int = 1) -> str:
    """``"area desc"``, ``"x asc 2"`` (the second from the left), ``"area desc x2"`` (the two largest)."""
    return (f"{key} {'desc' if descending else 'asc'}" + (f" {rank}" if rank != 1 else "")
            + (f" x{count}" if count != 1 else ""))


_ORDER_PARTS = {order_atom(k, d, r, c): (k, d, r, c) for k in ORDER_KEYS for d in (False, True)
                for r in range(0, MAX_RANK + 1) for c in range(1, MAX_COUNT + 1)}
ORDERS: tuple[str, ...] = tuple(_ORDER_PARTS)


def _order_word(key: str, descending: bool, rank: int, count: int) -> str:
    """How the chain says an order: 'number 2 by x ascending', 'the first by area descending, 2 from there'."""
    which = "the middle one" if rank == 0 else ("the first" if rank == 1 else f"number {rank}")
    many = f", {count} from there" if count != 1 else ""
    return f"{which} by {key} {'descending' if descending else 'ascending'}{many}"


def _ref_schema(max_attrs: int) -> Object:
    return Object((("attrs", Array(Enum(ATOMS), max_attrs)), ("noun", String(MAX_NOUN_CHARS, 1)),
                   ("all", Enum((True,)))), optional=("noun", "all"))


SPEC_KEYS = ("attrs", "noun", "text", "rel", "ref", "order", "except", "all")
REF_KEYS = ("attrs", "noun", "all")


def compact_schema() -> Object:
    spec = Object((
        ("attrs", Array(Enum(ATOMS), MAX_ATTRS)),
        ("noun", String(MAX_NOUN_CHARS, 1)),
        ("text", String(MAX_TEXT_CHARS, 1)),
        ("rel", Enum(COMPACT_RELATIONS)),
        ("ref", _ref_schema(MAX_REF_ATTRS)),
        ("order", Enum(ORDERS)),
        ("except", _ref_schema(MAX_REF_ATTRS)),
        ("all", Enum((True,))),
    ), optional=SPEC_KEYS[1:])
    return Object((("targets", Array(spec, MAX_TARGETS)),))


_GRAMMAR: Grammar | None = None


def compact_grammar() -> Grammar:
    """The compiled grammar of :func:`compact_schema` (built once)."""
    global _GRAMMAR
    if _GRAMMAR is None:
        _GRAMMAR = compile_schema(compact_schema())
    return _GRAMMAR


# ---- Program -> compact ----------------------------------------------------------------------

def _atom(f: AttrFilter) -> str | None:
    if len(f.values) != 1:
        return None
    a = f"{f.kind}{'!=' if f.negated else '='}{f.values[0]}"
    return a if a in ATOMS else None


def _ref(spec: ObjectSpec) -> dict[str, Any] | None:
    """A flat spec (attributes and one noun, no order) as a ``ref`` / ``except`` object, or None."""
    if spec.order is not None:
        return None
    attrs: list[str] = []
    noun = ""
    for f in spec.filters:
        a = _atom(f) if isinstance(f, AttrFilter) else None
        if a is not None:
            attrs.append(a)
        elif isinstance(f, NounFilter) and not f.negated and not f.purpose and not noun and not f.alternatives:
            noun = f.phrase
        else:
            return None
    if not (attrs or noun) or len(attrs) > MAX_REF_ATTRS or len(noun) > MAX_NOUN_CHARS or not _clean(noun):
        return None
    out: dict[str, Any] = {"attrs": attrs}
    if noun:
        out["noun"] = noun
    if spec.quantity == "all":
        out["all"] = True
    return out


def _spec(spec: ObjectSpec) -> dict[str, Any] | None:
    attrs: list[str] = []
    fields: dict[str, Any] = {}
    use = ""
    for f in spec.filters:
        if isinstance(f, AttrFilter):
            a = _atom(f)
            if a is None:
                return None
            attrs.append(a)
        elif isinstance(f, NounFilter):
            if f.negated or "noun" in fields or use or f.alternatives:
                return None
            if f.purpose:
                if f.affordance not in USES:
                    return None
                use = f.affordance
            elif f.phrase:
                fields["noun"] = f.phrase
        elif isinstance(f, TextFilter):
            if f.negated or not f.strict or "text" in fields or not f.text:
                return None
            fields["text"] = f.text
        elif isinstance(f, RelationFilter):
            if "rel" in fields or f.negated or f.relation not in COMPACT_RELATIONS or f.ref2 is not None:
                return None
            ref = _ref(f.ref)
            if ref is None:
                return None
            fields["rel"], fields["ref"] = f.relation, ref
        elif isinstance(f, Exclude):
            ex = _ref(f.spec)
            if ex is None or "except" in fields:
                return None
            fields["except"] = ex
        else:  # pragma: no cover - every Filter type is handled above
            return None
    if use:
        attrs.append(f"use={use}")
    o = spec.order
    if o is not None:
        if not (0 <= o.rank <= MAX_RANK and 1 <= o.count <= MAX_COUNT):
            return None
        fields["order"] = order_atom(o.key, o.descending, o.rank, o.count)
        if o.key == "distance":
            ref = None if o.ref is None else _ref(o.ref)
            if "rel" in fields or ref is None:
                return None
            fields["ref"] = ref
        elif o.ref is not None:
            return None
    if spec.quantity == "all":
        fields["all"] = True
    if len(attrs) > MAX_ATTRS or len(fields.get("noun", "")) > MAX_NOUN_CHARS \
            or len(fields.get("text", "")) > MAX_TEXT_CHARS:
        return None
    if not _clean(fields.get("noun", "")) or not _clean(fields.get("text", "")):
        return None
    return {"attrs": attrs, **{k: fields[k] for k in SPEC_KEYS if k in fields}}


def _clean(text: str) -> bool:
    return all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in text)


def to_compact(program: Program) -> dict[str, Any] | None:
    """The compact JSON of ``program``, or None when the layout cannot hold it (see the module doc)."""
    if program.nothing:
        return {"targets": []}
    if not 1 <= len(program.targets) <= MAX_TARGETS:
        return None
    specs = [_spec(t) for t in program.targets]
    if any(s is None for s in specs):
        return None
    return {"targets": specs}


# ---- compact -> Program ----------------------------------------------------------------------

def _keys(d: Any, keys: tuple[str, ...], where: str) -> None:
    """``attrs`` there, no key outside the layout (a misspelt key would otherwise be ignored)."""
    if not isinstance(d, dict):
        raise InputError(f"compact program: {where} must be an object with keys among {list(keys)}")
    extra = sorted(str(k) for k in d if k not in keys)
    parts = (["lacks 'attrs'"] if "attrs" in keys and "attrs" not in d else []) + \
            ([f"has unknown {', '.join(repr(k) for k in extra)}"] if extra else [])
    if parts:
        raise InputError(f"compact program: {where} {' and '.join(parts)} (keys: {list(keys)})")


def _attrs(values: Any, where: str, limit: int) -> list[Filter]:
    if not isinstance(values, list) or len(values) > limit:
        raise InputError(f"compact program: {where}.attrs must be a list of at most {limit} atoms")
    out: list[Filter] = []
    for a in values:
        if a not in ATOMS:
            raise InputError(f"compact program: {where}.attrs: {a!r} is not kind=value / kind!=value of the vocabulary")
        if a.startswith("use="):
            u = a[4:]
            out.append(NounFilter(f"something to {u}", head=None, purpose=True, affordance=u))
            continue
        neg = "!=" in a
        kind, value = a.split("!=" if neg else "=", 1)
        out.append(AttrFilter(kind, (value,), neg))
    return out


def _noun(text: Any, where: str) -> list[Filter]:
    if not isinstance(text, str) or len(text) > MAX_NOUN_CHARS:
        raise InputError(f"compact program: {where}.noun must be a string of at most {MAX_NOUN_CHARS} characters")
    words = " ".join(text.lower().split())
    return [NounFilter(words, head=words.split()[-1])] if words else []


def _quantity(v: Any, where: str) -> str:
    if not isinstance(v, bool):
        raise InputError(f"compact program: {where}.all must be true or false")
    return "all" if v else "one"


def _one_ref(d: Any, where: str) -> ObjectSpec | None:
    if d is None:
        return None
    _keys(d, REF_KEYS, where)
    filters = [*_attrs(d["attrs"], where, MAX_REF_ATTRS), *_noun(d.get("noun", ""), where)]
    quantity = _quantity(d.get("all", False), where)
    if not filters:
        raise InputError(f"compact program: {where} names nothing (no attrs, no noun)")
    return ObjectSpec(tuple(filters), None, quantity)  # type: ignore[arg-type]


def _from_spec(d: Any, where: str) -> ObjectSpec:
    _keys(d, SPEC_KEYS, where)
    attrs = _attrs(d["attrs"], where, MAX_ATTRS)
    uses = [f for f in attrs if isinstance(f, NounFilter)]
    filters: list[Filter] = [f for f in attrs if not isinstance(f, NounFilter)] + _noun(d.get("noun", ""), where)
    if len(uses) > 1:
        raise InputError(f"compact program: {where}.attrs names {len(uses)} uses; at most one")
    text = d.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise InputError(f"compact program: {where}.text must be a string of at most {MAX_TEXT_CHARS} characters")
    if text.strip():
        filters.append(TextFilter(text.strip()))
    filters += uses
    rel = d.get("rel", "")
    ref = _one_ref(d.get("ref"), f"{where}.ref")
    if rel not in ("",) + COMPACT_RELATIONS:
        raise InputError(f"compact program: {where}.rel {rel!r} is not one of {list(COMPACT_RELATIONS)}")
    if rel:
        if ref is None:
            raise InputError(f"compact program: {where}.rel {rel!r} needs a ref")
        filters.append(RelationFilter(rel, ref))
    ex = _one_ref(d.get("except"), f"{where}.except")
    if ex is not None:
        filters.append(Exclude(ex))
    order_text = d.get("order", "")
    order = None
    if order_text:
        if order_text not in _ORDER_PARTS:
            raise InputError(f"compact program: {where}.order {order_text!r} is not '<key> asc|desc[ rank][ xcount]' "
                             f"with a key of {list(ORDER_KEYS)}")
        key, desc, rank, count = _ORDER_PARTS[order_text]
        oref = None
        if key == "distance":
            if rel or ref is None:
                raise InputError(f"compact program: {where}.order 'distance' needs a ref and no rel")
            oref = ref
        order = Order(key, desc, rank, count, _order_word(key, desc, rank, count), oref)
    elif ref is not None and not rel:
        raise InputError(f"compact program: {where}.ref is given without a rel or a distance order")
    return ObjectSpec(tuple(filters), order, _quantity(d.get("all", False), where))  # type: ignore[arg-type]


def from_compact(data: Any, query: str = "") -> Program:
    """The typed Program of a compact JSON value (InputError naming the field that is wrong)."""
    if not isinstance(data, dict) or "targets" not in data or set(data) != {"targets"}:
        raise InputError("compact program: $ must be {\"targets\": [...]} (lacks 'targets' or has other keys)")
    targets = data["targets"]
    if not isinstance(targets, list) or len(targets) > MAX_TARGETS:
        raise InputError(f"compact program: targets must be a list of at most {MAX_TARGETS} specs")
    specs = tuple(_from_spec(t, f"targets[{k}]") for k, t in enumerate(targets))
    if not specs:
        return Program(query, (ObjectSpec(),), nothing="the translated program names nothing to look for")
    return Program(query, specs)
