"""The one vocabulary: words, what they mean, and the spatial direction rule, as data.

Used by describe (what it computes: colour names, size classes, shape classes, the direction rule),
deduce (what the parser reads and the executor checks) and the data engine (what its questions say).
Nothing here imports numpy or a model; every table is plain data.

Coordinate frame: image pixels, x to the right, y down; boxes XYWH.
"""

from __future__ import annotations

import math
import re
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
    # straight-sided: a box seen in perspective (top and front faces: a convex hexagon, not a rectangle in
    # the image) has most of its outline on a few straight sides; a ball, a ring or a can's rim has curves
    "straight_min": 0.6,  # straightness: outline fraction on straight sides -> square / rectangular
    "straight_side": 0.12,  # a straight side is at least this fraction of the outline ...
    "straight_epsilon": 0.01,  # ... of a polygon approximation with this tolerance (fraction of the outline)
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
_DISH = ShapeNoun(("round",))  # a plate / bowl with food on it has holes in its mask
_TRI = ShapeNoun(("triangular",))
# object nouns (singular) -> the shape check they stand for when no caption confirms them
SHAPE_NOUNS: Mapping[str, ShapeNoun] = MappingProxyType({
    **{w: _BOXY for w in ("box", "carton", "block", "brick", "rectangle", "crate", "slab", "cuboid", "package",
                          "parcel", "tray", "board", "book", "card", "mat", "envelope", "sheet", "tablet", "panel")},
    **{w: _SQUARE for w in ("square", "cube", "tile")},
    **{w: _ROUND for w in ("ball", "disc", "disk", "coin", "lid", "circle", "dot", "sphere", "puck", "spot",
                           "round")},
    **{w: _DISH for w in ("plate", "dish", "bowl", "saucer", "platter")},
    **{w: _RING for w in ("ring", "donut", "doughnut", "washer", "hoop", "roll", "annulus", "bagel", "loop")},
    **{w: _LONG for w in ("stick", "pen", "pencil", "bar", "rod", "pole", "strip", "baton", "stripe", "beam", "plank",
                          "ruler", "straw", "knife", "fork", "spoon", "screwdriver", "chopstick", "skewer", "needle",
                          "wand", "cane", "spatula", "marker", "crayon", "toothbrush", "pipe", "tube", "broom", "mop")},
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

# ---- affordances: what objects are for ---------------------------------------------------------
# A purpose phrase ("something to slice bread with", "what can I drink from?", "something sharp",
# "I'm hungry") names an affordance; an object affords it when its caption's noun is one of the
# affordance's nouns. Weights: 1.0 the usual object for it, less an object that can serve ("drink
# from a bottle"); a noun that only modifies the caption's head ("a *glass* bottle", "a *toy* car")
# counts AFFORD_MODIFIER_WEIGHT of its weight.
AFFORD_MODIFIER_WEIGHT = 0.5
FOODS: frozenset[str] = frozenset({
    "apple", "banana", "orange", "lime", "lemon", "pear", "peach", "plum", "grape", "cherry", "strawberry", "berry",
    "mango", "kiwi", "melon", "watermelon", "pineapple", "avocado", "tomato", "carrot", "cucumber", "potato", "bread",
    "loaf", "sandwich", "toast", "bun", "bagel", "croissant", "muffin", "cake", "cupcake", "cookie", "biscuit",
    "cracker", "donut", "doughnut", "pretzel", "chocolate", "candy", "sweet", "lollipop", "cheese", "egg", "pizza",
    "burger", "hamburger", "hotdog", "sausage", "salad", "cereal", "yogurt", "yoghurt", "chip", "crisp",
    "granola", "snack", "fruit", "food", "meal", "pie", "waffle", "pancake", "noodle", "rice", "sushi", "taco",
})
AFFORDANCE_NOUNS: Mapping[str, Mapping[str, float]] = MappingProxyType({k: MappingProxyType(v) for k, v in {
    "cut": {"knife": 1.0, "scissors": 1.0, "blade": 1.0, "cutter": 1.0, "scalpel": 1.0, "shears": 1.0,
            "cleaver": 1.0, "razor": 0.8, "saw": 0.9, "clippers": 0.8, "axe": 0.8, "snips": 1.0},
    "drink_from": {"mug": 1.0, "cup": 1.0, "glass": 1.0, "tumbler": 1.0, "teacup": 1.0, "goblet": 1.0,
                   "bottle": 0.7, "flask": 0.7, "thermos": 0.7, "canteen": 0.7, "can": 0.6, "beaker": 0.6,
                   "straw": 0.6, "jug": 0.4},
    "hold_liquid": {"mug": 1.0, "cup": 1.0, "glass": 1.0, "bottle": 1.0, "jar": 1.0, "jug": 1.0, "pitcher": 1.0,
                    "kettle": 1.0, "teapot": 1.0, "carafe": 1.0, "flask": 1.0, "thermos": 1.0, "bowl": 0.9,
                    "pot": 0.9, "bucket": 0.9, "vase": 0.8, "tumbler": 1.0, "beaker": 1.0, "can": 0.7,
                    "basin": 0.8, "container": 0.7},
    "write_with": {"pen": 1.0, "pencil": 1.0, "marker": 1.0, "crayon": 1.0, "biro": 1.0, "quill": 1.0,
                   "chalk": 0.9, "highlighter": 0.8, "stylus": 0.6},
    "write_on": {"notebook": 1.0, "paper": 1.0, "notepad": 1.0, "pad": 0.8, "whiteboard": 1.0, "blackboard": 1.0,
                 "journal": 1.0, "diary": 1.0, "sheet": 0.7, "page": 0.7, "card": 0.6, "envelope": 0.6,
                 "postit": 1.0, "note": 0.8},
    "clean": {"sponge": 1.0, "cloth": 1.0, "rag": 1.0, "towel": 1.0, "wipe": 1.0, "duster": 1.0, "mop": 1.0,
              "scrubber": 1.0, "napkin": 0.8, "tissue": 0.8, "broom": 0.9, "brush": 0.7},
    "eat": {w: 1.0 for w in FOODS},
    "eat_with": {"fork": 1.0, "spoon": 1.0, "chopsticks": 1.0, "knife": 0.5},
    "call": {"phone": 1.0, "telephone": 1.0, "smartphone": 1.0, "mobile": 1.0, "cellphone": 1.0, "handset": 0.9},
    "type_on": {"keyboard": 1.0, "laptop": 1.0, "computer": 1.0, "typewriter": 1.0, "notebook computer": 1.0,
                "tablet": 0.5},
    "hit": {"hammer": 1.0, "mallet": 1.0},
    "screw": {"screwdriver": 1.0, "drill": 0.7},
    "tighten": {"wrench": 1.0, "spanner": 1.0, "pliers": 0.8, "screwdriver": 0.6},
    "fasten": {"tape": 1.0, "glue": 1.0, "stapler": 1.0, "clip": 0.8, "pin": 0.7, "string": 0.6},
    "tell_time": {"clock": 1.0, "watch": 1.0, "timer": 0.7},
    "light": {"lamp": 1.0, "torch": 1.0, "flashlight": 1.0, "lantern": 1.0, "candle": 0.9, "bulb": 0.8},
    "read": {"book": 1.0, "magazine": 1.0, "newspaper": 1.0, "paper": 0.5, "notebook": 0.4},
    "sit_on": {"chair": 1.0, "stool": 1.0, "bench": 1.0, "sofa": 1.0, "couch": 1.0, "seat": 1.0},
    "carry": {"bag": 1.0, "basket": 1.0, "backpack": 1.0, "tray": 1.0, "box": 0.7, "crate": 0.8, "bucket": 0.7,
              "chest": 0.6},
    "measure": {"ruler": 1.0, "scale": 0.8, "tape measure": 1.0},
    "photograph": {"camera": 1.0, "phone": 0.6},
    "listen": {"headphones": 1.0, "earphones": 1.0, "speaker": 1.0, "radio": 1.0},
    "play": {"toy": 1.0, "ball": 1.0, "teddy": 1.0, "teddy bear": 1.0, "doll": 1.0, "puzzle": 1.0, "kite": 1.0, "block": 0.6,
             "game": 1.0},
    "cook": {"pan": 1.0, "pot": 1.0, "wok": 1.0, "stove": 1.0, "oven": 1.0, "microwave": 1.0},
    "stir": {"spoon": 1.0, "stirrer": 1.0, "whisk": 0.8, "spatula": 0.8},
    "erase": {"eraser": 1.0, "rubber": 1.0},
    "dig": {"shovel": 1.0, "spade": 1.0, "trowel": 1.0},
    "serve_food": {"plate": 1.0, "bowl": 1.0, "dish": 1.0, "platter": 1.0, "tray": 0.7},
    "open_lock": {"key": 1.0, "keycard": 1.0},
    "keep_dry": {"umbrella": 1.0, "raincoat": 1.0},
    "protect_head": {"helmet": 1.0, "hat": 0.6, "cap": 0.6},
}.items()})
# materials (caption modifiers) that afford something when the head noun says nothing ("a *paper* sheet")
AFFORDANCE_MATERIALS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "write_on": MappingProxyType({"paper": 0.6, "cardboard": 0.4}),
    "clean": MappingProxyType({"cloth": 0.6, "cotton": 0.5, "microfibre": 0.6}),
    "cut": MappingProxyType({"blade": 0.6}),
})
# what a robot without a captioner can still check: the shape that affords it (weak evidence, said so)
AFFORDANCE_SHAPES: Mapping[str, ShapeNoun] = MappingProxyType({
    "write_with": _LONG, "stir": _LONG, "roll": _ROUND,
})
# verbs (base form, or "verb particle" / "verb object") -> affordance
AFFORDANCE_VERBS: Mapping[str, str] = MappingProxyType({
    **{v: "cut" for v in ("cut", "slice", "chop", "carve", "trim", "snip", "dice", "cut up", "cut open", "saw",
                          "sever", "shear", "mince")},
    **{v: "drink_from" for v in ("drink", "drink from", "drink out of", "sip", "sip from", "gulp", "have a drink")},
    **{v: "hold_liquid" for v in ("pour", "hold water", "hold liquid", "hold soup", "hold coffee", "hold tea",
                                  "hold milk", "hold juice", "carry water", "carry soup", "store water", "fill",
                                  "boil water")},
    **{v: "write_with" for v in ("write", "write with", "sign", "jot", "jot down", "note down", "scribble", "draw",
                                 "sketch", "doodle", "write down", "take notes", "take note", "autograph")},
    **{v: "write_on" for v in ("write on", "write in", "draw on", "sketch on", "take notes on", "take notes in",
                               "jot on", "scribble on", "note on")},
    **{v: "clean" for v in ("clean", "wipe", "scrub", "mop", "dust", "dry", "wash", "polish", "clean up", "mop up",
                            "wipe up", "soak up", "sponge", "clean off", "wipe off", "wipe down")},
    **{v: "eat" for v in ("eat", "munch", "snack", "nibble", "bite", "chew", "taste", "have a snack", "snack on",
                          "eat up")},
    "eat with": "eat_with", "eat soup with": "eat_with", "scoop": "eat_with",
    **{v: "call" for v in ("call", "phone", "dial", "ring", "text", "make a call", "make a phone call",
                           "call up")},
    **{v: "type_on" for v in ("type", "type on", "email", "browse", "code", "program", "google", "type up")},
    **{v: "hit" for v in ("hammer", "hit", "pound", "nail", "knock", "bang", "smash", "hammer in")},
    **{v: "screw" for v in ("screw", "unscrew", "screw in", "drive")},
    **{v: "tighten" for v in ("tighten", "loosen", "turn a bolt", "undo a bolt")},
    **{v: "fasten" for v in ("tape", "glue", "stick", "fasten", "attach", "seal", "staple", "tie", "bind",
                             "stick together", "tape up")},
    **{v: "tell_time" for v in ("tell time", "tell the time", "check the time", "check time", "know the time",
                                "time")},
    **{v: "light" for v in ("light", "illuminate", "see in the dark", "light up")},
    **{v: "read" for v in ("read",)},
    **{v: "sit_on" for v in ("sit", "sit on", "sit down")},
    **{v: "carry" for v in ("carry", "transport", "store", "keep", "pack", "put things in", "carry things")},
    **{v: "measure" for v in ("measure",)},
    **{v: "photograph" for v in ("photograph", "take a photo", "take a picture", "take pictures", "film")},
    **{v: "listen" for v in ("listen", "listen to")},
    **{v: "play" for v in ("play", "play with")},
    **{v: "cook" for v in ("cook", "fry", "boil", "bake", "heat")},
    **{v: "stir" for v in ("stir", "mix")},
    **{v: "erase" for v in ("erase", "rub out")},
    **{v: "dig" for v in ("dig",)},
    **{v: "roll" for v in ("roll",)},
    **{v: "serve_food" for v in ("serve", "serve food", "serve food on", "serve food in", "serve dinner", "plate up")},
    **{v: "open_lock" for v in ("unlock", "open a lock", "open the lock", "open the door")},
    **{v: "keep_dry" for v in ("keep the rain off", "keep dry", "stay dry", "keep me dry")},
    **{v: "protect_head" for v in ("protect my head", "protect your head", "protect the head")},
})
# how a person asks for each affordance (the data engine's purpose questions; the parser reads each
# back to its affordance: tested)
AFFORDANCE_PHRASES: Mapping[str, str] = MappingProxyType({
    "cut": "something to cut with", "drink_from": "something to drink from", "hold_liquid": "something to pour water from",
    "write_with": "something to write with", "write_on": "something to write on", "clean": "something to clean with",
    "eat": "something to eat", "eat_with": "something to eat with", "call": "something to make a call with",
    "type_on": "something to type on", "hit": "something to hit a nail with", "screw": "something to drive a screw with",
    "tighten": "something to tighten a bolt with", "fasten": "something to stick things together with",
    "tell_time": "something to tell the time", "light": "something to light the room", "read": "something to read",
    "sit_on": "something to sit on", "carry": "something to carry things in", "measure": "something to measure with",
    "photograph": "something to take a photo with", "listen": "something to listen to music with",
    "play": "something to play with", "cook": "something to cook with", "stir": "something to stir with",
    "erase": "something to erase with", "dig": "something to dig with", "serve_food": "something to serve food on",
    "open_lock": "something to open a lock with", "keep_dry": "something to keep the rain off",
    "protect_head": "something to protect my head",
})
# verbs that carry no purpose of their own: the noun after them says it ("make a phone call", "have a snack")
LIGHT_VERBS = frozenset({"make", "take", "have", "do", "get", "give", "use", "go", "grab"})
# adjectives ("something sharp") and nouns naming a kind of thing ("a snack", "some food") -> affordance
AFFORDANCE_WORDS: Mapping[str, str] = MappingProxyType({
    "sharp": "cut", "pointy": "cut", "edible": "eat", "tasty": "eat", "delicious": "eat", "eatable": "eat",
    "absorbent": "clean", "drinkable": "drink_from", "writable": "write_on",
    "snack": "eat", "food": "eat", "fruit": "eat", "treat": "eat", "meal": "eat", "nibbles": "eat",
    "cutlery": "eat_with", "utensil": "eat_with", "stationery": "write_with", "drinkware": "drink_from",
    "container": "hold_liquid", "vessel": "hold_liquid", "toy": "play", "seat": "sit_on",
})
# "I'm hungry", "we are thirsty", "my hands are dirty": a need -> the affordance that meets it
NEED_WORDS: Mapping[str, str] = MappingProxyType({
    "hungry": "eat", "starving": "eat", "peckish": "eat", "famished": "eat",
    "thirsty": "drink_from", "parched": "drink_from",
    "dirty": "clean", "sticky": "clean", "messy": "clean",
    "bored": "play",
})
NEED_SUBJECTS: tuple[tuple[str, ...], ...] = (
    ("i'm",), ("im",), ("i", "am"), ("we're",), ("we", "are"), ("i", "feel"), ("i'm", "feeling"), ("i", "am", "feeling"),
    ("i'm", "so"), ("i'm", "really"), ("i'm", "a", "bit"), ("i", "am", "so"), ("my", "hands", "are"),
    ("the", "table", "is"), ("i", "got"), ("i", "get"))
