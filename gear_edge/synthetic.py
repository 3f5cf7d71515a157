"""Synthetic scenes with exact ground truth, built from real image content (tests, benchmarks, ``gear-edge bench``).

Object shapes come from real data (scikit-image's ``horse`` silhouette, Otsu-thresholded ``coins``)
or simple solids; their pixels are flat colours with photo-like noise and shading, pasted at known
places onto a real photo background (``camera``, blurred and dimmed). Later objects occlude earlier
ones, and the ground-truth masks are updated accordingly, so every mask is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from gear_edge.errors import MissingDependencyError


def _skimage_data():
    try:
        import skimage.data
    except ImportError as exc:
        raise MissingDependencyError("synthetic scenes use scikit-image's bundled images: pip install 'scikit-image>=0.22'") from exc
    return skimage.data


@dataclass
class SyntheticScene:
    """An RGB uint8 ``H x W x 3`` image and the exact bool ``[H, W]`` mask of each named object."""

    image: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def paste(self, name: str, mask: np.ndarray, rgb: tuple[int, int, int], *, noise: float = 6.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        ys = np.nonzero(mask)[0]
        shade = 0.85 + 0.15 * (ys - ys.min()) / max(1, ys.max() - ys.min())
        pix = np.array(rgb, np.float64)[None, :] * shade[:, None] + rng.normal(0, noise, (len(ys), 3))
        self.image[mask] = np.clip(pix, 0, 255).astype(np.uint8)
        for k in self.masks:
            self.masks[k] &= ~mask
        self.masks[name] = mask.copy()


def background(h: int, w: int) -> np.ndarray:
    bg = cv2.GaussianBlur(cv2.resize(_skimage_data().camera(), (w, h)), (0, 0), 8)
    grey = (bg.astype(np.float64) * 0.25 + 150).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def horse_mask(h: int, w: int, x: int, y: int, width: int) -> np.ndarray:
    horse = ~_skimage_data().horse()  # True on the horse
    height = round(width * horse.shape[0] / horse.shape[1])
    small = cv2.resize(horse.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    m = np.zeros((h, w), bool)
    m[y : y + height, x : x + width] = small
    return m


def coin_mask(h: int, w: int, x: int, y: int, size: int) -> np.ndarray:
    """One real coin's silhouette from skimage.data.coins() (Otsu threshold, largest blob in a crop)."""
    coins = _skimage_data().coins()
    crop = coins[180:260, 20:100]
    _, th = cv2.threshold(crop, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(th.astype(np.uint8))
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, y0, cw, ch = stats[k, :4]
    blob = (lab[y0 : y0 + ch, x0 : x0 + cw] == k).astype(np.uint8)
    blob = cv2.morphologyEx(blob, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    small = cv2.resize(blob, (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    m = np.zeros((h, w), bool)
    m[y : y + size, x : x + size] = small
    return m


def rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def disk(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def solid_mask(shape: str, geom, h: int, w: int) -> np.ndarray:
    """bool [h, w] mask of one flat solid drawn with OpenCV, in pixels:

    ``rect`` (x0, y0, x1, y1; end-exclusive) · ``disk`` (cx, cy, r) · ``ellipse`` (cx, cy, ax, ay) ·
    ``ring`` (cx, cy, r_out, r_in) · ``frame`` (x0, y0, x1, y1, thickness) · ``triangle`` (x, y corner list).
    """
    m = np.zeros((h, w), np.uint8)
    g = geom
    if shape == "rect":
        x0, y0, x1, y1 = g
        m[y0:y1, x0:x1] = 1
    elif shape == "disk":
        cx, cy, r = g
        cv2.circle(m, (cx, cy), r, 1, -1)
    elif shape == "ellipse":
        cx, cy, ax, ay = g
        cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 1, -1)
    elif shape == "ring":
        cx, cy, r_out, r_in = g
        cv2.circle(m, (cx, cy), r_out, 1, -1)
        cv2.circle(m, (cx, cy), r_in, 0, -1)
    elif shape == "frame":
        x0, y0, x1, y1, t = g
        m[y0:y1, x0:x1] = 1
        m[y0 + t : y1 - t, x0 + t : x1 - t] = 0
    elif shape == "triangle":
        cv2.fillPoly(m, [np.array(g, np.int32).reshape(-1, 2)], 1)
    else:
        raise ValueError(f"unknown solid shape {shape!r} (rect, disk, ellipse, ring, frame, triangle)")
    return m.astype(bool)


def tabletop(h: int = 480, w: int = 640) -> SyntheticScene:
    """A brown table with a red box and a blue ball on it, a green horse figure, a yellow coin."""
    s = SyntheticScene(background(h, w))
    s.paste("table", rect(h, w, 30, 330, 610, 470), (125, 75, 35), seed=1)
    s.paste("box", rect(h, w, 70, 190, 210, 330), (205, 30, 30), seed=2)
    s.paste("ball", disk(h, w, 420, 285, 45), (30, 70, 215), seed=3)
    s.paste("horse", horse_mask(h, w, 400, 30, 200), (40, 150, 50), seed=4)
    s.paste("coin", coin_mask(h, w, 260, 60, 70), (235, 205, 40), seed=5)
    return s
