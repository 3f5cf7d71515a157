"""The one vocabulary: words, what they mean, and the spatial direction rule, as data.

Used by describe (what it computes: colour names, size classes, shape classes, the direction rule),
deduce (what the parser reads and the executor checks) and the data engine (what its questions say).
Nothing here imports numpy or a model; every table is plain data.

Coordinate frame: image pixels, x to the right, y down; boxes XYWH.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

# ---- colours ---------------------------------------------------------------------------------
COLOURS: tuple[str, ...] = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink",
                            "brown")
# colour words a person may say -> the colour name describe computes
COLOUR_WORDS: Mapping[str, str] = MappingProxyType({
    "red": "red", "crimson": "red", "scarlet": "red", "maroon": "red", "reddish": "red",
    "orange": "orange", "orangish": "orange",
    "yellow": "yellow", "golden": "yellow", "gold": "yellow", "yellowish": "yellow",
    "green": "green", "olive": "green", "lime": "green", "greenish": "green",
    "blue": "blue", "navy": "blue", "cyan": "blue", "turquoise": "blue", "teal": "blue", "azure": "blue", "bluish": "blue",
    "purple": "purple", "violet": "purple", "magenta": "purple", "lilac": "purple", "lavender": "purple",
    "purplish": "purple", "pink": "pink", "pinkish": "pink", "rose": "pink",
    "brown": "brown", "beige": "brown", "tan": "brown", "khaki": "brown", "brownish": "brown",
    "black": "black", "blackish": "black",
    "white": "white", "whitish": "white", "cream": "white",
    "grey": "grey", "silver": "grey", "greyish": "grey",
})
COLOUR_MODIFIERS = frozenset({"light", "dark", "pale", "bright", "deep", "vivid", "dull"})  # "light blue" is blue
MIN_COLOUR_FRAC = 0.15  # describe lists a colour covering at least this fraction of a region
PARTIAL_COLOUR_FRAC = 0.3  # a query colour no region is mainly may match a region it covers this much of

# ---- sizes -------------------------------------------------------------------------------------
# size classes by area fraction of the image: (upper bound, class)
SIZE_CLASSES: tuple[tuple[float, str], ...] = ((0.005, "tiny"), (0.03, "small"), (0.12, "medium"), (0.35, "large"),
                                               (math.inf, "huge"))
SIZES: tuple[str, ...] = tuple(c for _, c in SIZE_CLASSES)
# size adjectives -> (classes they cover, direction for ranking: +1 bigger is more so, -1 smaller, 0 medium)
SIZE_WORDS: Mapping[str, tuple[tuple[str, ...], int]] = MappingProxyType({
    "tiny": (("tiny",), -1), "minuscule": (("tiny",), -1), "little": (("tiny", "small"), -1),
    "small": (("tiny", "small"), -1), "smallish": (("small",), -1), "medium": (("medium",), 0),
    "mid sized": (("medium",), 0), "medium sized": (("medium",), 0), "average sized": (("medium",), 0),
    "large": (("large", "huge"), 1), "big": (("large", "huge"), 1), "biggish": (("large",), 1),
    "huge": (("huge",), 1), "giant": (("huge",), 1), "enormous": (("huge",), 1), "massive": (("huge",), 1),
})
# comparatives without "than" ("the bigger green disc"): the most so among the candidates
SIZE_COMPARATIVES: Mapping[str, bool] = MappingProxyType({  # word -> descending by area
    "bigger": True, "larger": True, "greater": True, "smaller": False, "littler": False, "tinier": False,
})
# the data engine's wording of size classes ("medium-sized" reads better than "medium" in a question)
SIZE_PHRASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "tiny": ("tiny",), "small": ("tiny", "small"), "medium-sized": ("medium",), "large": ("large", "huge"),
    "huge": ("huge",)})


def size_class(area_frac: float) -> str:
    """The size class of a region covering ``area_frac`` (0..1) of the image."""
    return next(word for limit, word in SIZE_CLASSES if area_frac < limit)


# ---- shapes ------------------------------------------------------------------------------------
SHAPES: tuple[str, ...] = ("elongated", "round", "square", "rectangular", "triangular", "irregular", "has holes")
# shape-class thresholds describe applies (scale-free measures of the mask; see describe.geometry)
SHAPE_RULES: Mapping[str, float] = MappingProxyType({
    "elongated_min": 2.5,  # elongation (sqrt of the 2nd-moment eigenvalue ratio)
    "squarish_max": 1.3,  # elongation below this: square / round candidates
    "rect_min": 0.9,  # rectangularity: area / min-area rectangle
    "round_rect_lo": 0.7, "round_rect_hi": 0.88,  # a disk fills pi/4 of its square
    "solid_min": 0.9,  # solidity: area / convex hull
    "irregular_max": 0.75,
    "triangle_rect_lo": 0.4, "triangle_rect_hi": 0.65,  # a triangle fills about half its min-area rectangle
    "polygon_epsilon": 0.04,  # approxPolyDP tolerance as a fraction of the outline's perimeter
})
SHAPE_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({  # adjectives -> classes (any of)
    "round": ("round",), "circular": ("round",), "spherical": ("round",), "ball shaped": ("round",),
    "disc shaped": ("round",), "disk shaped": ("round",), "oval": ("round",),
    "square": ("square",), "cubic": ("square",), "boxy": ("square", "rectangular"),
    "rectangular": ("rectangular", "square"), "oblong": ("rectangular",), "rectangle shaped": ("rectangular", "square"),
    "long": ("elongated",), "elongated": ("elongated",), "thin": ("elongated",), "skinny": ("elongated",),
    "slender": ("elongated",), "narrow": ("elongated",), "stick like": ("elongated",), "stick shaped": ("elongated",),
    "triangular": ("triangular",), "triangle shaped": ("triangular",), "wedge shaped": ("triangular",),
    "irregular": ("irregular",), "irregularly shaped": ("irregular",), "odd shaped": ("irregular",),
    "blobby": ("irregular",),
    "holed": ("has holes",), "ring shaped": ("has holes",), "hollow": ("has holes",),
})


class ShapeNoun:
    """What an object noun says about the mask: ``any_of`` (one class needed, empty = no constraint),
    ``all_of`` (every class needed) and ``none_of`` (no class allowed)."""

    __slots__ = ("any_of", "all_of", "none_of")

    def __init__(self, any_of: tuple[str, ...] = (), all_of: tuple[str, ...] = (), none_of: tuple[str, ...] = ()):
        self.any_of, self.all_of, self.none_of = any_of, all_of, none_of

    def holds(self, classes) -> bool:
        cs = set(classes)
        return ((not self.any_of or bool(cs & set(self.any_of))) and set(self.all_of) <= cs
                and not cs & set(self.none_of))

    def describe(self) -> str:
        parts = []
        if self.any_of:
            parts.append(" or ".join(self.any_of))
        parts += list(self.all_of)
        parts += [f"not {c}" for c in self.none_of]
        return ", ".join(parts)


_BOXY = ShapeNoun(("rectangular", "square"))  # a tray with things in it has holes in its mask
_SQUARE = ShapeNoun(("square",), (), ("has holes",))
_ROUND = ShapeNoun(("round",), (), ("has holes",))
_RING = ShapeNoun(("round",), ("has holes",))
_LONG = ShapeNoun(("elongated",))
_TRI = ShapeNoun(("triangular",))
# object nouns (singular) -> the shape check they stand for when no caption confirms them
SHAPE_NOUNS: Mapping[str, ShapeNoun] = MappingProxyType({
    **{w: _BOXY for w in ("box", "carton", "block", "brick", "rectangle", "crate", "slab", "cuboid", "package",
                          "parcel", "tray", "board", "book", "card", "mat", "envelope", "sheet", "tablet", "panel")},
    **{w: _SQUARE for w in ("square", "cube", "tile")},
    **{w: _ROUND for w in ("ball", "disc", "disk", "coin", "plate", "lid", "circle", "dot", "sphere", "puck", "spot",
                           "round")},
    **{w: _RING for w in ("ring", "donut", "doughnut", "washer", "hoop", "roll", "annulus", "bagel", "loop")},
    **{w: _LONG for w in ("stick", "pen", "pencil", "bar", "rod", "pole", "strip", "baton", "stripe", "beam", "plank",
                          "ruler", "straw")},
    **{w: _TRI for w in ("triangle", "wedge", "pyramid")},
})

# ---- brightness, texture, features ---------------------------------------------------------------
BRIGHTNESS: tuple[str, ...] = ("dark", "medium", "bright")
BRIGHTNESS_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "dark": ("dark",), "darker": ("dark",), "bright": ("bright",), "light coloured": ("bright",), "pale": ("bright",),
    "shiny": ("bright",)})
BRIGHTNESS_RULES: Mapping[str, float] = MappingProxyType({"dark_max": 0.35, "bright_min": 0.7})  # mean L*/100
TEXTURES: tuple[str, ...] = ("plain", "textured")
TEXTURE_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "plain": ("plain",), "smooth": ("plain",), "uniform": ("plain",), "featureless": ("plain",),
    "textured": ("textured",), "patterned": ("textured",), "striped": ("textured",), "stripy": ("textured",),
    "stripey": ("textured",), "checked": ("textured",), "checkered": ("textured",), "dotted": ("textured",),
    "spotted": ("textured",), "rough": ("textured",), "detailed": ("textured",), "busy": ("textured",)})
TEXTURED_MIN = 0.15  # edge density inside the mask above which a region reads as textured
# "with stripes / a pattern / a hole / writing (on it)": noun after "with" -> (attribute kind, value)
FEATURE_NOUNS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "stripes": ("texture", "textured"), "stripe": ("texture", "textured"), "pattern": ("texture", "textured"),
    "patterns": ("texture", "textured"), "dots": ("texture", "textured"), "spots": ("texture", "textured"),
    "checks": ("texture", "textured"),
    "hole": ("shape", "has holes"), "holes": ("shape", "has holes"), "gap": ("shape", "has holes"),
    "opening": ("shape", "has holes"),
    "writing": ("writing", "some"), "text": ("writing", "some"), "words": ("writing", "some"),
    "letters": ("writing", "some"), "label": ("writing", "some"), "labels": ("writing", "some"),
    "lettering": ("writing", "some"), "print": ("writing", "some"), "printing": ("writing", "some"),
    "numbers": ("writing", "some"), "inscription": ("writing", "some"),
})

# ---- positions -------------------------------------------------------------------------------------
# 3x3 grid of the centroid: column by thirds of the width, row by thirds of the height
POSITIONS: tuple[str, ...] = ("top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom",
                              "bottom-right")
POSITION_CELLS: Mapping[str, tuple[str, str]] = MappingProxyType({  # word -> (column, row)
    "top-left": ("left", "top"), "top": ("centre", "top"), "top-right": ("right", "top"),
    "left": ("left", "middle"), "centre": ("centre", "middle"), "right": ("right", "middle"),
    "bottom-left": ("left", "bottom"), "bottom": ("centre", "bottom"), "bottom-right": ("right", "bottom"),
})
POSITION_WORDS: tuple[str, ...] = POSITIONS + ("middle", "top-row", "bottom-row", "middle-row", "left-column",
                                               "right-column", "centre-column")
# (x, y) in unit image coordinates each position word points at (None: any), for "most so" ranking
POSITION_POINTS: Mapping[str, tuple[float | None, float | None]] = MappingProxyType({
    "top-left": (0, 0), "top": (0.5, 0), "top-right": (1, 0), "left": (0, 0.5), "centre": (0.5, 0.5),
    "right": (1, 0.5), "bottom-left": (0, 1), "bottom": (0.5, 1), "bottom-right": (1, 1), "middle": (0.5, 0.5),
    "top-row": (None, 0), "bottom-row": (None, 1), "middle-row": (None, 0.5), "left-column": (0, None),
    "right-column": (1, None), "centre-column": (0.5, None),
})
# a row and a column said separately ("at the top, in the middle") -> one cell
POSITION_COMBINE: Mapping[frozenset, str] = MappingProxyType({
    frozenset({"top-row", "centre"}): "top", frozenset({"top-row", "centre-column"}): "top",
    frozenset({"bottom-row", "centre"}): "bottom", frozenset({"bottom-row", "centre-column"}): "bottom",
    frozenset({"left-column", "centre"}): "left", frozenset({"left-column", "middle-row"}): "left",
    frozenset({"right-column", "centre"}): "right", frozenset({"right-column", "middle-row"}): "right",
    frozenset({"top-row", "left-column"}): "top-left", frozenset({"top-row", "right-column"}): "top-right",
    frozenset({"bottom-row", "left-column"}): "bottom-left", frozenset({"bottom-row", "right-column"}): "bottom-right",
})


def position_cell(cx: float, cy: float, w: float, h: float) -> tuple[str, str, str]:
    """(position word, column left|centre|right, row top|middle|bottom) of a centroid in a w x h image."""
    ph = "left" if cx < w / 3 else ("right" if cx >= 2 * w / 3 else "centre")
    pv = "top" if cy < h / 3 else ("bottom" if cy >= 2 * h / 3 else "middle")
    if pv == "middle":
        word = ph
    elif ph == "centre":
        word = pv
    else:
        word = f"{pv}-{ph}"
    return word, ph, pv


# ---- image edges and the viewer ------------------------------------------------------------------
# "nearest the top edge": order by the bbox's distance to that image border
EDGE_WORDS: Mapping[str, str] = MappingProxyType({"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom",
                                                  "left": "left", "right": "right"})
EDGE_NOUNS = frozenset({"edge", "border", "side", "margin", "end"})
IMAGE_NOUNS = frozenset({"image", "picture", "frame", "photo", "scene", "view", "screen"})
# "closest to me": words for the viewer (the camera). With depth (metres) the nearest is the smallest
# depth; without, the object whose lowest point is lowest in the image (a camera looking down at a
# table sees nearer things lower in the frame).
# Region fields / attributes that hold the distance to the camera in metres (first one present wins)
VIEWER_DISTANCE_KEYS = ("distance_m", "camera_distance_m", "distance_to_camera_m", "depth_m")
VIEWER_WORDS = frozenset({"me", "you", "us", "camera", "the camera", "the robot", "the viewer", "robot", "viewer",
                          "the lens", "yourself", "myself"})

# ---- roles: objects, the support they stand on, the background ----------------------------------
ROLES = ("object", "support", "background")
ROLE_NOUNS: Mapping[str, str] = MappingProxyType({
    **{w: "support" for w in ("table", "desk", "floor", "counter", "countertop", "worktop", "surface", "ground",
                              "shelf", "bench", "workbench", "tabletop", "platform", "base")},
    **{w: "background" for w in ("wall", "background", "backdrop", "sky", "ceiling", "scenery")},
})

# ---- relations ----------------------------------------------------------------------------------------
# the describe stage's predicates (subject <predicate> object) and their inverses
PREDICATES: tuple[str, ...] = (
    "inside", "contains", "on_top_of", "under", "occludes", "occluded_by", "overlaps", "touching",
    "left_of", "right_of", "above", "below", "larger_than", "smaller_than", "same_colour_as",
)
INVERSE: Mapping[str, str] = MappingProxyType({
    "inside": "contains", "contains": "inside", "on_top_of": "under", "under": "on_top_of", "occludes": "occluded_by",
    "occluded_by": "occludes", "overlaps": "overlaps", "touching": "touching", "left_of": "right_of",
    "right_of": "left_of", "above": "below", "below": "above", "larger_than": "smaller_than",
    "smaller_than": "larger_than", "same_colour_as": "same_colour_as",
})
LARGER_RATIO = 1.5  # describe emits larger_than between neighbours this different in area
# directional predicates: (axis, sign) with sign -1 = towards smaller coordinates (left / up)
DIRECTIONS: Mapping[str, tuple[str, int]] = MappingProxyType({
    "left_of": ("x", -1), "right_of": ("x", 1), "above": ("y", -1), "below": ("y", 1)})
DIRECTION_OVERLAP = 0.5  # no direction on an axis when the boxes overlap this much (of the shorter) on it


def interval_overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Overlap of [a0, a1) and [b0, b1) as a fraction of the shorter interval (0 when one is empty)."""
    inter, short = min(a1, b1) - max(a0, b0), min(a1 - a0, b1 - b0)
    return max(0.0, inter) / short if short > 0 else 0.0


