"""Verification: a QA pair is kept only if the deducer, asked the question on the same scene,
answers with the same regions.

:class:`Verifier` asks the deducer and compares target sets. Agreement is exact set equality by
default; with ``min_iou`` set, different id sets whose merged masks overlap at least that much
(IoU) also agree (a part that is nearly all of its object). Every rejection carries a reason code
and a sentence:

* ``deducer_none``   — the deducer found nothing, the writer expected regions;
* ``deducer_found``  — the writer expected nothing ("absent"), the deducer found regions;
* ``subset`` / ``superset`` / ``overlap`` / ``disjoint`` — both found regions, the sets differ so;
* ``deducer_error``  — the deducer raised a GearEdgeError (e.g. the question was rejected as input);
* ``duplicate``      — the same question (normalised) was already asked on this image;
* ``writer_invalid`` — the writer's own output was unusable (an LLM question naming region ids, too short).

The last two are decided by the engine before the deducer is asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gear_edge.masks as gm
from gear_edge.data_engine.base import Answerer, Candidate, as_answerer
from gear_edge.errors import GearEdgeError, InputError
from gear_edge.types import Answer, LogicStep, Scene

REASONS = ("agree", "agree_mask", "deducer_none", "deducer_found", "subset", "superset", "overlap", "disjoint",
           "deducer_error", "duplicate", "writer_invalid")


@dataclass
class Verdict:
    kept: bool
    reason: str  # one of REASONS
    detail: str
    deducer_targets: list[int] = field(default_factory=list)
    chain: list[LogicStep] = field(default_factory=list)
    ms: float = 0.0


def _ids(ids) -> str:
    ids = list(ids)
    return ", ".join(f"R{i}" for i in ids) if ids else "none"


class Verifier:
    """Asks ``deducer`` (``ask`` or ``deduce``) each candidate's question and compares the answers."""

    def __init__(self, deducer, min_iou: float | None = None) -> None:
        if min_iou is not None and not (0.0 < min_iou <= 1.0):
            raise InputError(f"min_iou must be in (0, 1] or None, got {min_iou}")
        self.deducer: Answerer = as_answerer(deducer)
        self.min_iou = min_iou

    def settings(self) -> dict:
        return {"agreement": "exact ids" if self.min_iou is None else f"ids or mask IoU >= {self.min_iou}"}

    def verify(self, scene: Scene, cand: Candidate) -> Verdict:
        t0 = time.perf_counter()
        try:
            answer: Answer = self.deducer.ask(scene, cand.question)
        except GearEdgeError as exc:
            return Verdict(False, "deducer_error", f"the deducer raised {type(exc).__name__}: {exc}", [], [],
                           (time.perf_counter() - t0) * 1e3)
        ms = (time.perf_counter() - t0) * 1e3
        got = sorted(set(answer.targets))
        want = list(cand.targets)
        chain = list(answer.steps)
        if got == want:
            return Verdict(True, "agree", f"deducer agrees: {_ids(got)}", got, chain, ms)
        if want and got and self.min_iou is not None:
            iou = float(gm.iou([gm.merge([scene.region(t).rle for t in got])],
                               [gm.merge([scene.region(t).rle for t in want])])[0, 0])
            if iou >= self.min_iou:
                return Verdict(True, "agree_mask", f"deducer {_ids(got)} vs {_ids(want)}: mask IoU {iou:.3f}", got, chain, ms)
        sg, sw = set(got), set(want)
        if not got:
            reason, detail = "deducer_none", f"deducer found nothing; expected {_ids(want)}"
        elif not want:
            reason, detail = "deducer_found", f"expected nothing; deducer found {_ids(got)}"
        elif sg < sw:
            reason, detail = "subset", f"deducer found {_ids(got)}, only part of {_ids(want)}"
        elif sg > sw:
            reason, detail = "superset", f"deducer found {_ids(got)}, more than {_ids(want)}"
        elif sg & sw:
            reason, detail = "overlap", f"deducer found {_ids(got)}; expected {_ids(want)}"
        else:
            reason, detail = "disjoint", f"deducer found {_ids(got)}; expected {_ids(want)}"
        return Verdict(False, reason, detail, got, chain, ms)
