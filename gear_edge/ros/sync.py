"""Approximate time synchronisation of colour, depth and CameraInfo by stamp, and the choice of
the colour frame to answer on (no ROS imports).

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


@dataclass(frozen=True)
class Frame:
    """A colour frame as the node stores it: ``stamp`` float seconds, ``arrival`` monotonic seconds,
    ``seq`` its arrival number (1, 2, ...); ``header`` and ``rgb`` are opaque here."""

    header: Any
    rgb: Any
    stamp: float
    arrival: float
    seq: int


class RecentFrames:
    """The last ``size`` colour frames, and which one to answer on when depth comes separately.

    Colour and depth arrive on separate subscriptions, and over a reliable transport a depth sample
    whose fragment was lost waits for its repair while later ones queue behind it (in-order
    delivery), and on a loaded machine several frames can queue so: the newest colour frame may have
    no depth yet while one a few frames older has. ``pick`` answers on the newest frame whose depth
    has arrived (as ``message_filters`` would emit pairs), at most ``depth_wait`` s older than the newest
    (and at most ``max_behind`` frames, when set), and on the newest without depth only once the caller
    has waited ``depth_wait``. Thread-safe.
    """

    def __init__(self, size: int = 16, max_behind: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1 frame, got {size}")
        if max_behind is not None and max_behind < 0:
            raise ValueError(f"max_behind must be >= 0 frames or None, got {max_behind}")
        self.max_behind = size if max_behind is None else int(max_behind)
        self._frames: deque[Frame] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def pick(self, now: float, *, after_seq: int = 0, waiting_since: float | None = None, depth_expected: bool,
             depth_wait: float, has_depth) -> tuple[Frame | None, bool]:
        """(frame, final). ``frame``: the newest frame after ``after_seq`` with ``has_depth(frame)``
        among those that arrived within ``depth_wait`` s of the newest (and the newest ``max_behind + 1``); with no depth expected, or
        none matched after ``depth_wait`` s of waiting, the newest. The wait counts from
        the arrival of the first frame after ``after_seq``, or ``waiting_since`` (monotonic s: when the
        caller became ready to answer) if later, so a colour stream whose depth has stopped is
        answered ``depth_wait`` late, never starved, and a caller busy while frames queued still
        gives their depth ``depth_wait`` to come.
        ``(None, False)``: none matched yet, ask again; ``(None, True)``: no frame after ``after_seq``."""
        with self._lock:
            frames = [f for f in self._frames if f.seq > after_seq]
        if not frames:
            return None, True
        newest = frames[-1]
        if not depth_expected:
            return newest, True
        for f in reversed(frames):
            if newest.arrival - f.arrival > depth_wait or newest.seq - f.seq > self.max_behind:
                break
            if has_depth(f):
                return f, True
        since = frames[0].arrival if waiting_since is None else max(waiting_since, frames[0].arrival)
        if now - since >= depth_wait:
            return newest, True
        return None, False


class DepthStream:
    """Whether colour frames should wait for their depth: a depth stream has been seen, and colour
    frames have not kept arriving without any depth for more than ``give_up`` s (``expected``).

    Over a reliable transport on a loaded machine, depth can arrive in bursts several hundred ms
    late, and a camera can pause both streams; neither means depth has stopped. Only colour that
    streams on while no depth at all comes does. Times are monotonic seconds. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.last_depth: float | None = None  # arrival of the last depth frame
            self._colour_alone_since: float | None = None  # first colour frame after it

    def on_depth(self, now: float) -> None:
        with self._lock:
            self.last_depth, self._colour_alone_since = now, None

    def on_colour(self, now: float) -> None:
        with self._lock:
            if self._colour_alone_since is None:
                self._colour_alone_since = now

    def expected(self, now: float, give_up: float) -> bool:
        with self._lock:
            if self.last_depth is None:
                return False
            return self._colour_alone_since is None or now - self._colour_alone_since <= give_up


def stamp_seconds(stamp: Any) -> float:
    """float seconds of a builtin_interfaces/Time-like object (``sec``, ``nanosec``)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9
