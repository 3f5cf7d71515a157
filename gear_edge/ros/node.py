"""ROS 2 lifecycle node wrapping GearSeg (needs rclpy: the ``[ros]`` extra). See README "ROS 2".

Never stalls: subscriptions only convert and store (the latest colour frame; depth and CameraInfo
in a short stamp-indexed buffer for the approximate time sync), requests go to a bounded queue, and
perception + deduction run on one worker thread. The node is spun by a multi-threaded executor with
separate callback groups, so lifecycle services, parameters and new requests are answered while a
query (or its LLM call) runs.

Lifecycle: configure builds the pipeline and loads every model (``GearSeg.load``) plus a warm-up
query; activate subscribes and starts the worker; deactivate stops the worker (requests still
waiting are rejected as inactive) and forgets the frames; cleanup frees the models; shutdown stops
everything and ends ``run``.

Requests (every one gets exactly one reply; see ``gear_edge.ros.requests.Status``):
* action ``segment`` (``gear_edge_msgs/action/Segment``, when that package is installed: the setup
  script builds it): goal = query, max_frame_age, track; result = status, message, header, targets
  (id, box, score, mask, 3D centroid and box, track id), mask, steps, timings; feedback = stage.
* topic ``request`` (std_msgs/String: a plain query or JSON ``{"id", "query", "max_frame_age",
  "track"}``) -> topic ``answer`` (std_msgs/String JSON with ``request_id``, ``status``,
  ``status_name``, ``message`` and the answer).
A request is rejected with a reason when the queue is full, no frame has arrived, the newest frame
is older than ``max_frame_age`` (time since it arrived), the node is not active, or the query is empty.

Outputs per answer (the colour frame's header; 3D in its frame_id, the camera optical frame):
``mask`` (mono8), ``overlay`` (rgb8, the camera frame's size), ``target_point``
(geometry_msgs/PointStamped, the targets' 3D centroid), ``target_markers`` (MarkerArray: 3D box +
label), ``target_points`` (PointCloud2, when ``publish_cloud``), ``diagnostics``
(diagnostic_msgs/DiagnosticArray every ``diagnostics_period`` s). A tracked request (``track``)
keeps being answered on new frames at ``track_rate`` Hz on ``tracked`` (JSON) and the same topics,
until ``stop_tracking`` (std_srvs/Trigger) or another tracked request.
"""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from collections import deque
from functools import partial
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from gear_edge.errors import GearEdgeError, InputError
from gear_edge.ros import messages as rm
from gear_edge.ros.convert import compressed_to_rgb, depth_image_to_array, image_to_rgb
from gear_edge.ros.params import PARAMETERS
from gear_edge.ros.requests import Request, RequestQueue, Status, next_id, parse_topic_request
from gear_edge.ros.sync import ApproximateSync, DepthStream, Frame, RecentFrames, stamp_seconds

try:  # the typed interface (built by scripts/setup.sh from the rosidl wheels)
    from gear_edge_msgs.action import Segment
    from gear_edge_msgs.msg import Target
except ImportError:  # pragma: no cover - depends on the install
    Segment = Target = None

RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT,
               "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}



def _now() -> float:
    return time.monotonic()


