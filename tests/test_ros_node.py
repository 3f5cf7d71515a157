"""The ROS 2 node, for real: in-process rclpy publishers/subscribers talking to a GearSegNode."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 node needs rclpy (the [ros] extra)")
pytest.importorskip("llama_cpp", reason="the default deducer needs llama-cpp-python (the [llm] extra)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.pipeline import GearSeg  # noqa: E402
from gear_edge.ros.node import GearSegNode  # noqa: E402
from tests.scenes import tabletop  # noqa: E402


class Client(Node):
    def __init__(self):
        super().__init__("gear_edge_test_client")
        self.image_pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.comp_pub = self.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        self.query_pub = self.create_publisher(String, "query", 10)
        self.answers: list[dict] = []
        self.masks: list[Image] = []
        self.overlays: list[Image] = []
        self.create_subscription(String, "answer", lambda m: self.answers.append(json.loads(m.data)), 10)
        self.create_subscription(Image, "mask", self.masks.append, 10)
        self.create_subscription(Image, "overlay", self.overlays.append, 10)

    def image(self, rgb: np.ndarray, sec: int, encoding: str = "rgb8") -> Image:
        msg = Image()
        msg.header.stamp.sec = sec
        msg.header.frame_id = "camera"
        data = rgb if encoding == "rgb8" else rgb[..., ::-1]
        msg.height, msg.width = rgb.shape[:2]
        msg.encoding, msg.step = encoding, 3 * rgb.shape[1]
        msg.data = np.ascontiguousarray(data).tobytes()
        return msg


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    pipeline = GearSeg.from_config("default", {"describe.ocr": "false"})
    node = GearSegNode(pipeline=pipeline)
    client = Client()
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(client)
    node.trigger_configure()
    node.trigger_activate()

    def spin_until(cond, timeout=60.0):
        t0 = time.time()
        while not cond() and time.time() - t0 < timeout:
            ex.spin_once(timeout_sec=0.05)
        return cond()

    yield node, client, spin_until
    ex.shutdown()
    node.destroy_node()
    client.destroy_node()
    rclpy.shutdown()


def send_frame(client, spin_until, node, msg, publisher=None):
    before = node.stats["frames"] + node.stats["dropped"]
    (publisher or client.image_pub).publish(msg)
    assert spin_until(lambda: node.stats["frames"] + node.stats["dropped"] > before, 10)


def ask(client, spin_until, query: str) -> dict:
    n = len(client.answers)
    client.query_pub.publish(String(data=query))
    assert spin_until(lambda: len(client.answers) > n), f"no answer to {query!r}"
    return client.answers[-1]


def test_answer_mask_and_overlay_for_a_known_scene(ros):
    node, client, spin_until = ros
    s = tabletop()
    send_frame(client, spin_until, node, client.image(s.image, sec=7, encoding="bgr8"))
    n_masks = len(client.masks)
    answer = ask(client, spin_until, "the red object")
    assert "error" not in answer, answer
    assert answer["frame"] == {"stamp": {"sec": 7, "nanosec": 0}, "frame_id": "camera"}
    assert spin_until(lambda: len(client.masks) > n_masks)
    mask_msg = client.masks[-1]
    assert mask_msg.encoding == "mono8" and mask_msg.header.stamp.sec == 7
    mask = np.frombuffer(bytes(mask_msg.data), np.uint8).reshape(mask_msg.height, mask_msg.width) > 0
    inter = (mask & s.masks["box"]).sum()
    assert inter / (mask | s.masks["box"]).sum() >= 0.9
    assert gm.iou([answer["mask"]], [gm.encode(s.masks["box"])])[0, 0] >= 0.9
    assert spin_until(lambda: len(client.overlays) > 0)
    assert client.overlays[-1].encoding == "rgb8" and client.overlays[-1].height > s.image.shape[0]
    # a second query on the same frame reuses the perception
    perceived = node.stats["perceived"]
    answer = ask(client, spin_until, "the blue round object")
    assert node.stats["perceived"] == perceived and "error" not in answer


def test_malformed_messages_are_dropped_and_node_stays_up(ros):
    node, client, spin_until = ros
    s = tabletop()
    bad = client.image(s.image, sec=8)
    bad.encoding = "yuv422"
    dropped = node.stats["dropped"]
    send_frame(client, spin_until, node, bad)
    short = client.image(s.image, sec=9)
    short.data = bytes(short.data)[:-10]
    send_frame(client, spin_until, node, short)
    empty = CompressedImage()
    empty.format = "jpeg"
    send_frame(client, spin_until, node, empty, client.comp_pub)
    assert node.stats["dropped"] == dropped + 3
    answer = ask(client, spin_until, "the red object")  # still answers, on the last good frame
    assert "error" not in answer


def test_empty_query_is_answered_with_an_error(ros):
    node, client, spin_until = ros
    answer = ask(client, spin_until, "")
    assert "error" in answer and "query" in answer["error"]
    assert "error" not in ask(client, spin_until, "the red object")


def test_compressed_frames_and_bursts_keep_only_the_latest(ros):
    node, client, spin_until = ros
    s = tabletop()
    ok, png = cv2.imencode(".png", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
    perceived = node.stats["perceived"]
    for k in range(20):  # a burst: each replaces the single slot
        msg = CompressedImage()
        msg.header.stamp.sec = 100 + k
        msg.format = "png"
        msg.data = png.tobytes()
        client.comp_pub.publish(msg)
    spin_until(lambda: node._latest is not None and node._latest[0].stamp.sec == 119, 20)
    answer = ask(client, spin_until, "the red object")
    assert "error" not in answer and answer["frame"]["stamp"]["sec"] == 119
    assert node.stats["perceived"] == perceived + 1  # one perception for the whole burst
