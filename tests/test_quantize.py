"""export/quantize.py on a small torch conv net exported to ONNX: fp16 / dynamic int8 / static int8
(QDQ; minmax, entropy, percentile) run in ONNX Runtime CPU close to fp32, float32 I/O, manifests.

Tolerances (relative L2 error of each output vs fp32, on inputs not used for calibration; measured
worst output in brackets, on an AVX2 EPYC without VNNI): fp16 < 1e-2 [4e-4], dynamic int8 < 3e-2
[2.4e-3], static int8 minmax / percentile / TensorRT-symmetric < 3e-2 [1.4e-2, 1.4e-2, 2.1e-2],
entropy < 1e-1 [5.6e-2: entropy clips the activation tails, which this random-input net's last
feature map is made of]. The TensorRT model is run as QDQ arithmetic (graph optimisation off: no
fused int8 CPU kernel), which is what TensorRT computes; CPU models keep uint8 weights, which no CPU
saturates (``test_int8_weights_saturate_where_uint8_do_not``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (the [export] extra builds the test net)")
onnx = pytest.importorskip("onnx", reason="onnx not installed (the [export] extra)")

from export.quantize import (  # noqa: E402
    main,
    onnx_specs,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_fp16,
)
from gear_edge.engines import OnnxEngine, TensorSpec, write_model_manifest  # noqa: E402
from gear_edge.errors import InputError  # noqa: E402
from gear_edge.manifest import Manifest, sha256_file  # noqa: E402

FP16_TOL = 1e-2
INT8_TOL = 3e-2
ENTROPY_TOL = 1e-1


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(32, 10)

    def forward(self, image):
        feats = self.body(image)
        return self.head(feats.mean(dim=(2, 3))), feats


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> Path:
    """The net in ONNX (dynamic batch 'B') with a source manifest (licence + source to be copied)."""
    torch.manual_seed(0)
    net = _Net().eval()
    path = tmp_path_factory.mktemp("quant") / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.randn(2, 3, 32, 32),), str(path), input_names=["image"], output_names=["logits", "feats"],
            dynamic_axes={"image": {0: "B"}, "logits": {0: "B"}, "feats": {0: "B"}}, opset_version=17, dynamo=False,
        )
    ins, outs = onnx_specs(path)
    write_model_manifest(path, inputs=ins, outputs=outs, licence="Apache-2.0", source="unit-test net (seed 0)",
                         precision="fp32", extra={"opset": 17}, tables={"export": {"net": "3 convs + linear"}})
    return path


def _calibration(n: int = 8, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [{"image": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def test_input() -> np.ndarray:
    return np.random.default_rng(99).standard_normal((4, 3, 32, 32)).astype(np.float32)  # not in calibration


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _run_qdq(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The model with graph optimisation off: Quantize/DequantizeLinear + float ops, exact integer grid
    arithmetic (TensorRT's explicit quantisation), no onnxruntime int8 CPU kernel."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))


def _check_variant(src: Path, dst: Path, manifest: Path, precision: str, x: np.ndarray, tol: float,
                   *, as_qdq: bool = False) -> OnnxEngine:
    ref = OnnxEngine(src).run({"image": x})
    eng = OnnxEngine(dst, threads=1)  # checks dst against the manifest written next to it
    assert eng.manifest is not None and eng.manifest.path == manifest == dst.with_suffix(".toml")
    assert all(s.dtype == np.float32 for s in (*eng.inputs.values(), *eng.outputs.values()))
    out = _run_qdq(dst, x) if as_qdq else eng.run({"image": x})
    for name in ("logits", "feats"):
        assert out[name].dtype == np.float32 and out[name].shape == ref[name].shape
        assert _rel_err(out[name], ref[name]) < tol, (precision, name, _rel_err(out[name], ref[name]))
    m = Manifest.load(manifest)
    assert (m.file, m.size, m.sha256) == (dst.name, dst.stat().st_size, sha256_file(dst))
    assert m.name == dst.stem and m.licence == "Apache-2.0" and m.source == "unit-test net (seed 0)"
    assert m.extra["precision"] == precision and m.extra["derived_from"] == src.name
    assert m.extra["derived_from_sha256"] == sha256_file(src)
    assert m.extra["opset"] == 17 and m.extra["export"] == {"net": "3 convs + linear"}  # copied from the source
    assert m.extra["inputs"] == [{"name": "image", "dtype": "float32", "shape": ["B", 3, 32, 32]}]
    assert [o["name"] for o in m.extra["outputs"]] == ["logits", "feats"]
    assert all(o["dtype"] == "float32" and o["shape"][0] == "B" for o in m.extra["outputs"])
    return eng


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_fp16(fp32, test_input, tmp_path):
    dst = tmp_path / "net.fp16.onnx"
    manifest = to_fp16(fp32, dst)
    _check_variant(fp32, dst, manifest, "fp16", test_input, FP16_TOL)
    model = onnx.load(str(dst))
    assert {i.data_type for i in model.graph.initializer if i.dims} == {onnx.TensorProto.FLOAT16}
    assert dst.stat().st_size < 0.6 * fp32.stat().st_size
    assert Manifest.load(manifest).extra["keep_io_types"] is True


def test_fp16_without_keeping_io_types(fp32, tmp_path):
    dst = tmp_path / "net.fp16io.onnx"
    to_fp16(fp32, dst, keep_io_types=False)
    eng = OnnxEngine(dst)
    assert eng.inputs["image"].dtype == np.float16 and eng.outputs["logits"].dtype == np.float16


def test_dynamic_int8(fp32, test_input, tmp_path):
    dst = tmp_path / "net.int8dyn.onnx"
    manifest = quantize_dynamic_int8(fp32, dst)
    _check_variant(fp32, dst, manifest, "int8-dynamic", test_input, INT8_TOL)
    assert "DynamicQuantizeLinear" in _ops(dst) or "MatMulInteger" in _ops(dst)
    assert Manifest.load(manifest).extra["weight_type"] == "uint8"


def _gemm_exact(path: Path, x: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """The dynamic-int8 head (DynamicQuantizeLinear + MatMulInteger + scales + bias) in exact numpy integers."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    w = next(v for k, v in inits.items() if k.endswith("_quantized")).astype(np.int64)
    w_zp = next(v for k, v in inits.items() if k.endswith("_zero_point")).astype(np.int64)
    w_scale = next(v for k, v in inits.items() if k.endswith("_scale"))
    f = feats.mean(axis=(2, 3))
    lo, hi = min(0.0, float(f.min())), max(0.0, float(f.max()))
    scale = (hi - lo) / 255
    zp = np.clip(np.round(-lo / scale), 0, 255)
    fq = np.clip(np.round(f / scale) + zp, 0, 255).astype(np.int64)
    return ((fq - int(zp)) @ (w - w_zp)).astype(np.float32) * np.float32(scale) * w_scale + inits["head.bias"]


