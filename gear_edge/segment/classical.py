"""The default profile's segmenter: graph-based over-segmentation + region-adjacency merging.

No SAM weights can be installed from the package registries, so the embedded default profile uses a
classical class-agnostic segmenter (scikit-image): Felzenszwalb superpixels on a downscaled image,
merged across a region adjacency graph by mean Lab colour distance. It finds object-level regions
where objects differ from their surroundings in colour (boxes, cups, tools on a table, signs), not
objects that share their background's colour or parts that need semantics to separate — SAM2 (the
``sam2`` profile) does that.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.crops import check_image
from gear_edge.errors import MissingDependencyError
from gear_edge.types import Region


@dataclass
class ClassicalSegmenter:
    """Felzenszwalb + RAG merge. Sizes are relative to the image so results do not depend on resolution.

    work_side: longer side (px) of the image the graph is built on; scale / sigma: Felzenszwalb
    parameters; merge_threshold: Lab distance below which adjacent regions merge; min_area_frac /
    max_regions: smallest region kept (fraction of the image) and how many are kept (largest first).
    """

    work_side: int = 384
    scale: float = 200.0
    sigma: float = 0.8
    merge_threshold: float = 12.0
    min_area_frac: float = 0.004
    max_regions: int = 40
    name: str = "classical-felzenszwalb-rag"

    def labels(self, image: np.ndarray) -> np.ndarray:
        """int32 [H, W] label image at the input resolution (labels 0..K-1, unordered)."""
        try:
            from skimage import graph
            from skimage.segmentation import felzenszwalb
        except ImportError as exc:
            raise MissingDependencyError(
                "the default (classical) segmenter needs scikit-image: pip install 'gear-edge[default]'"
            ) from exc
        image = check_image(image)
        h, w = image.shape[:2]
        s = min(1.0, self.work_side / max(h, w))
        small = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        min_size = max(4, int(0.002 * small.shape[0] * small.shape[1]))
        lab = felzenszwalb(small, scale=self.scale, sigma=self.sigma, min_size=min_size)
        if lab.max() > 0:
            rag = graph.rag_mean_color(cv2.cvtColor(small, cv2.COLOR_RGB2Lab), lab, mode="distance")
            lab = graph.cut_threshold(lab, rag, self.merge_threshold)
        lab = lab.astype(np.int32)
        if lab.shape != (h, w):
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        return lab

    def segment(self, image: np.ndarray) -> list[Region]:
        image = check_image(image)
        h, w = image.shape[:2]
        lab = self.labels(image)
        ids, counts = np.unique(lab, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        keep = [int(ids[i]) for i in order if counts[i] >= self.min_area_frac * h * w][: self.max_regions]
        rles = [gm.encode(np.ascontiguousarray(lab == k)) for k in keep]
        if not rles:
            return []
        areas = gm.area(rles)
        boxes = gm.to_bbox(rles)
        return [
            Region(id=i, rle=r, bbox=tuple(float(v) for v in boxes[i]), area=int(areas[i]))
            for i, r in enumerate(rles)
        ]
