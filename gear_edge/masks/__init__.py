"""Masks as COCO RLE: encode/decode, measurements, set ops, polygons, fused logit post-processing.

Runs on the C++ extension when it is built, else on the numpy reference
(:mod:`gear_edge.reference`); :func:`backend` says which.
"""

from gear_edge._native import backend, get_num_threads, set_num_threads
from gear_edge.masks.postprocess import PostprocessedMasks, postprocess_logits
from gear_edge.masks.rle import (
    RLE,
    area,
    decode,
    encode,
    from_polygons,
    iou,
    merge,
    sample,
    to_bbox,
    to_polygons,
)

__all__ = [
    "RLE",
    "PostprocessedMasks",
    "area",
    "backend",
    "decode",
    "encode",
    "from_polygons",
    "get_num_threads",
    "iou",
    "merge",
    "sample",
    "postprocess_logits",
    "set_num_threads",
    "to_bbox",
    "to_polygons",
]