@pytest.mark.parametrize("weight_type", ["uint8", "int8"])
def test_int8_weights_saturate_where_uint8_do_not(fp32, test_input, tmp_path, weight_type):
    """uint8 weights: onnxruntime's CPU kernel equals exact integer arithmetic on any CPU. int8 weights
    match it only on CPUs whose kernel does not saturate (VNNI, ARM); on AVX2-only x86 they drift."""
    dst = tmp_path / f"net.{weight_type}.onnx"
    quantize_dynamic_int8(fp32, dst, weight_type=weight_type)
    ref = OnnxEngine(fp32).run({"image": test_input})
    exact = _gemm_exact(dst, test_input, ref["feats"])
    assert _rel_err(exact, ref["logits"]) < 5e-3  # the quantisation noise itself is small
    drift = _rel_err(OnnxEngine(dst).run({"image": test_input})["logits"], exact)
    if weight_type == "uint8":
        assert drift < 1e-5
    else:
        print(f"int8 weights: kernel vs exact integer arithmetic {drift:.2e} on this CPU")


@pytest.fixture(scope="module")
def static_models(fp32) -> dict[str, tuple[Path, Path]]:
    """(model, manifest) per calibration method, quantised once (entropy calibration takes ~3 s)."""
    out = {}
    for method in ("minmax", "entropy", "percentile"):
        dst = fp32.parent / f"net.int8.{method}.onnx"
        out[method] = (dst, quantize_static_int8(fp32, dst, _calibration(), method=method, per_channel=True))
    return out


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8(fp32, test_input, static_models, method):
    dst, manifest = static_models[method]
    _check_variant(fp32, dst, manifest, "int8", test_input, ENTROPY_TOL if method == "entropy" else INT8_TOL)
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(dst)
    m = Manifest.load(manifest)
    assert m.extra["calibration_method"] == method and m.extra["calibration_samples"] == 8
    assert m.extra["quant_format"] == "QDQ" and m.extra["per_channel"] is True
    assert (m.extra["activation_type"], m.extra["weight_type"]) == ("uint8", "uint8")


def _activation_scales(path: Path) -> dict[str, float]:
    model = onnx.load(str(path))
    return {i.name: float(onnx.numpy_helper.to_array(i)) for i in model.graph.initializer
            if i.name.endswith("_scale") and not i.dims and "weight" not in i.name}


