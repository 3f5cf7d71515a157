"""Bounded JSON schemas → GBNF grammars for llama.cpp, and strict parsing of what they produce.

A schema is built from :class:`Enum`, :class:`String`, :class:`Array` and :class:`Object` (all
immutable). :func:`compile_schema` turns it into a GBNF grammar whose every output is a *finite*
JSON text in one fixed layout (``json.dumps`` separators ``", "`` and ``": "``, no free
whitespace), plus ``max_bytes``, the length of the longest text the grammar admits. Every token
the model emits is at least one byte, so a generation with ``max_tokens >= max_bytes + 1`` always
closes the JSON (strings are printable ASCII, one byte per character).

Distinct ids: GBNF has no "distinct" operator. ``Array(Enum(...), distinct=True)`` enumerates
instead: the items must appear in the enum's order, each at most once (an ordered subset), built
with one rule per (last index, count). The grammar therefore guarantees no repeats and at most
``min(max_items, len(values))`` items; :func:`gear_edge.deduce.base.finish_answer` de-duplicates
again anyway.

:func:`scene_answer_schema` is the direct mode's per-scene schema
``{"steps": [<= K strings], "targets": [ids of this scene]}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from gear_edge.errors import GearEdgeError, InputError

# Printable ASCII without '"' and '\\': no escapes needed, one byte per character.
STRING_CHAR_CLASS = r"[ !#-\[\]-~]"
_STRING_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


class GrammarViolation(GearEdgeError):
    """A text does not follow its schema (a grammar-constrained output never should)."""


@dataclass(frozen=True)
class Enum:
    """One of ``values`` (JSON scalars: str, int, bool or None), written as ``json.dumps(value)``."""

    values: tuple

    def __post_init__(self) -> None:
        vals = tuple(self.values)
        object.__setattr__(self, "values", vals)
        if not vals:
            raise InputError("Enum needs at least one value")
        for v in vals:
            if not (v is None or isinstance(v, (str, bool, int))) or isinstance(v, float):
                raise InputError(f"Enum values must be str, int, bool or None, got {v!r}")
        if len({json.dumps(v) for v in vals}) != len(vals):
            raise InputError(f"Enum values must be distinct, got {vals!r}")


@dataclass(frozen=True)
class String:
    """A JSON string of ``min_chars``..``max_chars`` printable ASCII characters, no quote or backslash."""

    max_chars: int = 80
    min_chars: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.min_chars <= self.max_chars) or self.max_chars > 4096:
            raise InputError(f"String bounds must satisfy 0 <= min_chars <= max_chars <= 4096, got "
                             f"{self.min_chars}..{self.max_chars}")


@dataclass(frozen=True)
class Array:
    """A JSON list of ``min_items``..``max_items`` items. ``distinct`` (Enum items only): an ordered
    subset of the enum's values, each at most once."""

    item: "Schema"
    max_items: int
    min_items: int = 0
    distinct: bool = False

    def __post_init__(self) -> None:
        if not (0 <= self.min_items <= self.max_items) or self.max_items > 256:
            raise InputError(f"Array bounds must satisfy 0 <= min_items <= max_items <= 256, got "
                             f"{self.min_items}..{self.max_items}")
        if self.distinct and not isinstance(self.item, Enum):
            raise InputError("Array(distinct=True) needs Enum items")
        if self.distinct and self.min_items > len(self.item.values):  # type: ignore[union-attr]
            raise InputError("Array(distinct=True): min_items exceeds the number of enum values")


@dataclass(frozen=True)
class Object:
    """A JSON object with these keys, in this order: ``fields = ((key, schema), ...)``. Keys named in
    ``optional`` may be left out (the rest keep their order); the first key is always required."""

    fields: tuple
    optional: tuple = ()

    def __post_init__(self) -> None:
        fields = tuple((str(k), s) for k, s in self.fields)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "optional", tuple(str(k) for k in self.optional))
        keys = [k for k, _ in fields]
        if len(set(keys)) != len(keys):
            raise InputError(f"Object keys must be distinct, got {keys}")
        unknown = [k for k in self.optional if k not in keys]
        if unknown or (keys and keys[0] in self.optional):
            raise InputError(f"Object optional keys must be fields other than the first, got {list(self.optional)}")


Schema = Union[Enum, String, Array, Object]


@dataclass(frozen=True)
class Grammar:
    """A compiled schema: GBNF text (root rule ``root``) and the longest output it admits, in bytes."""

    gbnf: str
    max_bytes: int
    schema: Schema

    def parse(self, text: str) -> Any:
        return parse(text, self.schema)


