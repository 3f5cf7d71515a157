"""``gear-edge bench``: the loop and per-stage latencies of the default profile, as strict JSON + PNG."""

from __future__ import annotations

import json

from gear_edge.cli import main


def _no_nan(token: str):
    raise AssertionError(f"bench JSON holds {token}, which is not JSON")


def test_bench_writes_loop_stages_versions_and_model_hashes(tmp_path):
    out = tmp_path / "bench"
    rc = main(["bench", "--images", "tabletop", "--iterations", "1", "--warmup", "0", "--out", str(out),
               "--query", "the red object", "--query", "the largest object"])
    assert rc == 0
    result = json.loads((out / "bench_pipeline.json").read_text(), parse_constant=_no_nan)
    pipe = result["pipeline"]
    for key in ("perceive", "ask_cold", "ask_warm", "segment_total"):
        stats = pipe["loop"][key]
        assert stats["n"] >= 1 and 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert {"segment", "describe.geometry", "perceive"} <= set(pipe["stages"])
    # program-mode queries the parser resolves never reach the LLM: no token counts, said as null
    assert pipe["tokens"] == {"cold_prompt_tokens_evaluated": None, "warm_prompt_tokens_evaluated": None}
    roles = {m["role"] for m in pipe["model_hashes"]}
    assert {"segmenter", "ocr", "deducer.llm", "deducer.embedder"} <= roles, pipe["model_hashes"]
    assert all(len(m["sha256"]) == 64 for m in pipe["model_hashes"])
    assert result["machine"]["versions"]["numpy"]
    assert pipe["peak_rss_mb"] > 0
    loads = {r["component"]: r for r in pipe["model_loads"]}  # GearSeg.load(): every model, time + memory
    assert {"segmenter", "deducer"} <= set(loads) and all(r["load_ms"] >= 0 for r in loads.values())
    llm = pipe["llm"]  # the deducer LLM: load, a new phrase, the same phrase again from the cache
    if "skipped" not in llm:
        assert llm["load_ms"] > 0 and llm["new_phrase_ms"] > 0 and llm["cached"] is True
        assert llm["cached_ms"] < llm["new_phrase_ms"] and llm["program_llm"] == "auto"
    assert (out / "bench_pipeline.png").stat().st_size > 1000
