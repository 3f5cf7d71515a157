"""Image files in and out: RGB uint8 arrays, clear errors for unreadable or truncated files, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from gear_edge.errors import InputError

_PNG_END = b"IEND\xaeB`\x82"


def _truncated(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-1024:]:
        return "JPEG data ends before its end-of-image marker"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and not data.rstrip(b"\x00").endswith(_PNG_END):
        return "PNG data ends before its IEND chunk"
    return None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image at ``path`` as RGB uint8 ``[H, W, 3]`` (grey and alpha are converted)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image file {p} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory, not an image file") from None
    except OSError as exc:
        raise InputError(f"cannot read image file {p}: {exc}") from None
    if not data:
        raise InputError(f"image file {p} is empty")
    why = _truncated(data)
    if why:
        raise InputError(f"image file {p} is truncated ({why}); re-copy or re-capture it")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"image file {p} is not a readable image (OpenCV cannot decode it)")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1.0)))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def fsync_dir(path: str | os.PathLike) -> None:
    """Makes a new or renamed directory entry durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def share_dir(path: str | os.PathLike) -> None:
    """Gives a ``mkdtemp`` folder the usual permissions (0777 less the umask)."""
    os.chmod(path, 0o777 & ~_umask())


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` via a fsynced temporary file + rename, then fsyncs the folder:
    readers never see a partial file, and a kill (or power loss) leaves the old file or the new one.
    The result has the usual permissions (0666 less the umask), not ``mkstemp``'s 0600."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)
    return p


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode a PNG of shape {rgb.shape}")
    return write_atomic(path, buf.tobytes())
