"""OnnxEngine (ONNX Runtime CPU) on tiny onnx.helper models: feeds checking, manifests at load,
execution-provider configuration and the backend factory."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gear_edge.config import load_config
from gear_edge.engines import (
    Engine,
    OnnxEngine,
    OnnxRuntimeEngine,
    TensorSpec,
    available_providers,
    engine_from_config,
    engine_settings,
    load_engine,
    provider_settings,
    write_model_manifest,
)
from gear_edge.engines.manifest_check import compare_specs, manifest_path_for, manifest_specs, manifest_toml
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import Manifest, sha256_file

onnx = pytest.importorskip("onnx", reason="onnx not installed (needed to build the test models)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HAS_TRT_EP = "TensorrtExecutionProvider" in available_providers()
HAS_TENSORRT = __import__("importlib").util.find_spec("tensorrt") is not None

SPECS_IN = [
    TensorSpec("a", ("B", 4), np.dtype(np.float32)),
    TensorSpec("b", ("B", 4), np.dtype(np.float32)),
    TensorSpec("bias", (4,), np.dtype(np.float32)),
    TensorSpec("ids", ("N",), np.dtype(np.int64)),
]
SPECS_OUT = [
    TensorSpec("sum", ("B", 4), np.dtype(np.float32)),
    TensorSpec("scaled", ("B", 4), np.dtype(np.float32)),
    TensorSpec("ids_plus", ("N",), np.dtype(np.int64)),
]


def _make_model(path: Path, *, a_name: str = "a", bias_len: int = 4) -> Path:
    """sum = a + b + bias; scaled = 2 * a; ids_plus = ids + 1."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info(a_name, f, ["B", 4]),
        helper.make_tensor_value_info("b", f, ["B", 4]),
        helper.make_tensor_value_info("bias", f, [bias_len]),
        helper.make_tensor_value_info("ids", i64, ["N"]),
    ]
    outputs = [
        helper.make_tensor_value_info("sum", f, ["B", 4]),
        helper.make_tensor_value_info("scaled", f, ["B", 4]),
        helper.make_tensor_value_info("ids_plus", i64, ["N"]),
    ]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"), numpy_helper.from_array(np.array(1, np.int64), "one")]
    nodes = [
        helper.make_node("Add", [a_name, "b"], ["ab"]),
        helper.make_node("Add", ["ab", "bias"], ["sum"]),
        helper.make_node("Mul", [a_name, "two"], ["scaled"]),
        helper.make_node("Add", ["ids", "one"], ["ids_plus"]),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def model(tmp_path) -> Path:
    return _make_model(tmp_path / "tiny.onnx")


def _feeds(batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a": rng.standard_normal((batch, 4)).astype(np.float32),
        "b": rng.standard_normal((batch, 4)).astype(np.float32),
        "bias": np.arange(4, dtype=np.float32),
        "ids": np.array([5, 7], dtype=np.int64),
    }


def _manifest(model: Path, inputs=SPECS_IN, outputs=SPECS_OUT, **kw) -> Path:
    return write_model_manifest(model, inputs=inputs, outputs=outputs, licence="Apache-2.0", source="unit test", **kw)


# ---- running and feeds checking ------------------------------------------------------------------


def test_runs_and_reports_specs(model):
    eng = OnnxEngine(model, threads=1)
    assert isinstance(eng, Engine)
    assert OnnxRuntimeEngine is OnnxEngine
    assert eng.providers == ["CPUExecutionProvider"]
    assert eng.session.get_session_options().intra_op_num_threads == 1
    assert list(eng.inputs) == ["a", "b", "bias", "ids"]
    assert eng.inputs["a"].shape == ("B", 4) and eng.inputs["ids"].dtype == np.int64
    feeds = _feeds()
    out = eng.run(feeds)
    np.testing.assert_allclose(out["sum"], feeds["a"] + feeds["b"] + feeds["bias"], rtol=1e-6)
    np.testing.assert_allclose(out["scaled"], 2 * feeds["a"], rtol=1e-6)
    np.testing.assert_array_equal(out["ids_plus"], [6, 8])
    only = eng.run(feeds, output_names=["scaled"])
    assert list(only) == ["scaled"]


def test_non_contiguous_inputs_are_accepted(model):
    eng = OnnxEngine(model)
    feeds = _feeds(4)
    feeds["a"] = np.asfortranarray(feeds["a"])
    np.testing.assert_allclose(eng.run(feeds)["scaled"], 2 * feeds["a"])


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda f: f.update(x=f.pop("a")), r"missing \['a'\], unexpected \['x'\]"),
        (lambda f: f.update(a=f["a"].astype(np.float64)), r"input 'a' has dtype float64, the model expects float32"),
        (lambda f: f.update(ids=f["ids"].astype(np.int32)), r"input 'ids' has dtype int32, the model expects int64"),
        (lambda f: f.update(bias=np.zeros(5, np.float32)), r"input 'bias' axis 0 is 5, the model expects 4"),
        (lambda f: f.update(a=f["a"][None]), r"input 'a' has shape \[1, 3, 4\], the model expects a: float32\[B, 4\]"),
        (lambda f: f.update(b=np.zeros((5, 4), np.float32)), r"dynamic axis 'B' is 5 in 'b' but 3 in 'a'"),
        (lambda f: f.update(a=f["a"].tolist()), r"input 'a' must be a numpy array"),
    ],
    ids=["name", "dtype", "int-dtype", "fixed-dim", "rank", "symbolic-axis", "not-array"],
)
def test_bad_feeds_name_file_and_tensor(model, change, pattern):
    eng = OnnxEngine(model)
    feeds = _feeds()
    change(feeds)
    with pytest.raises(InputError, match=pattern) as info:
        eng.run(feeds)
    assert str(model) in str(info.value)


