"""ROS-free parts of the node: approximate time sync, request parsing, the bounded queue, depth
conversion, the parameters file (no rclpy needed)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from gear_edge.errors import InputError
from gear_edge.ros.convert import depth_image_to_array
from gear_edge.ros.params import PARAMETERS
from gear_edge.ros.requests import Request, RequestQueue, Status, parse_topic_request
from gear_edge.ros.sync import ApproximateSync

ROOT = Path(__file__).resolve().parents[1]


def test_sync_picks_the_nearest_depth_within_slop_and_the_latest_info():
    s = ApproximateSync(slop=0.02, queue_size=4)
    for k in range(6):  # 30 Hz depth: 0.0 .. 0.1666; only the last 4 are kept
        s.add_depth(10.0 + k / 30, f"d{k}")
    s.add_info(9.0, "K-old")
    s.add_info(10.1, "K")
    m = s.match(10.1, "rgb")
    assert m.depth == "d3" and m.depth_dt == pytest.approx(0.0, abs=1e-9) and m.info == "K"
    m = s.match(10.11, "rgb")  # 10 ms from d3: within slop
    assert m.depth == "d3" and m.depth_dt == pytest.approx(0.01, abs=1e-6)
    assert s.match(10.3, "rgb").depth is None  # nothing within 20 ms: no depth rather than a wrong one
    assert s.match(10.3, "rgb").info == "K"  # camera info: the latest when none is within slop
    assert s.match(10.02, "rgb").depth is None  # d0 fell out of the 4-frame buffer
    strict = ApproximateSync(slop=0.02, info_any_stamp=False)
    strict.add_info(5.0, "K")
    assert strict.match(6.0, None).info is None
    with pytest.raises(ValueError, match="slop"):
        ApproximateSync(slop=-1)


def test_topic_requests_always_carry_an_id():
    f, err = parse_topic_request("the red mug")
    assert err is None and f["query"] == "the red mug" and isinstance(f["id"], int)
    f, err = parse_topic_request('{"id": "bt-7", "query": "the cup", "max_frame_age": 0.5, "track": true}')
    assert err is None and f == {"id": "bt-7", "query": "the cup", "max_frame_age": 0.5, "track": True}
    f, err = parse_topic_request('{"id": 3, "query": ')
    assert "not valid JSON" in err and isinstance(f["id"], int)
    f, err = parse_topic_request('{"id": 4, "query": 5}')
    assert f["id"] == 4 and "'query' must be a string" in err
    f, err = parse_topic_request('{"id": 5, "query": "x", "max_frame_age": -1}')
    assert f["id"] == 5 and ">= 0" in err
    f, err = parse_topic_request('{"id": [1], "query": "x"}')
    assert isinstance(f["id"], int) and "'id' must be" in err


def test_queue_rejects_when_full_and_every_request_is_finished_once():
    replies: list[tuple[int, Status, str]] = []
    lock = threading.Lock()

    def reply(req, status, message, payload):
        with lock:
            replies.append((req.id, status, message))

    q = RequestQueue(3)
    reqs = [Request(id=i, query="q", reply=reply) for i in range(10)]
    accepted = [q.submit(r) for r in reqs]
    assert accepted == [True] * 3 + [False] * 7
    assert [r[1] for r in replies] == [Status.REJECTED_QUEUE_FULL] * 7 and "queue is full (3 waiting)" in replies[0][2]
    got = q.get(timeout=0.1)
    assert got.id == 0
    got.finish(Status.OK)
    assert not got.finish(Status.ERROR)  # a second reply is ignored
    assert q.reject_all(Status.REJECTED_INACTIVE, "deactivated") == 2
    assert sorted(r[0] for r in replies) == list(range(10)) and len(replies) == 10
    assert q.get(timeout=0.01) is None
    with pytest.raises(ValueError):
        RequestQueue(0)


def test_depth_images():
    d = np.array([[0, 1000], [65535, 1500]], np.uint16)
    assert np.array_equal(depth_image_to_array("16UC1", 2, 2, 4, d.tobytes()), d)
    assert np.array_equal(depth_image_to_array("16UC1", 2, 2, 4, d.byteswap().tobytes(), is_bigendian=1), d)
    f = np.array([[0.5, np.nan], [1.25, 2.0]], np.float32)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :8] = f.view(np.uint8).reshape(2, 8)
    out = depth_image_to_array("32FC1", 2, 2, 12, padded.tobytes())
    assert out.dtype == np.float32 and np.array_equal(out, f, equal_nan=True)
    with pytest.raises(InputError, match="unsupported depth encoding 'rgb8'"):
        depth_image_to_array("rgb8", 2, 2, 6, bytes(12))
    with pytest.raises(InputError, match="7 bytes but step"):
        depth_image_to_array("16UC1", 2, 2, 4, bytes(7))
    with pytest.raises(InputError, match="smaller than width"):
        depth_image_to_array("32FC1", 2, 2, 4, bytes(8))


def test_parameters_file_lists_every_parameter_with_its_default():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((ROOT / "ros/params/gear_edge.yaml").read_text())
    params = doc["/**"]["ros__parameters"]
    assert params == PARAMETERS
