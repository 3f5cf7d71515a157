"""Captions on demand: a scene's region captions computed the first time something asks for them.

Captioning is the describe stage's most expensive part on a robot, and most queries never read most
captions: the program deducer applies its exact filters (colour, size, position, relations, text)
first and only then compares object words with the captions of the regions still left. A
:class:`CaptionCache` attached to the Scene (``Scene.caption_source``) captions exactly the regions
asked for (``Scene.captions(ids)``) that have none yet, in one batch per request, and keeps the result
on the Region, so later queries on the scene reuse it. ``[describe] captions = "all"`` captions every
region during perception through the same cache (identical captions either way).

Under a superlative / ordinal or one position word the executor asks in rank order, a few regions at
a time, and stops once the answer is fixed (``gear_edge.deduce.program.executor.Executor._noun_lazy``);
a tracked target's caption is handed to the next perceived frame's region under its predicted mask
(``gear_edge.tracker.Tracker.reuse_captions``), so that region is not captioned again.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from gear_edge.types import Region


class CaptionCache:
    """Captions the regions of one image on request. ``captioner``: a ``RegionCaptioner``
    (``caption(image, rles) -> list[str]``); ``image``: the RGB uint8 ``H x W x 3`` frame the regions
    come from. Counters: ``captioned`` regions, ``calls`` to the captioner, ``ms`` spent in it."""

    def __init__(self, image: np.ndarray, captioner: Any) -> None:
        self.image = image
        self.captioner = captioner
        self.captioned = 0
        self.calls = 0
        self.ms = 0.0

    def fill(self, regions: Sequence[Region]) -> int:
        """Captions the given regions that have no caption yet (one captioner call); returns how many."""
        todo = [r for r in regions if r.caption is None]
        if not todo:
            return 0
        t0 = time.perf_counter()
        captions = self.captioner.caption(self.image, [r.rle for r in todo])
        for r, c in zip(todo, captions):
            r.caption = str(c)
        self.ms += (time.perf_counter() - t0) * 1e3
        self.captioned += len(todo)
        self.calls += 1
        return len(todo)

    def stats(self) -> dict[str, float]:
        return {"captioned": self.captioned, "calls": self.calls, "ms": self.ms}
