"""Pinhole camera intrinsics, depth validation and 3D geometry of masks (numpy + OpenCV only).

Frame: the camera optical frame of ``sensor_msgs/CameraInfo`` — x right, y down, z forward, metres.
A pixel (u, v) (column, row; pixel centres at integer coordinates, as in CameraInfo's K) with depth
z back-projects to ``((u - cx) z / fx, (v - cy) z / fy, z)``.

Depth images (:func:`depth_to_metres`):

* float (``float32``/``float64``): metres;
* ``uint16``: millimetres as the sensors publish them (``16UC1``) times ``scale`` metres per unit
  (default 0.001);
* holes: NaN, ±inf, zero and negative values are *missing depth* and become NaN; every 3D step
  ignores them (a region whose pixels are all holes gets no 3D attributes). Any other dtype, a
  shape other than ``[H, W]`` / ``[H, W, 1]``, or a size different from the colour image is an
  :class:`~gear_edge.errors.InputError` naming it; depth and image must be registered (same pixel grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from gear_edge.errors import InputError
from gear_edge.types import Box3D

REST_ON_PLANE_M = 0.15  # a box whose lowest seen point is this close to the plane stands on it
MAX_DEPTH_M = 100.0  # float depth above this (metres) is rejected: almost surely millimetres passed as float


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (fx, fy focal lengths; cx, cy principal point)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for k in ("fx", "fy", "cx", "cy"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"intrinsics {k} must be a finite number, got {v!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"intrinsics fx, fy must be > 0, got fx={self.fx}, fy={self.fy}")

    @classmethod
    def from_matrix(cls, k: Any) -> "CameraIntrinsics":
        """From a 3x3 K ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` or CameraInfo's row-major 9-list ``k``."""
        try:
            m = np.asarray(k, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"intrinsics must be a 3x3 K matrix or a 9-list, got {type(k).__name__}") from None
        if m.size != 9 or m.ndim not in (1, 2) or (m.ndim == 2 and m.shape != (3, 3)):
            raise InputError(f"intrinsics K must be 3x3 (or 9 numbers, row-major), got shape {m.shape}")
        m = m.reshape(3, 3)
        if not np.isfinite(m).all() or abs(m[2, 2] - 1.0) > 1e-6 or np.abs(m[2, :2]).max() > 1e-9:
            raise InputError(f"intrinsics K must be finite with last row [0, 0, 1], got {m[2].tolist()}")
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]))

    def matrix(self) -> np.ndarray:
        """float64 [3, 3] K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    def project(self, points: np.ndarray) -> np.ndarray:
        """float64 [N, 2] pixel (u, v) of camera-frame points [N, 3] (z > 0)."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)


def as_intrinsics(value: Any) -> CameraIntrinsics:
    """CameraIntrinsics from itself, a 3x3 K / 9-list, a dict with ``k``/``K`` (CameraInfo-like) or
    with ``fx, fy, cx, cy``."""
    if isinstance(value, CameraIntrinsics):
        return value
    if isinstance(value, dict):
        for key in ("k", "K"):
            if key in value:
                return CameraIntrinsics.from_matrix(value[key])
        if all(k in value for k in ("fx", "fy", "cx", "cy")):
            try:
                return CameraIntrinsics(*(float(value[k]) for k in ("fx", "fy", "cx", "cy")))
            except (TypeError, ValueError):
                raise InputError(f"intrinsics fx, fy, cx, cy must be numbers, got {value!r}") from None
        raise InputError(f"intrinsics dict needs 'k' (9 numbers) or fx, fy, cx, cy; got keys {sorted(value)}")
    if hasattr(value, "k") and not isinstance(value, np.ndarray):  # a sensor_msgs/CameraInfo message
        return CameraIntrinsics.from_matrix(list(value.k))
    return CameraIntrinsics.from_matrix(value)


def depth_to_metres(depth: Any, image_hw: tuple[int, int] | None = None, *, scale: float | None = None) -> np.ndarray:
    """float32 [H, W] depth in metres with NaN where depth is missing (see the module docstring).

    ``scale``: metres per unit of a ``uint16`` image (default 0.001: millimetres); for float depth
    it multiplies the values when given (default 1: metres). ``image_hw``: the colour image's (H, W)
    the depth must match.
    """
    if not isinstance(depth, np.ndarray):
        raise InputError(f"depth must be a numpy array (float metres or uint16 millimetres), got {type(depth).__name__}")
    d = depth[..., 0] if depth.ndim == 3 and depth.shape[2] == 1 else depth
    if d.ndim != 2:
        raise InputError(f"depth must be [H, W] (or [H, W, 1]), got shape {depth.shape}")
    if image_hw is not None and tuple(d.shape) != tuple(image_hw):
        raise InputError(f"depth size {d.shape[0]}x{d.shape[1]} (HxW) does not match the image size "
                         f"{image_hw[0]}x{image_hw[1]}: register depth to the colour image first")
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"depth scale must be a positive number (metres per unit), got {scale!r}")
    if d.dtype == np.uint16:
        out = d.astype(np.float32) * np.float32(0.001 if scale is None else scale)
        out[d == 0] = np.nan
        return out
    if d.dtype in (np.float32, np.float64, np.float16):
        out = d.astype(np.float32) * np.float32(1.0 if scale is None else scale)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(out) | (out <= 0)
        out[bad] = np.nan
        if np.nanmax(out, initial=0.0) > MAX_DEPTH_M:
            raise InputError(f"float depth must be metres; got values up to {float(np.nanmax(out)):.1f} "
                             f"(> {MAX_DEPTH_M:g} m): pass uint16 millimetres, or scale=0.001")
        return out
    raise InputError(f"depth dtype must be float (metres) or uint16 (millimetres), got {d.dtype}")


def point_grid(depth_m: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """float32 [H, W, 3] camera-frame point of every pixel (NaN where depth is missing)."""
    h, w = depth_m.shape
    u = (np.arange(w, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx)
    v = (np.arange(h, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy)
    out = np.empty((h, w, 3), np.float32)
    out[..., 0] = depth_m * u[None, :]
    out[..., 1] = depth_m * v[:, None]
    out[..., 2] = depth_m
    return out


def backproject(depth_m: np.ndarray, intrinsics: CameraIntrinsics, mask: np.ndarray | None = None,
                step: int = 1) -> np.ndarray:
    """float32 [N, 3] camera-frame points of the valid-depth pixels under ``mask`` (bool [H, W];
    all pixels when None), every ``step``-th row and column."""
    d = depth_m if step == 1 else depth_m[::step, ::step]
    h, w = depth_m.shape
    if mask is not None:
        if mask.shape != (h, w):
            raise InputError(f"mask shape {mask.shape} does not match the depth size {(h, w)}")
        m = mask if step == 1 else mask[::step, ::step]
        ys, xs = np.nonzero(m & np.isfinite(d))
    else:
        ys, xs = np.nonzero(np.isfinite(d))
    z = d[ys, xs].astype(np.float32)
    u, v = xs.astype(np.float32) * step, ys.astype(np.float32) * step
    return np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z], axis=1).astype(np.float32)


def robust_centroid(points: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """float64 [3]: the mean of the points within the per-axis [trim, 1 - trim] quantiles (drops
    flying pixels at depth edges); NaNs if there are no points."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    if len(p) == 0:
        return np.full(3, np.nan)
    if len(p) < 10:
        return np.median(p, axis=0)
    lo, hi = np.quantile(p, [trim, 1 - trim], axis=0)
    keep = ((p >= lo) & (p <= hi)).all(axis=1)
    return p[keep].mean(axis=0) if keep.any() else np.median(p, axis=0)


def plane_frame(plane: tuple[float, float, float, float]) -> np.ndarray:
    """float64 [3, 3] rotation whose third column is the plane's unit normal and first column the
    camera x axis projected into the plane (so box yaw reads from the image's left-right)."""
    n = np.asarray(plane[:3], np.float64)
    n = n / np.linalg.norm(n)
    x = np.array([1.0, 0.0, 0.0]) - n[0] * n
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, 0.0, 1.0]) - n[2] * n
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(n, x), n], axis=1)


def oriented_box(points: np.ndarray, plane: tuple[float, float, float, float] | None = None,
                 trim: float = 0.02, extend_to_plane: bool = True) -> Box3D | None:
    """The oriented 3D box of ``points`` [N, 3] (camera frame, metres); None for < 4 points.

    With a support ``plane`` the box stands on it: its third axis is the plane normal, its footprint
    is the minimum-area rectangle of the points projected into the plane, and (``extend_to_plane``)
    when its lowest point is within ``REST_ON_PLANE_M`` of the plane it reaches down to the plane,
    because depth sees only the top and front of what stands there (a thing held above the plane,
    or lying on another object, keeps the extent of its seen points). Without a plane
    the axes are the points' principal components. Extents use the [trim, 1 - trim] quantiles so
    flying pixels at depth edges do not stretch the box.
    """
    p = np.asarray(points, np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 4:
        return None
    if plane is not None:
        rot = plane_frame(plane)
        local = p @ rot
        n_len = float(np.linalg.norm(plane[:3]))
        heights = (p @ np.asarray(plane[:3]) + plane[3]) / n_len
        lo_h, hi_h = np.quantile(heights, [trim, 1 - trim])
        if extend_to_plane and lo_h <= REST_ON_PLANE_M:  # it rests on the plane: reach down to it
            lo_h = min(0.0, lo_h)
        xy = local[:, :2]
        lo, hi = np.quantile(xy, [trim, 1 - trim], axis=0)
        keep = ((xy >= lo) & (xy <= hi)).all(axis=1)
        pts = xy[keep] if keep.sum() >= 3 else xy
        (rcx, rcy), (rw, rh), ang = cv2.minAreaRect(pts.astype(np.float32))
        a = math.radians(ang)
        ca, sa = math.cos(a), math.sin(a)
        ex, ey = np.array([ca, sa]), np.array([-sa, ca])
        # the rectangle's axes expressed in the camera frame
        ax = rot[:, 0] * ex[0] + rot[:, 1] * ex[1]
        ay = rot[:, 0] * ey[0] + rot[:, 1] * ey[1]
        r = np.stack([ax, ay, rot[:, 2]], axis=1)
        # centre: the rectangle's centre in the plane, mid-height along the normal (local z = height - d)
        center = rot @ np.array([rcx, rcy, (lo_h + hi_h) / 2 - plane[3] / n_len])
        size = (float(rw), float(rh), float(hi_h - lo_h))
    else:
        mean = p.mean(axis=0)
        _, vecs = np.linalg.eigh(np.cov((p - mean).T))
        r = vecs[:, ::-1].copy()
        if np.linalg.det(r) < 0:
            r[:, 2] *= -1
        local = (p - mean) @ r
        lo, hi = np.quantile(local, [trim, 1 - trim], axis=0)
        center = mean + r @ ((lo + hi) / 2)
        size = tuple(float(v) for v in hi - lo)
    return Box3D(tuple(float(v) for v in center), size, tuple(tuple(float(v) for v in row) for row in r))  # type: ignore[arg-type]


def fit_plane_ransac(points: np.ndarray, *, threshold: float = 0.01, iterations: int = 200,
                     seed: int = 0, min_inliers: int = 50) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC plane through ``points`` [N, 3]: ((a, b, c, d) float64 with a unit normal pointing towards
    the camera (d > 0), bool [N] inliers), refined by least squares on the inliers; None when no
    plane holds ``min_inliers`` points within ``threshold`` metres."""
    p_all = np.asarray(points, np.float64).reshape(-1, 3)
    finite = np.isfinite(p_all).all(axis=1)
    p = p_all[finite]
    n = len(p)
    if n < max(3, min_inliers):
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(iterations, 3))
    a, b, c = p[idx[:, 0]], p[idx[:, 1]], p[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals, a = normals[ok] / norms[ok, None], a[ok]
    if len(normals) == 0:
        return None
    ds = -(normals * a).sum(axis=1)
    sub = p if n <= 4000 else p[rng.choice(n, 4000, replace=False)]
    dist = np.abs(sub @ normals.T + ds[None, :])  # [M, K]
    score = (dist < threshold).sum(axis=0)
    best = int(np.argmax(score))
    inl = np.abs(p @ normals[best] + ds[best]) < threshold
    if inl.sum() < min_inliers:
        return None
    for _ in range(2):  # least-squares refinement on the inliers
        q = p[inl]
        mean = q.mean(axis=0)
        _, _, vt = np.linalg.svd(q - mean, full_matrices=False)
        nrm = vt[2]
        d = -float(nrm @ mean)
        inl = np.abs(p @ nrm + d) < threshold
    if d < 0:  # the camera (origin) on the positive side: the normal points from the plane to the camera
        nrm, d = -nrm, -d
    full = np.zeros(len(p_all), bool)
    full[finite] = inl
    return np.array([*nrm, d], np.float64), full