# contents after "for" ("a container for water"): -> the affordance of what holds them
CONTENT_WORDS: Mapping[str, str] = MappingProxyType({
    **{w: "hold_liquid" for w in ("water", "coffee", "tea", "juice", "milk", "soup", "wine", "beer", "liquid",
                                  "drinks", "a drink", "lemonade", "soda")},
})


def affordance_weight(noun_words: list[str], affordance: str) -> tuple[float, str]:
    """How well an object named by ``noun_words`` (a caption's words, singular, in order; the head
    noun last) affords ``affordance``: (weight, the word that says so); (0, "") when nothing does."""
    table = AFFORDANCE_NOUNS.get(affordance, {})
    if not noun_words:
        return 0.0, ""
    head = noun_words[-1]
    two = " ".join(noun_words[-2:])
    if two in table:
        return table[two], two
    if head in table:
        return table[head], head
    best, word = 0.0, ""
    for w in noun_words[:-1]:
        v = table.get(w, 0.0) * AFFORD_MODIFIER_WEIGHT
        if v > best:
            best, word = v, w
    for w in noun_words:
        v = AFFORDANCE_MATERIALS.get(affordance, {}).get(w, 0.0)
        if v > best:
            best, word = v, w
    return best, word


_AFFORD_VERB_WORDS = frozenset(k.split()[0] for k in AFFORDANCE_VERBS)
_CLAUSE_FILLERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "my", "your", "some", "it", "them",
                             "someone", "somebody", "something", "things", "stuff", "up", "with", "on", "in", "from",
                             "out", "of", "into", "onto", "for", "at", "to", "me", "us", "him", "her"})
