"""Scene → compact text for the LLM: one deterministic, bounded line per region.

Example line::

    R3: small red elongated object, bottom-left; caption "a pair of scissors"; text "FRAGILE"; on top of R1; left of R5
    R1: huge brown support surface, bottom; ...
    R4: small blue round object, centre, 0.84 m away, 7 cm tall; on top of R1

The noun is the region's role (``object`` / ``support surface`` / ``background``); the distance and
height appear when the scene was perceived with depth (``Region.geometry_3d``).

Regions are capped (``max_regions``, the largest / best-scoring first) and the number dropped is
stated in a final line, so the prompt length is bounded by ``max_regions * max_line_chars``.

After the region lines comes an index of the same facts the other way round (:func:`index_lines`)::

    colour red: R3; colour blue: R4
    shape elongated: R3; shape round: R4; shape with holes: R2
    position bottom-left: R3; position centre: R4
    objects largest to smallest: R4, R3
    objects left to right: R3, R4
    objects top to bottom: R4, R3
    inside R2: R5
    contains R5: R2
    on top of R1: R3, R4; on top of R3: R5

A region line puts the id *before* its attributes; a small LLM asked for "the blue one" finds
"blue" far more reliably when the id follows it, and reads orders ("the second from the left",
"the biggest") off one line instead of comparing numbers it is never shown. Nothing in the index
is new: it is the region lines' words and the mask centroids / areas, for the shown regions only.
"""

from __future__ import annotations

from collections.abc import Sequence

from gear_edge.errors import InputError
from gear_edge.types import Region, Scene

# Relations shown in text, in this order, with their wording; the rest stay in Scene.relations.
RELATION_WORDS = {
    "inside": "inside",
    "contains": "contains",
    "on_top_of": "on top of",
    "under": "under",
    "occludes": "in front of",
    "occluded_by": "behind",
    "touching": "touching",
    "left_of": "left of",
    "right_of": "right of",
    "above": "above",
    "below": "below",
}
MAX_RELATIONS_PER_REGION = 4
# Relations the index also lists the other way round ("on top of R1: R3, R4" = R3 and R4 are on top of
# R1): the ones that name few regions each. Left/right/above/below relate almost every pair; the
# order lines carry them.
INDEX_RELATIONS = ("inside", "contains", "on_top_of", "under", "occludes", "occluded_by", "touching")
MAX_CAPTION_CHARS = 80
MAX_TEXT_CHARS = 40


