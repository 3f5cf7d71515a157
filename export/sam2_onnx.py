"""SAM2 → ONNX: the image encoder and a batched prompt decoder, checked against sam2 (PyTorch) at export.

    python -m export.sam2_onnx --config tiny --checkpoint sam2.1_hiera_tiny.pt --out models/exported
    python -m export.sam2_onnx --config tiny --random-init --seed 0 --out /tmp/sam2 \\
        --precision fp32 fp16 int8 --calib-dir photos/

Needs the ``[export]`` extra: ``torch`` and ``sam2==1.1.0`` (an sdist: install it after torch with
``SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0``). ``--config`` is tiny / small /
base_plus / large (SAM2.1) or a config of the sam2 package (``configs/sam2/sam2_hiera_t.yaml``).
``--random-init`` builds the architecture with seeded random weights (tests, benchmarks): an
architecture and runtime check, not a segmenter.

Files written into ``--out`` (NAME = the checkpoint's stem, or ``sam2.1_hiera_<size>-random-s<seed>``):

* ``NAME.encoder.onnx``: ``image`` f32[1, 3, 1024, 1024] (RGB / 255, resized to 1024² without keeping
  the aspect ratio, ImageNet mean/std: :func:`gear_edge.segment.preprocess.preprocess`) →
  ``image_embed`` f32[1, 256, 64, 64] (with ``no_mem_embed`` added, as ``SAM2ImagePredictor.set_image``
  does for single images), ``high_res_feats_0`` f32[1, 32, 256, 256], ``high_res_feats_1`` f32[1, 64, 128, 128].
* ``NAME.decoder.onnx``: the three features, ``point_coords`` f32[B, P, 2] (x, y in pixels of the
  1024² model input, i.e. after ``SAM2Transforms.transform_coords``), ``point_labels`` f32[B, P]
  (1 foreground, 0 background, 2 / 3 box corners, -1 padding), ``mask_input`` f32[Bm, 1, 256, 256]
  (Bm = B: one previous mask per prompt; Bm = 1: one mask for all prompts, or zeros when there is none)
  and ``has_mask_input`` f32[1] (1: use ``mask_input``, as sam2 given ``mask_input``; 0: ignore it) →
  ``low_res_masks`` f32[B, 4, 256, 256] logits and ``iou_predictions`` f32[B, 4]. Output 0 is what
  ``SAM2ImagePredictor`` returns for ``multimask_output=False`` (the single-mask token, replaced by the
  best multimask output when its stability is below 0.98: sam2's dynamic multimask), outputs 1..3 what
  it returns for ``multimask_output=True``; so one graph serves both, with fixed output shapes. The
  logits are not clamped (sam2 clamps the low-res logits it returns to ±32 but thresholds and
  upsamples the unclamped ones). All control flow is arithmetic: one graph for every B ≥ 1, P ≥ 1.
  The graph is sam2's function rearranged for batched prompts (:mod:`export.sam2_decoder`: the image
  side computed once when it is shared, projections folded into the tokens, sub-pixel upscaling),
  about 2x faster than exporting sam2's modules as they are; the check below holds it to sam2.
* a manifest ``<file stem>.toml`` next to each file (name, file, sha256, size, licence, source,
  precision, ``[sam2]`` provenance, ``[verification]`` results, ``[[inputs]]`` / ``[[outputs]]``
  tensor specs), checked by :class:`gear_edge.engines.OnnxEngine` at load;
* with ``--precision fp16`` / ``int8``: ``NAME.encoder.fp16.onnx`` etc. (float32 I/O kept; int8 =
  static QDQ encoder calibrated on ``--calib-dir`` images, dynamic (default) or static decoder),
  via :mod:`export.sam2_quantize` and :mod:`export.quantize`;
* ``NAME.report.json``: every check and the quantisation report.

Right after export, ONNX Runtime runs against sam2's own ``SAM2ImagePredictor`` (``set_image`` /
``_predict``) on the same inputs; any output differing by more than ``TOLERANCE`` (error =
max |ort - torch| / max(1, max |torch|)) raises :class:`export.parity.ParityError` and the files are
removed. Derived precisions are compared with fp32 on images not used for calibration: mask IoU of
``logits > 0`` (informative masks only), logit and IoU-prediction errors; fp16 must keep the mean
mask IoU ≥ ``export.sam2_quantize.FP16_MIN_IOU`` (1 IoU point).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_graph import fold_shape_computations
from export.parity import ParityError, check_all
from export.sam2_decoder import decoder_class
from gear_edge.engines.manifest_check import manifest_path_for, write_model_manifest
from gear_edge.errors import GearEdgeError, InputError, MissingDependencyError
from gear_edge.manifest import Manifest, sha256_file

OPSET = 17
INPUT_SIZE = 1024
LOW_RES = 256
NUM_OUTPUTS = 4  # output 0: single-mask answer, 1..3: multimask answers
DEFAULT_LICENCE = "Apache-2.0"  # SAM2 code and released checkpoints
CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
_ALIASES = {"t": "tiny", "s": "small", "b+": "base_plus", "base-plus": "base_plus", "b": "base_plus", "l": "large"}
ENCODER_INPUT = "image"
FEATURES = ("image_embed", "high_res_feats_0", "high_res_feats_1")
PROMPTS = ("point_coords", "point_labels", "mask_input", "has_mask_input")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions")
BATCH, POINTS = "B", "P"  # names of the decoder's dynamic axes (TensorRT profiles use them)
MASK_BATCH = "Bm"  # mask_input's batch: 1 (no mask, or one mask for every prompt) or B
ENCODER_SHAPES = {"image": [1, 3, INPUT_SIZE, INPUT_SIZE], "image_embed": [1, 256, 64, 64],
                  "high_res_feats_0": [1, 32, 256, 256], "high_res_feats_1": [1, 64, 128, 128]}
DECODER_SHAPES = {**{n: ENCODER_SHAPES[n] for n in FEATURES}, "point_coords": [BATCH, POINTS, 2],
                  "point_labels": [BATCH, POINTS], "mask_input": [MASK_BATCH, 1, LOW_RES, LOW_RES], "has_mask_input": [1],
                  "low_res_masks": [BATCH, NUM_OUTPUTS, LOW_RES, LOW_RES], "iou_predictions": [BATCH, NUM_OUTPUTS]}
# ONNX Runtime vs PyTorch (fp32), per output: max |ort - torch| / max(1, max |torch|)
TOLERANCE = {"image_embed": 1e-4, "high_res_feats_0": 1e-4, "high_res_feats_1": 1e-4,
             "low_res_masks": 1e-4, "iou_predictions": 1e-4}
PRECISIONS = ("fp32", "fp16", "int8")
PROVENANCE_ATTR = "gear_edge_provenance"
MASK_LAYOUT = ("low_res_masks[:, 0] / iou_predictions[:, 0]: SAM2ImagePredictor multimask_output=False "
               "(incl. dynamic multimask via stability); [:, 1:4]: multimask_output=True")


# ---- dependencies -------------------------------------------------------------------------------

_INSTALL = ("pip install 'gear-edge[export]' && SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0")


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(f"SAM2 export needs torch (the [export] extra): {_INSTALL}") from exc
    return torch


def _sam2():
    _torch()
    try:
        import sam2
        import sam2.build_sam  # noqa: F401  (initialises sam2's hydra config search path)
    except ImportError as exc:
        raise MissingDependencyError(f"SAM2 export needs the sam2 package: {_INSTALL}") from exc
    return sam2


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(f"SAM2 export needs onnx (the [export] extra): {_INSTALL}") from exc
    return onnx


def versions() -> dict[str, str]:
    """Versions of the packages an export depends on (for manifests and cache keys)."""
    import importlib.metadata as md

    out = {}
    for pkg in ("sam2", "torch", "onnx", "onnxruntime"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


# ---- model --------------------------------------------------------------------------------------


def resolve_config(config: str) -> tuple[str, str]:
    """'tiny' / 't' / ... or a sam2 package config path → (config name for ``build_sam2``, short label)."""
    sam2 = _sam2()
    key = _ALIASES.get(config, config)
    if key in CONFIGS:
        return CONFIGS[key], key
    name = str(config).removeprefix("sam2/")
    base = Path(sam2.__file__).resolve().parent
    if name.endswith(".yaml") and (base / name).is_file():
        return name, Path(name).stem
    shipped = sorted(str(p.relative_to(base)) for p in (base / "configs").rglob("*.yaml"))
    raise InputError(
        f"unknown SAM2 config {config!r}: use one of {sorted(CONFIGS)} or a config of the sam2 package ({shipped})"
    )


def _perturb_constant_parameters(model, seed: int) -> list[str]:
    """Gives every parameter whose elements are all equal (LayerNorm weights and biases, zero
    position embeddings, ...) seeded noise, so random-init exports exercise those paths too:
    zeros → N(0, 0.02²), other constants c → c · (1 + 0.1 N(0, 1)). Returns the names changed."""
    torch = _torch()
    gen = torch.Generator().manual_seed(int(seed) + 1)
    changed = []
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            flat = p.detach().reshape(-1)
            if flat.numel() < 2 or not bool((flat == flat[0]).all()):
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype)
            if float(flat[0]) == 0.0:
                p.add_(0.02 * noise)
            else:
                p.mul_(1.0 + 0.1 * noise)
            changed.append(name)
    return changed


def build_model(
    config: str = "tiny",
    checkpoint: str | Path | None = None,
    *,
    random_init: bool = False,
    seed: int = 0,
    device: str = "cpu",
):
    """A sam2 model in eval mode: ``config`` with ``checkpoint`` weights, or seeded random weights.

    Random init: ``torch.manual_seed(seed)`` before ``build_sam2(config, ckpt_path=None)`` (the
    modules' own initialisers), then :func:`_perturb_constant_parameters` — deterministic for a given
    torch version. The model carries its provenance (config, checkpoint sha256 or seed) for manifests.
    """
    _sam2()
    torch = _torch()
    from sam2.build_sam import build_sam2

    if (checkpoint is None) == (not random_init):
        raise InputError("give exactly one of a checkpoint (--checkpoint FILE) or random_init=True (--random-init)")
    name, label = resolve_config(config)
    prov: dict[str, Any] = {"config": name, "size": label, "random_init": bool(random_init)}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise InputError(f"SAM2 checkpoint {checkpoint} does not exist")
        prov.update({"checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint)})
        try:
            model = build_sam2(name, ckpt_path=str(checkpoint), device=device, mode="eval")
        except Exception as exc:  # torch.load / state-dict errors: pickle, zip, key and shape mismatches
            raise InputError(f"{checkpoint} is not a SAM2 checkpoint for config {name}: {exc}") from exc
    else:
        torch.manual_seed(int(seed))
        model = build_sam2(name, ckpt_path=None, device=device, mode="eval")
        prov.update({"seed": int(seed), "perturbed_constants": len(_perturb_constant_parameters(model, seed))})
    if not getattr(model, "use_high_res_features_in_sam", False) or model.sam_mask_decoder.num_mask_tokens != NUM_OUTPUTS:
        raise InputError(
            f"config {name}: the exported layout needs high-resolution features and 3 multimask outputs "
            "(every SAM2 / SAM2.1 image config has them)"
        )
    if getattr(model, "image_size", INPUT_SIZE) != INPUT_SIZE:
        raise InputError(f"config {name}: image size {model.image_size}, the exporter handles {INPUT_SIZE} only")
    model.eval()
    setattr(model, PROVENANCE_ATTR, prov)
    return model


def default_name(model) -> str:
    prov = getattr(model, PROVENANCE_ATTR, {})
    if prov.get("checkpoint"):
        return Path(prov["checkpoint"]).stem
    size = prov.get("size", "model")
    stem = f"sam2.1_hiera_{size}" if size in CONFIGS else size
    return f"{stem}-random-s{prov.get('seed', 0)}" if prov.get("random_init") else stem


@lru_cache(maxsize=1)
def _encoder_class():
    """The exported encoder module (defined lazily: importing this file needs no torch); the decoder
    is :func:`export.sam2_decoder.decoder_class`."""
    torch = _torch()

    class EncoderOnnx(torch.nn.Module):
        """image [1, 3, 1024, 1024] → (image_embed, high_res_feats_0, high_res_feats_1), as set_image."""

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, image):
            m = self.model
            backbone_out = m.forward_image(image)
            _, feats, _, _ = m._prepare_backbone_features(backbone_out)
            if m.directly_add_no_mem_embed:
                feats[-1] = feats[-1] + m.no_mem_embed
            # the predictor's fixed feature sizes (strides 4, 8, 16 of the 1024² input): static output shapes
            sizes = [(INPUT_SIZE // s, INPUT_SIZE // s) for s in (4, 8, 16)]
            maps = [f.permute(1, 2, 0).reshape(1, -1, h, w) for f, (h, w) in zip(feats, sizes)]
            return maps[-1], maps[0], maps[1]

    return EncoderOnnx


# ---- sam2 references (the real predictor code path) ---------------------------------------------


def check_image(seed: int = 0, height: int = 768, width: int = 1024) -> np.ndarray:
    """A deterministic uint8 RGB test picture (gradients, discs, bars, mild noise) for export checks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / width * 200, yy / height * 180, (xx + yy) / (width + height) * 120 + 60], -1)
    for _ in range(12):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(30, 160)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    for _ in range(6):
        y0, x0 = int(rng.uniform(0, height - 40)), int(rng.uniform(0, width - 40))
        img[y0:y0 + int(rng.uniform(10, 200)), x0:x0 + int(rng.uniform(10, 300))] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def predictor_for(model, image: np.ndarray):
    """``SAM2ImagePredictor(model)`` after ``set_image(image)``; returns (predictor, model input
    f32[1, 3, 1024, 1024] as sam2 transformed it, features dict of numpy arrays).

    The predictor's ``_orig_hw`` is then set to 256² so ``_predict`` returns the low-res logits
    themselves (bilinear resampling to the same size is the identity) and unclamped.
    """
    torch = _torch()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(model)
    with torch.inference_mode():
        x = pred._transforms(image)[None].float()
        pred.set_image(image)
    f = pred._features
    feats = {"image_embed": f["image_embed"].numpy(), "high_res_feats_0": f["high_res_feats"][0].numpy(),
             "high_res_feats_1": f["high_res_feats"][1].numpy()}
    pred._orig_hw = [(LOW_RES, LOW_RES)]
    return pred, x.numpy(), feats