class GearSegNode(LifecycleNode):
    def __init__(self, name: str = "gear_edge", *, pipeline=None, **kwargs: Any) -> None:
        # lifecycle + parameter services keep the default callback group: nothing else uses it
        super().__init__(name, **kwargs)
        for k, v in PARAMETERS.items():
            self.declare_parameter(k, v)
        self._given_pipeline = pipeline
        self.pipeline = None
        self._cb_image = MutuallyExclusiveCallbackGroup()
        self._cb_depth = MutuallyExclusiveCallbackGroup()
        self._cb_requests = ReentrantCallbackGroup()
        self._cb_timers = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()
        self._latest: tuple[Any, np.ndarray, float, int] | None = None  # (header, rgb, arrival, seq)
        self._frame_seq = 0
        self._scene_key: tuple | None = None
        self._scene = None
        self._sync = ApproximateSync()
        self._recent = RecentFrames()  # the last colour frames, to pair with depth that comes late
        self._depth = DepthStream()  # whether colour frames wait for their depth
        self._active = False
        self._state_name = "unconfigured"
        self._queue: RequestQueue | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.shutdown_requested = threading.Event()
        self._tracker = None
        self._track_req: dict | None = None
        self._track_seq = -1
        self._track_due = 0.0
        self._track_ready = 0.0  # when the tracker last became free to take a frame (monotonic s)
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self._latencies: deque[float] = deque(maxlen=200)
        self._frame_times: deque[float] = deque(maxlen=100)
        self._delays: deque[float] = deque(maxlen=300)  # ms from a colour frame's stamp to its arrival
        self.stats: dict[str, int] = {"frames": 0, "dropped": 0, "depth_frames": 0, "requests": 0, "answered": 0,
                                      "rejected": 0, "perceived": 0, "errors": 0, "tracked_frames": 0, "rededuced": 0}
        self.rejections: dict[str, int] = {}
        self._stats_lock = threading.Lock()  # counters are bumped from executor threads and the worker
        # always there, in every lifecycle state, so that no request goes unanswered
        p = self._p
        rq = QoSProfile(depth=int(p("request_qos_depth")), reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
        self._answer_pub = self.create_publisher(String, p("answer_topic"), rq)
        self.create_subscription(String, p("request_topic"), self._on_topic_request, rq, callback_group=self._cb_requests)
        self._action = None
        if Segment is not None:
            from rclpy.action import ActionServer, CancelResponse, GoalResponse

            self._action = ActionServer(
                self, Segment, p("action_name"), execute_callback=self._finish_goal_default,
                goal_callback=lambda goal: GoalResponse.ACCEPT,
                handle_accepted_callback=self._on_goal_accepted,
                cancel_callback=lambda gh: CancelResponse.ACCEPT, callback_group=self._cb_requests)
        self.create_service(Trigger, "~/stop_tracking", self._on_stop_tracking, callback_group=self._cb_requests)
        self._diag_pub = self.create_publisher(DiagnosticArray, p("diagnostics_topic"), 10)
        self._diag_timer = self.create_timer(max(0.05, float(p("diagnostics_period"))), self._publish_diagnostics,
                                             callback_group=self._cb_timers)

    def _inc(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _p(self, name: str):
        return self.get_parameter(name).value

    # ---- lifecycle ------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        t0 = time.perf_counter()
        try:
            if self._given_pipeline is not None:
                self.pipeline = self._given_pipeline
            else:
                from gear_edge.pipeline import GearSeg

                overrides = dict(item.split("=", 1) for item in self._p("overrides") if item and "=" in item)
                self.pipeline = GearSeg.from_config(self._p("config"), overrides)
            self._load_models()
            self._check_parameters()
        except (GearEdgeError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.pipeline = None
            return TransitionCallbackReturn.FAILURE
        self._sync = ApproximateSync(float(self._p("sync_slop")))
        latched = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self._pubs = {
            "mask": self.create_lifecycle_publisher(Image, self._p("mask_topic"), latched),
            "overlay": self.create_lifecycle_publisher(Image, self._p("overlay_topic"), latched),
            "point": self.create_lifecycle_publisher(PointStamped, self._p("point_topic"), latched),
            "markers": self.create_lifecycle_publisher(MarkerArray, self._p("markers_topic"), latched),
            "cloud": self.create_lifecycle_publisher(PointCloud2, self._p("cloud_topic"), latched),
            "tracked": self.create_lifecycle_publisher(String, self._p("tracked_topic"), latched),
        }
        self._state_name = "inactive"
        self.get_logger().info(f"configured in {time.perf_counter() - t0:.1f} s (models loaded)")
        return TransitionCallbackReturn.SUCCESS

    def _check_parameters(self) -> None:
        rel = str(self._p("image_reliability")).lower()
        if rel not in RELIABILITY:
            raise InputError(f"parameter image_reliability must be one of {sorted(RELIABILITY)}, got {rel!r}")
        for name, lo in (("image_qos_depth", 1), ("max_queue", 1), ("cloud_stride", 1)):
            if int(self._p(name)) < lo:
                raise InputError(f"parameter {name} must be >= {lo}, got {self._p(name)}")
        for name in ("max_frame_age", "sync_slop", "track_rate", "depth_scale"):
            if not float(self._p(name)) > 0:
                raise InputError(f"parameter {name} must be > 0, got {self._p(name)}")

    def _load_models(self) -> None:
        """Every model now, not at the first request; then one warm-up query (first request ≈ later ones)."""
        gs = self.pipeline
        if hasattr(gs, "load"):
            gs.load()
        else:  # older pipelines: touch the lazy components
            for name in ("segmenter", "ocr", "captioner", "deducer"):
                getattr(gs, name, None)
        if self._p("warmup_llm"):
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                pass
            else:
                getattr(gs, "llm", None)  # the local LLM, which program mode otherwise loads at the first purpose query
        if self._p("warmup"):
            img = np.full((480, 640, 3), 150, np.uint8)
            img[180:300, 100:260] = (200, 40, 40)
            img[200:320, 380:500] = (40, 60, 200)
            scene = gs.perceive(img)
            queries = ["the red object", "the object left of the blue one"]
            if self._p("warmup_llm"):
                queries.append("something to drink from")  # evaluates the LLM's cached prompt prefix
            for q in queries:
                gs.ask(scene, q)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._p
        img_qos = QoSProfile(depth=int(p("image_qos_depth")), history=HistoryPolicy.KEEP_LAST,
                             reliability=RELIABILITY[str(p("image_reliability")).lower()])
        with self._lock:
            self._latest, self._scene, self._scene_key = None, None, None  # never answer on a frame from before
        self._sync.clear()
        self._recent.clear()
        self._depth.clear()
        self._subs = [
            self.create_subscription(Image, p("image_topic"), self._on_image, img_qos, callback_group=self._cb_image),
            self.create_subscription(CompressedImage, p("compressed_topic"), self._on_compressed, img_qos,
                                     callback_group=self._cb_image),
            self.create_subscription(Image, p("depth_topic"), self._on_depth, img_qos, callback_group=self._cb_depth),
            self.create_subscription(CameraInfo, p("camera_info_topic"), self._on_info, img_qos,
                                     callback_group=self._cb_depth),
        ]
        self._queue = RequestQueue(int(p("max_queue")))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="gear_edge_worker", daemon=True)
        self._active = True
        self._state_name = "active"
        self._worker.start()
        return super().on_activate(state)

    def _stop_worker(self, reason: str) -> None:
        self._active = False
        self._stop.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=120.0)
        self._worker = None
        if self._queue is not None:
            self._queue.reject_all(Status.REJECTED_INACTIVE, reason)  # each reply is counted by _count
        self._stop_tracking_locked(f"tracking stopped: {reason}")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker("node was deactivated")
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        with self._lock:
            self._latest, self._scene, self._scene_key = None, None, None
        self._sync.clear()
        self._recent.clear()
        self._state_name = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self.pipeline = None  # frees the models (ONNX sessions, the LLM)
        with self._lock:
            self._latest, self._scene = None, None
        self._recent.clear()
        self._tracker = None
        gc.collect()
        self._state_name = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker("node is shutting down")
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.pipeline = None
        self._state_name = "finalized"
        self.shutdown_requested.set()  # run() returns
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker("node is in error processing")
        return TransitionCallbackReturn.SUCCESS

    # ---- input ----------------------------------------------------------------------------

    def _store(self, header, rgb: np.ndarray) -> None:
        now = _now()
        delay = time.time() - stamp_seconds(header.stamp)  # transport delay (same clock on one host)
        with self._lock:  # one slot: a burst of frames replaces it, nothing queues
            self._frame_seq += 1
            self._latest = (header, rgb, now, self._frame_seq)
            self._inc("frames")
            self._frame_times.append(now)
            if -1.0 < delay < 60.0:
                self._delays.append(delay * 1e3)
            seq = self._frame_seq
        self._depth.on_colour(now)
        self._recent.add(Frame(header, rgb, stamp_seconds(header.stamp), now, seq))

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except InputError as exc:
            self._inc("dropped", 1)
            self.get_logger().warning(f"dropped image message: {exc}")
            return
        self._store(msg.header, rgb)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            rgb = compressed_to_rgb(msg.format, msg.data)
        except InputError as exc:
            self._inc("dropped", 1)
            self.get_logger().warning(f"dropped compressed image message: {exc}")
            return
        self._store(msg.header, rgb)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = depth_image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
        except InputError as exc:
            self._inc("dropped", 1)
            self.get_logger().warning(f"dropped depth message: {exc}")
            return
        self._inc("depth_frames", 1)
        self._sync.add_depth(stamp_seconds(msg.header.stamp), depth)  # before on_depth: a waiting pick finds it
        self._depth.on_depth(_now())

    def _on_info(self, msg: CameraInfo) -> None:
        self._sync.add_info(stamp_seconds(msg.header.stamp), (list(msg.k), int(msg.height), int(msg.width)))

    # ---- requests -------------------------------------------------------------------------

    def _on_topic_request(self, msg: String) -> None:
        fields, error = parse_topic_request(msg.data)
        req = Request(id=fields["id"], query=fields.get("query", ""), max_frame_age=fields.get("max_frame_age", 0.0),
                      track=fields.get("track", False), source="topic", reply=self._reply_topic)
        self._submit(req, error)

    def _on_goal_accepted(self, goal_handle) -> None:
        g = goal_handle.request
        req = Request(id=next_id(), query=g.query, max_frame_age=float(g.max_frame_age), track=bool(g.track),
                      source="action", handle=goal_handle, reply=self._reply_action)
        error = None if math.isfinite(req.max_frame_age) and req.max_frame_age >= 0 else \
            f"max_frame_age must be >= 0 seconds, got {req.max_frame_age}"
        self._submit(req, error)

    def _submit(self, req: Request, error: str | None) -> None:
        self._inc("requests", 1)
        if error is not None:
            req.finish(Status.REJECTED_BAD_QUERY, error)
        elif not req.query.strip():
            req.finish(Status.REJECTED_BAD_QUERY, "the query is empty")
        elif not self._active or self._queue is None:
            req.finish(Status.REJECTED_INACTIVE, f"the node is {self._state_name}, not active: activate it first")
        else:
            self._queue.submit(req)  # rejects (queue full) itself
            self._feedback(req, "queued")

    def _count(self, status: Status) -> None:
        if status in (Status.OK, Status.NO_TARGET):
            self._inc("answered", 1)
        else:
            self._inc("rejected", 1)
            with self._stats_lock:
                self.rejections[status.name] = self.rejections.get(status.name, 0) + 1

    def _reply_topic(self, req: Request, status: Status, message: str, payload: dict) -> None:
        self._count(status)
        out = {"request_id": req.id, "status": int(status), "status_name": status.name, "message": message,
               "query": req.query, **payload.get("json", {})}
        self._answer_pub.publish(String(data=json.dumps(out)))

    def _reply_action(self, req: Request, status: Status, message: str, payload: dict) -> None:
        self._count(status)
        res = Segment.Result()
        res.status, res.message, res.request_id = int(status), message, int(req.id)
        fill = payload.get("fill")
        if fill is not None:
            fill(res)
        terminal = "canceled" if status == Status.CANCELED else ("succeed" if status in (Status.OK, Status.NO_TARGET) else "abort")
        req.handle.execute(partial(self._finish_goal, res, terminal))

    @staticmethod
    def _finish_goal(result, terminal: str, goal_handle):
        if goal_handle.is_active:
            getattr(goal_handle, terminal)()
        return result

    def _finish_goal_default(self, goal_handle):  # only reached if a goal is executed by someone else
        goal_handle.abort()
        res = Segment.Result()
        res.status, res.message = int(Status.ERROR), "goal executed without a request"
        return res

    def _feedback(self, req: Request, stage: str) -> None:
        if req.handle is None or Segment is None:
            return
        fb = Segment.Feedback()
        fb.stage, fb.queue_position = stage, len(self._queue) if self._queue is not None else 0
        try:
            req.handle.publish_feedback(fb)
        except Exception:  # noqa: BLE001 - feedback is best effort; the result is what counts
            pass

    def _on_stop_tracking(self, request, response):
        with self._lock:
            was = self._track_req is not None
        self._stop_tracking_locked("stopped by stop_tracking")
        response.success, response.message = True, ("tracking stopped" if was else "nothing was being tracked")
        return response

    def _stop_tracking_locked(self, reason: str) -> None:
        with self._lock:
            self._tracker, self._track_req = None, None

    # ---- the worker -----------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            req = self._queue.get(timeout=0.02) if self._queue is not None else None
            if req is not None:
                try:
                    self._handle(req)
                except Exception as exc:  # noqa: BLE001 - never lose a request, never kill the worker
                    self._inc("errors", 1)
                    self.get_logger().error(f"request {req.id} failed: {exc!r}")
                    req.finish(Status.ERROR, f"internal error: {exc!r}")
                continue
            try:
                self._track_step()
            except Exception as exc:  # noqa: BLE001
                self._inc("errors", 1)
                self.get_logger().error(f"tracking failed: {exc!r}")
                with self._lock:
                    treq = self._track_req
                self._stop_tracking_locked("error")
                if treq is not None and self._pubs:  # tell the client that tracking ended, and why
                    self._pubs["tracked"].publish(String(data=json.dumps(
                        {"request_id": treq["id"], "query": treq["query"], "mode": "stopped",
                         "reason": f"tracking failed: {exc}", "targets": []})))

    def _depth_expected(self) -> bool:
        """Colour frames come with depth: a depth stream has been seen, and colour has not streamed
        on without any depth for over 2 ``depth_wait`` (late bursts of depth and a pause of the whole
        camera do not count as depth lost)."""
        return self._depth.expected(_now(), 2 * float(self._p("depth_wait")))

    def _no_depth_note(self, depth) -> str:
        """Why an answer has no 3D although a depth stream has been seen ("" otherwise)."""
        last = self._depth.last_depth
        if depth is not None or last is None:
            return ""
        if self._depth_expected():
            return f"no depth frame matched this colour frame within depth_wait ({self._p('depth_wait')} s): answered without 3D"
        return f"the depth stream has sent nothing for {_now() - last:.1f} s: answered without 3D"

    def _has_depth(self, frame: Frame) -> bool:
        return self._sync.match(frame.stamp, None).depth is not None

    def _pick_frame(self, after_seq: int, *, wait: bool, since: float | None = None) -> Frame | None:
        """The colour frame to answer on (``RecentFrames.pick``): the newest one after ``after_seq``
        whose depth has arrived, or the newest without depth after ``depth_wait`` s. ``wait``: block
        (up to ``depth_wait`` from now) until it is decided; otherwise None while it is undecided,
        the wait counting from ``since`` (when the caller became free) or the first new frame."""
        dw = float(self._p("depth_wait"))
        if wait:
            since = _now()
        while True:
            frame, final = self._recent.pick(_now(), after_seq=after_seq, waiting_since=since,
                                             depth_expected=self._depth_expected(), depth_wait=dw,
                                             has_depth=self._has_depth)
            if final or not wait or self._stop.is_set():
                return frame
            time.sleep(0.005)

    def _frame_inputs(self, header, rgb):
        """(depth metres or None, CameraIntrinsics or None) synced to the colour frame."""
        synced = self._sync.match(stamp_seconds(header.stamp), None)
        if synced.depth is None or synced.info is None:
            return None, None
        try:
            from gear_edge.camera import CameraIntrinsics, depth_to_metres
        except ImportError:  # pragma: no cover - camera support not in this build
            return None, None
        k, ih, iw = synced.info
        if (ih, iw) != rgb.shape[:2] and ih and iw:
            raise InputError(f"CameraInfo is {ih}x{iw} but the colour image is {rgb.shape[0]}x{rgb.shape[1]}")
        return depth_to_metres(synced.depth, rgb.shape[:2], scale=float(self._p("depth_scale"))), CameraIntrinsics.from_matrix(k)

    def _handle(self, req: Request) -> None:
        t_start = _now()
        if not self._active:
            req.finish(Status.REJECTED_INACTIVE, f"the node is {self._state_name}, not active")
            return
        if req.handle is not None and req.handle.is_cancel_requested:
            req.finish(Status.CANCELED, "canceled before it ran")
            return
        with self._lock:
            latest = self._latest
        if latest is None:
            req.finish(Status.REJECTED_NO_FRAME, f"no image received on {self._p('image_topic')} since activation")
            return
        header, rgb, arrival, seq = latest
        max_age = req.max_frame_age or float(self._p("max_frame_age"))
        age = t_start - arrival
        if age > max_age:
            req.finish(Status.REJECTED_FRAME_TOO_OLD, f"the newest frame arrived {age:.2f} s ago (max_frame_age {max_age:.2f} s)")
            return
        timings: dict[str, float] = {"queue": (t_start - req.received) * 1e3}
        try:
            frame = self._pick_frame(0, wait=True)  # the newest frame, or one just before it with its depth
            if frame is not None:
                header, rgb, seq = frame.header, frame.rgb, frame.seq
            depth, K = self._frame_inputs(header, rgb)
            no_depth_note = self._no_depth_note(depth)
            key = (seq, depth is not None)
            self._feedback(req, "perceiving")
            if self._scene is None or self._scene_key != key:
                kw = {} if depth is None or not self._perceive_takes_depth() else {"depth": depth, "intrinsics": K}
                self._scene, self._scene_key = self.pipeline.perceive(rgb, **kw), key
                self._inc("perceived", 1)
                timings.update(self._scene.timings)
            scene = self._scene
        except GearEdgeError as exc:  # a bad frame (depth, CameraInfo) never stops the node
            self._inc("errors", 1)
            req.finish(Status.ERROR, f"cannot perceive the frame: {exc}")
            return
        try:
            self._feedback(req, "deducing")
            answer = self.pipeline.ask(scene, req.query)
        except GearEdgeError as exc:  # a bad query or input never stops the node
            self._inc("errors", 1)
            req.finish(Status.REJECTED_BAD_QUERY if isinstance(exc, InputError) else Status.ERROR, str(exc))
            return
        timings.update(answer.timings)
        self._feedback(req, "publishing")
        targets = [self._target_info(scene.region(t).bitmap(), scene.region(t), depth, K) for t in answer.targets]
        tracker_ids = {}
        if req.track:
            tracker_ids = self._start_tracking(req, rgb, scene, answer, seq)
        for t in targets:
            t["track_id"] = tracker_ids.get(t["id"], -1)
        mask = answer.bitmap(scene.image_size)
        self._publish_outputs(header, rgb, scene, answer, mask, targets, depth, K)
        timings["total"] = (_now() - req.received) * 1e3
        self._latencies.append(timings["total"])
        status = Status.OK if answer.targets else Status.NO_TARGET
        message = "; ".join(m for m in ("" if answer.targets else "nothing in the frame matches the query",
                                         no_depth_note) if m)
        req.finish(status, message, self._payload(header, answer, targets, mask, timings))

    def _perceive_takes_depth(self) -> bool:
        """Whether this pipeline's perceive has the RGB-D path (else 3D is measured per target here)."""
        import inspect

        try:
            return "depth" in inspect.signature(self.pipeline.perceive).parameters
        except (TypeError, ValueError):
            return False

    # ---- results --------------------------------------------------------------------------

    def _target_info(self, mask: np.ndarray, region, depth, K) -> dict:
        """id, box, score, mask and (with depth) 3D centroid / box / points in the camera frame."""
        info: dict[str, Any] = {"id": int(region.id) if region is not None else -1, "mask": mask,
                                "bbox": [float(v) for v in (region.bbox if region is not None else _mask_bbox(mask))],
                                "score": None if region is None or region.score is None else float(region.score),
                                "centroid_3d": None, "box_3d": None, "points": None}
        geo = getattr(region, "geometry_3d", None) if region is not None else None
        if geo is not None:
            info["centroid_3d"] = [float(v) for v in geo.centroid_m]
            info["box_3d"] = geo.box.to_dict()
        if depth is not None and K is not None:
            from gear_edge.camera import backproject, oriented_box, robust_centroid

            pts = backproject(depth, K, mask)
            if len(pts):
                info["points"] = pts
                if info["centroid_3d"] is None:  # no RGB-D scene (tracked frames): measure the mask here
                    info["centroid_3d"] = [float(v) for v in robust_centroid(pts)]
                    box = oriented_box(pts, getattr(self._scene, "support_plane", None))
                    info["box_3d"] = None if box is None else box.to_dict()
        return info

    def _publish_outputs(self, header, rgb, scene, answer, mask, targets, depth, K, *, label: str | None = None) -> None:
        pubs = self._pubs
        if not pubs:
            return
        pubs["mask"].publish(rm.mask_msg(header, mask))
        if self._p("publish_overlay") and scene is not None and answer is not None:
            from gear_edge.viz import render_answer

            pubs["overlay"].publish(rm.rgb_msg(header, render_answer(rgb, scene, answer, caption=False)))
        with3d = [t for t in targets if t["centroid_3d"] is not None]
        if with3d:
            pts = [t for t in with3d if t["points"] is not None]
            if pts:
                allp = np.concatenate([t["points"] for t in pts])
                from gear_edge.camera import robust_centroid

                c = robust_centroid(allp) if len(with3d) > 1 else np.asarray(with3d[0]["centroid_3d"])
            else:
                c = np.asarray(with3d[0]["centroid_3d"])
            pubs["point"].publish(rm.point_stamped(header, c))
            boxes = [{**t["box_3d"], "label": f"{label or (answer.query if answer else '')} R{t['id']}"
                      + (f" #{t['track_id']}" if t.get("track_id", -1) >= 0 else "")}
                     for t in with3d if t["box_3d"] is not None]
            pubs["markers"].publish(rm.markers(header, boxes))
            if self._p("publish_cloud") and pts:
                s = int(self._p("cloud_stride"))
                cloud = np.concatenate([t["points"].reshape(-1, 3)[:: s * s] for t in pts])
                pubs["cloud"].publish(rm.point_cloud(header, cloud))

    def _payload(self, header, answer, targets, mask, timings) -> dict:
        """The reply: JSON for the topic interface, a filler for the action result."""
        frame = {"stamp": {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}, "frame_id": header.frame_id}
        jt = [{k: v for k, v in t.items() if k not in ("mask", "points")} for t in targets]
        js = {"frame": frame, "answer": answer.to_dict() if answer is not None else None, "targets": jt,
              "timings": timings}

        def fill(res) -> None:
            res.header = header
            for t in targets:
                m = Target()
                m.id, m.track_id = int(t["id"]), int(t.get("track_id", -1))
                m.box_xywh = [float(v) for v in t["bbox"]]
                m.score = float("nan") if t["score"] is None else float(t["score"])
                m.mask = rm.mask_msg(header, t["mask"])
                if t["centroid_3d"] is not None:
                    m.has_3d = True
                    m.centroid.x, m.centroid.y, m.centroid.z = (float(v) for v in t["centroid_3d"])
                    if t["box_3d"] is not None:
                        b = t["box_3d"]
                        m.box_center.x, m.box_center.y, m.box_center.z = (float(v) for v in b["center"])
                        m.box_size.x, m.box_size.y, m.box_size.z = (float(v) for v in b["size"])
                res.targets.append(m)
            res.mask = rm.mask_msg(header, mask)
            if answer is not None:
                res.steps = [s.text + ("" if s.kept is None else f" -> {s.kept}") for s in answer.steps]
                res.mode = answer.mode
            res.timing_names = list(timings)
            res.timing_ms = [float(v) for v in timings.values()]

        return {"json": js, "fill": fill if Target is not None else None}

    # ---- tracking -------------------------------------------------------------------------

    def _start_tracking(self, req: Request, rgb, scene, answer, seq: int) -> dict[int, int]:
        from gear_edge.tracker import Tracker

        tr = Tracker(self.pipeline, min_iou=float(self._p("track_min_iou")),
                     min_appearance=float(self._p("track_min_appearance")))
        result = tr.adopt(rgb, req.query, scene, answer)
        with self._lock:
            self._tracker, self._track_req = tr, {"id": req.id, "query": req.query}
            self._track_seq, self._track_due = seq, _now() + 1.0 / float(self._p("track_rate"))  # next tick due
            self._track_ready = _now()
        return {t.region_id: t.track_id for t in result.targets}

    def _track_step(self) -> None:
        with self._lock:
            tr, treq = self._tracker, self._track_req
        if tr is None or not self._pubs:
            return
        now = _now()
        if now < self._track_due:
            return
        # None: no new frame, or its depth is due (frames that queued while the tracker worked get
        # depth_wait from when it became free, not from their arrival)
        frame = self._pick_frame(self._track_seq, wait=False, since=self._track_ready)
        if frame is None:
            return
        period = 1.0 / float(self._p("track_rate"))
        # the next tick is due one period after this one was due (not after now), so a 15 Hz camera
        # and a 10 Hz rate give 10 tracked frames a second, not every second frame (7.5)
        self._track_seq, self._track_due = frame.seq, max(self._track_due + period, now - period)
        header, rgb = frame.header, frame.rgb
        depth, K = self._frame_inputs(header, rgb)
        kw = {} if depth is None or not self._perceive_takes_depth() else {"depth": depth, "intrinsics": K}
        r = tr.update(rgb, **kw)
        self._inc("tracked_frames", 1)
        if r.mode == "deduced":
            self._inc("rededuced", 1)
        if r.answer is not None:
            self._scene = None  # the tracker perceived this frame itself
        targets = []
        for t in r.targets:
            info = self._target_info(t.mask, None, depth, K)
            info.update(id=t.region_id, bbox=list(t.bbox), track_id=t.track_id)
            targets.append(info)
        mask = r.mask if r.mask is not None else np.zeros(rgb.shape[:2], bool)
        self._publish_outputs(header, rgb, None, None, mask, targets, depth, K, label=treq["query"])
        frame = {"stamp": {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}, "frame_id": header.frame_id}
        import gear_edge.masks as gm

        note = self._no_depth_note(depth)
        out = {"request_id": treq["id"], "query": treq["query"], "frame": frame, "mode": r.mode, "reason": r.reason,
               "message": note, "targets": [{k: v for k, v in t.items() if k not in ("mask", "points")} for t in targets],
               "mask": gm.encode(np.asfortranarray(mask)) if mask.any() else None, "timings": r.timings}
        self._pubs["tracked"].publish(String(data=json.dumps(out)))
        self._track_ready = _now()

    # ---- diagnostics ----------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = _now()
        with self._lock:
            times = [t for t in self._frame_times if now - t <= 2.0]
            lat = sorted(self._latencies)
            delays = sorted(self._delays)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        st = DiagnosticStatus()
        st.name, st.hardware_id = f"{self.get_name()}: gear_edge", "gear_edge"
        loaded = self.pipeline is not None
        st.level = DiagnosticStatus.OK if self._active else DiagnosticStatus.WARN
        st.message = f"{self._state_name}; models {'loaded' if loaded else 'not loaded'}"

        def pct(q):
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

        values = {"state": self._state_name, "models_loaded": loaded, "fps_in": round(fps, 2),
                  "queue": len(self._queue) if self._queue is not None else 0,
                  "latency_p50_ms": round(pct(0.5), 1), "latency_p90_ms": round(pct(0.9), 1),
                  "input_delay_p50_ms": round(delays[len(delays) // 2], 1) if delays else 0.0,
                  "input_delay_max_ms": round(delays[-1], 1) if delays else 0.0,
                  "max_queue": int(self._p("max_queue")), "tracking": self._track_req is not None, "rejections": json.dumps(self.rejections), **self.stats}
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray()
        msg.header = Header()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [st]
        self._diag_pub.publish(msg)


def _mask_bbox(mask: np.ndarray) -> list[float]:
    """XYWH pixels of a bool mask (zeros when empty)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def run(config: str | None = None, overrides: list[str] | None = None, args: list[str] | None = None,
        threads: int = 4) -> int:
    """Starts the node, configures and activates it, spins a multi-threaded executor until
    Ctrl-C / SIGTERM / the lifecycle ``shutdown`` transition; returns 0 (1 if configure failed)."""
    import sys

    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.parameter import Parameter

    rclpy.init(args=[sys.argv[0], *(args or [])])
    params = []
    if config is not None:
        params.append(Parameter("config", value=config))
    if overrides:
        params.append(Parameter("overrides", value=list(overrides)))
    node = GearSegNode(parameter_overrides=params)
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    code = 0
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error("gear_edge node failed to configure (see above)")
            code = 1
        else:
            node.trigger_activate()
            while rclpy.ok() and not node.shutdown_requested.is_set():
                executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node._stop_worker("process is exiting")
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return code
