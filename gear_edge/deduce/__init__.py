"""Deduce stage: (scene, query) → Answer (targets, logic chain, merged mask).

Modes behind one :class:`~gear_edge.deduce.base.Deducer` interface:
``direct`` (the LLM reads scene lines and picks ids under a per-scene grammar, :mod:`.direct`) and
``program`` (a typed query program executed exactly on the scene, :mod:`.program`).
The LLM runtime (llama-cpp-python, extra ``[llm]``) is imported lazily by :mod:`.llm`.
"""

from gear_edge.deduce.base import DEFAULT_MAX_QUERY_CHARS, Deducer, finish_answer, validate_query

__all__ = ["DEFAULT_MAX_QUERY_CHARS", "Deducer", "finish_answer", "validate_query"]
