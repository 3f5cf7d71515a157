"""The ROS 2 node, for real, in one process: a GearSegNode on a multi-threaded executor and a
GearSegClient (rclpy publishers / subscribers / action client) talking to it over DDS.

(tests/test_ros_cross_process.py runs the node as its own process, as users start it.)
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 node needs rclpy (the [ros] extra)")
pytest.importorskip("llama_cpp", reason="the default deducer needs llama-cpp-python (the [llm] extra)")

from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.pipeline import GearSeg  # noqa: E402
from gear_edge.ros.client import GearSegClient, Segment  # noqa: E402
from gear_edge.ros.node import GearSegNode  # noqa: E402
from gear_edge.ros.requests import Status  # noqa: E402
from tests.scenes import tabletop  # noqa: E402

K = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])


class GatedGearSeg(GearSeg):
    """The real pipeline; ``ask`` waits while ``gate`` is cleared (so a test can hold a query running)."""

    gate = threading.Event()

    def ask(self, scene, query):
        assert self.gate.wait(30), "test gate never opened"
        return super().ask(scene, query)


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    GatedGearSeg.gate.set()
    pipeline = GatedGearSeg.from_config("default", {"describe.ocr": "false"})
    from rclpy.parameter import Parameter

    ns = f"/test_{uuid.uuid4().hex[:8]}"  # concurrent runs on one host do not talk to each other
    node = GearSegNode(pipeline=pipeline, namespace=ns, parameter_overrides=[Parameter("max_queue", value=4),
                                                              Parameter("warmup", value=False),
                                                              Parameter("warmup_llm", value=False),
                                                              Parameter("publish_cloud", value=True)])
    ex = MultiThreadedExecutor(num_threads=4)
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    client = GearSegClient(namespace=ns)
    client.spin_in_background()
    masks = client.subscribe(Image, "mask")
    overlays = client.subscribe(Image, "overlay")
    points = client.subscribe(PointStamped, "target_point")
    markers = client.subscribe(MarkerArray, "target_markers")
    clouds = client.subscribe(PointCloud2, "target_points")
    yield node, client, {"mask": masks, "overlay": overlays, "point": points, "markers": markers, "cloud": clouds}
    GatedGearSeg.gate.set()
    client.close()
    ex.shutdown(timeout_sec=2)
    node.destroy_node()
    rclpy.shutdown()


def active(node, client):
    """Configures / activates the node if an earlier test did not, and waits until the client's
    frame publishers are matched (a frame published before that is not delivered: volatile QoS)."""
    label = node._state_name
    if label == "unconfigured":
        node.trigger_configure()
    if node._state_name == "inactive":
        node.trigger_activate()
    assert wait(lambda: client.image_pub.get_subscription_count() > 0 and client.depth_pub.get_subscription_count() > 0
                and client.info_pub.get_subscription_count() > 0, 10)
    # an answer may come from a frame up to depth_wait older than the newest (the newest one with its
    # depth): earlier tests' frames must be older than that
    time.sleep(float(node._p("depth_wait")) + 0.1)


def wait(cond, timeout=30.0):
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    return cond()


def test_inactive_node_rejects_instead_of_dropping(ros):
    node, client, _ = ros
    assert wait(lambda: client.request_pub.get_subscription_count() > 0, 20)
    r = client.request("the red object", timeout=10)
    assert r["status_name"] == "REJECTED_INACTIVE" and "unconfigured" in r["message"]
    node.trigger_configure()
    node.trigger_activate()
    r = client.request("the red object", timeout=10)
    assert r["status_name"] == "REJECTED_NO_FRAME"


def test_answer_with_mask_overlay_and_3d(ros):
    node, client, topics = ros
    active(node, client)
    s = tabletop()
    depth = np.full(s.image.shape[:2], 1500, np.uint16)  # a wall at 1.5 m, the box 1.0 m away
    depth[s.masks["box"]] = 1000
    n = {k: len(v) for k, v in topics.items()}
    client.publish_frame(s.image, depth=depth, K=K, frame_id="cam_optical")
    assert wait(lambda: node.stats["frames"] >= 1 and node.stats["depth_frames"] >= 1)
    r = client.request("the red object", timeout=30)
    assert r["status_name"] == "OK", r
    assert r["frame"]["frame_id"] == "cam_optical"
    assert gm.iou([r["answer"]["mask"]], [gm.encode(s.masks["box"])])[0, 0] >= 0.9
    (t,) = r["targets"]
    ys, xs = np.nonzero(s.masks["box"])
    truth = [((xs - K[0, 2]) / K[0, 0]).mean(), ((ys - K[1, 2]) / K[1, 1]).mean(), 1.0]
    assert np.allclose(t["centroid_3d"], truth, atol=0.01), (t["centroid_3d"], truth)
    assert wait(lambda: all(len(v) > n[k] for k, v in topics.items()))
    assert topics["overlay"][-1].height == s.image.shape[0] and topics["overlay"][-1].width == s.image.shape[1]
    pt = topics["point"][-1]
    assert pt.header.frame_id == "cam_optical" and abs(pt.point.z - 1.0) < 0.01
    cube = [m for m in topics["markers"][-1].markers if m.type == m.CUBE][0]
    assert abs(cube.pose.position.z - 1.0) < 0.02 and cube.header.frame_id == "cam_optical"
    cloud = topics["cloud"][-1]
    xyz = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 3)
    assert cloud.header.frame_id == "cam_optical" and cloud.point_step == 12 and len(xyz) > 100
    assert np.allclose(xyz[:, 2], 1.0, atol=0.005)  # the box's points, in metres
    mask = np.frombuffer(bytes(topics["mask"][-1].data), np.uint8).reshape(480, 640) > 0
    assert (mask & s.masks["box"]).sum() / (mask | s.masks["box"]).sum() >= 0.9
    # a second query on the same frame reuses the perception
    perceived = node.stats["perceived"]
    assert client.request("the blue round object", max_frame_age=30, timeout=30)["status_name"] == "OK"
    assert node.stats["perceived"] == perceived


@pytest.mark.skipif(Segment is None, reason="gear_edge_msgs not built (bash scripts/build_ros_msgs.sh)")
def test_action_result_is_typed(ros):
    node, client, _ = ros
    active(node, client)
    s = tabletop()
    client.publish_frame(s.image)
    assert wait(lambda: node._latest is not None)
    res = client.segment("the blue round object", max_frame_age=30, timeout=30)
    assert res.status == Status.OK and res.header.frame_id
    (t,) = res.targets
    x, y, w, h = t.box_xywh
    ys, xs = np.nonzero(s.masks["ball"])
    tx0, ty0, tx1, ty1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    inter = max(0, min(x + w, tx1) - max(x, tx0)) * max(0, min(y + h, ty1) - max(y, ty0))
    assert inter / (w * h + (tx1 - tx0) * (ty1 - ty0) - inter) >= 0.8 and t.has_3d is False  # box IoU
    assert t.mask.height == 480 and t.mask.encoding == "mono8" and res.steps and "total" in res.timing_names
    res = client.segment("   ", timeout=10)
    assert res.status == Status.REJECTED_BAD_QUERY and "empty" in res.message


def test_burst_every_request_answered_or_rejected_and_lifecycle_answers_meanwhile(ros):
    node, client, _ = ros
    active(node, client)
    s = tabletop()
    client.publish_frame(s.image)
    assert wait(lambda: node._latest is not None)
    GatedGearSeg.gate.clear()  # the first query holds the worker, as a long LLM call would
    try:
        ids = [client.send_request("the red object", max_frame_age=30.0) for _ in range(12)]
        time.sleep(0.5)
        get_state = client.create_client(GetState, f"{node.get_namespace()}/gear_edge/get_state")
        assert get_state.wait_for_service(10)
        t0 = time.perf_counter()
        fut = get_state.call_async(GetState.Request())
        assert wait(fut.done, 10)
        latency = time.perf_counter() - t0
        assert fut.result().current_state.label == "active"
        assert latency < 2.0, f"get_state took {latency:.2f} s while a query was running"
    finally:
        GatedGearSeg.gate.set()
    assert client.wait_for(lambda: all(i in client.replies for i in ids), 60), "a request got no reply"
    statuses = [client.replies[i]["status_name"] for i in ids]
    # 1 running + max_queue (4) waiting are answered, the rest rejected with the reason
    assert statuses.count("OK") == 5 and statuses.count("REJECTED_QUEUE_FULL") == 7, statuses
    assert "queue is full" in next(client.replies[i]["message"] for i in ids if statuses[ids.index(i)] != "OK")


def test_old_frames_and_malformed_messages(ros):
    node, client, _ = ros
    active(node, client)
    s = tabletop()
    client.publish_frame(s.image)
    assert wait(lambda: node._latest is not None)
    time.sleep(0.3)
    r = client.request("the red object", max_frame_age=0.1, timeout=10)
    assert r["status_name"] == "REJECTED_FRAME_TOO_OLD" and "max_frame_age 0.10" in r["message"]
    bad = Image()
    bad.encoding, bad.height, bad.width, bad.step = "yuv422", 2, 2, 4
    bad.data = bytes(8)
    comp = client.create_publisher(CompressedImage, "image/compressed", 5)
    dropped = node.stats["dropped"]
    client.image_pub.publish(bad)
    empty = CompressedImage()
    empty.format = "jpeg"
    assert wait(lambda: comp.get_subscription_count() > 0, 10)
    comp.publish(empty)
    assert wait(lambda: node.stats["dropped"] == dropped + 2, 10)
    assert client.request("the red object", max_frame_age=30, timeout=30)["status_name"] == "OK"  # still serving
    client.publish_frame(s.image, depth=np.full((240, 320), 1000, np.uint16), K=K)  # depth not registered
    time.sleep(0.3)
    r = client.request("the red object", max_frame_age=30, timeout=30)
    assert r["status_name"] == "ERROR" and "depth size 240x320" in r["message"], r


def test_tracked_request_follows_the_target(ros):
    node, client, _ = ros
    active(node, client)
    from tests.scenes import SyntheticScene, background, disk, rect

    bg = background(480, 640)

    def frame(k):
        sc = SyntheticScene(bg.copy())
        sc.paste("box", rect(480, 640, 80 + 12 * k, 200, 200 + 12 * k, 310), (205, 30, 30), seed=10 + k)
        sc.paste("ball", disk(480, 640, 500, 150, 40), (30, 70, 215), seed=50 + k)
        return sc

    client.publish_frame(frame(0).image)
    assert wait(lambda: node._latest is not None)
    r = client.request("the red object", track=True, timeout=30)
    assert r["status_name"] == "OK", r
    assert r["targets"][0]["track_id"] >= 1
    tid = r["targets"][0]["track_id"]
    for k in range(1, 8):
        stamp = client.publish_frame(frame(k).image)
        time.sleep(0.15)

    def tracked_last():
        return [m for m in client.tracked if m["frame"]["stamp"] == {"sec": stamp.sec, "nanosec": stamp.nanosec}]

    assert client.wait_for(lambda: tracked_last(), 20), "the last frame was never tracked"
    last = tracked_last()[0]
    assert last["request_id"] == r["request_id"] and last["targets"][0]["track_id"] == tid
    assert gm.iou([last["mask"]], [gm.encode(frame(7).masks["box"])])[0, 0] >= 0.8
    assert len(client.tracked) >= 4 and node.stats["tracked_frames"] >= 4
    node._on_stop_tracking(None, type("R", (), {})())
    assert node._tracker is None


def test_deactivate_forgets_frames_and_rejects(ros):
    node, client, _ = ros
    active(node, client)
    node.trigger_deactivate()
    r = client.request("the red object", timeout=10)
    assert r["status_name"] == "REJECTED_INACTIVE"
    active(node, client)
    r = client.request("the red object", timeout=10)
    assert r["status_name"] == "REJECTED_NO_FRAME"  # never the frame from before deactivation


def test_shutdown_transition_stops_everything(ros):  # last: the node is finalized afterwards
    node, client, _ = ros
    active(node, client)
    node.trigger_shutdown()
    assert node.shutdown_requested.is_set() and node._worker is None and node.pipeline is None
    r = client.request("the red object", timeout=10)
    assert r["status_name"] == "REJECTED_INACTIVE" and "finalized" in r["message"]
