"""Hand-written deduction suite: synthetic scenes with exact masks, and queries with one clear answer.

Each scene is drawn with numpy/OpenCV (flat colours with a little noise and shading on a light
background; later objects occlude earlier ones and the masks are updated, so every mask is exact),
encoded as COCO RLE with :mod:`gear_edge.masks`, and described by the real describe stage
(:func:`gear_edge.describe.scene.describe_scene`: attributes and relations from the pixels).
Captions and OCR text are set by hand, as a captioner / OCR would give them. Region ids are a fixed
permutation of 1..N (not the drawing order), so nothing can rely on id order.

A case's answer is a set of object names (empty = "nothing in the scene fits"). Kinds: colour, size,
position, shape, relation, text, multi (several targets), none, semantic (object words / purpose).

    python -m tests.deduce_suite                  # program mode (real LLM when llama-cpp is installed)
    python -m tests.deduce_suite --mode direct    # the direct mode on the same suite
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

import gear_edge.masks as gm
from gear_edge.describe.scene import describe_scene
from gear_edge.synthetic import solid_mask
from gear_edge.types import Region, Scene

H, W = 480, 640
BACKGROUND = (222, 222, 216)

RED, BLUE, GREEN, YELLOW = (200, 25, 25), (30, 70, 215), (40, 150, 55), (240, 215, 50)
ORANGE, BROWN, PINK, PURPLE = (240, 125, 20), (140, 85, 35), (245, 140, 190), (130, 30, 165)
BLACK, WHITE, GREY = (25, 25, 28), (246, 246, 244), (128, 128, 132)


@dataclass(frozen=True)
class Obj:
    """One object: ``shape`` rect | ellipse | disk | ring | frame | triangle; ``geom`` its numbers."""

    name: str
    shape: str
    geom: tuple
    rgb: tuple[int, int, int]
    caption: str | None = None
    text: tuple[str, ...] = ()


@dataclass(frozen=True)
class SceneSpec:
    name: str
    objects: tuple[Obj, ...]


@dataclass(frozen=True)
class Case:
    scene: str
    query: str
    answer: tuple[str, ...]  # object names; () = nothing fits
    kind: str


def _mask(o: Obj) -> np.ndarray:
    return solid_mask(o.shape, o.geom, H, W)


def draw(spec: SceneSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The image (uint8 [H, W, 3] RGB) and each object's exact visible mask."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    img = np.empty((H, W, 3), np.float64)
    img[:] = BACKGROUND
    img += rng.normal(0, 3, img.shape)
    masks: dict[str, np.ndarray] = {}
    for o in spec.objects:
        m = _mask(o)
        ys = np.nonzero(m)[0]
        shade = 0.9 + 0.1 * (ys - ys.min()) / max(1, ys.max() - ys.min())
        img[m] = np.asarray(o.rgb, np.float64)[None, :] * shade[:, None] + rng.normal(0, 4, (len(ys), 3))
        for k in masks:
            masks[k] &= ~m
        masks[o.name] = m
    for k, m in masks.items():
        if not m.any():
            raise ValueError(f"{spec.name}: {k} is fully hidden")
    return np.clip(img, 0, 255).astype(np.uint8), masks


def region_ids(spec: SceneSpec) -> dict[str, int]:
    """A fixed permutation of 1..N per scene (not the drawing order)."""
    n = len(spec.objects)
    perm = np.random.default_rng(zlib.crc32(spec.name.encode()) + 7).permutation(n) + 1
    return {o.name: int(perm[k]) for k, o in enumerate(spec.objects)}


@lru_cache(maxsize=None)
def build(name: str) -> tuple[Scene, dict[str, int]]:
    """The described Scene of ``SCENES[name]`` and its name → region id map (cached)."""
    return scene_from_spec(SCENES[name])


def scene_from_spec(spec: SceneSpec) -> tuple[Scene, dict[str, int]]:
    """Draws ``spec``, describes it with the real describe stage, sets captions / OCR text by hand."""
    image, masks = draw(spec)
    ids = region_ids(spec)
    regions = []
    for o in spec.objects:
        rle = gm.encode(masks[o.name])
        regions.append(Region(id=ids[o.name], rle=rle, bbox=tuple(float(v) for v in gm.to_bbox(rle)), area=int(gm.area(rle))))
    scene = describe_scene(image, regions)
    by_id = {r.id: r for r in scene.regions}
    for o in spec.objects:
        by_id[ids[o.name]].caption = o.caption
        by_id[ids[o.name]].text = list(o.text)
    scene.meta["suite_scene"] = spec.name
    return scene, ids


# ---- scenes --------------------------------------------------------------------------------------

SCENES: dict[str, SceneSpec] = {s.name: s for s in [
    SceneSpec("kitchen", (
        Obj("table", "rect", (20, 300, 620, 470), BROWN, "a wooden kitchen table"),
        Obj("mug", "rect", (60, 230, 120, 300), RED, "a red coffee mug"),
        Obj("book", "rect", (160, 270, 300, 300), BLUE, "a blue hardcover book"),
        Obj("scissors", "rect", (330, 288, 450, 300), GREY, "a pair of scissors"),
        Obj("banana", "ellipse", (525, 286, 45, 14), YELLOW, "a banana"),
        Obj("plant", "ellipse", (80, 90, 45, 60), GREEN, "a potted plant"),
        Obj("sign", "rect", (480, 40, 600, 100), WHITE, "a sign on the wall", ("EXIT",)),
    )),
    SceneSpec("shapes", (
        Obj("big_red_disk", "disk", (160, 210, 80), RED),
        Obj("small_red_disk", "disk", (560, 400, 25), RED),
        Obj("blue_square", "rect", (270, 190, 370, 290), BLUE),
        Obj("green_bar", "rect", (200, 420, 450, 445), GREEN),
        Obj("yellow_ring", "ring", (540, 90, 50, 25), YELLOW),
        Obj("black_dot", "disk", (320, 60, 8), BLACK),
        Obj("orange_triangle", "triangle", (10, 460, 110, 460, 60, 370), ORANGE),
    )),
    SceneSpec("warehouse", (
        Obj("box1", "rect", (40, 300, 180, 460), BROWN, "a cardboard box", ("FRAGILE",)),
        Obj("box2", "rect", (220, 320, 360, 460), BROWN, "a cardboard box", ("KEEP DRY",)),
        Obj("box3", "rect", (245, 220, 335, 320), BROWN, "a cardboard box", ("THIS SIDE UP",)),
        Obj("box4", "rect", (420, 280, 580, 460), BROWN, "a cardboard box", ("HANDLE WITH CARE",)),
        Obj("extinguisher", "rect", (600, 330, 630, 460), RED, "a red fire extinguisher"),
        Obj("exit_sign", "rect", (260, 40, 380, 90), GREEN, "an exit sign", ("EXIT",)),
    )),
    SceneSpec("desk", (
        Obj("laptop", "rect", (200, 180, 440, 340), GREY, "a laptop computer"),
        Obj("phone", "rect", (470, 250, 520, 340), BLACK, "a mobile phone"),
        Obj("pen", "rect", (125, 200, 137, 330), BLUE, "a ballpoint pen"),
        Obj("notebook", "rect", (20, 190, 95, 340), YELLOW, "a yellow notebook"),
        Obj("cup", "disk", (560, 120, 35), WHITE, "a white coffee cup"),
        Obj("lamp", "rect", (260, 30, 380, 110), ORANGE, "a desk lamp"),
    )),
    SceneSpec("fruit", (
        Obj("bowl", "ellipse", (320, 300, 200, 120), WHITE, "a white bowl"),
        Obj("apple", "disk", (250, 290, 40), RED, "a red apple"),
        Obj("orange", "disk", (350, 300, 42), ORANGE, "an orange"),
        Obj("lime", "disk", (425, 320, 25), GREEN, "a lime"),
        Obj("banana", "ellipse", (560, 110, 60, 20), YELLOW, "a banana"),
        Obj("knife", "rect", (60, 440, 220, 452), GREY, "a kitchen knife"),
    )),
    SceneSpec("toys", (
        Obj("red_ball", "disk", (120, 380, 45), RED, "a red ball"),
        Obj("blue_ball", "disk", (320, 400, 30), BLUE, "a blue ball"),
        Obj("teddy", "ellipse", (470, 350, 60, 80), BROWN, "a teddy bear"),
        Obj("car", "rect", (60, 120, 200, 180), RED, "a red toy car"),
        Obj("chest", "rect", (400, 40, 600, 190), GREEN, "a green toy chest"),
        Obj("block", "rect", (280, 140, 330, 190), YELLOW, "a yellow wooden block"),
    )),
    SceneSpec("street", (
        Obj("pole", "rect", (112, 210, 128, 440), GREY, "a metal pole"),
        Obj("stop_sign", "disk", (120, 150, 60), RED, "a red stop sign", ("STOP",)),
        Obj("parking_sign", "rect", (260, 90, 380, 210), BLUE, "a blue road sign", ("NO PARKING",)),
        Obj("exit_sign", "rect", (450, 110, 590, 170), GREEN, "a green sign", ("EXIT",)),
        Obj("car", "rect", (260, 330, 600, 450), WHITE, "a white car"),
        Obj("cone", "triangle", (160, 450, 220, 450, 190, 370), ORANGE, "a traffic cone"),
    )),
    SceneSpec("stack", (
        Obj("blue_box", "rect", (100, 300, 300, 450), BLUE),
        Obj("red_box", "rect", (150, 220, 250, 300), RED),
        Obj("green_box", "rect", (175, 170, 225, 220), GREEN),
        Obj("yellow_box", "rect", (400, 350, 550, 450), YELLOW),
        Obj("frame", "frame", (380, 40, 600, 260, 18), BLACK),
        Obj("pink_disk", "disk", (490, 150, 30), PINK),
    )),
    SceneSpec("tools", (
        Obj("bench", "rect", (10, 330, 630, 470), BROWN, "a wooden workbench"),
        Obj("hammer", "rect", (40, 300, 200, 330), GREY, "a hammer"),
        Obj("tape", "ring", (280, 290, 40, 18), WHITE, "a roll of tape"),
        Obj("scissors", "rect", (360, 318, 470, 330), BLACK, "a pair of scissors"),
        Obj("screwdriver", "rect", (500, 318, 600, 330), YELLOW, "a screwdriver"),
        Obj("drill", "rect", (60, 60, 200, 140), GREEN, "a cordless drill"),
        Obj("clock", "disk", (500, 100, 45), WHITE, "a wall clock"),
    )),
]}


# ---- cases ---------------------------------------------------------------------------------------

CASES: list[Case] = [
    # kitchen
    Case("kitchen", "the red mug", ("mug",), "colour"),
    Case("kitchen", "the blue object", ("book",), "colour"),
    Case("kitchen", "something to cut with", ("scissors",), "semantic"),
    Case("kitchen", "the sign that says EXIT", ("sign",), "text"),
    Case("kitchen", "all the objects on the table", ("mug", "book", "scissors", "banana"), "multi"),
    Case("kitchen", "the purple elephant", (), "none"),
    Case("kitchen", "the largest object", ("table",), "size"),
    Case("kitchen", "something to eat", ("banana",), "semantic"),
    Case("kitchen", "the object at the top right", ("sign",), "position"),
    Case("kitchen", "the thing on the table left of the book", ("mug",), "relation"),
    Case("kitchen", "the plant", ("plant",), "semantic"),
    # shapes (no captions, no text: attributes and relations only)
    Case("shapes", "the small red circle", ("small_red_disk",), "size"),
    Case("shapes", "the largest red object", ("big_red_disk",), "size"),
    Case("shapes", "all the red objects", ("big_red_disk", "small_red_disk"), "multi"),
    Case("shapes", "the object with a hole", ("yellow_ring",), "shape"),
    Case("shapes", "the long thin object", ("green_bar",), "shape"),
    Case("shapes", "the object in the bottom-right corner", ("small_red_disk",), "position"),
    Case("shapes", "the blue square", ("blue_square",), "colour"),
    Case("shapes", "the tiny object", ("black_dot",), "size"),
    Case("shapes", "the purple object", (), "none"),
    Case("shapes", "the orange triangle", ("orange_triangle",), "colour"),
    Case("shapes", "the object above the blue square", ("black_dot",), "relation"),
    Case("shapes", "the leftmost object", ("orange_triangle",), "position"),
    # warehouse (OCR text on boxes)
    Case("warehouse", "the box that says fragile", ("box1",), "text"),
    Case("warehouse", "the box labelled 'KEEP DRY'", ("box2",), "text"),
    Case("warehouse", "the box on top of the box that says keep dry", ("box3",), "relation"),
    Case("warehouse", "all the boxes", ("box1", "box2", "box3", "box4"), "multi"),
    Case("warehouse", "the box with the text 'DANGER'", (), "none"),
    Case("warehouse", "the leftmost box", ("box1",), "position"),
    Case("warehouse", "the rightmost box", ("box4",), "position"),
    Case("warehouse", "the red object", ("extinguisher",), "colour"),
    Case("warehouse", "the green sign", ("exit_sign",), "colour"),
    Case("warehouse", "the box under the box that says this side up", ("box2",), "relation"),
    Case("warehouse", "the HANDLE WITH CARE box", ("box4",), "text"),
    # desk
    Case("desk", "something to write with", ("pen",), "semantic"),
    Case("desk", "the computer", ("laptop",), "semantic"),
    Case("desk", "the phone next to the laptop", ("phone",), "relation"),
    Case("desk", "the cup", ("cup",), "semantic"),
    Case("desk", "the object between the notebook and the laptop", ("pen",), "relation"),
    Case("desk", "everything except the laptop", ("phone", "pen", "notebook", "cup", "lamp"), "multi"),
    Case("desk", "the dog", (), "none"),
    Case("desk", "the black object", ("phone",), "colour"),
    Case("desk", "the object above the laptop", ("lamp",), "relation"),
    Case("desk", "the white round object", ("cup",), "shape"),
    # fruit bowl
    Case("fruit", "the orange", ("orange",), "semantic"),
    Case("fruit", "the red fruit", ("apple",), "colour"),
    Case("fruit", "the fruits in the bowl", ("apple", "orange", "lime"), "multi"),
    Case("fruit", "the green fruit in the bowl", ("lime",), "relation"),
    Case("fruit", "the bowl", ("bowl",), "semantic"),
    Case("fruit", "the fruit that is not in the bowl", ("banana",), "relation"),
    Case("fruit", "something to cut the apple with", ("knife",), "semantic"),
    Case("fruit", "the largest object", ("bowl",), "size"),
    Case("fruit", "the yellow fruit", ("banana",), "colour"),
    Case("fruit", "the pineapple", (), "none"),
    # toys
    Case("toys", "the blue ball", ("blue_ball",), "colour"),
    Case("toys", "the red ball", ("red_ball",), "colour"),
    Case("toys", "the balls", ("red_ball", "blue_ball"), "multi"),
    Case("toys", "the ball next to the teddy bear", ("blue_ball",), "relation"),
    Case("toys", "the smaller ball", ("blue_ball",), "size"),
    Case("toys", "the red objects", ("red_ball", "car"), "multi"),
    Case("toys", "the toy car", ("car",), "semantic"),
    Case("toys", "the green object", ("chest",), "colour"),
    Case("toys", "the bear", ("teddy",), "semantic"),
    # street
    Case("street", "the sign that says no parking", ("parking_sign",), "text"),
    Case("street", "the stop sign", ("stop_sign",), "semantic"),
    Case("street", "the sign reading \"EXIT\"", ("exit_sign",), "text"),
    Case("street", "all the signs", ("stop_sign", "parking_sign", "exit_sign"), "multi"),
    Case("street", "the pole", ("pole",), "semantic"),
    Case("street", "the object under the stop sign", ("pole",), "relation"),
    Case("street", "the orange cone", ("cone",), "colour"),
    Case("street", "the sign that says 'YIELD'", (), "none"),
    Case("street", "the car", ("car",), "semantic"),
    # stack (no captions)
    Case("stack", "the box on top of the red box", ("green_box",), "relation"),
    Case("stack", "the box under the red box", ("blue_box",), "relation"),
    Case("stack", "the object inside the black frame", ("pink_disk",), "relation"),
    Case("stack", "the object containing the pink one", ("frame",), "relation"),
    Case("stack", "the yellow box", ("yellow_box",), "colour"),
    Case("stack", "the box that is under the green box", ("red_box",), "relation"),
    Case("stack", "the box left of the yellow box", ("blue_box",), "relation"),
    Case("stack", "the white object", (), "none"),
    # tools
    Case("tools", "something to cut the tape with", ("scissors",), "semantic"),
    Case("tools", "something to hammer nails with", ("hammer",), "semantic"),
    Case("tools", "the roll of tape", ("tape",), "semantic"),
    Case("tools", "something to tell the time", ("clock",), "semantic"),
    Case("tools", "all the objects on the workbench", ("hammer", "tape", "scissors", "screwdriver"), "multi"),
    Case("tools", "the yellow tool", ("screwdriver",), "colour"),
    Case("tools", "the object with a hole in it", ("tape",), "shape"),
    Case("tools", "the drill", ("drill",), "semantic"),
]


# ---- scoring -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    case: Case
    want: list[int]
    got: list[int]
    steps: list[str]
    ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return sorted(self.want) == sorted(self.got)


@dataclass
class SuiteResult:
    mode: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def score(self) -> float:
        return self.correct / max(1, self.total)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        tot, ok = Counter(o.case.kind for o in self.outcomes), Counter(o.case.kind for o in self.outcomes if o.ok)
        return {k: (ok[k], tot[k]) for k in sorted(tot)}

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def report(self) -> str:
        lines = [f"{self.mode}: {self.correct}/{self.total} = {100 * self.score:.1f} %  "
                 + "  ".join(f"{k} {a}/{b}" for k, (a, b) in self.by_kind().items())]
        for o in self.failures():
            lines.append(f"  FAIL [{o.case.scene}] {o.case.query!r}: want {o.want} got {o.got}")
            lines += [f"      {s}" for s in o.steps]
        return "\n".join(lines)


def run_suite(deducer, cases: list[Case] | None = None) -> SuiteResult:
    """Runs ``deducer.deduce`` on every case; outputs naming ids outside the scene raise (never count)."""
    result = SuiteResult(getattr(deducer, "mode", type(deducer).__name__))
    for case in cases if cases is not None else CASES:
        scene, ids = build(case.scene)
        t0 = time.perf_counter()
        answer = deducer.deduce(scene, case.query)
        ms = (time.perf_counter() - t0) * 1e3
        bad = [t for t in answer.targets if t not in scene.ids]
        if bad:
            raise AssertionError(f"{case.query!r}: ids {bad} are not in the scene {scene.ids}")
        result.outcomes.append(Outcome(case, [ids[n] for n in case.answer], list(answer.targets),
                                       [s.text for s in answer.steps], ms, answer.prompt_tokens, answer.completion_tokens))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("program", "direct"), default="program")
    ap.add_argument("--no-llm", action="store_true", help="program mode without the LLM")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.mode == "direct":
        from gear_edge.deduce.direct import DirectDeducer
        from gear_edge.deduce.llm import LocalLLM

        deducer = DirectDeducer(LocalLLM(threads=args.threads))
    else:
        from gear_edge.deduce.program.deducer import ProgramDeducer

        deducer = ProgramDeducer(llm=None if args.no_llm else "auto", threads=args.threads)
    t0 = time.perf_counter()
    res = run_suite(deducer)
    print(res.report())
    print(f"{res.total} cases in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
