"""The robot loop, cross-process: the node (``gear-edge ros``) in its own process, this process as
the client (rclpy, stock Fast DDS, the node's default QoS unless said otherwise) -> JSON.

Measures (numbers in the JSON, targets of issue 17 next to them):
* frames lost at 15 Hz, 640x480 rgb8: default (reliable) vs best-effort subscriber + publisher;
* a burst of 50 requests: answered / rejected with a reason / lost;
* lifecycle ``get_state`` latency while an LLM query runs (polled every 20 ms during the query);
* the first request after activation vs the p50 of later ones (each on a fresh frame:
  perceive + ask), request -> result p50 / p90;
* 3D centroid error on synthetic RGB-D tabletops (pinhole camera over a plane with boxes, objects
  at ~1 m; depth uint16 mm with 2 mm noise): the published centroid vs the mean of the target's
  true visible surface points and vs the true object centre, in the camera frame;
* tracking (library Tracker) on 60-frame sequences, target moving <= 20 px/frame among
  distractors: IoU >= 0.8 share, identity kept, per-frame cost vs perceive + ask measured side by
  side in the same run; and the node's tracked-frame rate for a tracked request.

The scenes and queries here are written for this benchmark (not the unit tests' fixtures).

    python benchmarks/bench_ros.py --out results/bench_ros.json [--quick]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine_info, percentiles, write_json  # noqa: E402

H, W = 480, 640
K = np.array([[615.0, 0, 319.5], [0, 615.0, 239.5], [0, 0, 1]])

# ---- synthetic RGB-D tabletops (a pinhole camera over a plane with boxes) ----------------------


def look_at(cam: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R_wc: columns = camera x (right), y (down), z (forward) in world coordinates (z up)."""
    z = target - cam
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def render(boxes: list[dict], cam: np.ndarray, target: np.ndarray, rng, *, table_rgb=(150, 120, 90)):
    """(rgb uint8, depth uint16 mm with noise, masks {name: bool}, truths {name: (surface mean, centre)})."""
    r_wc = look_at(cam, target)
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
    d = d_cam @ r_wc.T
    t_best = np.where(d[..., 2] < -1e-9, -cam[2] / np.where(d[..., 2] < -1e-9, d[..., 2], -1), np.inf)
    label = np.full((H, W), -1, np.int32)  # -1 table (or sky), k box
    normal = np.zeros((H, W, 3))
    normal[..., 2] = 1
    for k, b in enumerate(boxes):
        lo = np.array([b["x"] - b["sx"] / 2, b["y"] - b["sy"] / 2, 0.0])
        hi = np.array([b["x"] + b["sx"] / 2, b["y"] + b["sy"] / 2, b["sz"]])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - cam) / d
            t2 = (hi - cam) / d
        tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (tmax >= tmin) & (tmin > 0) & (tmin < t_best)
        t_best = np.where(hit, tmin, t_best)
        label[hit] = k
        axis = np.argmax(np.isclose(np.minimum(t1, t2), tmin[..., None]), axis=-1)
        for a in range(3):
            n = np.zeros(3)
            n[a] = -np.sign(d[..., a][hit & (axis == a)].mean()) if (hit & (axis == a)).any() else 1
            normal[hit & (axis == a)] = n
    depth_m = np.where(np.isfinite(t_best), t_best, 0.0)  # z_cam = t because d_cam has z = 1
    light = np.array([0.3, -0.4, 0.87])
    shade = np.clip(0.45 + 0.55 * (normal @ light), 0.3, 1.0)
    rgb = np.empty((H, W, 3))
    tex = cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), 3) * 25
    rgb[:] = np.array(table_rgb, np.float64)
    rgb += tex[..., None]
    truths = {}
    masks = {}
    for k, b in enumerate(boxes):
        m = label == k
        masks[b["name"]] = m
        rgb[m] = np.array(b["rgb"], np.float64) * shade[m][:, None]
        pts = d_cam[m] * depth_m[m][:, None]
        truths[b["name"]] = (pts.mean(0), (np.array([b["x"], b["y"], b["sz"] / 2]) - cam) @ r_wc)
    rgb += rng.normal(0, 4, rgb.shape)
    noisy = depth_m + rng.normal(0, 0.002, depth_m.shape)
    depth_mm = np.where(depth_m > 0, np.clip(np.round(noisy * 1000), 1, 65535), 0).astype(np.uint16)
    return np.clip(rgb, 0, 255).astype(np.uint8), depth_mm, masks, truths


