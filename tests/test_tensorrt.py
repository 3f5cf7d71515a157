"""TensorRT paths: the pure logic everywhere (dtype mapping, profile checks, buffer sizes and growth,
engine cache keys, build-profile derivation); the real build + run only where tensorrt and a GPU exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gear_edge.engines import TensorRTEngine, TensorSpec, write_model_manifest
from gear_edge.engines.tensorrt import (
    GrowOnlyBuffers,
    buffer_nbytes,
    cached_plan_path,
    check_profile_shape,
    engine_cache_key,
    numpy_dtype,
    spec_from_trt,
)
from gear_edge.errors import InputError, MissingDependencyError

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
SHA = "ab" * 32


# ---- dtype mapping -------------------------------------------------------------------------------


class _FakeEnumMember:  # what TensorRT's DataType members look like: they carry a .name
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.parametrize(
    "trt_name, dtype",
    [("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8), ("INT32", np.int32), ("INT64", np.int64),
     ("BOOL", np.bool_), ("UINT8", np.uint8)],
)
def test_numpy_dtype_mapping(trt_name, dtype):
    assert numpy_dtype(trt_name) == np.dtype(dtype)
    assert numpy_dtype(f"DataType.{trt_name}") == np.dtype(dtype)
    assert numpy_dtype(_FakeEnumMember(trt_name)) == np.dtype(dtype)
    assert numpy_dtype(trt_name.lower()) == np.dtype(dtype)


@pytest.mark.parametrize("trt_name", ["BF16", "FP8", "INT4", "FP4"])
def test_numpy_dtype_unsupported_names_the_tensor(trt_name):
    with pytest.raises(InputError, match=rf"m.plan: tensor 'logits' has TensorRT type {trt_name}, which has no numpy"):
        numpy_dtype(trt_name, "logits", "m.plan")


def test_spec_from_trt_names_dynamic_axes():
    spec = spec_from_trt("point_coords", (-1, -1, 2), "FLOAT", "d.plan", symbols=("B", "P", 2))
    assert spec == TensorSpec("point_coords", ("B", "P", 2), np.dtype(np.float32))
    assert spec_from_trt("x", (-1, 3), "HALF").shape == (None, 3)
    assert spec_from_trt("x", (-1, 3), "HALF", symbols=("B",)).shape == (None, 3)  # rank differs: ignored
    assert spec_from_trt("x", (1, 3), "INT64", symbols=("B", 3)).shape == (1, 3)  # fixed stays fixed


# ---- buffers -------------------------------------------------------------------------------------


def test_buffer_nbytes():
    assert buffer_nbytes((64, 4, 256, 256), np.float32) == 64 * 4 * 256 * 256 * 4
    assert buffer_nbytes((64, 3), np.float16) == 384
    assert buffer_nbytes((), np.int64) == 8
    assert buffer_nbytes((0, 3), np.float32) == 0
    with pytest.raises(InputError, match=r"concrete shape, got \[-1, 3\]"):
        buffer_nbytes((-1, 3), np.float32)


class _Heap:
    """A host-side allocator with the CUDA backend's malloc/free signature, recording what happens."""

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.next = 0x1000
        self.events: list[tuple[str, int]] = []

    def malloc(self, n: int) -> int:
        ptr, self.next = self.next, self.next + n + 256
        self.live[ptr] = n
        self.events.append(("malloc", n))
        return ptr

    def free(self, ptr: int) -> None:
        assert ptr in self.live, "double free or foreign pointer"
        self.events.append(("free", self.live.pop(ptr)))


def test_grow_only_buffers_reallocate_only_when_growing():
    heap = _Heap()
    bufs = GrowOnlyBuffers(heap.malloc, heap.free)
    p1 = bufs.ensure("coords", buffer_nbytes((16, 3, 2), np.float32))
    assert bufs.ensure("coords", buffer_nbytes((8, 3, 2), np.float32)) == p1  # smaller: same buffer
    assert bufs.ensure("coords", buffer_nbytes((16, 3, 2), np.float32)) == p1  # equal: same buffer
    p2 = bufs.ensure("coords", buffer_nbytes((64, 3, 2), np.float32))  # larger: reallocated
    assert p2 != p1 and bufs.capacity("coords") == 64 * 3 * 2 * 4
    assert bufs.ensure("coords", 4) == p2
    z = bufs.ensure("empty", 0)  # zero-size tensors still get a valid pointer
    assert bufs.capacity("empty") == 1 and z in heap.live
    assert bufs.allocations == 3
    assert heap.events == [("malloc", 384), ("free", 384), ("malloc", 1536), ("malloc", 1)]
    bufs.release()
    assert heap.live == {} and bufs.capacity("coords") == 0


