"""Exact attributes and relations on synthetic scenes whose truth is known by construction.

Objects are real image content (scikit-image photos, the ``horse`` silhouette) or uniformly
coloured shapes pasted at known places onto a real photo background; their masks are exact.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

import gear_edge.masks as gm
from gear_edge.describe.colours import COLOUR_NAMES, colour_histogram
from gear_edge.describe.geometry import PREDICATES, describe_regions
from gear_edge.describe.scene import describe_scene
from gear_edge.describe.scene_text import RELATION_WORDS, index_lines, relation_index, scene_lines, scene_text
from gear_edge.errors import InputError
from gear_edge.types import Region

H, W = 480, 640
INVERSE = {
    "left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above",
    "inside": "contains", "contains": "inside", "on_top_of": "under", "under": "on_top_of",
    "occludes": "occluded_by", "occluded_by": "occludes", "larger_than": "smaller_than",
    "smaller_than": "larger_than", "touching": "touching", "overlaps": "overlaps", "same_colour_as": "same_colour_as",
}


def background() -> np.ndarray:
    """A real photo, blurred and dimmed so pasted objects are the only saturated content."""
    bg = cv2.resize(skimage.data.camera(), (W, H))
    bg = cv2.GaussianBlur(bg, (0, 0), 6)
    return np.ascontiguousarray(np.repeat((bg // 3 + 120)[..., None], 3, axis=2).astype(np.uint8))


def rect(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def disk(cx, cy, r):
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


class Scene:
    """Builds an image and exact masks by pasting objects in order (later ones on top)."""

    def __init__(self):
        self.image = background()
        self.masks: list[np.ndarray] = []

    def paste(self, mask: np.ndarray, colour=None, texture: np.ndarray | None = None, shade: bool = False) -> int:
        if texture is not None:
            self.image[mask] = texture[mask]
        else:
            pix = np.broadcast_to(np.array(colour, np.float64), (int(mask.sum()), 3))
            if shade:  # a vertical lighting gradient 0.7..1.0 over the object
                ys = np.nonzero(mask)[0]
                f = 0.7 + 0.3 * (ys - ys.min()) / max(1, ys.max() - ys.min())
                pix = pix * f[:, None]
            self.image[mask] = np.clip(pix, 0, 255).astype(np.uint8)
        for k in range(len(self.masks)):  # earlier masks lose what is painted over them
            self.masks[k] = self.masks[k] & ~mask
        self.masks.append(mask.copy())
        return len(self.masks) - 1

    def describe(self, k_neighbours: int = 4):
        rles = gm.encode(np.stack(self.masks))
        attrs, rels = describe_regions(self.image, rles, k_neighbours=k_neighbours)
        return attrs, {(r.subject, r.predicate, r.object) for r in rels}


COLOURS = {
    "red": (210, 25, 30), "green": (30, 150, 40), "blue": (25, 60, 220), "yellow": (245, 220, 30),
    "orange": (250, 130, 10), "purple": (120, 30, 150), "pink": (250, 150, 195), "brown": (120, 70, 25),
    "white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128),
}


@pytest.mark.parametrize("shade", [False, True], ids=["flat", "shaded"])
def test_colour_names_of_uniform_objects(shade):
    s = Scene()
    names = list(COLOURS)
    for k, name in enumerate(names):
        x = 20 + (k % 6) * 100
        y = 40 + (k // 6) * 200
        s.paste(rect(x, y, x + 80, y + 150), COLOURS[name], shade=shade and name not in ("white", "black", "grey"))
    attrs, _ = s.describe()
    got = [a["colour"] for a in attrs]
    assert got == names
    for a in attrs:
        assert a["colours"][0][0] == a["colour"] and a["colours"][0][1] >= 0.9


def test_colour_histogram_fractions_of_a_two_colour_object():
    pix = np.array([COLOURS["red"]] * 300 + [COLOURS["blue"]] * 100, np.uint8)
    hist, brightness = colour_histogram(pix)
    assert hist[COLOUR_NAMES.index("red")] == pytest.approx(0.75)
    assert hist[COLOUR_NAMES.index("blue")] == pytest.approx(0.25)
    assert 0 < brightness < 1


def test_positions_sizes_and_ranks():
    s = Scene()
    big = s.paste(rect(0, 0, 400, 300), COLOURS["grey"])  # top-left, 39 % of the image
    small = s.paste(rect(560, 400, 600, 440), COLOURS["red"])  # bottom-right, 0.52 %
    tiny = s.paste(rect(300, 220, 310, 230), COLOURS["blue"])  # centre, 0.03 %
    attrs, _ = s.describe()
    assert attrs[big]["position"] == "top-left" and attrs[big]["size"] == "huge" and attrs[big]["size_rank"] == 1
    assert attrs[small]["position"] == "bottom-right" and attrs[small]["size"] == "small"
    assert attrs[tiny]["position"] == "centre" and attrs[tiny]["size"] == "tiny" and attrs[tiny]["size_rank"] == 3
    assert attrs[small]["area_px"] == 1600 and attrs[small]["bbox"] == [560.0, 400.0, 40.0, 40.0]
    assert attrs[small]["centroid"] == [580.0, 420.0]
    assert attrs[tiny]["area_frac"] == pytest.approx(100 / (H * W), abs=1e-6)


def test_shapes_holes_and_orientation():
    s = Scene()
    round_ = s.paste(disk(100, 100, 60), COLOURS["red"])
    square = s.paste(rect(220, 40, 340, 160), COLOURS["green"])
    ring = s.paste(disk(500, 100, 70) & ~disk(500, 100, 35), COLOURS["blue"])
    two_holes = s.paste(rect(40, 260, 240, 420) & ~rect(70, 300, 110, 380) & ~rect(160, 300, 200, 380), COLOURS["yellow"])
    bar = np.zeros((H, W), np.uint8)
    box = cv2.boxPoints(((460, 340), (220, 30), -30.0))  # cv2 angles are clockwise in image coordinates
    cv2.fillPoly(bar, [np.round(box).astype(np.int32)], 1)
    bar_id = s.paste(bar.astype(bool), COLOURS["orange"])
    attrs, _ = s.describe()
    assert "round" in attrs[round_]["shape"] and attrs[round_]["elongation"] < 1.05
    assert "square" in attrs[square]["shape"] and attrs[square]["rectangularity"] > 0.97
    assert attrs[ring]["holes"] == 1 and "has holes" in attrs[ring]["shape"]
    assert attrs[two_holes]["holes"] == 2
    assert attrs[round_]["holes"] == 0 and attrs[square]["holes"] == 0
    assert "elongated" in attrs[bar_id]["shape"] and attrs[bar_id]["elongation"] > 5
    assert attrs[bar_id]["orientation_deg"] == pytest.approx(30.0, abs=2.0)  # counter-clockwise from +x


def test_texture_real_photo_vs_plain():
    s = Scene()
    cat = cv2.resize(skimage.data.chelsea(), (W, H))
    horse = cv2.resize(skimage.data.horse().astype(np.uint8), (300, 240), interpolation=cv2.INTER_NEAREST) == 0
    m = np.zeros((H, W), bool)
    m[200:440, 20:320] = horse
    textured = s.paste(m, texture=cat)
    plain = s.paste(rect(420, 100, 600, 300), COLOURS["blue"])
    attrs, _ = s.describe()
    assert attrs[textured]["texture_word"] == "textured" and attrs[textured]["texture"] > 0.15
    assert attrs[plain]["texture_word"] == "plain" and attrs[plain]["texture"] < 0.02
    assert attrs[textured]["position_h"] == "left" and attrs[textured]["position_v"] in ("middle", "bottom")


def test_relations_table_scene():
    s = Scene()
    table = s.paste(rect(40, 320, 600, 460), COLOURS["brown"])
    box = s.paste(rect(80, 180, 220, 320), COLOURS["red"])  # rests on the table
    ball = s.paste(disk(450, 280, 40), COLOURS["blue"])  # rests on the table (bottom at y=320)
    label = s.paste(rect(110, 220, 190, 270), COLOURS["white"])  # lies on the box's face (fills its hole)
    lamp = s.paste(disk(560, 60, 30), COLOURS["yellow"])  # floating, top-right
    attrs, rels = s.describe()
    expect = {
        (box, "on_top_of", table), (ball, "on_top_of", table), (label, "on_top_of", box),
        (box, "left_of", ball), (lamp, "above", ball), (box, "touching", table),
        (table, "larger_than", box), (ball, "right_of", label),
    }
    assert expect <= rels, expect - rels
    assert (lamp, "on_top_of", table) not in rels and (lamp, "touching", table) not in rels
    assert (label, "inside", box) not in rels and (box, "inside", table) not in rels
    assert (ball, "left_of", box) not in rels and (box, "above", table) in rels


def test_occlusion_decided_from_convex_hull():
    s = Scene()
    book = s.paste(rect(100, 100, 400, 300), COLOURS["green"])
    cup = s.paste(disk(380, 200, 50), COLOURS["red"])  # in front of the book's right edge
    _, rels = s.describe()
    assert (cup, "occludes", book) in rels and (book, "occluded_by", cup) in rels
    assert (book, "occludes", cup) not in rels


def test_relations_come_with_inverses_and_known_predicates():
    rng = np.random.default_rng(3)
    s = Scene()
    for _ in range(12):
        x, y = int(rng.integers(0, W - 80)), int(rng.integers(0, H - 80))
        s.paste(rect(x, y, x + int(rng.integers(20, 80)), y + int(rng.integers(20, 80))), tuple(rng.integers(0, 255, 3)))
    keep = [m for m in s.masks if m.any()]
    s.masks = keep
    _, rels = s.describe(k_neighbours=3)
    for a, p, b in rels:
        assert p in PREDICATES and a != b
        assert (b, INVERSE[p], a) in rels, (a, p, b)


def test_k_neighbours_bounds_directional_relations():
    s = Scene()
    for k in range(10):
        s.paste(rect(10 + 62 * k, 200, 50 + 62 * k, 260), COLOURS["red"])
    _, rels = s.describe(k_neighbours=2)
    left = [(a, b) for a, p, b in rels if p == "left_of"]
    assert (0, 1) in left and (0, 2) in left
    assert (0, 9) not in left  # far apart: not a neighbour
    for i in range(10):
        assert sum(1 for a, _b in left if a == i) <= 4


def test_bad_input_is_named():
    img = background()
    m = gm.encode(rect(0, 0, 10, 10))
    with pytest.raises(InputError, match="does not match the image size"):
        describe_regions(img[:100], [m])
    with pytest.raises(InputError, match="uint8"):
        describe_regions(img.astype(np.float32), [m])
    with pytest.raises(InputError, match="region 1"):
        describe_regions(img, [m, {"counts": "x"}])
    with pytest.raises(InputError, match="unique"):
        describe_regions(img, [m, m], ids=[3, 3])
    attrs, rels = describe_regions(img, [])
    assert attrs == [] and rels == []


def test_empty_mask_region_is_described_without_error():
    s = Scene()
    s.paste(rect(10, 10, 100, 100), COLOURS["red"])
    s.masks.append(np.zeros((H, W), bool))
    attrs, rels = s.describe()
    assert attrs[1]["area_px"] == 0 and attrs[1]["colour"] == "none"
    assert all(1 not in (a, b) for a, _p, b in rels)


def test_describe_scene_and_scene_text():
    s = Scene()
    table = s.paste(rect(40, 320, 600, 460), COLOURS["brown"])
    box = s.paste(rect(80, 180, 220, 320), COLOURS["red"])
    scene = describe_scene(s.image, np.stack(s.masks))
    assert scene.image_size == (H, W) and [r.id for r in scene.regions] == [table, box]
    assert scene.timings["describe.geometry"] > 0
    scene.regions[box].caption = 'a cardboard "box"\nwith tape'
    scene.regions[box].text = ["FRAGILE"]
    lines = scene_lines(scene)
    assert lines[1].startswith(f"R{box}: medium red square object, left")
    assert "caption \"a cardboard 'box' with tape\"" in lines[1]
    assert 'text "FRAGILE"' in lines[1] and f"on top of R{table}" in lines[1]
    # capped: only the largest region listed, the rest counted
    capped = scene_lines(scene, max_regions=1, index=False)
    assert len(capped) == 2 and capped[1] == "(1 smaller regions not listed)"
    assert capped[0].startswith(f"R{table}:") and f"R{box}" not in capped[0]
    # the index after the region lines names only the shown regions
    assert scene_lines(scene, max_regions=1)[:2] == capped
    assert all(f"R{box}" not in line for line in scene_lines(scene, max_regions=1))
    assert scene_lines(scene)[:2] == scene_lines(scene, index=False)
    # Regions passed in keep their ids and scores
    regions = [Region(id=7, rle=scene.regions[0].rle, bbox=scene.regions[0].bbox, area=scene.regions[0].area, score=0.9)]
    scene2 = describe_scene(s.image, regions)
    assert scene2.regions[0].id == 7 and scene2.regions[0].score == 0.9 and regions[0].attributes == {}
    assert scene_text(scene2).startswith("R7: ")
    # deterministic and JSON round trip
    assert scene_text(scene) == scene_text(type(scene).from_json(scene.to_json()))


def test_scene_index_puts_each_fact_before_the_ids_that_have_it():
    s = Scene()
    big = s.paste(rect(380, 60, 600, 300), COLOURS["blue"])
    left = s.paste(rect(20, 100, 120, 160), COLOURS["red"])
    low = s.paste(rect(200, 380, 300, 460), COLOURS["red"])
    scene = describe_scene(s.image, np.stack(s.masks))
    for r in scene.regions:
        r.role = "object"
    lines = scene_lines(scene)
    index = lines[len(scene.regions):]
    assert index == index_lines(scene.regions)
    colours = index[0]
    assert colours == f"colour blue: R{big}; colour red: R{left}, R{low}"
    by = {line.split(":")[0]: line.split(": ", 1)[1] for line in index if line.startswith("objects")}
    assert by["objects largest to smallest"] == f"R{big}, R{low}, R{left}"
    assert by["objects left to right"] == f"R{left}, R{low}, R{big}"
    assert by["objects top to bottom"] == f"R{left}, R{big}, R{low}"  # centroid y 130, 180, 420
    # every fact of the index is a word of that region's own line
    for line in index[:3]:
        for group in line.split("; "):
            label_value, ids = group.split(": ")
            value = label_value.split(" ", 1)[1].replace("with holes", "holes")
            for rid in ids.split(", "):
                assert value in lines[int(rid[1:])], (value, rid)
    # one object: no orders; no regions: no index
    assert not any(line.startswith("objects") for line in index_lines(scene.regions[:1]))
    assert index_lines([]) == []


def test_scene_index_lists_each_relation_under_the_region_it_names():
    s = Scene()
    table = s.paste(rect(40, 320, 600, 460), COLOURS["brown"])
    box = s.paste(rect(80, 180, 220, 320), COLOURS["red"])  # rests on the table
    ball = s.paste(disk(450, 280, 40), COLOURS["blue"])  # rests on the table
    label = s.paste(rect(110, 220, 190, 270), COLOURS["white"])  # lies on the box's face
    lamp = s.paste(disk(560, 60, 30), COLOURS["yellow"])  # floating: on nothing
    scene = describe_scene(s.image, np.stack(s.masks))
    lines = scene_lines(scene)
    rel_lines = lines[lines.index(next(x for x in lines if x.startswith("objects top to bottom"))) + 1:]
    assert rel_lines == relation_index(scene, scene.regions) and len(rel_lines) >= 2
    groups = dict(g.rsplit(": ", 1) for line in rel_lines for g in line.split("; "))
    # one line per relation word
    assert len({line.split(" R", 1)[0] for line in rel_lines}) == len(rel_lines)
    on_table = set(groups[f"on top of R{table}"].split(", "))
    assert {f"R{box}", f"R{ball}"} <= on_table and f"R{lamp}" not in on_table
    assert groups[f"on top of R{box}"] == f"R{label}"
    assert f"R{table}" in groups[f"under R{box}"].split(", ")
    # the index says nothing the relations do not: every entry is one of the scene's relations
    words = {w: p for p, w in RELATION_WORDS.items()}
    held = {(r.subject, r.predicate, r.object) for r in scene.relations}
    for key, ids in groups.items():
        word, obj = key.rsplit(" R", 1)
        for rid in ids.split(", "):
            assert (int(rid[1:]), words[word], int(obj)) in held, (key, rid)
    # left/right/above/below stay out of the index; a scene without relations has no relation line
    assert not any(k.startswith(("left of", "right of", "above", "below")) for k in groups)
    alone = describe_scene(s.image, np.stack(s.masks[4:5]))
    assert relation_index(alone, alone.regions) == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX)")
def test_describe_works_in_a_forked_child():
    """The helper thread that overlaps image work is per process: a child forked after a describe
    call (a worker pool, a robot supervisor) must not wait forever on the parent's dead thread."""
    import os
    import select

    image = cv2.resize(skimage.data.coffee(), (320, 240))
    masks = np.zeros((3, 240, 320), bool)
    masks[0, 20:120, 30:150] = True
    masks[1, 140:220, 40:300] = True
    masks[2, 30:100, 200:300] = True
    rles = gm.encode(masks)
    expected = describe_regions(image, rles)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = describe_regions(image, rles) == expected
            os.write(w, b"same" if ok else b"diff")
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 60)
    if not ready:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("describe_regions hung in a forked child")
    answer = os.read(r, 16)
    os.waitpid(pid, 0)
    assert answer == b"same"
