"""The node's parameters and their defaults (no ROS imports; ros/params/gear_edge.yaml documents them)."""

from __future__ import annotations

from typing import Any

PARAMETERS: dict[str, Any] = {
    "config": "default",  # profile name or TOML path
    "overrides": [""],  # section.key=value
    "image_topic": "image",
    "compressed_topic": "image/compressed",
    "depth_topic": "depth",  # aligned to the colour image: 16UC1 (mm) or 32FC1 (m)
    "camera_info_topic": "camera_info",
    "request_topic": "request",
    "answer_topic": "answer",
    "tracked_topic": "tracked",
    "action_name": "segment",
    "mask_topic": "mask",
    "overlay_topic": "overlay",
    "point_topic": "target_point",
    "markers_topic": "target_markers",
    "cloud_topic": "target_points",
    "diagnostics_topic": "diagnostics",
    "publish_overlay": True,
    "publish_cloud": False,
    "cloud_stride": 2,  # every n-th pixel row/column of the target in the cloud
    "image_reliability": "reliable",  # reliable | best_effort | system_default
    "image_qos_depth": 10,
    "request_qos_depth": 100,
    "max_queue": 16,
    "max_frame_age": 1.0,  # seconds since the frame arrived
    "sync_slop": 0.05,  # seconds between colour and depth stamps
    "depth_wait": 0.5,  # seconds to wait for a live depth stream's frame matching the colour frame
    "depth_scale": 0.001,  # metres per unit of 16UC1 depth
    "track_rate": 10.0,  # Hz
    "track_min_iou": 0.5,
    "track_min_appearance": 0.5,
    "warmup": True,  # one warm-up perceive + ask at configure
    "warmup_llm": True,  # also load the LLM and run one query that uses it
    "diagnostics_period": 1.0,
}