def predictor_from_features(model, feats: Mapping[str, np.ndarray]):
    """A ``SAM2ImagePredictor`` whose image features are ``feats`` (as ``set_image`` stores them)."""
    torch = _torch()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(model)
    pred._features = {
        "image_embed": torch.from_numpy(np.ascontiguousarray(feats["image_embed"])),
        "high_res_feats": [torch.from_numpy(np.ascontiguousarray(feats[n])) for n in FEATURES[1:]],
    }
    pred._is_image_set = True
    pred._orig_hw = [(LOW_RES, LOW_RES)]
    return pred


def reference_decode(pred, coords: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None,
                     multimask_output: bool) -> tuple[np.ndarray, np.ndarray]:
    """sam2's ``SAM2ImagePredictor._predict`` (prompts already in 1024² model pixels) →
    (unclamped low-res logits [B, M, 256, 256], iou [B, M]); M = 3 or 1."""
    torch = _torch()
    with torch.inference_mode():
        masks, iou, _ = pred._predict(
            torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(labels)).to(torch.int),
            mask_input=None if mask_input is None else torch.from_numpy(np.ascontiguousarray(mask_input, dtype=np.float32)),
            multimask_output=multimask_output,
            return_logits=True,
        )
    return masks.float().numpy(), iou.float().numpy()