def test_unknown_output_and_missing_file(model, tmp_path):
    eng = OnnxEngine(model)
    with pytest.raises(InputError, match=r"unknown outputs \['nope'\]"):
        eng.run(_feeds(), output_names=["nope"])
    with pytest.raises(InputError, match="does not exist"):
        OnnxEngine(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="ONNX Runtime cannot load this model"):
        OnnxEngine(junk)
    with pytest.raises(InputError, match="threads"):
        OnnxEngine(model, threads=-1)


# ---- manifests at load ---------------------------------------------------------------------------


def test_manifest_written_matches_and_is_checked(model):
    path = _manifest(model, precision="fp32", extra={"opset": 17}, tables={"export": {"config": "tiny"}})
    assert path == manifest_path_for(model) == model.with_suffix(".toml")
    m = Manifest.load(path)
    assert (m.file, m.size, m.sha256) == (model.name, model.stat().st_size, sha256_file(model))
    assert m.extra["precision"] == "fp32" and m.extra["opset"] == 17 and m.extra["export"] == {"config": "tiny"}
    ins, outs = manifest_specs(m)
    assert list(ins.values()) == SPECS_IN and list(outs.values()) == SPECS_OUT
    eng = OnnxEngine(model)  # 'auto' finds the sibling manifest
    assert eng.manifest is not None and eng.manifest.sha256 == m.sha256
    assert OnnxEngine(model, manifest=path).manifest.name == "tiny"
    assert OnnxEngine(model, manifest=None).manifest is None


@pytest.mark.parametrize(
    "inputs, outputs, pattern",
    [
        ([TensorSpec("a2", ("B", 4), np.dtype(np.float32)), *SPECS_IN[1:]], SPECS_OUT,
         r"inputs \['a', 'b', 'bias', 'ids'\] differ from its manifest's .*missing \['a2'\], unexpected \['a'\]"),
        (SPECS_IN, SPECS_OUT[:2], r"outputs .* unexpected \['ids_plus'\]"),
        ([*SPECS_IN[:3], TensorSpec("ids", ("N",), np.dtype(np.int32))], SPECS_OUT,
         r"input 'ids' is int64 but the manifest says int32"),
        ([*SPECS_IN[:2], TensorSpec("bias", (8,), np.dtype(np.float32)), SPECS_IN[3]], SPECS_OUT,
         r"input 'bias' has shape bias: float32\[4\] but the manifest says bias: float32\[8\]"),
        ([*SPECS_IN[:2], TensorSpec("bias", ("K",), np.dtype(np.float32)), SPECS_IN[3]], SPECS_OUT,
         r"input 'bias' has shape .* but the manifest says bias: float32\[K\]"),
        (SPECS_IN, [TensorSpec("sum", ("B", 4, 1), np.dtype(np.float32)), *SPECS_OUT[1:]],
         r"output 'sum' has shape"),
        (SPECS_IN, [TensorSpec("sum", ("B", 4), np.dtype(np.float16)), *SPECS_OUT[1:]],
         r"output 'sum' is float32 but the manifest says float16"),
    ],
    ids=["input-name", "output-missing", "dtype", "fixed-size", "fixed-vs-dynamic", "rank", "output-dtype"],
)
def test_manifest_mismatch_fails_at_load_naming_tensor(model, inputs, outputs, pattern):
    _manifest(model, inputs=inputs, outputs=outputs)
    with pytest.raises(InputError, match=pattern) as info:
        OnnxEngine(model)
    assert str(model) in str(info.value)


