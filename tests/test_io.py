"""The one image decoder: EXIF orientation, trailers, truncation, pixel cap, formats, hostile bytes."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gear_edge.errors import InputError
from gear_edge.io import decode_image, image_header, read_image
from gear_edge.ros.convert import compressed_to_rgb


def _exif(orientation: int, big: bool = True) -> bytes:
    e = ">" if big else "<"
    tiff = (b"MM\x00*" if big else b"II*\x00") + struct.pack(e + "I", 8) + struct.pack(e + "H", 2)
    tiff += struct.pack(e + "HHIHH", 0x010F, 3, 1, 7, 0)  # an unrelated tag first
    tiff += struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"
    return b"Exif\x00\x00" + tiff


def _with_exif(jpeg: bytes, orientation: int, big: bool = True) -> bytes:
    e = _exif(orientation, big)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(e) + 2) + e + jpeg[2:]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(w: int, h: int) -> bytes:
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((37, 53, 3)) * 255).astype(np.uint8), (5, 5), 0)
    img[:8, :12] = (250, 10, 10)  # a marked top-left corner
    return img


def _enc(rgb: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("big", [True, False])
def test_exif_orientation_matches_opencv_display_and_is_the_same_on_every_path(photo, orientation, big, tmp_path):
    data = _with_exif(_enc(photo, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 98), orientation, big)
    shown = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    got = decode_image(data)
    assert got.shape == shown.shape and np.array_equal(got, shown)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (53, 37)  # displayed size, not the stored one
    p = tmp_path / "phone.jpg"
    p.write_bytes(data)
    assert np.array_equal(read_image(p), got)
    assert np.array_equal(compressed_to_rgb("jpeg", data), got)


def test_orientation_6_is_a_clockwise_quarter_turn(photo):
    jpg = _enc(photo, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 100)
    stored = decode_image(jpg)
    got = decode_image(_with_exif(jpg, 6))
    assert np.array_equal(got, np.rot90(stored, k=-1))  # the stored top-left corner is shown top-right
    assert got[2, -3, 0] > 200 and got[2, -3, 2] < 60


def test_png_exif_chunk_is_applied(photo):
    png = _enc(photo, ".png")
    exif_chunk = _chunk(b"eXIf", _exif(3)[6:])
    data = png[:33] + exif_chunk + png[33:]  # after IHDR (8 + 25 bytes)
    assert image_header(data).orientation == 3
    assert np.array_equal(decode_image(data), photo[::-1, ::-1])


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_trailing_bytes_after_the_end_marker_are_accepted(photo, ext, tmp_path):
    data = _enc(photo, ext)
    ref = decode_image(data)
    for trailer in (b"\0" * 7, b"ftypmp42" + bytes(range(256)) * 40, b"\xff\xd8\xff\xe0 second image?", b"\xff"):
        p = tmp_path / f"motion{ext}"
        p.write_bytes(data + trailer)
        assert np.array_equal(read_image(p), ref)
        assert image_header(data + trailer).end == len(data)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
@given(frac=st.floats(0.0, 0.999))
@settings(max_examples=25)
def test_truncated_data_is_refused(photo, ext, frac):
    data = _enc(photo, ext)
    cut = data[: max(1, int(len(data) * frac))]
    with pytest.raises(InputError, match=r"truncated|not a readable image|not a supported image|is empty"):
        decode_image(cut)


def test_progressive_jpeg_and_other_formats_decode(photo):
    assert image_header(_enc(photo, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)).width == 53
    for ext in (".png", ".bmp", ".tif", ".webp"):
        data = _enc(photo, ext)
        h = image_header(data)
        assert (h.width, h.height) == (53, 37), ext
        assert np.array_equal(decode_image(data), photo), ext
    lossless = _enc(photo, ".webp", cv2.IMWRITE_WEBP_QUALITY, 101)
    assert (image_header(lossless).width, image_header(lossless).height) == (53, 37)


def test_grey_alpha_and_16_bit_are_converted(photo):
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    ok, g = cv2.imencode(".png", grey)
    assert np.array_equal(decode_image(g.tobytes()), np.repeat(grey[..., None], 3, 2))
    ok, a = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGRA))
    assert np.array_equal(decode_image(a.tobytes()), photo)
    ok, w = cv2.imencode(".png", (photo.astype(np.uint16) * 257)[..., ::-1].copy())
    assert np.array_equal(decode_image(w.tobytes()), photo)


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path):
    huge = _png_header_only(20000, 20000)  # a few hundred bytes claiming 400 Mpx
    p = tmp_path / "bomb.png"
    p.write_bytes(huge)
    with pytest.raises(InputError, match=r"bomb.png is 20000x20000 = 400,000,000 pixels, more than the limit of "
                                         r"50,000,000 \(runtime.max_image_pixels\)"):
        read_image(p)
    with pytest.raises(InputError, match=r"40000x30000 = 1,200,000,000 pixels, more than the limit of 1,000"):
        decode_image(_png_header_only(40000, 30000), max_pixels=1000)
    # above OpenCV's own limit even when the cap is raised: still a clear error, never a cv2.error
    with pytest.raises(InputError, match=r"not a readable image \(PNG; OpenCV"):
        decode_image(_png_header_only(40000, 30000), max_pixels=2**31)
    with pytest.raises(InputError, match=r"more than the limit of 50,000,000"):
        compressed_to_rgb("png", huge)
    # the message starts with what it names, like every other decode error (the mutation tests check that)
    with pytest.raises(InputError, match=r"^image data is not a readable image \(its PNG header says the image is 0x5"):
        decode_image(_png_header_only(0, 5))


def test_file_errors_are_named(tmp_path):
    with pytest.raises(InputError, match=r"is a directory, not an image file"):
        read_image(tmp_path)
    with pytest.raises(InputError, match=r"does not exist"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.png is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_bytes(b"hello, world")
    with pytest.raises(InputError, match=r"text.png is not a supported image \(supported: PNG, JPEG, BMP, TIFF, WebP"):
        read_image(tmp_path / "text.png")
    with pytest.raises(InputError, match=r"must be bytes, got str"):
        decode_image("a string")  # type: ignore[arg-type]


_prefixes = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xe1", b"BM", b"II*\x00",
                             b"MM\x00*", b"RIFF\x10\x00\x00\x00WEBP", b"RIFF\xff\xff\xff\x7fWEBPVP8X"])


@given(prefix=_prefixes, body=st.binary(max_size=300))
def test_hostile_bytes_give_input_error_or_an_rgb_image(prefix, body):
    try:
        img = decode_image(prefix + body, max_pixels=1 << 20)
    except InputError as exc:
        assert str(exc).startswith("image data ")
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@given(data=st.data())
@settings(max_examples=60)
def test_mutated_real_images_give_input_error_or_an_rgb_image(photo, data):
    ext = data.draw(st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp"]))
    raw = bytearray(_enc(photo, ext))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        img = decode_image(bytes(raw), max_pixels=1 << 22)
    except InputError as exc:
        assert str(exc).startswith("image data ")
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
