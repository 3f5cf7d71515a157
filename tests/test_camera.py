"""gear_edge.camera: intrinsics, depth validation, back-projection, plane fit, 3D boxes; 3D JSON fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gear_edge.camera import (
    CameraIntrinsics, as_intrinsics, backproject, depth_to_metres, fit_plane_ransac, oriented_box, robust_centroid,
)
from gear_edge.errors import InputError
from gear_edge.types import Answer, Box3D, Geometry3D, Region, Scene, targets_3d

K = [[500.0, 0, 320.0], [0, 510.0, 240.0], [0, 0, 1.0]]


def test_intrinsics_from_matrix_list_dict_and_errors():
    a = as_intrinsics(K)
    assert (a.fx, a.fy, a.cx, a.cy) == (500.0, 510.0, 320.0, 240.0)
    assert as_intrinsics(sum(K, [])) == a  # CameraInfo's row-major k
    assert as_intrinsics({"k": sum(K, [])}) == a
    assert as_intrinsics({"fx": 500, "fy": 510, "cx": 320, "cy": 240}) == a
    np.testing.assert_array_equal(a.matrix(), np.asarray(K))
    with pytest.raises(InputError, match="3x3"):
        as_intrinsics([1, 2, 3])
    with pytest.raises(InputError, match="last row"):
        as_intrinsics([[500, 0, 320], [0, 500, 240], [0, 0, 2]])
    with pytest.raises(InputError, match="fx, fy must be > 0"):
        as_intrinsics([[0, 0, 320], [0, 500, 240], [0, 0, 1]])
    with pytest.raises(InputError, match="needs 'k'"):
        as_intrinsics({"f": 1})


def test_depth_conversion_holes_and_errors():
    mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    m = depth_to_metres(mm)
    assert m.dtype == np.float32 and math.isnan(m[0, 0])
    np.testing.assert_allclose(m[0, 1:], [1.0]) and np.testing.assert_allclose(m[1], [1.5, 65.535], rtol=1e-6)
    np.testing.assert_allclose(depth_to_metres(mm, scale=0.0001)[0, 1], 0.1, rtol=1e-6)
    f = np.array([[np.nan, 0.0], [-1.0, np.inf]], np.float32)
    assert np.isnan(depth_to_metres(f)).all()  # NaN, zero, negative, inf: all holes
    assert depth_to_metres(np.ones((4, 5, 1), np.float64), (4, 5)).shape == (4, 5)
    with pytest.raises(InputError, match="does not match the image size 4x6"):
        depth_to_metres(np.ones((4, 5), np.float32), (4, 6))
    with pytest.raises(InputError, match=r"\[H, W\]"):
        depth_to_metres(np.ones((4, 5, 3), np.float32))
    with pytest.raises(InputError, match="dtype"):
        depth_to_metres(np.ones((4, 5), np.int32))
    with pytest.raises(InputError, match="must be metres"):
        depth_to_metres(np.full((4, 5), 1200.0, np.float32))  # millimetres passed as float
    with pytest.raises(InputError, match="numpy array"):
        depth_to_metres([[1.0]])
    with pytest.raises(InputError, match="scale"):
        depth_to_metres(mm, scale=-1)


def test_backproject_values_and_mask():
    intr = CameraIntrinsics(500.0, 500.0, 2.0, 1.0)
    d = np.full((3, 5), 2.0, np.float32)
    d[0, 0] = np.nan
    mask = np.zeros((3, 5), bool)
    mask[0, 0] = mask[2, 4] = True
    p = backproject(d, intr, mask)
    np.testing.assert_allclose(p, [[(4 - 2) * 2 / 500, (2 - 1) * 2 / 500, 2.0]], rtol=1e-6)  # the hole is skipped
    assert backproject(d, intr).shape == (14, 3)
    with pytest.raises(InputError, match="mask shape"):
        backproject(d, intr, np.zeros((2, 2), bool))


def test_plane_ransac_and_box_on_plane():
    rng = np.random.default_rng(0)
    # a tilted table plane 0.8 m in front, normal towards the camera, with 30 % outliers
    n = np.array([0.0, -0.8, -0.6])
    n /= np.linalg.norm(n)
    d = 0.7
    u = np.cross(n, [1.0, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    pts = -d * n + rng.uniform(-0.4, 0.4, (2000, 1)) * u + rng.uniform(-0.4, 0.4, (2000, 1)) * v
    pts += rng.normal(0, 0.002, pts.shape)
    out = rng.uniform(-1, 1, (800, 3)) + [0, 0, 1.5]
    plane, inl = fit_plane_ransac(np.concatenate([pts, out, [[np.nan] * 3]]))
    assert inl.shape == (2801,) and inl[:2000].mean() > 0.95 and not inl[-1]
    assert abs(abs(plane[:3] @ n) - 1) < 1e-3 and abs(plane[3] - d) < 0.003 and plane[3] > 0
    # a 10 x 6 x 4 cm box standing on it: only its top is seen, the box still reaches down to the plane
    top = -d * n + 0.04 * n + rng.uniform(-0.05, 0.05, (500, 1)) * u + rng.uniform(-0.03, 0.03, (500, 1)) * v
    box = oriented_box(top, tuple(plane))
    assert sorted(round(s, 2) for s in box.size) == [0.04, 0.06, 0.1]
    np.testing.assert_allclose(box.center, -d * n + 0.02 * n, atol=0.004)
    r = np.asarray(box.rotation)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    assert oriented_box(top[:3]) is None


def test_robust_centroid_ignores_flying_pixels():
    rng = np.random.default_rng(1)
    p = rng.normal([0.1, 0.0, 1.0], 0.01, (400, 3))
    p[:10] = [0.1, 0.0, 3.0]  # flying pixels behind a depth edge
    np.testing.assert_allclose(robust_centroid(p), [0.1, 0.0, 1.0], atol=0.003)
    assert np.isnan(robust_centroid(np.zeros((0, 3)))).all()


def _geo(c, size=(0.1, 0.1, 0.1)):
    box = Box3D(c, size, ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)))
    return Geometry3D(c, box, float(np.linalg.norm(c)), 0.05, 100)


def test_region_role_and_3d_json_round_trip_and_targets_3d():
    rle = {"size": [4, 4], "counts": "0@0"}
    r0 = Region(0, rle, (0, 0, 4, 4), 16, role="support", geometry_3d=_geo((0.0, 0.1, 1.0)))
    r1 = Region(1, rle, (0, 0, 4, 4), 16, geometry_3d=_geo((0.2, 0.1, 1.0)))
    s = Scene((4, 4), [r0, r1], support_plane=(0.0, -1.0, 0.0, 0.5))
    back = Scene.from_json(s.to_json())
    assert back.regions[0].role == "support" and back.regions[1].role == "object"
    assert back.regions[0].geometry_3d == r0.geometry_3d and back.support_plane == (0.0, -1.0, 0.0, 0.5)
    assert Region.from_dict({"id": 3, "rle": rle, "bbox": [0, 0, 1, 1], "area": 1}).role == "object"
    with pytest.raises(InputError, match="role must be one of"):
        Region.from_dict({"id": 3, "rle": rle, "bbox": [0, 0, 1, 1], "area": 1, "role": "table"})
    with pytest.raises(InputError, match="centroid_m must be 3 numbers"):
        Region.from_dict({**r1.to_dict(), "geometry_3d": {**r1.geometry_3d.to_dict(), "centroid_m": [1, 2]}})
    c, box = targets_3d(s, [0, 1])
    np.testing.assert_allclose(c, [0.1, 0.1, 1.0])
    np.testing.assert_allclose(box.center, [0.1, 0.1, 1.0]) and np.testing.assert_allclose(box.size, [0.3, 0.1, 0.1])
    assert targets_3d(s, []) == (None, None)
    a = Answer("q", [1], [], centroid_3d=c, box_3d=box)
    b = Answer.from_dict(a.to_dict())
    assert b.box_3d == box and b.centroid_3d == pytest.approx(c)
