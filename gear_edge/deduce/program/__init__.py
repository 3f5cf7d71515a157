"""``program`` deduction: query → typed program (parser, LLM only for what it cannot place) → exact
execution on the scene; the executed steps are the logic chain. See :mod:`.deducer`."""

from gear_edge.deduce.program.ast import Program
from gear_edge.deduce.program.deducer import ProgramDeducer
from gear_edge.deduce.program.parser import parse

__all__ = ["Program", "ProgramDeducer", "parse"]
