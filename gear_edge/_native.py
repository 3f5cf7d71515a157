"""Loads the C++ extension ``gear_edge._cpp`` and holds the thread setting of batch ops.

The extension is used when it is built; otherwise the pure-numpy reference implementations
(:mod:`gear_edge.reference`) run instead and the reason is logged once.

Environment:
    GEAR_EDGE_DISABLE_CPP=1     use the numpy reference even when the extension is built.
    GEAR_EDGE_CPP_PATH=FILE     load the extension from FILE (e.g. a sanitizer build).
    GEAR_EDGE_NUM_THREADS=N     default thread count of batch ops (default: usable CPUs, max 8).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from types import ModuleType

from gear_edge.errors import InputError

_log = logging.getLogger("gear_edge")

_module: ModuleType | None = None
_reason: str | None = None
_loaded = False
_warned = False
_threads: int | None = None


def _load() -> None:
    global _module, _reason, _loaded
    _loaded = True
    if os.environ.get("GEAR_EDGE_DISABLE_CPP", "") not in ("", "0"):
        _reason = "disabled by GEAR_EDGE_DISABLE_CPP"
        return
    path = os.environ.get("GEAR_EDGE_CPP_PATH")
    try:
        if path:
            spec = importlib.util.spec_from_file_location("gear_edge._cpp", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"GEAR_EDGE_CPP_PATH={path!r} is not a loadable extension module")
            module = importlib.util.module_from_spec(spec)
            sys.modules["gear_edge._cpp"] = module
            spec.loader.exec_module(module)
            _module = module
        else:
            _module = importlib.import_module("gear_edge._cpp")
    except ImportError as exc:
        _module = None
        _reason = f"gear_edge._cpp could not be imported ({exc})"


def native() -> ModuleType | None:
    """The ``gear_edge._cpp`` module, or None (the numpy fallback is then used; logged once)."""
    global _warned
    if not _loaded:
        _load()
    if _module is None and not _warned:
        _warned = True
        _log.warning(
            "%s; using the numpy reference implementation (slower). Reinstall with "
            "`pip install .` from the source tree to build the C++ extension.",
            _reason,
        )
    return _module


def backend() -> str:
    """``"cpp"`` when the C++ extension is in use, else ``"numpy"``."""
    return "cpp" if native() is not None else "numpy"


def fallback_reason() -> str | None:
    """Why the extension is not in use, or None when it is."""
    native()
    return _reason


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Default number of threads of batch ops (encode/decode/iou/post-processing/crops)."""
    global _threads
    if _threads is None:
        env = os.environ.get("GEAR_EDGE_NUM_THREADS")
        if env:
            try:
                _threads = max(1, int(env))
            except ValueError:
                raise InputError(f"GEAR_EDGE_NUM_THREADS must be a positive integer, got {env!r}") from None
        else:
            _threads = max(1, min(8, _usable_cpus()))
    return _threads


def set_num_threads(n: int) -> None:
    """Sets the default number of threads of batch ops (>= 1)."""
    global _threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"number of threads must be an integer >= 1, got {n!r}")
    _threads = n


def resolve_threads(threads: int | None) -> int:
    """``threads`` checked, or the default when None."""
    if threads is None:
        return get_num_threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise InputError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return threads
