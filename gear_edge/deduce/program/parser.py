"""Deterministic query parser: English referring expressions → a typed :class:`Program`.

A small hand-written grammar over words (no model)::

    query   := preamble* np (("and" | ",") np)*
    np      := (det | quantifier | count)* premod* head? postmod*
    premod  := colour | size | shape | brightness | texture | position | superlative | ordinal | "non"/"not"
    head    := generic ("object", "thing", "one", ...) | object words (anything the lexicon does not know)
    postmod := relation np | position phrase | text phrase ("that says X", "labelled X", a quoted string)
             | "that"/"which" ["is"|"are"] ["not"] (premod | relation np | ...) | "with" ... | "except" np
             | "from the left" (ordinal direction) | purpose ("to cut with", "for cutting")

Lexicon entries are matched longest first ("on the left of" is a relation, "on the left" a
position). What the grammar cannot place becomes an :class:`Unresolved` for the LLM: a purpose
clause ("something to cut the tape with") or leftover words; the parser still emits a program that
runs without the LLM (the phrase itself is matched semantically).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from gear_edge import vocabulary as _V
from gear_edge.deduce.program.ast import (
    AttrFilter, Exclude, Filter, NounFilter, ObjectSpec, Order, Program, RelationFilter, TextFilter, Unresolved,
)

MAX_HEAD_WORDS = 4  # longer runs of unknown words go to the LLM as a phrase
MAX_LEFTOVER_WORDS = 12  # words of such a phrase kept (for the LLM and the semantic matcher)
MAX_COUNT = 20  # "two cups" .. "20 cups"; bigger numbers are words, not counts
MAX_DEPTH = 4  # nesting of reference phrases ("the cup on the book on the table ...")
MAX_TOKENS = 64  # words parsed; the rest of a very long query is left to the semantic matcher

# ---- lexicon ------------------------------------------------------------------------------------

COLOUR_WORDS = _V.COLOUR_WORDS
COLOUR_MODS = _V.COLOUR_MODIFIERS
SIZE_WORDS = {w: classes for w, (classes, _) in _V.SIZE_WORDS.items()}
SHAPE_WORDS = _V.SHAPE_WORDS
BRIGHT_WORDS = _V.BRIGHTNESS_WORDS
TEXTURE_WORDS = _V.TEXTURE_WORDS
POS_WORDS = {
    "top left": "top-left", "upper left": "top-left", "top right": "top-right", "upper right": "top-right",
    "bottom left": "bottom-left", "lower left": "bottom-left", "bottom right": "bottom-right", "lower right": "bottom-right",
    "left": "left-column", "left hand": "left-column", "right": "right-column", "right hand": "right-column",
    "top": "top-row", "upper": "top-row", "bottom": "bottom-row", "lower": "bottom-row",
    "middle": "centre", "centre": "centre", "central": "centre", "centred": "centre",
    "top centre": "top", "top middle": "top", "bottom centre": "bottom", "bottom middle": "bottom",
    "middle left": "left", "centre left": "left", "left middle": "left", "left centre": "left",
    "middle right": "right", "centre right": "right", "right middle": "right", "right centre": "right",
    "middle top": "top", "centre top": "top", "middle bottom": "bottom", "centre bottom": "bottom",
}
POS_PREPS = ("on", "at", "in", "to", "towards", "toward", "near")
POS_TAILS = (("corner",), ("side",), ("part",), ("area",), ("edge",), ("half",), ("of", "the", "image"), ("of", "the", "picture"),
             ("of", "the", "scene"), ("of", "the", "frame"), ("of", "the", "photo"), ("of", "the", "table"))
# superlatives: phrase -> (key, descending)
SUPERLATIVES = {
    "largest": ("area", True), "biggest": ("area", True), "hugest": ("area", True), "most big": ("area", True),
    "smallest": ("area", False), "tiniest": ("area", False), "littlest": ("area", False),
    "leftmost": ("x", False), "left most": ("x", False), "furthest left": ("x", False), "farthest left": ("x", False),
    "most left": ("x", False), "far left": ("x", False),
    "rightmost": ("x", True), "right most": ("x", True), "furthest right": ("x", True), "farthest right": ("x", True),
    "most right": ("x", True), "far right": ("x", True),
    "topmost": ("y", False), "top most": ("y", False), "uppermost": ("y", False), "highest": ("elevation", True),
    "bottommost": ("y", True), "bottom most": ("y", True), "lowest": ("y", True), "lowermost": ("y", True),
    "brightest": ("brightness", True), "lightest": ("brightness", True), "darkest": ("brightness", False),
    "longest": ("elongation", True), "most elongated": ("elongation", True), "thinnest": ("elongation", True),
    "roundest": ("circularity", True), "most round": ("circularity", True), "most circular": ("circularity", True),
    "tallest": ("height", True), "shortest": ("height", False),
}
# "furthest / most to the <side>" after a noun: (key, descending), as the superlatives above
SIDE_LEADS = ("furthest", "farthest", "most")
SIDE_ORDERS = {"left": ("x", False), "right": ("x", True), "top": ("y", False), "bottom": ("y", True)}
DISTANCE_SUPERLATIVES = {"closest": False, "nearest": False, "furthest": True, "farthest": True}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "last": -1,
            **{f"{n}{'st' if n % 10 == 1 and n != 11 else 'nd' if n % 10 == 2 and n != 12 else 'rd' if n % 10 == 3 and n != 13 else 'th'}": n
               for n in range(1, MAX_COUNT + 1)}}
# an ordinal that names no position: negative, fractional or zero ("the -3rd", "the 2.5th", "the 0th")
_BAD_ORDINAL = re.compile(r"(?:(?<![\w.])-\s*\d+|\d+[.,]\d+|(?<![\w.])0+)\s*(?:st|nd|rd|th)\b", re.I)
ORDER_DIRECTIONS = {"left": ("x", False), "right": ("x", True), "top": ("y", False), "bottom": ("y", True)}
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
           "a couple of": 2, "a pair of": 2}
GENERIC_SINGULAR = {"object", "thing", "item", "one", "something", "anything", "region", "segment", "entity",
                    "stuff", "whatever", "piece", "element", "shape", "blob"}
GENERIC_PLURAL = {"objects", "things", "items", "ones", "regions", "segments", "entities", "everything",
                  "pieces", "elements", "shapes", "blobs"}
PLURAL_ONLY = {"scissors", "glasses", "sunglasses", "pliers", "tongs", "tweezers", "headphones", "earphones", "trousers",
               "pants", "jeans", "shorts", "binoculars", "goggles", "clippers", "shears", "chopsticks", "clothes", "news",
               "lens", "bus", "gas", "glass", "series", "species", "chess", "dress", "press", "compass", "mattress"}
CONTAINER_HEADS = {"pair", "piece", "bunch", "set", "couple", "kind", "type", "sort", "bit", "stack", "pile"}
DETERMINERS = {"the", "a", "an", "this", "that", "my", "your", "our", "his", "her", "its", "their", "which", "what"}
PLURAL_DETERMINERS = {"these", "those", "some", "several", "many"}
QUANTIFIERS = {"all": "all", "every": "all", "each": "all", "both": "all", "any": "one", "every single": "all",
               "all of": "all", "each of": "all", "both of": "all", "any of": "one", "one of": "one", "some of": "all"}
PREAMBLES = [
    "please", "find", "find me", "show", "show me", "segment", "segment out", "select", "highlight", "locate", "detect",
    "what's", "whats", "which one is", "which one's", "which object is", "which thing is", "mark", "outline", "point to", "point at", "point out", "get", "grab", "pick", "pick up", "give me", "hand me",
    "pass me", "bring me", "fetch", "fetch me", "take", "touch", "can you", "could you", "would you", "will you",
    "i want", "i need", "i would like", "i'd like", "i want to find", "i'm looking for", "im looking for",
    "i am looking for", "look for", "where is", "where are", "where's", "wheres", "is there", "are there",
    "is there any", "are there any", "do you see", "can you see", "there is", "there are", "mask", "the mask of",
    "mask of", "the region of", "which is", "what is", "which are", "what are", "tell me", "identify", "indicate",
    "search for", "i need you to find", "help me find", "kindly", "now", "ok", "okay", "hey", "robot",
    "get me", "grab me", "show us", "give us", "find us", "how many", "count", "count the", "count all", "whichever", "whichever one is", "whichever is",
    "whichever one's", "which one", "could you please", "can you please", "would you please", "please get",
    "which", "i'd like you to", "go get", "go and get", "lift", "pick out", "choose", "look at",
]
# commands a robot is given about an object (tracking, attending, moving): request words like "find"
COMMAND_VERBS = [
    "follow", "track", "trace", "watch", "monitor", "observe", "keep tracking", "keep track of", "keep following",
    "keep watching", "keep an eye on", "keep your eye on", "keep your eyes on", "start tracking", "start following",
    "begin tracking", "lock onto", "lock on to", "lock on", "focus on", "zoom in on", "zoom into", "centre on",
    "tracking", "following", "go to", "move to", "approach", "push", "nudge", "move", "put away", "lift up",
    "reach for", "stare at", "aim at", "head to", "head towards", "drive to", "go towards",
]
# command words that are also nouns ("the watch", "a track"): verbs only when an object phrase follows
VERB_OR_NOUN = {"mark", "touch", "pick", "take", "watch", "track", "trace", "move", "push", "tracking", "following"}
# "what" questions: followed directly by a containment / support relation ("what's on the box?") they ask
# for every object that fits
WH_CONTENTS = {"what's", "whats", "what is", "what are", "what"}
WH_CONTENT_RELATIONS = {"inside", "on", "under"}  # what is in / on / under X: its contents, all of them
PURPOSE_PREAMBLES = ["what can i use", "what could i use", "what should i use", "what do i use", "which can i use",
                     "what would i use", "what can be used", "which object can i use", "what object can i use",
                     "which thing can i use", "what thing can i use", "give me something", "i need something",
                     "something i can use", "anything i can use", "what can i", "what could i", "what should i",
                     "give me something", "hand me something", "get me something", "bring me something",
                     "something i can", "anything i can", "what do i"]
TRAILERS = ["please", "for me", "in the image", "in the picture", "in the scene", "in this image", "in the photo",
            "here", "now", "thanks", "thank you", "are there", "is there", "do you see", "can you see", "there are",
            "there is", "are there here", "you see", "do you have", "is it", "are they", "in view"]
RELATION_PHRASES = _V.RELATION_PHRASES  # target <relation> reference
# "closest to" etc.: orders by distance to a reference
DISTANCE_PHRASES = {"closest to": False, "nearest to": False, "nearest": False, "closest": False,
                    "furthest from": True, "farthest from": True, "furthest away from": True, "farthest away from": True}
COMPARATIVE_ORDER = {**{w: ("area", d) for w, d in _V.SIZE_COMPARATIVES.items()},
                     "higher": ("y", False), "lower": ("y", True)}
COMPARATIVE_WORDS = {w: "larger_than" if d else "smaller_than" for w, d in _V.SIZE_COMPARATIVES.items()}
TEXT_INTROS = ["that says", "which says", "saying", "says", "that reads", "which reads", "reading", "reads",
               "labelled", "labelled with", "marked", "marked with", "with the text", "with the word", "with the words",
               "with the label", "with text", "with label", "with the writing", "with writing", "that has the word",
               "that has the text", "with the sign", "printed with", "written", "inscribed", "titled", "named",
               "that say", "which say", "with the letters", "spelling", "say", "read", "that read", "which read",
               "with the name", "that is labelled", "showing", "that shows"]
RELPRONS = {"that", "which", "who", "whose"}
COPULAS = {"is", "are", "was", "were", "be", "being", "'s", "looks", "look", "seems", "appears", "sits", "lies", "stands"}
NEGATIONS = {"not", "isn't", "aren't", "isnt", "arent", "never", "no", "don't", "doesn't", "dont", "doesnt",
             "didn't", "wasn't", "weren't", "neither", "nor"}
EXCEPT_PHRASES = ["except", "except for", "but not", "other than", "apart from", "excluding", "besides", "aside from",
                  "not including", "save for", "without the", "but", "but for", "leaving out", "ignoring",
                  "except the", "minus", "all but", "everything but", "apart from the", "with the exception of"]
PURPOSE_STARTS = ["to", "for", "used to", "used for", "that can", "which can", "that i can", "i can", "you can",
                  "we can", "one can", "that could", "that we can", "that you can", "meant for", "good for", "useful for",
                  "suitable for", "designed for", "made for", "i could", "in order to", "so i can", "so that i can"]
PREPOSITIONS = {"with", "on", "in", "into", "from", "at", "for", "by", "onto", "off", "up", "out", "of", "to", "inside",
                "through", "over", "under"}
FUNCTION_WORDS = DETERMINERS | PLURAL_DETERMINERS | PREPOSITIONS | {"it", "them", "me", "i", "you", "we", "some", "and",
                                                                   "or", "a", "an", "is", "are", "can", "could"}
SKIP_WORDS = {"coloured", "colour", "sized", "size", "shaped", "looking", "tone", "toned", "hued", "one's"}
WITH_HOLES = [("with", "holes"), ("with", "a", "hole"), ("with", "hole"), ("with", "a", "hole", "in", "it"),
              ("with", "holes", "in", "it")]

# "with FRAGILE written on it", "that has 'A-12' printed on it": the words before it are the text
WRITTEN_PARTICIPLES = {"written", "printed", "painted", "inscribed", "stamped", "engraved", "scrawled", "marked",
                       "lettered", "embossed", "stencilled", "stenciled", "handwritten", "typed"}
MAX_TEXT_WORDS = 6  # words of such a text

_QUOTES = re.compile(r"\"([^\"]{1,200})\"|“([^”]{1,200})”|‘([^’]{1,200})’|(?<![\w'])'([^']{1,200})'(?![\w])|«([^»]{1,200})»")


def _phrases(items) -> dict[tuple[str, ...], object]:
    if hasattr(items, "items"):
        return {tuple(k.split()): v for k, v in items.items()}
    return {tuple(k.split()): True for k in items}


_COLOURS = _phrases(COLOUR_WORDS)
_SIZES = _phrases(SIZE_WORDS)
_SHAPES = _phrases(SHAPE_WORDS)
_BRIGHT = _phrases(BRIGHT_WORDS)
_TEXTURES = _phrases(TEXTURE_WORDS)
_POS = _phrases(POS_WORDS)
_SUPS = _phrases(SUPERLATIVES)
_RELS = _phrases(RELATION_PHRASES)
_DIST = _phrases(DISTANCE_PHRASES)
_PREAMBLES = _phrases(PREAMBLES + COMMAND_VERBS)
_PURPOSE_PRE = _phrases(PURPOSE_PREAMBLES)
_TRAILERS = _phrases(TRAILERS)
_TEXT_INTROS = _phrases(TEXT_INTROS)
_EXCEPT = _phrases(EXCEPT_PHRASES)
_PURPOSE = _phrases(PURPOSE_STARTS)
_QUANTS = _phrases(QUANTIFIERS)
_NUMBERS = _phrases(NUMBERS)

# words that never start object words (tables are checked separately, in context)
CLOSED_WORDS = (
    DETERMINERS | PLURAL_DETERMINERS | RELPRONS | COPULAS | NEGATIONS | GENERIC_SINGULAR | GENERIC_PLURAL
    | set(ORDINALS) | PREPOSITIONS | {"and", "or", "non", "except", "but", "than", "without", "all", "every", "each",
                                     "both", "any", "it", "them", "else", "also", "then"}
    | _V.POSTURE_VERBS | set(COMPARATIVE_ORDER)
)
_PRE_TABLES = (_COLOURS, _SIZES, _SHAPES, _BRIGHT, _TEXTURES, _POS, _SUPS)


@dataclass
class Tok:
    w: str  # normalised lower-case word, "," or a quoted-text placeholder "\0q<k>\0"
    orig: str  # as written


def _norm(word: str) -> str:
    word = {"center": "centre", "centered": "centred", "gray": "grey", "color": "colour", "colored": "coloured",
            "colors": "colours", "labeled": "labelled", "greyish": "greyish", "grayish": "greyish",
            "centre's": "centre"}.get(word, word)
    return word.replace("’", "'")


_CAPS_RUN = re.compile(r"(?<![\w'])[A-Z][A-Z0-9]+(?:[ \t]+[A-Z][A-Z0-9]+)*(?![\w'])")


def tokenize(query: str) -> tuple[list[Tok], list[str], set[int]]:
    """Tokens of ``query``, the quoted strings in it (each replaced by a placeholder token) and the
    indices of the *soft* ones: runs of capitals ("the FRAGILE box", "the HANDLE WITH CARE box") are
    probably text printed on the object, unless the whole query is in capitals."""
    quotes: list[str] = []
    soft: set[int] = set()

    def keep(m: re.Match) -> str:
        text = next(g for g in m.groups() if g is not None).strip() if m.groups() else m.group(0)
        quotes.append(text)
        return f" \x00q{len(quotes) - 1}\x00 "

    def keep_soft(m: re.Match) -> str:
        soft.add(len(quotes))
        quotes.append(m.group(0).strip())
        return f" \x00q{len(quotes) - 1}\x00 "

    text = _QUOTES.sub(keep, str(query).replace("\x00", " "))
    if re.search(r"[a-z]", text):  # a query written all in capitals has no such hint
        text = _CAPS_RUN.sub(keep_soft, text)
    text = re.sub(r"[-_/]+", " ", text)
    toks: list[Tok] = []
    for m in re.finditer(r"\x00q\d+\x00|[^\W_]+(?:['’][^\W_]+)?|[,;]", text):
        orig = m.group(0)
        toks.append(Tok(orig if orig.startswith("\x00") else _norm(orig.lower()), orig))
    return toks, quotes, soft


def _count(word: str) -> bool:
    """A small count written in digits ("2 cups"); long digit strings are words."""
    return word.isascii() and word.isdigit() and len(word) <= 2 and 1 <= int(word) <= MAX_COUNT


def _quote_index(tok: Tok) -> int | None:
    return int(tok.w[2:-1]) if tok.w.startswith("\x00q") else None


@dataclass
class _Spec:
    """An ObjectSpec under construction."""

    filters: list[Filter] = field(default_factory=list)
    order: Order | None = None
    quantity: str | None = None
    plural: bool = False
    count: int | None = None
    head: list[str] = field(default_factory=list)
    generic: bool = False
    rank: int | None = None  # an ordinal waiting for its direction ("second ... from the left")
    rank_word: str = ""
    negate_head: bool = False  # "not a triangle" before the head: the object words are negated

    def build(self) -> ObjectSpec:
        quantity = self.quantity or ("all" if self.plural or (self.count or 1) > 1 else "one")
        order = self.order
        if self.rank is not None and order is None:  # "the second cup": left to right by default
            order = Order("x", self.rank < 0, abs(self.rank), 1, f"{self.rank_word} from the left")
        if order is not None and self.count and self.count > 1 and order.count == 1:
            order = replace(order, count=self.count)  # "the two largest"
        return ObjectSpec(tuple(self.filters), order, "all" if quantity == "all" else "one")


class Parser:
    """``parse(query) -> Program`` (pure, deterministic; raises nothing on odd text).

    Holds no state between calls: each parse runs on its own :class:`_ParseRun`, so one instance may
    be shared by threads."""

    def parse(self, query: str) -> Program:
        return _ParseRun().parse(query)


class _ParseRun:
    """The cursor state of one parse."""

    def parse(self, query: str) -> Program:
        bad = _BAD_ORDINAL.search(str(query))
        if bad:
            why = (f"'{bad.group(0).strip()}' is no position in an order (an ordinal must be a whole number "
                   "from 1): nothing can be that")
            return Program(str(query), (ObjectSpec(),), (), (why,), why)
        self.toks, self.quotes, self.soft = tokenize(str(query))
        self.notes: list[str] = []
        if len(self.toks) > MAX_TOKENS:
            self.notes.append(f"query has {len(self.toks)} words: parsed the first {MAX_TOKENS}")
            self.toks = self.toks[:MAX_TOKENS]
        self.i = 0
        self.unresolved: list[Unresolved] = []
        self.wh = False  # the request words were a "what" question ("what's", "what is")
        self._strip_trailers()
        purpose_pre = self._preamble()
        targets: list[ObjectSpec] = []
        while self.i < len(self.toks):
            start = self.i
            # "what's inside the tray?", "what is on the box": a question about contents lists them all
            contents = self.wh and not targets and self._relation_starts(self.i)
            spec = self._np(depth=0, purpose_start=purpose_pre and not targets)
            if spec is not None:
                if contents and spec.order is None and spec.quantity == "one":
                    spec = replace(spec, quantity="all")
                    self.notes.append("a question about what is there: every object that fits")
                targets.append(spec)
            if self.i < len(self.toks) and self.toks[self.i].w in (",", ";", "and", "or"):
                self.i += 1
                while self.i < len(self.toks) and self.toks[self.i].w in ("and", "or", ",", ";", "also", "then"):
                    self.i += 1
                self._preamble()
                continue
            if self.i == start:  # nothing consumed: hand the rest over as an unresolved phrase
                rest = self._rest()
                if rest:
                    s = _Spec()
                    self._leftover(rest, s)
                    targets.append(s.build())
                break
        nothing = ""
        if not targets:
            nothing = "the query names nothing to look for: nothing is returned"
            targets.append(ObjectSpec())
        return Program(str(query), tuple(targets), tuple(self.unresolved), tuple(self.notes), nothing)

    # ---- cursor helpers ---------------------------------------------------------------------

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.toks[j].w if j < len(self.toks) else ""

    def _match(self, table: dict, at: int | None = None) -> tuple[int, object] | None:
        """Longest phrase of ``table`` starting at ``at`` (default: the cursor): (length, value)."""
        at = self.i if at is None else at
        best = None
        for n in range(min(6, len(self.toks) - at), 0, -1):
            key = tuple(t.w for t in self.toks[at : at + n])
            if key in table:
                best = (n, table[key])
                break
        return best

    def _rest(self) -> str:
        words = [self.quotes[q] if (q := _quote_index(t)) is not None else t.w for t in self.toks[self.i :]]
        self.i = len(self.toks)
        return " ".join(w for w in words if w not in (",", ";"))

    def _strip_trailers(self) -> None:
        changed = True
        while changed and self.toks:
            changed = False
            while self.toks and self.toks[-1].w in (",", ";"):
                self.toks.pop()
            for n in range(min(4, len(self.toks)), 0, -1):
                if tuple(t.w for t in self.toks[-n:]) in _TRAILERS and len(self.toks) > n:
                    del self.toks[-n:]
                    changed = True
                    break

    def _preamble(self) -> bool:
        """Skips request words ("show me", "where is"); True when one asked for a tool ("what can I use")."""
        purpose = False
        while self.i < len(self.toks):
            m = self._match(_PURPOSE_PRE)
            if m:
                self.i += m[0]
                purpose = True
                continue
            m = self._match(_PREAMBLES)
            if m and not (m[0] == 1 and self._peek() in VERB_OR_NOUN and not self._np_starts(self.i + 1)):
                # "mark"/"watch"/"track"... only as verbs when an object phrase follows
                self.wh = " ".join(t.w for t in self.toks[self.i : self.i + m[0]]) in WH_CONTENTS
                self.i += m[0]
                continue
            if self._peek() in (",", ";"):
                self.i += 1
                continue
            break
        return purpose

    def _relation_starts(self, at: int) -> bool:
        """A containment / support relation starts at ``at`` (after an optional posture verb:
        "sitting on"); directions ("what's left of the cup") keep picking the one that fits best."""
        if at < len(self.toks) and self.toks[at].w in _V.POSTURE_VERBS:
            at += 1
        m = self._match(_RELS, at) if at < len(self.toks) else None
        return m is not None and m[1] in WH_CONTENT_RELATIONS

    def _np_starts(self, at: int) -> bool:
        """A noun phrase starts at ``at``: a determiner, quantifier, count or adjective."""
        if at >= len(self.toks):
            return False
        w = self.toks[at].w
        return (w in DETERMINERS or w in PLURAL_DETERMINERS or w in GENERIC_PLURAL or w in GENERIC_SINGULAR
                or bool(self._match(_QUANTS, at)) or bool(self._match(_NUMBERS, at)) or self._is_premod(at))

    # ---- noun phrases -----------------------------------------------------------------------

    def _np(self, depth: int, purpose_start: bool = False) -> ObjectSpec | None:
        s = _Spec()
        start = self.i
        if purpose_start and (self._peek() in ("to", "for", "in") or _V.affordance_verb(self._peek())):
            # "what can I use to cut ...", "what could I wipe the counter with?"
            s.generic = True
            self._purpose(s)
            return s.build()
        if self._need(s):  # "I'm hungry", "we are thirsty"
            return s.build()
        self._premods(s)
        self._head(s)
        if depth <= MAX_DEPTH:
            self._postmods(s, depth)
        if self.i == start:
            return None
        if not s.filters and s.order is None and not s.generic and not s.head and s.rank is None:
            # only determiners / punctuation were read
            return s.build() if s.quantity or s.plural else None
        return s.build()

    def _premods(self, s: _Spec) -> None:
        """Pre-modifiers (determiners, counts, adjectives, superlatives, ordinals) of one noun phrase:
        at each word the registered kinds (:data:`PREMODIFIERS`) are tried in precedence order; the
        phrase's pre-modifiers end at the first word none takes."""
        st = _PreState()
        while self.i < len(self.toks):
            if not any(kind.handler(self, s, st) is not None for kind in PREMODIFIERS):
                return

    # ---- pre-modifier phrase kinds (registered in PREMODIFIERS, in precedence order) --------------
    # Each returns GO_ON when it read words at the cursor, None when they are not its kind.

    def _pre_quote(self, s: _Spec, st: "_PreState"):
        q = _quote_index(self.toks[self.i])
        if q is None:
            return None
        s.filters.append(TextFilter(self.quotes[q], st.negate, q not in self.soft))  # the "EXIT" sign
        st.negate = False
        self.i += 1
        return GO_ON

    def _pre_determiner(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        if w in DETERMINERS:
            self.i += 1
            return GO_ON
        if w in PLURAL_DETERMINERS:
            s.plural = True
            self.i += 1
            return GO_ON
        return None

    def _pre_quantifier(self, s: _Spec, st: "_PreState"):
        m = self._match(_QUANTS)
        if not m:
            return None
        s.quantity = m[1]  # type: ignore[assignment]
        self.i += m[0]
        return GO_ON

    def _pre_count(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        m = self._match(_NUMBERS)
        if m and not (w == "one" and self._head_position(self.i + 1)):
            s.count = int(m[1])  # type: ignore[arg-type]
            self.i += m[0]
            if self._peek() == "of":
                self.i += 1
            return GO_ON
        if _count(w) and self._peek(1) not in ("", ",", "and"):
            s.count = int(w)
            self.i += 1
            return GO_ON
        return None

    def _pre_negation(self, s: _Spec, st: "_PreState"):
        if self._peek() in ("non", "not", "no") and self._peek(1) and self._is_premod(self.i + 1):
            st.negate = True
            self.i += 1
            return GO_ON
        if self._peek() == "not" and self._peek(1) in ("a", "an") and self._unknown(self.i + 2):
            s.negate_head = True  # "whichever one is not a triangle"
            self.i += 2
            return GO_ON
        return None

    def _pre_joiner(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        if w in ("and", "or", ",") and (st.last_colour is not None or s.filters) and self._is_premod(self.i + 1):
            st.joiner = w
            self.i += 1
            return GO_ON
        return None

    def _pre_colour(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        if w in COLOUR_MODS and self._match(_COLOURS, self.i + 1):
            self.i += 1  # "light blue" is blue
            return GO_ON
        m = self._match(_COLOURS)
        if not m:
            return None
        colour = str(m[1])
        self.i += m[0]
        if w == "orange" and self._head_position(self.i) and not s.head:
            s.head.append("orange")  # "the orange": the fruit (its colour is orange too)
            s.filters.append(NounFilter("orange", head="orange"))
        if st.joiner == "or" and st.last_colour is not None and not st.negate:
            idx = s.filters.index(st.last_colour)
            st.last_colour = AttrFilter("colour", st.last_colour.values + (colour,), st.last_colour.negated)
            s.filters[idx] = st.last_colour
        else:
            st.last_colour = AttrFilter("colour", (colour,), st.negate)
            s.filters.append(st.last_colour)
        st.negate, st.joiner = False, ""
        if self._peek() in ("coloured", "colour", "toned", "hued"):
            self.i += 1
        return GO_ON

    def _pre_superlative(self, s: _Spec, st: "_PreState"):
        m = self._match(_SUPS)
        if not m:
            return None
        self._superlative(s, m[0], *m[1])  # type: ignore[misc]
        self._skip_of_the()  # "the largest of the (three) cups"
        return GO_ON

    def _superlative(self, s: _Spec, n: int, key: str, desc: bool) -> None:
        """The next ``n`` words are a superlative on ``key``: the spec's order, with its pending ordinal
        ("the second largest")."""
        word = " ".join(t.w for t in self.toks[self.i : self.i + n])
        self.i += n
        rank = s.rank or 1
        s.order = Order(key, desc if rank > 0 else not desc, abs(rank), 1, f"{s.rank_word + ' ' if s.rank_word else ''}{word}")
        s.rank = None

    def _side_superlative(self, at: int) -> tuple[str, bool] | None:
        """(key, descending) when the words at ``at`` are furthest / farthest / most + "to the <side>"."""
        w = [t.w for t in self.toks[at : at + 4]]
        if len(w) == 4 and w[0] in SIDE_LEADS and w[1:3] == ["to", "the"]:
            return SIDE_ORDERS.get(w[3])
        return None

    def _pre_distance_superlative(self, s: _Spec, st: "_PreState"):
        """"the nearest cup", "the second closest one", "the furthest box": to the viewer (a
        reference may follow: "the nearest cup to the plate", :meth:`_pm_distance_ref`)."""
        w = self._peek()
        if w not in DISTANCE_SUPERLATIVES or self._peek(1) in ("to", "from", "away"):
            return None  # "closest to ...": the distance post-modifier reads it
        far = DISTANCE_SUPERLATIVES[w]
        rank = s.rank or 1
        s.order = Order("viewer", far if rank > 0 else not far, abs(rank), 1,
                        f"{s.rank_word + ' ' if s.rank_word else ''}{w}")
        s.rank = None
        self.i += 1
        self._skip_of_the()  # "the nearest of the cups"
        return GO_ON

    def _pre_comparative(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        if w in COMPARATIVE_ORDER and self._peek(1) != "than" and (w in _V.SIZE_COMPARATIVES or self._peek(1) == "of"):
            # "the larger of the two balls", "the bigger green disc": the most so among the candidates
            key, desc = COMPARATIVE_ORDER[w]
            s.order = Order(key, desc, 1, 1, w)
            self.i += 1
            self._skip_of_the()
            return GO_ON
        return None

    def _pre_middle(self, s: _Spec, st: "_PreState"):
        if self._peek() == "middle" and self._peek(1) not in ("left", "right", "top", "bottom", "of", "") \
                and not self._head_position(self.i + 1):
            s.order = Order("x", False, 0, 1, "middle")  # "the middle box": the middle one, left to right
            self.i += 1
            return GO_ON
        return None

    def _pre_ordinal(self, s: _Spec, st: "_PreState"):
        w = self._peek()
        if w not in ORDINALS:
            return None
        s.rank, s.rank_word = ORDINALS[w], w
        self.i += 1
        return GO_ON

    def _pre_gradable(self, s: _Spec, st: "_PreState"):
        """Size, shape, brightness and texture adjectives."""
        w = self._peek()
        for kind, table in (("size", _SIZES), ("shape", _SHAPES), ("brightness", _BRIGHT), ("texture", _TEXTURES)):
            m = self._match(table)
            if m and not (kind == "brightness" and w in ("light",)):
                s.filters.append(AttrFilter(kind, tuple(m[1]), st.negate))  # type: ignore[arg-type]
                self.i += m[0]
                st.negate = False
                if self._peek() in SKIP_WORDS:
                    self.i += 1
                return GO_ON
        return None

    def _pre_position(self, s: _Spec, st: "_PreState"):
        m = self._match(_POS)
        if not m or self._peek(m[0]) in ("of",):
            return None
        _add_position(s, str(m[1]), st.negate)
        self.i += m[0]
        st.negate = False
        if self._peek() in ("side", "hand", "most"):
            self.i += 1
        return GO_ON

    def _pre_skip(self, s: _Spec, st: "_PreState"):
        if self._peek() in SKIP_WORDS and s.filters:
            self.i += 1  # "red coloured", "round shaped"
            return GO_ON
        return None

    def _skip_of_the(self) -> None:
        """After a superlative: skips "of the", "of all the", "of these two" (the set it ranks)."""
        if self._peek() != "of":
            return
        j = self.i + 1
        while j < len(self.toks) and (self.toks[j].w in DETERMINERS | PLURAL_DETERMINERS | {"all"}
                                      or self.toks[j].w in NUMBERS or self.toks[j].w.isdigit()):
            j += 1
        self.i = j

    def _is_premod(self, at: int) -> bool:
        for table in (_COLOURS, _SIZES, _SHAPES, _BRIGHT, _TEXTURES, _POS, _SUPS):
            if self._match(table, at):
                return True
        return at < len(self.toks) and self.toks[at].w in COLOUR_MODS | set(ORDINALS) | set(_V.SIZE_COMPARATIVES)

    def _head_position(self, at: int) -> bool:
        """Nothing noun-like follows at ``at`` (end, punctuation, or a post-modifier starts)."""
        if at >= len(self.toks):
            return True
        w = self.toks[at].w
        if w in (",", ";", "and", "or") or w in RELPRONS or w in COPULAS:
            return True
        return bool(self._post_start(at))

    def _post_start(self, at: int) -> bool:
        if at >= len(self.toks):
            return False
        w = self.toks[at].w
        if w in RELPRONS or w in ("with", "without", "from", "except", "but", "to", "for", "not") or w in NEGATIONS:
            return True
        if _quote_index(self.toks[at]) is not None:
            return True
        if self._side_superlative(at) is not None:
            return True  # "the cup furthest to the left" (_pm_superlative)
        for table in (_RELS, _TEXT_INTROS, _EXCEPT, _PURPOSE, _DIST):
            if self._match(table, at):
                return True
        if w in POS_PREPS and self._position_phrase(at) is not None:
            return True
        return w in COMPARATIVE_WORDS and at + 1 < len(self.toks) and self.toks[at + 1].w == "than"

    def _head(self, s: _Spec) -> None:
        if self.i >= len(self.toks):
            return
        w = self._peek()
        if w in GENERIC_SINGULAR or w in GENERIC_PLURAL:
            s.generic = True
            if w in GENERIC_PLURAL:
                s.plural = True
                if w == "everything":
                    s.quantity = "all"
            self.i += 1
            if self._peek() == "else":
                self.i += 1
            return
        words: list[str] = []
        origs: list[str] = []
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.w in (",", ";") or _quote_index(t) is not None:
                break
            if t.w == "of" and words and self.i + 1 < len(self.toks) and not self._post_start(self.i) \
                    and self._unknown(self.i + 1, allow_det=True):
                words.append("of")
                origs.append("of")
                self.i += 1
                if self._peek() in DETERMINERS:
                    self.i += 1
                continue
            if not self._unknown(self.i):
                break
            words.append(t.w)
            origs.append(t.orig)
            self.i += 1
            if len(words) >= 2 * MAX_HEAD_WORDS:
                break
        if not words:
            return
        head = self._head_word(words)
        if head in PLURAL_ONLY or words[:2] == ["pair", "of"]:
            pass
        elif head.endswith("s") and len(head) > 3 and not head.endswith(("ss", "us", "is", "ous")):
            s.plural = True
        s.head = words
        if len(words) > MAX_HEAD_WORDS:
            self._leftover(" ".join(words), s, head)
        else:
            s.filters.append(NounFilter(" ".join(words), head=head, negated=s.negate_head))

    def _head_word(self, words: list[str]) -> str:
        if "of" in words:
            k = words.index("of")
            if k > 0 and words[k - 1] not in CONTAINER_HEADS:
                return words[k - 1]
            return words[-1]
        return words[-1]

    def _unknown(self, at: int, allow_det: bool = False) -> bool:
        """The word at ``at`` is an object word: no lexicon entry starts there and it is no function word."""
        if at >= len(self.toks):
            return False
        w = self.toks[at].w
        if allow_det and w in DETERMINERS:
            return self._unknown(at + 1)
        if w in (",", ";") or _quote_index(self.toks[at]) is not None or w in CLOSED_WORDS or w in SKIP_WORDS:
            return False
        if _count(w):
            return False
        if any(self._match(t, at) for t in _PRE_TABLES) or self._post_start(at):
            return False
        return not self._match(_QUANTS, at)

    # ---- post-modifiers ---------------------------------------------------------------------

    def _position_phrase(self, at: int) -> tuple[int, str] | None:
        """'on the left', 'at the top right corner', 'in the middle of the image' -> (length, position)."""
        j = at
        if j >= len(self.toks) or self.toks[j].w not in POS_PREPS:
            return None
        j += 1
        if j < len(self.toks) and self.toks[j].w == "the":
            j += 1
        if j < len(self.toks) and self.toks[j].w in ("far", "very", "extreme"):
            j += 1
        m = self._match(_POS, j)
        if not m:
            return None
        j += m[0]
        if j < len(self.toks) and self.toks[j].w in ("hand", "most"):
            j += 1
        for tail in POS_TAILS:
            if tuple(t.w for t in self.toks[j : j + len(tail)]) == tail:
                j += len(tail)
                break
        if j < len(self.toks) and self.toks[j].w == "of" and tuple(t.w for t in self.toks[j: j + 3])[:3] not in POS_TAILS:
            return None  # "on the left of the box" is a relation
        return j - at, str(m[1])

    def _postmods(self, s: _Spec, depth: int) -> None:
        """Post-modifiers of one noun phrase: at each word the registered phrase kinds
        (:data:`POSTMODIFIERS`) are tried in their precedence order; the first that takes the words
        decides (``GO_ON``: read on, ``STOP``: the phrase ends here)."""
        st = _PostState(depth)
        while self.i < len(self.toks):
            st.start = self.i
            for kind in POSTMODIFIERS:
                verdict = kind.handler(self, s, st)
                if verdict is not None:
                    break
            else:  # pragma: no cover - the last kind ("rest") always decides
                verdict = STOP
            if verdict is STOP:
                return

    # ---- post-modifier phrase kinds (registered in POSTMODIFIERS, in precedence order) -----------
    # Each takes (spec, state) at the cursor and returns GO_ON / STOP when it read (or ended) the
    # phrase, None when the words are not its kind.

    def _pm_outside(self, s: _Spec, st: "_PostState"):
        if st.depth > 0 and not st.clause and self._belongs_outside(s):
            return STOP  # a reference phrase ends where the outer phrase's modifiers start
        return None

    def _pm_punctuation(self, s: _Spec, st: "_PostState"):
        if self._peek() not in (",", ";"):
            return None
        if self._post_start(self.i + 1) or self._peek(1) in RELPRONS:
            self.i += 1
            return GO_ON
        return STOP

    def _pm_conjunction(self, s: _Spec, st: "_PostState"):
        if self._peek() not in ("and", "or"):
            return None
        nxt = self.i + 1
        if st.clause and (self._is_premod(nxt) or self._post_start(nxt) or self._peek(1) in NEGATIONS | COPULAS | RELPRONS):
            self.i += 1
            return GO_ON
        return STOP  # "the cup and the book": the next target phrase

    def _pm_relative(self, s: _Spec, st: "_PostState"):
        if self._peek() not in RELPRONS:
            return None
        self.i += 1
        st.clause = True
        if self._peek() in ("has", "have"):
            self.i += 1
            self._with(s, st.negate, st.depth)
            st.negate = False
        return GO_ON

    def _pm_copula(self, s: _Spec, st: "_PostState"):
        w = self._peek()
        if w in COPULAS and (st.clause or self._is_premod(self.i + 1) or self._post_start(self.i + 1)
                             or self._peek(1) in NEGATIONS):
            self.i += 1
            st.clause = True
            return GO_ON
        return None

    def _pm_negation(self, s: _Spec, st: "_PostState"):
        w = self._peek()
        if w == "without":
            self.i += 1
            self._with(s, True, st.depth)
            return GO_ON
        if w in NEGATIONS:
            st.negate = not st.negate
            self.i += 1
            return GO_ON
        return None

    def _pm_quote(self, s: _Spec, st: "_PostState"):
        q = _quote_index(self.toks[self.i])
        if q is None:
            return None
        s.filters.append(TextFilter(self.quotes[q], st.negate, q not in self.soft))
        st.negate = False
        self.i += 1
        return GO_ON

    def _pm_except(self, s: _Spec, st: "_PostState"):
        m = self._match(_EXCEPT)
        if not m:
            return None
        self.i += m[0]
        ref = self._np(st.depth + 1)
        if ref is not None:
            s.filters.append(Exclude(ref))
            # "everything but the triangles and the ring": a list after "except" is all excluded
            while self._peek() in ("and", ",", "or", "nor") and self._peek(1) not in ("", "and"):
                back = self.i
                self.i += 1
                if self._peek() == "and":
                    self.i += 1
                more = self._np(st.depth + 1)
                if more is None:
                    self.i = back
                    break
                s.filters.append(Exclude(more))
        return GO_ON

    def _pm_text(self, s: _Spec, st: "_PostState"):
        m = self._match(_TEXT_INTROS)
        if not m:
            return None
        self.i += m[0]
        text = self._text_arg()
        if text:
            s.filters.append(TextFilter(text, st.negate))
        elif any(t.w in ("text", "writing", "label", "words", "letters") for t in self.toks[st.start : self.i]):
            s.filters.append(AttrFilter("writing", ("some",), st.negate))  # "with writing on it"
        st.negate = False
        return GO_ON

    def _pm_posture(self, s: _Spec, st: "_PostState"):
        if self._peek() in _V.POSTURE_VERBS and self._post_start(self.i + 1):
            self.i += 1  # "sitting inside the ring": the relation says it all
            return GO_ON
        return None

    def _pm_holes(self, s: _Spec, st: "_PostState"):
        n = max((len(h) for h in WITH_HOLES if tuple(t.w for t in self.toks[self.i : self.i + len(h)]) == h), default=0)
        if not n:
            return None
        s.filters.append(AttrFilter("shape", ("has holes",), st.negate))
        self.i += n
        st.negate = False
        return GO_ON

    def _pm_ordinal_direction(self, s: _Spec, st: "_PostState"):
        if self._peek() == "from" and s.rank is not None and self._peek(1) == "the" and self._peek(2) in ORDER_DIRECTIONS:
            key, desc = ORDER_DIRECTIONS[self._peek(2)]
            s.order = Order(key, desc if s.rank > 0 else not desc, abs(s.rank), 1, f"{s.rank_word} from the {self._peek(2)}")
            s.rank = None
            self.i += 3
            return GO_ON
        return None

    def _pm_position(self, s: _Spec, st: "_PostState"):
        pos = self._position_phrase(self.i)
        if pos is None:
            return None
        n, value = pos
        far = any(t.w in ("far", "extreme") for t in self.toks[self.i : self.i + n])
        if far and value in ("left-column", "right-column", "top-row", "bottom-row"):
            key, desc = ORDER_DIRECTIONS[value.split("-")[0]]
            s.order = Order(key, desc, 1, 1, f"far {value.split('-')[0]}")
        else:
            _add_position(s, value, st.negate)
        self.i += n
        st.negate = False
        return GO_ON

    def _pm_distance_ref(self, s: _Spec, st: "_PostState"):
        """After "the nearest cup": "to the plate" / "from the box" makes the reference that region
        instead of the viewer ("to me" keeps the viewer)."""
        o = s.order
        if o is None or o.key != "viewer" or o.ref is not None or o.word.split()[-1] not in DISTANCE_SUPERLATIVES:
            return None
        n = 2 if self._peek() == "away" and self._peek(1) == "from" else 1 if self._peek() in ("to", "from") else 0
        if not n:
            return None
        at = self.i
        self.i += n
        ev = self._edge_viewer(self.i)
        if ev is not None:
            k, key, word = ev
            self.i += k
            s.order = Order(key, o.descending, o.rank, o.count, f"{o.word} {'from' if o.descending else 'to'} {word}")
            return GO_ON
        ref = self._np(st.depth + 1)
        if ref is None:
            self.i = at
            return None
        s.order = Order("distance", o.descending, o.rank, o.count, o.word, ref)
        return GO_ON

    def _pm_superlative(self, s: _Spec, st: "_PostState"):
        """A superlative after the noun: "the cup furthest left", "the box most to the right" (furthest /
        farthest / most + a side, or a form of ``SUPERLATIVES`` they lead). Before "to the left of X"
        the word only stresses the relation that follows; "furthest from X" is a distance."""
        if s.order is not None or self._peek() not in SIDE_LEADS:
            return None
        side = self._side_superlative(self.i)
        if side is not None and self._peek(4) == "of":
            self.i += 1  # "the cup most to the left of the plate": the relation reads the rest
            return GO_ON
        if side is not None:
            self._superlative(s, 4, *side)
            return GO_ON
        m = self._match(_SUPS)
        if not m:
            return None
        self._superlative(s, m[0], *m[1])  # type: ignore[misc]
        return GO_ON

    def _pm_distance(self, s: _Spec, st: "_PostState"):
        m = self._match(_DIST)
        if not m:
            return None
        self.i += m[0]
        far = bool(m[1])
        ev = self._edge_viewer(self.i)
        if ev is not None:  # "nearest the top edge", "closest to me"
            n, key, word = ev
            self.i += n
            s.order = Order(key, far, 1, 1, f"{'furthest from' if far else 'closest to'} {word}")
            return GO_ON
        ref = self._np(st.depth + 1)
        if ref is not None:
            s.order = Order("distance", far, 1, 1, "furthest from" if far else "closest to", ref)
        return GO_ON

    def _pm_comparative(self, s: _Spec, st: "_PostState"):
        w = self._peek()
        if not (w in COMPARATIVE_WORDS and self._peek(1) == "than"):
            return None
        self.i += 2
        ref = self._np(st.depth + 1)
        if ref is not None:
            s.filters.append(RelationFilter(COMPARATIVE_WORDS[w], ref, None, st.negate))
        st.negate = False
        return GO_ON

    def _pm_relation(self, s: _Spec, st: "_PostState"):
        w = self._peek()
        if w in ("on", "in", "inside") and self._peek(1) in ("it", "them"):
            return STOP  # "with a cup on it": the caller's
        m = self._match(_RELS)
        if not m or (m[1] == "inside" and self._peek(m[0]) in ("order",)):
            return None
        rel = str(m[1])
        self.i += m[0]
        if rel == "between" or (rel == "inside" and w == "in" and self._peek() == "between"):
            if self._peek() == "between":
                self.i += 1
            r1 = self._np(st.depth + 1)
            if self._peek() == "and":
                self.i += 1
            r2 = self._np(st.depth + 1)
            if r1 is not None and r2 is not None:
                s.filters.append(RelationFilter("between", r1, r2, st.negate))
            st.negate = False
            return GO_ON
        ref = self._np(st.depth + 1)
        if ref is not None:
            s.filters.append(RelationFilter(rel, ref, None, st.negate))
        st.negate = False
        return GO_ON

    def _pm_with(self, s: _Spec, st: "_PostState"):
        if self._peek() not in ("with", "has", "have"):
            return None
        self.i += 1
        self._with(s, st.negate, st.depth)
        st.negate = False
        return GO_ON

    def _pm_purpose(self, s: _Spec, st: "_PostState"):
        m = self._match(_PURPOSE)
        w = self._peek()
        if m and (w != "to" or self._unknown(self.i + 1) or _V.affordance_verb(self._peek(1))):
            self._purpose(s)
            return GO_ON
        return None

    def _pm_clause_noun(self, s: _Spec, st: "_PostState"):
        """A noun after a copula or negation in a relative clause ("the round things that aren't
        rings", "the one that is not a box", "whichever is a disc") -> an object NounFilter, negated
        with the clause."""
        if not st.clause or self.i == 0 or self.toks[self.i - 1].w not in COPULAS | NEGATIONS:
            return None
        j = self.i
        if j < len(self.toks) and self.toks[j].w in ("a", "an", "the", "some"):
            j += 1
        if not self._unknown(j) or self._is_premod(j):
            return None
        words = []
        while self._unknown(j) and len(words) < MAX_HEAD_WORDS:
            words.append(self.toks[j].w)
            j += 1
        self.i = j
        s.filters.append(NounFilter(" ".join(words), head=words[-1], negated=st.negate))
        st.negate = False
        return GO_ON

    def _pm_clause_adjectives(self, s: _Spec, st: "_PostState"):
        """Adjectives in a relative clause ("that is red"), or after a generic head ("something yellow")."""
        if st.clause:
            before = len(s.filters)
            self._premods(s)
            if len(s.filters) != before or self.i != st.start:
                if st.negate:
                    for k in range(before, len(s.filters)):
                        f = s.filters[k]
                        if isinstance(f, (AttrFilter, TextFilter, NounFilter)):
                            s.filters[k] = replace(f, negated=not f.negated)
                st.negate = False
                return GO_ON
        if s.generic and not s.head and self._is_premod(self.i) and not st.negate:
            self._premods(s)
            if self.i != st.start:
                return GO_ON
        return None

    def _pm_generic_words(self, s: _Spec, st: "_PostState"):
        if not (s.generic and not s.head and self._unknown(self.i)):
            return None
        # "something sharp", "anything edible": describe the object in words the grammar lacks
        words = []
        while self._unknown(self.i):
            words.append(self._peek())
            self.i += 1
        phrase = f"{self.toks[st.start - 1].w if st.start else 'something'} {' '.join(words)}".strip()
        s.head = words
        self._leftover(phrase, s, words[-1])
        affordance = next((_V.AFFORDANCE_WORDS[w] for w in words if w in _V.AFFORDANCE_WORDS), "")
        if affordance:  # "something sharp", "anything edible": what it is for
            s.filters = [replace(f, purpose=True, affordance=affordance, head=None)
                         if isinstance(f, NounFilter) and f.phrase == " ".join(phrase.split()[:MAX_LEFTOVER_WORDS])
                         and not f.negated else f for f in s.filters]
        return GO_ON

    def _pm_rest(self, s: _Spec, st: "_PostState"):
        """Lowest precedence: words no kind takes go to the LLM as a phrase; the noun phrase ends."""
        rest = self._rest()
        if rest:
            self.notes.append(f"words the grammar does not cover: '{rest}'")
            words = s.head or ([self.toks[st.start - 1].w] if st.start and s.generic else [])
            self._leftover(" ".join([*words, rest]), s, s.head[-1] if s.head else None)
        return STOP

    def _edge_viewer(self, at: int) -> tuple[int, str, str] | None:
        """After "closest to" / "furthest from": an image edge ("the top edge", "the left of the
        picture") or the viewer ("me", "the camera") -> (tokens, order key, words)."""
        toks = [t.w for t in self.toks[at : at + 7]]
        if not toks:
            return None
        if toks[0] in _V.VIEWER_WORDS:
            return 1, "viewer", toks[0]
        if len(toks) >= 2 and " ".join(toks[:2]) in _V.VIEWER_WORDS:
            return 2, "viewer", " ".join(toks[:2])
        j = 1 if toks[0] == "the" else 0
        if j >= len(toks) or toks[j] not in _V.EDGE_WORDS:
            return None
        side = _V.EDGE_WORDS[toks[j]]
        j += 1
        edge = j < len(toks) and toks[j] in _V.EDGE_NOUNS
        if edge:
            j += 1
        image = toks[j : j + 3][:1] == ["of"] and len(toks) > j + 1 and (
            toks[j + 1] in _V.IMAGE_NOUNS or (toks[j + 1] == "the" and len(toks) > j + 2 and toks[j + 2] in _V.IMAGE_NOUNS))
        if image:
            j += 2 if toks[j + 1] in _V.IMAGE_NOUNS else 3
        end = j >= len(toks) or toks[j] in (",", ";", "and", "or")
        if edge or image or end:
            return j, f"edge_{side}", f"the {side} edge"
        return None

    def _belongs_outside(self, s: _Spec) -> bool:
        """In a reference phrase: whether the words at the cursor modify the outer phrase instead —
        relation / ordering / exception phrases ("the thing on the table left of the book"), and
        relative clauses whose verb disagrees in number ("the things on the table that are red")."""
        if self._outer_postmod(self.i):
            return True
        if self._peek() in RELPRONS and self._peek(1) in ("is", "are", "was", "were"):
            plural_verb = self._peek(1) in ("are", "were")
            plural_ref = s.plural or (s.count or 1) > 1 or s.quantity == "all"
            return plural_verb != plural_ref
        return False

    def _outer_postmod(self, at: int) -> bool:
        """A relation / ordering / exception phrase: attaches to the outermost noun phrase."""
        w = self.toks[at].w
        if w in COMPARATIVE_WORDS and at + 1 < len(self.toks) and self.toks[at + 1].w == "than":
            return True
        return any(self._match(t, at) for t in (_RELS, _DIST, _EXCEPT))

    def _text_arg(self) -> str:
        """A quoted string, or the words up to the next post-modifier (all of them at the end)."""
        if self.i < len(self.toks):
            q = _quote_index(self.toks[self.i])
            if q is not None:
                self.i += 1
                if self._peek() in WRITTEN_PARTICIPLES:  # "the word EXIT printed on it"
                    self.i += 1
                if self._peek() in ("on", "in") and self._peek(1) in ("it", "them"):
                    self.i += 2
                return self.quotes[q]
        if self._peek() in ("the", "a"):
            if self._peek(1) in ("word", "words", "text", "letters", "label"):
                self.i += 2
            elif _quote_index(self.toks[self.i + 1]) if self.i + 1 < len(self.toks) else False:
                self.i += 1
                return self._text_arg()
        words = []
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.w in ("on", "in") and self._peek(1) in ("it", "them"):
                self.i += 2
                break
            if t.w in (",", ";") or (words and (self._post_start(self.i) or t.w in RELPRONS)):
                break
            if t.w in WRITTEN_PARTICIPLES and words:  # "labelled with the words keep out printed on it"
                self.i += 1
                continue
            words.append(t.orig)
            self.i += 1
        return " ".join(words)

    def _written(self) -> str | None:
        """At the cursor, "X written / printed / ... (on it)" (after "with", "without", "has"): the
        text X, the cursor moved past it; None (cursor unmoved) when no such participle follows."""
        j, parts = self.i, []
        while j < len(self.toks) and j - self.i <= MAX_TEXT_WORDS:
            t = self.toks[j]
            if t.w in WRITTEN_PARTICIPLES and parts:
                break
            if t.w in (",", ";") or t.w in RELPRONS or (parts and self._outer_postmod(j)):
                return None
            q = _quote_index(t)
            parts.append(self.quotes[q] if q is not None else t.orig)
            j += 1
        else:
            return None
        while parts and parts[0].lower() in ("a", "an", "the", "some", "word", "words", "text", "letters", "label",
                                             "name", "sign"):
            parts.pop(0)
        if not parts or j >= len(self.toks):
            return None
        self.i = j + 1
        if self._peek() in ("on", "in", "across", "onto", "over") and self._peek(1) in ("it", "them", "its", "the"):
            self.i += 2
            if self.toks[self.i - 1].w in ("its", "the") and self._peek() in ("side", "front", "top", "lid", "back"):
                self.i += 1
        return " ".join(parts)

    def _with(self, s: _Spec, negate: bool, depth: int) -> None:
        """'with holes', 'with the text X', 'with X written on it', 'with a cup on it', 'with a cup'
        (after 'with' / 'has')."""
        text = self._written()
        if text is not None:
            s.filters.append(TextFilter(text, negate))
            return
        j = self.i
        while j < len(self.toks) and self.toks[j].w in ("a", "an", "some", "no", "any"):
            j += 1
        if j < len(self.toks) and self.toks[j].w in _V.FEATURE_NOUNS and not (
                j + 1 < len(self.toks) and self.toks[j + 1].w in ("that", "which", "saying", "says", "reading")):
            # "with stripes", "with a hole in it", "with no label", "with writing on it"
            kind, value = _V.FEATURE_NOUNS[self.toks[j].w]
            neg = negate != any(t.w == "no" for t in self.toks[self.i : j])
            self.i = j + 1
            if self._peek() in ("on", "in") and self._peek(1) in ("it", "them"):
                self.i += 2
            s.filters.append(AttrFilter(kind, (value,), neg))
            return
        w = self._peek()
        if w in ("holes", "hole") or (w == "a" and self._peek(1) == "hole"):
            self.i += 1 if w != "a" else 2
            if self._peek() in ("in",) and self._peek(1) in ("it", "them"):
                self.i += 2
            s.filters.append(AttrFilter("shape", ("has holes",), negate))
            return
        q = _quote_index(self.toks[self.i]) if self.i < len(self.toks) else None
        if q is not None:
            self.i += 1
            if self._peek() in ("written", "printed") or (self._peek() in ("on",) and self._peek(1) in ("it", "them")):
                while self._peek() in ("written", "printed", "on", "it", "them"):
                    self.i += 1
            s.filters.append(TextFilter(self.quotes[q], negate))
            return
        m = self._match(_TEXT_INTROS, self.i - 1) if self.i > 0 else None
        if m and self.toks[self.i - 1].w == "with":
            self.i += m[0] - 1
            text = self._text_arg()
            if text:
                s.filters.append(TextFilter(text, negate))
            return
        ref = self._np(depth + 1)  # "the tray with a cup (on it)": a reference
        if ref is None:
            return
        rel = "carries"
        if self._peek() in ("on", "in", "inside") and self._peek(1) in ("it", "them", "top"):
            rel = "carries" if self._peek() == "on" else "contains"
            self.i += 2
            if self._peek() == "of":
                self.i += 1
        s.filters.append(RelationFilter(rel, ref, None, negate))

    def _need(self, s: _Spec) -> bool:
        """'I'm hungry', 'we are so thirsty', 'my hands are dirty': a need (``vocabulary.NEED_WORDS``)
        -> a purpose NounFilter for the affordance that meets it."""
        for subj in sorted(_V.NEED_SUBJECTS, key=len, reverse=True):
            n = len(subj)
            if tuple(t.w for t in self.toks[self.i : self.i + n]) != subj:
                continue
            j = self.i + n
            while j < len(self.toks) and self.toks[j].w in ("so", "very", "really", "quite", "a", "bit", "little",
                                                            "kind", "of", "getting", "feeling", "pretty"):
                j += 1
            if j < len(self.toks) and self.toks[j].w in _V.NEED_WORDS:
                need = self.toks[j].w
                said = " ".join(t.w for t in self.toks[self.i : j + 1])
                self.i = j + 1
                s.generic = True
                s.filters.append(NounFilter(said, head=None, purpose=True, affordance=_V.NEED_WORDS[need]))
                self.unresolved.append(Unresolved(said, "purpose", (), said))
                return True
        return False

    def _purpose(self, s: _Spec) -> None:
        """'to cut the tape with', 'for cutting', 'that can hold water' → a purpose NounFilter (with
        the affordance it names, ``vocabulary.purpose_affordance``)."""
        m = self._match(_PURPOSE)
        intro = " ".join(t.w for t in self.toks[self.i : self.i + (m[0] if m else 0)]) or "to"
        if m:
            self.i += m[0]
        words = [t.w if _quote_index(t) is None else self.quotes[_quote_index(t)] for t in self.toks[self.i :]]
        self.i = len(self.toks)
        if not words:
            return
        verb = words[0]
        tail = words[1:]
        prep = tail[-1] if tail and tail[-1] in PREPOSITIONS else ""
        body = tail[:-1] if prep else tail
        acted_on = tuple(w for w in body if w not in FUNCTION_WORDS | CLOSED_WORDS and w not in COLOUR_WORDS and len(w) > 2)
        if intro.endswith("for") and not verb.endswith("ing"):
            # "a container for water": what it is for, not what it acts on
            acted_on = ()
            core = " ".join(words)
            phrase = f"{' '.join(s.head) or 'something'} for {core}"
        else:
            core = f"{verb} {prep}".strip()
            link = "for" if intro.endswith("for") else "to"
            phrase = f"{' '.join(s.head) or 'something'} {link} {core}"
        said = " ".join(f"{' '.join(s.head) or 'something'} {intro} {' '.join(words)}".split()[:MAX_LEFTOVER_WORDS])
        s.filters = [f for f in s.filters if not isinstance(f, NounFilter)]
        # matched as said and without what it acts on ("something to cut with"); that thing is not the answer
        alts = (phrase,) if phrase != said else ()
        affordance = _V.purpose_affordance(words, after_for=intro.endswith("for")) or ""
        s.filters.append(NounFilter(said, head=None, alternatives=alts, purpose=True, affordance=affordance))
        for a in acted_on:
            s.filters.append(NounFilter(a, head=a, negated=True))
        self.unresolved.append(Unresolved(said, "purpose", acted_on, said))

    def _leftover(self, phrase: str, s: _Spec, head: str | None = None) -> str:
        """Records ``phrase`` (cut to a bounded length) for the LLM and adds its NounFilter to ``s``
        (replacing the spec's object words); returns the phrase as recorded."""
        phrase = " ".join(phrase.split()[:MAX_LEFTOVER_WORDS])
        s.filters = [f for f in s.filters if not (isinstance(f, NounFilter) and not f.negated)]
        s.filters.append(NounFilter(phrase, head=head))
        if phrase and not any(u.phrase == phrase for u in self.unresolved):
            self.unresolved.append(Unresolved(phrase, "phrase", (), phrase))
        return phrase


def parse(query: str) -> Program:
    """Parses ``query`` into a Program (see :class:`Parser`)."""
    return Parser().parse(query)


def _add_position(s: _Spec, value: str, negate: bool) -> None:
    """Adds a position filter; a row and a column said separately ("at the top, in the middle")
    become one cell (``gear_edge.vocabulary.POSITION_COMBINE``)."""
    if not negate:
        for k, f in enumerate(s.filters):
            if isinstance(f, AttrFilter) and f.kind == "position" and not f.negated and len(f.values) == 1:
                cell = _V.POSITION_COMBINE.get(frozenset({f.values[0], value}))
                if cell is not None:
                    s.filters[k] = AttrFilter("position", (cell,))
                    return
    s.filters.append(AttrFilter("position", (value,), negate))


GO_ON = object()  # a post-modifier kind read words: read on
STOP = object()  # the noun phrase ends here


@dataclass
class _PostState:
    """Post-modifier reading state of one noun phrase (lives for one _postmods call)."""

    depth: int
    negate: bool = False  # a "not" waits for the next modifier
    clause: bool = False  # inside "that is ...": adjectives are allowed
    start: int = 0  # cursor where the current word began


@dataclass
class _PreState:
    """Pre-modifier reading state of one noun phrase (lives for one _premods call)."""

    negate: bool = False  # "non"/"not" before an adjective
    last_colour: AttrFilter | None = None  # "red or blue": the colour an "or" extends
    joiner: str = ""


@dataclass(frozen=True)
class PhraseKind:
    """One kind of post-modifier phrase: ``handler(run, spec, state)`` -> GO_ON / STOP / None."""

    name: str
    precedence: int  # lower is tried first
    handler: object


def _registry(prefix: str, *kinds: tuple[str, int]) -> tuple[PhraseKind, ...]:
    out = [PhraseKind(name, prec, getattr(_ParseRun, f"{prefix}{name}")) for name, prec in kinds]
    if len({k.precedence for k in out}) != len(out):
        raise AssertionError("phrase kinds need distinct precedences")
    return tuple(sorted(out, key=lambda k: k.precedence))


# Every kind of post-modifier, in one place. Precedence decides where two kinds could read the same
# words: e.g. "with holes" (holes) before "with <np>" (with), "on the left" (position) before "on
# <np>" (relation), "closest to the top edge" (distance) before "to ..." (purpose). A new kind of
# phrase is one _pm_<name> method plus one line here.
POSTMODIFIERS: tuple[PhraseKind, ...] = _registry(
    "_pm_",
    ("outside", 0), ("punctuation", 10), ("conjunction", 20), ("relative", 30), ("copula", 40), ("negation", 50),
    ("quote", 60), ("except", 70), ("text", 80), ("posture", 85), ("holes", 90), ("ordinal_direction", 100),
    ("position", 110), ("distance_ref", 115), ("superlative", 118), ("distance", 120), ("comparative", 130), ("relation", 140), ("with", 150), ("purpose", 160),
    ("clause_noun", 165), ("clause_adjectives", 170), ("generic_words", 180), ("rest", 1000),
)
# Pre-modifiers, the same way (one _pre_<name> method + one line): e.g. a quoted label before
# determiners, colours before sizes ("orange" the colour, "light blue" the shade), superlatives
# and comparatives before ordinals, the gradable adjectives before positions ("top" as a row).
PREMODIFIERS: tuple[PhraseKind, ...] = _registry(
    "_pre_",
    ("quote", 10), ("determiner", 20), ("quantifier", 30), ("count", 40), ("negation", 50), ("joiner", 60),
    ("colour", 70), ("superlative", 80), ("distance_superlative", 85), ("comparative", 90), ("middle", 100), ("ordinal", 110), ("gradable", 120),
    ("position", 130), ("skip", 140),
)
