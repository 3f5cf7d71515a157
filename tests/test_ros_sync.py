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
from gear_edge.ros.sync import ApproximateSync, DepthStream, Frame, RecentFrames

ROOT = Path(__file__).resolve().parents[1]


def test_recent_frames_answer_on_the_newest_frame_whose_depth_has_arrived():
    rf = RecentFrames(size=4)
    assert rf.pick(0.0, depth_expected=True, depth_wait=0.5, has_depth=lambda f: True) == (None, True)
    for k in range(1, 7):  # 15 Hz colour: seq 1..6 arriving at 10.0 .. 10.333; only 3..6 are kept
        rf.add(Frame(header=None, rgb=f"c{k}", stamp=100 + k / 15, arrival=10 + (k - 1) / 15, seq=k))
    depth = {3, 4}  # depth of 5 was lost and is being repaired; 6's queues behind it (in-order delivery)
    has = lambda f: f.seq in depth  # noqa: E731
    newest_arrival = 10 + 5 / 15
    f, final = rf.pick(newest_arrival + 0.01, depth_expected=True, depth_wait=0.5, has_depth=has)
    assert (f.seq, final) == (4, True)  # one frame older, with its depth: not the newest without it
    assert rf.pick(newest_arrival + 0.01, after_seq=4, depth_expected=True, depth_wait=0.5, has_depth=has) == (None, False)
    f, final = rf.pick(newest_arrival + 0.5, after_seq=4, depth_expected=True, depth_wait=0.5, has_depth=has)
    assert (f.seq, final) == (6, True)  # waited depth_wait for its own: the newest, without depth
    depth.add(6)
    assert rf.pick(newest_arrival + 0.01, after_seq=4, depth_expected=True, depth_wait=0.5, has_depth=has)[0].seq == 6
    # never older than depth_wait before the newest: 3 is 0.2 s older; a request waits from when it started
    assert rf.pick(newest_arrival, waiting_since=newest_arrival, depth_expected=True, depth_wait=0.1,
                   has_depth=lambda f: f.seq == 3) == (None, False)
    f, _ = rf.pick(newest_arrival + 0.11, waiting_since=newest_arrival, depth_expected=True, depth_wait=0.1,
                   has_depth=lambda f: f.seq == 3)
    assert f.seq == 6
    # depth stopped while colour goes on: tracking is not starved by ever newer frames; the wait counts
    # from the first frame after the last one answered (5 arrived 0.067 s before 6)
    none = lambda f: False  # noqa: E731
    assert rf.pick(10 + 4 / 15 + 0.49, after_seq=4, depth_expected=True, depth_wait=0.5, has_depth=none) == (None, False)
    assert rf.pick(10 + 4 / 15 + 0.51, after_seq=4, depth_expected=True, depth_wait=0.5, has_depth=none)[0].seq == 6
    assert rf.pick(newest_arrival, depth_expected=False, depth_wait=0.5, has_depth=has)[0].seq == 6  # no depth stream
    assert rf.pick(newest_arrival, after_seq=6, depth_expected=False, depth_wait=0.5, has_depth=has) == (None, True)
    assert rf.newest().seq == 6
    assert RecentFrames(size=4, max_behind=1).pick(newest_arrival, waiting_since=newest_arrival, depth_expected=True,
                                                   depth_wait=0.5, has_depth=has) == (None, True)  # empty
    near = RecentFrames(size=4, max_behind=1)
    for f in [Frame(None, None, 0.0, 10 + k / 15, k) for k in (3, 4, 5, 6)]:
        near.add(f)
    assert near.pick(10.4, waiting_since=10.4, depth_expected=True, depth_wait=0.5,
                     has_depth=lambda f: f.seq == 4) == (None, False)  # 4 is two frames behind 6
    assert near.pick(10.4, waiting_since=10.4, depth_expected=True, depth_wait=0.5,
                     has_depth=lambda f: f.seq == 5)[0].seq == 5
    # on a loaded machine depth can lag several frames behind colour: by default the newest paired
    # frame within depth_wait is answered at once (no frame-count limit), not the newest without depth
    lag = RecentFrames()
    for k in range(1, 9):
        lag.add(Frame(None, None, 0.0, 10 + k / 15, k))
    f, final = lag.pick(10 + 8 / 15, waiting_since=10 + 8 / 15, depth_expected=True, depth_wait=0.5,
                        has_depth=lambda f: f.seq <= 4)
    assert (f.seq, final) == (4, True)  # four frames (0.27 s) behind the newest
    assert lag.pick(10 + 8 / 15, waiting_since=10 + 8 / 15, depth_expected=True, depth_wait=0.2,
                    has_depth=lambda f: f.seq <= 4) == (None, False)  # 0.27 s > depth_wait: wait for newer
    rf.clear()
    assert rf.newest() is None
    with pytest.raises(ValueError, match="size"):
        RecentFrames(size=0)


def test_a_caller_busy_while_frames_queued_still_gives_their_depth_depth_wait():
    # the tracker worked from 10.0 to 10.6 while 8 frames queued (15 Hz from 10.067); their depth is
    # being repaired. Counting the wait from the first queued frame's arrival would give up at once
    rf = RecentFrames()
    for k in range(1, 9):
        rf.add(Frame(None, None, 0.0, 10 + k / 15, k))
    none = lambda f: False  # noqa: E731
    assert rf.pick(10.6, depth_expected=True, depth_wait=0.5, has_depth=none)[0].seq == 8  # old rule: no 3D
    assert rf.pick(10.6, waiting_since=10.6, depth_expected=True, depth_wait=0.5, has_depth=none) == (None, False)
    f, final = rf.pick(10.65, waiting_since=10.6, depth_expected=True, depth_wait=0.5, has_depth=lambda f: f.seq == 6)
    assert (f.seq, final) == (6, True)  # its depth came 0.05 s later
    assert rf.pick(11.1, waiting_since=10.6, depth_expected=True, depth_wait=0.5, has_depth=none)[0].seq == 8
    # a waiting_since before the first new frame counts from that frame's arrival (the caller was
    # free before it came)
    assert rf.pick(10 + 1 / 15 + 0.49, waiting_since=5.0, depth_expected=True, depth_wait=0.5,
                   has_depth=none) == (None, False)
    assert rf.pick(10 + 1 / 15 + 0.51, waiting_since=5.0, depth_expected=True, depth_wait=0.5,
                   has_depth=none)[0].seq == 8


def test_depth_is_expected_until_colour_streams_on_without_any_depth():
    ds = DepthStream()
    assert not ds.expected(0.0, 1.0)  # no depth stream seen: answer at once
    ds.on_depth(10.0)
    assert ds.expected(10.0, 1.0)
    for k in range(1, 10):  # depth arrives in late bursts: colour alone for 0.6 s is not depth lost
        ds.on_colour(10 + k / 15)
    assert ds.expected(10.7, 1.0)
    ds.on_depth(10.7)
    ds.on_colour(10.75)
    assert ds.expected(11.7, 1.0)
    assert not ds.expected(11.8, 1.0)  # colour has streamed alone for over give_up: depth stopped
    ds.on_depth(12.0)  # it came back
    assert ds.expected(30.0, 1.0)  # the whole camera paused (no colour either): still expected
    ds.on_colour(30.0)
    assert ds.expected(30.5, 1.0)
    ds.clear()
    assert not ds.expected(30.5, 1.0) and ds.last_depth is None


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
