"""sensor_msgs/Image and CompressedImage fields ↔ numpy, without importing ROS (pure, testable)."""

from __future__ import annotations

import cv2
import numpy as np

from gear_edge.errors import InputError

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` from the fields of a sensor_msgs/Image (copying; rows may be padded)."""
    enc = str(encoding).lower()
    if enc not in CHANNELS:
        raise InputError(f"unsupported image encoding {encoding!r} (supported: {', '.join(CHANNELS)})")
    if height <= 0 or width <= 0:
        raise InputError(f"image is empty ({height}x{width})")
    c = CHANNELS[enc]
    if step < width * c:
        raise InputError(f"step {step} is smaller than width*channels = {width * c} for {enc}")
    buf = np.frombuffer(memoryview(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).astype(np.uint8, copy=False)
    if buf.size != step * height:
        raise InputError(f"data has {buf.size} bytes but step*height = {step}*{height} = {step * height}")
    rows = buf.reshape(height, step)[:, : width * c].reshape(height, width, c)
    if enc == "rgb8":
        return np.ascontiguousarray(rows)
    if enc == "bgr8":
        return np.ascontiguousarray(rows[..., ::-1])
    if enc == "mono8":
        return np.ascontiguousarray(np.repeat(rows, 3, axis=2))
    if enc == "rgba8":
        return np.ascontiguousarray(rows[..., :3])
    return np.ascontiguousarray(rows[..., 2::-1])  # bgra8


def compressed_to_rgb(fmt: str, data: bytes | bytearray | memoryview, max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 from a sensor_msgs/CompressedImage, through the one image decoder
    (:func:`gear_edge.io.decode_image`: EXIF orientation applied, pixel cap checked from the header)."""
    from gear_edge.io import decode_image

    n = len(memoryview(data).cast("B"))
    if n == 0:
        raise InputError("compressed image has no data")
    try:
        return decode_image(data, where=f"the data (format {fmt!r}, {n} bytes)", max_pixels=max_pixels)
    except InputError as exc:
        raise InputError(f"cannot decode compressed image: {exc}") from None


def mono8_fields(mask: np.ndarray) -> tuple[int, int, int, bytes]:
    """(height, width, step, data) of a bool/uint8 mask as mono8 (255 = target)."""
    m = (np.asarray(mask) > 0).astype(np.uint8) * 255
    h, w = m.shape
    return h, w, w, m.tobytes()


def rgb8_fields(rgb: np.ndarray) -> tuple[int, int, int, bytes]:
    h, w = rgb.shape[:2]
    return h, w, 3 * w, np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()


DEPTH_ENCODINGS = {"16uc1": np.uint16, "mono16": np.uint16, "32fc1": np.float32}


def depth_image_to_array(encoding: str, height: int, width: int, step: int, data, is_bigendian: int = 0) -> np.ndarray:
    """A depth sensor_msgs/Image as numpy ``[H, W]``: ``16UC1``/``mono16`` uint16 (millimetres by
    convention) or ``32FC1`` float32 (metres). Copies; rows may be padded."""
    enc = str(encoding).lower()
    if enc not in DEPTH_ENCODINGS:
        raise InputError(f"unsupported depth encoding {encoding!r} (supported: 16UC1, mono16, 32FC1)")
    if height <= 0 or width <= 0:
        raise InputError(f"depth image is empty ({height}x{width})")
    dt = np.dtype(DEPTH_ENCODINGS[enc]).newbyteorder(">" if is_bigendian else "<")
    if step < width * dt.itemsize:
        raise InputError(f"depth step {step} is smaller than width*{dt.itemsize} = {width * dt.itemsize} for {encoding}")
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buf.size != step * height:
        raise InputError(f"depth data has {buf.size} bytes but step*height = {step}*{height} = {step * height}")
    rows = buf.reshape(height, step)[:, : width * dt.itemsize]
    return np.ascontiguousarray(rows).view(dt).reshape(height, width).astype(dt.newbyteorder("="))
