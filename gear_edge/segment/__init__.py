"""Segment stage: class-agnostic region proposals (SAM2 automatic mask generation on engines, or the classical default).

``AutomaticMaskGenerator(encoder, decoder).generate(image)`` → :class:`gear_edge.types.Region` list
sorted by area (it is a :class:`~gear_edge.segment.base.Segmenter`); ``segment_prompts(image,
points, boxes, encoder=..., decoder=...)`` / ``PromptSegmenter`` for robot clicks and boxes.
Engines are any :class:`gear_edge.engines.Engine`.
"""

from gear_edge.segment.amg import AutomaticMaskGenerator, MaskSet, postprocess_small_regions
from gear_edge.segment.cleanup import remove_small_regions
from gear_edge.segment.grid import build_all_layer_point_grids, build_point_grid, generate_crop_boxes
from gear_edge.segment.nms import box_nms
from gear_edge.segment.preprocess import preprocess
from gear_edge.segment.prompts import PromptSegmenter, segment_prompts

__all__ = [
    "AutomaticMaskGenerator",
    "MaskSet",
    "PromptSegmenter",
    "box_nms",
    "build_all_layer_point_grids",
    "build_point_grid",
    "generate_crop_boxes",
    "postprocess_small_regions",
    "preprocess",
    "remove_small_regions",
    "segment_prompts",
]
