"""The held-out tabletop scene set of ``bench_scene.py``: random 640x480 robot-camera scenes + queries.

Written before any failure was looked at, and not used by the unit tests. Each scene: a textured
table (wood / stone / linen) under a camera 0.6-1.0 m high pitched 45-70 degrees down, a wall and
floor beyond it, 3-7 flat-coloured solids (boxes, cylinders, balls, rings, cups) with cast shadows,
printed labels on some boxes, sometimes a small object stacked on a box, an object inside a ring,
two touching objects of one colour; sensor noise, JPEG q85, and a uint16 depth image with noise and
edge dropout. Queries are phrased the way people talk to a robot, several phrasings per category,
with the answer computed from the scene's ground truth (only where it is unambiguous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from benchmarks.tabletop3d import H, W, Prim, jpeg, render, sensor_depth

COLOURS = {  # name -> RGB (names the colour namer uses)
    "red": (200, 30, 30), "green": (40, 150, 50), "blue": (30, 70, 210), "yellow": (235, 205, 40),
    "orange": (240, 130, 20), "purple": (125, 45, 160), "white": (238, 238, 238), "black": (30, 30, 32),
    "pink": (240, 125, 175),
}
TABLES = [("wood", (150, 105, 65)), ("stone", (128, 128, 122)), ("linen", (205, 195, 172)), ("wood", (95, 65, 40))]
WORDS = ["FRAGILE", "MILK", "SUGAR", "TOOLS", "SALT", "RICE", "TEA", "SPARE"]
NOUN = {"box": "box", "cylinder": "can", "sphere": "ball", "ring": "ring", "cup": "cup"}


@dataclass
class Obj:
    prim: Prim
    colour: str
    noun: str
    mask: np.ndarray | None = None  # visible pixels
    on: int | None = None  # index of the object it lies on
    inside: int | None = None  # index of the ring it lies in


@dataclass
class Query:
    text: str
    category: str
    targets: list[int]  # object indices; [-1] = the table (support)


@dataclass
class BenchScene:
    seed: int
    image: np.ndarray  # uint8 RGB (noisy, JPEG)
    depth_mm: np.ndarray  # uint16 (0 = hole)
    depth_true: np.ndarray  # float32 metres, NaN = nothing
    K: np.ndarray
    plane_cam: np.ndarray
    objects: list[Obj]
    support: np.ndarray  # bool: table pixels
    background: np.ndarray  # bool: wall / floor pixels
    centers_cam: list[np.ndarray]
    queries: list[Query] = field(default_factory=list)


def _place(rng, objs_fp, r, box, tries=200):
    x0, x1, y0, y1 = box
    for _ in range(tries):
        x, y = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
        if all(math.hypot(x - a, y - b) > r + ra + 0.015 for a, b, ra in objs_fp):
            return x, y
    return None


def make_scene(seed: int) -> BenchScene:
    rng = np.random.default_rng(10_000 + seed)
    cam_h, pitch, back = rng.uniform(0.6, 1.0), rng.uniform(45, 70), rng.uniform(0.15, 0.4)
    # where the optical axis meets the table: objects go around it
    yc = -back + cam_h / math.tan(math.radians(pitch))
    span_x = 0.22 * cam_h / 0.8
    span_y = 0.14 * cam_h / 0.8
    area = (-span_x, span_x, yc - span_y, yc + span_y)
    tkind, trgb = TABLES[rng.integers(len(TABLES))]
    palette = list(COLOURS)
    rng.shuffle(palette)
    n = int(rng.integers(3, 8))
    objs: list[Obj] = []
    fps: list[tuple[float, float, float]] = []
    words = list(WORDS)
    rng.shuffle(words)
    want_stack, want_ring_in, want_pair = rng.random() < 0.5, rng.random() < 0.35, rng.random() < 0.3
    ci = 0
    for k in range(n):
        kind = rng.choice(["box", "box", "cylinder", "sphere", "ring", "cup"])
        if k == 0 and want_stack:
            kind = "box"
        if k == 1 and want_ring_in:
            kind = "ring"
        colour = palette[ci % len(palette)]
        ci += 1
        if kind == "box":
            sx, sy, sz = rng.uniform(0.06, 0.14), rng.uniform(0.05, 0.12), rng.uniform(0.03, 0.1)
            if k == 0 and want_stack:
                sx, sy = max(sx, 0.11), max(sy, 0.1)
            r = math.hypot(sx, sy) / 2
        elif kind == "sphere":
            r = rng.uniform(0.025, 0.045)
        elif kind == "ring":
            r = rng.uniform(0.045, 0.07)
        else:
            r = rng.uniform(0.025, 0.045)
        pos = _place(rng, fps, r, area)
        if pos is None:
            continue
        x, y = pos
        if kind == "box":
            prim = Prim("box", (x, y, sz / 2), (sx, sy, sz), COLOURS[colour], yaw=float(rng.uniform(-0.6, 0.6)))
            if rng.random() < 0.45 and words:
                prim.label = words.pop()
        elif kind == "sphere":
            prim = Prim("sphere", (x, y, r), (r, r, r), COLOURS[colour])
        elif kind == "ring":
            hgt = rng.uniform(0.012, 0.025)
            prim = Prim("ring", (x, y, hgt / 2), (r, r, hgt), COLOURS[colour], inner=r * rng.uniform(0.55, 0.7))
        elif kind == "cup":
            hgt = rng.uniform(0.06, 0.1)
            prim = Prim("cup", (x, y, hgt / 2), (r, r, hgt), COLOURS[colour], inner=r * 0.85)
        else:
            hgt = rng.uniform(0.04, 0.14)
            prim = Prim("cylinder", (x, y, hgt / 2), (r, r, hgt), COLOURS[colour])
        objs.append(Obj(prim, colour, NOUN[kind]))
        fps.append((x, y, r))
        # a second object of the same colour touching this one (different height: depth can split them)
        if want_pair and k == 2 and kind in ("box", "cylinder"):
            r2 = rng.uniform(0.025, 0.04)
            ang = rng.uniform(0, 2 * math.pi)
            ext = (max(sx, sy) / 2 if kind == "box" else r) + r2
            x2, y2 = x + math.cos(ang) * ext * 0.98, y + math.sin(ang) * ext * 0.98
            hgt2 = (prim.size[2] + rng.uniform(0.04, 0.07))
            p2 = Prim("cylinder", (x2, y2, hgt2 / 2), (r2, r2, hgt2), COLOURS[colour])
            objs.append(Obj(p2, colour, "can"))
            fps.append((x2, y2, r2))
    # stacked: a small object on the first box's top face
    if want_stack and objs and objs[0].prim.kind == "box":
        b = objs[0].prim
        colour = palette[ci % len(palette)]
        ci += 1
        top = b.size[2]
        if rng.random() < 0.5:
            s = rng.uniform(0.035, 0.05)
            p = Prim("box", (b.center[0], b.center[1], top + s / 3), (s, s * 0.8, s * 2 / 3), COLOURS[colour], yaw=b.yaw + 0.3)
            noun = "box"
        else:
            r = rng.uniform(0.02, 0.03)
            p = Prim("sphere", (b.center[0], b.center[1], top + r), (r, r, r), COLOURS[colour])
            noun = "ball"
        objs.append(Obj(p, colour, noun, on=0))
        b.label = None  # its label would be hidden under the stacked object
    # inside the ring: a small ball or can in its hole
    if want_ring_in and len(objs) > 1 and objs[1].prim.kind == "ring":
        g = objs[1].prim
        colour = palette[ci % len(palette)]
        ci += 1
        r = min(0.02, g.inner * 0.55)
        p = Prim("sphere", (g.center[0], g.center[1], r), (r, r, r), COLOURS[colour])
        objs.append(Obj(p, colour, "ball", inside=1))
    light = (float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.2)), 1.0)
    rd = render([o.prim for o in objs], cam_height=cam_h, pitch_deg=pitch, dist_back=back, table_rgb=trgb,
                table_kind=tkind, light=light, ambient=float(rng.uniform(0.35, 0.55)), seed=seed,
                wall_rgb=tuple(int(v) for v in rng.integers(150, 230, 3)))
    for k, o in enumerate(objs):
        o.mask = rd.ids == k + 1
    image = jpeg(rd.image, 85, noise=float(rng.uniform(2, 5)), seed=seed)
    sc = BenchScene(seed, image, sensor_depth(rd.depth, rd.ids, seed), rd.depth, rd.K, rd.plane_cam, objs,
                    rd.ids == 0, rd.ids < 0, rd.centers_cam)
    sc.queries = make_queries(sc, rng)
    return sc


def _visible(sc: BenchScene) -> list[int]:
    return [k for k, o in enumerate(sc.objects) if o.mask is not None and o.mask.sum() >= 150]


def _cent(m: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(m)
    return float(xs.mean()), float(ys.mean())


def make_queries(sc: BenchScene, rng) -> list[Query]:
    vis = _visible(sc)
    objs = sc.objects
    q: list[Query] = []

    def pick(options):
        return options[int(rng.integers(len(options)))]

    by_colour: dict[str, list[int]] = {}
    for k in vis:
        by_colour.setdefault(objs[k].colour, []).append(k)
    # colour
    uniq = [k for k in vis if len(by_colour[objs[k].colour]) == 1]
    for k in list(rng.permutation(uniq))[:2]:
        c = objs[k].colour
        q.append(Query(pick([f"the {c} object", f"pick up the {c} one", f"hand me the {c} thing",
                             f"grab the {c} item"]), "colour", [int(k)]))
    # superlative (visible area)
    areas = sorted(((int(objs[k].mask.sum()), k) for k in vis), reverse=True)
    if len(areas) >= 2 and areas[0][0] >= 1.3 * areas[1][0]:
        q.append(Query(pick(["the biggest object", "the largest thing on the table", "grab the largest item"]),
                       "superlative", [areas[0][1]]))
    if len(areas) >= 2 and areas[-2][0] >= 1.3 * areas[-1][0]:
        q.append(Query(pick(["the smallest object", "the tiniest thing on the table", "pick up the smallest item"]),
                       "superlative", [areas[-1][1]]))
    # ordinal (left to right by centroid)
    xs = sorted((_cent(objs[k].mask)[0], k) for k in vis)
    gaps_ok = all(b[0] - a[0] >= 25 for a, b in zip(xs, xs[1:]))
    if len(xs) >= 3 and gaps_ok:
        q.append(Query(pick(["the leftmost object", "the object furthest to the left", "the first item from the left"]),
                       "ordinal", [xs[0][1]]))
        q.append(Query(pick(["the second object from the left", "the second item from the left"]), "ordinal", [xs[1][1]]))
        q.append(Query(pick(["the rightmost object", "the first thing on the right", "the object furthest to the right"]),
                       "ordinal", [xs[-1][1]]))
    # text
    for k in vis:
        lab = objs[k].prim.label
        if lab and objs[k].prim.kind == "box" and objs[k].mask.sum() >= 1500:
            w = lab.lower()
            q.append(Query(pick([f"the box that says {w}", f"the {w} box", f"the item labelled {lab}",
                                 f"hand me the box with {w} written on it"]), "text", [k]))
    # on top of
    for k in vis:
        if objs[k].on is not None and objs[k].on in vis:
            base = objs[objs[k].on]
            q.append(Query(pick([f"the object on top of the {base.colour} box", f"the thing lying on the {base.colour} box",
                                 f"what is on the {base.colour} box"]), "on_top", [k]))
    # inside the ring / with a hole
    for k in vis:
        if objs[k].inside is not None and objs[k].inside in vis:
            ring = objs[objs[k].inside]
            q.append(Query(pick(["the object inside the ring", f"the thing in the {ring.colour} ring",
                                 "the ball inside the ring"]), "inside", [k]))
    rings = [k for k in vis if objs[k].prim.kind == "ring"]
    if len(rings) == 1:
        q.append(Query(pick(["the object with a hole", "the thing with a hole in the middle", "the ring"]), "hole", rings))
    # relation: the single object fully left / right of a reference
    for k in list(rng.permutation(uniq))[:1]:
        x0 = np.nonzero(objs[k].mask.any(0))[0]
        left = [j for j in vis if j != k and np.nonzero(objs[j].mask.any(0))[0].max() < x0.min()]
        right = [j for j in vis if j != k and np.nonzero(objs[j].mask.any(0))[0].min() > x0.max()]
        c = objs[k].colour
        if len(left) == 1:
            q.append(Query(pick([f"the object left of the {c} one", f"the thing to the left of the {c} object"]),
                           "relation", left))
        elif len(right) == 1:
            q.append(Query(pick([f"the object right of the {c} one", f"the thing to the right of the {c} object"]),
                           "relation", right))
    # all of a colour
    for c, ks in by_colour.items():
        if len(ks) >= 2:
            q.append(Query(pick([f"all the {c} objects", f"every {c} thing", f"both {c} items"]), "all", sorted(ks)))
    # 3D: tallest, closest
    tops = sorted(((objs[k].prim.center[2] + (objs[k].prim.size[2] / 2 if objs[k].prim.kind != "sphere" else objs[k].prim.size[0]), k)
                   for k in vis if objs[k].on is None), reverse=True)
    if len(tops) >= 2 and tops[0][0] - tops[1][0] >= 0.02:
        q.append(Query(pick(["the tallest object", "the highest thing on the table", "grab the tallest item"]), "3d", [tops[0][1]]))
    dists = sorted((float(np.linalg.norm(sc.centers_cam[k])), k) for k in vis)
    if len(dists) >= 2 and dists[1][0] - dists[0][0] >= 0.04:
        q.append(Query(pick(["the object closest to me", "the nearest thing", "the item nearest to the camera"]), "3d", [dists[0][1]]))
    # support and absent
    q.append(Query(pick(["the table", "the table surface"]), "support", [-1]))
    absent = [c for c in COLOURS if c not in by_colour]
    if absent:
        q.append(Query(pick([f"the {absent[0]} object", "the purple elephant", "the toaster", "the banana"]), "absent", []))
    return q


def scene_set(n: int, first_seed: int = 0) -> list[BenchScene]:
    return [make_scene(first_seed + i) for i in range(n)]


def gt_mask(sc: BenchScene, targets: list[int]) -> np.ndarray:
    m = np.zeros((H, W), bool)
    for t in targets:
        m |= sc.support if t == -1 else sc.objects[t].mask
    return m