# ---- profile checks ------------------------------------------------------------------------------


PROFILE = ((1, 1, 2), (16, 3, 2), (64, 8, 2))


def test_check_profile_shape_in_range():
    for shape in [(1, 1, 2), (64, 8, 2), (7, 3, 2)]:
        check_profile_shape("dec.plan", "point_coords", shape, PROFILE)


@pytest.mark.parametrize(
    "shape, pattern",
    [
        ((65, 3, 2), r"input 'point_coords' axis 0 is 65, outside the engine's optimisation profile \[1, 64\]"),
        ((4, 9, 2), r"axis 1 is 9, outside .* \[1, 8\]"),
        ((0, 3, 2), r"axis 0 is 0, outside"),
        ((4, 3), r"input 'point_coords' has rank 2 \(\[4, 3\]\), the engine expects rank 3"),
    ],
)
def test_check_profile_shape_out_of_range_names_tensor(shape, pattern):
    with pytest.raises(InputError, match=pattern) as info:
        check_profile_shape("dec.plan", "point_coords", shape, PROFILE)
    assert str(info.value).startswith("dec.plan: ")


# ---- engine cache keys ---------------------------------------------------------------------------


def test_engine_cache_key_depends_on_every_part():
    base = engine_cache_key(SHA, "10.9.0", "NVIDIA H100 80GB HBM3", "fp16")
    assert len(base) == 20 and all(c in "0123456789abcdef" for c in base)
    assert engine_cache_key(SHA.upper(), "10.9.0", "NVIDIA H100 80GB HBM3", "fp16") == base
    assert engine_cache_key(SHA, " 10.9.0", "NVIDIA  H100 80GB HBM3 ", "fp16") == base  # whitespace only
    variants = {
        engine_cache_key("cd" * 32, "10.9.0", "NVIDIA H100 80GB HBM3", "fp16"),
        engine_cache_key(SHA, "10.10.0", "NVIDIA H100 80GB HBM3", "fp16"),
        engine_cache_key(SHA, "10.9.0", "Orin", "fp16"),
        engine_cache_key(SHA, "10.9.0", "NVIDIA H100 80GB HBM3", "int8"),
        engine_cache_key(SHA, "10.9.0", "NVIDIA H100 80GB HBM3", "fp16", {"x": [(1, 2), (8, 2), (64, 2)]}),
        engine_cache_key(SHA, "10.9.0", "NVIDIA H100 80GB HBM3", "fp16", {"x": [(1, 2), (8, 2), (32, 2)]}),
    }
    assert base not in variants and len(variants) == 6
    p1 = {"a": [(1,), (2,), (3,)], "b": [(1, 1), (2, 2), (3, 3)]}
    p2 = {"b": [[1, 1], [2, 2], [3, 3]], "a": [[1], [2], [3]]}
    assert engine_cache_key(SHA, "10", "g", "fp32", p1) == engine_cache_key(SHA, "10", "g", "fp32", p2)


@pytest.mark.parametrize(
    "args, pattern",
    [
        (("abc", "10", "g", "fp16"), "64 hex digits"),
        ((SHA, "10", "g", "bf16"), "precision must be one of"),
        ((SHA, "", "g", "fp16"), "must be non-empty"),
        ((SHA, "10", " ", "fp16"), "must be non-empty"),
    ],
)
def test_engine_cache_key_rejects(args, pattern):
    with pytest.raises(InputError, match=pattern):
        engine_cache_key(*args)


def test_cached_plan_path(tmp_path):
    assert cached_plan_path(tmp_path, "dec", "fp16", "0123") == tmp_path / "dec.fp16.0123.plan"