_CLAUSE_PREPS = ("with", "on", "in", "from", "out of", "into", "onto", "at", "off", "down", "up", "to")


def affordance_verb(word: str) -> str | None:
    """The base form of ``word`` when it is (an inflection of) a verb that starts an entry of
    AFFORDANCE_VERBS ("cutting" -> "cut", "wipes" -> "wipe", "slicing" -> "slice"); else None."""
    w = word.lower()
    if w in _AFFORD_VERB_WORDS:
        return w
    for suf, rep in (("ing", ""), ("ing", "e"), ("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e")):
        if w.endswith(suf) and len(w) > len(suf) + 1:
            b = w[: -len(suf)] + rep
            if b in _AFFORD_VERB_WORDS:
                return b
            if rep == "" and len(b) > 2 and b[-1] == b[-2] and b[:-1] in _AFFORD_VERB_WORDS:
                return b[:-1]  # "cutting" -> "cutt" -> "cut"
    return None


def purpose_affordance(words, after_for: bool = False) -> str | None:
    """The affordance a purpose clause names (``words``: the clause after "to" / "for" / "what can I",
    lower-case), or None. Tried in order: the longest entry of AFFORDANCE_VERBS the clause starts
    with ("make a phone call", "tell the time"); the verb with the clause's last preposition ("write
    ... on", "drink ... from"); the verb with each of its objects ("hold water"); the verb alone; a
    light verb's object ("take notes", "have a snack"); after "for", contents ("for water") or a
    kind of thing ("for food")."""
    ws = [w for w in words if w not in (",", ";", "?", ".", "!")]
    if not ws:
        return None
    verb = affordance_verb(ws[0])
    if verb is not None:
        rest = ws[1:]
        for n in range(min(5, len(rest)), 0, -1):
            key = " ".join([verb, *rest[:n]])
            if key in AFFORDANCE_VERBS:
                return AFFORDANCE_VERBS[key]
        if len(rest) >= 2 and " ".join(rest[-2:]) in _CLAUSE_PREPS and f"{verb} {' '.join(rest[-2:])}" in AFFORDANCE_VERBS:
            return AFFORDANCE_VERBS[f"{verb} {' '.join(rest[-2:])}"]
        if rest and rest[-1] in _CLAUSE_PREPS and f"{verb} {rest[-1]}" in AFFORDANCE_VERBS:
            return AFFORDANCE_VERBS[f"{verb} {rest[-1]}"]
        for w in rest:
            if w not in _CLAUSE_FILLERS and f"{verb} {w}" in AFFORDANCE_VERBS:
                return AFFORDANCE_VERBS[f"{verb} {w}"]
        if verb in AFFORDANCE_VERBS:
            return AFFORDANCE_VERBS[verb]
    if ws[0] in LIGHT_VERBS or after_for or verb is None:
        for w in (ws[1:] if ws[0] in LIGHT_VERBS else ws):
            if w in _CLAUSE_FILLERS:
                continue
            v = affordance_verb(w)
            if v is not None and v in AFFORDANCE_VERBS and (ws[0] in LIGHT_VERBS or w.endswith("ing")):
                return AFFORDANCE_VERBS[v]
            for table in (CONTENT_WORDS, AFFORDANCE_WORDS):
                if w in table:
                    return table[w]
                if w.endswith("s") and w[:-1] in table:
                    return table[w[:-1]]
    return None


