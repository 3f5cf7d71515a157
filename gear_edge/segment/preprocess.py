"""Image → SAM2 encoder input: ``float32 [1, 3, S, S]`` (S = 1024), as sam2's ``SAM2Transforms``.

sam2 does ``ToTensor`` (uint8 → float32 / 255), ``torchvision.transforms.Resize((S, S))`` on the
tensor — bilinear **with antialias** (torchvision's default), aspect ratio not kept — then
``Normalize`` with the ImageNet mean/std. Here the resize is torch's separable antialiased
bilinear filter re-written in numpy (same taps and float32 weights: width pass, then height pass;
weights normalised per output pixel), so up- and down-scaling both follow sam2. The remaining
difference is float32 summation order / FMA contraction inside torch's kernel: ≤ ~1e-6 on the
normalised values (checked against torch in the tests). ``cv2.resize(INTER_LINEAR)`` would match
for up-scaling only; for down-scaling it ignores antialiasing (errors of several 0.1 on edges).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gear_edge.errors import InputError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def check_rgb(image: object, name: str = "image") -> np.ndarray:
    """Returns ``image`` as a C-contiguous uint8 ``H x W x 3`` array; :class:`InputError` otherwise."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be a numpy array (uint8 H x W x 3 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(
            f"{name} must be uint8 RGB (values 0..255), got dtype {image.dtype}; "
            "convert with (np.clip(x, 0, 1) * 255).astype(np.uint8) for float images in [0, 1]"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (grayscale: np.stack([img] * 3, -1); RGBA: img[..., :3])" if image.ndim in (2, 3) else ""
        raise InputError(f"{name} must be H x W x 3 (RGB), got shape {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


@lru_cache(maxsize=32)
def aa_bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's antialiased-bilinear taps for one axis: indices int64 ``[n_out, K]``, float32 weights.

    Mirrors ``_compute_weights_aa`` (UpSampleKernel.cpp): scale = n_in / n_out (float32), support
    = max(scale, 1), triangle filter stretched by the scale when down-sampling, weights divided by
    their sum. Unused taps have weight 0 and a valid index.
    """
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    i = np.arange(n_out, dtype=np.float64)
    center = (np.float64(scale) * (i + 0.5)).astype(f32)
    xmin = np.maximum((center - support).astype(np.float64) + 0.5, 0).astype(np.int64)
    xmax = np.minimum(((center + support).astype(np.float64) + 0.5).astype(np.int64), n_in)
    xsize = xmax - xmin
    k = int(xsize.max())
    j = np.arange(k)
    idx = xmin[:, None] + j[None, :]
    # (j + xmin - center + 0.5) * invscale: int → float32 subtraction, + 0.5 and * in double, filter in float32
    arg = (((j[None, :] + xmin[:, None]).astype(f32) - center[:, None]).astype(np.float64) + 0.5) * np.float64(invscale)
    x = np.abs(arg.astype(f32))
    w = np.where(x < f32(1.0), f32(1.0) - x, f32(0.0)).astype(f32)
    valid = j[None, :] < xsize[:, None]
    w = np.where(valid, w, f32(0.0))
    total = np.zeros(n_out, dtype=f32)
    for t in range(k):  # sequential float32 sum, as torch accumulates
        total = total + w[:, t]
    w = np.where(total[:, None] != 0, w / np.where(total == 0, f32(1.0), total)[:, None], w).astype(f32)
    idx = np.minimum(idx, n_in - 1)
    return idx, w


def _resize_rows(x: np.ndarray, n_out: int, out: np.ndarray | None = None) -> np.ndarray:
    """Resizes axis 0 of a C-contiguous ``[N, ...]`` array (row gathers: the fast direction)."""
    idx, w = aa_bilinear_taps(x.shape[0], n_out)
    flat = x.reshape(x.shape[0], -1)
    shape = (n_out,) + x.shape[1:]
    res = np.empty((n_out, flat.shape[1]), dtype=np.float32) if out is None else out.reshape(n_out, -1)
    np.take(flat, idx[:, 0], axis=0, out=res)
    res *= w[:, 0, None]
    for t in range(1, idx.shape[1]):
        term = flat[idx[:, t]]
        term *= w[:, t, None]
        res += term
    return res.reshape(shape)


def _transpose_hw(x: np.ndarray) -> np.ndarray:
    """Swaps the first two axes of ``[A, B]`` / ``[A, B, C]`` (C <= 4) with cv2's blocked transpose."""
    import cv2

    return cv2.transpose(x)


def resize_antialias(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 ``[H, W]`` or ``[H, W, C]`` (C <= 4) → ``[out_h, out_w(, C)]``: torch's bilinear, antialias.

    Width pass first, then height (torch's order); an axis already at its size is left alone.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1] != out_w:
        x = _transpose_hw(_resize_rows(_transpose_hw(x), out_w))
    if x.shape[0] != out_h:
        x = _resize_rows(x, out_h)
    return x


def preprocess(image: np.ndarray, size: int = 1024) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` → float32 ``[1, 3, size, size]`` (/255, resized, ImageNet-normalised)."""
    import cv2

    image = check_rgb(image)
    x = image.astype(np.float32)
    x /= np.float32(255.0)
    if x.shape[1] != size:  # width pass on the (small) interleaved image
        x = _transpose_hw(_resize_rows(_transpose_hw(x), size))
    out = np.empty((1, 3, size, size), dtype=np.float32)
    for c, plane in enumerate(cv2.split(x)):  # height pass per channel, straight into the output
        if plane.shape[0] != size:
            _resize_rows(plane, size, out=out[0, c])
        else:
            out[0, c] = plane
        out[0, c] -= IMAGENET_MEAN[c]
        out[0, c] /= IMAGENET_STD[c]
    return out
