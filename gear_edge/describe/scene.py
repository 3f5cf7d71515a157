"""The describe stage as one call: masks (+ image) → Scene with attributes, relations, OCR text, captions."""

from __future__ import annotations

import time
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

import gear_edge.masks as gm
from gear_edge.crops import check_image
from gear_edge.describe.geometry import describe_regions
from gear_edge.describe.roles import assign_roles
from gear_edge.errors import InputError
from gear_edge.types import RLE, ROLES, Region, Scene


@runtime_checkable
class TextReader(Protocol):
    """OCR: text boxes for an image (``gear_edge.describe.ocr.OcrReader``); words are assigned to
    regions by mask overlap. A reader may instead offer ``read_regions(image, rles)``."""

    def read(self, image: np.ndarray) -> list: ...


@runtime_checkable
class RegionCaptioner(Protocol):
    """One caption per region mask."""

    def caption(self, image: np.ndarray, rles: Sequence[RLE]) -> list[str]: ...


def _as_regions(image_hw: tuple[int, int], masks: Sequence[RLE] | Sequence[Region] | np.ndarray) -> list[Region]:
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3 or masks.shape[1:] != image_hw:
            raise InputError(f"masks must be bool [N, {image_hw[0]}, {image_hw[1]}] for this image, got shape {masks.shape}")
        masks = gm.encode(np.ascontiguousarray(masks.astype(bool, copy=False)))
    masks = list(masks)
    if masks and all(isinstance(m, Region) for m in masks):
        return [Region(**{**m.__dict__}) for m in masks]  # shallow copies: the caller's regions stay untouched
    if any(isinstance(m, Region) for m in masks):
        raise InputError("masks must be all Region objects or all RLE dicts, not a mix")
    if not masks:
        return []
    areas = gm.area(masks)
    boxes = gm.to_bbox(masks)
    return [Region(id=i, rle=m, bbox=tuple(float(v) for v in boxes[i]), area=int(areas[i])) for i, m in enumerate(masks)]


def describe_scene(
    image: np.ndarray,
    masks: Sequence[RLE] | Sequence[Region] | np.ndarray,
    *,
    ocr: TextReader | None = None,
    captioner: RegionCaptioner | None = None,
    k_neighbours: int = 4,
    roles: Sequence[str] | None = None,
    captions: str = "all",
) -> Scene:
    """Builds a Scene: exact attributes + relations + roles always; OCR text and captions when given.

    ``masks``: RLE dicts, bool ``[N, H, W]`` or Regions (ids, scores kept). ``roles``: one per region
    (e.g. from depth); None = :func:`gear_edge.describe.roles.assign_roles` from masks and colour.
    Timings (ms) per part go into ``scene.timings`` as ``describe.geometry`` / ``describe.roles`` /
    ``describe.ocr`` / ``describe.captions``. ``captions``: "all" captions every region now;
    "on_demand" attaches a :class:`~gear_edge.describe.captions.CaptionCache` instead, and
    ``scene.captions(ids)`` captions regions when a deducer first reads them.
    """
    if captions not in ("all", "on_demand"):
        raise InputError(f"captions must be 'all' or 'on_demand', got {captions!r}")
    image = check_image(image)
    h, w = image.shape[:2]
    regions = _as_regions((h, w), masks)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rles = [r.rle for r in regions]
    if roles is None:
        roles = assign_roles(image, rles)
    elif len(roles) != len(regions):
        raise InputError(f"got {len(roles)} roles for {len(regions)} regions")
    for r, role in zip(regions, roles):
        if role not in ROLES:
            raise InputError(f"region {r.id}: role must be one of {list(ROLES)}, got {role!r}")
        r.role = role
    timings["describe.roles"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    attrs, relations = describe_regions(image, rles, ids=[r.id for r in regions], k_neighbours=k_neighbours, roles=list(roles))
    timings["describe.geometry"] = (time.perf_counter() - t0) * 1e3
    for r, a in zip(regions, attrs):
        r.attributes = a
    if ocr is not None and regions:
        t0 = time.perf_counter()
        rles = [r.rle for r in regions]
        if hasattr(ocr, "read_regions"):
            texts = ocr.read_regions(image, rles)
        else:  # an OcrReader: read the image once, assign words to regions by mask overlap
            from gear_edge.describe.ocr import assign_text

            texts = assign_text(ocr.read(image), rles)
        timings["describe.ocr"] = (time.perf_counter() - t0) * 1e3
        for r, t in zip(regions, texts):
            r.text = list(t)
    scene = Scene(image_size=(h, w), regions=regions, relations=relations, timings=timings)
    if captioner is not None:
        from gear_edge.describe.captions import CaptionCache

        scene.caption_source = CaptionCache(image, captioner)
        if captions == "all":
            scene.captions()
    return scene
