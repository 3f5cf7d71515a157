"""Min-area clean-up of masks: fill small holes, drop small islands (sam2 / segment-anything semantics).

``remove_small_regions`` follows ``sam2.utils.amg.remove_small_regions``: 8-connected components
from ``cv2.connectedComponentsWithStats``; "holes" fills background components (of the inverted
mask) smaller than the threshold, "islands" drops foreground components smaller than it, keeping
the largest if all are small. Components are compared with ``area < threshold``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gear_edge.errors import InputError


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: Literal["holes", "islands"]
) -> tuple[np.ndarray, bool]:
    """bool ``[H, W]`` → (cleaned bool mask, whether it changed)."""
    import cv2

    if mode not in ("holes", "islands"):
        raise InputError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    working = (np.logical_xor(holes, mask)).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]  # label 0 is the background of ``working``
    small = np.flatnonzero(sizes < area_thresh) + 1
    if small.size == 0:
        return mask, False
    if holes:
        fill = np.concatenate([[0], small])  # background of working (= mask pixels) + small holes
    else:
        is_small = np.zeros(n_labels, dtype=bool)
        is_small[small] = True
        is_small[0] = True
        fill = np.flatnonzero(~is_small)
        if fill.size == 0:  # every island is small: keep the largest
            fill = np.array([int(np.argmax(sizes)) + 1])
    lut = np.zeros(n_labels, dtype=bool)
    lut[fill] = True
    return lut[labels], True