RGBD_SCENES = [  # (boxes, the query, the target) - objects ~1 m from the camera
    ([{"name": "mug", "x": 0.0, "y": 0.05, "sx": 0.09, "sy": 0.09, "sz": 0.11, "rgb": (200, 35, 30)},
      {"name": "book", "x": -0.2, "y": -0.05, "sx": 0.15, "sy": 0.22, "sz": 0.04, "rgb": (40, 80, 190)},
      {"name": "can", "x": 0.22, "y": 0.0, "sx": 0.07, "sy": 0.07, "sz": 0.12, "rgb": (60, 160, 60)}],
     "grab the red one", "mug"),
    ([{"name": "box", "x": 0.05, "y": 0.0, "sx": 0.12, "sy": 0.1, "sz": 0.08, "rgb": (40, 80, 190)},
      {"name": "brick", "x": -0.18, "y": 0.08, "sx": 0.1, "sy": 0.05, "sz": 0.05, "rgb": (220, 200, 40)}],
     "pick up the blue box", "box"),
    ([{"name": "left", "x": -0.15, "y": 0.0, "sx": 0.08, "sy": 0.08, "sz": 0.1, "rgb": (60, 160, 60)},
      {"name": "right", "x": 0.15, "y": 0.02, "sx": 0.08, "sy": 0.08, "sz": 0.1, "rgb": (200, 35, 30)}],
     "the green object please", "left"),
]
CAM = np.array([0.0, -0.85, 0.55])
LOOK = np.array([0.0, 0.0, 0.05])


# ---- tracking sequences ----------------------------------------------------------------------------


