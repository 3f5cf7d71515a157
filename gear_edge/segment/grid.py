"""Prompt geometry of automatic mask generation: point grids, crop boxes, batching.

Same arithmetic as sam2's ``build_point_grid`` / ``build_all_layer_point_grids`` /
``generate_crop_boxes`` (and segment-anything's), so the same prompts reach the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from gear_edge.errors import InputError


def build_point_grid(n_per_side: int) -> np.ndarray:
    """float64 ``[n², 2]`` (x, y) points in [0, 1]², cell centres of an n × n grid, x fastest."""
    if not isinstance(n_per_side, (int, np.integer)) or isinstance(n_per_side, bool) or n_per_side < 1:
        raise InputError(f"points_per_side must be a positive integer, got {n_per_side!r}")
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has ``int(n_per_side / scale_per_layer**i)`` points a side."""
    if not isinstance(scale_per_layer, (int, np.integer)) or scale_per_layer < 1:
        raise InputError(f"crop_n_points_downscale_factor must be an integer >= 1, got {scale_per_layer!r}")
    grids = []
    for i in range(n_layers + 1):
        n = int(n_per_side / (scale_per_layer**i))
        if n < 1:
            raise InputError(
                f"crop layer {i} would have {n_per_side}/{scale_per_layer}**{i} < 1 points a side; "
                "lower crop_n_layers or crop_n_points_downscale_factor"
            )
        grids.append(build_point_grid(n))
    return grids


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY ints, exclusive end) and their layer index.

    Layer 0 is the whole image; layer i ≥ 1 has ``(2**i)²`` crops overlapping by
    ``int(overlap_ratio * short_side * 2 / 2**i)`` pixels, listed x-major (all y for the first x).
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layers = [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_side))
        crop_w = crop_len(im_w, n_side, overlap)
        crop_h = crop_len(im_h, n_side, overlap)
        xs0 = [int((crop_w - overlap) * i) for i in range(n_side)]
        ys0 = [int((crop_h - overlap) * i) for i in range(n_side)]
        for x0 in xs0:
            for y0 in ys0:
                boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
                layers.append(i_layer + 1)
    return boxes, layers


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def points_to_model(points: np.ndarray, crop_hw: tuple[int, int], input_size: int = 1024) -> np.ndarray:
    """Crop-pixel points → float32 model-input coordinates, in sam2's float32 order of operations.

    sam2 casts the points to float32, divides by the crop width/height and multiplies by the input
    size, all in float32.
    """
    h, w = crop_hw
    p = np.asarray(points, dtype=np.float32)
    out = np.empty_like(p)
    out[..., 0] = p[..., 0] / np.float32(w)
    out[..., 1] = p[..., 1] / np.float32(h)
    return out * np.float32(input_size)