def test_manifest_dynamic_accepts_any_symbol_name_and_fixed_accepts_dynamic_model(model):
    renamed = [TensorSpec(s.name, tuple("batch" if d == "B" else d for d in s.shape), s.dtype) for s in SPECS_IN]
    fixed_b = [TensorSpec(s.name, tuple(3 if d == "B" else d for d in s.shape), s.dtype) for s in SPECS_OUT]
    _manifest(model, inputs=renamed, outputs=fixed_b)
    OnnxEngine(model)  # the model's dynamic B serves the manifest's fixed 3


def test_wrong_or_tampered_file_fails_at_load(model, tmp_path):
    _manifest(model)
    other = _make_model(tmp_path / "other.onnx", a_name="x")  # same layout, different tensor name
    with pytest.raises(InputError, match="bytes but the manifest says|sha256"):
        OnnxEngine(other, manifest=model.with_suffix(".toml"))
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"has sha256 .* but the manifest says .* tampered"):
        OnnxEngine(model)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    with pytest.raises(InputError, match=r"lacks field"):
        OnnxEngine(other, manifest=bad)


def test_manifest_with_wrong_tensor_name_same_bytes(tmp_path):
    # identical bytes, so only the spec check can catch it: the manifest describes tensor 'x' as 'a'
    model = _make_model(tmp_path / "m.onnx", a_name="x")
    _manifest(model)
    with pytest.raises(InputError, match=r"missing \['a'\], unexpected \['x'\]"):
        OnnxEngine(model)


def test_manifest_toml_round_trip_and_validation(tmp_path):
    text = manifest_toml(
        {"name": 'we"ird', "file": "f.onnx", "flag": True, "ratio": 0.5},
        [TensorSpec("in put", (None, "P", 2), np.dtype(np.float16))],
        [TensorSpec("o", (1,), np.dtype(np.bool_))],
        {"cfg": {"k": [1, 2]}},
    )
    import tomllib

    data = tomllib.loads(text)
    assert data["name"] == 'we"ird' and data["flag"] is True and data["cfg"] == {"k": [1, 2]}
    assert data["inputs"] == [{"name": "in put", "dtype": "float16", "shape": ["?", "P", 2]}]
    assert data["outputs"] == [{"name": "o", "dtype": "bool", "shape": [1]}]
    with pytest.raises(InputError, match="does not exist"):
        write_model_manifest(tmp_path / "none.onnx", inputs=[], outputs=[], licence="x", source="y")
    path = tmp_path / "m.toml"
    head = 'name="m"\nfile="m.onnx"\nsha256="' + "0" * 64 + '"\nsize=1\nlicence="x"\nsource="y"\npackage=""\npackage_path=""\n'
    path.write_text(head)
    assert manifest_specs(Manifest.load(path)) is None  # a manifest without tensors: only sha256/size are checked
    path.write_text(head + '[[inputs]]\nname="a"\ndtype="complex64"\nshape=[1]\n')
    with pytest.raises(InputError, match=r"inputs 'a': dtype 'complex64' is not one of"):
        manifest_specs(Manifest.load(path))
    path.write_text(head + '[[inputs]]\nname="a"\ndtype="float32"\n')
    with pytest.raises(InputError, match=r"inputs\[0\] lacks \['shape'\]"):
        manifest_specs(Manifest.load(path))
    path.write_text(head + '[[inputs]]\nname="a"\ndtype="float32"\nshape=[1.5]\n')
    with pytest.raises(InputError, match="shape entries must be ints or strings"):
        manifest_specs(Manifest.load(path))
    compare_specs("m", "input", {}, {})  # nothing listed, nothing to differ


