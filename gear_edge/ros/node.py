"""ROS 2 lifecycle node wrapping GearSeg (needs rclpy: the ``[ros]`` extra).

Parameters: ``config`` (profile or TOML path), ``overrides`` (list of ``section.key=value``),
topic names. Lifecycle: configure loads the pipeline, activate subscribes / starts publishing,
deactivate stops taking input, cleanup drops the pipeline.

Subscribes ``image`` (sensor_msgs/Image rgb8/bgr8/mono8/rgba8/bgra8) and ``image/compressed``
(sensor_msgs/CompressedImage) with sensor-data QoS, keeping only the latest frame (a burst of frames
replaces one slot, it never queues), and ``query`` (std_msgs/String). The frame is perceived once, on
the first query after it arrives; later queries on the same frame reuse the Scene. Publishes
``answer`` (std_msgs/String, JSON), ``mask`` (sensor_msgs/Image mono8, 255 = target, the frame's
header) and ``overlay`` (sensor_msgs/Image rgb8). Malformed messages are logged and dropped.
(std_msgs / std_srvs have no string request/response service type, so queries come as a topic.)
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from gear_edge.errors import GearEdgeError, InputError
from gear_edge.ros.convert import compressed_to_rgb, image_to_rgb, mono8_fields, rgb8_fields


class GearSegNode(LifecycleNode):
    def __init__(self, name: str = "gear_edge", *, pipeline=None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.declare_parameter("config", "default")
        self.declare_parameter("overrides", [""])
        self.declare_parameter("image_topic", "image")
        self.declare_parameter("compressed_topic", "image/compressed")
        self.declare_parameter("query_topic", "query")
        self.declare_parameter("answer_topic", "answer")
        self.declare_parameter("mask_topic", "mask")
        self.declare_parameter("overlay_topic", "overlay")
        self.declare_parameter("publish_overlay", True)
        self._given_pipeline = pipeline
        self.pipeline = None
        self._lock = threading.Lock()
        self._latest: tuple[Any, np.ndarray] | None = None  # (header, rgb)
        self._frame_seq = 0
        self._scene = None
        self._scene_seq = -1
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self.stats = {"frames": 0, "dropped": 0, "queries": 0, "perceived": 0, "errors": 0}

    # ---- lifecycle ------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._given_pipeline is not None:
                self.pipeline = self._given_pipeline
            else:
                from gear_edge.pipeline import GearSeg

                overrides = dict(
                    item.split("=", 1) for item in self.get_parameter("overrides").value if item and "=" in item
                )
                self.pipeline = GearSeg.from_config(self.get_parameter("config").value, overrides)
        except GearEdgeError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        p = self.get_parameter
        self._pubs = {
            "answer": self.create_lifecycle_publisher(String, p("answer_topic").value, reliable),
            "mask": self.create_lifecycle_publisher(Image, p("mask_topic").value, reliable),
            "overlay": self.create_lifecycle_publisher(Image, p("overlay_topic").value, reliable),
        }
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.get_parameter
        self._subs = [
            self.create_subscription(Image, p("image_topic").value, self._on_image, qos_profile_sensor_data),
            self.create_subscription(CompressedImage, p("compressed_topic").value, self._on_compressed, qos_profile_sensor_data),
            self.create_subscription(String, p("query_topic").value, self._on_query, 10),
        ]
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self.pipeline = None
        with self._lock:
            self._latest, self._scene = None, None
        return TransitionCallbackReturn.SUCCESS

    # ---- input ----------------------------------------------------------------------------

    def _store(self, header, rgb: np.ndarray) -> None:
        with self._lock:  # one slot: a burst of frames replaces it, nothing queues
            self._latest = (header, rgb)
            self._frame_seq += 1
            self.stats["frames"] += 1

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except InputError as exc:
            self.stats["dropped"] += 1
            self.get_logger().warning(f"dropped image message: {exc}")
            return
        self._store(msg.header, rgb)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            rgb = compressed_to_rgb(msg.format, msg.data)
        except InputError as exc:
            self.stats["dropped"] += 1
            self.get_logger().warning(f"dropped compressed image message: {exc}")
            return
        self._store(msg.header, rgb)

    def _on_query(self, msg: String) -> None:
        self.stats["queries"] += 1
        query = msg.data
        with self._lock:
            latest, seq = self._latest, self._frame_seq
        if latest is None:
            self._publish_error(query, "no image received yet", None)
            return
        header, rgb = latest
        try:
            if self._scene is None or self._scene_seq != seq:
                self._scene, self._scene_seq = self.pipeline.perceive(rgb), seq
                self.stats["perceived"] += 1
            t0 = time.perf_counter()
            answer = self.pipeline.ask(self._scene, query)
            answer.timings["ros.ask"] = (time.perf_counter() - t0) * 1e3
        except GearEdgeError as exc:  # a bad query never loses the scene or stops the node
            self.stats["errors"] += 1
            self._publish_error(query, str(exc), header)
            return
        payload = answer.to_dict()
        payload["frame"] = {"stamp": {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}, "frame_id": header.frame_id}
        self._pubs["answer"].publish(String(data=json.dumps(payload)))
        mask = answer.bitmap(self._scene.image_size)
        self._pubs["mask"].publish(self._image_msg(header, "mono8", *mono8_fields(mask)))
        if self.get_parameter("publish_overlay").value:
            from gear_edge.viz import render_answer

            overlay = render_answer(rgb, self._scene, answer)
            self._pubs["overlay"].publish(self._image_msg(header, "rgb8", *rgb8_fields(overlay)))

    def _publish_error(self, query: str, error: str, header) -> None:
        self.get_logger().warning(f"query {query!r} failed: {error}")
        self._pubs["answer"].publish(String(data=json.dumps({"query": query, "error": error})))

    @staticmethod
    def _image_msg(header, encoding: str, h: int, w: int, step: int, data: bytes) -> Image:
        msg = Image()
        msg.header = header
        msg.height, msg.width, msg.step, msg.encoding = h, w, step, encoding
        msg.is_bigendian = 0
        msg.data = data
        return msg


def run(config: str = "default", overrides: list[str] | None = None, args: list[str] | None = None) -> None:
    """Starts the node, configures and activates it, and spins until shutdown (Ctrl-C)."""
    rclpy.init(args=args)
    from rclpy.parameter import Parameter

    params = [Parameter("config", value=config)]
    if overrides:
        params.append(Parameter("overrides", value=list(overrides)))
    node = GearSegNode(parameter_overrides=params)
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit("gear_edge node failed to configure (see the log above)")
        node.trigger_activate()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
