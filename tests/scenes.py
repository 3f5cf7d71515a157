"""Synthetic scenes with exact ground truth (built by :mod:`gear_edge.synthetic`) and the tests' queries."""

from __future__ import annotations

from gear_edge.synthetic import SyntheticScene, background, coin_mask, disk, horse_mask, rect, tabletop

__all__ = ["SyntheticScene", "TABLETOP_QUERIES", "background", "coin_mask", "disk", "horse_mask", "rect", "tabletop"]

# query -> names of the regions that answer it (for the default profile: no captioner, so
# queries use colours, sizes, positions, shapes and relations)
TABLETOP_QUERIES = {
    "the red object": ["box"],
    "the blue round object": ["ball"],
    "the largest object at the bottom": ["table"],
    "the green object at the top right": ["horse"],
    "the yellow object": ["coin"],
    "the object left of the blue ball": ["box"],
    "the purple elephant": [],
}
