"""Requests to the node: ids, status codes, a bounded queue that rejects instead of dropping (no ROS).

Every request ends in exactly one reply: an answer (``OK`` / ``NO_TARGET``) or a rejection with a
status and a reason. The status numbers are those of ``gear_edge_msgs/action/Segment`` results.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable


class Status(IntEnum):
    OK = 0
    NO_TARGET = 1
    REJECTED_QUEUE_FULL = 10
    REJECTED_NO_FRAME = 11
    REJECTED_FRAME_TOO_OLD = 12
    REJECTED_INACTIVE = 13
    REJECTED_BAD_QUERY = 14
    CANCELED = 20
    ERROR = 30


@dataclass
class Request:
    """One query. ``reply(status, message, payload)`` is called exactly once (``Request.finish``)."""

    id: int
    query: str
    max_frame_age: float = 0.0  # seconds; 0 = the node's default
    track: bool = False
    source: str = "topic"  # "topic" | "action"
    handle: Any = None  # the action's goal handle
    reply: Callable[["Request", Status, str, dict], None] | None = None
    received: float = field(default_factory=time.monotonic)
    _done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def finish(self, status: Status, message: str = "", payload: dict | None = None) -> bool:
        """Delivers the one reply; later calls are ignored (returns False)."""
        with self._lock:
            if self._done:
                return False
            self._done = True
        if self.reply is not None:
            self.reply(self, Status(status), message, payload or {})
        return True

    @property
    def done(self) -> bool:
        return self._done


_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


def parse_topic_request(text: str) -> tuple[dict, str | None]:
    """Fields of a ``request`` topic message: a JSON object ``{"id", "query", "max_frame_age",
    "track"}`` or a plain query string. Returns (fields, error); ``fields["id"]`` is always set
    (the caller's id when given, else a fresh one) so even a malformed request gets a reply."""
    text = text.strip()
    if text.startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            return {"id": next_id(), "query": ""}, f"request is not valid JSON: {exc}"
        if not isinstance(d, dict):
            return {"id": next_id(), "query": ""}, "request JSON must be an object"
        out: dict[str, Any] = {"id": d.get("id", next_id()), "query": d.get("query", "")}
        if not isinstance(out["id"], (int, str)) or isinstance(out["id"], bool):
            out["id"] = next_id()
            return out, "request 'id' must be an integer or a string"
        if not isinstance(out["query"], str):
            return out, f"request 'query' must be a string, got {type(out['query']).__name__}"
        try:
            out["max_frame_age"] = float(d.get("max_frame_age", 0.0))
        except (TypeError, ValueError):
            return out, f"request 'max_frame_age' must be a number of seconds, got {d.get('max_frame_age')!r}"
        if out["max_frame_age"] < 0:
            return out, f"request 'max_frame_age' must be >= 0 seconds, got {out['max_frame_age']}"
        out["track"] = bool(d.get("track", False))
        return out, None
    return {"id": next_id(), "query": text, "max_frame_age": 0.0, "track": False}, None


class RequestQueue:
    """A bounded FIFO of requests: ``submit`` rejects (``REJECTED_QUEUE_FULL``) when full;
    ``close`` rejects everything still waiting. Thread-safe."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"max_queue must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._q: queue.Queue[Request] = queue.Queue(maxsize=self.maxsize)

    def submit(self, req: Request) -> bool:
        try:
            self._q.put_nowait(req)
            return True
        except queue.Full:
            req.finish(Status.REJECTED_QUEUE_FULL, f"request queue is full ({self.maxsize} waiting); retry later")
            return False

    def get(self, timeout: float) -> Request | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def __len__(self) -> int:
        return self._q.qsize()

    def reject_all(self, status: Status, message: str) -> int:
        n = 0
        while True:
            try:
                req = self._q.get_nowait()
            except queue.Empty:
                return n
            n += req.finish(status, message)
