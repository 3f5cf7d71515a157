"""A small ray-caster for synthetic robot-camera tabletop scenes with exact masks and rendered depth.

World frame: the table top is the plane z = 0 (z up, metres). A pinhole camera (optical frame x
right, y down, z forward) looks down at the table from ``cam_height`` with a pitch ``pitch_deg``
below the horizontal. Primitives: boxes (yawed), vertical cylinders (solid, or open-top hollow:
cups / rings with a hole), spheres. Shading: Lambert + ambient, cast shadows from one directional
light, table textures (wood grain, stone, linen), printed labels warped onto box tops. Depth is
the ray's camera-frame z (NaN where the ray escapes), later made sensor-like by :func:`sensor_depth`.

Everything a benchmark needs comes back in :class:`Render`: uint8 RGB, float32 depth (m), per-pixel
primitive ids (-1 floor / wall / nothing, 0 table, 1.. objects), the intrinsics and the table plane
in camera coordinates, and each object's true centre / box in camera coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

W, H = 640, 480


@dataclass
class Prim:
    kind: str  # box | cylinder | ring (hollow, no bottom) | cup (hollow, open top) | sphere
    center: tuple[float, float, float]  # world (x, y, z) of the solid's centre, metres
    size: tuple[float, float, float]  # box: (sx, sy, sz); cylinder/ring/cup: (r, r, height); sphere: (r, r, r)
    rgb: tuple[int, int, int]
    yaw: float = 0.0  # box yaw about z (rad)
    inner: float = 0.0  # ring / cup: inner radius
    label: str | None = None  # text printed on a box top
    name: str = ""


@dataclass
class Render:
    image: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] metres (NaN: no surface)
    ids: np.ndarray  # int32 [H, W]: -1 nothing / floor / wall, 0 table, k>0 object prims[k-1]
    K: np.ndarray  # float64 [3, 3]
    plane_cam: np.ndarray  # (a, b, c, d) table plane in camera coordinates, normal towards the camera
    centers_cam: list[np.ndarray] = field(default_factory=list)  # per object, true solid centre (camera)
    R_cw: np.ndarray | None = None  # world -> camera rotation
    t_cw: np.ndarray | None = None
    label_masks: dict[int, np.ndarray] = field(default_factory=dict)  # object index -> bool label pixels


def camera(cam_height: float, pitch_deg: float, dist_back: float, fx: float = 525.0):
    """(K, R_wc camera->world rotation, camera origin in world)."""
    K = np.array([[fx, 0, (W - 1) / 2], [0, fx, (H - 1) / 2], [0, 0, 1.0]])
    p = math.radians(pitch_deg)
    # camera axes in world: x_c = world +x; z_c (forward) = (0, cos p, -sin p); y_c = z_c x x_c
    xc = np.array([1.0, 0, 0])
    zc = np.array([0, math.cos(p), -math.sin(p)])
    yc = np.cross(zc, xc)
    R_wc = np.stack([xc, yc, zc], axis=1)
    origin = np.array([0.0, -dist_back, cam_height])
    return K, R_wc, origin


def _hit_box(o, d, p: Prim):
    c, yaw = np.asarray(p.center), p.yaw
    cz, sz = math.cos(-yaw), math.sin(-yaw)
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    lo_ = (o - c) @ Rz.T
    ld = d @ Rz.T
    half = np.asarray(p.size) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - lo_) / ld, (half - lo_) / ld
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tn, tf = np.nanmax(tmin, axis=1), np.nanmin(tmax, axis=1)
    t = np.where((tn <= tf) & (tn > 1e-6), tn, np.inf)
    axis = np.nanargmax(tmin, axis=1)
    sign = -np.sign(np.take_along_axis(ld, axis[:, None], 1)[:, 0])
    nl = np.zeros_like(o if o.ndim == 2 else d)
    nl[np.arange(len(nl)), axis] = sign
    return t, nl @ Rz  # normal back to world


def _hit_cyl(o, d, p: Prim):
    c = np.asarray(p.center)
    r, hgt = p.size[0], p.size[2]
    z0, z1 = c[2] - hgt / 2, c[2] + hgt / 2
    ox, oy = o[..., 0] - c[0], o[..., 1] - c[1]
    dx, dy = d[:, 0], d[:, 1]
    best = np.full(len(d), np.inf)
    nrm = np.zeros((len(d), 3))
    aa = dx * dx + dy * dy + 1e-12
    for rad, outer in ((r, True), (p.inner, False)):
        if rad <= 0:
            continue
        bb = 2 * (ox * dx + oy * dy)
        cc = ox * ox + oy * oy - rad * rad
        disc = bb * bb - 4 * aa * cc
        sq = np.sqrt(np.maximum(disc, 0))
        for t in ((-bb - sq) / (2 * aa), (-bb + sq) / (2 * aa)):
            z = o[..., 2] + t * d[:, 2]
            ok = (disc >= 0) & (t > 1e-6) & (z >= z0) & (z <= z1) & (t < best)
            px, py = ox + t * dx, oy + t * dy
            n = np.stack([px, py, np.zeros_like(px)], 1) / rad * (1 if outer else -1)
            best = np.where(ok, t, best)
            nrm[ok] = n[ok]
    # caps: top (annulus for hollow, z1) and, for solids, the bottom is on the table (not visible)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (z1 - o[..., 2]) / d[:, 2]
    px, py = ox + t * dx, oy + t * dy
    rr = px * px + py * py
    ok = (t > 1e-6) & (rr <= r * r) & (rr >= p.inner * p.inner) & (t < best)
    best = np.where(ok, t, best)
    nrm[ok] = [0, 0, 1]
    if p.kind == "cup":  # a cup's inside bottom (a ring has none: the table shows through)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (z0 + 0.008 - o[..., 2]) / d[:, 2]
        px, py = ox + t * dx, oy + t * dy
        ok = (t > 1e-6) & (px * px + py * py <= p.inner**2) & (t < best)
        best = np.where(ok, t, best)
        nrm[ok] = [0, 0, 1]
    return best, nrm


def _hit_sphere(o, d, p: Prim):
    c = np.asarray(p.center)
    r = p.size[0]
    oc = o - c
    bb = 2 * (oc * d).sum(-1)
    aa = (d * d).sum(-1)
    cc = (oc * oc).sum(-1) - r * r
    disc = bb * bb - 4 * aa * cc
    t = (-bb - np.sqrt(np.maximum(disc, 0))) / (2 * aa)
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    pts = o + t[:, None] * d
    return t, (pts - c) / r


def _hit(o, d, p: Prim):
    if p.kind == "box":
        return _hit_box(o, d, p)
    if p.kind in ("cylinder", "ring", "cup"):
        return _hit_cyl(o, d, p)
    return _hit_sphere(o, d, p)


def _table_texture(kind: str, xw: np.ndarray, yw: np.ndarray, base: np.ndarray, rng) -> np.ndarray:
    if kind == "wood":
        plank = np.floor(xw / 0.12)
        grain = np.sin(yw * 90 + 6 * np.sin(xw * 7 + plank * 2.1)) * 0.07
        tone = 1 + 0.08 * np.sin(plank * 12.9898) + grain
        seams = (np.abs(xw / 0.12 - np.round(xw / 0.12)) < 0.025) * -0.25
        f = tone + seams
    elif kind == "stone":
        f = 1 + 0.10 * np.sin(xw * 41 + 3 * np.sin(yw * 23)) * np.sin(yw * 37 + 2 * np.cos(xw * 19))
    else:  # linen
        f = 1 + 0.05 * np.sin(xw * 900) * np.sin(yw * 900) + 0.04 * np.sin(yw * 300 + xw * 5)
    return base[None, :] * f[:, None]


def render(prims: list[Prim], *, cam_height=0.8, pitch_deg=55.0, dist_back=0.35, table=(1.6, 1.4),
           table_rgb=(150, 110, 70), table_kind="wood", wall_rgb=(200, 200, 190), floor_rgb=(90, 90, 100),
           light=(0.4, -0.3, 1.0), ambient=0.45, seed=0) -> Render:
    """Ray-casts the scene (table centred at world (0, ty, 0), ty from the camera pose); see the module doc."""
    rng = np.random.default_rng(seed)
    K, R_wc, origin = camera(cam_height, pitch_deg, dist_back)
    uu, vv = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    dc = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1).reshape(-1, 3)
    dw = dc @ R_wc.T
    n = len(dw)
    o = np.broadcast_to(origin, (n, 3))
    best = np.full(n, np.inf)
    ids = np.full(n, -1, np.int32)
    normal = np.zeros((n, 3))
    # table top z = 0 within its extent; a floor at z = -0.75 and a wall at y = table far edge + 0.3
    tw, tdep = table
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / dw[:, 2]
    px, py = origin[0] + t * dw[:, 0], origin[1] + t * dw[:, 1]
    ok = (t > 0) & (np.abs(px) <= tw / 2) & (py >= -0.2) & (py <= tdep - 0.2)
    best[ok], ids[ok], normal[ok] = t[ok], 0, [0, 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-0.75 - origin[2]) / dw[:, 2]
    ok = (t > 0) & (t < best)
    best[ok], ids[ok], normal[ok] = t[ok], -1, [0, 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (tdep + 0.1 - origin[1]) / dw[:, 1]
    ok = (t > 0) & (t < best)
    best[ok], ids[ok], normal[ok] = t[ok], -2, [0, -1, 0]
    for k, p in enumerate(prims):
        t, nr = _hit(o, dw, p)
        ok = t < best
        best[ok], ids[ok], normal[ok] = t[ok], k + 1, nr[ok]
    hit = np.isfinite(best)
    pts = origin + best[:, None] * dw
    # shadows: from each visible point towards the light
    L = np.asarray(light, np.float64)
    L /= np.linalg.norm(L)
    shadow = np.zeros(n, bool)
    so = pts + 1e-4 * normal
    sd = np.broadcast_to(L, (n, 3)).copy()
    for k, p in enumerate(prims):
        t, _ = _hit(so, sd, p)
        shadow |= np.isfinite(t) & (ids != k + 1)
    lam = np.clip((normal * L).sum(1), 0, 1) * np.where(shadow, 0.25, 1.0)
    shade = ambient + (1 - ambient) * lam
    col = np.zeros((n, 3))
    tab = ids == 0
    col[tab] = _table_texture(table_kind, pts[tab, 0], pts[tab, 1], np.asarray(table_rgb, np.float64), rng)
    col[ids == -1] = floor_rgb
    col[ids == -2] = wall_rgb
    for k, p in enumerate(prims):
        col[ids == k + 1] = p.rgb
    img = np.clip(col * shade[:, None], 0, 255).reshape(H, W, 3)
    ids2 = ids.reshape(H, W)
    # labels: text printed on box tops, warped from a flat texture onto the projected top face
    R_cw = R_wc.T
    t_cw = -R_cw @ origin
    label_masks = {}
    for k, p in enumerate(prims):
        if p.kind != "box" or not p.label or p.label.startswith("__"):
            continue
        sx, sy, sz = p.size
        cx_, cy_, cz_ = p.center
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        corners = []
        for ux, uy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            lx, ly = ux * sx * 0.4, uy * sy * 0.3
            corners.append([cx_ + c * lx - s * ly, cy_ + s * lx + c * ly, cz_ + sz / 2])
        pc = (np.asarray(corners) @ R_cw.T) + t_cw
        uv = (pc @ K.T)[:, :2] / pc[:, 2:3]
        tex = np.full((60, 200, 3), 245, np.uint8)
        cv2.putText(tex, p.label, (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (20, 20, 20), 3, cv2.LINE_AA)
        M = cv2.getPerspectiveTransform(np.float32([[0, 59], [199, 59], [199, 0], [0, 0]]), uv.astype(np.float32))
        warped = cv2.warpPerspective(tex, M, (W, H), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        cover = cv2.warpPerspective(np.full((60, 200), 255, np.uint8), M, (W, H)) > 128
        top = (ids2 == k + 1) & (normal.reshape(H, W, 3)[..., 2] > 0.9)
        m = cover & top
        sh = shade.reshape(H, W)[m][:, None]
        img[m] = np.clip(warped[m].astype(np.float64) * sh, 0, 255)
        label_masks[k] = m
    img = img.astype(np.uint8)
    depth = (pts @ R_cw.T + t_cw)[:, 2]
    depth = np.where(hit, depth, np.nan).astype(np.float32).reshape(H, W)
    nrm_c = R_cw @ np.array([0, 0, 1.0])  # the table's up normal in camera coordinates
    plane_cam = np.array([*nrm_c, -float(nrm_c @ t_cw)])  # n . q + d = 0 for camera points q on z = 0
    centers = [R_cw @ np.asarray(p.center) + t_cw for p in prims]
    return Render(img, depth, ids2, K, plane_cam, centers, R_cw, t_cw, label_masks)


def sensor_depth(depth: np.ndarray, ids: np.ndarray, seed: int = 0, *, sigma_mm_at_1m: float = 1.5,
                 edge_dropout: float = 0.3) -> np.ndarray:
    """uint16 millimetres like a structured-light / stereo sensor: noise growing with z², holes (0)
    where no surface, and random dropout along object boundaries."""
    rng = np.random.default_rng(seed)
    z = depth.astype(np.float64)
    noisy = z + rng.normal(0, 1, z.shape) * (sigma_mm_at_1m / 1000.0) * z * z
    out = np.where(np.isfinite(noisy), np.round(noisy * 1000), 0).astype(np.uint16)
    edges = cv2.morphologyEx(ids.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges & (rng.random(z.shape) < edge_dropout)] = 0
    return out


def jpeg(image: np.ndarray, quality: int = 85, noise: float = 3.0, seed: int = 0) -> np.ndarray:
    """Sensor noise then a JPEG round trip (RGB in, RGB out)."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(image.astype(np.float64) + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
