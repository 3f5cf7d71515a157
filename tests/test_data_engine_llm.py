"""The data engine with the LLM question writer (SmolLM2 under the scene grammar): LLM candidates are
verified like the template ones, and a run killed after its first image resumes to the same records
(the LLM decodes greedily with a fixed seed; the scene prefix cache does not change its output).
Slow: the LLM evaluates each scene's prompt on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from gear_edge.data_engine.journal import read_records
from gear_edge.data_engine.verify import REASONS
from tests.data_engine_helpers import REPO, engine_cmd, engine_env, run_engine, write_photos

pytest.importorskip("llama_cpp", reason="the LLM writer needs llama-cpp-python (the [llm] extra)")
pytest.importorskip("skimage")

ARGS = ("--per-class", "1", "--llm-questions", "2")


@pytest.mark.slow
def test_llm_questions_are_verified_and_resume_identically(tmp_path):
    images = tmp_path / "images"
    write_photos(images, ("coffee", "rocket"), width=96)
    ref = tmp_path / "ref"
    run_engine(images, ref, *ARGS, timeout=900)
    records = [r for r in read_records(ref / "journal.jsonl")[0] if r["type"] == "image"]
    llm = [c for r in records for c in r["pairs"] + r["rejected"] if c["writer"] == "llm"]
    assert len(llm) == 4  # 2 per image
    for c in llm:
        assert c["template"].startswith("llm.") and c["question"]
        assert c.get("reason", "agree") in REASONS
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["by_writer"]["llm"]["kept"] + summary["by_writer"]["llm"]["rejected"] == 4

    out = tmp_path / "killed"
    proc = subprocess.Popen(engine_cmd(images, out, *ARGS), cwd=REPO, env=engine_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "journal.jsonl").exists() and any(r["type"] == "image" for r in read_records(out / "journal.jsonl")[0]):
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    run_engine(images, out, *ARGS, timeout=900)
    for name in ("annotations.json", "pairs.jsonl", "rejected.jsonl"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
