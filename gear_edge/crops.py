"""Batched region crops for region encoders (C++; cv2 loop fallback).

``crop_regions(image, boxes, masks)`` → float32 ``[N, 3, S, S]``, normalised, channel-first:

1. window: each XYWH box scaled by ``context`` about its centre, rounded outward to whole
   pixels (at least 1 x 1); pixels outside the image read as ``fill``;
2. bilinear resize (cv2 ``INTER_LINEAR`` semantics, rounded to uint8) to ``S x S``, or with
   ``letterbox`` keeping the aspect ratio, centred on an ``S x S`` canvas of ``fill``;
3. with masks and ``background`` ``"constant"`` / ``"blur"``: pixels are blended by the resized
   soft mask with ``fill`` or with the crop Gaussian-blurred by ``blur_sigma`` (output pixels);
4. ``(value / 255 - mean) / std`` per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from gear_edge import _native
from gear_edge.errors import InputError
from gear_edge.masks.rle import RLE
from gear_edge.reference import crops as _ref

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Background = Literal["keep", "constant", "blur"]


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Returns ``image`` if it is a C-contiguous uint8 ``H x W x 3`` array with H, W >= 1."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be a numpy array (uint8 H x W x 3 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{name} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{name} must be H x W x 3 (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {image.shape})")
    if not image.flags.c_contiguous:
        raise InputError(f"{name} is not C-contiguous; pass np.ascontiguousarray({name})")
    return image


def crop_regions(
    image: np.ndarray,
    boxes: np.ndarray | Sequence[Sequence[float]],
    masks: Sequence[RLE] | None = None,
    *,
    size: int = 224,
    context: float = 1.0,
    letterbox: bool = True,
    background: Background = "keep",
    fill: tuple[int, int, int] | None = None,
    blur_sigma: float = 4.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    threads: int | None = None,
) -> np.ndarray:
    """Crops, resizes and normalises N regions of an RGB uint8 image → float32 ``[N, 3, size, size]``.

    ``boxes`` are XYWH pixels ``[N, 4]``; ``masks`` (RLEs of the image's size, one per box) are
    needed for ``background="constant"`` or ``"blur"``. ``fill`` (RGB 0..255) pads letterbox
    bars and out-of-image pixels and is the constant background; default: ``mean`` in 0..255.
    ``mean``/``std`` are in 0..1 units (ImageNet by default).
    """
    check_image(image)
    try:
        box_arr = np.ascontiguousarray(np.asarray(boxes, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InputError(f"boxes must be numbers [N, 4] (x, y, w, h): {exc}") from None
    if box_arr.size == 0:
        box_arr = box_arr.reshape(0, 4)
    if box_arr.ndim != 2 or box_arr.shape[1] != 4:
        raise InputError(f"boxes must be [N, 4] (x, y, w, h), got shape {box_arr.shape}")
    if background not in ("keep", "constant", "blur"):
        raise InputError(f"background must be 'keep', 'constant' or 'blur', got {background!r}")
    if background != "keep" and masks is None:
        raise InputError(f"background={background!r} replaces pixels outside each region's mask: pass masks")
    if masks is not None and not isinstance(masks, (list, tuple)):
        raise InputError(f"masks must be a list of RLE dicts, got {type(masks).__name__}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 1 <= size <= 4096:
        raise InputError(f"size must be an integer in 1..4096, got {size!r}")
    if len(mean) != 3 or len(std) != 3:
        raise InputError("mean and std need 3 values (R, G, B)")
    if fill is None:
        fill = tuple(int(round(m * 255)) for m in mean)
    if len(fill) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in fill):
        raise InputError(f"fill must be 3 integers in 0..255, got {fill!r}")
    args = (
        image,
        box_arr,
        None if masks is None else list(masks),
        int(size),
        float(context),
        bool(letterbox),
        background,
        [int(v) for v in fill],
        float(blur_sigma),
        [float(v) for v in mean],
        [float(v) for v in std],
    )
    t = _native.resolve_threads(threads)
    cpp = _native.native()
    if cpp is not None:
        return cpp.crop_regions(*args, t)
    _check_reference_args(box_arr, masks, image, float(context), float(blur_sigma), background, std)
    return _ref.crop_regions(*args)


def _check_reference_args(boxes, masks, image, context, blur_sigma, background, std) -> None:
    """The checks the C++ binding makes, for the numpy fallback."""
    if not (context > 0 and np.isfinite(context)):
        raise InputError(f"context must be a positive finite factor, got {context}")
    if background == "blur" and not (0 < blur_sigma <= 100):
        raise InputError(f"blur_sigma must be in (0, 100], got {blur_sigma}")
    if any(not np.isfinite(s) or s == 0 for s in std):
        raise InputError("mean/std must be finite and std non-zero")
    bad = ~np.isfinite(boxes).all(axis=1) | (np.abs(boxes) > 1e7).any(axis=1) | (boxes[:, 2:] < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"box {i} = {boxes[i].tolist()} is not a finite XYWH box with w, h >= 0")
    if masks is not None:
        if len(masks) != len(boxes):
            raise InputError(f"got {len(masks)} masks for {len(boxes)} boxes")
        from gear_edge.reference.rle import read_rle

        for i, m in enumerate(masks):
            h, w, _ = read_rle(m, f"mask {i}")
            if (h, w) != image.shape[:2]:
                raise InputError(f"mask {i} is {h}x{w} but the image is {image.shape[0]}x{image.shape[1]}")
