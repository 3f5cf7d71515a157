"""Plain data types passed between stages: Region, Relation, Scene, LogicStep, Answer (JSON-able).

Conventions: masks are COCO RLE dicts ``{"size": [h, w], "counts": str}``; boxes are XYWH floats in
pixels; times are milliseconds; region ids are small non-negative ints, unique within a Scene.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from gear_edge.errors import InputError

RLE = dict  # {"size": [h, w], "counts": str}


@dataclass
class Region:
    """One segment of a scene.

    ``attributes`` holds the exact, mask-derived attributes (see ``gear_edge.describe.geometry``);
    ``caption`` the captioner's text (None without a captioner); ``text`` the OCR strings read inside it.
    """

    id: int
    rle: RLE
    bbox: tuple[float, float, float, float]
    area: int
    score: float | None = None  # predicted IoU (segmenter) or caller-given confidence
    stability: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    caption: str | None = None
    text: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bbox"] = [float(v) for v in self.bbox]
        return d

    def bitmap(self):
        """bool [H, W] mask (decoded on demand)."""
        import gear_edge.masks as gm

        return gm.decode(self.rle)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Region":
        try:
            return cls(
                id=int(d["id"]),
                rle={"size": [int(d["rle"]["size"][0]), int(d["rle"]["size"][1])], "counts": d["rle"]["counts"]},
                bbox=tuple(float(v) for v in d["bbox"]),  # type: ignore[arg-type]
                area=int(d["area"]),
                score=None if d.get("score") is None else float(d["score"]),
                stability=None if d.get("stability") is None else float(d["stability"]),
                attributes=dict(d.get("attributes") or {}),
                caption=d.get("caption"),
                text=list(d.get("text") or []),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"region {d.get('id', '?') if isinstance(d, dict) else '?'}: malformed ({exc!r})") from None


@dataclass(frozen=True)
class Relation:
    """``subject`` <predicate> ``object`` between two region ids, e.g. (3, 'on_top_of', 1)."""

    subject: int
    predicate: str
    object: int

    def to_list(self) -> list:
        return [self.subject, self.predicate, self.object]


@dataclass
class Scene:
    """Everything perceived in one image: regions, their relations, timings (ms per stage)."""

    image_size: tuple[int, int]  # (h, w)
    regions: list[Region]
    relations: list[Relation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [r.id for r in self.regions]
        if len(set(ids)) != len(ids):
            raise InputError(f"scene region ids must be unique, got {ids}")

    def region(self, rid: int) -> Region:
        for r in self.regions:
            if r.id == rid:
                return r
        raise InputError(f"no region with id {rid} in this scene (ids: {[r.id for r in self.regions]})")

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.regions]

    def relations_of(self, rid: int) -> list[Relation]:
        return [rel for rel in self.relations if rel.subject == rid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size),
            "regions": [r.to_dict() for r in self.regions],
            "relations": [rel.to_list() for rel in self.relations],
            "timings": dict(self.timings),
            "meta": dict(self.meta),
        }

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        if not isinstance(d, dict) or "regions" not in d or "image_size" not in d:
            raise InputError("a scene must be a dict with 'image_size' and 'regions'")
        rels = []
        for i, rel in enumerate(d.get("relations") or []):
            if not (isinstance(rel, (list, tuple)) and len(rel) == 3):
                raise InputError(f"scene relation {i} must be [subject, predicate, object], got {rel!r}")
            rels.append(Relation(int(rel[0]), str(rel[1]), int(rel[2])))
        h, w = d["image_size"]
        return cls(
            image_size=(int(h), int(w)),
            regions=[Region.from_dict(r) for r in d["regions"]],
            relations=rels,
            timings=dict(d.get("timings") or {}),
            meta=dict(d.get("meta") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> "Scene":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(f"scene JSON is malformed: {exc}") from None


@dataclass
class LogicStep:
    """One step of the reasoning chain: what was done and which region ids it kept."""

    text: str
    kept: list[int] | None = None


@dataclass
class Answer:
    """The result of a query: target ids, their merged mask, the logic chain and accounting."""

    query: str
    targets: list[int]
    steps: list[LogicStep]
    mask: RLE | None = None  # union of the targets' masks; None when there is no target
    mode: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Answer":
        try:
            return cls(
                query=str(d["query"]),
                targets=[int(t) for t in d["targets"]],
                steps=[LogicStep(str(s["text"]), None if s.get("kept") is None else [int(k) for k in s["kept"]]) for s in d["steps"]],
                mask=d.get("mask"),
                mode=str(d.get("mode", "")),
                prompt_tokens=int(d.get("prompt_tokens", 0)),
                completion_tokens=int(d.get("completion_tokens", 0)),
                timings=dict(d.get("timings") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"answer: malformed ({exc!r})") from None

    def bitmap(self, image_size: tuple[int, int] | None = None):
        """bool [H, W] union of the targets' masks; all False (needs ``image_size``) when there is none."""
        import numpy as np

        import gear_edge.masks as gm

        if self.mask is not None:
            return gm.decode(self.mask)
        if image_size is None:
            raise InputError("this answer has no target mask; pass image_size=(h, w) for an empty bitmap")
        return np.zeros(tuple(image_size), dtype=bool)
