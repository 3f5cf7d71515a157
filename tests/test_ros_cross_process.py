"""The node as users run it (``gear-edge ros --ros-args ...`` in its own process) and a separate
client process (this one) publishing 640x480 colour + depth + CameraInfo at 15 Hz with the node's
default QoS over stock Fast DDS: no frame lost, every request of a burst answered or rejected with a
reason, a 3D point in the camera frame, a tracked target, SIGTERM -> exit 0 without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 node needs rclpy (the [ros] extra)")
pytest.importorskip("llama_cpp", reason="the default deducer needs llama-cpp-python (the [llm] extra)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped  # noqa: E402

import gear_edge.masks as gm  # noqa: E402
from gear_edge.ros.client import GearSegClient  # noqa: E402
from tests.scenes import SyntheticScene, background, disk, rect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = np.array([[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]])
H, W = 480, 640


def plane_depth(rows: np.ndarray, height: float = 0.5, pitch_deg: float = 30.0) -> np.ndarray:
    """Depth (m) of a table plane ``height`` below a camera pitched down by ``pitch_deg``, per row."""
    a = np.deg2rad(pitch_deg)
    y = (rows - K[1, 2]) / K[1, 1]
    with np.errstate(divide="ignore"):
        t = height / (np.cos(a) * y + np.sin(a))
    return np.where(t > 0, np.minimum(t, 6.0), 6.0)


def scene(bg, k: int) -> tuple[SyntheticScene, np.ndarray]:
    """A red box and a blue ball standing on a table (their fronts at the plane's depth at their
    bottom rows); depth uint16 mm."""
    s = SyntheticScene(bg.copy())
    x = 100 + 10 * k
    s.paste("box", rect(H, W, x, 180, x + 120, 290), (205, 30, 30), seed=7 + k)
    s.paste("ball", disk(H, W, 520, 330, 45), (30, 70, 215), seed=9 + k)
    depth_m = np.repeat(plane_depth(np.arange(H, dtype=np.float64))[:, None], W, axis=1)
    depth_m[s.masks["ball"]] = plane_depth(np.array([375.0]))[0]
    depth_m[s.masks["box"]] = plane_depth(np.array([290.0]))[0]
    return s, np.round(depth_m * 1000).astype(np.uint16)


@pytest.fixture(scope="module")
def node_process():
    ns = f"/xproc_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "gear_edge.cli", "ros", "--set", "describe.ocr=false",
           "--ros-args", "--params-file", str(ROOT / "ros/params/gear_edge.yaml"), "-r", f"__ns:={ns}",
           "-p", "max_queue:=6", "-p", "track_rate:=15.0", "-p", "warmup_llm:=false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    rclpy.init()
    client = GearSegClient(namespace=ns)
    diags = client.subscribe(DiagnosticArray, "diagnostics")
    points = client.subscribe(PointStamped, "target_point")
    client.spin_in_background()
    try:
        if not client.wait_for_node(90):
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"the node did not come up: {err[-2000:]}")
        yield proc, client, diags, points
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
        rclpy.shutdown()


def node_stats(diags) -> dict:
    return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}


def test_frames_requests_3d_tracking_and_clean_exit(node_process):
    proc, client, diags, points = node_process
    bg = background(H, W)
    s0, d0 = scene(bg, 0)
    # 1. 15 Hz for 2 s with the node's default QoS: every frame arrives
    assert client.wait_for(lambda: bool(diags), 10)
    before = int(node_stats(diags)["frames"])
    t0 = time.monotonic()
    for k in range(30):
        client.publish_frame(s0.image, depth=d0, K=K)
        time.sleep(max(0.0, t0 + (k + 1) / 15 - time.monotonic()))
    time.sleep(1.5)
    stats = node_stats(diags)
    assert int(stats["frames"]) - before == 30, stats
    assert stats["state"] == "active" and stats["models_loaded"] == "True"
    assert int(stats["max_queue"]) == 6  # -p after --params-file wins
    # 2. a burst: every request gets a reply, answered or rejected with a reason
    ids = [client.send_request("the red object", max_frame_age=60) for _ in range(20)]
    assert client.wait_for(lambda: all(i in client.replies for i in ids), 60), "requests lost"
    replies = [client.replies[i] for i in ids]
    names = [r["status_name"] for r in replies]
    assert set(names) <= {"OK", "REJECTED_QUEUE_FULL"} and names.count("OK") >= 7, names
    assert all(r["message"] for r in replies if r["status_name"] != "OK")
    # 3. the answer's 3D centroid, in the camera frame
    ok = next(r for r in replies if r["status_name"] == "OK")
    ys, xs = np.nonzero(s0.masks["box"])
    z = d0[s0.masks["box"]].astype(np.float64) / 1000
    truth = np.array([((xs - K[0, 2]) / K[0, 0] * z).mean(), ((ys - K[1, 2]) / K[1, 1] * z).mean(), z.mean()])
    assert np.linalg.norm(np.array(ok["targets"][0]["centroid_3d"]) - truth) < 0.01
    assert client.wait_for(lambda: bool(points), 5) and points[-1].header.frame_id == ok["frame"]["frame_id"]
    # 4. tracking: the moving box keeps its track id
    r = client.request("the red object", track=True, max_frame_age=60, timeout=30)
    assert r["status_name"] == "OK"
    tid = r["targets"][0]["track_id"]
    stamps = {}
    t0 = time.monotonic()
    for k in range(1, 11 + 15):  # the box moves for 10 frames, then the camera keeps streaming for 1 s
        s, d = scene(bg, min(k, 10))
        st = client.publish_frame(s.image, depth=d, K=K)
        stamps[(st.sec, st.nanosec)] = s.masks["box"]
        time.sleep(max(0.0, t0 + k / 15 - time.monotonic()))
    time.sleep(1.0)
    got = [m for m in client.tracked if (m["frame"]["stamp"]["sec"], m["frame"]["stamp"]["nanosec"]) in stamps]
    assert len(got) >= 10, f"only {len(got)} of 25 frames tracked"
    for m in got:
        truth_mask = stamps[(m["frame"]["stamp"]["sec"], m["frame"]["stamp"]["nanosec"])]
        assert [t["track_id"] for t in m["targets"]] == [tid]
        assert gm.iou([m["mask"]], [gm.encode(truth_mask)])[0, 0] >= 0.8
    # 3D on tracked frames: over stock Fast DDS a depth sample can arrive late (a lost UDP fragment of a
    # large sample is repaired when the next sample's heartbeat comes, and reliable delivery holds the
    # later ones behind it); the node then tracks the newest frame whose depth has arrived, and answers
    # without 3D (saying so) only when none has come within depth_wait
    with3d = [m["targets"][0]["centroid_3d"] for m in got if m["targets"][0]["centroid_3d"] is not None]
    assert len(with3d) >= 0.8 * len(got), f"{len(with3d)} of {len(got)} tracked frames have 3D"
    assert all(m["message"] for m in got if m["targets"][0]["centroid_3d"] is None)
    assert all(abs(c[2] - z.mean()) < 0.01 for c in with3d)
    # 5. SIGTERM: exit 0, no traceback
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "Exception" not in err, err[-2000:]
    json.dumps(stats)  # the diagnostics values are plain strings
