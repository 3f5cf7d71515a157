"""Runs a :class:`Program` exactly on a :class:`Scene`; every executed step is a LogicStep.

Candidates start as every region; each filter keeps a subset and records a step with the ids it
kept. Gradable words (size, position, shape, brightness, texture) are *soft*: when no candidate has
the exact attribute, the one most so is kept ("the big box" in a scene of small things), and the
step says so. Colours, text, object words and relations are hard: they may leave nothing, which is
a valid answer. When one object is asked for and several fit, the best-scoring one is kept (scores:
semantic similarity, colour fraction, how well a relation / position holds), then the largest.

Order of evaluation within one phrase: hard filters (colour, shape, writing, text, relations), then
object words (captions first, then the shape a shape noun names, see ``gear_edge.vocabulary.SHAPE_NOUNS``),
then gradable words (a singular size word ranks the remaining candidates: "the big red triangle" is
the bigger of the red triangles), then exclusions (among the remaining candidates: "every red disc
except the leftmost one"), then superlatives / ordinals, then the quantity.

Roles: every phrase ranges over regions whose ``role`` is "object" (the default) unless it names the
support or the background ("the table", "the wall": ``gear_edge.vocabulary.ROLE_NOUNS``).

Object words nothing can check (no caption names them, no shape noun, no text read) are never
dropped silently: alone they give nothing; next to other filters those decide and the chain says
the words were not checked.

Relations come from ``scene.relations``; directional ones (left of, above, ...) between regions that
are not neighbours in the relation graph are decided by the vocabulary's direction rule
(:func:`gear_edge.vocabulary.direction`), the one describe uses. Only ids of the scene can ever be kept.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from gear_edge.deduce.program.ast import (
    AttrFilter, Exclude, NounFilter, ObjectSpec, Order, Program, RelationFilter, TextFilter,
)
from gear_edge.deduce.program.semantic import (
    MATCH_FLOOR, MATCH_MARGIN, NAMED_SCORE, SemanticMatcher, bare_phrase, region_texts, singular,
)
from gear_edge.scene_index import SceneIndex
from gear_edge.types import LogicStep, Scene
from gear_edge.vocabulary import (
    AFFORDANCE_SHAPES, AFFORDANCE_WORDS, PARTIAL_COLOUR_FRAC, POSITION_CELLS, POSITION_POINTS, ROLE_NOUNS, SHAPE_NOUNS,
    VIEWER_DISTANCE_KEYS, caption_affordance,
)

PURPOSE_FLOOR = 0.35  # purpose phrases ("something to cut with") embed further from captions than names do
# relations scored in tiers (stacked / contained in the scene's relations, else a guess from touching
# or lying within the outline): once some candidate has the relation itself, the guesses are dropped
# ("what is on the box?" is what lies on it, not also what touches its top edge from behind)
EVIDENCE_FLOOR: dict[str, float] = {"on": 0.9, "inside": 0.9, "contains": 0.9}
NEGATED_FLOOR = 0.7  # "not the tape": drop regions this similar to the words (lexical hits reach it)
NEAR_FRAC = 0.12  # "near": bbox gap at most this fraction of the image diagonal (or touching)
TEXT_FUZZ = 0.8  # OCR text matches when difflib's ratio reaches this on some window
MAX_STEP_IDS = 12  # ids spelled out in a step's text (``kept`` always holds all of them)
MAX_STEPS = 48  # steps recorded per query (the rest are counted in one final step)
SOFT_KINDS = ("size", "position", "brightness", "texture")  # gradable: the most so when none is exactly so
LAZY_CHUNK = 4  # captions requested per step when object words are compared in rank order (_noun_lazy)


def ids_text(ids: Sequence[int]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(f"R{i}" for i in list(ids)[:MAX_STEP_IDS])
    return shown + (f" (+{len(ids) - MAX_STEP_IDS} more)" if len(ids) > MAX_STEP_IDS else "")


def _norm_text(text: str) -> str:
    return " ".join(re.findall(r"[0-9a-z]+", str(text).lower()))


def text_matches(query: str, read: str) -> bool:
    """OCR ``read`` contains ``query`` (case/punctuation-insensitive; OCR slips tolerated)."""
    q, t = _norm_text(query), _norm_text(read)
    if not q or not t:
        return False
    if q in t or q.replace(" ", "") in t.replace(" ", ""):
        return True
    qw, tw = q.split(), t.split()
    n = len(qw)
    for k in range(max(1, len(tw) - n + 1)):
        window = " ".join(tw[k : k + n])
        if difflib.SequenceMatcher(None, q, window).ratio() >= TEXT_FUZZ:
            return True
    return False


@dataclass
class _Run:
    """Mutable state of one spec's evaluation."""

    ids: list[int]
    scores: dict[int, float] = field(default_factory=dict)

    def keep(self, keep: Sequence[int]) -> None:
        ks = set(keep)
        self.ids = [i for i in self.ids if i in ks]

    def add(self, i: int, v: float) -> None:
        self.scores[i] = self.scores.get(i, 0.0) + float(v)


