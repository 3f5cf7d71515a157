"""The benchmark scripts run end to end and write well-formed JSON (no timing assertions here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_masks_quick(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_masks.py"), "--quick", "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["machine"]["cpu_count"] >= 1
    results = data["results"]
    for op in ("encode", "decode", "area", "bbox", "iou", "merge", "postprocess", "crops_constant"):
        assert op in results, f"missing op {op}"
        entry = results[op]
        for side in ("reference", "ours_1_thread", "ours_2_threads"):
            assert entry[side]["p50_ms"] > 0, (op, side)
        assert entry["ratio_1_thread"] > 0
        assert isinstance(entry["targets_met"], bool)
    assert isinstance(data["all_targets_met"], bool)


def test_bench_scene_smoke(tmp_path):
    """bench_scene on one held-out scene (RGB and exact masks + depth): the report's fields exist."""
    out = tmp_path / "scene.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scene.py"), "--scenes", "1", "--configs", "rgb", "exact_rgbd",
         "--timing-scenes", "1", "--timing-repeats", "1", "--overlays", "", "--plot", "", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    data = json.loads(out.read_text())
    rgb, ex = data["configs"]["rgb"], data["configs"]["exact_rgbd"]
    assert ex["recall@0.5"] == 1.0 and 0.0 <= rgb["recall@0.5"] <= 1.0
    assert ex["centroid_error_m"]["n"] >= 1 and ex["plane_error_mm"]["mean"] >= 0
    assert set(rgb["end_to_end"]["per_category"]) >= {"support"}
    assert data["timing"]["rgb_over_previous"] > 0 and data["timing"]["rgbd_over_rgb"] > 0


def _bench_captions(tmp_path, *args: str) -> dict:
    """bench_captions' JSON for ``args`` (no caption cost model: counts and answers only)."""
    out = tmp_path / "captions.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_captions.py"), *args, "--cost", "none", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return json.loads(out.read_text())


def test_bench_captions_smoke(tmp_path):
    """bench_captions on one scene, every part, a short tracked session: every answer matches the
    reference (captioning every region, comparing every candidate) and on demand never captions more."""
    data = _bench_captions(tmp_path, "--scenes", "1", "--frames", "4", "--rededuce", "2")
    for part in ("cold", "ranked", "scene_session", "tracked_session"):
        s = data["summary"][part]
        assert s["identical"] is True, (part, s)
        assert 0 <= s["captioned_on_demand"] <= s["captioned_all"], (part, s)
    assert data["summary"]["cold"]["same_chain_as_up_front"] is True
    assert set(data["cold_by_category"]) == {"colour", "position", "relation", "noun", "colour_noun", "position_noun",
                                             "relation_noun", "purpose"}


def test_bench_captions_scene_queries_smoke(tmp_path):
    """bench_captions on bench_scene's tabletops and queries (one scene, cold + session): the same targets
    as captioning every region; "the table" and colour / position queries caption nothing."""
    data = _bench_captions(tmp_path, "--queries", "scene", "--scenes", "1", "--skip", "tracked")
    for part in ("cold", "scene_session"):
        assert data["summary"][part]["identical"] is True, data["summary"][part]
    rows = data["rows"]
    assert rows and all(0 <= r["captioned_on_demand"] <= r["captioned_all"] for r in rows)
    assert all(r["captioned_on_demand"] == 0 for r in rows if r["category"] in ("support", "colour", "ordinal")), rows
