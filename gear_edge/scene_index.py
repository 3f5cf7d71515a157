"""Per-scene look-ups shared by the deducer's executor and the data engine's question writer.

Tolerates regions without attributes (a caller's own masks): area, bbox and centroid fall back to
the region's own fields. Relations are indexed by predicate as ``(subject, object)`` id pairs.
"""

from __future__ import annotations

from gear_edge.types import Region, Scene
from gear_edge.vocabulary import direction


class SceneIndex:
    """Attribute and relation look-ups on one scene; ``ids`` in scene order."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.regions: dict[int, Region] = {r.id: r for r in scene.regions}
        self.ids: list[int] = [r.id for r in scene.regions]
        h, w = scene.image_size
        self.h, self.w = max(1, int(h)), max(1, int(w))
        self.edges: dict[str, set[tuple[int, int]]] = {}
        for rel in scene.relations:
            if rel.subject in self.regions and rel.object in self.regions:
                self.edges.setdefault(rel.predicate, set()).add((rel.subject, rel.object))

    def attr(self, i: int, key: str, default=None):
        return self.regions[i].attributes.get(key, default)

    def area(self, i: int) -> float:
        """Pixels."""
        r = self.regions[i]
        return float(r.attributes.get("area_px", r.area))

    def bbox(self, i: int) -> tuple[float, float, float, float]:
        """XYWH pixels."""
        b = self.regions[i].attributes.get("bbox") or self.regions[i].bbox
        return tuple(float(v) for v in b)  # type: ignore[return-value]

    def centroid(self, i: int) -> tuple[float, float]:
        """(x, y) pixels; the bbox centre when the region has no attributes."""
        c = self.attr(i, "centroid")
        if c:
            return float(c[0]), float(c[1])
        x, y, w, h = self.bbox(i)
        return x + w / 2, y + h / 2

    def colour(self, i: int) -> str:
        return str(self.attr(i, "colour", "none"))

    def colours(self, i: int) -> dict[str, float]:
        """Colour name -> fraction of the region (malformed entries skipped)."""
        out: dict[str, float] = {}
        for item in self.attr(i, "colours", []) or []:
            try:
                out[str(item[0])] = float(item[1])
            except (TypeError, ValueError, IndexError):
                continue
        return out

    def edge(self, pred: str, s: int, o: int) -> bool:
        return (s, o) in self.edges.get(pred, ())

    def role(self, i: int) -> str:
        """"object" / "support" / "background" (``Region.role`` where the scene sets it; else "object")."""
        return str(getattr(self.regions[i], "role", None) or "object")

    def direction(self, c: int, r: int, axis: str) -> int:
        """-1 / +1 when c is left of / right of r (axis 'x') or above / below r (axis 'y'); 0 neither.

        The relation graph decides neighbours (an inverse edge counts too); other pairs use the
        vocabulary's rule (:func:`gear_edge.vocabulary.direction`), the one describe applies."""
        lo, hi = ("left_of", "right_of") if axis == "x" else ("above", "below")
        if self.edge(lo, c, r) or self.edge(hi, r, c):
            return -1
        if self.edge(hi, c, r) or self.edge(lo, r, c):
            return 1
        return direction(self.bbox(c), self.bbox(r), self.centroid(c), self.centroid(r), axis)
