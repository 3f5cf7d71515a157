"""Plain data types passed between stages: Region, Relation, Scene, LogicStep, Answer (JSON-able).

Conventions: masks are COCO RLE dicts ``{"size": [h, w], "counts": str}``; boxes are XYWH floats in
pixels; times are milliseconds; region ids are small non-negative ints, unique within a Scene.
3D quantities are in metres in the camera optical frame (x right, y down, z forward: the frame of
``sensor_msgs/CameraInfo``), present only when ``perceive`` was given depth and intrinsics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from gear_edge.errors import InputError

RLE = dict  # {"size": [h, w], "counts": str}

ROLES = ("object", "support", "background")
"""Region roles: ``object`` (a thing a robot may be asked for), ``support`` (the surface objects rest
on: the table top, a shelf) or ``background`` (walls, floor beyond reach, anything else behind).
Deduction ranges over ``object`` regions unless the query names the support or the background."""


def _numbers(v, n: int, what: str, layout: str = "") -> tuple[float, ...]:
    """``v`` as a tuple of exactly ``n`` floats, else InputError naming ``what`` (``layout``: e.g. ' [a, b, c, d]')."""
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be {n} numbers{layout}, got {v!r}") from None
    if len(out) != n:
        raise InputError(f"{what} must be {n} numbers{layout}, got {len(out)}")
    return out


def _vec3(v, what: str) -> tuple[float, float, float]:
    return _numbers(v, 3, what)  # type: ignore[return-value]


@dataclass(frozen=True)
class Box3D:
    """An oriented 3D box in the camera optical frame (metres).

    ``rotation`` is a 3x3 rotation matrix (row-major nested tuples) whose columns are the box's axes
    in camera coordinates; ``size`` is the full extent along those columns. A point p of the box
    satisfies ``|R^T (p - center)| <= size / 2`` component-wise. When a support plane is known the
    third column is the plane's upward normal (so ``size[2]`` is the height).
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"center": list(self.center), "size": list(self.size), "rotation": [list(r) for r in self.rotation]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Box3D":
        if not isinstance(d, dict):
            raise InputError(f"box_3d must be a dict with center/size/rotation, got {type(d).__name__}")
        try:
            rot = d["rotation"]
            if len(rot) != 3:
                raise InputError(f"box_3d.rotation must be 3x3, got {len(rot)} rows")
            return cls(_vec3(d["center"], "box_3d.center"), _vec3(d["size"], "box_3d.size"),
                       tuple(_vec3(r, "box_3d.rotation row") for r in rot))  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise InputError(f"box_3d: malformed ({exc!r})") from None

    def corners(self):
        """float64 [8, 3] corner points (camera frame, metres)."""
        import numpy as np

        r = np.asarray(self.rotation, np.float64)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
        return np.asarray(self.center) + (signs * (np.asarray(self.size) / 2)) @ r.T


