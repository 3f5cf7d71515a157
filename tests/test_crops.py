"""Batch region crops: parity with the cv2 reference loop (within 1/255 after de-normalisation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gear_edge.masks as gm
from gear_edge.crops import IMAGENET_MEAN, IMAGENET_STD, crop_regions
from gear_edge.errors import InputError
from gear_edge.reference import crops as ref
from tests.conftest import BACKENDS, use_backend

STD = np.asarray(IMAGENET_STD, dtype=np.float32)[None, :, None, None]
MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)[None, :, None, None]
# One grey level, plus float32 rounding of the soft-mask blend (alpha differs by ~1e-7 between
# cv2's and our float resize, times a pixel difference of up to 255).
TOL = 1.0 / 255.0 + 1e-5
RLE_5x5 = gm.encode(np.ones((5, 5), dtype=bool))
RLE_10x10 = gm.encode(np.ones((10, 10), dtype=bool))


def denorm(x: np.ndarray) -> np.ndarray:
    return x * STD + MEAN


def reference(image, boxes, masks, **kw):
    args = dict(size=224, context=1.0, letterbox=True, background="keep", fill=(124, 116, 104), blur_sigma=4.0)
    args.update(kw)
    return ref.crop_regions(
        image, np.asarray(boxes, dtype=np.float64), masks, args["size"], args["context"], args["letterbox"],
        args["background"], args["fill"], args["blur_sigma"], IMAGENET_MEAN, IMAGENET_STD,
    )


@pytest.fixture(scope="module")
def scene(real_images, real_masks):
    image = real_images["astronaut"]
    ms = real_masks["astronaut"][:16]
    rles = gm.encode(ms)
    boxes = gm.to_bbox(rles)
    # add boxes that reach outside the image, a tiny one and a degenerate (zero-size) one
    extra = np.array([[-40.0, -30.0, 120.0, 90.0], [450.0, 480.0, 100.0, 60.0], [100.5, 200.25, 2.0, 3.0], [10.0, 10.0, 0.0, 0.0]])
    extra_masks = []
    for x, y, w, h in extra:
        m = np.zeros(image.shape[:2], dtype=bool)
        m[max(int(y), 0) : max(int(y + h) + 1, 0), max(int(x), 0) : max(int(x + w) + 1, 0)] = True
        extra_masks.append(gm.encode(m))
    return image, np.concatenate([boxes, extra]), rles + extra_masks


# The numpy backend IS the cv2 reference loop, so parity with it is checked for the C++ path only;
# both backends are checked against plain numpy slicing in test_unscaled_crop_is_the_image_window.
@pytest.mark.parametrize("backend", ["cpp"])
@pytest.mark.parametrize("background", ["keep", "constant", "blur"])
@pytest.mark.parametrize("letterbox", [True, False])
@pytest.mark.parametrize("context", [1.0, 1.6])
def test_matches_cv2_reference(backend, scene, background, letterbox, context):
    image, boxes, rles = scene
    with use_backend(backend):
        got = crop_regions(image, boxes, rles, background=background, letterbox=letterbox, context=context)
    want = reference(image, boxes, rles, background=background, letterbox=letterbox, context=context)
    assert got.shape == (len(boxes), 3, 224, 224) and got.dtype == np.float32
    assert np.abs(denorm(got) - denorm(want)).max() <= TOL


@pytest.mark.parametrize("backend", ["cpp"])
@given(
    size=st.integers(1, 40),
    x=st.floats(-30, 60),
    y=st.floats(-30, 50),
    w=st.floats(0, 80),
    h=st.floats(0, 80),
    context=st.floats(0.5, 3.0),
    letterbox=st.booleans(),
    background=st.sampled_from(["keep", "constant", "blur"]),
    seed=st.integers(0, 2**31),
)
def test_property_parity(backend, size, x, y, w, h, context, letterbox, background, seed):
    r = np.random.default_rng(seed)
    image = r.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    mask = r.random((37, 53)) < 0.5
    rle = [gm.encode(mask)]
    kw = dict(size=size, context=context, letterbox=letterbox, background=background, blur_sigma=1.5)
    with use_backend(backend):
        got = crop_regions(image, [[x, y, w, h]], rle, **kw)
    want = reference(image, [[x, y, w, h]], rle, **kw)
    assert np.abs(denorm(got) - denorm(want)).max() <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
@given(x=st.integers(-12, 50), y=st.integers(-12, 35), side=st.integers(1, 24),
       background=st.sampled_from(["keep", "constant"]), seed=st.integers(0, 2**31))
def test_unscaled_crop_is_the_image_window(backend, x, y, side, background, seed):
    """Independent oracle: a square integer box cropped at its own size (no resampling) is the image
    window itself (fill outside the image), and with background 'constant' the fill outside the mask."""
    r = np.random.default_rng(seed)
    image = r.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    mask = r.random((37, 53)) < 0.5
    fill = (7, 130, 250)
    with use_backend(backend):
        got = denorm(crop_regions(image, [[x, y, side, side]], [gm.encode(mask)], size=side, context=1.0,
                                  letterbox=False, background=background, fill=fill))[0]
    want = np.empty((side, side, 3), np.float64)
    want[...] = fill
    keep = np.zeros((side, side), bool)
    ys, xs = np.mgrid[y : y + side, x : x + side]
    inside = (ys >= 0) & (ys < 37) & (xs >= 0) & (xs < 53)
    want[inside] = image[ys[inside], xs[inside]]
    keep[inside] = mask[ys[inside], xs[inside]] if background == "constant" else True
    want[~keep] = fill
    assert np.abs(got.transpose(1, 2, 0) - want / 255.0).max() <= 1e-5


def test_uniform_image_gives_uniform_crop():
    image = np.full((60, 80, 3), (10, 200, 90), dtype=np.uint8)
    out = crop_regions(image, [[5, 5, 30, 20]], letterbox=False)
    expect = (np.array([10, 200, 90]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(out[0].reshape(3, -1), expect[:, None], atol=1e-5)


def test_letterbox_bars_are_fill_and_mask_background():
    image = np.full((100, 100, 3), 255, dtype=np.uint8)
    m = np.zeros((100, 100), dtype=bool)
    m[40:60, 10:90] = True  # wide region: letterbox bars top and bottom
    out = crop_regions(image, [[10, 40, 80, 20]], [gm.encode(m)], size=64, background="constant", fill=(0, 0, 0))
    px = denorm(out)[0]
    assert np.allclose(px[:, 0, :], 0.0, atol=1e-6)  # bar
    assert np.allclose(px[:, 32, 20:44], 1.0, atol=1e-6)  # inside the mask: white


def test_threads_do_not_change_results(scene):
    image, boxes, rles = scene
    base = crop_regions(image, boxes, rles, background="blur", threads=1)
    assert np.array_equal(crop_regions(image, boxes, rles, background="blur", threads=3), base)


def test_empty_batch():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    assert crop_regions(image, np.zeros((0, 4))).shape == (0, 3, 224, 224)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image=np.zeros((10, 10, 3), np.float32)), "uint8"),
        (dict(image=np.zeros((10, 10), np.uint8)), "H x W x 3"),
        (dict(image=np.zeros((10, 10, 4), np.uint8)), "H x W x 3"),
        (dict(image=np.zeros((0, 10, 3), np.uint8)), "empty"),
        (dict(image=np.zeros((10, 20, 3), np.uint8)[:, ::2]), "C-contiguous"),
        (dict(image=[[0]]), "numpy array"),
        (dict(boxes=[[1, 2, 3]]), r"\[N, 4\]"),
        (dict(boxes=[[1, 2, 3, float("nan")]]), "box 0"),
        (dict(boxes=[[1, 2, -3, 4]]), "box 0"),
        (dict(boxes=[["a", 2, 3, 4]]), "numbers"),
        (dict(background="constant"), "pass masks"),
        (dict(background="fuzzy"), "background"),
        (dict(masks=[]), "got 0 masks for 1 boxes"),
        (dict(masks=[RLE_5x5]), "mask 0 is 5x5 but the image is 10x10"),
        (dict(masks=[{"size": [10, 10], "counts": "~~"}]), "mask 0: invalid character"),
        (dict(size=0), "size"),
        (dict(context=0.0), "context"),
        (dict(fill=(0, 0, 300)), "fill"),
        (dict(std=(0.2, 0.0, 0.2)), "std"),
        (dict(background="blur", blur_sigma=0.0, masks=[RLE_10x10]), "blur_sigma"),
    ],
)
def test_bad_input(backend, kwargs, message):
    args = dict(image=np.zeros((10, 10, 3), np.uint8), boxes=[[1, 1, 5, 5]], masks=None)
    args.update(kwargs)
    with use_backend(backend):
        with pytest.raises(InputError, match=message):
            crop_regions(args.pop("image"), args.pop("boxes"), args.pop("masks"), **args)