def tracking_sequence(seed: int, n: int = 60):
    """Frames where the target moves <= 20 px/frame (smooth random path) among distractors, one of
    them the target's colour family; yields (rgb, target mask)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), 6) * 30 + 120
    base = np.repeat(base[..., None], 3, axis=2) + np.array([10, 0, -10])
    target_rgb = np.array([(210, 40, 35), (35, 90, 210), (40, 170, 60)][seed % 3], np.float64)
    other = np.roll(target_rgb, 1)
    pos = np.array([120.0, 200.0])
    vel = np.array([9.0, 4.0])
    dpos = np.array([500.0, 120.0])
    for k in range(n):
        vel = np.clip(vel + rng.normal(0, 2.0, 2), -13, 13)
        if not 70 < pos[0] + vel[0] < W - 70:
            vel[0] *= -1
        if not 70 < pos[1] + vel[1] < H - 70:
            vel[1] *= -1
        pos = pos + vel
        dpos = dpos + np.array([-6.0, 3.0 * np.sin(k / 5)])
        img = base + rng.normal(0, 5, base.shape)
        yy, xx = np.mgrid[:H, :W]
        same = (xx - 480) ** 2 / 40**2 + (yy - 380) ** 2 / 30**2 <= 1  # same colour family, static
        img[same] = target_rgb * 0.8 + 20
        dis = (np.abs(xx - dpos[0]) < 35) & (np.abs(yy - dpos[1]) < 35)  # moving, another colour
        img[dis] = other
        tgt = (np.abs(xx - pos[0]) < 50) & (np.abs(yy - pos[1]) < 38)
        tgt &= ~(((xx - pos[0]) / 50) ** 2 + ((yy - pos[1]) / 38) ** 2 > 1.7)  # a rounded box
        img[tgt] = target_rgb * (0.9 + 0.1 * (yy[tgt] - yy[tgt].min()) / 80)[:, None]
        yield np.clip(img, 0, 255).astype(np.uint8), tgt


# the target as people name it; "follow it" is the request's track flag, not words in the query
TRACK_QUERIES = ["the {c} box on the left", "that {c} thing on the left", "the {c} object at the top left"]
# the first phrasings written for this benchmark put the tracking verb into the query; the parser
# does not cover those verbs (issue 16's area), so they are reported separately, not tracked
VERB_QUERIES = ["follow the {c} box", "keep an eye on the {c} thing", "track the big {c} object"]
COLOUR = ["red", "blue", "green"]


def bench_tracking(n_frames: int, n_seq: int) -> dict:
    from gear_edge.pipeline import GearSeg
    from gear_edge.tracker import Tracker

    gs = GearSeg.from_config("default", {"describe.ocr": "false"})
    warm = next(tracking_sequence(99, 1))[0]
    gs.ask(gs.perceive(warm), "the red object")
    out = []
    for seq in range(n_seq):
        query = TRACK_QUERIES[seq % len(TRACK_QUERIES)].format(c=COLOUR[seq % 3])
        tr = Tracker(gs)
        ious, costs, full, modes, ids = [], [], [], [], []
        for k, (img, truth) in enumerate(tracking_sequence(seq, n_frames)):
            t0 = time.perf_counter()
            r = tr.start(img, query) if k == 0 else tr.update(img)
            dt = time.perf_counter() - t0
            if k > 0:
                costs.append(dt)
                modes.append(r.mode)
            m = r.mask
            ious.append(float((m & truth).sum() / (m | truth).sum()) if m is not None else 0.0)
            ids.append(tuple(t.track_id for t in r.targets))
            if k % 6 == 3:  # perceive + ask on the same frame, side by side
                t0 = time.perf_counter()
                gs.ask(gs.perceive(img), query)
                full.append(time.perf_counter() - t0)
        ious_a = np.array(ious)
        out.append({"query": query, "frames": n_frames, "iou_ge_0.8": float((ious_a >= 0.8).mean()),
                    "iou_mean": float(ious_a.mean()), "iou_min": float(ious_a.min()),
                    "first_frame_iou": ious[0], "identity_kept": len(set(ids[1:])) == 1 and ids[1] == ids[0],
                    "rededuced": modes.count("deduced"), "per_frame": percentiles(costs),
                    "perceive_ask": percentiles(full),
                    "cost_ratio_mean": float(np.mean(costs) / np.mean(full))})
    allf = np.concatenate([[s["iou_ge_0.8"]] * s["frames"] for s in out])
    verbs = []
    for seq in range(n_seq):
        img, truth = next(tracking_sequence(seq, 1))
        scene = gs.perceive(img)
        for q in VERB_QUERIES:
            q = q.format(c=COLOUR[seq % 3])
            a = gs.ask(scene, q)
            m = a.bitmap(scene.image_size)
            verbs.append({"query": q, "iou": float((m & truth).sum() / (m | truth).sum())})
    return {"sequences": out, "verb_in_query_first_frame": verbs, "iou_ge_0.8_all": float(allf.mean()),
            "cost_ratio_mean": float(np.mean([s["cost_ratio_mean"] for s in out])),
            "target": "IoU >= 0.8 on >= 95% of frames; per-frame cost <= 1/3 of perceive + ask"}


# ---- the node ------------------------------------------------------------------------------------


class NodeProcess:
    def __init__(self, *ros_args: str, config_set: tuple[str, ...] = ("describe.ocr=false",)) -> None:
        self.ns = f"/bench_{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "gear_edge.cli", "ros"]
        for s in config_set:
            cmd += ["--set", s]
        cmd += ["--ros-args", "-r", f"__ns:={self.ns}", *ros_args]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return {"exit_code": self.proc.returncode, "traceback": "Traceback" in err}


def node_stats(diags) -> dict:
    return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}


def publish_at(client, frames, hz: float, **kw) -> list:
    t0 = time.monotonic()
    stamps = []
    for k, f in enumerate(frames):
        stamps.append(client.publish_frame(f, **kw))
        time.sleep(max(0.0, t0 + (k + 1) / hz - time.monotonic()))
    return stamps


def frames_lost(reliability: str, n: int) -> dict:
    import rclpy  # noqa: F401
    from diagnostic_msgs.msg import DiagnosticArray

    from gear_edge.ros.client import GearSegClient

    node = NodeProcess("-p", f"image_reliability:={reliability}", "-p", "warmup_llm:=false")
    client = GearSegClient(name=f"bench_frames_{reliability}", namespace=node.ns, image_reliability=reliability)
    diags = client.subscribe(DiagnosticArray, "diagnostics")
    client.spin_in_background()
    try:
        assert client.wait_for_node(120), "node did not start"
        assert client.wait_for(lambda: bool(diags), 10)
        before = int(node_stats(diags)["frames"])
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(4)]
        publish_at(client, [frames[k % 4] for k in range(n)], 15.0)
        time.sleep(2.0)
        st = node_stats(diags)
        got = int(st["frames"]) - before
        return {"qos": reliability, "sent": n, "received": got, "lost": n - got,
                "arrival_delay_p50_ms": float(st["input_delay_p50_ms"]), "arrival_delay_max_ms": float(st["input_delay_max_ms"]),
                **node.stop()}
    finally:
        client.close()
        if node.proc.poll() is None:
            node.proc.kill()


def bench_node(quick: bool) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PointStamped
    from lifecycle_msgs.srv import GetState

    from gear_edge.ros.client import GearSegClient

    res: dict = {}
    node = NodeProcess("-p", "max_queue:=16", "-p", "track_rate:=10.0")
    client = GearSegClient(name="bench_client", namespace=node.ns)
    diags = client.subscribe(DiagnosticArray, "diagnostics")
    points = client.subscribe(PointStamped, "target_point")
    client.spin_in_background()
    try:
        assert client.wait_for_node(180), "node did not start"
        res["startup_s_incl_model_load_and_warmup"] = time.monotonic() - node.t0
        rng = np.random.default_rng(1)
        # first request vs later ones: each on a fresh RGB-D frame (perceive + ask)
        lat, first = [], None
        n_req = 6 if quick else 14
        for k in range(n_req):
            boxes, query, name = RGBD_SCENES[k % len(RGBD_SCENES)]
            rgb, depth, masks, truths = render(boxes, CAM, LOOK, rng)
            client.publish_frame(rgb, depth=depth, K=K)
            time.sleep(0.2)
            t0 = time.perf_counter()
            r = client.request(query, timeout=120)
            dt = time.perf_counter() - t0
            if first is None:
                first = dt
            else:
                lat.append(dt)
        p = percentiles(lat)
        res["first_request_ms"] = first * 1e3
        res["later_requests"] = p
        res["first_over_p50"] = first * 1e3 / p["p50_ms"]
        # 3D centroid error (published centroid vs truths), every scene, several phrasings
        errs = []
        phrasings = {"mug": ["grab the red one", "the red mug", "hand me the red thing"],
                     "box": ["pick up the blue box", "the blue object", "get me the blue one"],
                     "left": ["the green object please", "the green one", "grab the green thing"]}
        from gear_edge.camera import CameraIntrinsics, backproject, depth_to_metres, robust_centroid

        own = []  # the 3D step alone: the same measurement on the true mask (segmentation excluded)
        for boxes, _, name in RGBD_SCENES:
            rgb, depth, masks, truths = render(boxes, CAM, LOOK, rng)
            pts = backproject(depth_to_metres(depth, (H, W)), CameraIntrinsics.from_matrix(K), masks[name])
            own.append(float(np.linalg.norm(robust_centroid(pts) - truths[name][0])))
            client.publish_frame(rgb, depth=depth, K=K, frame_id="camera_color_optical_frame")
            time.sleep(0.3)
            for q in phrasings[name][: 1 if quick else 3]:
                r = client.request(q, timeout=120, max_frame_age=30)
                surf, centre = truths[name]
                tgt = r.get("targets") or []
                if r["status_name"] != "OK" or len(tgt) != 1 or tgt[0]["centroid_3d"] is None:
                    errs.append({"query": q, "status": r["status_name"], "targets": len(tgt), "error_surface_m": None})
                    continue
                c = np.array(tgt[0]["centroid_3d"])
                ys, xs = np.nonzero(masks[name])
                mask_iou = None
                if r.get("answer") and r["answer"].get("mask"):
                    import gear_edge.masks as gm

                    mask_iou = float(gm.iou([r["answer"]["mask"]], [gm.encode(masks[name])])[0, 0])
                errs.append({"query": q, "status": "OK", "mask_iou": mask_iou, "distance_m": float(np.linalg.norm(surf)),
                             "error_surface_m": float(np.linalg.norm(c - surf)),
                             "error_centre_m": float(np.linalg.norm(c - centre)),
                             "frame_id": r["frame"]["frame_id"]})
        ok = [e for e in errs if e["error_surface_m"] is not None]
        res["centroid_3d"] = {
            "queries": errs, "answered": len(ok), "asked": len(errs),
            "max_error_vs_visible_surface_mean_m": max((e["error_surface_m"] for e in ok), default=None),
            "max_error_vs_object_centre_m": max((e["error_centre_m"] for e in ok), default=None),
            "published_point_frame": points[-1].header.frame_id if points else None,
            "error_on_true_mask_vs_visible_surface_mean_m": own,
            "centroid_definition": "node without an RGB-D perceive: trimmed mean of the target mask's back-projected "
                                   "points (visible surface); object centre = true 3D box centre",
            "target": "<= 0.01 m at 1 m; in the camera frame",
        }
        # a burst of 50 requests
        rgb, depth, _, _ = render(RGBD_SCENES[0][0], CAM, LOOK, rng)
        client.publish_frame(rgb, depth=depth, K=K)
        time.sleep(0.3)
        ids = [client.send_request(RGBD_SCENES[0][1], max_frame_age=120) for _ in range(50)]
        client.wait_for(lambda: all(i in client.replies for i in ids), 180)
        names = [client.replies[i]["status_name"] if i in client.replies else "LOST" for i in ids]
        res["burst_50"] = {s: names.count(s) for s in sorted(set(names))}
        res["burst_50"]["lost"] = names.count("LOST")
        res["burst_50"]["rejections_have_reason"] = all(
            client.replies[i]["message"] for i in ids if i in client.replies and client.replies[i]["status_name"] != "OK")
        # get_state while an LLM query runs
        get_state = client.create_client(GetState, f"{node.ns}/gear_edge/get_state")
        assert get_state.wait_for_service(10)
        gs_lat = []
        for q in ["hand me something to drink from", "give me something I can write with"][: 1 if quick else 2]:
            client.publish_frame(rgb, depth=depth, K=K)
            time.sleep(0.2)
            rid = client.send_request(q, max_frame_age=120)
            t_q = time.perf_counter()
            while rid not in client.replies and time.perf_counter() - t_q < 120:
                t0 = time.perf_counter()
                fut = get_state.call_async(GetState.Request())
                while not fut.done() and time.perf_counter() - t0 < 10:
                    time.sleep(0.001)
                gs_lat.append(time.perf_counter() - t0)
                time.sleep(0.02)
            reply = client.replies.get(rid, {})
            steps = [s["text"] for s in (reply.get("answer") or {}).get("steps", [])]
            res.setdefault("llm_queries", []).append({
                "query": q, "duration_ms": (time.perf_counter() - t_q) * 1e3, "used_llm": any("LLM" in s for s in steps),
                "status": reply.get("status_name")})
        res["get_state_during_llm"] = {**percentiles(gs_lat), "max_ms": float(np.max(gs_lat) * 1e3),
                                       "target": "<= 50 ms"}
        # a tracked request re-answered on new frames
        seq = list(tracking_sequence(7, 45))
        client.publish_frame(seq[0][0])
        time.sleep(0.2)
        r = client.request(f"the {COLOUR[7 % 3]} box on the left", track=True, timeout=120, max_frame_age=30)
        n0 = len(client.tracked)
        t0 = time.monotonic()
        stamps = publish_at(client, [f for f, _ in seq[1:]], 15.0)
        t_pub = time.monotonic() - t0  # the frames' span (the rate is tracked frames over it)
        time.sleep(1.0)
        keyed = {(s.sec, s.nanosec): m for s, (_, m) in zip(stamps, seq[1:])}
        got = [m for m in client.tracked[n0:] if (m["frame"]["stamp"]["sec"], m["frame"]["stamp"]["nanosec"]) in keyed]
        import gear_edge.masks as gm

        ious = [float(gm.iou([m["mask"]], [gm.encode(keyed[(m["frame"]["stamp"]["sec"], m["frame"]["stamp"]["nanosec"])])])[0, 0])
                if m["mask"] else 0.0 for m in got]
        res["node_tracking"] = {"status": r["status_name"] if r else None, "frames_published": len(seq) - 1,
                                "frames_tracked": len(got), "rate_hz": len(got) / t_pub,
                                "configured_rate_hz": 10.0, "iou_ge_0.8": float(np.mean([i >= 0.8 for i in ious])) if ious else None,
                                "track_ids": sorted({t["track_id"] for m in got for t in m["targets"]}),
                                "rededuced": sum(m["mode"] == "deduced" for m in got)}
        res["diagnostics_last"] = node_stats(diags)
        res["exit"] = node.stop()
    finally:
        client.close()
        if node.proc.poll() is None:
            node.proc.kill()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/bench_ros.json")
    ap.add_argument("--quick", action="store_true", help="fewer frames / requests / sequences")
    ap.add_argument("--skip", action="append", default=[], choices=["frames", "node", "tracking"])
    args = ap.parse_args()
    import rclpy

    result = {"machine": machine_info(("ros-rclpy", "ros-fastdds", "llama-cpp-python")),
              "note": "shared box: 2 CPU cores, other engineers' jobs running; timings are noisy, ratios are side by side"}
    rclpy.init()
    try:
        if "frames" not in args.skip:
            n = 45 if args.quick else 150
            result["frames_15hz_640x480_rgb8"] = {"default_reliable": frames_lost("reliable", n),
                                                  "best_effort": frames_lost("best_effort", n),
                                                  "target": "0 lost with default settings"}
            print("frames", result["frames_15hz_640x480_rgb8"], flush=True)
        if "node" not in args.skip:
            result["node"] = bench_node(args.quick)
            print("node", {k: v for k, v in result["node"].items() if k != "centroid_3d"}, flush=True)
    finally:
        rclpy.shutdown()
    if "tracking" not in args.skip:
        result["tracking"] = bench_tracking(60, 1 if args.quick else 3)
        print("tracking", {k: v for k, v in result["tracking"].items() if k != "sequences"}, flush=True)
    print("wrote", write_json(args.out, result))


if __name__ == "__main__":
    main()