# ---- build helpers (export/build_engine.py) -------------------------------------------------------


def test_parse_cli_arguments():
    from export.build_engine import parse_axis_arg, parse_profile_arg, parse_shape

    assert parse_shape("1x3x1024x1024") == (1, 3, 1024, 1024)
    assert parse_profile_arg("point_coords:1x1x2,16x3x2,64x3x2") == ("point_coords", ((1, 1, 2), (16, 3, 2), (64, 3, 2)))
    assert parse_profile_arg("ns:in:1x2,2x2,4x2")[0] == "ns:in"
    assert parse_axis_arg("B=1,16,64") == ("B", (1, 16, 64))
    for bad, fn in [("1xax3", parse_shape), ("0x3", parse_shape), ("x:1x2,2x2", parse_profile_arg),
                    ("B=1,16", parse_axis_arg), ("B=8,4,64", parse_axis_arg), ("=1,2,3", parse_axis_arg)]:
        with pytest.raises(InputError):
            fn(bad)


DEC_INPUTS = [
    TensorSpec("image_embed", (1, 256, 64, 64), np.dtype(np.float32)),
    TensorSpec("point_coords", ("B", "P", 2), np.dtype(np.float32)),
    TensorSpec("point_labels", ("B", "P"), np.dtype(np.float32)),
]


def test_profiles_for_named_axes_and_explicit_shapes():
    from export.build_engine import profiles_for

    prof = profiles_for(DEC_INPUTS, axes={"B": (1, 16, 64), "P": (1, 3, 8)})
    assert prof == {
        "point_coords": ((1, 1, 2), (16, 3, 2), (64, 8, 2)),
        "point_labels": ((1, 1), (16, 3), (64, 8)),
    }
    prof = profiles_for(DEC_INPUTS, axes={"B": (1, 16, 64), "P": (1, 3, 8)},
                        explicit={"point_labels": ((1, 1), (4, 1), (4, 1))})
    assert prof["point_labels"] == ((1, 1), (4, 1), (4, 1)) and prof["point_coords"][2] == (64, 8, 2)
    assert profiles_for(DEC_INPUTS[:1]) == {}  # all fixed: no profile needed


@pytest.mark.parametrize(
    "axes, explicit, pattern",
    [
        ({"B": (1, 2, 4)}, None, r"input 'point_coords' axis 1 is dynamic \(named 'P'\) and has no range: pass --axis P="),
        ({}, {"nope": ((1,), (1,), (1,))}, r"profiles given for \['nope'\]"),
        ({"B": (1, 2, 4), "P": (1, 1, 1)}, {"point_coords": ((1, 1, 3), (2, 1, 3), (4, 1, 3))},
         r"profile for 'point_coords' axis 2: 3 but the model fixes it to 2"),
        ({"B": (1, 2, 4), "P": (1, 1, 1)}, {"point_coords": ((1, 1), (2, 1), (4, 1))}, r"has rank 2"),
        ({"B": (1, 2, 4), "P": (1, 1, 1)}, {"point_coords": ((4, 1, 2), (2, 1, 2), (4, 1, 2))}, r"min <= opt <= max"),
    ],
)
def test_profiles_for_rejects(axes, explicit, pattern):
    from export.build_engine import profiles_for

    with pytest.raises(InputError, match=pattern):
        profiles_for(DEC_INPUTS, axes=axes, explicit=explicit)


def test_unnamed_dynamic_axis_needs_explicit_profile():
    from export.build_engine import profiles_for

    spec = [TensorSpec("x", (None, 3), np.dtype(np.float32))]
    with pytest.raises(InputError, match=r"axis 0 is dynamic \(unnamed\)"):
        profiles_for(spec, axes={"B": (1, 2, 3)})
    assert profiles_for(spec, explicit={"x": ((1, 3), (2, 3), (3, 3))}) == {"x": ((1, 3), (2, 3), (3, 3))}


