"""Overlay rendering for answers: target mask tint, region ids, and the logic chain as a caption."""

from __future__ import annotations

import textwrap

import cv2
import numpy as np

from gear_edge.crops import check_image
from gear_edge.types import Answer, Scene

TARGET_RGB = (255, 40, 40)
OUTLINE_RGB = (255, 255, 255)


def render_answer(image: np.ndarray, scene: Scene, answer: Answer, *, max_caption_lines: int = 8,
                  caption: bool = True) -> np.ndarray:
    """RGB uint8 overlay: all region outlines + ids, targets tinted red, query and chain below the image.

    ``caption=False``: no text panel, so the overlay has the image's size (to lay over the camera frame;
    the ROS node sends the chain in its answer instead)."""
    image = check_image(image)
    h, w = image.shape[:2]
    out = image.copy()
    if answer.mask is not None:
        m = answer.bitmap()
        out[m] = (0.45 * out[m] + 0.55 * np.array(TARGET_RGB)).astype(np.uint8)
    scale = max(0.4, min(h, w) / 900)
    thick = max(1, round(scale * 2))
    for r in scene.regions:
        mask = r.bitmap().astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        colour = TARGET_RGB if r.id in answer.targets else OUTLINE_RGB
        cv2.drawContours(out, contours, -1, colour, thick if r.id in answer.targets else 1)
        cx, cy = r.attributes.get("centroid", [r.bbox[0] + r.bbox[2] / 2, r.bbox[1] + r.bbox[3] / 2])
        label = f"R{r.id}"
        org = (int(cx) - 10, int(cy) + 5)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    if not caption:
        return out
    targets = ", ".join(f"R{t}" for t in answer.targets) or "none"
    lines = [f"Q: {answer.query}", f"A: {targets}  ({answer.mode})"]
    for i, step in enumerate(answer.steps, 1):
        kept = "" if step.kept is None else f" -> {', '.join(f'R{k}' for k in step.kept) or 'none'}"
        lines += textwrap.wrap(f"{i}. {step.text}{kept}", width=max(40, int(w / (11 * scale))))
    lines = lines[: max_caption_lines + 2]
    line_h = int(28 * scale) + 6
    panel = np.full((line_h * len(lines) + 10, w, 3), 20, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(panel, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([out, panel], axis=0)