def direction(box_c, box_r, cent_c, cent_r, axis: str) -> int:
    """The direction rule: -1 when c is left of / above r on ``axis`` ('x' / 'y'), +1 right of /
    below, 0 neither (their boxes, XYWH, overlap by DIRECTION_OVERLAP or more on that axis);
    otherwise the centroid order decides."""
    k = 0 if axis == "x" else 1
    if interval_overlap(box_c[k], box_c[k] + box_c[k + 2], box_r[k], box_r[k] + box_r[k + 2]) >= DIRECTION_OVERLAP:
        return 0
    return -1 if cent_c[k] < cent_r[k] else 1


# relation phrases -> relation the executor decides (target <relation> reference)
RELATION_PHRASES: Mapping[str, str] = MappingProxyType({
    "on": "on", "on top of": "on", "onto": "on", "upon": "on", "atop": "on", "resting on": "on", "sitting on": "on",
    "lying on": "on", "placed on": "on", "standing on": "on", "put on": "on", "laying on": "on", "on the top of": "on",
    "stacked on": "on", "stacked on top of": "on", "piled on": "on", "balanced on": "on", "set on": "on",
    "under": "under", "underneath": "under", "beneath": "under", "below": "below", "lower than": "below",
    "above": "above", "over": "above", "higher than": "above",
    "in": "inside", "inside": "inside", "inside of": "inside", "within": "inside", "contained in": "inside",
    "into": "inside", "in the middle of": "inside", "in the centre of": "inside", "at the centre of": "inside",
    "in the hole of": "inside", "in the centre of the": "inside", "inside the hole of": "inside",
    "enclosed by": "inside", "surrounded by": "inside",
    "containing": "contains", "holding": "contains", "enclosing": "contains", "surrounding": "contains",
    "that contains": "contains", "which contains": "contains", "that holds": "contains", "around": "contains",
    "contains": "contains", "contain": "contains", "holds": "contains", "hold": "contains", "encloses": "contains",
    "surrounds": "contains", "has inside it": "contains",
    "left of": "left_of", "to the left of": "left_of", "on the left of": "left_of", "on the left side of": "left_of",
    "on the left hand side of": "left_of", "to the left side of": "left_of", "left from": "left_of",
    "right of": "right_of", "to the right of": "right_of", "on the right of": "right_of",
    "on the right side of": "right_of", "on the right hand side of": "right_of", "to the right side of": "right_of",
    "right from": "right_of",
    "next to": "near", "beside": "near", "by": "near", "near": "near", "near to": "near", "close to": "near",
    "nearby": "near", "adjacent to": "near", "alongside": "near", "by the side of": "near",
    "touching": "touching", "against": "touching", "in contact with": "touching", "leaning on": "touching",
    "in front of": "in_front_of", "behind": "behind", "in back of": "behind", "hidden by": "behind",
    "covered by": "behind", "blocked by": "behind", "covering": "in_front_of", "blocking": "in_front_of",
    "bigger than": "larger_than", "larger than": "larger_than", "greater than": "larger_than",
    "smaller than": "smaller_than", "littler than": "smaller_than", "tinier than": "smaller_than",
    "same colour as": "same_colour_as", "the same colour as": "same_colour_as", "of the same colour as": "same_colour_as",
    "in the same colour as": "same_colour_as",
    "between": "between", "in between": "between",
})
# posture verbs before a relation ("the cup sitting inside the ring") carry no meaning of their own
POSTURE_VERBS = frozenset({"sitting", "lying", "laying", "resting", "standing", "placed", "located", "kept", "put",
                           "found", "positioned", "lies", "sits", "rests", "stands"})