class SceneView(SceneIndex):
    """The executor's scene look-ups: :class:`SceneIndex` plus geometry between regions."""

    def __init__(self, scene: Scene) -> None:
        super().__init__(scene)
        self.diag = math.hypot(self.w, self.h)
        self.scene = scene
        self.has_captions = scene.caption_source is not None or any(region_texts(r)[0] is not None for r in scene.regions)
        self.has_text = any(region_texts(r)[1] is not None for r in scene.regions)

    def need_captions(self, ids: Sequence[int]) -> None:
        """Captions of ``ids`` are about to be read: compute the missing ones (captions on demand)."""
        if self.scene.caption_source is not None:
            self.scene.captions(ids)

    def gap(self, i: int, j: int) -> float:
        ax, ay, aw, ah = self.bbox(i)
        bx, by, bw, bh = self.bbox(j)
        gx = max(0.0, max(bx - (ax + aw), ax - (bx + bw)))
        gy = max(0.0, max(by - (ay + ah), ay - (by + bh)))
        (cx, cy), (dx, dy) = self.centroid(i), self.centroid(j)
        return math.hypot(gx, gy) + 1e-3 * math.hypot(cx - dx, cy - dy)

    def viewer_distance(self, i: int) -> tuple[float, str]:
        """(distance to the camera, how): metres from the region's 3D fields when it has one, else the
        pixels between its lowest point and the image bottom (nearer things sit lower in the frame)."""
        r = self.regions[i]
        g3 = getattr(r, "geometry_3d", None)
        d3 = getattr(g3, "distance_m", None)
        if isinstance(d3, (int, float)) and math.isfinite(d3):
            return float(d3), "depth"
        for key in VIEWER_DISTANCE_KEYS:
            v = getattr(r, key, None)
            if v is None:
                v = r.attributes.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                return float(v), "depth"
        x, y, w, h = self.bbox(i)
        return float(self.h - (y + h)), "image"

    def bbox_within(self, i: int, j: int) -> bool:
        """Region i's bbox lies inside region j's bbox."""
        ax, ay, aw, ah = self.bbox(i)
        bx, by, bw, bh = self.bbox(j)
        return ax >= bx and ay >= by and ax + aw <= bx + bw and ay + ah <= by + bh

    def edge_distance(self, i: int, side: str) -> float:
        """Pixels between the region's bbox and that image border ('top', 'bottom', 'left', 'right')."""
        x, y, w, h = self.bbox(i)
        return {"top": y, "bottom": self.h - (y + h), "left": x, "right": self.w - (x + w)}[side]

    def alignment(self, c: int, r: int, dx: float, dy: float) -> float:
        """cos of the angle between (r → c) and the direction (dx, dy), in [0, 1]."""
        (cx, cy), (rx, ry) = self.centroid(c), self.centroid(r)
        vx, vy = cx - rx, cy - ry
        n = math.hypot(vx, vy)
        return max(0.0, (vx * dx + vy * dy) / n) if n > 0 else 0.0


@dataclass
class Trace:
    """Collects the executed steps (bounded)."""

    steps: list[LogicStep] = field(default_factory=list)
    dropped: int = 0

    def add(self, text: str, kept: Sequence[int] | None) -> None:
        if len(self.steps) >= MAX_STEPS:
            self.dropped += 1
            return
        self.steps.append(LogicStep(text, None if kept is None else sorted(int(k) for k in kept)))


