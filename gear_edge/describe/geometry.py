"""Exact region attributes and pairwise relations, computed from the masks and the image (no model).

``describe_regions(image, rles)`` returns one attribute dict per region (keys below) and a list of
``Relation`` s. Everything is derived from pixels, so text handed to the LLM never loses geometry.

Attributes (units: pixels of the original image unless stated):

* ``area_px`` int, ``area_frac`` float (of the image), ``bbox`` [x, y, w, h], ``centroid`` [x, y];
* ``position`` one of top-left / top / top-right / left / centre / right / bottom-left / bottom /
  bottom-right (3×3 grid of the centroid), ``position_h`` left|centre|right, ``position_v``
  top|middle|bottom;
* ``size_rank`` (1 = largest), ``size`` tiny (<0.5 %) / small (<3 %) / medium (<12 %) / large (<35 %) / huge;
* ``elongation`` ≥ 1 (sqrt of the 2nd-moment eigenvalue ratio), ``circularity`` 4π·A/P², ``solidity``
  A / convex-hull area, ``rectangularity`` A / min-area-rectangle area, ``holes`` (count),
  ``orientation_deg`` in [0, 180) (major axis; 0 = horizontal, counter-clockwise), ``vertices`` (corners
  of the outline's polygon approximation), ``straightness`` (outline fraction on straight sides: a box
  in perspective is straight-sided, square / rectangular, though no rectangle in the image), ``shape`` words from elongated / round / square / rectangular /
  triangular / irregular / has holes (``gear_edge.vocabulary.SHAPES``; thresholds in ``SHAPE_RULES``);
  measured on the region together with the smaller objects lying ``on_top_of`` it, within its bbox
  (a ball on a box leaves a hole in the box's pixels; the box is still rectangular), not with what
  lies ``inside`` its hole;
* ``colours`` [[name, fraction], ...] (≥ 0.15, by fraction), ``colour`` (dominant name);
* ``brightness`` mean L*/100, ``brightness_word`` dark|medium|bright;
* ``texture`` edge density inside the mask (0..1), ``texture_word`` plain|textured.

Words, size classes, shape thresholds and the direction rule come from :mod:`gear_edge.vocabulary`.

Relations (directed; each has its inverse): left_of/right_of, above/below, inside/contains,
touching, on_top_of/under, overlaps, occludes/occluded_by, same_colour_as, larger_than/smaller_than.

Support relations, when A lies within B's outline (holes filled): A is ``on_top_of`` B when it
overlaps B's own pixels (layered masks) or fills the hole of B it lies in (A hides B's face: a cup
on a box, anything on the table); A is ``inside`` B when that hole also shows what is behind B
(support or background seen through a ring's hole, another region's uncovered pixels). A on the
support is always ``on_top_of`` it. A region touching B along its own bottom quarter, above B, is
``on_top_of`` B too. With depth, :func:`refine_support_relations` re-decides the same pairs where
heights are clear: A clearly above B's top is ``on_top_of``; A reaching well below B's top (into a
container's opening) is ``inside``.
Directional, colour and size relations are only emitted between a region and its ``k_neighbours``
nearest regions (by bbox gap); containment, touching, on-top-of, overlap and occlusion are emitted
for every pair where they hold.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.crops import check_image
from gear_edge.describe.colours import colour_histograms
from gear_edge.errors import InputError
from gear_edge.types import RLE, Relation
from gear_edge.vocabulary import (
    BRIGHTNESS_RULES, COLOURS, DIRECTION_OVERLAP, LARGER_RATIO, MIN_COLOUR_FRAC, PREDICATES, SHAPE_RULES, TEXTURED_MIN,
    interval_overlap, position_cell, size_class,
)

SHAPE_SIDE = 96  # shape / texture are measured on the region's bbox crop scaled to at most this side
COLOUR_SAMPLES = 512  # at most this many pixels per region are colour-named
WORK_SIDE = 256  # pairwise relations are decided on masks sampled to at most this side
INSIDE_FRAC = 0.9  # A within B's outline when this fraction of A lies in B (holes of B filled)
ON_TOP_FILL = 0.7  # ... and on top of B (not inside) when A covers this much of the holes of B it lies in
SINK_M = 0.02  # with depth: A on B's face is inside B when its low points (5th percentile) are this far below B's top (95th)
OCCLUDE_HULL_FRAC = 0.5  # A occludes B when this fraction of A lies in B's convex hull ...
OCCLUDE_WRAP_FRAC = 0.3  # ... and B occupies this fraction of the ring just outside A


@dataclass
class _Work:
    """Per-region masks at the shared working resolution (k× sampled)."""

    mask: np.ndarray  # bool [h, w]
    filled: np.ndarray  # bool [h, w]: holes filled
    hull: np.ndarray  # bool [h, w]: convex hull
    dilated: np.ndarray  # bool [h, w]: dilated by 2 working pixels (contact test)
    interior: np.ndarray  # bool [h, w]: eroded by 1 working pixel (texture without the outline)
    box: tuple[int, int, int, int]  # working-res bbox x0, y0, x1, y1 (exclusive); (0,0,0,0) if empty


def _check_rles(rles: Sequence[RLE], h: int, w: int) -> list[RLE]:
    if not isinstance(rles, (list, tuple)):
        raise InputError(f"rles must be a list of RLE dicts, got {type(rles).__name__}")
    for i, r in enumerate(rles):
        if not isinstance(r, dict) or "size" not in r or "counts" not in r:
            raise InputError(f"region {i}: expected an RLE dict {{'size': [h, w], 'counts': ...}}, got {type(r).__name__}")
        if [int(r["size"][0]), int(r["size"][1])] != [h, w]:
            raise InputError(f"region {i}: mask size {list(r['size'])} does not match the image size [{h}, {w}]")
    return list(rles)


_position = position_cell


def _straightness(contour: np.ndarray, perimeter: float) -> float:
    """Fraction (0..1) of a closed outline (int32 [N, 1, 2]) on straight sides: sides of its polygon
    approximation (tolerance ``straight_epsilon`` of the perimeter) at least ``straight_side`` of it long."""
    if perimeter <= 0 or len(contour) < 3:
        return 0.0
    poly = cv2.approxPolyDP(contour, SHAPE_RULES["straight_epsilon"] * perimeter, True)[:, 0].astype(np.float64)
    sides = np.hypot(*(np.roll(poly, -1, axis=0) - poly).T)
    return float(min(1.0, sides[sides >= SHAPE_RULES["straight_side"] * perimeter].sum() / perimeter))


def _shape(crop: np.ndarray, mom: dict | None = None) -> dict:
    """Shape attributes (scale-free) of a bool bbox crop (``mom``: its ``cv2.moments`` if known)."""
    m8 = crop.view(np.uint8) if crop.dtype == np.bool_ else crop.astype(np.uint8)
    if mom is None:
        mom = cv2.moments(m8, binaryImage=True)
    area = mom["m00"]
    if area <= 0:
        return {"elongation": 1.0, "circularity": 0.0, "solidity": 0.0, "rectangularity": 0.0, "holes": 0,
                "orientation_deg": 0.0, "vertices": 0, "straightness": 0.0, "shape": []}
    mu20, mu02, mu11 = mom["mu20"] / area, mom["mu02"] / area, mom["mu11"] / area
    common = math.sqrt(max(0.0, ((mu20 - mu02) / 2) ** 2 + mu11**2))
    l1, l2 = (mu20 + mu02) / 2 + common, (mu20 + mu02) / 2 - common
    elongation = math.sqrt(l1 / l2) if l2 > 1e-9 else float(max(crop.shape))
    # image y points down: negate the angle so it reads counter-clockwise from the x axis
    orientation = (-math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02))) % 180.0
    contours, hierarchy = cv2.findContours(m8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    parents = hierarchy[0][:, 3].tolist() if contours else []
    outer = [c for c, parent in zip(contours, parents) if parent < 0]
    hole_areas = [cv2.contourArea(c) for c, parent in zip(contours, parents) if parent >= 0]
    min_hole = max(2.0, 0.002 * area)
    holes = sum(1 for a in hole_areas if a >= min_hole)
    perimeter = sum(cv2.arcLength(c, True) for c in outer)
    points = np.concatenate(outer) if outer else np.zeros((0, 1, 2), np.int32)
    vertices, straightness = 0, 0.0
    if outer:  # corners of the largest outline's polygon approximation (triangle evidence)
        big = max(outer, key=cv2.contourArea)
        big_p = cv2.arcLength(big, True)
        vertices = len(cv2.approxPolyDP(big, SHAPE_RULES["polygon_epsilon"] * big_p, True))
        straightness = _straightness(big, big_p)
    if len(points) >= 3:
        hull = cv2.convexHull(points)
        hull_area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True)
        (_, _), (rw, rh), _ = cv2.minAreaRect(points)
        rect_area = (rw + 1) * (rh + 1)
    else:
        hull_area = rect_area = area
    # solidity / rectangularity describe the outline: holes are counted separately, not as dents
    filled_area = area + sum(hole_areas)
    circularity = min(1.0, 4 * math.pi * filled_area / perimeter**2) if perimeter > 0 else 1.0
    solidity = min(1.0, filled_area / hull_area) if hull_area > 0 else 1.0
    rectangularity = min(1.0, filled_area / rect_area) if rect_area > 0 else 1.0
    words = []
    r = SHAPE_RULES
    if elongation >= r["elongated_min"]:
        words.append("elongated")
    elif elongation < r["squarish_max"] and rectangularity >= r["rect_min"]:
        words.append("square")
    elif rectangularity >= r["rect_min"]:
        words.append("rectangular")
    elif straightness >= r["straight_min"] and solidity >= r["solid_min"] and vertices >= 4:
        # straight-sided and convex: a box seen in perspective (its faces make a hexagon in the image)
        words.append("square" if elongation < r["squarish_max"] else "rectangular")
    elif elongation < r["squarish_max"] and solidity >= r["solid_min"] and r["round_rect_lo"] <= rectangularity < r["round_rect_hi"]:
        words.append("round")  # a disk fills pi/4 of its bounding square; perimeter is too noise-prone
    elif vertices == 3 and solidity >= r["solid_min"] and r["triangle_rect_lo"] <= rectangularity < r["triangle_rect_hi"]:
        words.append("triangular")  # a 3-corner polygon outline, convex, filling about half its rectangle
    if solidity < r["irregular_max"]:
        words.append("irregular")
    if holes:
        words.append("has holes")
    return {
        "elongation": round(elongation, 3),
        "circularity": round(circularity, 3),
        "solidity": round(solidity, 3),
        "rectangularity": round(rectangularity, 3),
        "holes": int(holes),
        "orientation_deg": round(orientation, 1),
        "vertices": int(vertices),
        "straightness": round(straightness, 3),
        "shape": words,
    }


def _edge_cells(image: np.ndarray, gh: int, gw: int, k: int) -> np.ndarray:
    """bool [gh, gw]: working cells holding a Canny edge of the image at twice the working
    resolution (one Canny for the whole image; OpenCV releases the GIL throughout)."""
    if gh == 0 or gw == 0:  # an image thinner than half a working cell
        return np.zeros((gh, gw), bool)
    half = max(1, k // 2)  # a 2x-working-resolution grey image, averaged over each sample's block
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)  # grey first: 1/3 of the resize work
    if half > 1:
        gray = cv2.resize(gray, (2 * gw, 2 * gh), interpolation=cv2.INTER_AREA)
    if gray.shape != (2 * gh, 2 * gw):
        gray = cv2.resize(gray, (2 * gw, 2 * gh), interpolation=cv2.INTER_LINEAR)
    edges = cv2.Canny(gray, 60, 150) > 0
    return edges.reshape(gh, 2, gw, 2).any(axis=(1, 3))


def _textures(cells: np.ndarray, works: list[_Work]) -> np.ndarray:
    """Edge density per region (0..1): the fraction of its interior working cells that hold an
    edge (``cells`` from :func:`_edge_cells`)."""
    if not works:
        return np.zeros(0)
    interiors = _pack([wk.interior for wk in works])
    inside = _popcount(interiors)
    hits = _popcount(interiors & _pack([cells])[0][None, :])
    return np.where(inside >= 4, hits / np.maximum(inside, 1), 0.0)


_HELPER: tuple[int, ThreadPoolExecutor] | None = None


def _helper() -> ThreadPoolExecutor:
    """A background thread for image work that is mostly GIL-free (OpenCV, large numpy ops) and
    overlaps the per-region Python loop; one per process (a forked child gets its own)."""
    global _HELPER
    if _HELPER is None or _HELPER[0] != os.getpid():
        _HELPER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="gear_edge-describe"))
    return _HELPER[1]


_K3 = np.ones((3, 3), np.uint8)
_K5 = np.ones((5, 5), np.uint8)


def _work_masks(m: np.ndarray) -> _Work:
    m8 = m.view(np.uint8)  # bool and uint8 share the layout: no copy
    bx, by, bw, bh = cv2.boundingRect(m8)
    if bw == 0:
        z = np.zeros_like(m)
        return _Work(m, z, z, z, z, (0, 0, 0, 0))
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(m8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    hull = np.zeros_like(m8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.concatenate(contours)), 1)
    dilated = cv2.dilate(m8, _K5).view(bool)  # 0/1 uint8 results viewed as bool
    interior = cv2.erode(m8, _K3, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)
    return _Work(m, filled.view(bool) | m, hull.view(bool) | m, dilated, interior, (bx, by, bx + bw, by + bh))


def _shape_windows(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop windows ``[x0, y0, x1, y1]`` (int64 ``[N, 4]``, image pixels) of bboxes ``[x, y, w, h]``
    (float ``[N, 4]``) and the sampling steps (int64 ``[N]``) that bring each window's longer side
    to at most ``SHAPE_SIDE``: where shape and texture are measured."""
    ib = np.floor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)).astype(np.int64)
    win = np.stack([ib[:, 0], ib[:, 1], ib[:, 0] + ib[:, 2], ib[:, 1] + ib[:, 3]], axis=1)
    steps = np.maximum(1, np.ceil(np.maximum(ib[:, 2], ib[:, 3]) / SHAPE_SIDE)).astype(np.int64)
    return win, steps