def _tiny_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_is_qdq_model_and_int8_needs_qdq_or_calibration(tmp_path):
    from export.build_engine import build_engine, calibration_cache_path, is_qdq_model
    from export.quantize import quantize_static_int8

    src = _tiny_onnx(tmp_path / "mm.onnx")
    rng = np.random.default_rng(1)
    quantize_static_int8(src, tmp_path / "mm.int8.onnx", [{"x": rng.standard_normal((2, 4)).astype(np.float32)} for _ in range(4)],
                         for_tensorrt=True)
    assert not is_qdq_model(src) and is_qdq_model(tmp_path / "mm.int8.onnx")
    with pytest.raises(InputError, match=r"int8 needs a QDQ model .* or a calibration cache at"):
        build_engine(src, tmp_path / "mm.plan", precision="int8", axes={"B": (1, 2, 4)})
    cache = calibration_cache_path(src, SHA, tmp_path / "plans" / "mm.plan", None)
    assert cache == tmp_path / "plans" / f"mm.{SHA[:16]}.calib"
    with pytest.raises(InputError, match="has no range"):
        build_engine(src, tmp_path / "mm.plan", precision="fp16")
    with pytest.raises(InputError, match="say where the plan goes"):
        build_engine(src, precision="fp16", axes={"B": (1, 2, 4)})


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_without_tensorrt_build_and_load_say_so(tmp_path):
    from export.build_engine import build_engine, main

    src = _tiny_onnx(tmp_path / "mm.onnx")
    with pytest.raises(MissingDependencyError, match=r"^tensorrt not installed: pip install 'gear-edge\[gpu\]'"):
        build_engine(src, tmp_path / "mm.plan", axes={"B": (1, 2, 4)})
    assert main([str(src), "-o", str(tmp_path / "mm.plan"), "--axis", "B=1,2,4"]) == 2
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"\0" * 32)
    with pytest.raises(MissingDependencyError, match=r"^tensorrt not installed"):
        TensorRTEngine(plan)


def test_tensorrt_engine_checks_file_and_manifest_before_tensorrt(tmp_path):
    with pytest.raises(InputError, match=r"TensorRT plan .*missing.plan does not exist"):
        TensorRTEngine(tmp_path / "missing.plan")
    plan = tmp_path / "p.plan"
    plan.write_bytes(b"\1" * 64)
    write_model_manifest(plan, inputs=[], outputs=[], licence="x", source="y")
    plan.write_bytes(b"\2" * 64)  # same size, different bytes
    with pytest.raises(InputError, match="tampered"):
        TensorRTEngine(plan)


# ---- on a GPU with TensorRT ----------------------------------------------------------------------


def _gpu_or_skip():
    if not HAS_TENSORRT:
        pytest.skip("tensorrt not installed")
    from gear_edge.engines.tensorrt import CudaRuntime

    try:
        CudaRuntime(0).close()
    except MissingDependencyError as exc:
        pytest.skip(str(exc) if str(exc).startswith("no CUDA") else f"no CUDA device ({exc})")


def test_build_and_run_on_gpu(tmp_path):
    _gpu_or_skip()
    from export.build_engine import build_engine

    from gear_edge.engines import OnnxEngine

    src = _tiny_onnx(tmp_path / "mm.onnx")
    first = build_engine(src, precision="fp32", axes={"B": (1, 4, 16)}, cache_dir=tmp_path / "plans")
    again = build_engine(src, precision="fp32", axes={"B": (1, 4, 16)}, cache_dir=tmp_path / "plans")
    assert not first.cache_hit and again.cache_hit and again.plan == first.plan and first.key in first.plan.name
    ref = OnnxEngine(src)
    with TensorRTEngine(first.plan) as eng:
        assert eng.inputs["x"].shape == ("B", 4) and eng.profiles["x"] == ((1, 4), (4, 4), (16, 4))
        for b in (1, 16, 3):
            x = np.random.default_rng(b).standard_normal((b, 4)).astype(np.float32)
            np.testing.assert_allclose(eng.run({"x": x})["y"], ref.run({"x": x})["y"], rtol=1e-4, atol=1e-5)
        assert eng._buffers.allocations == 4  # x and y at B=1, then both grown once at B=16; B=3 reuses
        with pytest.raises(InputError, match=r"input 'x' axis 0 is 17, outside the engine's optimisation profile \[1, 16\]"):
            eng.run({"x": np.zeros((17, 4), np.float32)})
