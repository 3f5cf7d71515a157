"""Region roles — ``object``, ``support`` or ``background`` — as a post-pass over any segmenter's masks.

The rule the deducer follows (``gear_edge.deduce.program.executor``): queries range over regions
whose role is ``object`` — superlatives, ordinals, counts, "everything", and the reference sets of
relations — unless the query names the support ("the table", "the surface") or the background
("the wall", "the floor"), which then ranges over those roles.

Evidence, from masks and colour alone (:func:`assign_roles`):

* **support**: the large region that *hosts* the others — it touches the image border, and the other
  regions lie in its outline (its holes) or against it. Its fragments (other planks, the table seen
  through a ring's hole, shadow rims) are support too: regions of the support's colour (or its
  chromaticity, darker but not black: at least ``SHADOW_MIN_L`` of its lightness) that touch the
  support or fill a hole of another region, and outline rims
  (a holed region against the support, smaller than the object filling its hole: the segmenter's
  shaded edge between them).
* **background**: large regions not in the support's outline that run along the image's top edge
  above the support (walls, the floor behind the table) or along a long stretch of the image
  border (the floor in front of the table).
  A host that what it hosts reaches below (in the image) is a backdrop they stand in front of:
  ``background``, and the scene has no support.
* **object**: everything else.

With depth (:func:`roles_from_depth`) the evidence is geometric: support = points on the fitted
plane, object = standing above it, background = below / beyond it.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.types import RLE

GRID_SIDE = 160  # roles are decided on masks sampled to at most this side
MIN_SUPPORT_FRAC = 0.06  # a support covers at least this fraction of the image
HOST_RING = 0.4  # region j rests against i when i holds this much of the ring around j
SUPPORT_DE = 14.0  # Lab distance within which a fragment has the support's colour
SHADOW_CHROMA = 0.03  # rg-chromaticity distance of a darker region that reads as the support in shadow
SHADOW_MIN_L = 0.45  # ... and at least this fraction of the support's L*: a black object is darker than any shadow
MIN_BACKGROUND_FRAC = 0.04
RIM_AGAINST = 0.5  # an outline rim around an object lies this much against the support
BEHIND_BOTTOM = 0.05  # a host ending this much (unit height) above the lowest of its hosted regions is a backdrop
BACKGROUND_BORDER = 0.15  # ... or any such region running along this fraction of the image border (floor in front)
ABOVE_PLANE_M = 0.012  # depth: an object's points stand at least this far above the support plane
ON_PLANE_M = 0.012  # depth: a support point lies within this distance of the plane


def _grid(rles: Sequence[RLE], h: int, w: int) -> tuple[np.ndarray, int]:
    k = max(1, math.ceil(max(h, w) / GRID_SIDE))
    n = len(rles)
    g = gm.sample(list(rles), np.tile([0, 0, w, h], (n, 1)), np.full(n, k), offset=k // 2)
    return np.stack(g) if n else np.zeros((0, 1, 1), bool), k


def _mean_colours(image: np.ndarray, grid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per region: mean Lab (float64 [N, 3], L 0..100) and rg chromaticity [N, 2] of its sampled pixels."""
    gh, gw = grid.shape[1:]
    ys = np.minimum(np.arange(gh) * k + k // 2, image.shape[0] - 1)
    xs = np.minimum(np.arange(gw) * k + k // 2, image.shape[1] - 1)
    small = np.ascontiguousarray(image[ys][:, xs])
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)
    rgb = small.reshape(-1, 3).astype(np.float64)
    chrom = rgb[:, :2] / np.maximum(rgb.sum(1, keepdims=True), 1.0)
    flat = grid.reshape(len(grid), -1).astype(np.float64)
    cnt = np.maximum(flat.sum(1, keepdims=True), 1.0)
    return flat @ lab / cnt, flat @ chrom / cnt


def region_context(grid: np.ndarray) -> dict[str, np.ndarray]:
    """Pairwise evidence on sampled masks [N, gh, gw]: ``ring[i, j]`` fraction of the ring just
    outside j that i covers; ``in_hole[i, j]`` fraction of j lying in i's holes; ``border[i]``
    fraction of the image border i covers, ``top``/``bottom``/``cy`` [N] its top / bottom row and
    mean row (unit), ``top_cover`` [N] the fraction of the image's top row it covers."""
    n, gh, gw = grid.shape
    ring = np.zeros((n, n))
    in_hole = np.zeros((n, n))
    border = np.zeros(n)
    top, bottom = np.ones(n), np.zeros(n)
    top_cover = grid[:, 0, :].mean(axis=1) if gh else np.zeros(n)
    cy = np.zeros(n)
    flat = grid.reshape(n, -1)
    k3 = np.ones((3, 3), np.uint8)
    edge = np.zeros((gh, gw), bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    sizes = flat.sum(1)
    for j in range(n):
        m8 = grid[j].view(np.uint8)
        if sizes[j] == 0:
            continue
        rows = np.flatnonzero(grid[j].any(1))
        top[j], bottom[j] = rows[0] / gh, (rows[-1] + 1) / gh
        cy[j] = np.nonzero(grid[j])[0].mean() / gh
        border[j] = (grid[j] & edge).sum() / edge.sum()
        r = (cv2.dilate(m8, k3).view(bool) & ~grid[j]).reshape(-1)
        if r.any():
            ring[:, j] = flat[:, r].sum(1) / r.sum()
        contours, _ = cv2.findContours(m8.copy(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        filled = np.zeros_like(m8)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        holes = (filled.view(bool) & ~grid[j]).reshape(-1)
        if holes.any():
            in_hole[j, :] = flat[:, holes].sum(1) / np.maximum(sizes, 1)
    np.fill_diagonal(ring, 0)
    np.fill_diagonal(in_hole, 0)
    return {"ring": ring, "in_hole": in_hole, "border": border, "top": top, "bottom": bottom, "sizes": sizes,
            "top_cover": top_cover, "cy": cy}


def assign_roles(image: np.ndarray, rles: Sequence[RLE]) -> list[str]:
    """One role per region (see the module docstring) from the masks and the image (uint8 RGB)."""
    n = len(rles)
    if n == 0:
        return []
    h, w = image.shape[:2]
    grid, k = _grid(rles, h, w)
    ctx = region_context(grid)
    lab, chrom = _mean_colours(image, grid, k)
    frac = ctx["sizes"] / max(1, grid.shape[1] * grid.shape[2])
    ring, in_hole, border = ctx["ring"], ctx["in_hole"], ctx["border"]
    roles = ["object"] * n
    # the support: the large border-touching region that the most other regions rest against / in
    hosted = ((ring >= HOST_RING) | (in_hole >= 0.5)) & (frac[:, None] > frac[None, :])
    score = hosted.sum(1) + 4 * frac + 2 * border
    cand = [i for i in range(n) if frac[i] >= MIN_SUPPORT_FRAC and border[i] > 0.02 and (hosted[i].any() or frac[i] >= 0.3)]
    if not cand:
        return roles
    s = max(cand, key=lambda i: (score[i], frac[i]))
    hosted_bottom = [ctx["bottom"][j] for j in np.flatnonzero(hosted[s]) if border[j] < 0.02]  # things, not the floor
    if hosted_bottom and ctx["bottom"][s] < max(hosted_bottom) - BEHIND_BOTTOM:
        # what it hosts reaches below it in the image: they stand in front of it (a portrait's
        # backdrop, a wall), not on it; no support then
        roles[s] = "background"
        return roles
    roles[s] = "support"
    support = {s}
    # fragments of the support: its colour (or its chromaticity, darker: shadow) against it or in a hole
    changed = True
    while changed:
        changed = False
        for j in range(n):
            if roles[j] != "object":
                continue
            against = sum(ring[i, j] for i in support)
            in_other_hole = any(in_hole[i, j] >= 0.8 for i in range(n) if i not in support and roles[i] == "object")
            ref = max(support, key=lambda i: frac[i])
            near_colour = float(np.linalg.norm(lab[j] - lab[ref])) <= SUPPORT_DE
            # a shadow: the support's chromaticity, darker, lying against the support *and* against
            # the object casting it (a dark object alone on a grey table is not one)
            by_object = sum(ring[i, j] for i in range(n) if i not in support and roles[i] == "object")
            shadow = (SHADOW_MIN_L * lab[ref][0] <= lab[j][0] < lab[ref][0] - 3
                      and float(np.hypot(*(chrom[j] - chrom[ref]))) <= SHADOW_CHROMA and by_object >= 0.1)
            # a rim: a thin outline around an object, smaller than what fills its hole, lying against
            # the support (the segmenter's anti-aliased / shaded edge between them), not a thing
            rim = against >= RIM_AGAINST and any(in_hole[j, i] >= 0.8 and frac[j] < frac[i] and roles[i] == "object"
                                                 for i in range(n) if i != j and i not in support)
            if (near_colour and (against >= 0.3 or in_other_hole)) or (shadow and against >= 0.5 and frac[j] < frac[ref]) \
                    or rim:
                roles[j] = "support"
                support.add(j)
                changed = True
    # background: large regions along the image's top edge beyond the support (walls, the floor
    # behind the table) that do not lie in its outline
    s_cy = float(np.average([ctx["cy"][i] for i in support], weights=[frac[i] for i in support]))
    for j in range(n):
        if roles[j] != "object" or frac[j] < MIN_BACKGROUND_FRAC or any(in_hole[i, j] >= 0.5 for i in support):
            continue
        if (ctx["top_cover"][j] >= 0.3 and ctx["cy"][j] < s_cy) or border[j] >= BACKGROUND_BORDER:
            roles[j] = "background"
    return roles


def roles_from_depth(heights: Sequence[np.ndarray]) -> list[str]:
    """Roles from each region's point heights above the support plane (metres, valid points only):
    ``support`` when most points lie on the plane, ``object`` when a good part stands above it,
    ``background`` when most lie below / beyond it; ``object`` for a region without valid depth."""
    roles = []
    for hgt in heights:
        hgt = np.asarray(hgt, np.float64)
        if hgt.size < 5:
            roles.append("object")
            continue
        above = float((hgt > ABOVE_PLANE_M).mean())
        on = float((np.abs(hgt) <= ON_PLANE_M).mean())
        below = float((hgt < -3 * ON_PLANE_M).mean())
        if above >= 0.3:
            roles.append("object")
        elif on >= 0.5:
            roles.append("support")
        elif below >= 0.5:
            roles.append("background")
        else:
            roles.append("object")
    return roles
