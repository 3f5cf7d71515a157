"""The manipulation-oriented question taxonomy of the data engine.

Every QA pair belongs to one class; its answer is a set of region ids (possibly empty). The classes
follow what a robot must resolve before acting on a referring instruction:

* ``identity``      — which object it is by name: caption words, or text read on it ("the box that says FRAGILE");
* ``attribute``     — one object singled out by colour / size / shape / brightness / texture;
* ``spatial``       — where it is: image position, or a directional / contact relation to another object;
* ``affordance``    — what it is for or what can be done with it: purposes (needs captions) and
  manipulation commands on graspable (small) objects ("pick up the small red object");
* ``part_whole``    — parts inside an object, or the object that contains a part;
* ``multi_target``  — several regions at once ("all the red objects", "the cup and the book");
* ``comparison``    — superlatives and comparatives ("the largest", "the leftmost", "larger than X");
* ``absent``        — a well-formed request that nothing in the scene fits (the answer is empty).
"""

from __future__ import annotations

from gear_edge.errors import InputError

IDENTITY = "identity"
ATTRIBUTE = "attribute"
SPATIAL = "spatial"
AFFORDANCE = "affordance"
PART_WHOLE = "part_whole"
MULTI_TARGET = "multi_target"
COMPARISON = "comparison"
ABSENT = "absent"

CLASSES: tuple[str, ...] = (IDENTITY, ATTRIBUTE, SPATIAL, AFFORDANCE, PART_WHOLE, MULTI_TARGET, COMPARISON, ABSENT)

DESCRIPTIONS: dict[str, str] = {
    IDENTITY: "names the object itself (what it is, or the text written on it)",
    ATTRIBUTE: "picks one object by its colour, size, shape, brightness or texture",
    SPATIAL: "picks an object by where it is in the image or relative to another object",
    AFFORDANCE: "asks for an object by what it is for, or tells the robot to pick up / hand over an object",
    PART_WHOLE: "asks for the parts inside an object, or for the object that contains a part",
    MULTI_TARGET: "asks for several objects at once",
    COMPARISON: "compares objects: the largest, smallest, leftmost, brightest, larger than another",
    ABSENT: "asks for something that is not in the image (the answer is no region)",
}


def check_class(name: str) -> str:
    """``name`` if it is a taxonomy class; InputError listing the classes otherwise."""
    if name not in CLASSES:
        raise InputError(f"unknown taxonomy class {name!r} (classes: {', '.join(CLASSES)})")
    return name


def parse_classes(text: str | None) -> tuple[str, ...]:
    """Comma-separated class names ("spatial,comparison"); None / "" / "all" → every class."""
    if text is None or not text.strip() or text.strip() == "all":
        return CLASSES
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    return tuple(check_class(n) for n in names)
