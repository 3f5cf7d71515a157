"""Image files in and out: RGB uint8 arrays, clear errors for unreadable or truncated files, atomic writes.

One decoder, :func:`decode_image`, serves files (:func:`read_image`), in-memory bytes and ROS
CompressedImage messages. It reads the container's header first (PNG, JPEG, BMP, TIFF, WebP):
the image size is checked against a pixel cap before anything is decoded, truncated data is refused,
bytes after the end marker (motion photos, camera trailers) are ignored, and the EXIF orientation
(JPEG APP1, PNG eXIf, TIFF IFD0, WebP EXIF) is applied so the array is the image as displayed.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gear_edge.errors import InputError

FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WebP")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# a JPEG marker inside entropy-coded data: 0xFF followed by neither 0x00 (stuffing), RSTn nor fill 0xFF
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}


@dataclass(frozen=True)
class ImageHeader:
    """What the container says before decoding: ``format`` (one of :data:`FORMATS`), ``width`` and
    ``height`` in stored pixels, EXIF ``orientation`` (1-8, 1 = as stored) and ``end``: the byte
    length of the image proper (data after it is a trailer and ignored)."""

    format: str
    width: int
    height: int
    orientation: int
    end: int


def _u16(data: bytes, at: int, big: bool = True) -> int:
    return struct.unpack_from(">H" if big else "<H", data, at)[0]


def _u32(data: bytes, at: int, big: bool = True) -> int:
    return struct.unpack_from(">I" if big else "<I", data, at)[0]


def _tiff_tags(tiff: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """Integer values of ``wanted`` tags in IFD0 of TIFF (or EXIF) data; absent or malformed tags are left out."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return {}
    big = tiff[:2] == b"MM"
    out: dict[int, int] = {}
    try:
        ifd = _u32(tiff, 4, big)
        n = _u16(tiff, ifd, big)
        for i in range(min(n, 4096)):
            at = ifd + 2 + 12 * i
            tag, typ, count = _u16(tiff, at, big), _u16(tiff, at + 2, big), _u32(tiff, at + 4, big)
            if tag in wanted and count >= 1:
                if typ == 3:  # SHORT
                    out[tag] = _u16(tiff, at + 8, big)
                elif typ == 4:  # LONG
                    out[tag] = _u32(tiff, at + 8, big)
    except struct.error:
        pass
    return out


def _orientation(exif: bytes) -> int:
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    value = _tiff_tags(exif, (0x0112,)).get(0x0112, 1)
    return value if 1 <= value <= 8 else 1


def _png(data: bytes, where: str) -> ImageHeader:
    pos, width, height, orientation, seen_ihdr = 8, 0, 0, 1, False
    while True:
        if pos + 8 > len(data):
            raise InputError(f"{where} is truncated (PNG data ends before its IEND chunk); re-copy or re-capture it")
        length, kind = _u32(data, pos), data[pos + 4 : pos + 8]
        body = pos + 8
        if length > 0x7FFFFFFF or body + length + 4 > len(data):
            raise InputError(f"{where} is truncated (PNG chunk {kind!r} runs past the end of the data); "
                             "re-copy or re-capture it")
        if not seen_ihdr:
            if kind != b"IHDR" or length < 8:
                raise InputError(f"{where} is not a readable image (PNG: its first chunk is not IHDR)")
            width, height, seen_ihdr = _u32(data, body), _u32(data, body + 4), True
        elif kind == b"eXIf":
            orientation = _orientation(data[body : body + length])
        elif kind == b"IEND":
            return ImageHeader("PNG", width, height, orientation, body + length + 4)
        pos = body + length + 4


def _jpeg(data: bytes, where: str) -> ImageHeader:
    truncated = InputError(f"{where} is truncated (JPEG data ends before its end-of-image marker); "
                           "re-copy or re-capture it")
    pos, width, height, orientation, n = 2, 0, 0, 1, len(data)
    while True:
        if pos < n and data[pos] != 0xFF:  # tolerate stray bytes between segments (as libjpeg does)
            pos = data.find(b"\xff", pos)
            if pos < 0:
                raise truncated
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise truncated
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            if not width:
                raise InputError(f"{where} is not a readable image (JPEG: no frame header before the end-of-image marker)")
            return ImageHeader("JPEG", width, height, orientation, pos)
        if marker in _JPEG_STANDALONE:
            continue
        if marker < 0xC0:
            raise InputError(f"{where} is not a readable image (JPEG: invalid marker 0x{marker:02X} at byte {pos - 1})")
        if pos + 2 > n:
            raise truncated
        length = _u16(data, pos)
        if length < 2 or pos + length > n:
            raise truncated
        seg = data[pos + 2 : pos + length]
        if marker in _JPEG_SOF and len(seg) >= 5:
            height, width = _u16(seg, 1), _u16(seg, 3)
        elif marker == 0xE1 and seg.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _orientation(seg)
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            m = _JPEG_MARKER.search(data, pos)
            if m is None:
                raise truncated
            pos = m.start()


def _bmp(data: bytes, where: str) -> ImageHeader:
    if len(data) < 26:
        raise InputError(f"{where} is truncated (BMP header is {len(data)} bytes)")
    size = _u32(data, 2, big=False)
    if _u32(data, 14, big=False) == 12:
        width, height = _u16(data, 18, big=False), _u16(data, 20, big=False)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
    if size > len(data):
        raise InputError(f"{where} is truncated (BMP says {size} bytes, the data has {len(data)})")
    return ImageHeader("BMP", abs(width), abs(height), 1, size if size >= 26 else len(data))


