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
