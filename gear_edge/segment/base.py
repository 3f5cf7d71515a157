"""The Segmenter protocol: image → class-agnostic regions (ids 0..N-1, largest first)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from gear_edge.types import Region


@runtime_checkable
class Segmenter(Protocol):
    """Anything that proposes object-level regions for an RGB uint8 image."""

    name: str

    def segment(self, image: np.ndarray) -> list[Region]:
        """Regions sorted by area (descending), ids 0..N-1 in that order, masks as COCO RLE."""
        ...