@dataclass(frozen=True)
class Geometry3D:
    """A region's 3D attributes from depth (camera optical frame, metres).

    ``centroid_m``: centre of the region's 3D box (robust to depth noise, the points' trimmed extent);
    ``box``: its oriented 3D box; ``distance_m``: |centroid_m| from the camera centre;
    ``height_above_support_m``: highest point above the support plane (None without a plane, 0 for the
    support itself); ``n_points``: valid depth pixels it was measured from (holes excluded).
    """

    centroid_m: tuple[float, float, float]
    box: Box3D
    distance_m: float
    height_above_support_m: float | None = None
    n_points: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"centroid_m": list(self.centroid_m), "box": self.box.to_dict(), "distance_m": self.distance_m,
                "height_above_support_m": self.height_above_support_m, "n_points": self.n_points}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Geometry3D":
        if not isinstance(d, dict):
            raise InputError(f"geometry_3d must be a dict, got {type(d).__name__}")
        try:
            h = d.get("height_above_support_m")
            return cls(_vec3(d["centroid_m"], "geometry_3d.centroid_m"), Box3D.from_dict(d["box"]),
                       float(d["distance_m"]), None if h is None else float(h), int(d.get("n_points", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"geometry_3d: malformed ({exc!r})") from None


@dataclass
class Region:
    """One segment of a scene.

    ``attributes`` holds the exact, mask-derived attributes (see ``gear_edge.describe.geometry``);
    ``caption`` the captioner's text (None without a captioner); ``text`` the OCR strings read inside it;
    ``role`` one of :data:`ROLES` (``gear_edge.describe.roles`` assigns it for every segmenter);
    ``geometry_3d`` its 3D attributes when the scene was perceived with depth, else None.
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
    role: str = "object"
    geometry_3d: Geometry3D | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bbox"] = [float(v) for v in self.bbox]
        d["geometry_3d"] = None if self.geometry_3d is None else self.geometry_3d.to_dict()
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
                role=_role(d.get("role", "object"), d.get("id", "?")),
                geometry_3d=None if d.get("geometry_3d") is None else Geometry3D.from_dict(d["geometry_3d"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"region {d.get('id', '?') if isinstance(d, dict) else '?'}: malformed ({exc!r})") from None


def _role(role: Any, rid: Any) -> str:
    if role not in ROLES:
        raise InputError(f"region {rid}: role must be one of {list(ROLES)}, got {role!r}")
    return str(role)


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
    """Everything perceived in one image: regions, their relations, timings (ms per stage).

    ``support_plane``: (a, b, c, d) of the support surface ``a x + b y + c z + d = 0`` in the camera
    optical frame (metres), (a, b, c) a unit normal pointing from the surface towards the camera;
    None when perceived without depth.
    """

    image_size: tuple[int, int]  # (h, w)
    regions: list[Region]
    relations: list[Relation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    support_plane: tuple[float, float, float, float] | None = None
    # computes missing captions on request (gear_edge.describe.captions.CaptionCache); not serialised
    caption_source: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [r.id for r in self.regions]
        if len(set(ids)) != len(ids):
            raise InputError(f"scene region ids must be unique, got {ids}")

    def captions(self, ids: Sequence[int] | None = None) -> dict[int, str | None]:
        """``{id: caption}`` of regions ``ids`` (all when None). With a ``caption_source`` the regions
        without a caption are captioned now (once; the caption stays on the Region) and
        ``timings["describe.captions"]`` / ``meta["captions"]`` count what it did."""
        if ids is None:
            regs = list(self.regions)
        else:
            by_id = {r.id: r for r in self.regions}
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise InputError(f"no region with id(s) {missing} in this scene (ids: {sorted(by_id)})")
            regs = [by_id[i] for i in ids]
        src = self.caption_source
        if src is not None and src.fill(regs):
            self.timings["describe.captions"] = src.ms
            self.meta["captions"] = src.stats()
        return {r.id: r.caption for r in regs}

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
            "support_plane": None if self.support_plane is None else [float(v) for v in self.support_plane],
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
        plane = d.get("support_plane")
        if plane is not None:
            plane = _numbers(plane, 4, "scene support_plane", " [a, b, c, d]")
        return cls(
            image_size=(int(h), int(w)),
            regions=[Region.from_dict(r) for r in d["regions"]],
            relations=rels,
            timings=dict(d.get("timings") or {}),
            meta=dict(d.get("meta") or {}),
            support_plane=plane,  # type: ignore[arg-type]
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
    """The result of a query: target ids, their merged mask, the logic chain and accounting.

    ``centroid_3d`` / ``box_3d``: where the target(s) are in the camera optical frame (metres), from
    the targets' :class:`Geometry3D` (point-weighted mean centroid; one box enclosing all targets'
    boxes); None without depth or without a target. Filled by ``GearSeg.ask`` (:func:`targets_3d`).
    """

    query: str
    targets: list[int]
    steps: list[LogicStep]
    mask: RLE | None = None  # union of the targets' masks; None when there is no target
    mode: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    centroid_3d: tuple[float, float, float] | None = None
    box_3d: Box3D | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. "engines": {"embedder.minilm": [providers]}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centroid_3d"] = None if self.centroid_3d is None else [float(v) for v in self.centroid_3d]
        d["box_3d"] = None if self.box_3d is None else self.box_3d.to_dict()
        return d

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
                centroid_3d=None if d.get("centroid_3d") is None else _vec3(d["centroid_3d"], "answer centroid_3d"),
                box_3d=None if d.get("box_3d") is None else Box3D.from_dict(d["box_3d"]),
                meta=dict(d.get("meta") or {}),
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


def targets_3d(scene: Scene, targets: list[int]) -> tuple[tuple[float, float, float] | None, Box3D | None]:
    """(centroid_3d, box_3d) of ``targets`` from their regions' Geometry3D (see :class:`Answer`).

    One target: its centroid and box. Several: the centroids' mean weighted by valid points, and the
    box in the first target's axes enclosing every target box's corners. (None, None) when no target
    has 3D attributes.
    """
    import numpy as np

    geos = [scene.region(t).geometry_3d for t in targets if t in scene.ids]
    geos = [g for g in geos if g is not None]
    if not geos:
        return None, None
    if len(geos) == 1:
        return geos[0].centroid_m, geos[0].box
    wts = np.array([max(1, g.n_points) for g in geos], np.float64)
    cen = (np.array([g.centroid_m for g in geos]) * wts[:, None]).sum(0) / wts.sum()
    rot = np.asarray(geos[0].box.rotation, np.float64)
    local = np.concatenate([g.box.corners() for g in geos]) @ rot  # corners in the first box's axes
    lo, hi = local.min(0), local.max(0)
    center = rot @ ((lo + hi) / 2)
    box = Box3D(tuple(float(v) for v in center), tuple(float(v) for v in hi - lo), geos[0].box.rotation)  # type: ignore[arg-type]
    return tuple(float(v) for v in cen), box  # type: ignore[return-value]
