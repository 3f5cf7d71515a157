"""Builders of ROS messages from gear_edge results (imports ROS message packages; used by the node).

All 3D output is in the colour frame's ``header.frame_id`` (camera optical frame: x right, y down,
z forward, metres).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import Image, PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

from gear_edge.ros.convert import mono8_fields, rgb8_fields


def image_msg(header, encoding: str, h: int, w: int, step: int, data: bytes) -> Image:
    msg = Image()
    msg.header = header
    msg.height, msg.width, msg.step, msg.encoding = h, w, step, encoding
    msg.is_bigendian = 0
    msg.data = data
    return msg


def mask_msg(header, mask: np.ndarray) -> Image:
    """mono8 image, 255 = target."""
    return image_msg(header, "mono8", *mono8_fields(mask))


def rgb_msg(header, rgb: np.ndarray) -> Image:
    return image_msg(header, "rgb8", *rgb8_fields(rgb))


def point_stamped(header, xyz: Sequence[float]) -> PointStamped:
    msg = PointStamped()
    msg.header = header
    msg.point = Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
    return msg


def quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix (columns = the box axes in the camera frame)."""
    r = np.asarray(r, np.float64)
    if np.linalg.det(r) < 0:  # a reflection (left-handed axes): flip one axis to make it a rotation
        r = r.copy()
        r[:, 2] *= -1
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
    n = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    return x / n, y / n, z / n, w / n


def markers(header, boxes: list[dict[str, Any]], ns: str = "gear_edge") -> MarkerArray:
    """A DELETEALL, then per target a CUBE (its 3D box) and a TEXT_VIEW_FACING label above it.

    ``boxes``: dicts with ``center`` (3), ``size`` (3), ``rotation`` (3x3), ``label`` (str)."""
    out = MarkerArray()
    clear = Marker()
    clear.header, clear.ns, clear.action = header, ns, Marker.DELETEALL
    out.markers.append(clear)
    for k, b in enumerate(boxes):
        cube = Marker()
        cube.header, cube.ns, cube.id, cube.type, cube.action = header, ns, 2 * k, Marker.CUBE, Marker.ADD
        c = b["center"]
        cube.pose.position = Point(x=float(c[0]), y=float(c[1]), z=float(c[2]))
        qx, qy, qz, qw = quaternion_from_matrix(np.asarray(b["rotation"], np.float64))
        cube.pose.orientation.x, cube.pose.orientation.y, cube.pose.orientation.z, cube.pose.orientation.w = qx, qy, qz, qw
        sx, sy, sz = (max(1e-3, float(v)) for v in b["size"])
        cube.scale.x, cube.scale.y, cube.scale.z = sx, sy, sz
        cube.color.r, cube.color.g, cube.color.b, cube.color.a = 1.0, 0.2, 0.2, 0.5
        text = Marker()
        text.header, text.ns, text.id, text.type, text.action = header, ns, 2 * k + 1, Marker.TEXT_VIEW_FACING, Marker.ADD
        # above the box: -y is up in the optical frame
        text.pose.position = Point(x=float(c[0]), y=float(c[1]) - max(sx, sy, sz) / 2 - 0.03, z=float(c[2]))
        text.pose.orientation.w = 1.0
        text.scale.z = 0.04
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
        text.text = str(b.get("label", ""))
        out.markers += [cube, text]
    return out


def point_cloud(header, points: np.ndarray) -> PointCloud2:
    """PointCloud2 of float32 x, y, z (metres, the header's frame) from an [N, 3] array."""
    pts = np.ascontiguousarray(np.asarray(points, np.float32).reshape(-1, 3))
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, int(pts.shape[0])
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = False, 12, 12 * int(pts.shape[0]), True
    msg.data = pts.tobytes()
    return msg