def region_attributes(image: np.ndarray, rles: Sequence[RLE]) -> tuple[list[dict], list[_Work], int]:
    """Per-region attribute dicts, the working-resolution masks and the sampling step k."""
    image = check_image(image)
    h, w = image.shape[:2]
    rles = _check_rles(rles, h, w)
    n = len(rles)
    if n == 0:
        return [], [], 1
    areas = np.asarray(gm.area(list(rles)), dtype=np.int64)
    boxes = np.asarray(gm.to_bbox(list(rles)), dtype=np.float64).reshape(n, 4)
    k = max(1, math.ceil(max(h, w) / WORK_SIDE))
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-areas, kind="stable")] = np.arange(1, n + 1)
    win, steps = _shape_windows(boxes)
    crops = gm.sample(rles, win, steps)  # bbox crops sampled to <= SHAPE_SIDE: no full-size decode
    grid = gm.sample(rles, np.tile([0, 0, w, h], (n, 1)), np.full(n, k), offset=k // 2)
    # the image's edge map (cvtColor, resize, Canny: ~2 ms at 1080p, all without the GIL) is computed
    # on a helper thread while this one builds the per-region work
    edge_job = _helper().submit(_edge_cells, image, *grid[0].shape, k)
    works = [_work_masks(g) for g in grid]
    attrs: list[dict] = []
    rng = np.random.default_rng(0)
    pixels: list[np.ndarray] = []  # colour samples of every region, named in one batch below
    owners: list[int] = []
    shape_todo: list[tuple[dict, np.ndarray, dict]] = []  # (attributes, crop, moments) measured after the loop
    # Python numbers once for the whole batch (numpy scalars one at a time cost more than the work)
    area_l, win_l, box_l, rank_l, step_l = areas.tolist(), win.tolist(), boxes.tolist(), rank.tolist(), steps.tolist()
    for i in range(n):
        area = area_l[i]
        x0, y0, x1, y1 = win_l[i]
        a: dict = {
            "area_px": area,
            "area_frac": round(area / (h * w), 6),
            "bbox": box_l[i],
            "size_rank": rank_l[i],
            "size": size_class(area / (h * w)),
        }
        attrs.append(a)
        if area == 0:
            a.update(centroid=[0.0, 0.0], position="centre", position_h="centre", position_v="middle",
                     **_shape(np.zeros((1, 1), bool)))
            continue
        step = step_l[i]
        mcrop = crops[i]
        mom = cv2.moments(mcrop.view(np.uint8), binaryImage=True)
        if mom["m00"] == 0:  # thinner than the sampling step: sample every pixel of the window
            step = 1
            mcrop = gm.sample([rles[i]], win[i : i + 1], 1)[0]
            mom = cv2.moments(mcrop.view(np.uint8), binaryImage=True)
        # the centroid from the crop's moments (exact integer sums, as the mean of the pixel indices)
        cx = float(x0 + step * (mom["m10"] / mom["m00"]) + 0.5)
        cy = float(y0 + step * (mom["m01"] / mom["m00"]) + 0.5)
        pos, ph, pv = _position(cx, cy, w, h)
        flat = np.flatnonzero(mcrop)
        if len(flat) > COLOUR_SAMPLES:
            flat = flat[rng.choice(len(flat), COLOUR_SAMPLES, replace=False)]
        ys, xs = np.divmod(flat, mcrop.shape[1])
        pixels.append(image[y0 + step * ys, x0 + step * xs])
        owners.append(i)
        a.update(centroid=[round(cx, 2), round(cy, 2)], position=pos, position_h=ph, position_v=pv)
        shape_todo.append((a, mcrop, mom))
    # colour naming (Lab conversion and nearest prototypes: large GIL-free array work) on the helper
    # thread while this one measures the shapes (OpenCV contours)
    colour_job = _helper().submit(colour_histograms, pixels, n_sets=len(pixels))
    for a, mcrop, mom in shape_todo:
        a.update(_shape(mcrop, mom))
    hists, brightness = colour_job.result()
    texture = _textures(edge_job.result(), works)
    named = dict(zip(owners, range(len(owners))))
    orders = np.argsort(-hists, axis=1, kind="stable").tolist()  # colour names by fraction, per region
    hist_l, bright_l, texture_l = hists.tolist(), brightness.tolist(), texture.tolist()
    for i, a in enumerate(attrs):
        if i not in named:
            a.update(colours=[], colour="none", brightness=0.0, brightness_word="dark", texture=0.0, texture_word="plain")
            continue
        r = named[i]
        hist, bright, order, tex = hist_l[r], bright_l[r], orders[r], texture_l[i]
        a.update(
            colours=[[COLOURS[c], round(hist[c], 3)] for c in order if hist[c] >= MIN_COLOUR_FRAC],
            colour=COLOURS[order[0]],
            brightness=round(bright, 3),
            brightness_word="dark" if bright < BRIGHTNESS_RULES["dark_max"] else (
                "bright" if bright > BRIGHTNESS_RULES["bright_min"] else "medium"),
            texture=round(tex, 3),
            texture_word="textured" if tex > TEXTURED_MIN else "plain",
        )
    return attrs, works, k


def _pack(masks: list[np.ndarray]) -> np.ndarray:
    """bool masks (same shape) -> uint64 [N, words] bit-packed rows."""
    flat = np.packbits(np.stack([m.reshape(-1) for m in masks]), axis=1)
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = np.pad(flat, ((0, 0), (0, pad)))
    return np.ascontiguousarray(flat).view(np.uint64)


def _popcount(words: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int64)
    return np.unpackbits(words.view(np.uint8), axis=-1).sum(axis=-1, dtype=np.int64)  # numpy < 2


def _pair_count(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """|a_i & b_j| for each index pair."""
    if len(i) == 0:
        return np.zeros(0, np.int64)
    return _popcount(a[i] & b[j])


_interval_overlap = interval_overlap


def _pair_window(wa: _Work, wb: _Work, pad: int) -> tuple[slice, slice] | None:
    ax0, ay0, ax1, ay1 = wa.box
    bx0, by0, bx1, by1 = wb.box
    x0, y0 = max(ax0, bx0 - pad) - pad, max(ay0, by0 - pad) - pad
    x1, y1 = min(ax1, bx1 + pad) + pad, min(ay1, by1 + pad) + pad
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(max(0, y0), y1), slice(max(0, x0), x1)


def _within(works: list[_Work], i: int, j: int, roles: Sequence[str] | None) -> str:
    """'on_top_of' or 'inside' for region i lying within region j's outline (module docstring)."""
    if roles is not None and roles[j] == "support":
        return "on_top_of"
    a, b = works[i], works[j]
    if (a.mask & b.mask).sum() >= 0.5 * max(1, a.mask.sum()):
        return "on_top_of"
    hole = (b.filled & ~b.mask).view(np.uint8)
    n, lab = cv2.connectedComponents(hole, connectivity=4)
    touched = np.unique(lab[a.mask & hole.view(bool)])
    touched = touched[touched > 0]
    if len(touched) == 0:
        return "on_top_of"
    comps = np.isin(lab, touched)
    rest = comps & ~a.mask
    if roles is None:
        shows = rest.sum()
    else:  # what the opening shows: support / background regions, or pixels no region claims
        behind = np.zeros_like(rest)
        claimed = np.zeros_like(rest)
        for k, wk in enumerate(works):
            if k in (i, j):
                continue
            claimed |= wk.mask
            if roles[k] != "object":
                behind |= wk.mask
        shows = (rest & (behind | ~claimed)).sum()
    return "inside" if shows > (1.0 - ON_TOP_FILL) * comps.sum() else "on_top_of"


def refine_support_relations(relations: list[Relation], spans: dict[int, tuple[float, float]]) -> list[Relation]:
    """Re-decides on_top_of / inside pairs by height where the heights are clear: ``spans`` maps a
    region id to the (low, high) heights (m) of its points above the support plane (5th / 95th
    percentile). A pair the masks call ``inside`` becomes ``on_top_of`` only when A is clearly above
    B's top (``low_A >= high_B + SINK_M``: a ring hides the lower part of what lies in its hole, so
    the seen part of it is often above the rim); one they call ``on_top_of`` becomes ``inside`` when A reaches clearly
    below B's top (``low_A < high_B - SINK_M``: the contents of a cup). Nothing rests inside the
    support or anything flat. Pairs without spans stay; inverses (under / contains) follow."""
    decided: dict[tuple[int, int], str] = {}
    for r in relations:
        if r.predicate in ("on_top_of", "inside") and r.subject in spans and r.object in spans:
            lo_a, hi_b = spans[r.subject][0], spans[r.object][1]
            if hi_b <= 0.01:  # the support (or anything flat): things rest on it
                decided[(r.subject, r.object)] = "on_top_of"
            elif r.predicate == "inside":  # the opening seen in the masks stands, unless A is clearly above B
                decided[(r.subject, r.object)] = "on_top_of" if lo_a >= hi_b + SINK_M else "inside"
            else:
                decided[(r.subject, r.object)] = "inside" if lo_a < hi_b - SINK_M else "on_top_of"
    if not decided:
        return relations
    inverse = {"on_top_of": "under", "inside": "contains"}
    out = [r for r in relations if not (
        (r.predicate in ("on_top_of", "inside") and (r.subject, r.object) in decided)
        or (r.predicate in ("under", "contains") and (r.object, r.subject) in decided))]
    for (a, b), pred in decided.items():
        out += [Relation(a, pred, b), Relation(b, inverse[pred], a)]
    order = {p: k for k, p in enumerate(PREDICATES)}
    return sorted(set(out), key=lambda t: (t.subject, order.get(t.predicate, 99), t.object))


def region_relations(attrs: list[dict], works: list[_Work], ids: Sequence[int], *, k_neighbours: int = 4,
                     roles: Sequence[str] | None = None) -> list[Relation]:
    """Pairwise relations between regions (see the module docstring); ``roles`` (one per region)
    let support relations tell what an opening shows."""
    n = len(attrs)
    rels: set[tuple[int, str, int]] = set()

    def add(i: int, pred: str, j: int, inverse: str | None = None) -> None:
        rels.add((ids[i], pred, ids[j]))
        rels.add((ids[j], inverse or pred, ids[i]))

    if n < 2:
        return []
    boxes = np.array([a["bbox"] for a in attrs], dtype=np.float64)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    gap_x = np.maximum(0, np.maximum(x0[:, None] - x1[None, :], x0[None, :] - x1[:, None]))
    gap_y = np.maximum(0, np.maximum(y0[:, None] - y1[None, :], y0[None, :] - y1[:, None]))
    cent = np.array([a["centroid"] for a in attrs], dtype=np.float64)
    dist = np.hypot(gap_x, gap_y) + 1e-3 * np.hypot(*(cent[:, None, :] - cent[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    near = np.zeros((n, n), dtype=bool)
    kk = min(k_neighbours, n - 1)
    if kk > 0:
        nn = np.argsort(dist, axis=1, kind="stable")[:, :kk]
        near[np.repeat(np.arange(n), kk), nn.ravel()] = True
    near |= near.T
    # Mask-level relations for every pair whose (padded) working boxes meet, from bit-packed masks.
    pad = 2  # working pixels of dilation for contact
    wb_ = np.array([wk.box for wk in works], dtype=np.int64).reshape(n, 4)
    nonempty = wb_[:, 2] > wb_[:, 0]
    meet = (
        (wb_[:, None, 0] - pad < wb_[None, :, 2] + pad)
        & (wb_[None, :, 0] - pad < wb_[:, None, 2] + pad)
        & (wb_[:, None, 1] - pad < wb_[None, :, 3] + pad)
        & (wb_[None, :, 1] - pad < wb_[:, None, 3] + pad)
        & nonempty[:, None]
        & nonempty[None, :]
    )
    pi, pj = np.nonzero(np.triu(meet, 1))
    packed = {name: _pack([getattr(wk, name) for wk in works]) for name in ("mask", "filled", "hull", "dilated")}
    counts = _popcount(packed["mask"])
    inter = _pair_count(packed["mask"], packed["mask"], pi, pj)
    i_in_j, j_in_i = _pair_count(packed["mask"], packed["filled"], pi, pj), _pair_count(packed["mask"], packed["filled"], pj, pi)
    touch = _pair_count(packed["dilated"], packed["mask"], pi, pj)
    rings = _popcount(packed["dilated"]) - counts  # pixels just outside each region
    touch_ij_b = touch  # b's pixels next to a
    touch_ji_a = _pair_count(packed["dilated"], packed["mask"], pj, pi)  # a's pixels next to b
    i_hull_j, j_hull_i = _pair_count(packed["mask"], packed["hull"], pi, pj), _pair_count(packed["mask"], packed["hull"], pj, pi)
    # Python ints for the loop (numpy scalar arithmetic costs more than the decisions themselves)
    counts, inter, touch, rings = counts.tolist(), inter.tolist(), touch.tolist(), rings.tolist()
    i_in_j, j_in_i, i_hull_j, j_hull_i = i_in_j.tolist(), j_in_i.tolist(), i_hull_j.tolist(), j_hull_i.tolist()
    touch_ij_b, touch_ji_a = touch, touch_ji_a.tolist()
    for q, (i, j) in enumerate(zip(pi.tolist(), pj.tolist())):
        a_in_b, b_in_a = i_in_j[q] / counts[i], j_in_i[q] / counts[j]
        if a_in_b >= INSIDE_FRAC and attrs[i]["area_px"] < attrs[j]["area_px"]:
            pred = _within(works, i, j, roles)
            add(i, pred, j, "contains" if pred == "inside" else "under")
            continue
        if b_in_a >= INSIDE_FRAC and attrs[j]["area_px"] < attrs[i]["area_px"]:
            pred = _within(works, j, i, roles)
            add(j, pred, i, "contains" if pred == "inside" else "under")
            continue
        if inter[q] > 0:
            add(i, "overlaps", j)
        if touch[q] == 0:
            continue
        add(i, "touching", j)
        # a smaller region standing on another's top face and rising above its outline (a ball on
        # a box seen from the side): a good part of it in the other's convex hull, its centroid higher
        for s_, t_, frac_in in ((i, j, i_hull_j[q] / counts[i]), (j, i, j_hull_i[q] / counts[j])):
            if (frac_in >= 0.35 and attrs[s_]["area_px"] < attrs[t_]["area_px"]
                    and attrs[s_]["centroid"][1] < attrs[t_]["centroid"][1]
                    and (roles is None or roles[t_] == "object")):
                add(s_, "on_top_of", t_, "under")
        win = _pair_window(works[i], works[j], pad)
        row0 = win[0].start
        for s_, t_ in ((i, j), (j, i)):
            bs, bt = works[s_].box, works[t_].box
            # s rests on t: s above t, t at least a bit wider than half of s and reaching below s, and
            # most of the contact along s's bottom quarter
            if not (
                attrs[s_]["centroid"][1] < attrs[t_]["centroid"][1]
                and bt[3] > bs[3]
                and (bt[2] - bt[0]) >= 0.6 * (bs[2] - bs[0])
                and _interval_overlap(bs[0], bs[2], bt[0], bt[2]) >= 0.5
            ):
                continue
            rows = (works[s_].dilated[win] & works[t_].mask[win]).sum(axis=1)
            band = max(0, bs[3] - max(1, (bs[3] - bs[1]) // 4) - row0)
            if rows.sum() > 0 and rows[band:].sum() >= 0.6 * rows.sum():
                add(s_, "on_top_of", t_, "under")
        if inter[q] == 0:
            # a occludes b: a lies in b's convex hull and b surrounds a good part of a's outline
            a_hull_b, b_hull_a = i_hull_j[q] / counts[i], j_hull_i[q] / counts[j]
            a_wrapped = touch_ij_b[q] / max(1, rings[i])
            b_wrapped = touch_ji_a[q] / max(1, rings[j])
            if a_hull_b >= OCCLUDE_HULL_FRAC and a_wrapped >= OCCLUDE_WRAP_FRAC and a_hull_b > b_hull_a:
                add(i, "occludes", j, "occluded_by")
            elif b_hull_a >= OCCLUDE_HULL_FRAC and b_wrapped >= OCCLUDE_WRAP_FRAC and b_hull_a > a_hull_b:
                add(j, "occludes", i, "occluded_by")
    ni, nj = np.nonzero(np.triu(near, 1))  # neighbour pairs i < j, row-major (the old double loop's order)
    x0, x1, y0, y1, cent = x0.tolist(), x1.tolist(), y0.tolist(), y1.tolist(), cent.tolist()
    for i, j in zip(ni.tolist(), nj.tolist()):
        a, b = attrs[i], attrs[j]
        if a["area_px"] == 0 or b["area_px"] == 0:
            continue
        # directional relations (the vocabulary's rule): centroid order, unless the boxes largely overlap on that axis
        if _interval_overlap(x0[i], x1[i], x0[j], x1[j]) < DIRECTION_OVERLAP:
            if cent[i][0] < cent[j][0]:
                add(i, "left_of", j, "right_of")
            else:
                add(j, "left_of", i, "right_of")
        if _interval_overlap(y0[i], y1[i], y0[j], y1[j]) < DIRECTION_OVERLAP:
            if cent[i][1] < cent[j][1]:
                add(i, "above", j, "below")
            else:
                add(j, "above", i, "below")
        if a["colour"] == b["colour"] and a["colour"] != "none":
            add(i, "same_colour_as", j)
        if a["area_px"] >= LARGER_RATIO * b["area_px"]:
            add(i, "larger_than", j, "smaller_than")
        elif b["area_px"] >= LARGER_RATIO * a["area_px"]:
            add(j, "larger_than", i, "smaller_than")
    order = {p: r for r, p in enumerate(PREDICATES)}
    return [Relation(s, p, o) for s, p, o in sorted(rels, key=lambda t: (t[0], order[t[1]], t[2]))]




def describe_regions(
    image: np.ndarray, rles: Sequence[RLE], *, ids: Sequence[int] | None = None, k_neighbours: int = 4,
    roles: Sequence[str] | None = None,
) -> tuple[list[dict], list[Relation]]:
    """Attributes per region and relations between regions (ids default to 0..N-1). ``roles``: one
    per region, or None to assign them here (:func:`gear_edge.describe.roles.assign_roles`)."""
    attrs, works, _ = region_attributes(image, rles)
    ids = list(range(len(attrs))) if ids is None else [int(i) for i in ids]
    if len(ids) != len(attrs):
        raise InputError(f"got {len(ids)} ids for {len(attrs)} regions")
    if len(set(ids)) != len(ids):
        raise InputError(f"region ids must be unique, got {ids}")
    if roles is None:
        from gear_edge.describe.roles import assign_roles

        roles = assign_roles(image, rles)
    if len(roles) != len(attrs):
        raise InputError(f"got {len(roles)} roles for {len(attrs)} regions")
    relations = region_relations(attrs, works, ids, k_neighbours=k_neighbours, roles=roles)
    _shapes_with_what_lies_on_them(attrs, list(rles), ids, roles, relations)  # rles: checked by region_attributes
    return attrs, relations


def _shapes_with_what_lies_on_them(attrs: list[dict], rles: list[RLE], ids: Sequence[int], roles: Sequence[str],
                                   relations: list[Relation]) -> None:
    """An object's shape attributes measured on its mask together with the smaller objects lying
    ``on_top_of`` it, within its bounding box: a ball on a box leaves a hole or a notch in the box's
    visible pixels, but the box is still rectangular. Things ``inside`` an object (a ball in a
    ring's hole) are not added: the hole is the ring's. In place on ``attrs``."""
    at = {rid: i for i, rid in enumerate(ids)}
    lying: dict[int, list[int]] = {}
    for r in relations:
        if r.predicate != "on_top_of" or r.subject not in at or r.object not in at:
            continue
        a, b = at[r.subject], at[r.object]
        if roles[a] == "object" and roles[b] == "object" and attrs[a]["area_px"] < attrs[b]["area_px"]:
            lying.setdefault(b, []).append(a)
    if not lying:
        return
    under = list(lying)
    win, steps = _shape_windows([attrs[b]["bbox"] for b in under])  # region_attributes' windows
    unions = [gm.merge([rles[b]] + [rles[a] for a in lying[b]]) for b in under]
    for b, crop in zip(under, gm.sample(unions, win, steps)):
        attrs[b].update(_shape(crop))