# ---- execution providers -------------------------------------------------------------------------


def test_provider_settings_order_and_options(tmp_path):
    names, opts = provider_settings(
        ["tensorrt", "cuda", "cpu"], fp16=True, cache_dir=tmp_path / "c", device_id=1,
        trt_profiles={"a": ((1, 4), (8, 4), (64, 4))}, trt_workspace_bytes=1 << 30,
        overrides={"cuda": {"cudnn_conv_algo_search": "HEURISTIC"}},
    )
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt, cuda, cpu = opts
    assert trt["trt_fp16_enable"] is True and trt["trt_int8_enable"] is False and trt["device_id"] == 1
    assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == str(tmp_path / "c")
    assert trt["trt_timing_cache_enable"] is True and trt["trt_timing_cache_path"] == str(tmp_path / "c")
    assert (trt["trt_profile_min_shapes"], trt["trt_profile_opt_shapes"], trt["trt_profile_max_shapes"]) == ("a:1x4", "a:8x4", "a:64x4")
    assert trt["trt_max_workspace_size"] == 1 << 30
    assert cuda == {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"} and cpu == {}
    names, opts = provider_settings(["cpu", "CUDAExecutionProvider"], int8=True)
    assert names == ["CPUExecutionProvider", "CUDAExecutionProvider"] and opts == [{}, {"device_id": 0}]
    assert "trt_engine_cache_enable" not in provider_settings(["tensorrt"])[1][0]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"providers": []}, "at least one execution provider"),
        ({"providers": ["cpu", "CPU"]}, "listed twice"),
        ({"providers": ["tpu"]}, "unknown execution provider 'tpu'"),
        ({"providers": ["cpu"], "overrides": {"cuda": {}}}, "not among the providers"),
        ({"providers": ["tensorrt"], "trt_profiles": {"a": ((8, 4), (4, 4), (64, 4))}}, "min <= opt <= max"),
        ({"providers": ["tensorrt"], "trt_profiles": {"a": ((1, 4), (4,), (64, 4))}}, "ranks differ"),
    ],
)
def test_provider_settings_rejects(kwargs, pattern):
    providers = kwargs.pop("providers")
    with pytest.raises(InputError, match=pattern):
        provider_settings(providers, **kwargs)


@pytest.mark.skipif(HAS_TRT_EP, reason="this onnxruntime build has the TensorRT execution provider")
def test_unavailable_provider_is_a_precise_missing_dependency(model):
    with pytest.raises(MissingDependencyError) as info:
        OnnxEngine(model, providers=("tensorrt", "cuda", "cpu"))
    msg = str(info.value)
    assert str(model) in msg and "TensorrtExecutionProvider" in msg and "not in this onnxruntime build" in msg
    assert "pip install onnxruntime-gpu" in msg and "providers=['cpu']" in msg
    assert "CPUExecutionProvider" in msg  # lists what is available
    with pytest.warns(RuntimeWarning, match=r"skipping execution provider\(s\) \['TensorrtExecutionProvider'\]"):
        eng = OnnxEngine(model, providers=("tensorrt", "cpu"), allow_fallback=True)
    assert eng.providers == ["CPUExecutionProvider"]
    with pytest.raises(MissingDependencyError, match="none of the providers"):
        OnnxEngine(model, providers=("tensorrt",), allow_fallback=True)


# ---- factory -------------------------------------------------------------------------------------