def _clean(text: str, limit: int) -> str:
    """One line, printable, no quotes (they delimit fields), at most ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text)).replace('"', "'")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


ROLE_NOUNS = {"object": "object", "support": "support surface", "background": "background"}


def region_phrase(region: Region) -> str:
    """'small red elongated object, bottom-left' from the region's exact attributes and role
    (plus ', 0.84 m away, 7 cm tall' with 3D attributes)."""
    a = region.attributes
    words = [a.get("size", ""), a.get("colour", "")]
    shape = [w for w in a.get("shape", []) if w != "has holes"]
    if region.role == "object":
        words += shape[:1]
    phrase = " ".join(w for w in words if w and w != "none") + " " + ROLE_NOUNS.get(region.role, "object")
    if "has holes" in a.get("shape", []) and region.role == "object":
        phrase += " with holes"
    if a.get("position"):
        phrase += f", {a['position']}"
    g = region.geometry_3d
    if g is not None:
        phrase += f", {g.distance_m:.2f} m away"
        if g.height_above_support_m is not None and region.role == "object":
            phrase += f", {100 * g.height_above_support_m:.0f} cm tall"
    return phrase.strip()


def region_line(scene: Scene, region: Region, shown: set[int] | None = None) -> str:
    parts = [f"R{region.id}: {region_phrase(region)}"]
    if region.caption:
        parts.append(f'caption "{_clean(region.caption, MAX_CAPTION_CHARS)}"')
    if region.text:
        joined = _clean(" ".join(region.text), MAX_TEXT_CHARS)
        if joined:
            parts.append(f'text "{joined}"')
    rels = [r for r in scene.relations_of(region.id) if r.predicate in RELATION_WORDS]
    if shown is not None:
        rels = [r for r in rels if r.object in shown]
    order = list(RELATION_WORDS)
    rels.sort(key=lambda r: (order.index(r.predicate), r.object))
    for r in rels[:MAX_RELATIONS_PER_REGION]:
        parts.append(f"{RELATION_WORDS[r.predicate]} R{r.object}")
    return "; ".join(parts)


def select_regions(scene: Scene, max_regions: int) -> list[Region]:
    """The regions shown: largest area first (then higher score), at most ``max_regions``, in id order."""
    if max_regions < 1:
        raise InputError(f"max_regions must be >= 1, got {max_regions}")
    ranked = sorted(scene.regions, key=lambda r: (-r.area, -(r.score or 0.0), r.id))[:max_regions]
    return sorted(ranked, key=lambda r: r.id)


def _ids(regions: Sequence[Region]) -> str:
    return ", ".join(f"R{r.id}" for r in regions)


def _grouped(label: str, pairs: Sequence[tuple[str, Region]]) -> str | None:
    """'label v1: R1, R4; label v2: R2' with values in order of first appearance (pairs in id order)."""
    groups: dict[str, list[Region]] = {}
    for value, r in pairs:
        if value and value != "none":
            groups.setdefault(value, []).append(r)
    return "; ".join(f"{label} {v}: {_ids(rs)}" for v, rs in groups.items()) or None


def relation_index(scene: Scene, shown: Sequence[Region]) -> list[str]:
    """One line per :data:`INDEX_RELATIONS` predicate that holds among the shown regions (in
    :data:`RELATION_WORDS` order), e.g. 'on top of R1: R3, R4; on top of R2: R5': for each region it
    names (id order), the shown subjects it holds for. Empty when none holds."""
    ids = {r.id for r in shown}
    groups: dict[tuple[int, int], set[int]] = {}
    for rel in scene.relations:
        if rel.predicate in INDEX_RELATIONS and rel.subject in ids and rel.object in ids:
            groups.setdefault((INDEX_RELATIONS.index(rel.predicate), rel.object), set()).add(rel.subject)
    lines: dict[int, list[str]] = {}
    for (p, o), subs in sorted(groups.items()):
        lines.setdefault(p, []).append(f"{RELATION_WORDS[INDEX_RELATIONS[p]]} R{o}: " + ", ".join(f"R{s}" for s in sorted(subs)))
    return ["; ".join(parts) for _, parts in sorted(lines.items())]


def index_lines(shown: Sequence[Region], scene: Scene | None = None) -> list[str]:
    """The shown regions' colours, shapes and positions each followed by the ids that have them, and
    the objects ordered by area (largest first, ties by id) and by mask centroid along the image's x
    (left to right) and y (top to bottom) axes; with ``scene``, its :func:`relation_index` lines last.
    Empty for no regions; order lines need 2+ objects."""
    shown = sorted(shown, key=lambda r: r.id)
    objects = [r for r in shown if r.role == "object"]
    shapes: list[tuple[str, Region]] = []
    for r in objects:
        words = list(r.attributes.get("shape", []))
        main = [w for w in words if w != "has holes"][:1]
        shapes += [(w, r) for w in main] + ([("with holes", r)] if "has holes" in words else [])
    lines = [
        _grouped("colour", [(r.attributes.get("colour", ""), r) for r in shown]),
        _grouped("shape", sorted(shapes, key=lambda p: p[0] == "with holes")),
        _grouped("position", [(r.attributes.get("position", ""), r) for r in shown]),
    ]
    if len(objects) >= 2:
        def centroid(r: Region, axis: int) -> float:
            c = r.attributes.get("centroid")
            return float(c[axis]) if c else float(r.bbox[axis]) + float(r.bbox[axis + 2]) / 2
        lines.append("objects largest to smallest: " + _ids(sorted(objects, key=lambda r: (-r.area, r.id))))
        lines.append("objects left to right: " + _ids(sorted(objects, key=lambda r: (centroid(r, 0), r.id))))
        lines.append("objects top to bottom: " + _ids(sorted(objects, key=lambda r: (centroid(r, 1), r.id))))
    if scene is not None:
        lines += relation_index(scene, shown)
    return [line for line in lines if line]


def scene_lines(scene: Scene, max_regions: int = 40, index: bool = True) -> list[str]:
    """One line per shown region (id order), a line stating how many were left out, then (``index``)
    the :func:`index_lines` of the shown regions."""
    shown = select_regions(scene, max_regions)
    ids = {r.id for r in shown}
    lines = [region_line(scene, r, ids) for r in shown]
    dropped = len(scene.regions) - len(shown)
    if dropped:
        lines.append(f"({dropped} smaller regions not listed)")
    if index:
        lines += index_lines(shown, scene)
    return lines


def scene_text(scene: Scene, max_regions: int = 40) -> str:
    return "\n".join(scene_lines(scene, max_regions))
