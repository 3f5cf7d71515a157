"""Append-only JSONL journal that survives SIGKILL at any point.

Every record is one JSON object on one line, written with a single ``write`` of the whole line
(retried until complete) and ``fsync``. A process killed during a write leaves at most one torn line
at the end of the file: it has no terminating newline (JSON text never contains a raw newline, so
the newline is the commit mark). :meth:`Journal.open` cuts such a tail off before appending, so the
unfinished record is simply redone; complete lines are never rewritten. A complete line that does
not parse is not something a kill can produce (the file was edited or the disk corrupted): that is
an :class:`~gear_edge.errors.InputError` naming the file and line, and nothing is changed.

An exclusive ``flock`` on ``<journal>.lock`` keeps two runs from appending to one journal (the
kernel releases it when a process dies, also on SIGKILL).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from gear_edge.errors import InputError
from gear_edge.io import fsync_dir, share_dir, write_atomic

__all__ = ["Journal", "RECORD_FIELDS", "check_record", "fsync_dir", "read_records", "share_dir", "write_atomic"]

# The data engine's records: the fields each type must have (and their JSON types; object = any),
# down to the items of its lists. A record missing one was not written by the engine: it is refused
# at read time naming the line and field, instead of failing later with a KeyError.
_NUM = (int, float)
RECORD_FIELDS: dict[str, dict[str, Any]] = {
    "run": {"settings": dict, "models": [{"role": str, "name": str, "sha256": str}]},
    "image": {
        "file_name": str, "sha256": str, "height": int, "width": int,
        "regions": [{"region_id": int, "segmentation": dict, "area": _NUM, "bbox": list}],
        "pairs": [{"question": str, "class": str, "targets": list, "chain": list, "rationale": object, "writer": str,
                   "template": object, "agreement": object}],
        "rejected": [{"class": str, "reason": str, "writer": str}],
    },
    "failed": {"file_name": str},
}


def _type_names(want: Any) -> str:
    kinds = want if isinstance(want, tuple) else (want,)
    names = {dict: "object", list: "array", str: "string", int: "integer", float: "number", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_fields(rec: Any, fields: dict[str, Any], where: str) -> None:
    if not isinstance(rec, dict):
        raise InputError(f"{where} must be a JSON object, got {type(rec).__name__}")
    for key, want in fields.items():
        if key not in rec:
            raise InputError(f"{where} lacks the field {key!r}")
        value = rec[key]
        if isinstance(want, list):
            if not isinstance(value, list):
                raise InputError(f"{where} field {key!r} must be an array, got {type(value).__name__}")
            for i, item in enumerate(value):
                _check_fields(item, want[0], f"{where} {key}[{i}]")
        elif isinstance(value, bool) and bool not in (want if isinstance(want, tuple) else (want,)) or \
                not isinstance(value, want):
            raise InputError(f"{where} field {key!r} must be {_type_names(want)}, got {type(value).__name__}")


def check_record(rec: Any, where: str = "record", schema: dict[str, dict[str, Any]] | None = None) -> None:
    """InputError naming ``where`` and the field when ``rec`` lacks a field its type needs in ``schema``
    (e.g. :data:`RECORD_FIELDS`; None: only the 'type' field is required)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
        raise InputError(f"{where}: a record must be a JSON object with a 'type' field")
    fields = (schema or {}).get(rec["type"])
    if fields is not None:
        _check_fields(rec, fields, f"{where} ({rec['type']} record)")


def read_records(path: Path, schema: dict[str, dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The complete records of a journal and the byte length they occupy (a torn tail is excluded);
    each is checked against ``schema`` (see :func:`check_record`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise InputError(f"cannot read journal {path}: {exc}") from None
    end = data.rfind(b"\n") + 1  # bytes after the last newline belong to a torn write
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(
                f"journal {path} line {lineno} is not valid JSON ({exc}); it was not written by an interrupted "
                "run (those only leave an unterminated last line) - restore the file or start a new output directory"
            ) from None
        try:
            check_record(rec, f"journal {path} line {lineno}", schema)
        except InputError as exc:
            raise InputError(f"{exc}; it was not written by this engine - restore the file or start a new output "
                             "directory") from None
        records.append(rec)
    return records, end


class Journal:
    """An open journal: ``records`` (what was there, checked against ``schema``), :meth:`append` (durable), :meth:`close`."""

    def __init__(self, path: str | os.PathLike, schema: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.records: list[dict[str, Any]] = []
        self.torn_bytes = 0  # bytes of an unfinished record cut off at open
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def open(self) -> "Journal":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise InputError(f"another run is writing {self.path.parent} (lock {lock_path} is held)") from None
        try:
            created = not self.path.exists()
            self.records, end = read_records(self.path, self.schema)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            size = os.fstat(fd).st_size
            if size > end:
                self.torn_bytes = size - end
                os.ftruncate(fd, end)
                os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_END)
            self._fd = fd
            if created:
                fsync_dir(self.path.parent)
        except BaseException:
            self.close()
            raise
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Writes one record durably (whole line, then fsync). The record must be JSON-serialisable."""
        if self._fd is None:
            raise InputError(f"journal {self.path} is not open")
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.records.append(record)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def __enter__(self) -> "Journal":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
