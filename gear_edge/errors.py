"""Exception types shared by every part of gear_edge."""

from __future__ import annotations


class GearEdgeError(Exception):
    """Base class of gear_edge's own errors."""


class InputError(GearEdgeError, ValueError):
    """Invalid input data or parameters; the message names the argument, item and problem.

    Also raised by the C++ extension (it maps its input errors to this class), so callers catch
    one type whichever backend ran.
    """


class MissingDependencyError(GearEdgeError, ImportError):
    """A feature needs an optional extra that is not installed; the message names the extra."""