class Executor:
    """Executes programs on scenes. ``matcher`` scores object words (see :class:`SemanticMatcher`)."""

    def __init__(self, matcher: SemanticMatcher, *, lazy: bool = True) -> None:
        self.matcher = matcher
        # lazy: compare object words with captions in rank order and stop once the answer is fixed
        # (see _noun_lazy); False compares every candidate (the reference the tests check against)
        self.lazy = bool(lazy)

    def run(self, scene: Scene, program: Program, trace: Trace | None = None) -> tuple[list[int], Trace]:
        """(target ids, sorted; the trace of steps). Pure: the scene is not modified."""
        trace = trace or Trace()
        if program.nothing:
            trace.add(f"nothing: {program.nothing}", [])
            return [], trace
        view = SceneView(scene)
        targets: list[int] = []
        for k, spec in enumerate(program.targets):
            label = f"[{k + 1}] " if len(program.targets) > 1 else ""
            ids = self._spec(view, spec, trace, label, depth=0)
            targets.extend(i for i in ids if i not in targets)
        if len(program.targets) > 1:
            trace.add(f"union of the {len(program.targets)} phrases: {ids_text(sorted(targets))}", targets)
        if trace.dropped:
            trace.steps.append(LogicStep(f"({trace.dropped} more steps not listed)", None))
        return sorted(targets), trace

    # ---- one object spec ----------------------------------------------------------------------

    def _spec(self, view: SceneView, spec: ObjectSpec, trace: Trace, label: str, depth: int,
              as_all: bool = False, pool: list[int] | None = None) -> list[int]:
        """Ids ``spec`` denotes (``as_all``: every fit, not the one best, for references; ``pool``: the
        candidates to start from instead of the phrase's own)."""
        run = _Run(self._pool(view, spec, trace, label) if pool is None else list(pool))
        nouns = [f for f in spec.filters if isinstance(f, NounFilter)]
        soft = [f for f in spec.filters if isinstance(f, AttrFilter) and f.kind in SOFT_KINDS]
        excludes = [f for f in spec.filters if isinstance(f, Exclude)]
        deferred: list[NounFilter] = []
        # something besides object words describes the target
        narrowing = spec.order is not None or bool(soft) or bool(excludes)
        for f in spec.filters:
            if isinstance(f, (NounFilter, Exclude)) or f in soft:
                continue
            if isinstance(f, TextFilter) and not self._text(view, run, f, trace, label):
                deferred.append(NounFilter(f.text.lower(), head=f.text.lower().split()[-1]))
                continue
            narrowing = True
            if isinstance(f, AttrFilter):
                self._attr(view, run, f, trace, label)
            elif isinstance(f, RelationFilter):
                self._relation(view, run, f, trace, label, depth)
        # what a purpose acts on is not the answer ("to cut the tape with": not the tape), unless it
        # affords the purpose itself ("to drink coffee from": the coffee mug)
        uses = [_affordance(f) for f in nouns if f.purpose and not f.negated and _affordance(f)]
        lazy = self._lazy_mode(view, spec, nouns, soft, excludes, deferred, as_all)
        for f in sorted(nouns, key=lambda f: not f.negated) + deferred:
            if lazy is not None and self._noun_lazy(view, run, f, spec, lazy, trace, label):
                continue
            self._noun(view, run, f, trace, label, narrowing, spare=uses if f.negated else ())
        singular = spec.quantity == "one" and not as_all
        for f in soft:
            if f.kind == "size" and singular and not f.negated and spec.order is None and len(run.ids) > 1:
                self._size_rank(view, run, f, trace, label)
            else:
                self._attr(view, run, f, trace, label)
        for f in excludes:  # among what is left ("every red disc except the leftmost one")
            pool = list(run.ids)
            drop = set(self._spec(view, f.spec, trace, label + "  except: ", depth + 1, pool=pool))
            run.keep([i for i in run.ids if i not in drop])
            trace.add(f"{label}except {ids_text(sorted(drop))}: kept {ids_text(run.ids)}", run.ids)
        if spec.order is not None and run.ids:
            self._order(view, run, spec.order, trace, label, depth)
        elif spec.quantity == "one" and not as_all and len(run.ids) > 1:
            best = sorted(run.ids, key=lambda i: (-round(run.scores.get(i, 0.0), 6), -view.area(i), i))[0]
            why = f"score {run.scores[best]:.2f}" if best in run.scores else "largest"
            trace.add(f"{label}one asked for, {len(run.ids)} fit: kept R{best} (best: {why})", [best])
            run.ids = [best]
        return run.ids

    def _pool(self, view: SceneView, spec: ObjectSpec, trace: Trace, label: str) -> list[int]:
        """The regions a phrase ranges over: role "object" ones, unless it names the support or the
        background ("the table", "the wall"), or no region is an object."""
        names_role = any(isinstance(f, NounFilter) and not f.negated and _role_word(f) for f in spec.filters)
        objects = [i for i in view.ids if view.role(i) == "object"]
        if names_role or len(objects) == len(view.ids) or not objects:
            return list(view.ids)
        others = [i for i in view.ids if i not in objects]
        trace.add(f"{label}objects only (not the support / background {ids_text(others)})", objects)
        return objects

    def _size_rank(self, view: SceneView, run: _Run, f: AttrFilter, trace: Trace, label: str) -> None:
        """A singular size word among several candidates: the most so of them ("the big red triangle")."""
        v = f.values[0]
        if v == "medium":
            self._attr(view, run, f, trace, label)
            return
        big = v in ("large", "huge")
        best = sorted(run.ids, key=lambda i: (-view.area(i) if big else view.area(i), i))[0]
        trace.add(f"{label}{f.describe()}: the {'largest' if big else 'smallest'} of {len(run.ids)}: R{best}", [best])
        run.ids = [best]

    # ---- filters -------------------------------------------------------------------------------

    def _attr(self, view: SceneView, run: _Run, f: AttrFilter, trace: Trace, label: str) -> None:
        before = list(run.ids)
        if f.kind == "colour":
            self._colour(view, run, f, trace, label)
            return
        has = {i: self._has_attr(view, i, f) for i in before}
        exact = [i for i in before if has[i] != f.negated]
        desc = f.describe()
        if exact or f.negated or f.kind not in SOFT_KINDS or not before:
            run.keep(exact)
            if not f.negated:
                for i in exact:  # prefer the most so among several ("the small cup": the smaller one)
                    run.add(i, 0.5 * self._degree(view, i, f, before))
            trace.add(f"{label}{desc}: kept {ids_text(run.ids)}", run.ids)
            return
        best = max(before, key=lambda i: (self._degree(view, i, f, before), -i))
        run.keep([best])
        trace.add(f"{label}{desc}: no region is exactly that; kept the most so, R{best}", run.ids)

    def _has_attr(self, view: SceneView, i: int, f: AttrFilter) -> bool:
        if f.kind == "writing":
            return bool(region_texts(view.regions[i])[1])
        if f.kind == "size":
            return view.attr(i, "size") in f.values
        if f.kind == "shape":
            return any(v in (view.attr(i, "shape") or []) for v in f.values)
        if f.kind == "brightness":
            return view.attr(i, "brightness_word") in f.values
        if f.kind == "texture":
            return view.attr(i, "texture_word") in f.values
        if f.kind == "position":
            pos, ph, pv = view.attr(i, "position"), view.attr(i, "position_h"), view.attr(i, "position_v")
            if pos is None:  # no attributes: the 3x3 cell of the centroid
                cx, cy = view.centroid(i)
                ph = "left" if cx < view.w / 3 else ("right" if cx >= 2 * view.w / 3 else "centre")
                pv = "top" if cy < view.h / 3 else ("bottom" if cy >= 2 * view.h / 3 else "middle")
                pos = next(k for k, v in POSITION_CELLS.items() if v == (ph, pv))
            for v in f.values:
                if v in POSITION_CELLS and pos == v:
                    return True
                if v == "middle-row" and pv == "middle":
                    return True
                if v.endswith("-row") and pv == v[:-4]:
                    return True
                if v.endswith("-column") and ph == v[:-7]:
                    return True
                if v == "middle" and pv == "middle":
                    return True
            return False
        return False

    def _degree(self, view: SceneView, i: int, f: AttrFilter, pool: Sequence[int]) -> float:
        """How much region i has the (gradable) property, in [0, 1] relative to ``pool``."""
        v = f.values[0]
        if f.kind == "size":
            areas = sorted(view.area(j) for j in pool)
            rank = areas.index(view.area(i)) / max(1, len(areas) - 1)
            if v in ("tiny", "small"):
                return 1.0 - rank
            if v == "medium":
                return 1.0 - abs(rank - 0.5) * 2
            return rank
        if f.kind == "position":
            tx, ty = POSITION_POINTS.get(v, (0.5, 0.5))
            cx, cy = view.centroid(i)
            dx = 0.0 if tx is None else cx / view.w - tx
            dy = 0.0 if ty is None else cy / view.h - ty
            return max(0.0, 1.0 - math.hypot(dx, dy))
        if f.kind == "shape":
            if v == "round":
                return float(view.attr(i, "circularity", 0.0) or 0.0)
            if v == "elongated":
                return 1.0 - 1.0 / max(1.0, float(view.attr(i, "elongation", 1.0) or 1.0))
            if v in ("square", "rectangular"):
                rect = float(view.attr(i, "rectangularity", view.attr(i, "solidity", 0.0)) or 0.0)
                rect = max(rect, float(view.attr(i, "straightness", 0.0) or 0.0))  # a box in perspective
                el = float(view.attr(i, "elongation", 1.0) or 1.0)
                return rect / (el if v == "square" else 1.0)
            if v == "irregular":
                return 1.0 - float(view.attr(i, "solidity", 1.0) or 1.0)
            return min(1.0, float(view.attr(i, "holes", 0) or 0))
        if f.kind == "brightness":
            b = float(view.attr(i, "brightness", 0.5) or 0.0)
            return b if v == "bright" else (1.0 - b if v == "dark" else 1.0 - abs(b - 0.5) * 2)
        if f.kind == "texture":
            t = float(view.attr(i, "texture", 0.0) or 0.0)
            return t if v == "textured" else 1.0 - t
        return 0.0

    def _colour(self, view: SceneView, run: _Run, f: AttrFilter, trace: Trace, label: str) -> None:
        vals = set(f.values)
        before = list(run.ids)
        if f.negated:
            run.keep([i for i in before if view.colour(i) not in vals])
            trace.add(f"{label}{f.describe()} (dominant colour): kept {ids_text(run.ids)}", run.ids)
            return
        dominant = [i for i in before if view.colour(i) in vals]
        if dominant:
            run.keep(dominant)
            for i in dominant:
                run.add(i, max(view.colours(i).get(v, 0.0) for v in vals))
            trace.add(f"{label}{f.describe()}: kept {ids_text(run.ids)}", run.ids)
            return
        partly = [i for i in before if any(view.colours(i).get(v, 0.0) >= PARTIAL_COLOUR_FRAC for v in vals)]
        run.keep(partly)
        for i in partly:
            run.add(i, max(view.colours(i).get(v, 0.0) for v in vals))
        note = "no region is mainly that colour; partly: " if partly else ""
        trace.add(f"{label}{f.describe()}: {note}kept {ids_text(run.ids)}", run.ids)

    def _text(self, view: SceneView, run: _Run, f: TextFilter, trace: Trace, label: str) -> bool:
        """Applies the filter; False when it is a hint nobody reads (the caller matches it as words)."""
        before = list(run.ids)
        read = {i: region_texts(view.regions[i])[1] or "" for i in before}
        hits = [i for i in before if text_matches(f.text, read[i])]
        source = "text read on it"
        if not hits and not f.negated:
            view.need_captions(before)
            caps = {i: region_texts(view.regions[i])[0] or "" for i in before}
            hits = [i for i in before if _norm_text(f.text) and f" {_norm_text(f.text)} " in f" {_norm_text(caps[i])} "]
            source = "its caption" if hits else source
        if f.negated:
            run.keep([i for i in before if i not in hits])
        elif hits or f.strict:
            run.keep(hits)
            for i in hits:
                run.add(i, 1.0)
        else:
            trace.add(f"{label}{f.describe()}: no region reads it; matched as object words instead", run.ids)
            return False
        trace.add(f"{label}{f.describe()} ({source}): kept {ids_text(run.ids)}", run.ids)
        return True

    def _noun(self, view: SceneView, run: _Run, f: NounFilter, trace: Trace, label: str, narrowing: bool,
              spare: Sequence[str] = ()) -> None:
        before = list(run.ids)
        if not before:
            trace.add(f"{label}{f.describe()}: nothing left to match", [])
            return
        shape = _shape_noun(f)
        role = _role_word(f)
        aff = _affordance(f)
        if role is not None and not f.negated:
            # "the table", "the wall": the regions' roles are exact facts of the scene; captions decide
            # only when no candidate has that role
            by_role = [i for i in before if view.role(i) == role]
            if by_role:
                run.keep(by_role)
                for i in by_role:
                    run.add(i, 2.0 * NAMED_SCORE)
                trace.add(f"{label}{f.describe()}: names the {role}: kept {ids_text(run.ids)}", run.ids)
                return
        view.need_captions(before)
        regions = [view.regions[i] for i in before]
        ns = self.matcher.score(regions, f.phrase, f.alternatives, f.head)
        lexical_only = not self.matcher.semantic
        if not view.has_captions:
            # no captioner: text read on the objects, the shape a shape noun names, or the role confirm it
            hits = [i for i in before if ns.why[i].startswith("reads")]
            words = f.phrase.split()
            label_hits: list[int] = []
            if len(words) > 1 and not f.purpose:  # "the keep dry box": its label before the noun
                label_words = " ".join(words[:-1])
                label_hits = [i for i in before if text_matches(label_words, region_texts(view.regions[i])[1] or "")]
                hits = hits or label_hits
            if not hits and not f.negated and aff in AFFORDANCE_SHAPES and shape is None and role is None:
                # a robot without a captioner: the shape that affords it (weak evidence, said so)
                ashape = AFFORDANCE_SHAPES[aff]
                run.keep(self._noun_check(view, before, ashape, None))
                trace.add(f"{label}{f.describe()}: no captions; affords {aff.replace('_', ' ')} by shape "
                          f"{ashape.describe()} (weak: the words themselves not checked): kept {ids_text(run.ids)}",
                          run.ids)
                return
            if shape is not None or role is not None:
                checked = self._noun_check(view, before, shape, role)
                what = f"shape {shape.describe()}" if shape is not None else f"role {role}"
                if f.negated:
                    run.keep([i for i in before if i not in checked])
                elif label_hits:  # the labelled one among those of the noun's shape
                    run.keep([i for i in label_hits if i in checked] or label_hits)
                else:
                    run.keep(sorted(set(checked) | set(hits)))
                trace.add(f"{label}{f.describe()}: no captions (the words themselves not checked); by {what}: "
                          f"kept {ids_text(run.ids)}", run.ids)
            elif f.negated:
                run.keep([i for i in before if i not in hits])
                trace.add(f"{label}{f.describe()}: no captions; by text read: kept {ids_text(run.ids)}", run.ids)
            elif hits:
                run.keep(hits)
                trace.add(f"{label}{f.describe()}: no captions; text read on {ids_text(hits)} names it", run.ids)
            elif narrowing:
                trace.add(f"{label}{f.describe()}: NOT CHECKED (no captions, no text and no shape name it); "
                          "the other filters decide", run.ids)
            else:
                run.keep([])
                trace.add(f"{label}{f.describe()}: no captions, text or shape can confirm it and nothing else "
                          "describes it: nothing", [])
            return
        if f.negated:
            drop = [i for i in before if ns.scores[i] >= NEGATED_FLOOR]
            if not drop and (shape is not None or role is not None):
                drop = self._noun_check(view, before, shape, role)
            spared = [i for i in drop if any(_caption_affords(view, i, a)[0] > 0 for a in spare)]
            drop = [i for i in drop if i not in spared]
            run.keep([i for i in before if i not in drop])
            note = f" (spared {ids_text(spared)}: it affords the use)" if spared else ""
            trace.add(f"{label}{f.describe()}: dropped {ids_text(drop)}{note}", run.ids)
            return
        floor = PURPOSE_FLOOR if f.purpose else MATCH_FLOOR
        ranked = sorted(before, key=lambda i: -ns.scores[i])[:3]
        detail = "; ".join(f"R{i} {ns.scores[i]:.2f}" for i in ranked)
        how = "lexical only (no sentence-embedding model)" if lexical_only else "caption/text similarity"
        if aff and f.purpose:
            # a purpose the vocabulary knows: the objects whose caption names something that affords it
            weights = {i: _caption_affords(view, i, aff) for i in before}
            afford = [i for i in before if weights[i][0] > 0]
            if afford:
                run.keep(afford)
                for i in afford:
                    run.add(i, 2.0 * weights[i][0] + ns.scores[i])
                shown = "; ".join(f"R{i} {weights[i][1]} {weights[i][0]:.1f}"
                                  for i in sorted(afford, key=lambda i: -weights[i][0])[:MAX_STEP_IDS])
                trace.add(f"{label}{f.describe()}: affords {aff.replace('_', ' ')} by caption noun [{shown}]: kept "
                          f"{ids_text(run.ids)}", run.ids)
                return
            # the vocabulary knows this use and no caption names such a thing: only a caption as close
            # as a name would be counts (not the looser purpose floor), and not the shape an LLM
            # word names ("something to eat" -> "bowl" must not make a round thing food)
            floor = MATCH_FLOOR
            shape = role = None
            trace.add(f"{label}{f.describe()}: no caption names a thing that affords {aff.replace('_', ' ')}; "
                      f"by similarity (floor {floor:.2f})", None)
        kept = ns.matches(before, floor=floor, margin=MATCH_MARGIN)
        if not kept and aff and not f.purpose and shape is None and role is None:
            # a kind of thing ("a snack", "some food"): captions first, then what affords its use
            weights = {i: _caption_affords(view, i, aff) for i in before}
            kept = [i for i in before if weights[i][0] > 0]
            run.keep(kept)
            for i in kept:
                run.add(i, 2.0 * weights[i][0])
            trace.add(f"{label}{f.describe()} by {how} [{detail}]: no caption names it; a kind of thing that affords "
                      f"{aff.replace('_', ' ')}: kept {ids_text(run.ids)}", run.ids)
            return
        if not kept and (shape is not None or role is not None):
            # captions first, then the shape (or role) the noun names
            kept = self._noun_check(view, before, shape, role)
            what = f"shape {shape.describe()}" if shape is not None else f"role {role}"
            run.keep(kept)
            trace.add(f"{label}{f.describe()} by {how} [{detail}]: no caption names it; by {what}: kept "
                      f"{ids_text(run.ids)}", run.ids)
            return
        run.keep(kept)
        for i in kept:
            run.add(i, 2.0 * ns.scores[i])  # object words weigh most when one region must be chosen
        trace.add(f"{label}{f.describe()} by {how} [{detail}]: kept {ids_text(run.ids)}", run.ids)

    # ---- captions on demand: object words compared in rank order ---------------------------

    def _lazy_mode(self, view: SceneView, spec: ObjectSpec, nouns: list[NounFilter], soft: list, excludes: list,
                   deferred: list, as_all: bool) -> str | None:
        """"order" / "best" when the phrase's one object word may be compared lazily (``_noun_lazy``),
        else None. Only phrases whose answer after the object word is a pure function of per-region
        facts qualify: one positive object word, no exclusions after it, and either a superlative / ordinal on a
        geometric key (not "closest to X", not "the middle one") and no gradable word, or one object
        asked for with one positional / brightness / texture word after it ("soft"), or, without an
        embedder, one object asked for with nothing after it ("best")."""
        if not self.lazy or not view.has_captions or len(nouns) != 1 or nouns[0].negated or deferred or excludes:
            return None
        if nouns[0].purpose or _role_word(nouns[0]) is not None:
            return None  # a purpose is kept by the vocabulary's affordances first, a role noun by the role (_noun)
        o = spec.order
        if soft:  # "the cup on the left": one exact-or-most-so word whose degree is the region's own
            g = soft[0]
            ok = len(soft) == 1 and g.kind in ("position", "brightness", "texture") and not g.negated
            return "soft" if ok and o is None and spec.quantity == "one" and not as_all else None
        if o is not None:
            return "order" if o.key != "distance" and o.rank >= 1 else None
        # "best" needs a compared candidate whose total no uncompared one can reach; with an embedder a
        # caption can score up to 1, which only a caption naming a bare object word reaches
        # (NAMED_SCORE); for other phrases comparing in steps would only split the captioner's batch
        reachable = not self.matcher.semantic or bare_phrase(nouns[0].phrase, nouns[0].head)
        return "best" if spec.quantity == "one" and not as_all and reachable else None

    def _noun_lazy(self, view: SceneView, run: _Run, f: NounFilter, spec: ObjectSpec, mode: str, trace: Trace,
                   label: str) -> bool:
        """Compares the object word with the candidates' captions a few at a time, in rank order, and
        stops as soon as the phrase's answer is the one comparing every candidate would give; True
        when it decided (``run`` now holds what the rest of the phrase needs), False when it compared
        all of them without that (the caller then runs the full ``_noun``, on cached captions).

        The rule of ``_noun`` is kept exactly: a candidate is kept when its score s reaches the floor
        and lies within ``MATCH_MARGIN`` of the best score of all candidates (top). Uncompared
        candidates score at most ``matcher.bound`` (b), so with ``seen`` the best compared score,
        top lies in [seen, max(seen, b of the uncompared)]: s >= floor and s >= that upper end - margin
        is kept for sure; s < floor or s < seen - margin is out for sure; else open.
        * ``order`` ("the leftmost cup", "the second biggest mug"): candidates in the ordering's rank
          order; decided once the first rank + count - 1 kept ones are sure and every candidate
          before them is sure (kept or out). ``run.ids`` becomes those kept ones, so the ordering
          step picks the same regions as after a full comparison.
        * ``best`` ("the mug", "the red mug"): candidates in decreasing order of the best total
          score they could reach (their score so far + 2·b, then area, then id: the "one asked for"
          rule's order); decided when the best possible-kept compared one is kept for sure and beats
          every open one and every uncompared one's best possible total. Only without an embedder
          (see ``_lazy_mode``).
        * ``soft`` ("the cup on the left": one object asked for, then one gradable word whose degree is
          the region's own — position, brightness, texture — that keeps the candidates exactly so when
          any is kept, else the most so): the candidates exactly so first, then the others most so
          first; decided when all exact ones are sure and at least one is kept (``run.ids`` becomes the
          kept ones among them, which is what the gradable word then keeps after a full comparison; the
          one asked for is picked among them as before), or when all exact ones are out and the first
          of the others not out is kept for sure (it is the most so of those kept).
        Steps of 4, 4, 8, 16, ... candidates (one captioner batch each). The walk does not depend on
        which captions are cached, so the chain is the same with captions on demand or all.
        """
        before = list(run.ids)
        floor = PURPOSE_FLOOR if f.purpose else MATCH_FLOOR
        bound = {i: self.matcher.bound(view.regions[i]) for i in before}
        o = spec.order
        exact: set[int] = set()
        if mode == "soft":  # the regions with the gradable word's exact attribute first, then the rest
            g = next(x for x in spec.filters if isinstance(x, AttrFilter) and x.kind in SOFT_KINDS)
            exact = {i for i in before if self._has_attr(view, i, g)}
            # then the others, most so first: when none of the exact ones is kept, the word keeps the
            # most so of the kept ones (a position, brightness or texture degree is the region's own)
            rest = sorted((i for i in before if i not in exact), key=lambda i: (-self._degree(view, i, g, before), i))
            walk = [i for i in before if i in exact] + rest
        elif mode == "order":
            vals = {i: _order_value(view, i, o)[0] for i in before}
            walk = sorted(before, key=lambda i: (-vals[i] if o.descending else vals[i], i))
            need = o.rank - 1 + max(1, o.count)
        else:
            def ub(i: int) -> tuple[float, float, int]:
                return (round(run.scores.get(i, 0.0) + 2.0 * bound[i], 6), view.area(i), -i)
            walk = sorted(before, key=ub, reverse=True)
        scores: dict[int, float] = {}
        done = 0
        decided: list[int] | None = None
        while done < len(walk):
            chunk = walk[done : done + max(LAZY_CHUNK, done)]  # 4, 4, 8, 16, ...: O(log n) captioner calls
            view.need_captions(chunk)
            scores.update(self.matcher.score([view.regions[i] for i in chunk], f.phrase, f.alternatives, f.head).scores)
            done += len(chunk)
            if done == len(walk):
                break  # everything compared: the full rule decides (below, through _noun)
            seen = max(scores.values())
            top_hi = max(seen, max(bound[i] for i in walk[done:]))

            def status(i: int) -> str:
                s = scores[i]
                if s < floor or s < seen - MATCH_MARGIN:
                    return "out"
                return "in" if s >= top_hi - MATCH_MARGIN else "open"

            if mode == "soft":
                if all(i in scores for i in exact):
                    st = {i: status(i) for i in exact}
                    if "open" not in st.values() and "in" in st.values():
                        decided = [i for i in walk if st.get(i) == "in"]
                    elif "open" not in st.values():  # no exact one is kept: the first kept one, most so first
                        for i in rest[: done - len(exact)]:
                            si = status(i)
                            if si == "open":
                                break
                            if si == "in":
                                decided = [i]
                                break
            elif mode == "order":
                kept: list[int] = []
                for i in walk[:done]:
                    st = status(i)
                    if st == "open":
                        break
                    if st == "in":
                        kept.append(i)
                        if len(kept) == need:
                            decided = kept
                            break
            else:
                def key(i: int) -> tuple[float, float, int]:
                    return (round(run.scores.get(i, 0.0) + 2.0 * scores[i], 6), view.area(i), -i)
                possible = [i for i in walk[:done] if status(i) != "out"]
                if possible:
                    b = max(possible, key=key)
                    if status(b) == "in" and all(key(b) > ub(j) for j in walk[done:]):
                        decided = [b]
            if decided is not None:
                break
        if decided is None:
            return False
        for i in decided:
            run.add(i, 2.0 * scores[i])
        run.keep(decided)
        how = "lexical only (no sentence-embedding model)" if not self.matcher.semantic else "caption/text similarity"
        ranked = sorted(scores, key=lambda i: -scores[i])[:3]
        detail = "; ".join(f"R{i} {scores[i]:.2f}" for i in ranked)
        order = {"order": f"in {o.word or o.key} order" if o is not None else "", "best": "best possible first",
                 "soft": "those with the exact attribute first"}[mode]
        trace.add(f"{label}{f.describe()} by {how} [{detail}], {done} of {len(before)} compared ({order}): kept "
                  f"{ids_text(run.ids)}; the others cannot change the answer", run.ids)
        return True

    @staticmethod
    def _noun_check(view: SceneView, ids: Sequence[int], shape, role: str | None) -> list[int]:
        if shape is not None:
            return [i for i in ids if shape.holds(view.attr(i, "shape") or [])]
        return [i for i in ids if view.role(i) == role]

    # ---- relations -------------------------------------------------------------------------------

    def _relation(self, view: SceneView, run: _Run, f: RelationFilter, trace: Trace, label: str, depth: int) -> None:
        sub = label + "  "
        refs = self._spec(view, f.ref, trace, sub + "ref: ", depth + 1, as_all=_ref_all(f.ref))
        refs2 = self._spec(view, f.ref2, trace, sub + "ref 2: ", depth + 1, as_all=_ref_all(f.ref2)) \
            if f.ref2 is not None else []
        before = list(run.ids)
        test = self._relation_test(view, f.relation, refs, refs2)
        held: dict[int, float] = {}
        for c in before:
            s = test(c)
            if s is not None:
                held[c] = s
        floor = EVIDENCE_FLOOR.get(f.relation)
        if floor is not None and not f.negated and any(v >= floor for v in held.values()):
            held = {c: v for c, v in held.items() if v >= floor}  # stacked evidence: the guesses go
        if f.negated:
            run.keep([c for c in before if c not in held])
        else:
            run.keep(list(held))
            for c, s in held.items():
                run.add(c, s)
        ref_txt = ids_text(refs) + (f" and {ids_text(refs2)}" if f.ref2 is not None else "")
        rel = f.relation.replace("_", " ")
        trace.add(f"{label}{'not ' if f.negated else ''}{rel} {ref_txt}: kept {ids_text(run.ids)}", run.ids)

    def _relation_test(self, view: SceneView, rel: str, refs: list[int], refs2: list[int]) -> Callable[[int], float | None]:
        """A function: candidate id -> score in [0, 1] if the relation holds with some reference, else None."""

        def best(c: int, one: Callable[[int, int], float | None]) -> float | None:
            vals = [v for r in refs if r != c and (v := one(c, r)) is not None]
            return max(vals) if vals else None

        e = view.edge

        def directional(dx: float, dy: float, axis: str, sign: int) -> Callable[[int], float | None]:
            return lambda c: best(c, lambda c_, r: view.alignment(c_, r, dx, dy) if view.direction(c_, r, axis) == sign else None)

        if rel == "left_of":
            return directional(-1, 0, "x", -1)
        if rel == "right_of":
            return directional(1, 0, "x", 1)
        if rel in ("above", "below"):
            sign = -1 if rel == "above" else 1
            stacked = "on_top_of" if rel == "above" else "under"
            return lambda c: best(c, lambda c_, r: 1.0 if e(stacked, c_, r) else (
                view.alignment(c_, r, 0, sign) if view.direction(c_, r, "y") == sign else None))
        if rel == "on":
            def on(c: int, r: int) -> float | None:
                if e("on_top_of", c, r):
                    return 1.0
                if e("inside", c, r):
                    return 0.9
                if e("touching", c, r) and view.direction(c, r, "y") == -1:
                    return 0.5
                return None
            return lambda c: best(c, on)
        if rel == "under":  # stacked under it, else below it (a camera looking down sees "under" as lower)
            return lambda c: best(c, lambda c_, r: 1.0 if e("under", c_, r) else (
                (0.5 if e("touching", c_, r) else 0.3) * view.alignment(c_, r, 0, 1)
                if view.direction(c_, r, "y") == 1 else None))
        # "in the bowl" seen from above: inside it, or resting on it within its outline
        if rel == "inside":
            return lambda c: best(c, lambda c_, r: 1.0 if e("inside", c_, r) else (
                0.9 if e("on_top_of", c_, r) and view.bbox_within(c_, r) else None))
        if rel == "contains":
            return lambda c: best(c, lambda c_, r: 1.0 if e("contains", c_, r) else (
                0.9 if e("under", c_, r) and view.bbox_within(r, c_) else None))
        if rel == "carries":
            return lambda c: best(c, lambda c_, r: 1.0 if e("under", c_, r) or e("contains", c_, r) else None)
        if rel == "touching":
            return lambda c: best(c, lambda c_, r: 1.0 if any(e(p, c_, r) for p in ("touching", "on_top_of", "under")) else None)
        if rel == "near":
            lim = NEAR_FRAC * view.diag

            def near(c: int, r: int) -> float | None:
                g = view.gap(c, r)
                if any(e(p, c, r) for p in ("touching", "on_top_of", "under")) or g <= lim:
                    return 1.0 / (1.0 + 10.0 * g / view.diag)
                return None
            return lambda c: best(c, near)
        if rel == "in_front_of":
            return lambda c: best(c, lambda c_, r: 1.0 if e("occludes", c_, r) else None)
        if rel == "behind":
            return lambda c: best(c, lambda c_, r: 1.0 if e("occluded_by", c_, r) else None)
        if rel == "larger_than":
            return lambda c: best(c, lambda c_, r: min(1.0, view.area(c_) / max(1.0, view.area(r)) - 1) if view.area(c_) > view.area(r) else None)
        if rel == "smaller_than":
            return lambda c: best(c, lambda c_, r: 1.0 - view.area(c_) / max(1.0, view.area(r)) if view.area(c_) < view.area(r) else None)
        if rel == "same_colour_as":
            return lambda c: best(c, lambda c_, r: 1.0 if view.colour(c_) == view.colour(r) and view.colour(c_) != "none" else None)
        if rel == "between":
            def between(c: int) -> float | None:
                vals = []
                (cx, cy) = view.centroid(c)
                for a in refs:
                    for b in refs2:
                        if len({a, b, c}) < 3:
                            continue
                        (ax, ay), (bx, by) = view.centroid(a), view.centroid(b)
                        vx, vy = bx - ax, by - ay
                        n2 = vx * vx + vy * vy
                        if n2 <= 0:
                            continue
                        t = ((cx - ax) * vx + (cy - ay) * vy) / n2
                        perp = abs((cx - ax) * vy - (cy - ay) * vx) / math.sqrt(n2)
                        if 0.0 < t < 1.0 and perp <= 0.5 * math.sqrt(n2):
                            vals.append(1.0 - perp / math.sqrt(n2))
                return max(vals) if vals else None
            return between
        return lambda c: None  # pragma: no cover - the parser emits only known relations

    # ---- superlatives / ordinals ----------------------------------------------------------------

    def _order(self, view: SceneView, run: _Run, o: Order, trace: Trace, label: str, depth: int) -> None:
        refs: list[int] = []
        if o.key == "distance":
            ref = o.ref if o.ref is not None else ObjectSpec()
            refs = self._spec(view, ref, trace, label + "  ref: ", depth + 1, as_all=_ref_all(ref))
        how = ""

        def key(i: int) -> float:
            nonlocal how
            v, h = _order_value(view, i, o, refs)
            how = h or how
            return v

        pool = [i for i in run.ids if not (o.key == "distance" and (i in refs or key(i) == math.inf))]
        ranked = sorted(pool, key=lambda i: (-key(i) if o.descending else key(i), i))
        if o.rank == 0:  # the middle one
            keep = [ranked[(len(ranked) - 1) // 2]] if len(ranked) % 2 == 1 else []
            if not keep and ranked:
                trace.add(f"{label}{o.word}: {len(ranked)} candidates have no single middle one", [])
        elif o.rank < 0 or o.rank > len(ranked):
            keep = []
            trace.add(f"{label}{o.word or o.key}: rank {o.rank} of {len(ranked)} candidates does not exist", [])
        else:
            keep = ranked[o.rank - 1 : o.rank - 1 + max(1, o.count)]
        run.keep(keep)
        ref = f" {ids_text(refs)}" if o.key == "distance" else ""
        note = {"depth": " (by depth)", "image": " (no depth: lowest in the image is nearest)",
                "height": " (height above the table, m)", "image height": " (no depth: height in the image)",
                "elevation": " (its top above the table, m)", "image elevation": " (no depth: highest in the image)"}.get(how, "")
        trace.add(f"{label}{o.word or o.key}{ref}{note} of {len(pool)}: kept {ids_text(run.ids)}", run.ids)


def _order_value(view: SceneView, i: int, o: Order, refs: Sequence[int] = ()) -> tuple[float, str]:
    """(the value region i is ranked by under ``o``, how it was measured: "" or a note key)."""
    if o.key == "area":
        return view.area(i), ""
    if o.key == "x":
        return view.centroid(i)[0], ""
    if o.key == "y":
        return view.centroid(i)[1], ""
    if o.key == "distance":
        d = [view.gap(i, r) for r in refs if r != i]
        return (min(d) if d else math.inf), ""
    if o.key.startswith("edge_"):
        return view.edge_distance(i, o.key[5:]), ""
    if o.key == "viewer":
        return view.viewer_distance(i)
    if o.key == "elevation":  # its top above the support with depth (m), else up the image (-y, px)
        top = view.attr(i, "top_above_support_m")
        if top is not None:
            return float(top), "elevation"
        return -view.centroid(i)[1], "image elevation"
    if o.key == "height":  # above the support with depth (m), else the image height (px)
        hm = view.attr(i, "height_m")
        if hm is not None:
            return float(hm), "height"
        return float(view.bbox(i)[3]), "image height"
    return float(view.attr(i, o.key, 0.0) or 0.0), ""


def _ref_all(spec: ObjectSpec | None) -> bool:
    """References count as every region they describe ("on the book": any book), unless ordered."""
    return spec is None or spec.order is None


def _shape_noun(f: NounFilter):
    """The vocabulary's shape check for the noun's head word, else for the first of its alternative
    words (the LLM's) that names one; None when none does."""
    heads = ([] if not f.head or f.purpose else [f.head]) + list(f.alternatives)
    for h in heads:
        words = h.split()
        if words and singular(words[-1]) in SHAPE_NOUNS:
            return SHAPE_NOUNS[singular(words[-1])]
    return None


def _affordance(f: NounFilter) -> str:
    """The affordance a noun filter stands for: the purpose's (parsed), else that of a head word
    naming a kind of thing or a property of use ("snack", "food", "sharp": ``AFFORDANCE_WORDS``)."""
    if f.affordance:
        return f.affordance
    if f.purpose or not f.head:
        return ""
    w = f.head.split()[-1]
    return AFFORDANCE_WORDS.get(w) or AFFORDANCE_WORDS.get(singular(w)) or ""


def _caption_affords(view: "SceneView", i: int, affordance: str) -> tuple[float, str]:
    """(weight, word) with which region i's caption names something affording ``affordance``."""
    return caption_affordance(region_texts(view.regions[i])[0], affordance)


def _role_word(f: NounFilter) -> str | None:
    """"support" / "background" when the noun's head names one ("the table", "the wall")."""
    if not f.head or f.purpose:
        return None
    return ROLE_NOUNS.get(singular(f.head.split()[-1]))
