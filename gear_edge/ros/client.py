"""A small rclpy client of the gear_edge node (for scripts, tests and benchmarks; needs rclpy).

    import rclpy
    rclpy.init()
    c = GearSegClient()
    c.spin_in_background()
    c.publish_frame(rgb, depth_mm=depth, K=K)            # colour (+ aligned depth, CameraInfo)
    reply = c.request("the red mug", timeout=30)         # topic interface: JSON reply dict
    result = c.segment("the red mug", timeout=30)        # action interface: Segment.Result

Publishers use the node's default QoS (reliable, depth 10 for images; reliable depth 100 for requests).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

try:
    from gear_edge_msgs.action import Segment
except ImportError:  # pragma: no cover - depends on the install
    Segment = None


class GearSegClient(Node):
    def __init__(self, name: str = "gear_edge_client", *, namespace: str = "", image_reliability: str = "reliable",
                 image_depth: int = 10) -> None:
        super().__init__(name, namespace=namespace)
        rel = ReliabilityPolicy.RELIABLE if image_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        img_qos = QoSProfile(depth=image_depth, reliability=rel, history=HistoryPolicy.KEEP_LAST)
        rq = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self.image_pub = self.create_publisher(Image, "image", img_qos)
        self.depth_pub = self.create_publisher(Image, "depth", img_qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", img_qos)
        self.request_pub = self.create_publisher(String, "request", rq)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.replies: dict[Any, dict] = {}
        self.tracked: list[dict] = []
        self.topics: dict[str, list] = {}
        self.create_subscription(String, "answer", self._on_answer, rq)
        self.create_subscription(String, "tracked", self._on_tracked, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self._action = None
        if Segment is not None:
            from rclpy.action import ActionClient

            self._action = ActionClient(self, Segment, "segment")
        self._executor: MultiThreadedExecutor | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0

    # ---- plumbing --------------------------------------------------------------------------

    def spin_in_background(self, threads: int = 2) -> None:
        self._executor = MultiThreadedExecutor(num_threads=threads)
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - context shut down
            pass

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
        self.destroy_node()

    def subscribe(self, msg_type, topic: str, qos: int | QoSProfile = 10) -> list:
        """Collects every message on ``topic`` into the returned list."""
        store: list = []
        self.topics[topic] = store
        self.create_subscription(msg_type, topic, store.append, qos)
        return store

    def _on_answer(self, msg: String) -> None:
        d = json.loads(msg.data)
        with self._cond:
            self.replies[d.get("request_id")] = d
            self._cond.notify_all()

    def _on_tracked(self, msg: String) -> None:
        with self._cond:
            self.tracked.append(json.loads(msg.data))
            self._cond.notify_all()

    def wait_for(self, cond, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(cond, timeout)

    def wait_for_node(self, timeout: float = 30.0) -> bool:
        """True once the node's request subscription (and action server, if typed) are matched."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            ok = self.request_pub.get_subscription_count() > 0 and self.image_pub.get_subscription_count() > 0
            if ok and (self._action is None or self._action.server_is_ready()):
                return True
            time.sleep(0.05)
        return False

    # ---- frames ----------------------------------------------------------------------------

    def stamp(self, t: float | None = None):
        from builtin_interfaces.msg import Time

        t = time.time() if t is None else t
        return Time(sec=int(t), nanosec=int((t - int(t)) * 1e9))

    def publish_frame(self, rgb: np.ndarray, *, depth: np.ndarray | None = None, K: Any = None,
                      frame_id: str = "camera_color_optical_frame", t: float | None = None) -> Any:
        """Publishes colour (rgb8) and, when given, aligned depth (uint16 mm -> 16UC1, float m ->
        32FC1) and a CameraInfo with ``K`` (3x3) under one stamp; returns the stamp."""
        stamp = self.stamp(t)
        if depth is not None:
            d = np.ascontiguousarray(depth)
            msg = Image()
            msg.header.stamp, msg.header.frame_id = stamp, frame_id
            msg.height, msg.width = d.shape[:2]
            msg.encoding = "16UC1" if d.dtype == np.uint16 else "32FC1"
            d = d if d.dtype == np.uint16 else d.astype(np.float32)
            msg.step, msg.is_bigendian = d.shape[1] * d.itemsize, 0
            msg.data = d.tobytes()
            self.depth_pub.publish(msg)
        if K is not None:
            info = CameraInfo()
            info.header.stamp, info.header.frame_id = stamp, frame_id
            info.height, info.width = rgb.shape[:2]
            info.k = [float(v) for v in np.asarray(K, np.float64).reshape(9)]
            self.info_pub.publish(info)
        msg = Image()
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        msg.height, msg.width = rgb.shape[:2]
        msg.encoding, msg.step, msg.is_bigendian = "rgb8", 3 * rgb.shape[1], 0
        msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
        self.image_pub.publish(msg)
        return stamp

    # ---- requests --------------------------------------------------------------------------

    def send_request(self, query: str, *, request_id: Any = None, max_frame_age: float = 0.0, track: bool = False) -> Any:
        """Topic interface: publishes a JSON request; returns its id (the reply's ``request_id``)."""
        if request_id is None:
            self._seq += 1
            request_id = f"{self.get_name()}-{self._seq}"
        self.request_pub.publish(String(data=json.dumps(
            {"id": request_id, "query": query, "max_frame_age": max_frame_age, "track": track})))
        return request_id

    def request(self, query: str, *, timeout: float = 60.0, **kw) -> dict | None:
        rid = self.send_request(query, **kw)
        if not self.wait_for(lambda: rid in self.replies, timeout):
            return None
        return self.replies[rid]

    def segment(self, query: str, *, max_frame_age: float = 0.0, track: bool = False, timeout: float = 60.0):
        """Action interface: sends a Segment goal and waits for its result (None on timeout)."""
        if self._action is None:
            raise RuntimeError("gear_edge_msgs is not installed (bash scripts/build_ros_msgs.sh)")
        done = threading.Event()
        box: dict[str, Any] = {}

        def on_result(fut):
            box["result"] = fut.result().result
            done.set()

        def on_goal(fut):
            gh = fut.result()
            if not gh.accepted:
                done.set()
                return
            gh.get_result_async().add_done_callback(on_result)

        self._action.send_goal_async(Segment.Goal(query=query, max_frame_age=float(max_frame_age), track=track)
                                     ).add_done_callback(on_goal)
        done.wait(timeout)
        return box.get("result")
