"""The production path end to end: SAM2 engines + OCR + captioner + LLM, through the CLI and the ROS node.

Random-initialised SAM2.1-tiny and the tiny random captioner (tests/production_models.py, the
exporters' own code) run in ``gear-edge demo --config <sam2 profile>`` in both deduce modes and in
the ROS node built from the same profile. Random weights make the answers meaningless, so this
checks the wiring: every stage ran (its timing is there and positive), on the engine the config
names (providers recorded in the scene's and the answer's ``meta["engines"]``; every ONNX file
manifest-checked at load), the outputs are well-formed, and nothing was skipped silently (no
"skipped" step in a logic chain). Random SAM2 masks nearly all cover the image, so the profile keeps
every mask (thresholds 0, box NMS off) from a 2x2 click grid: 12 regions.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from tests.production_models import MISSING, SKIP_REASON, production_models

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
llama_cpp = pytest.importorskip("llama_cpp", reason="the LLM needs llama-cpp-python (the [llm] extra)")

CPU = ["CPUExecutionProvider"]
PERCEIVE_ENGINES = {"sam2.encoder", "sam2.decoder", "ocr.det", "ocr.rec", "ocr.cls", "captioner.vision_encoder",
                    "captioner.text_encoder", "captioner.decoder"}
QUERIES = ["the largest object", "something to write with"]  # exact filters only; a purpose (the LLM names objects)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    models = production_models(tmp_path_factory.mktemp("production"))
    path = tmp_path_factory.mktemp("profile") / "robot.toml"
    path.write_text(f"""profile = "sam2"
