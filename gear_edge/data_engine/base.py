"""Small interfaces the data engine is built on, and the candidate QA pair they exchange.

The engine depends on three protocols, so any component that fits can be plugged in (tests use
real lightweight ones: geometry-only describe on given masks and the program deducer without LLM):

* :class:`Perceiver` — ``perceive(image, masks=None) -> Scene`` (``GearSeg`` is one);
* :class:`Answerer` — ``ask(scene, query) -> Answer`` (``GearSeg`` is one; :func:`as_answerer` adapts
  a :class:`gear_edge.deduce.base.Deducer`, whose method is ``deduce(scene, query)``);
* :class:`QuestionWriter` — ``write(scene, rng) -> list[Candidate]``: proposes questions with the
  region ids that answer them (template writer, LLM writer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from gear_edge.data_engine.taxonomy import check_class
from gear_edge.errors import InputError
from gear_edge.types import RLE, Answer, Scene


@runtime_checkable
class Perceiver(Protocol):
    def perceive(self, image: np.ndarray, masks: Sequence[RLE] | None = None) -> Scene: ...


@runtime_checkable
class Answerer(Protocol):
    def ask(self, scene: Scene, query: str) -> Answer: ...


@dataclass(frozen=True)
class Candidate:
    """A proposed QA pair on one scene.

    ``targets``: region ids of the scene that answer ``question`` (sorted, unique; empty = nothing
    fits). ``writer``: which writer made it ("template", "llm"); ``template``: the writer's own
    name for the pattern (e.g. "spatial.relation.left_of"); ``rationale``: the writer's reasoning
    steps (how it computed the targets).
    """

    question: str
    targets: tuple[int, ...]
    cls: str
    writer: str
    template: str = ""
    rationale: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_class(self.cls)
        if not isinstance(self.question, str) or not self.question.strip():
            raise InputError("a candidate question must be a non-empty string")
        object.__setattr__(self, "targets", tuple(sorted({int(t) for t in self.targets})))
        object.__setattr__(self, "rationale", tuple(str(s) for s in self.rationale))


@runtime_checkable
class QuestionWriter(Protocol):
    name: str

    def write(self, scene: Scene, rng: random.Random) -> list[Candidate]: ...


class _DeduceAdapter:
    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def ask(self, scene: Scene, query: str) -> Answer:
        return self._obj.deduce(scene, query)


def as_answerer(obj: Any) -> Answerer:
    """``obj`` itself when it has ``ask(scene, query)``; an adapter when it has ``deduce(scene, query)``."""
    if hasattr(obj, "ask"):
        return obj
    if hasattr(obj, "deduce"):
        return _DeduceAdapter(obj)
    raise InputError(f"a deducer needs ask(scene, query) or deduce(scene, query); {type(obj).__name__} has neither")


def normalise_question(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: the key for duplicate questions."""
    kept = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())