def decoder_feeds(feats: Mapping[str, np.ndarray], coords: np.ndarray, labels: np.ndarray,
                  mask_input: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The decoder's feed dict; ``mask_input`` None → one zero mask (Bm = 1) with ``has_mask_input`` 0."""
    has = mask_input is not None
    return {
        **{n: np.ascontiguousarray(feats[n], dtype=np.float32) for n in FEATURES},
        "point_coords": np.ascontiguousarray(coords, dtype=np.float32),
        "point_labels": np.ascontiguousarray(labels, dtype=np.float32),
        "mask_input": (np.ascontiguousarray(mask_input, dtype=np.float32) if has
                       else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)),
        "has_mask_input": np.array([1.0 if has else 0.0], np.float32),
    }


def compare_decoder(engine, pred, feats, coords, labels, mask_input=None, where: str = "decoder",
                    tolerances: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One prompt batch through ``engine`` (the exported decoder) and through sam2's predictor in both
    modes; raises ParityError above the tolerances. Returns the errors per mode and output."""
    tol = dict(tolerances or {n: TOLERANCE[n] for n in DECODER_OUTPUTS})
    out = engine.run(decoder_feeds(feats, coords, labels, mask_input))
    b = coords.shape[0]
    shape = out["low_res_masks"].shape
    if shape != (b, NUM_OUTPUTS, LOW_RES, LOW_RES) or out["iou_predictions"].shape != (b, NUM_OUTPUTS):
        raise ParityError(f"{where}: outputs {list(shape)} / {list(out['iou_predictions'].shape)}, "
                          f"expected [{b}, {NUM_OUTPUTS}, {LOW_RES}, {LOW_RES}] / [{b}, {NUM_OUTPUTS}]")
    report = {}
    for multimask, sl in ((True, slice(1, NUM_OUTPUTS)), (False, slice(0, 1))):
        ref_masks, ref_iou = reference_decode(pred, coords, labels, mask_input, multimask)
        mode = "multimask" if multimask else "single"
        report[mode] = check_all(
            f"{where} ({mode}, B={b}, P={coords.shape[1]}{'' if mask_input is None else f', {len(mask_input)} mask input(s)'})",
            {"low_res_masks": out["low_res_masks"][:, sl], "iou_predictions": out["iou_predictions"][:, sl]},
            {"low_res_masks": ref_masks, "iou_predictions": ref_iou},
            tol,
        )
    return report


def check_prompts(seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Prompt batches of the export check: (label, coords [B, P, 2], labels [B, P], number of mask
    inputs: 0 none, B one per prompt, 1 one shared by all prompts)."""
    rng = np.random.default_rng(seed)
    coords1 = rng.uniform(0, INPUT_SIZE, (1, 1, 2)).astype(np.float32)
    coords3 = rng.uniform(0, INPUT_SIZE, (3, 2, 2)).astype(np.float32)
    labels3 = np.array([[1, 0], [2, 3], [1, -1]], np.float32)  # fg+bg, a box, fg + padding
    return [
        ("B=1 P=1", coords1, np.ones((1, 1), np.float32), 0),
        ("B=3 P=2", coords3, labels3, 0),
        ("B=3 P=2 masks", coords3, labels3, 3),
        ("B=3 P=2 one mask", coords3, labels3, 1),
    ]


def check_mask_input(batch: int, seed: int = 0) -> np.ndarray:
    """Smooth random logits f32[batch, 1, 256, 256] in about ±8 (a plausible previous-mask input)."""
    import cv2

    rng = np.random.default_rng(seed + 7)
    out = np.empty((batch, 1, LOW_RES, LOW_RES), np.float32)
    for i in range(batch):
        coarse = rng.normal(0, 1, (8, 8)).astype(np.float32)
        out[i, 0] = cv2.resize(coarse, (LOW_RES, LOW_RES), interpolation=cv2.INTER_CUBIC) * 8.0
    return out


# ---- ONNX export --------------------------------------------------------------------------------


def _tidy_onnx(path: Path, shapes: Mapping[str, Sequence[int | str]]) -> None:
    """Declares the graph inputs' and outputs' shapes (ints fixed, strings named dynamic axes; the
    tracer leaves some outputs as anonymous symbols), drops its intermediate shape annotations
    (``value_info``), folds static shape arithmetic (:func:`fold_shape_computations`) and checks the
    model, including strict shape inference against the declarations."""
    onnx = _onnx()
    model = onnx.load(str(path))
    del model.graph.value_info[:]
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name not in shapes:
            continue
        dims = vi.type.tensor_type.shape.dim
        want = list(shapes[vi.name])
        if len(dims) != len(want):
            raise ParityError(f"{path.name}: {vi.name} has rank {len(dims)}, expected {len(want)} ({want})")
        for d, w in zip(dims, want):
            if isinstance(w, int):
                d.ClearField("dim_param")
                d.dim_value = w
            else:
                d.ClearField("dim_value")
                d.dim_param = w
    fold_shape_computations(model)
    onnx.checker.check_model(model)
    try:
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:
        raise ParityError(f"{path.name}: the declared tensor shapes contradict the graph ({exc})") from exc
    onnx.save(model, str(path))


def _torch_export(module, args: tuple, path: Path, input_names, output_names, dynamic_axes=None, *,
                  shapes: Mapping[str, Sequence[int | str]]) -> None:
    torch = _torch()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        torch.onnx.export(
            module, args, str(path), input_names=list(input_names), output_names=list(output_names),
            dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    _tidy_onnx(path, shapes)


@contextmanager
def _static_position_embedding(model):
    """While exporting, Hiera's ``_get_pos_embed(hw)`` is computed with Python-int sizes and
    ``repeat`` instead of ``tile``: the traced ``tile`` becomes ONNX ``If`` nodes on ranks, which
    onnxruntime's symbolic shape inference (int8 quantisation) cannot handle and TensorRT need not see.
    The replacement must equal sam2's own value exactly (checked here), and the export check
    compares the whole encoder with the unpatched model."""
    torch = _torch()
    import torch.nn.functional as F

    trunk = model.image_encoder.trunk
    if not (hasattr(trunk, "_get_pos_embed") and hasattr(trunk, "pos_embed") and hasattr(trunk, "pos_embed_window")):
        yield
        return

    def static(hw):
        h, w = (int(v) for v in hw)
        pos = F.interpolate(trunk.pos_embed, size=(h, w), mode="bicubic")
        win = trunk.pos_embed_window
        reps = [int(a) // int(b) for a, b in zip((1, int(trunk.pos_embed.shape[1]), h, w), win.shape)]
        return (pos + win.repeat(reps)).permute(0, 2, 3, 1)

    side = INPUT_SIZE // int(trunk.patch_embed.proj.stride[0])
    with torch.no_grad():
        if not torch.equal(static((side, side)), trunk._get_pos_embed((side, side))):
            raise ParityError("sam2's Hiera position embedding changed; export/sam2_onnx.py must follow it")
    trunk._get_pos_embed = static
    try:
        yield
    finally:
        del trunk._get_pos_embed  # back to the class method


def _provenance_table(model) -> dict[str, Any]:
    prov = dict(getattr(model, PROVENANCE_ATTR, {}))
    v = versions()
    return {**prov, "sam2_version": v["sam2"], "torch_version": v["torch"], "input_size": INPUT_SIZE,
            "preprocess": "RGB / 255, resize to 1024x1024 (bilinear, antialias; aspect not kept), ImageNet mean/std"}


def _source_text(model) -> str:
    prov = getattr(model, PROVENANCE_ATTR, {})
    base = f"sam2 {versions()['sam2']} config {prov.get('config', '?')}"
    if prov.get("checkpoint"):
        return f"{base}, checkpoint {prov['checkpoint']} (sha256 {prov['checkpoint_sha256']})"
    if prov.get("random_init"):
        return f"{base}, random-init seed {prov.get('seed')} (not a trained model)"
    return f"{base}, weights of unknown origin (model not built by export.sam2_onnx.build_model)"


def write_manifest(path: Path, model, role: str, *, licence: str, name: str | None = None,
                   verification: Mapping[str, Any] | None = None) -> Path:
    """The fp32 manifest of an exported file (see the module docstring for its keys)."""
    from export.quantize import onnx_specs

    inputs, outputs = onnx_specs(path)
    tables: dict[str, dict[str, Any]] = {"sam2": _provenance_table(model)}
    if role == "decoder":
        tables["sam2"].update({"mask_layout": MASK_LAYOUT, "point_labels": "1 fg, 0 bg, 2/3 box corners, -1 padding",
                               "point_coords": "x, y in pixels of the 1024x1024 model input", "logits_clamped": False})
    if verification:
        tables["verification"] = dict(verification)
    return write_model_manifest(
        path, inputs=inputs, outputs=outputs, licence=licence, source=_source_text(model),
        name=name or path.stem, precision="fp32", extra={"role": role, "opset": OPSET, "format": "gear_edge.sam2/1"},
        tables=tables,
    )


def _flat_report(prefix: str, errors: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {f"{prefix}{name}_error": float(e["error"]) for name, e in errors.items()}


def remove_outputs(*paths: Path) -> None:
    """Deletes exported files and their manifests (after a failed check)."""
    for p in paths:
        for q in (p, manifest_path_for(p)):
            if q.exists():
                q.unlink()


def export_encoder(model, path: str | Path, *, check: bool = True, image: np.ndarray | None = None,
                   reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
                   licence: str = DEFAULT_LICENCE, name: str | None = None, threads: int | None = None,
                   keep_failed: bool = False) -> Path:
    """Exports the image encoder to ``path`` (+ manifest) and, with ``check``, compares ONNX Runtime
    with ``SAM2ImagePredictor.set_image`` on ``image`` (default :func:`check_image`); ``reference``:
    (model input, features) of :func:`predictor_for` when the caller has them already. Returns ``path``."""
    from gear_edge.engines import OnnxEngine

    torch = _torch()
    path = Path(path)
    enc_cls = _encoder_class()
    t0 = time.perf_counter()
    with _static_position_embedding(model):
        _torch_export(enc_cls(model).eval(), (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), path, [ENCODER_INPUT],
                      FEATURES, shapes=ENCODER_SHAPES)
    export_s = time.perf_counter() - t0
    write_manifest(path, model, "encoder", licence=licence, name=name)
    if not check:
        return path
    try:
        t0 = time.perf_counter()
        if reference is None:
            _, x, ref = predictor_for(model, check_image() if image is None else image)
        else:
            x, ref = reference
        engine = OnnxEngine(path, threads=threads)  # also checks the manifest just written
        out = engine.run({ENCODER_INPUT: x})
        errors = check_all(f"{path.name}", out, ref, {n: TOLERANCE[n] for n in FEATURES})
    except ParityError:
        if not keep_failed:
            remove_outputs(path)
        raise
    verification = {"reference": "sam2 SAM2ImagePredictor.set_image", "metric": "max|ort-torch| / max(1, max|torch|)",
                    "tolerance": TOLERANCE["image_embed"], **_flat_report("", errors),
                    "export_s": round(export_s, 2), "check_s": round(time.perf_counter() - t0, 2)}
    write_manifest(path, model, "encoder", licence=licence, name=name, verification=verification)
    return path


def export_decoder(model, path: str | Path, *, check: bool = True, image: np.ndarray | None = None,
                   features: Mapping[str, np.ndarray] | None = None, licence: str = DEFAULT_LICENCE,
                   name: str | None = None, threads: int | None = None, keep_failed: bool = False) -> Path:
    """Exports the prompt decoder to ``path`` (+ manifest) and, with ``check``, compares ONNX Runtime
    with ``SAM2ImagePredictor._predict`` (both modes, with and without mask input, several B and P)
    on the features of ``image`` (or the given ``features``); returns ``path``."""
    from gear_edge.engines import OnnxEngine

    torch = _torch()
    path = Path(path)
    dec_cls = decoder_class()
    b, p = 3, 2  # traced with sizes other than 1 so no axis is specialised
    args = (
        torch.zeros(1, 256, 64, 64), torch.zeros(1, 32, 256, 256), torch.zeros(1, 64, 128, 128),
        torch.full((b, p, 2), 512.0), torch.ones(b, p), torch.zeros(b, 1, LOW_RES, LOW_RES), torch.zeros(1),  # Bm = B
    )
    axes = {"point_coords": {0: BATCH, 1: POINTS}, "point_labels": {0: BATCH, 1: POINTS}, "mask_input": {0: MASK_BATCH},
            "low_res_masks": {0: BATCH}, "iou_predictions": {0: BATCH}}
    t0 = time.perf_counter()
    _torch_export(dec_cls(model).eval(), args, path, FEATURES + PROMPTS, DECODER_OUTPUTS, axes, shapes=DECODER_SHAPES)
    export_s = time.perf_counter() - t0
    write_manifest(path, model, "decoder", licence=licence, name=name)
    if not check:
        return path
    try:
        t0 = time.perf_counter()
        if features is None:
            pred, _, feats = predictor_for(model, check_image() if image is None else image)
        else:
            feats, pred = dict(features), predictor_from_features(model, features)
        engine = OnnxEngine(path, threads=threads)
        verification: dict[str, Any] = {"reference": "sam2 SAM2ImagePredictor._predict",
                                        "metric": "max|ort-torch| / max(1, max|torch|)",
                                        "tolerance": TOLERANCE["low_res_masks"]}
        worst: dict[str, float] = {}
        cases = []
        for label, coords, labels, n_masks in check_prompts():
            mask = check_mask_input(n_masks) if n_masks else None
            rep = compare_decoder(engine, pred, feats, coords, labels, mask, where=path.name)
            cases.append(label)
            for mode in rep.values():
                for out_name, e in mode.items():
                    worst[out_name] = max(worst.get(out_name, 0.0), float(e["error"]))
    except ParityError:
        if not keep_failed:
            remove_outputs(path)
        raise
    verification.update({f"{k}_error": v for k, v in worst.items()})
    verification.update({"cases": cases, "modes": ["multimask", "single"], "export_s": round(export_s, 2),
                         "check_s": round(time.perf_counter() - t0, 2)})
    write_manifest(path, model, "decoder", licence=licence, name=name, verification=verification)
    return path


# ---- command line -------------------------------------------------------------------------------


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", default="tiny", help="tiny | small | base_plus | large (SAM2.1) or a sam2 package config path")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="sam2 checkpoint (.pt) matching --config")
    src.add_argument("--random-init", action="store_true", help="seeded random weights (tests, benchmarks; not a segmenter)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-init")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--name", default=None, help="file name stem (default: checkpoint stem or sam2.1_hiera_<size>-random-s<seed>)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS, help="fp32 is always written")
    ap.add_argument("--calib-dir", type=Path, default=None, help="int8: folder of calibration images")
    ap.add_argument("--eval-dir", type=Path, default=None,
                    help="fp16/int8 report: folder of evaluation images (default: the last fifth of --calib-dir, held out)")
    ap.add_argument("--calib-count", type=int, default=32, help="at most this many calibration images")
    ap.add_argument("--eval-count", type=int, default=8,
                    help="at most this many evaluation images (the fp32 outputs of each are kept: ~80 MB per image)")
    ap.add_argument("--decoder-int8", choices=("dynamic", "static"), default="dynamic")
    ap.add_argument("--points-per-side", type=int, default=8, help="click grid of the fp16/int8 report")
    ap.add_argument("--licence", default=DEFAULT_LICENCE, help="licence of the weights (default: SAM2's Apache-2.0)")
    ap.add_argument("--check-image", type=Path, default=None, help="image for the export check (default: a synthetic picture)")
    ap.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads")
    ap.add_argument("--allow-fp16-drop", action="store_true", help="keep fp16 files that lose more than 1 IoU point")
    ap.add_argument("--keep-failed", action="store_true", help="keep files that fail their check (for debugging)")


def _split_images(args) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    from export.sam2_quantize import load_images

    calib = load_images(args.calib_dir) if args.calib_dir else []
    if args.eval_dir:
        evaluation = load_images(args.eval_dir)
        names = {n for n, _ in evaluation}
        if args.calib_dir and Path(args.calib_dir).resolve() == Path(args.eval_dir).resolve():
            raise InputError("--eval-dir must not be --calib-dir: the report needs images not used for calibration")
        overlap = [n for n, _ in calib if n in names]
        if overlap:
            print(f"warning: {len(overlap)} file names are in both --calib-dir and --eval-dir", file=sys.stderr)
    elif calib:
        if len(calib) < 2:
            raise InputError(f"{args.calib_dir}: need at least 2 images to hold some out for the report (or pass --eval-dir)")
        n_eval = max(1, len(calib) // 5)
        calib, evaluation = calib[:-n_eval], calib[-n_eval:]
    else:
        evaluation = [(f"synthetic-{i}", check_image(seed=100 + i)) for i in range(3)]
    return calib[: args.calib_count], evaluation[: args.eval_count]


def run_export(args) -> dict[str, Any]:
    """The whole export as the command line runs it; returns the report (also written as JSON)."""
    torch = _torch()
    if args.threads:
        torch.set_num_threads(args.threads)
    needs_images = [p for p in args.precision if p != "fp32"]
    if "int8" in args.precision and not args.calib_dir:
        raise InputError("--precision int8 needs --calib-dir (a folder of calibration images)")
    calib, evaluation = _split_images(args) if needs_images else ([], [])
    image = check_image()
    if args.check_image:
        import cv2

        bgr = cv2.imread(str(args.check_image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"--check-image {args.check_image}: not a readable image")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    t0 = time.perf_counter()
    model = build_model(args.config, args.checkpoint, random_init=args.random_init, seed=args.seed)
    name = args.name or default_name(model)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"encoder": args.out / f"{name}.encoder.onnx", "decoder": args.out / f"{name}.decoder.onnx"}
    report: dict[str, Any] = {"name": name, "versions": versions(), "provenance": getattr(model, PROVENANCE_ATTR),
                              "build_s": round(time.perf_counter() - t0, 2)}
    _, x, feats = predictor_for(model, image)
    export_encoder(model, files["encoder"], reference=(x, feats), licence=args.licence, threads=args.threads,
                   keep_failed=args.keep_failed)
    export_decoder(model, files["decoder"], features=feats, licence=args.licence, threads=args.threads,
                   keep_failed=args.keep_failed)
    report["fp32"] = {role: {"file": str(p), "verification": Manifest.load(manifest_path_for(p)).extra["verification"]}
                      for role, p in files.items()}
    del model, x, feats  # the torch side is done; the quantisation below needs only the files
    if needs_images:
        from export.sam2_quantize import derive_precisions

        report["calibration_images"] = [n for n, _ in calib]
        report["evaluation_images"] = [n for n, _ in evaluation]
        report.update(derive_precisions(
            files, needs_images, calibration=[im for _, im in calib], evaluation=[im for _, im in evaluation],
            decoder_int8=args.decoder_int8, points_per_side=args.points_per_side, threads=args.threads,
            strict_fp16=not args.allow_fp16_drop, keep_failed=args.keep_failed,
        ))
    report["total_s"] = round(time.perf_counter() - t0, 2)
    out = args.out / f"{name}.report.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    report["report_file"] = str(out)
    return report


def cli(args) -> int:
    try:
        report = run_export(args)
    except (GearEdgeError, ParityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for role, r in report["fp32"].items():
        v = r["verification"]
        errs = ", ".join(f"{k[:-6]} {v[k]:.2g}" for k in v if k.endswith("_error"))
        print(f"{r['file']}: ONNX Runtime vs sam2 {errs} (tolerance {v['tolerance']:g})")
    for prec in ("fp16", "int8"):
        if prec in report:
            rep = report[prec]["report"]["end_to_end"]
            ious = ", ".join(f"{m} IoU mean {s['iou_mean']:.4f}" if s["iou_mean"] is not None else f"{m}: all degenerate"
                             for m, s in rep.items())
            print(f"{prec}: {', '.join(report[prec]['files'].values())}: vs fp32 {ious}")
    print(f"report: {report['report_file']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.sam2_onnx", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return cli(ap.parse_args(argv))


__all__ = [
    "CONFIGS", "DECODER_OUTPUTS", "FEATURES", "OPSET", "PROMPTS", "PROVENANCE_ATTR", "TOLERANCE", "ParityError",
    "add_arguments",
    "build_model", "check_image", "cli", "compare_decoder", "decoder_feeds", "default_name", "export_decoder",
    "export_encoder", "main", "predictor_for", "predictor_from_features", "reference_decode", "remove_outputs",
    "resolve_config", "run_export", "versions",
]

if __name__ == "__main__":
    sys.exit(main())