def _lit(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._n = 0

    def new(self, stem: str) -> str:
        self._n += 1
        return f"{stem}-{self._n}"

    def add(self, name: str, body: str) -> str:
        self.rules[name] = body
        return name

    def expr(self, s: Schema) -> tuple[str, int]:
        """(GBNF expression, max bytes) for schema ``s``."""
        if isinstance(s, Enum):
            texts = [json.dumps(v) for v in s.values]
            name = self.add(self.new("enum"), " | ".join(_lit(t) for t in texts))
            return name, max(len(t.encode()) for t in texts)
        if isinstance(s, String):
            if "char" not in self.rules:
                self.add("char", STRING_CHAR_CLASS)
            if s.max_chars == 0:
                return _lit('""'), 2
            rep = f"char{{{s.min_chars},{s.max_chars}}}"
            name = self.add(self.new("str"), f'"\\"" {rep} "\\""')
            return name, s.max_chars + 2
        if isinstance(s, Array):
            if s.distinct:
                return self._distinct(s)
            item, item_max = self.expr(s.item)
            if s.max_items == 0:
                return _lit("[]"), 2
            more_lo, more_hi = max(s.min_items - 1, 0), s.max_items - 1
            seq = item if more_hi == 0 else f'{item} ("," " " {item}){{{more_lo},{more_hi}}}'
            body = f'"[" {seq} "]"' if s.min_items >= 1 else f'"[" ({seq})? "]"'
            name = self.add(self.new("list"), body)
            return name, 2 + s.max_items * item_max + 2 * (s.max_items - 1)
        if isinstance(s, Object):
            parts, total = [], 2
            for i, (key, sub) in enumerate(s.fields):
                e, m = self.expr(sub)
                sep = ", " if i else ""
                part = f"{_lit(sep + json.dumps(key) + ': ')} {e}"
                parts.append(f"({part})?" if key in s.optional else part)
                total += len(sep) + len(json.dumps(key)) + 2 + m
            body = '"{" ' + " ".join(parts) + ' "}"' if parts else '"{}"'
            return self.add(self.new("obj"), body), total
        raise InputError(f"unknown schema node {s!r}")

    def _distinct(self, s: Array) -> tuple[str, int]:
        """Ordered subset of the enum values with min..max items (one rule per (last index, count))."""
        texts = [json.dumps(v) for v in s.item.values]  # type: ignore[union-attr]
        n = len(texts)
        hi = min(s.max_items, n)
        lo = s.min_items
        if hi == 0:
            return _lit("[]"), 2
        stem = self.new("ids")
        bounded = hi < n  # when hi == n the order alone bounds the count

        def rule(i: int, c: int) -> str | None:
            """Continuation after choosing index i as item number c (1-based); None if it must end."""
            key = f"{stem}-{i}" + (f"-{c}" if bounded else "")
            if key in self.rules:
                return key
            alts = []
            if c < hi:
                for j in range(i + 1, n):
                    nxt = rule(j, c + 1)
                    alts.append(f'", " {_lit(texts[j])}' + (f" {nxt}" if nxt else ""))
            if not alts:
                return None
            body = " | ".join(alts)
            self.rules[key] = f"({body})?" if c >= lo else f"({body})"
            return key

        firsts = []
        for j in range(n):
            nxt = rule(j, 1)
            firsts.append(_lit(texts[j]) + (f" {nxt}" if nxt else ""))
        if not bounded and lo > 1:
            # Without the count dimension the rules cannot count up to min_items.
            raise InputError("Array(distinct=True) with min_items > 1 needs max_items < len(values)")
        body = " | ".join(firsts)
        inner = f'"[" ({body}) "]"' if lo >= 1 else f'"[" ({body})? "]"'
        longest = sorted((len(t.encode()) for t in texts), reverse=True)[:hi]
        return self.add(stem, inner), 2 + sum(longest) + 2 * (hi - 1)


def max_bytes(schema: Schema) -> int:
    """Length in bytes of the longest JSON text ``schema``'s grammar admits (without building it)."""
    if isinstance(schema, Enum):
        return max(len(json.dumps(v).encode()) for v in schema.values)
    if isinstance(schema, String):
        return schema.max_chars + 2
    if isinstance(schema, Array):
        if schema.distinct:
            values = schema.item.values  # type: ignore[union-attr]
            lens = sorted((len(json.dumps(v).encode()) for v in values), reverse=True)
            hi = min(schema.max_items, len(lens))
            return 2 + sum(lens[:hi]) + 2 * max(hi - 1, 0)
        if schema.max_items == 0:
            return 2
        return 2 + schema.max_items * max_bytes(schema.item) + 2 * (schema.max_items - 1)
    if isinstance(schema, Object):
        total = 2
        for i, (key, sub) in enumerate(schema.fields):
            total += (2 if i else 0) + len(json.dumps(key)) + 2 + max_bytes(sub)
        return total
    raise InputError(f"unknown schema node {schema!r}")


def compile_schema(schema: Schema) -> Grammar:
    """The GBNF grammar (root rule ``root``) of ``schema`` and its longest output in bytes."""
    b = _Builder()
    root, longest = b.expr(schema)
    assert longest == max_bytes(schema)
    lines = [f"root ::= {root}"] + [f"{k} ::= {v}" for k, v in b.rules.items()]
    return Grammar("\n".join(lines) + "\n", longest, schema)


def check(value: Any, schema: Schema, where: str = "$") -> Any:
    """Returns ``value`` if it conforms to ``schema``; raises GrammarViolation naming the path otherwise."""
    if isinstance(schema, Enum):
        if not any(type(value) is type(v) and value == v for v in schema.values):
            raise GrammarViolation(f"{where}: {value!r} is not one of {list(schema.values)}")
    elif isinstance(schema, String):
        if not isinstance(value, str):
            raise GrammarViolation(f"{where}: expected a string, got {value!r}")
        if not (schema.min_chars <= len(value) <= schema.max_chars):
            raise GrammarViolation(f"{where}: string length {len(value)} outside "
                                   f"{schema.min_chars}..{schema.max_chars}")
        if any(ch not in _STRING_CHARS for ch in value):
            raise GrammarViolation(f"{where}: string has characters outside printable ASCII")
    elif isinstance(schema, Array):
        if not isinstance(value, list):
            raise GrammarViolation(f"{where}: expected a list, got {value!r}")
        if not (schema.min_items <= len(value) <= schema.max_items):
            raise GrammarViolation(f"{where}: {len(value)} items outside {schema.min_items}..{schema.max_items}")
        for i, v in enumerate(value):
            check(v, schema.item, f"{where}[{i}]")
        if schema.distinct:
            order = [schema.item.values.index(v) for v in value]  # type: ignore[union-attr]
            if order != sorted(set(order)):
                raise GrammarViolation(f"{where}: items repeat or are out of order: {value!r}")
    elif isinstance(schema, Object):
        if not isinstance(value, dict):
            raise GrammarViolation(f"{where}: expected an object, got {value!r}")
        keys = [k for k, _ in schema.fields]
        want = [k for k in keys if k in value or k not in schema.optional]
        if list(value) != want:
            raise GrammarViolation(f"{where}: keys {list(value)} != {keys}"
                                   + (f" (optional: {list(schema.optional)})" if schema.optional else ""))
        for k, sub in schema.fields:
            if k in value:
                check(value[k], sub, f"{where}.{k}")
    else:
        raise InputError(f"unknown schema node {schema!r}")
    return value


def parse(text: str, schema: Schema) -> Any:
    """``json.loads(text)`` checked against ``schema``; GrammarViolation if either fails."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrammarViolation(f"output is not JSON ({exc}): {text[:200]!r}") from None
    return check(value, schema)


# ---- the direct mode's per-scene answer ---------------------------------------------------------

def region_token(rid: int) -> str:
    """How a region id is written to and by the LLM: ``R<id>``."""
    return f"R{int(rid)}"


def scene_answer_schema(
    ids: Sequence[int], max_steps: int = 4, max_step_chars: int = 80, max_targets: int | None = None,
    min_steps: int = 1,
) -> Object:
    """``{"steps": [min_steps..max_steps strings of <= max_step_chars], "targets": [distinct "R<id>"]}``.

    Targets are an ordered subset of ``ids`` (as given), at most ``max_targets`` (all when None),
    possibly empty ("nothing in the scene fits"). With no ids the target list can only be ``[]``.
    """
    ids = [int(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise InputError(f"scene ids must be unique, got {ids}")
    steps = Array(String(max_step_chars), max_items=max_steps, min_items=min(min_steps, max_steps))
    if ids:
        cap = len(ids) if max_targets is None else min(max_targets, len(ids))
        targets: Schema = Array(Enum(tuple(region_token(i) for i in ids)), max_items=cap, distinct=True)
    else:
        targets = Array(Enum(("R0",)), max_items=0)
    return Object((("steps", steps), ("targets", targets)))


def parse_scene_answer(text: str, schema: Object) -> tuple[list[str], list[int]]:
    """(steps, target ids) from a direct-mode output; GrammarViolation if it breaks ``schema``."""
    value = parse(text, schema)
    return list(value["steps"]), [int(t[1:]) for t in value["targets"]]