[segment.sam2]
encoder = "{models['encoder']}"
decoder = "{models['decoder']}"
points_per_side = 2
pred_iou_thresh = 0.0
stability_score_thresh = 0.0
box_nms_thresh = 1.0
[describe]
ocr = true
captioner = "{models['captioner']}"
[engines]
providers = ["cpu"]
[engines.captioner]
threads = 1
[deduce]
program_llm = "always"  # the production path asks the LLM (the default skips SmolLM2-135M in program mode)
""")
    return path


def _check_scene(scene: dict) -> None:
    regions = scene["regions"]
    assert len(regions) == 12, len(regions)
    captioned = [r for r in regions if r["caption"] is not None]
    assert len(captioned) == scene["meta"]["captions"]["captioned"] > 0
    for r in regions:
        assert r["caption"] is None or isinstance(r["caption"], str) and r["caption"].strip(), r["caption"]
        assert r["rle"]["size"] == scene["image_size"] and r["area"] > 0
    for stage in ("segment", "describe.geometry", "describe.ocr", "describe.captions", "perceive"):
        assert scene["timings"][stage] > 0, stage
    assert scene["meta"]["segmenter"] == "sam2-amg"
    assert scene["meta"]["engines"] == {k: CPU for k in PERCEIVE_ENGINES}


def _check_answer(answer: dict, ids: set[int], mode: str) -> None:
    assert "error" not in answer, answer
    assert answer["mode"] == mode and set(answer["targets"]) <= ids and answer["steps"]
    assert not [s["text"] for s in answer["steps"] if "skipped" in s["text"]], answer["steps"]
    assert answer["timings"]["ask"] > 0
    engines = answer["meta"]["engines"]  # what the deducer has loaded so far
    if mode == "program":
        assert engines["embedder.minilm"] == CPU
    if mode == "direct" or answer["completion_tokens"]:  # the program deducer loads the LLM on first need
        assert engines["llm.gguf"][0].startswith("llama.cpp:")
    if answer["targets"]:
        assert answer["mask"]["size"] == [400, 600]
    else:
        assert answer["mask"] is None


@pytest.mark.parametrize("mode", ["program", "direct"])
def test_demo_runs_every_stage_on_its_engine(profile, tmp_path, mode, capsys):
    from gear_edge.cli import main

    argv = ["demo", "--config", str(profile), "--set", f"deduce.mode={mode}", "--out", str(tmp_path)]
    for q in QUERIES:
        argv += ["--query", q]
    assert main(argv) == 0, capsys.readouterr().err
    scene = json.loads((tmp_path / "demo_coffee.scene.json").read_text())
    _check_scene(scene)
    answers = json.loads((tmp_path / "demo_coffee.answers.json").read_text())
    assert [a["query"] for a in answers] == QUERIES
    ids = {r["id"] for r in scene["regions"]}
    for a in answers:
        _check_answer(a, ids, mode)
    if mode == "program":  # the purpose query reached the LLM, and the LLM's words the embedder
        chain = " | ".join(s["text"] for s in answers[1]["steps"])
        assert "LLM (" in chain and "caption/text similarity" in chain, chain
        assert answers[1]["completion_tokens"] > 0
        # captions on demand: the exact query read none, the purpose query its candidates'
        assert answers[0]["meta"]["captioned_regions"] == 0 and answers[1]["meta"]["captioned_regions"] > 0
    else:
        assert all(a["prompt_tokens"] > 0 and a["completion_tokens"] > 0 for a in answers)
        assert [a["meta"]["captioned_regions"] for a in answers] == [12, 0]  # the LLM reads every line
    assert scene["meta"]["captions"]["calls"] == 1 and scene["meta"]["captions"]["ms"] == scene["timings"]["describe.captions"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["demo_coffee.q0.png", "demo_coffee.q1.png"]


def test_load_reports_every_model_with_its_manifest(profile):
    from gear_edge.pipeline import GearSeg

    gs = GearSeg.from_config(profile)
    reports = {r.component: r for r in gs.load()}
    assert list(reports) == ["segmenter", "ocr", "captioner", "embedder", "llm", "deducer"]
    assert not [r for r in reports.values() if r.skipped]
    engines = gs.parts.engines
    assert set(engines) == PERCEIVE_ENGINES | {"embedder.minilm"}
    for name, eng in engines.items():
        assert eng.manifest is not None and eng.manifest.sha256, f"{name} loaded without a manifest check"
        assert eng.providers == CPU
    assert engines["captioner.decoder"].session.get_session_options().intra_op_num_threads == 1
    assert engines["sam2.encoder"].session.get_session_options().intra_op_num_threads == 2
    assert reports["segmenter"].load_ms > 0 and set(reports["segmenter"].engines) == {"sam2.encoder", "sam2.decoder"}


def test_ros_node_on_the_production_profile(profile):
    rclpy = pytest.importorskip("rclpy", reason="the ROS 2 node needs rclpy (the [ros] extra)")
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from gear_edge.ros.client import GearSegClient
    from gear_edge.ros.node import GearSegNode

    rclpy.init()
    ns = f"/production_path_{os.getpid()}"  # never talk to another process's node on this DDS domain
    node = GearSegNode(namespace=ns, parameter_overrides=[Parameter("config", value=str(profile)), Parameter("warmup", value=False),
                                            Parameter("max_frame_age", value=600.0)])
    ex = MultiThreadedExecutor(num_threads=4)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    client = GearSegClient(namespace=ns)
    client.spin_in_background()
    try:
        assert client.wait_for_node(20) or client.request_pub.get_subscription_count() > 0
        assert node.trigger_configure().name == "SUCCESS" and node.trigger_activate().name == "SUCCESS"
        import skimage.data

        client.publish_frame(np.ascontiguousarray(skimage.data.coffee()), frame_id="camera")
        assert client.wait_for(lambda: node.stats["frames"] >= 1, 20)
        for q in QUERIES:
            r = client.request(q, timeout=300)
            assert r["status_name"] in ("OK", "NO_TARGET"), r  # random weights: an empty answer is an answer
            assert r["frame"]["frame_id"] == "camera"
            _check_answer(r["answer"], set(range(12)), "program")
        assert node.stats["perceived"] == 1  # one perception for both queries on the frame
    finally:
        client.close()
        ex.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.shutdown()