def singular(word: str) -> str:
    """A crude singular form for lexical comparison ('boxes' → 'box', 'cups' → 'cup', 'glass' stays)."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


# "a pair of scissors", "a roll of tape", "a slice of bread": the object is the word after "of"
MEASURE_HEADS = frozenset({"pair", "piece", "bunch", "set", "couple", "kind", "type", "sort", "bit", "stack", "pile",
                           "roll", "slice", "loaf", "sheet", "packet", "ball", "bar", "handful", "box"})
_CAPTION_STOPS = frozenset({"on", "in", "at", "with", "from", "by", "near", "under", "beside", "next", "behind",
                            "inside", "and", "that", "which", "over", "against", "lying", "sitting", "standing"})


def caption_nouns(caption: str) -> list[str]:
    """The words naming a caption's object, the head noun last: "a red coffee mug on the table" ->
    [red, coffee, mug]; "a pair of scissors" -> [scissors]; "a bottle of water" -> [bottle]."""
    ws = [w for w in re.findall(r"[a-z]+", str(caption).lower()) if w not in ("a", "an", "the", "some", "two", "three")]
    for k, w in enumerate(ws):
        if w in _CAPTION_STOPS and k > 0:
            ws = ws[:k]
            break
    if "of" in ws:
        k = ws.index("of")
        if k > 0 and ws[k - 1] in MEASURE_HEADS and k + 1 < len(ws):
            ws = ws[k + 1 :]
        else:
            ws = ws[:k]
    return ws


def caption_affordance(caption: str | None, affordance: str) -> tuple[float, str]:
    """(weight, word) with which a caption names something affording ``affordance`` (its words as
    written or made singular: "scissors", "cups"); (0, "") when it does not."""
    if not caption:
        return 0.0, ""
    ws = caption_nouns(caption)
    return max(affordance_weight(ws, affordance), affordance_weight([singular(w) for w in ws], affordance))
