"""Colour naming in CIE Lab: per-pixel names robust to shading, and per-region name histograms."""

from __future__ import annotations

import cv2
import numpy as np

from gear_edge.vocabulary import COLOURS

# Named colours and sRGB prototypes. Chromatic names are decided by hue/chroma in Lab with the
# lightness weighted down (shading changes L* far more than a* b*); achromatic pixels (low chroma)
# are black / grey / white by L*.
COLOUR_NAMES = COLOURS  # the vocabulary's colour names (gear_edge.vocabulary.COLOURS), in histogram order
_CHROMATIC_RGB = {
    "red": [(200, 20, 20), (255, 0, 0), (150, 10, 20)],
    "orange": [(255, 140, 0), (240, 110, 20)],
    "yellow": [(255, 230, 0), (240, 220, 60)],
    "green": [(0, 160, 0), (40, 200, 60), (20, 110, 40), (120, 200, 40)],
    "blue": [(0, 60, 255), (30, 100, 220), (20, 40, 140), (70, 170, 240)],
    "purple": [(128, 0, 160), (150, 60, 200), (90, 20, 110)],
    "pink": [(255, 150, 200), (250, 100, 170), (240, 170, 190)],
    "brown": [(140, 80, 30), (110, 60, 20), (170, 110, 60)],
}
_CHROMA_MIN = 14.0  # a*b* chroma below this is achromatic
_L_BLACK, _L_WHITE = 22.0, 82.0
_L_WEIGHT = 0.35


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> float32 CIE Lab [..., 3] (L* 0..100, D65)."""
    flat = np.ascontiguousarray(rgb.reshape(-1, 1, 3), dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(rgb.shape[:-1] + (3,))


def _prototypes() -> tuple[np.ndarray, np.ndarray]:
    names, rgbs = [], []
    for name, values in _CHROMATIC_RGB.items():
        for v in values:
            names.append(COLOUR_NAMES.index(name))
            rgbs.append(v)
    lab = rgb_to_lab(np.array(rgbs, dtype=np.uint8))
    return np.array(names, dtype=np.int64), lab


_PROTO_INDEX, _PROTO_LAB = _prototypes()


def name_pixels(lab: np.ndarray) -> np.ndarray:
    """float32 Lab [K, 3] -> int64 [K] indices into COLOUR_NAMES."""
    lab = lab.reshape(-1, 3)
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    out = np.where(L < _L_BLACK, 0, np.where(L > _L_WHITE, 1, 2)).astype(np.int64)
    chromatic = (chroma >= _CHROMA_MIN) & (L >= 0.5 * _L_BLACK)
    if chromatic.any():
        c = lab[chromatic]
        # d = (a - a_p)^2 + (b - b_p)^2 + (w (L - L_p))^2 per prototype, in place (3 temporaries, not 7)
        d = c[:, None, 1] - _PROTO_LAB[None, :, 1]
        np.square(d, out=d)
        t = c[:, None, 2] - _PROTO_LAB[None, :, 2]
        np.square(t, out=t)
        d += t
        np.subtract(c[:, None, 0], _PROTO_LAB[None, :, 0], out=t)
        t *= _L_WEIGHT
        np.square(t, out=t)
        d += t
        out[chromatic] = _PROTO_INDEX[np.argmin(d, axis=1)]
    return out


def colour_histogram(rgb_pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 [K, 3] pixels -> (fractions float64 [len(COLOUR_NAMES)], mean L*/100)."""
    if len(rgb_pixels) == 0:
        return np.zeros(len(COLOUR_NAMES)), 0.0
    lab = rgb_to_lab(rgb_pixels)
    idx = name_pixels(lab)
    hist = np.bincount(idx, minlength=len(COLOUR_NAMES)).astype(np.float64)
    return hist / hist.sum(), float(lab[:, 0].mean() / 100.0)


def colour_histograms(pixel_sets: list[np.ndarray], n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched colour_histogram: uint8 [K_i, 3] per set -> (fractions [n_sets, names], mean L*/100 [n_sets])."""
    n_names = len(COLOUR_NAMES)
    if n_sets == 0:
        return np.zeros((0, n_names)), np.zeros(0)
    sizes = np.array([len(p) for p in pixel_sets], dtype=np.int64)
    owner = np.repeat(np.arange(n_sets), sizes)
    lab = rgb_to_lab(np.concatenate(pixel_sets).reshape(-1, 3))
    idx = name_pixels(lab)
    counts = np.bincount(owner * n_names + idx, minlength=n_sets * n_names).reshape(n_sets, n_names).astype(np.float64)
    denom = np.maximum(sizes, 1)[:, None]
    brightness = np.bincount(owner, weights=lab[:, 0], minlength=n_sets) / np.maximum(sizes, 1) / 100.0
    return counts / denom, brightness
