"""gear_edge.assemble: one Config → the components, every ONNX model on the engines [engines] names.

The provider test asks for ``["cuda", "cpu"]`` with fallback allowed: on this CPU-only onnxruntime
every engine must have *asked* for CUDA first (``requested_providers``), warned that it is missing,
and run on the CPU with the configured threads — the wiring, checked without a GPU. SAM2 and the
captioner need exported files (the [export] extra); OCR and MiniLM come from their packages.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gear_edge.assemble import COMPONENTS, Assembly, LoadReport
from gear_edge.config import defaults, load_config
from gear_edge.deduce.base import Deducer
from gear_edge.describe.scene import RegionCaptioner, TextReader
from gear_edge.engines import available_providers
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.pipeline import GearSeg
from gear_edge.segment.base import Segmenter
from tests.production_models import MISSING, SKIP_REASON, production_models

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
HAVE = set(available_providers())


def _installed(fn):
    try:
        return fn()
    except MissingDependencyError as exc:
        pytest.skip(f"model package not installed: {exc}")


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    if MISSING:
        pytest.skip(SKIP_REASON)
    return production_models(tmp_path_factory.mktemp("production"))


def _cuda_cfg(**extra):
    over = {"engines.providers": '["cuda", "cpu"]', "engines.allow_fallback": "true", "runtime.threads": "1"}
    over.update(extra)
    return over


def _check_engine(name, eng, requested, threads):
    assert eng.requested_providers == requested, name
    assert eng.providers == [p for p in requested if p in HAVE], name
    assert eng.session.get_providers() == eng.providers, name
    assert eng.session.get_session_options().intra_op_num_threads == threads, name
    assert eng.manifest is not None, f"{name}: engine loaded without a manifest check"


def test_ocr_and_minilm_follow_engines_with_fallback():
    parts = Assembly(load_config("default", _cuda_cfg()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _installed(lambda: parts.ocr)
        _installed(lambda: parts.embedder)
    assert set(parts.engines) == {"ocr.det", "ocr.rec", "ocr.cls", "embedder.minilm"}
    for name, eng in parts.engines.items():
        _check_engine(name, eng, [CUDA, CPU], 1)
    if CUDA not in HAVE:  # one warning per engine names the provider it skipped
        skipped = [str(w.message) for w in caught if "skipping execution provider" in str(w.message)]
        assert len(skipped) == 4 and all("CUDAExecutionProvider" in m for m in skipped)


def test_per_model_overrides_win_over_engines():
    cfg = load_config("default", _cuda_cfg(**{"engines.ocr.providers": '["cpu"]', "engines.embedder.threads": "2"}))
    parts = Assembly(cfg)
    _installed(lambda: parts.ocr)
    _installed(lambda: parts.embedder)
    for role in ("det", "rec", "cls"):
        _check_engine(f"ocr.{role}", parts.engines[f"ocr.{role}"], [CPU], 1)
    _check_engine("embedder.minilm", parts.engines["embedder.minilm"], [CUDA, CPU], 2)


def test_a_missing_provider_without_fallback_is_an_error_naming_it():
    if CUDA in HAVE:
        pytest.skip("this onnxruntime build has CUDA")
    parts = Assembly(load_config("default", {"engines.providers": '["cuda", "cpu"]'}))
    with pytest.raises(MissingDependencyError, match="CUDAExecutionProvider"):
        _ = parts.ocr


def test_sam2_and_captioner_follow_engines_with_fallback(exported):
    over = _cuda_cfg(**{"segment.kind": "sam2", "segment.sam2.encoder": str(exported["encoder"]),
                        "segment.sam2.decoder": str(exported["decoder"]),
                        "describe.captioner": str(exported["captioner"]), "describe.ocr": "false",
                        "engines.captioner.threads": "2"})
    parts = Assembly(load_config("sam2", over))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert isinstance(parts.segmenter, Segmenter) and isinstance(parts.captioner, RegionCaptioner)
    assert set(parts.engines) == {"sam2.encoder", "sam2.decoder", "captioner.vision_encoder",
                                  "captioner.text_encoder", "captioner.decoder"}
    for name, eng in parts.engines.items():
        _check_engine(name, eng, [CUDA, CPU], 2 if name.startswith("captioner.") else 1)


def test_load_builds_everything_and_reports_time_and_memory():
    gs = GearSeg.from_config("default")
    reports = _installed(gs.load)
    names = [r.component for r in reports]
    assert names == ["segmenter", "ocr", "embedder", "llm", "deducer"]
    by = {r.component: r for r in reports}
    assert all(isinstance(r, LoadReport) and r.load_ms >= 0 and np.isfinite(r.rss_delta_mib) for r in reports)
    assert set(by["ocr"].engines) == {"ocr.det", "ocr.rec", "ocr.cls"} and by["ocr"].load_ms > 0
    assert set(by["embedder"].engines) == {"embedder.minilm"}
    assert by["segmenter"].engines == {} and by["segmenter"].skipped is None
    if by["llm"].skipped is None:  # llama-cpp-python installed: the GGUF is in memory now
        assert by["llm"].load_ms > 0 and "llm.gguf" in gs.parts.providers()
    else:
        assert "llama" in by["llm"].skipped
    assert isinstance(gs.ocr, TextReader) and isinstance(gs.deducer, Deducer)
    # built once: later accesses return the same objects
    assert gs.ocr is gs.parts.get("ocr") and gs.load()[1].load_ms == by["ocr"].load_ms


def test_perceive_records_the_engines_of_its_stages():
    gs = GearSeg.from_config("default", {"describe.ocr": "true"})
    _installed(lambda: gs.ocr)
    from gear_edge.synthetic import tabletop

    scene = gs.perceive(tabletop().image)
    assert set(scene.meta["engines"]) == {"ocr.det", "ocr.rec", "ocr.cls"}
    assert all(v == [CPU] for v in scene.meta["engines"].values())


def test_defaults_come_from_the_schema(tmp_path):
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text('[segment]\nkind = "classical"\n[describe]\nocr = false\n')
    cfg = load_config(cfg_file)
    for sec, values in defaults().items():
        for key, value in values.items():
            if (sec, key) not in (("describe", "ocr"),):
                assert cfg.get(sec, key) == value, (sec, key)
    assert cfg.get("engines.ocr", "providers") is None and cfg.section("engines.ocr") == {}  # inherit [engines]
    seg = Assembly(cfg).segmenter
    assert (seg.work_side, seg.max_regions) == (defaults()["segment.classical"]["work_side"],
                                                defaults()["segment.classical"]["max_regions"])


def test_given_components_are_used_and_unknown_ones_rejected():
    class Fixed:
        name = "fixed"

        def segment(self, image):
            return []

    seg = Fixed()
    gs = GearSeg.from_config("default", segmenter=seg, ocr=None)
    assert gs.segmenter is seg and gs.parts.reports == {}
    with pytest.raises(InputError, match="unknown component"):
        GearSeg.from_config("default", camera=object())
    with pytest.raises(InputError, match="unknown model family"):
        from gear_edge.engines import engine_settings

        engine_settings(load_config("default"), "lidar")
    assert set(COMPONENTS) == {"segmenter", "ocr", "captioner", "embedder", "llm", "deducer"}


def test_export_subcommands_without_the_export_package_name_what_to_install():
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'export' or name.startswith('export.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'export'\", name='export')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from gear_edge.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for args in (["export", "sam2", "--random-init", "--out", "x"], ["build-engine", "m.onnx"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "needs the export tools" in r.stderr and "pip install 'gear-edge[export]'" in r.stderr, r.stderr


def test_the_wheel_ships_the_export_tools():
    from pathlib import Path

    import tomllib

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "export" in cfg["tool"]["scikit-build"]["wheel"]["packages"]
    assert any(d.startswith("onnx") for d in cfg["project"]["optional-dependencies"]["dev"])
