"""The deduce-stage interface shared by every mode (``direct``, ``program``) and its common checks.

A :class:`Deducer` turns (scene, query) into an :class:`~gear_edge.types.Answer`: target region ids,
the logic chain (``LogicStep`` list), the merged target mask (COCO RLE), token counts and timings (ms).
Every mode ends with :func:`finish_answer`, so the guarantees "targets exist in the scene, each once,
mask = union of their masks" hold whatever produced the ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from gear_edge.errors import InputError
from gear_edge.types import Answer, LogicStep, Scene

DEFAULT_MAX_QUERY_CHARS = 2000
# Words that carry no criterion on their own: a query made only of these (or of no letters/digits at
# all: "???", an emoji) names nothing to look for.
FUNCTION_WORDS = frozenset(
    "the a an this that these those some any one it its please me my of".split()
)
NO_CRITERION = "no criterion found in the query (no colour, size, position, shape, text or object named)"
_WORDS = re.compile(r"[^\W_]+")
# a number with an ordinal suffix, with what could make it malformed: a sign, a fraction
_ORDINAL = re.compile(r"(?<![\w.])([-+\u2212]?\d+(?:[.,]\d+)*)\s*(st|nd|rd|th)\b", re.IGNORECASE)


@runtime_checkable
class Deducer(Protocol):
    """One deduction mode. ``mode`` is its name as written in ``Answer.mode`` and in config."""

    mode: str

    def deduce(self, scene: Scene, query: str) -> Answer:
        """The answer to ``query`` on ``scene``; raises InputError for an empty or oversize query."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """The local LLM the deducers and the data engine's question writer use
    (:class:`gear_edge.deduce.llm.LocalLLM`): chat-template rendering, token counting and generation
    under a grammar with a per-scene prefix cache (see that class for the argument types)."""

    n_ctx: int

    def chat_parts(self, system: Any, scene: Any, question: Any, examples: Any = ()) -> tuple[Any, Any]: ...

    def count_tokens(self, text: Any) -> int: ...

    def generate(self, scene_key: Any, prefix: Any, suffix: Any, grammar: Any = None, max_tokens: int = 256,
                 temperature: float = 0.0) -> Any: ...


def validate_query(query: str, max_chars: int = DEFAULT_MAX_QUERY_CHARS) -> str:
    """Returns ``query`` stripped; InputError when it is not a string, empty/whitespace, or > ``max_chars``."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    stripped = query.strip()
    if not stripped:
        raise InputError("query is empty; ask something about the scene, e.g. 'the red cup on the table'")
    if len(stripped) > max_chars:
        raise InputError(
            f"query has {len(stripped)} characters, more than the limit of {max_chars}; shorten it"
        )
    check_ordinals(stripped)
    return stripped


def check_ordinals(query: str) -> None:
    """InputError naming the word when ``query`` has a malformed ordinal ("-3rd", "2.5th", "0th"):
    ordinals are whole numbers from 1."""
    for m in _ORDINAL.finditer(query):
        number = m.group(1)
        whole = number.isdigit() or re.fullmatch(r"\d{1,3}(?:,\d{3})+", number) is not None
        if not whole or int(number.replace(",", "")) == 0:
            raise InputError(
                f"query {query!r}: {m.group(0)!r} is not an ordinal; use a whole number from 1 (1st, 2nd, 3rd, ...)"
            )


def content_free(query: str) -> bool:
    """True when ``query`` names no criterion: no letters or digits, or only :data:`FUNCTION_WORDS`."""
    words = _WORDS.findall(query.lower())
    return all(w in FUNCTION_WORDS for w in words)


def _as_step(step: LogicStep | str) -> LogicStep:
    if isinstance(step, LogicStep):
        return step
    if isinstance(step, str):
        return LogicStep(step)
    raise InputError(f"a logic step must be a LogicStep or a string, got {type(step).__name__}")


def finish_answer(
    scene: Scene,
    query: str,
    targets: Iterable[int],
    steps: Sequence[LogicStep | str],
    mode: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    timings: Mapping[str, float] | None = None,
) -> Answer:
    """Builds the Answer: checks every target id is in ``scene`` (InputError naming the bad ids otherwise),
    de-duplicates the targets keeping first occurrences in order, and sets ``mask`` to the union
    (:func:`gear_edge.masks.merge`) of the targets' RLEs, or None without targets."""
    targets = list(targets)
    known = set(scene.ids)
    bad = [t for t in targets if not isinstance(t, int) or isinstance(t, bool) or t not in known]
    if bad:
        raise InputError(f"answer names region id(s) {bad} that are not in the scene (ids: {sorted(known)})")
    unique = list(dict.fromkeys(targets))
    mask = None
    if unique:
        import gear_edge.masks as gm

        mask = gm.merge([scene.region(t).rle for t in unique])
    return Answer(
        query=query,
        targets=unique,
        steps=[_as_step(s) for s in steps],
        mask=mask,
        mode=mode,
        prompt_tokens=int(prompt_tokens),
        completion_tokens=int(completion_tokens),
        timings={k: float(v) for k, v in (timings or {}).items()},
    )