def test_factory_onnxruntime_backend_from_config(model):
    cfg = load_config("sam2", {"runtime.threads": 1, "runtime.allow_unverified_models": True})
    settings = engine_settings(cfg)
    assert settings["backend"] == "onnxruntime" and settings["providers"] == ("cpu",) and settings["threads"] == 1
    eng = engine_from_config(model, cfg)
    assert isinstance(eng, OnnxEngine) and eng.providers == ["CPUExecutionProvider"]
    assert eng.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(eng.run(_feeds())["scaled"], 2 * _feeds()["a"])
    eng2 = engine_from_config(model, {"engines": {"backend": "onnxruntime", "providers": ["cpu"]},
                                      "runtime": {"threads": 2, "allow_unverified_models": True}})
    assert eng2.session.get_session_options().intra_op_num_threads == 2


def test_factory_refuses_unverifiable_models_unless_allowed(model):
    from gear_edge.manifest import sha256_file

    cfg = load_config("sam2")
    with pytest.raises(InputError, match=r"model tiny.onnx = .*tiny.onnx cannot be verified: it has no manifest "
                                         r"\(tiny.toml next to it\).*runtime.allow_unverified_models = true"):
        engine_from_config(model, cfg)
    with pytest.raises(InputError, match=r"segment.sam2.encoder = .* cannot be verified.*set segment.sam2.encoder_sha256"):
        engine_from_config(model, cfg, key="segment.sam2.encoder")
    sha = sha256_file(model)
    assert isinstance(engine_from_config(model, cfg, key="segment.sam2.encoder", sha256=sha), OnnxEngine)
    with pytest.raises(InputError, match=r"segment.sam2.encoder_sha256: .* has sha256 .* but 0{64} was expected"):
        engine_from_config(model, cfg, key="segment.sam2.encoder", sha256="0" * 64)
    _manifest(model)
    assert engine_from_config(model, cfg).manifest is not None  # its manifest verifies it
    with open(model, "r+b") as f:  # one flipped byte: the manifest's sha256 no longer matches
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(InputError, match="sha256"):
        engine_from_config(model, cfg)


@pytest.mark.skipif(HAS_TRT_EP, reason="this onnxruntime build has the TensorRT execution provider")
def test_factory_configured_provider_order_is_honoured(model):
    cfg = load_config("sam2", {"engines.providers": '["tensorrt", "cuda", "cpu"]', "runtime.allow_unverified_models": True})
    assert engine_settings(cfg)["providers"] == ("tensorrt", "cuda", "cpu")
    with pytest.raises(MissingDependencyError, match="TensorrtExecutionProvider"):
        engine_from_config(model, cfg)


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_factory_tensorrt_backend(model, tmp_path):
    plan = tmp_path / "tiny.plan"
    plan.write_bytes(b"\0" * 16)
    cfg = load_config("sam2", {"engines.backend": "tensorrt", "runtime.allow_unverified_models": True})
    with pytest.raises(MissingDependencyError, match=r"^tensorrt not installed: pip install 'gear-edge\[gpu\]'"):
        engine_from_config(plan, cfg)
    with pytest.raises(InputError, match="needs \\[engines\\] plan_dir"):
        engine_from_config(model, cfg)
    with pytest.raises(MissingDependencyError, match="tensorrt not installed"):
        load_engine(model, backend="tensorrt", plan_dir=tmp_path)  # looking up the cache key needs tensorrt
    with pytest.raises(InputError, match="takes a plan"):
        load_engine(tmp_path / "x.bin", backend="tensorrt", plan_dir=tmp_path)


def test_factory_rejects_bad_settings(model, tmp_path):
    with pytest.raises(InputError, match="backend must be one of"):
        load_engine(model, backend="tvm")
    with pytest.raises(InputError, match="precision must be"):
        load_engine(model, precision="int4")
    with pytest.raises(InputError, match="is a TensorRT plan; set \\[engines\\] backend = 'tensorrt'"):
        load_engine(tmp_path / "m.plan")
    with pytest.raises(InputError, match="providers must be a non-empty list"):
        engine_settings({"engines": {"providers": []}})
    with pytest.raises(InputError, match="Config or a mapping"):
        engine_settings(42)


def test_error_messages_name_the_file(model):
    eng = OnnxEngine(model)
    with pytest.raises(InputError) as info:
        eng.run({**_feeds(), "a": np.zeros((3, 5), np.float32)})
    assert re.search(re.escape(str(model)) + r": input 'a' axis 1 is 5", str(info.value))
