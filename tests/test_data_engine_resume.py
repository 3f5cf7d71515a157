"""Kill-and-resume: the data engine subprocess is SIGKILLed at random points (while starting, between
and during image records, while writing the final files or the YOLO export), resumed each time, and
must end with exactly the records (and export labels) of an uninterrupted run — none lost, none
duplicated.

Real pipeline (default profile) on real photos, downscaled so that one run takes a few seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from gear_edge.data_engine.journal import read_records
from tests.data_engine_helpers import PHOTOS, REPO, engine_cmd, engine_env, run_engine, write_photos

pytest.importorskip("skimage")

FINAL = ("annotations.json", "pairs.jsonl", "rejected.jsonl")
ARGS = ("--per-class", "2", "--seed", "5", "--export", "yolo")


def _image_records(out):
    records, _ = read_records(out / "journal.jsonl")
    return [r for r in records if r["type"] == "image"]


def _export_files(out) -> dict[str, bytes]:
    root = out / "exports" / "yolo"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "data.yaml"}


def _done(out) -> int:
    return len(_image_records(out)) if (out / "journal.jsonl").exists() else 0


def _kill_at(images, out, rng: random.Random, at_record: int | None) -> str:
    """Starts a run and SIGKILLs it at a random time (``at_record`` None) or a little after the journal
    holds ``at_record`` image records (mid-image, mid-write, or finalising); returns where it was aimed."""
    proc = subprocess.Popen(engine_cmd(images, out, *ARGS), cwd=REPO, env=engine_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if at_record is None:  # anywhere: imports, model loading, the first images
            delay = rng.uniform(0.2, 2.5)
            where = f"after {delay:.2f} s"
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
        else:
            extra = rng.uniform(0.0, 0.15)
            where = f"after record {at_record} + {extra:.3f} s"
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline and _done(out) < at_record:
                time.sleep(0.002)
            time.sleep(extra)
        if proc.poll() is not None:
            return where + " (the run had already finished)"
        os.kill(proc.pid, signal.SIGKILL)
        return where + f" ({_done(out)} records)"
    finally:
        proc.wait(timeout=60)


def test_sigkill_at_random_points_then_resume_equals_uninterrupted_run(tmp_path):
    images = tmp_path / "images"
    names = write_photos(images, PHOTOS, width=96)
    ref = tmp_path / "ref"
    run_engine(images, ref, *ARGS)
    want = {n: (ref / n).read_bytes() for n in FINAL}
    assert len(_image_records(ref)) == len(names)
    assert json.loads((ref / "summary.json").read_text())["pairs_kept"] > 20

    out = tmp_path / "killed"
    rng = random.Random(20240611)
    n = len(names)
    log = [_kill_at(images, out, rng, None)]
    for _ in range(3):  # progressively later points inside the image loop
        have = min(_done(out) + 1, n)
        log.append(_kill_at(images, out, rng, rng.randint(have, max(have, (have + n) // 2))))
    # a write cut off in the middle of a record (what SIGKILL during os.write leaves)
    if (out / "journal.jsonl").exists() and _done(out) < n:
        line = (ref / "journal.jsonl").read_bytes().splitlines()[1]
        with open(out / "journal.jsonl", "ab") as f:
            f.write(line[: len(line) // 2])
        log.append("appended half a record")
    log.append(_kill_at(images, out, rng, n))  # all images done: killed while writing the final files
    proc = run_engine(images, out, *ARGS)

    got = {n: (out / n).read_bytes() for n in FINAL}
    for name in FINAL:
        assert got[name] == want[name], f"{name} differs after kills at: {log}\n{proc.stdout}"
    print("killed:", "; ".join(log), "| resumed:", proc.stdout.splitlines()[0])
    recs = _image_records(out)
    assert sorted(r["file_name"] for r in recs) == sorted(names), f"lost or duplicated image records: {log}"
    s_ref = json.loads((ref / "summary.json").read_text())
    s_out = json.loads((out / "summary.json").read_text())
    for key in ("images", "pairs_kept", "pairs_rejected", "by_class", "files"):
        assert s_out[key] == s_ref[key], key
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    assert _export_files(out) == _export_files(ref) and len(_export_files(ref)) == 2 * len(names)
    assert sorted(p.name for p in (out / "exports").iterdir()) == ["yolo"], "export build folders left behind"
