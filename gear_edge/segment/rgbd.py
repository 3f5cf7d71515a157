"""RGB-D perception: support plane, objects standing on it, and 3D attributes of every region.

Steps (:func:`segment_rgbd`), all numpy/OpenCV (Open3D is not used: see docs/ARCHITECTURE.md):

1. **Support plane**: RANSAC (:func:`gear_edge.camera.fit_plane_ransac`) on a sub-sampled point
   cloud, preferring the largest plane whose normal faces the camera; its inliers' footprint (convex
   hull in plane coordinates) is the support's extent.
2. **Objects**: pixels standing more than ``above_m`` above the plane, cut at depth edges (a depth
   jump between neighbouring pixels), form connected clusters; a cluster whose footprint lies off
   the support (a wall, a person) or that rises higher than ``max_height_m`` is background.
3. **Colour within a cluster**: the colour segmenter's segments split a cluster into touching
   objects of different colours, but a segment the cluster encloses and that is flush with its
   surround (a printed label, a logo, a highlight) or one of the same chromaticity (a differently
   lit face) stays part of its object.
4. **Flat objects**: colour segments lying on the plane other than the support's own (a coin, a
   sheet of paper, anything lower than ``above_m``) are objects too.
5. **Holes and edges** (missing depth, the cut pixels) take the label of the nearest labelled pixel.
6. Everything left on the plane is the ``support`` region; below / beyond it ``background``.

:func:`region_geometry` gives any masks (caller masks, SAM2) their :class:`~gear_edge.types.Geometry3D`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.camera import (
    CameraIntrinsics, as_intrinsics, backproject, depth_to_metres, fit_plane_ransac, oriented_box, plane_frame, point_grid,
)
from gear_edge.describe.geometry import refine_support_relations
from gear_edge.describe.roles import roles_from_depth
from gear_edge.errors import InputError
from gear_edge.types import Geometry3D, Region, Scene

MAX_POINTS = 4000  # points per region used for its 3D box
FLAT_OBJECT_FRAC = 0.05  # caller masks: an on-plane region smaller than this that colour calls an object stays one


@dataclass
class RgbdParams:
    """Thresholds in metres / pixels (see the module docstring)."""

    plane_threshold_m: float = 0.012
    above_m: float = 0.012
    edge_jump_m: float = 0.015  # depth jump between neighbours that cuts clusters (plus 2 % of z)
    max_height_m: float = 0.6
    min_object_px: int = 110  # a 16 px ball keeps ~110-150 px once its outline is cut at depth edges
    chroma_merge: float = 0.035  # rg-chromaticity distance under which two segments of a cluster are one object
    enclosed_frac: float = 0.8  # a segment is enclosed when the cluster's other pixels hold this much of its ring
    flush_m: float = 0.01  # ... and merges into its surround when their median heights differ less than this
    flat_light_ratio: float = 1.15  # a flat segment of the support's chroma, no lighter than this x it, is support
    base_m: float = 0.02  # a segment whose lowest pixels are higher than this does not stand on the support


def fit_support_plane(depth_m: np.ndarray, intrinsics: CameraIntrinsics, *, step: int = 4,
                      threshold: float = 0.012, seed: int = 0) -> np.ndarray | None:
    """(a, b, c, d) of the support plane (unit normal towards the camera) or None. Tries up to three
    planes (largest first) and keeps the first whose normal faces the camera within 75 degrees of
    the viewing ray through its inliers' centre (a table seen from above, not a wall seen edge-on)."""
    pts = backproject(depth_m, intrinsics, step=step)
    if len(pts) < 50:
        return None
    rest = pts
    for attempt in range(3):
        fit = fit_plane_ransac(rest, threshold=threshold, iterations=256, seed=seed + attempt,
                               min_inliers=max(50, len(pts) // 20))
        if fit is None:
            return None
        plane, inl = fit
        c = rest[inl].mean(axis=0)
        cosang = float(plane[:3] @ (-c / np.linalg.norm(c)))
        if cosang >= np.cos(np.radians(75)):
            return plane
        rest = rest[~inl]
    return None


def height_map(depth_m: np.ndarray, intrinsics: CameraIntrinsics, plane: np.ndarray) -> np.ndarray:
    """float32 [H, W] signed height above the plane (m; NaN where depth is missing)."""
    p = point_grid(depth_m, intrinsics)
    return (p @ plane[:3].astype(np.float32) + np.float32(plane[3])).astype(np.float32)


def depth_edges(depth_m: np.ndarray, jump_m: float) -> np.ndarray:
    """bool [H, W]: pixels with a 4-neighbour whose depth differs by more than jump_m + 2 % of z."""
    z = np.nan_to_num(depth_m, nan=0.0)
    e = np.zeros(z.shape, bool)
    lim = jump_m + 0.02 * z
    dx = np.abs(np.diff(z, axis=1)) > np.minimum(lim[:, 1:], lim[:, :-1])
    dy = np.abs(np.diff(z, axis=0)) > np.minimum(lim[1:], lim[:-1])
    e[:, 1:] |= dx
    e[:, :-1] |= dx
    e[1:] |= dy
    e[:-1] |= dy
    return e


def _footprint_hull(depth_m, intrinsics, plane, hgt, threshold) -> tuple[np.ndarray, np.ndarray] | None:
    """(rotation into plane coordinates, convex hull [K, 1, 2] float32 of the support's inliers)."""
    step = 4
    on = np.abs(hgt[::step, ::step]) <= threshold
    d = np.where(on, depth_m[::step, ::step], np.nan)
    ys, xs = np.nonzero(np.isfinite(d))
    if len(ys) < 10:
        return None
    z = d[ys, xs]
    pts = np.stack([(xs * step - intrinsics.cx) * z / intrinsics.fx, (ys * step - intrinsics.cy) * z / intrinsics.fy, z], 1)
    rot = plane_frame(tuple(plane))
    uv = (pts @ rot)[:, :2].astype(np.float32)
    return rot, cv2.convexHull(uv)


def _on_support(points: np.ndarray, rot: np.ndarray, hull: np.ndarray) -> float:
    """Fraction of the points whose projection onto the plane lies in the support's hull (5 cm slack)."""
    if len(points) == 0:
        return 0.0
    sub = points[:: max(1, len(points) // 150)]
    uv = (sub @ rot)[:, :2]
    inside = [cv2.pointPolygonTest(hull, (float(u), float(v)), True) >= -0.05 for u, v in uv]
    return float(np.mean(inside))


def _median(v: np.ndarray) -> float:
    """Median of the finite values (NaN when none: comparisons with it are False)."""
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def _chroma(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.float32)
    return rgb[..., :2] / np.maximum(rgb.sum(-1, keepdims=True), 1.0)


def _merge(into: list, g: list) -> None:
    """Group ``g`` ([mask, count, chroma]) into ``into``: masks united, counts added, chroma weighted."""
    into[0] |= g[0]
    into[2] = (into[2] * into[1] + g[2] * g[1]) / (into[1] + g[1])
    into[1] += g[1]


def _join_faces(groups: list[list], chroma_merge: float, gap_px: int = 3) -> list[list]:
    """Groups ([mask, count, chroma]) of one depth cluster with the same chromaticity and pixels at
    most ``gap_px`` apart (chessboard distance; a rim of ``gap_px - 1`` pixels between them) joined:
    the lit top and shaded side of a cylinder, split by a dark rim whose pixels colour gave to
    something else. (Touching objects of one colour are in different clusters: a depth edge cuts them.)"""
    kernel = np.ones((2 * gap_px + 1, 2 * gap_px + 1), np.uint8)
    joined = True
    while joined and len(groups) > 1:
        joined = False
        for a in range(len(groups)):
            grown = cv2.dilate(groups[a][0].view(np.uint8), kernel).view(bool)
            for b in range(a + 1, len(groups)):
                ga, gb = groups[a], groups[b]
                if np.hypot(*(ga[2] - gb[2])) <= chroma_merge and (grown & gb[0]).any():
                    _merge(ga, gb)
                    del groups[b]
                    joined = True
                    break
            if joined:
                break
    return groups


def _join_raised_faces(groups: list[list], hgt: np.ndarray, base_m: float, flush_m: float,
                       gap_px: int = 3) -> list[list]:
    """Groups of one depth cluster that neither reach down to the support (their lowest 2 % of
    pixels higher than ``base_m``) nor stand above a touching group's top (their 95th-percentile
    height at most ``flush_m`` over its 98th) joined into that group: a black cylinder's grey top,
    a label at a box's edge, the other face of a box lying on another box. A thing of its own in
    the cluster either stands on the support (side by side) or rises above what it lies on.
    ``hgt``: float [h, w] heights above the support (m) in the groups' window."""
    kernel = np.ones((2 * gap_px + 1, 2 * gap_px + 1), np.uint8)

    def q(g: list, p: float) -> float:
        v = hgt[g[0]]
        v = v[np.isfinite(v)]
        return float(np.quantile(v, p)) if v.size else float("nan")

    joined = True
    while joined and len(groups) > 1:
        joined = False
        for a in sorted(range(len(groups)), key=lambda i: groups[i][1]):
            g = groups[a]
            lo, hi = q(g, 0.02), q(g, 0.95)
            if not lo > base_m:
                continue
            grown = cv2.dilate(g[0].view(np.uint8), kernel).view(bool)
            hosts = [b for b in range(len(groups)) if b != a and (grown & groups[b][0]).any()
                     and hi <= q(groups[b], 0.98) + flush_m]
            if hosts:
                b = max(hosts, key=lambda i: (grown & groups[i][0]).sum())
                _merge(groups[b], g)
                del groups[a]
                joined = True
                break
    return groups


def _is_wall(points: np.ndarray, rot: np.ndarray, thin_m: float = 0.015) -> bool:
    """True when the points (camera frame, m) project onto the plane as a thin line: a wall or
    backdrop standing at the table's edge (thinner than ``thin_m`` across, 10x longer than thick)."""
    if len(points) < 20:
        return False
    uv = (points[:: max(1, len(points) // 2000)] @ rot)[:, :2]
    sd = np.sqrt(np.linalg.eigvalsh(np.cov(uv.T)))
    return bool(sd[0] < thin_m and sd[1] > 10 * sd[0])


def segment_rgbd(image: np.ndarray, depth_m: np.ndarray, intrinsics: CameraIntrinsics, colour_labels: np.ndarray,
                 params: RgbdParams | None = None) -> tuple[list[np.ndarray], list[str], np.ndarray | None]:
    """(bool [H, W] masks, roles, support plane or None) from registered colour + depth.

    ``colour_labels``: int [H, W] colour segments (``ClassicalSegmenter.labels``). Without a plane
    (no surface facing the camera) the colour segments are returned as objects."""
    prm = params or RgbdParams()
    h, w = depth_m.shape
    plane = fit_support_plane(depth_m, intrinsics, threshold=prm.plane_threshold_m)
    if plane is None:
        return [colour_labels == k for k in np.unique(colour_labels)], [], None
    hgt = height_map(depth_m, intrinsics, plane)
    valid = np.isfinite(hgt)
    fp = _footprint_hull(depth_m, intrinsics, plane, hgt, prm.plane_threshold_m)
    edges = depth_edges(depth_m, prm.edge_jump_m)
    above = valid & (hgt > prm.above_m) & ~edges
    n, lab = cv2.connectedComponents(above.view(np.uint8), connectivity=4)
    pts_all = point_grid(depth_m, intrinsics)
    chroma = _chroma(image)
    final = np.full((h, w), -1, np.int32)  # -1 unknown, 0 support, 1 background, 2.. objects
    final[valid & (np.abs(hgt) <= prm.plane_threshold_m)] = 0
    final[valid & (hgt < -prm.plane_threshold_m)] = 1
    stats_n = np.bincount(lab.ravel(), minlength=n)
    next_id = 2
    for c in range(1, n):
        if stats_n[c] < prm.min_object_px:
            continue
        cm = lab == c
        ys, xs = np.nonzero(cm)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        pts = pts_all[ys, xs]
        top = float(np.quantile(hgt[ys, xs], 0.98))
        if top > prm.max_height_m or (fp is not None and (_on_support(pts, *fp) < 0.5 or _is_wall(pts, fp[0]))):
            final[cm] = 1
            continue
        # split by colour segments; enclosed / same-chroma segments stay with their neighbour
        win = (slice(y0, y1), slice(x0, x1))
        cw = cm[win]
        segs = colour_labels[win]
        ids, counts = np.unique(segs[cw], return_counts=True)
        pieces = []
        for sid, cnt in zip(ids.tolist(), counts.tolist()):
            pm = cw & (segs == sid)
            pieces.append([pm, cnt, chroma[win][pm].mean(0)])
        pieces.sort(key=lambda p: -p[1])
        groups: list[list] = []  # [mask, count, chroma]
        for pm, cnt, ch in pieces:
            ring = cv2.dilate(pm.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~pm
            inner = (ring & cw).sum() / max(1, ring.sum())
            target = None
            if groups:
                touching = [g for g in groups if (ring & g[0]).any()]
                same = [g for g in touching if np.hypot(*(g[2] - ch)) <= prm.chroma_merge]
                if same:  # a differently lit face of the same object
                    target = max(same, key=lambda g: (ring & g[0]).sum())
                elif cnt < prm.min_object_px or inner >= prm.enclosed_frac:
                    pool = touching or groups
                    target = max(pool, key=lambda g: (ring & g[0]).sum())
                    # an enclosed piece flush with its surround is print on it; one standing higher
                    # or sunk lower is a thing of its own (a ball in a ring's hole, a cup's contents)
                    hw_ = hgt[win]
                    if cnt >= prm.min_object_px and abs(_median(hw_[pm]) - _median(hw_[ring & target[0]])) > prm.flush_m:
                        target = None
            if target is None:
                groups.append([pm.copy(), cnt, ch])
            else:
                _merge(target, [pm, cnt, ch])
        groups = _join_faces(groups, prm.chroma_merge)
        groups = _join_raised_faces(groups, hgt[win], prm.base_m, prm.flush_m)
        for g in groups:
            if g[1] < prm.min_object_px:
                continue
            sub = final[win]
            sub[g[0]] = next_id
            next_id += 1
    # flat things on the support (a coin, a sheet of paper, a pen lower than ``above_m``): colour
    # segments lying mostly on the plane, other than the support's own segment, are objects too
    on = final == 0
    seg_on = np.bincount(colour_labels[on].ravel(), minlength=int(colour_labels.max()) + 1)
    if seg_on.any():
        seg_valid = np.bincount(colour_labels[valid].ravel(), minlength=len(seg_on))
        support_seg = int(np.argmax(seg_on))
        sup_px = on & (colour_labels == support_seg)
        sup_chroma, sup_light = chroma[sup_px].mean(0), float(image[sup_px].mean())
        for c in np.flatnonzero(seg_on >= prm.min_object_px).tolist():
            if c != support_seg and seg_on[c] >= 0.6 * seg_valid[c] and seg_on[c] < 0.2 * h * w:
                px = on & (colour_labels == c)
                # a cast shadow or a plank of the support: its chromaticity, no lighter than it
                if (np.hypot(*(chroma[px].mean(0) - sup_chroma)) <= prm.chroma_merge
                        and float(image[px].mean()) <= prm.flat_light_ratio * sup_light):
                    continue
                final[px] = next_id
                next_id += 1
    # unknown pixels (holes, cut edges, small clusters): the nearest labelled pixel's label
    unknown = final < 0
    if unknown.any() and (~unknown).any():
        _, idx = cv2.distanceTransformWithLabels(unknown.view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
        src = np.flatnonzero(~unknown.ravel())
        # labels are numbered over the zero (known) pixels in raster order
        lut = np.zeros(idx.max() + 1, np.int32)
        known_idx = idx.ravel()[src]
        lut[known_idx] = final.ravel()[src]
        final[unknown] = lut[idx[unknown]]
    masks, roles = [], []
    for k in range(2, next_id):
        m = final == k
        if m.sum() >= prm.min_object_px:
            masks.append(m)
            roles.append("object")
    sup = final == 0
    if sup.any():
        masks.append(sup)
        roles.append("support")
    bg = (final == 1).view(np.uint8)
    if bg.any():
        nb, bl = cv2.connectedComponents(bg, connectivity=8)
        for b in range(1, nb):
            m = bl == b
            if m.sum() >= 0.01 * h * w:
                masks.append(m)
                roles.append("background")
    return masks, roles, plane


def prepare_depth(depth, intrinsics, image_hw: tuple[int, int], scale: float | None = None
                  ) -> tuple[np.ndarray, CameraIntrinsics]:
    """Validated (float32 [H, W] metres with NaN holes, CameraIntrinsics); both or neither must be given."""
    if depth is None or intrinsics is None:
        raise InputError("depth and intrinsics go together: pass both (intrinsics as a 3x3 K or "
                         "CameraInfo's 9-list k), or neither")
    return depth_to_metres(depth, image_hw, scale=scale), as_intrinsics(intrinsics)


def region_heights(regions: list[Region], depth_m: np.ndarray, intrinsics: CameraIntrinsics,
                   plane: np.ndarray | None) -> list[np.ndarray]:
    """Per region, float64 [n] heights (m) above the plane of its valid-depth pixels (sub-sampled to
    at most ~MAX_POINTS); empty arrays without a plane."""
    if plane is None:
        return [np.zeros(0) for _ in regions]
    hmap = height_map(depth_m, intrinsics, plane)
    out = []
    for r in regions:
        m = gm.decode(r.rle) & np.isfinite(hmap)
        step = max(1, int(np.sqrt(m.sum() / MAX_POINTS)))
        out.append(hmap[::step, ::step][m[::step, ::step]].astype(np.float64))
    return out


def region_geometry(regions: list[Region], depth_m: np.ndarray, intrinsics: CameraIntrinsics,
                    plane: np.ndarray | None, heights: list[np.ndarray] | None = None,
                    stacked: set[int] | None = None) -> list[Geometry3D | None]:
    """Per region its Geometry3D (None with fewer than 4 valid depth pixels). Objects' boxes stand
    on the plane (their tops and fronts are all depth sees) unless their id is in ``stacked`` (they
    lie on another object) or they float above it; the support's and the background's are the
    principal-axes boxes of their points."""
    heights = heights if heights is not None else region_heights(regions, depth_m, intrinsics, plane)
    out: list[Geometry3D | None] = []
    valid = np.isfinite(depth_m)
    for r, hg in zip(regions, heights):
        m = gm.decode(r.rle)
        n_valid = int((m & valid).sum())
        step = max(1, int(np.sqrt(n_valid / MAX_POINTS)))
        pts = backproject(depth_m, intrinsics, m, step=step)
        is_object = r.role == "object"
        box = None
        if len(pts) >= 4:
            box = oriented_box(pts, tuple(plane) if (plane is not None and is_object) else None,
                               extend_to_plane=r.id not in (stacked or set()))
        if box is None:
            out.append(None)
            continue
        top = None
        if plane is not None and len(hg):
            top = round(max(0.0, float(np.quantile(hg, 0.98))), 4) if is_object else (0.0 if r.role == "support" else round(float(np.median(hg)), 4))
        c = box.center
        out.append(Geometry3D(c, box, round(float(np.linalg.norm(c)), 4), top, n_valid))
    return out


def attach_3d(scene: Scene, depth_m: np.ndarray, intrinsics: CameraIntrinsics, plane: np.ndarray | None = None,
              *, roles_from_depth_too: bool = True) -> None:
    """Gives a described scene its 3D: the support plane (fitted when not given), roles from depth
    (when ``roles_from_depth_too`` and a plane exists), each region's Geometry3D, the attributes
    ``height_m`` (an object's own height: its box along the plane normal), ``top_above_support_m``
    and ``distance_m`` (camera to centroid), and support relations decided by height
    (``gear_edge.describe.geometry.refine_support_relations``)."""
    if plane is None:
        plane = fit_support_plane(depth_m, intrinsics)
    heights = region_heights(scene.regions, depth_m, intrinsics, plane)
    if plane is not None and roles_from_depth_too:
        h, w = scene.image_size
        for r, role in zip(scene.regions, roles_from_depth(heights)):
            # a small region on the plane that colour calls an object is a flat object (a coin, a sheet)
            if not (role == "support" and r.role == "object" and r.area < FLAT_OBJECT_FRAC * h * w):
                r.role = role
    if plane is not None:
        scene.support_plane = tuple(float(v) for v in plane)  # type: ignore[assignment]
        spans = {r.id: (float(np.quantile(h, 0.05)), float(np.quantile(h, 0.95))) for r, h in zip(scene.regions, heights) if len(h) >= 5}
        scene.relations = refine_support_relations(scene.relations, spans)
    objects = {r.id for r in scene.regions if r.role == "object"}
    stacked = {rel.subject for rel in scene.relations if rel.predicate == "on_top_of" and rel.object in objects}
    geos = region_geometry(scene.regions, depth_m, intrinsics, plane, heights, stacked)
    for r, g in zip(scene.regions, geos):
        r.geometry_3d = g
        if g is not None:
            r.attributes["distance_m"] = g.distance_m
            if g.height_above_support_m is not None:
                r.attributes["top_above_support_m"] = g.height_above_support_m
                # its own height: the box's extent along the plane normal (a ball lying on a box is
                # as tall as the ball, though its top is higher than the box's)
                r.attributes["height_m"] = round(g.box.size[2], 4) if r.role == "object" else 0.0
