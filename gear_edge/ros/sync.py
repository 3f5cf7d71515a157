"""Approximate time synchronisation of colour, depth and CameraInfo by stamp (no ROS imports).

``message_filters`` is not installable from the package registries, so this is a small equivalent of
its ``ApproximateTimeSynchronizer`` for the one case the node needs: pair each colour frame with the
depth frame and CameraInfo whose stamps are nearest to it, within ``slop`` seconds. Thread-safe.

Stamps are float seconds (``sec + nanosec * 1e-9``). Items are opaque to this module.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Synced:
    """A colour frame with the depth frame and camera info matched to it (None: none within slop)."""

    stamp: float
    colour: Any
    depth: Any = None
    info: Any = None
    depth_dt: float | None = None  # |depth stamp - colour stamp|, seconds


class ApproximateSync:
    """Keeps the last ``queue_size`` depth frames and infos; ``match(stamp)`` picks the nearest of each.

    CameraInfo rarely changes, so the latest info is used when none is within ``slop``
    (``info_any_stamp=True``, the default); depth must be within ``slop`` or the frame has no depth.
    """

    def __init__(self, slop: float = 0.05, queue_size: int = 10, *, info_any_stamp: bool = True) -> None:
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop = float(slop)
        self.info_any_stamp = info_any_stamp
        self._depth: deque[tuple[float, Any]] = deque(maxlen=queue_size)
        self._info: deque[tuple[float, Any]] = deque(maxlen=queue_size)
        self._lock = threading.Lock()

    def add_depth(self, stamp: float, depth: Any) -> None:
        with self._lock:
            self._depth.append((float(stamp), depth))

    def add_info(self, stamp: float, info: Any) -> None:
        with self._lock:
            self._info.append((float(stamp), info))

    @staticmethod
    def _nearest(items, stamp: float) -> tuple[float, Any] | None:
        best = None
        for s, item in items:
            d = abs(s - stamp)
            if best is None or d < best[0]:
                best = (d, item)
        return best

    def match(self, stamp: float, colour: Any) -> Synced:
        """The colour frame paired with the nearest depth (within slop) and camera info."""
        with self._lock:
            d = self._nearest(self._depth, stamp)
            i = self._nearest(self._info, stamp)
            latest_info = self._info[-1][1] if self._info else None
        out = Synced(stamp=float(stamp), colour=colour)
        if d is not None and d[0] <= self.slop:
            out.depth, out.depth_dt = d[1], d[0]
        if i is not None and i[0] <= self.slop:
            out.info = i[1]
        elif self.info_any_stamp:
            out.info = latest_info
        return out

    def clear(self) -> None:
        with self._lock:
            self._depth.clear()
            self._info.clear()


def stamp_seconds(stamp: Any) -> float:
    """float seconds of a builtin_interfaces/Time-like object (``sec``, ``nanosec``)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9
