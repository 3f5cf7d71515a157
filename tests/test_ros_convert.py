"""sensor_msgs field conversion (no ROS needed): encodings, padded rows, malformed messages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gear_edge.errors import InputError
from gear_edge.ros.convert import compressed_to_rgb, image_to_rgb, mono8_fields, rgb8_fields


def test_encodings_and_padded_rows():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pad = 3
    def padded(arr):
        c = arr.shape[2]
        rows = np.zeros((arr.shape[0], arr.shape[1] * c + pad), np.uint8)
        rows[:, : arr.shape[1] * c] = arr.reshape(arr.shape[0], -1)
        return rows.tobytes(), arr.shape[1] * c + pad
    data, step = padded(rgb)
    assert np.array_equal(image_to_rgb("rgb8", 5, 7, step, data), rgb)
    data, step = padded(rgb[..., ::-1].copy())
    assert np.array_equal(image_to_rgb("bgr8", 5, 7, step, data), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    data, step = padded(rgba)
    assert np.array_equal(image_to_rgb("rgba8", 5, 7, step, data), rgb)
    data, step = padded(np.concatenate([rgb[..., ::-1], rgba[..., 3:]], axis=2).copy())
    assert np.array_equal(image_to_rgb("bgra8", 5, 7, step, data), rgb)
    grey = rgb[..., :1].copy()
    data, step = padded(grey)
    assert np.array_equal(image_to_rgb("mono8", 5, 7, step, data), np.repeat(grey, 3, axis=2))


@pytest.mark.parametrize(
    "enc,h,w,step,n,match",
    [
        ("yuv422", 2, 2, 4, 8, "unsupported image encoding"),
        ("rgb8", 2, 2, 5, 10, "step 5 is smaller"),
        ("rgb8", 2, 2, 6, 11, "11 bytes but step\\*height"),
        ("rgb8", 0, 2, 6, 0, "empty"),
        ("mono8", 2, 2, 2, 0, "0 bytes"),
    ],
)
def test_malformed_images_are_named(enc, h, w, step, n, match):
    with pytest.raises(InputError, match=match):
        image_to_rgb(enc, h, w, step, bytes(n))


def test_compressed_round_trip_and_errors():
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[2:5, 3:7] = (200, 30, 10)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok and np.array_equal(compressed_to_rgb("png", png.tobytes()), rgb)
    with pytest.raises(InputError, match="no data"):
        compressed_to_rgb("jpeg", b"")
    with pytest.raises(InputError, match="cannot decode"):
        compressed_to_rgb("jpeg", b"not an image")


def test_output_fields():
    m = np.zeros((3, 4), bool)
    m[1, 2] = True
    h, w, step, data = mono8_fields(m)
    assert (h, w, step) == (3, 4, 4) and data[1 * 4 + 2] == 255 and sum(data) == 255
    h, w, step, data = rgb8_fields(np.ones((2, 3, 3), np.uint8))
    assert (h, w, step, len(data)) == (2, 3, 9, 18)