def test_entropy_calibration_clips_where_minmax_does_not(static_models):
    mm, en = _activation_scales(static_models["minmax"][0]), _activation_scales(static_models["entropy"][0])
    assert mm.keys() == en.keys() and len(mm) >= 3
    assert all(en[k] <= mm[k] * (1 + 1e-6) for k in mm)  # entropy never widens the min/max range
    assert sum(en[k] < 0.9 * mm[k] for k in mm) >= 2  # and really clips some tails
    assert Manifest.load(static_models["entropy"][1]).extra["calibration_bins"] == 2048


def test_static_int8_for_tensorrt_is_symmetric(fp32, test_input, tmp_path):
    dst = tmp_path / "net.int8trt.onnx"
    manifest = quantize_static_int8(fp32, dst, iter(_calibration(4)), for_tensorrt=True, max_samples=3)
    _check_variant(fp32, dst, manifest, "int8", test_input, INT8_TOL, as_qdq=True)
    model = onnx.load(str(dst))
    inits = {i.name: i for i in model.graph.initializer}
    zero_points = [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in model.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert Manifest.load(manifest).extra["calibration_samples"] == 3


def test_quantize_rejects_bad_input(fp32, tmp_path):
    with pytest.raises(InputError, match="calibration data is empty"):
        quantize_static_int8(fp32, tmp_path / "a.onnx", [])
    assert not (tmp_path / "a.onnx").exists()
    with pytest.raises(InputError, match=r"calibration item 0\): inputs missing \['image'\], unexpected \['img'\]"):
        quantize_static_int8(fp32, tmp_path / "b.onnx", [{"img": np.zeros((1, 3, 32, 32), np.float32)}])
    with pytest.raises(InputError, match=r"input 'image' has dtype float64"):
        quantize_static_int8(fp32, tmp_path / "c.onnx", [{"image": np.zeros((1, 3, 32, 32))}])
    with pytest.raises(InputError, match="weight_type must be 'int8' or 'uint8', got 'int4'"):
        quantize_dynamic_int8(fp32, tmp_path / "e.onnx", weight_type="int4")
    with pytest.raises(InputError, match="TensorRT takes symmetric int8 weights"):
        quantize_static_int8(fp32, tmp_path / "f.onnx", _calibration(1), for_tensorrt=True, weight_type="uint8")
    with pytest.raises(InputError, match="calibration method must be one of"):
        quantize_static_int8(fp32, tmp_path / "d.onnx", _calibration(1), method="kl")
    with pytest.raises(InputError, match="is the source model"):
        to_fp16(fp32, fp32)
    with pytest.raises(InputError, match="must end in .onnx"):
        to_fp16(fp32, tmp_path / "x.bin")
    with pytest.raises(InputError, match="does not exist"):
        to_fp16(tmp_path / "absent.onnx", tmp_path / "y.onnx")


def test_tampered_source_is_refused(fp32, tmp_path):
    src = tmp_path / "net.onnx"
    data = bytearray(fp32.read_bytes())
    data[-20] ^= 0x55
    src.write_bytes(bytes(data))
    (tmp_path / "net.toml").write_text(fp32.with_suffix(".toml").read_text())
    with pytest.raises(InputError, match="tampered"):
        to_fp16(src, tmp_path / "net.fp16.onnx")


def test_without_source_manifest_and_cli(fp32, tmp_path, test_input):
    src = tmp_path / "bare.onnx"
    src.write_bytes(fp32.read_bytes())  # no manifest next to it
    assert main(["fp16", str(src), str(tmp_path / "bare.fp16.onnx")]) == 0
    m = Manifest.load(tmp_path / "bare.fp16.toml")
    assert m.licence == "unspecified" and m.source == "derived from bare.onnx" and m.extra["precision"] == "fp16"
    np.savez(tmp_path / "c0.npz", image=_calibration(1)[0]["image"])
    assert main(["int8-static", str(src), str(tmp_path / "bare.int8.onnx"), "--calib-npz", str(tmp_path / "c0.npz")]) == 0
    assert OnnxEngine(tmp_path / "bare.int8.onnx").run({"image": test_input})["logits"].shape == (4, 10)
    assert main(["int8-static", str(src), str(tmp_path / "bare.int8b.onnx")]) == 2


def test_onnx_specs(fp32):
    ins, outs = onnx_specs(fp32)
    assert ins == [TensorSpec("image", ("B", 3, 32, 32), np.dtype(np.float32))]
    assert [o.name for o in outs] == ["logits", "feats"] and outs[0].shape == ("B", 10)