def _tiff(data: bytes, where: str) -> ImageHeader:
    tags = _tiff_tags(data, (256, 257, 0x0112))
    if 256 not in tags or 257 not in tags:
        raise InputError(f"{where} is not a readable image (TIFF: IFD0 lacks ImageWidth/ImageLength, or it is BigTIFF)")
    o = tags.get(0x0112, 1)
    return ImageHeader("TIFF", tags[256], tags[257], o if 1 <= o <= 8 else 1, len(data))


def _webp(data: bytes, where: str) -> ImageHeader:
    riff = _u32(data, 4, big=False) + 8
    if riff > len(data):
        raise InputError(f"{where} is truncated (WebP says {riff} bytes, the data has {len(data)})")
    pos, width, height, orientation = 12, 0, 0, 1
    while pos + 8 <= riff:
        kind, length = data[pos : pos + 4], _u32(data, pos + 4, big=False)
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"VP8X" and len(body) >= 10:
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif kind == b"VP8L" and len(body) >= 5 and not width:
            bits = int.from_bytes(body[1:5], "little")
            width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        elif kind == b"VP8 " and len(body) >= 10 and not width:
            width, height = _u16(body, 6, big=False) & 0x3FFF, _u16(body, 8, big=False) & 0x3FFF
        elif kind == b"EXIF":
            orientation = _orientation(body)
        pos += 8 + length + (length & 1)
    if not width:
        raise InputError(f"{where} is not a readable image (WebP: no VP8/VP8L/VP8X chunk with the image size)")
    return ImageHeader("WebP", width, height, orientation, riff)


def image_header(data: bytes | bytearray | memoryview, where: str = "image data") -> ImageHeader:
    """The container header of encoded image ``data`` (no pixel is decoded).

    InputError naming ``where`` for an unsupported format, a malformed header or truncated data.
    """
    data = bytes(data)
    if not data:
        raise InputError(f"{where} is empty")
    if data.startswith(_PNG_SIG):
        return _png(data, where)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data, where)
    if data.startswith(b"BM"):
        return _bmp(data, where)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data, where)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 12:
        return _webp(data, where)
    raise InputError(f"{where} is not a supported image (supported: {', '.join(FORMATS)}; "
                     f"it starts with {data[:8]!r})")


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """``img`` ([H, W] or [H, W, C], as stored) turned to how EXIF ``orientation`` (1-8) says it is displayed."""
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = img.swapaxes(0, 1)
    elif orientation == 6:
        img = img.swapaxes(0, 1)[:, ::-1]
    elif orientation == 7:
        img = img.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        img = img.swapaxes(0, 1)[::-1]
    return np.ascontiguousarray(img)


def default_max_pixels() -> int:
    from gear_edge.config import default

    return int(default("runtime", "max_image_pixels"))


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, *, where: str = "image data",
                 max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes → RGB uint8 ``[H, W, 3]`` as displayed (EXIF orientation applied).

    ``max_pixels`` (default: the config schema's ``runtime.max_image_pixels``) is checked against the
    header's width x height before decoding. Grey, alpha and 16-bit images are converted. InputError
    names ``where`` and the problem (empty, truncated, unsupported, too large, undecodable).
    """
    if isinstance(data, np.ndarray):
        data = data.reshape(-1).astype(np.uint8, copy=False).tobytes()
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{where} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    head = image_header(data, where)
    cap = default_max_pixels() if max_pixels is None else int(max_pixels)
    if head.width <= 0 or head.height <= 0:
        raise InputError(f"{where} is not a readable image (its {head.format} header says the image is "
                         f"{head.width}x{head.height} pixels)")
    if head.width * head.height > cap:
        raise InputError(
            f"{where} is {head.width}x{head.height} = {head.width * head.height:,} pixels, more than the "
            f"limit of {cap:,} (runtime.max_image_pixels); downscale it or raise the limit"
        )
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8, count=head.end), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"{where} is not a readable image ({head.format}; OpenCV: {str(exc).strip().splitlines()[-1]})") from None
    if img is None or img.size == 0:
        raise InputError(f"{where} is not a readable image ({head.format}; OpenCV cannot decode it)")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1.0)))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 2:  # grey + alpha
        rgb = cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return apply_orientation(rgb, head.orientation)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """The image file at ``path`` as RGB uint8 ``[H, W, 3]`` via :func:`decode_image`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image file {p} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory, not an image file") from None
    except OSError as exc:
        raise InputError(f"cannot read image file {p}: {exc.strerror or exc}") from None
    if not data:
        raise InputError(f"image file {p} is empty")
    return decode_image(data, where=f"image file {p}", max_pixels=max_pixels)


def check_pixels(shape: tuple[int, ...], max_pixels: int | None = None, where: str = "image") -> None:
    """InputError when an image of ``shape`` ([H, W, ...]) has more than ``max_pixels`` pixels."""
    cap = default_max_pixels() if max_pixels is None else int(max_pixels)
    h, w = int(shape[0]), int(shape[1])
    if h * w > cap:
        raise InputError(f"{where} is {w}x{h} = {w * h:,} pixels, more than the limit of {cap:,} "
                         "(runtime.max_image_pixels); downscale it or raise the limit")


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


def write_all_or_nothing(files: dict[str | os.PathLike, bytes]) -> list[Path]:
    """Writes several files so that a failure leaves none of them changed: each is written to a
    fsynced temporary file first; only when all are written are they renamed into place (renames do
    not fail for want of space), then the folders are fsynced. Returns the paths in order."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            p = Path(path)
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
            staged.append((p, tmp))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    for p, tmp in staged:
        os.replace(tmp, p)
    for folder in {p.parent for p, _ in staged}:
        fsync_dir(folder)
    return [p for p, _ in staged]


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode a PNG of shape {rgb.shape}")
    return buf.tobytes()


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode a PNG of shape {rgb.shape}")
    return write_atomic(path, buf.tobytes())
