"""Florence-2 region captioner → ONNX: vision encoder, text encoder, decoder step with KV cache.

    python -m export.captioner_onnx --checkpoint DIR --out models/captioner [--precision fp16]
    python -m export.captioner_onnx --random-init --tiny --seed 0 --out /tmp/captioner

``--checkpoint`` takes a transformers-native Florence-2 directory (``Florence2ForConditionalGeneration``,
e.g. ``florence-community/Florence-2-base``; no ``trust_remote_code``) with its ``tokenizer.json``
(or the files ``AutoTokenizer`` converts to one) and ``preprocessor_config.json`` (image size,
mean/std; 768 and ImageNet when absent). ``--random-init --tiny`` builds a random-initialised tiny
model of the same architecture and a byte-level BPE tokenizer trained on a built-in corpus: an
architecture / runtime check, not a captioner.

Written into ``--out`` (loaded by :class:`gear_edge.describe.captioner.Captioner`):

* ``vision_encoder.onnx``  ``pixel_values`` f32[batch, 3, S, S] → ``image_features`` f32[batch, Ni, D]
  (DaViT backbone + projection + position embeddings: the tokens Florence-2 puts in place of ``<image>``);
* ``text_encoder.onnx``    ``image_features``, ``input_ids`` i64[batch, prompt] (``<s> prompt </s>``),
  ``attention_mask`` i64[batch, prompt] → ``cross_key_{i}`` / ``cross_value_{i}`` f32[batch, H, enc, Dh]
  for every decoder layer i (the BART encoder over [image tokens; prompt], projected once for
  the decoder's cross-attention; enc = Ni + prompt);
* ``decoder.onnx``         one decoding step: ``input_ids`` / ``position_ids`` i64[batch, 1],
  ``attention_mask`` i64[batch, total] (self-attention keys: past + this token; 0 = ignored),
  ``encoder_attention_mask`` i64[batch, enc], ``past_key_{i}`` / ``past_value_{i}``
  f32[batch, H, past, Dh] (total = past + 1), the cross K/V → ``logits`` f32[batch, V],
  ``present_key_{i}`` / ``present_value_{i}`` f32[batch, H, total, Dh].
  The runtime starts with one zero "sink" slot masked out (past = 1), so no tensor ever has a
  zero-length axis (TensorRT profiles need dims >= 1);
* a manifest ``<stem>.toml`` next to each file (sha256, size, licence, source, precision, tensor
  specs), ``tokenizer.json`` (+ ``tokenizer.toml``) and ``captioner.json`` (prompt, image size,
  mean/std, crop settings, special ids, generation settings, verification results).

Right after export ONNX Runtime is run against PyTorch on the same inputs: every output of every
file must agree within ``TOLERANCE[precision]`` (max |a - b| / max(1, max |b|)), else
:class:`ExportCheckError`; greedy token ids of the exported files vs ``model.generate`` are
reported (and must be identical for fp32 when ``require_identical_tokens``).

Precision: fp16 converts every file with float32 I/O kept (``export.quantize.to_fp16``,
onnxruntime's float16 converter); int8 quantises the MatMul/Gemm weights of all three files
dynamically (``export.quantize.quantize_dynamic_int8``): the vision encoder's convolutions stay
fp32 (onnxruntime CPU has no int8-weight ConvInteger kernel; for TensorRT int8 calibrate the
vision file with ``export.quantize.quantize_static_int8(..., for_tensorrt=True)`` instead).
``--tensorrt-dir`` builds TensorRT plans of the exported files with ``export.build_engine``
(needs tensorrt and a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.crops import IMAGENET_MEAN, IMAGENET_STD
from gear_edge.engines.base import TensorSpec
from gear_edge.engines.manifest_check import manifest_path_for, write_model_manifest
from gear_edge.errors import GearEdgeError, InputError, MissingDependencyError
from gear_edge.manifest import Manifest, sha256_file

CONFIG_NAME = "captioner.json"
CONFIG_FORMAT = "gear_edge.captioner/1"
FILES = {"vision_encoder": "vision_encoder.onnx", "text_encoder": "text_encoder.onnx", "decoder": "decoder.onnx"}
TOKENIZER_FILE = "tokenizer.json"
PRECISIONS = ("fp32", "fp16", "int8")
OPSET = 17  # TorchScript exporter
DYNAMO_OPSET = 18  # the dynamo exporter's lowest
MASK_NEG = -1.0e4  # additive attention bias of masked keys: exp() underflows to exactly 0 in fp32, finite in fp16
# ONNX Runtime vs PyTorch, per output: max |ort - torch| / max(1, max |torch|)
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "int8": 2.5e-1}

# Florence-2 task prompts (the processor's expansions of the task tokens); {region} = four location tokens
TASKS = {
    "region": "What does the region {region} describe?",  # <REGION_TO_DESCRIPTION>
    "caption": "What does the image describe?",  # <CAPTION>
    "detailed": "Describe in detail what is shown in the image.",  # <DETAILED_CAPTION>
}
# crop settings per task: a region prompt points at the region inside a crop with context around it
TASK_CROPS = {
    "region": {"context": 1.6, "letterbox": False, "background": "keep"},
    "caption": {"context": 1.15, "letterbox": False, "background": "keep"},
    "detailed": {"context": 1.15, "letterbox": False, "background": "keep"},
}
LOCATION_BINS = 1000
DEFAULT_MAX_NEW_TOKENS = 32  # when the checkpoint's generation config sets none (region descriptions are short)
LOCATION_TOKEN = "<loc_{}>"

FLORENCE2_LICENCE = "MIT"
TINY_LICENCE = "Apache-2.0 (random weights generated by gear_edge; Florence-2 architecture from transformers)"

# the tiny random model: same architecture, minute dims (about 0.3 M parameters)
TINY_IMAGE_SIZE = 64
TINY_VISION = {
    "depths": [1, 1, 1, 1], "embed_dim": [16, 24, 32, 48], "num_heads": [2, 2, 2, 2], "num_groups": [2, 2, 2, 2],
    "window_size": 4, "projection_dim": 32, "drop_path_rate": 0.0, "max_position_embeddings": 16,
    "max_temporal_embeddings": 4, "initializer_range": 0.3,
}
TINY_TEXT = {
    "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 128, "dropout": 0.0,
    "attention_dropout": 0.0, "activation_dropout": 0.0, "init_std": 0.3,
}
# init std 0.3 instead of 0.02: a random model at 0.02 emits </s> first for every input
TINY_GENERATION = {"max_new_tokens": 16, "num_beams": 1, "no_repeat_ngram_size": 3, "length_penalty": 1.0,
                   "early_stopping": False, "forced_bos_token_id": None, "forced_eos_token_id": None}
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, as in BART / Florence-2
TINY_CORPUS = (
    "a red mug on a wooden table", "a pair of scissors next to a sheet of paper", "a black cat sitting on a sofa",
    "a person holding a blue umbrella in the rain", "a white plate with a slice of cake", "a green plant in a pot",
    "a yellow taxi parked on the street", "a stack of books on a shelf", "a metal spoon in a glass bowl",
    "a brown dog lying on the grass", "an open laptop with a black keyboard", "a bottle of water on the desk",
    "a small orange box with a label", "a silver knife on a cutting board", "the handle of a frying pan",
    "a wooden chair by the window", "a striped towel hanging on a hook", "a cardboard box marked fragile",
    "a bunch of bananas in a basket", "a tall lamp in the corner of the room", "the wheel of a bicycle",
    "a blue cup with white dots", "a sign with red letters", "a round clock on the wall",
    "What does the region describe?", "What does the image describe?",
    "Describe in detail what is shown in the image.",
)


class ExportCheckError(GearEdgeError):
    """ONNX Runtime disagrees with PyTorch beyond the stated tolerance after an export."""


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("the captioner export needs torch: pip install 'gear-edge[export]'") from exc
    return torch


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Runs the block with ``n`` torch intra-op threads (None: unchanged), restoring the setting after.

    Small models run fastest on one thread; several OpenMP threads on a loaded machine can be
    hundreds of times slower (each tiny op waits at a barrier for a descheduled thread)."""
    torch = _torch()
    if not n:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _transformers():
    try:
        import transformers
        from transformers import Florence2Config, Florence2ForConditionalGeneration  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "the captioner export needs transformers with native Florence-2 (>= 4.56): pip install 'gear-edge[export]'"
        ) from exc
    return transformers


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError("the captioner export needs tokenizers: pip install tokenizers") from exc
    return tokenizers


# ---- tokenizer and models -----------------------------------------------------------------------


def build_tiny_tokenizer(bpe_vocab: int = 400, location_bins: int = LOCATION_BINS):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on a built-in caption corpus: ids 0..3 are
    ``<s> <pad> </s> <unk>``, then the BPE vocabulary, ``<loc_0>``..``<loc_{bins-1}>`` and ``<image>``
    (special tokens, like Florence-2's). Deterministic."""
    tk = _tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tk.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab, special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(TINY_CORPUS), trainer=trainer)
    tok.add_special_tokens([LOCATION_TOKEN.format(i) for i in range(location_bins)] + ["<image>"])
    for i, name in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(name) != i:
            raise GearEdgeError(f"tiny tokenizer: {name} got id {tok.token_to_id(name)}, expected {i}")
    return tok


def tiny_model(vocab_size: int, image_token_id: int, seed: int = 0):
    """A random-initialised tiny ``Florence2ForConditionalGeneration`` (eager attention, eval mode)."""
    torch = _torch()
    transformers = _transformers()
    text = dict(TINY_TEXT, model_type="bart", vocab_size=int(vocab_size), pad_token_id=1, bos_token_id=0,
                eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None, forced_bos_token_id=None)
    cfg = transformers.Florence2Config(vision_config=dict(TINY_VISION), text_config=text,
                                       image_token_id=int(image_token_id))
    cfg._attn_implementation = "eager"
    torch.manual_seed(int(seed))
    model = transformers.Florence2ForConditionalGeneration(cfg).eval()
    model.generation_config.forced_eos_token_id = None
    model.generation_config.forced_bos_token_id = None
    return model


def load_checkpoint(checkpoint: str | Path):
    """(model, tokenizers.Tokenizer, preprocessing dict) from a transformers-native Florence-2 directory."""
    _torch()
    transformers = _transformers()
    tk = _tokenizers()
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a transformers checkpoint directory (no config.json)")
    try:
        model = transformers.Florence2ForConditionalGeneration.from_pretrained(path, attn_implementation="eager").eval()
    except Exception as exc:  # transformers raises many kinds
        raise InputError(
            f"{path}: cannot load it as a transformers-native Florence2ForConditionalGeneration ({exc}); "
            "remote-code checkpoints (microsoft/Florence-2-*) need converting to the native format first"
        ) from exc
    model = model.float()
    if (path / TOKENIZER_FILE).is_file():
        tokenizer = tk.Tokenizer.from_file(str(path / TOKENIZER_FILE))
    else:
        try:
            fast = transformers.AutoTokenizer.from_pretrained(path)
            tokenizer = fast.backend_tokenizer
        except Exception as exc:
            raise InputError(f"{path}: no tokenizer.json and AutoTokenizer could not build one ({exc})") from exc
    pre: dict[str, Any] = {"image_size": 768, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    pp = path / "preprocessor_config.json"
    if pp.is_file():
        data = json.loads(pp.read_text())
        size = data.get("size") or data.get("crop_size") or {}
        if isinstance(size, Mapping) and size.get("height"):
            if size.get("height") != size.get("width"):
                raise InputError(f"{pp}: non-square image size {size} is not supported (crops are square)")
            pre["image_size"] = int(size["height"])
        elif isinstance(size, int):
            pre["image_size"] = size
        if data.get("image_mean"):
            pre["mean"] = [float(v) for v in data["image_mean"]]
        if data.get("image_std"):
            pre["std"] = [float(v) for v in data["image_std"]]
    return model, tokenizer, pre


# ---- export wrappers (plain tensor ops around the model's own layers) ---------------------------


def _modules():
    torch = _torch()
    nn = torch.nn

    def attention(q, k, v, bias, scaling):
        """softmax(q kᵀ · scaling + bias) v, as transformers' eager attention; [B, H, Tq, Dh] → [B, Tq, H·Dh]."""
        w = torch.matmul(q, k.transpose(2, 3)) * scaling
        w = torch.softmax(w + bias, dim=-1)
        out = torch.matmul(w, v).transpose(1, 2)
        return out.reshape(out.shape[0], out.shape[1], -1)

    def mask_bias(mask, dtype):
        """i64 [B, K] (1 = attend) → additive f[B, 1, 1, K]."""
        return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_NEG

    class VisionEncoder(nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model.model

        def forward(self, pixel_values):
            return self.model.get_image_features(pixel_values).pooler_output

    class TextEncoder(nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            lm = model.model.language_model
            self.embed = model.get_input_embeddings()
            self.encoder = lm.encoder
            self.cross = nn.ModuleList([layer.encoder_attn for layer in lm.decoder.layers])

        def forward(self, image_features, input_ids, attention_mask):
            text = self.embed(input_ids)
            x = torch.cat([image_features.to(text.dtype), text], dim=1)
            image_mask = torch.ones_like(attention_mask[:, :1]).expand(-1, image_features.shape[1])
            mask = torch.cat([image_mask, attention_mask], 1)
            h = x + self.encoder.embed_positions(x[:, :, -1])
            h = self.encoder.layernorm_embedding(h)
            bias = mask_bias(mask, h.dtype)
            for layer in self.encoder.layers:
                h = layer(h, bias)
            outs = []
            for attn in self.cross:
                b, s = h.shape[0], h.shape[1]
                outs.append(attn.k_proj(h).view(b, s, -1, attn.head_dim).transpose(1, 2))
                outs.append(attn.v_proj(h).view(b, s, -1, attn.head_dim).transpose(1, 2))
            return tuple(outs)

    class DecoderStep(nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            dec = model.model.language_model.decoder
            self.embed = dec.embed_tokens
            self.positions = dec.embed_positions
            self.norm = dec.layernorm_embedding
            self.layers = dec.layers
            self.lm_head = model.lm_head
            self.n = len(dec.layers)
            self.fixed_args = 4  # then *kv
            bias = model.lm_head.bias
            self.register_buffer("logits_bias", bias.detach().clone() if bias is not None
                                 else torch.zeros(model.lm_head.out_features), persistent=False)

        def forward(self, input_ids, position_ids, attention_mask, encoder_attention_mask, *kv):
            n = self.n
            past, cross = kv[: 2 * n], kv[2 * n :]
            h = self.embed(input_ids)
            h = h + torch.nn.functional.embedding(position_ids + self.positions.offset, self.positions.weight)
            h = self.norm(h)
            self_bias = mask_bias(attention_mask, h.dtype)
            cross_bias = mask_bias(encoder_attention_mask, h.dtype)
            presents = []
            b = h.shape[0]
            for i, layer in enumerate(self.layers):
                sa, ca = layer.self_attn, layer.encoder_attn
                q = sa.q_proj(h).view(b, 1, -1, sa.head_dim).transpose(1, 2)
                k = torch.cat([past[2 * i], sa.k_proj(h).view(b, 1, -1, sa.head_dim).transpose(1, 2)], dim=2)
                v = torch.cat([past[2 * i + 1], sa.v_proj(h).view(b, 1, -1, sa.head_dim).transpose(1, 2)], dim=2)
                presents += [k, v]
                h = layer.self_attn_layer_norm(h + sa.out_proj(attention(q, k, v, self_bias, sa.scaling)))
                q = ca.q_proj(h).view(b, 1, -1, ca.head_dim).transpose(1, 2)
                h = layer.encoder_attn_layer_norm(
                    h + ca.out_proj(attention(q, cross[2 * i], cross[2 * i + 1], cross_bias, ca.scaling))
                )
                h = layer.final_layer_norm(h + layer.fc2(layer.activation_fn(layer.fc1(h))))
            # F.linear of a 2-D input with a bias exports as Gemm(transB=1) on the weight itself: the tied lm_head
            # then shares the token embedding's initializer (without a bias: MatMul on a transposed copy)
            logits = torch.nn.functional.linear(h[:, -1, :], self.lm_head.weight, self.logits_bias)
            return (logits, *presents)

    return VisionEncoder, TextEncoder, DecoderStep


@dataclass(frozen=True)
class Dims:
    """Sizes of the exported graphs."""

    image_size: int
    num_image_tokens: int
    hidden: int
    layers: int
    heads: int
    head_dim: int
    vocab: int


def num_image_tokens(vision_config, image_size: int) -> int:
    """Image tokens Florence-2 makes of an S × S image: 1 (mean) + the last stage's h · w."""
    side = int(image_size)
    for k, stride, pad in zip(vision_config.patch_size, vision_config.patch_stride, vision_config.patch_padding):
        side = (side + 2 * pad - k) // stride + 1
    return 1 + side * side


def model_dims(model, image_size: int) -> Dims:
    """Sizes of the graphs; the image token count is taken from a forward pass and must match
    :func:`num_image_tokens`."""
    torch = _torch()
    text = model.config.text_config
    with torch.no_grad():
        feats = model.model.get_image_features(torch.zeros(1, 3, image_size, image_size)).pooler_output
    n_img, computed = int(feats.shape[1]), num_image_tokens(model.config.vision_config, image_size)
    if n_img != computed:
        raise ExportCheckError(f"the vision tower makes {n_img} image tokens of {image_size} px, {computed} computed")
    heads = int(text.decoder_attention_heads)
    return Dims(image_size, n_img, int(text.d_model), int(text.decoder_layers), heads,
                int(text.d_model) // heads, int(model.lm_head.out_features))


def io_specs(d: Dims) -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """Declared inputs/outputs of the three files (dynamic axes by name)."""
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    kv = lambda name, axis: TensorSpec(name, ("batch", d.heads, axis, d.head_dim), f32)  # noqa: E731
    cross = [kv(f"cross_{kv_}_{i}", "enc") for i in range(d.layers) for kv_ in ("key", "value")]
    past = [kv(f"past_{kv_}_{i}", "past") for i in range(d.layers) for kv_ in ("key", "value")]
    present = [kv(f"present_{kv_}_{i}", "total") for i in range(d.layers) for kv_ in ("key", "value")]
    feats = TensorSpec("image_features", ("batch", d.num_image_tokens, d.hidden), f32)
    return {
        "vision_encoder": ([TensorSpec("pixel_values", ("batch", 3, d.image_size, d.image_size), f32)], [feats]),
        "text_encoder": (
            [feats, TensorSpec("input_ids", ("batch", "prompt"), i64),
             TensorSpec("attention_mask", ("batch", "prompt"), i64)],
            cross,
        ),
        "decoder": (
            [TensorSpec("input_ids", ("batch", 1), i64), TensorSpec("position_ids", ("batch", 1), i64),
             TensorSpec("attention_mask", ("batch", "total"), i64),
             TensorSpec("encoder_attention_mask", ("batch", "enc"), i64),
             *past, *cross],
            [TensorSpec("logits", ("batch", d.vocab), f32), *present],
        ),
    }


def _set_io_shapes(path: Path, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
    """Overwrites the graph's declared I/O dims with ours (fixed sizes as values, dynamic ones by name)."""
    import onnx

    model = onnx.load(str(path))
    specs = {s.name: s for s in (*inputs, *outputs)}
    for vi in (*model.graph.input, *model.graph.output):
        spec = specs.get(vi.name)
        if spec is None:
            continue
        shape = vi.type.tensor_type.shape
        if len(shape.dim) != len(spec.shape):
            raise ExportCheckError(f"{path}: {vi.name} has rank {len(shape.dim)}, expected {spec.describe()}")
        for dim, want in zip(shape.dim, spec.shape):
            if isinstance(want, int):
                dim.Clear()
                dim.dim_value = want
            else:
                dim.Clear()
                dim.dim_param = str(want)
    onnx.save(model, str(path))


def sample_inputs(
    d: Dims, batch: int = 2, prompt: int = 6, past: int = 3, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Seeded example feeds of the three files (also the tracing inputs)."""
    rng = np.random.default_rng(seed)
    enc = d.num_image_tokens + prompt
    kv = lambda p: rng.standard_normal((batch, d.heads, p, d.head_dim)).astype(np.float32)  # noqa: E731
    dec: dict[str, np.ndarray] = {
        "input_ids": rng.integers(4, d.vocab, (batch, 1)).astype(np.int64),
        "position_ids": np.full((batch, 1), past - 1, np.int64),
        "attention_mask": np.concatenate([np.zeros((batch, 1), np.int64), np.ones((batch, past), np.int64)], 1),
        "encoder_attention_mask": np.ones((batch, enc), np.int64),
    }
    dec["encoder_attention_mask"][-1, -1] = 0  # one padded prompt position
    for i in range(d.layers):
        dec[f"past_key_{i}"], dec[f"past_value_{i}"] = kv(past), kv(past)
    for i in range(d.layers):
        dec[f"cross_key_{i}"], dec[f"cross_value_{i}"] = kv(enc), kv(enc)
    mask = np.ones((batch, prompt), np.int64)
    mask[-1, -1] = 0
    return {
        "vision_encoder": {
            "pixel_values": rng.standard_normal((batch, 3, d.image_size, d.image_size)).astype(np.float32),
        },
        "text_encoder": {
            "image_features": rng.standard_normal((batch, d.num_image_tokens, d.hidden)).astype(np.float32),
            "input_ids": rng.integers(4, d.vocab, (batch, prompt)).astype(np.int64),
            "attention_mask": mask,
        },
        "decoder": dec,
    }


def _export_one(module, feeds: Mapping[str, np.ndarray], specs, path: Path, dynamo: bool) -> int:
    """Exports one wrapper (TorchScript exporter at opset 17, or the dynamo exporter at 18, its
    lowest); sets the I/O dims to ``specs``. Returns the opset of the written file."""
    torch = _torch()
    import onnx

    inputs, outputs = specs
    args = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    kwargs: dict[str, Any] = {"input_names": [s.name for s in inputs], "output_names": [s.name for s in outputs],
                              "do_constant_folding": True}
    if dynamo:
        auto = torch.export.Dim.DYNAMIC
        shapes = [{i: auto for i, d in enumerate(s.shape) if not isinstance(d, int)} for s in inputs]
        fixed = getattr(module, "fixed_args", None)  # forward(a, b, ..., *rest): rest is one tuple for torch.export
        dynamic = tuple(shapes) if fixed is None else (*shapes[:fixed], tuple(shapes[fixed:]))
        kwargs.update(dynamo=True, opset_version=DYNAMO_OPSET, external_data=False, verbose=False,
                      dynamic_shapes=dynamic)
    else:
        kwargs.update(dynamo=False, opset_version=OPSET, dynamic_axes={
            s.name: {i: str(d) for i, d in enumerate(s.shape) if not isinstance(d, int)} for s in (*inputs, *outputs)
        })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python-side shape arithmetic
        torch.onnx.export(module, args, str(path), **kwargs)
    _set_io_shapes(path, inputs, outputs)
    model = onnx.load(str(path), load_external_data=False)
    return max(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return float("inf")
    return float(np.max(np.abs(a64 - b64)) / max(1.0, float(np.max(np.abs(b64))))) if a64.size else 0.0


def check_tensors(
    out_dir: Path, modules: Mapping[str, Any], feeds: Mapping[str, Mapping[str, np.ndarray]], tolerance: float,
    threads: int | None = None,
) -> dict[str, float]:
    """ONNX Runtime (through OnnxEngine, manifest-checked) vs the PyTorch modules on ``feeds``: worst
    relative error per file; raises ExportCheckError naming the file and output above ``tolerance``."""
    torch = _torch()
    from gear_edge.engines.onnx import OnnxEngine

    worst: dict[str, float] = {}
    for role, module in modules.items():
        engine = OnnxEngine(out_dir / FILES[role], threads=threads)
        got = engine.run(feeds[role])
        with torch.no_grad():
            ref = module(*[torch.from_numpy(feeds[role][n]) for n in engine.inputs])
        ref = ref if isinstance(ref, tuple) else (ref,)
        errs = {name: _rel_err(got[name], r.numpy()) for name, r in zip(engine.outputs, ref)}
        name, err = max(errs.items(), key=lambda kv: kv[1])
        if not err <= tolerance:
            raise ExportCheckError(
                f"{out_dir / FILES[role]}: ONNX Runtime output {name!r} differs from PyTorch by {err:.3g} "
                f"(relative to max(1, max |torch|)); tolerance {tolerance:g}"
            )
        worst[role] = err
    return worst


# ---- config, manifests, tokens ------------------------------------------------------------------


def prompt_token_length(tokenizer, prompt: str) -> int:
    """Tokens of ``<s> prompt </s>`` with {region} filled by four location tokens."""
    text = prompt.replace("{region}", "".join(LOCATION_TOKEN.format(0) for _ in range(4)))
    return len(tokenizer.encode(text, add_special_tokens=False).ids) + 2


def _special_id(tokenizer, token: str, fallback: int | None) -> int | None:
    tid = tokenizer.token_to_id(token)
    return int(tid) if tid is not None else fallback


def _single_id(value: Any, what: str) -> int | None:
    """A token id from a config value that may be None, an int or a one-element list."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise InputError(f"{what} is {value}: the captioner runtime supports exactly one id")
        value = value[0]
    return None if value is None else int(value)


def _first_id(values: Sequence[Any], what: str) -> int:
    for value in values:
        tid = _single_id(value, what)
        if tid is not None:
            return tid
    raise InputError(f"the checkpoint defines no {what}")


def generation_settings(model, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Greedy/beam settings from the model's generation config, restricted to what the runtime implements.

    Settings the runtime does not implement (sampling, repetition penalty, ...) are listed under
    ``ignored`` so the difference is visible in captioner.json.
    """
    gc = model.generation_config
    out: dict[str, Any] = {
        "max_new_tokens": int(getattr(gc, "max_new_tokens", None) or DEFAULT_MAX_NEW_TOKENS),
        "num_beams": int(gc.num_beams or 1),
        "no_repeat_ngram_size": int(gc.no_repeat_ngram_size or 0),
        "length_penalty": float(gc.length_penalty if gc.length_penalty is not None else 1.0),
        "early_stopping": gc.early_stopping if gc.early_stopping in (True, False, "never") else False,
        "forced_bos_token_id": _single_id(gc.forced_bos_token_id, "forced_bos_token_id"),
        "forced_eos_token_id": _single_id(gc.forced_eos_token_id, "forced_eos_token_id"),
    }
    ignored = []
    for key, neutral in (("repetition_penalty", 1.0), ("min_length", 0), ("min_new_tokens", None), ("do_sample", False),
                         ("suppress_tokens", None), ("begin_suppress_tokens", None), ("bad_words_ids", None)):
        value = getattr(gc, key, neutral)
        if value not in (neutral, None, 0, False, []):
            ignored.append(key)
    out.update(overrides or {})
    out["early_stopping"] = out["early_stopping"] if out["early_stopping"] in (True, False, "never") else False
    out["ignored"] = ignored
    return out


def write_config(
    out_dir: Path, *, dims: Dims, tokenizer, model, pre: Mapping[str, Any], task: str, prompt: str | None,
    crop: Mapping[str, Any] | None, generation: Mapping[str, Any], precision: str, licence: str, source: str,
) -> dict[str, Any]:
    text, gc = model.config.text_config, model.generation_config
    prompt_text = prompt if prompt is not None else TASKS[task]
    cfg = {
        "format": CONFIG_FORMAT,
        "architecture": "florence2",
        "precision": precision,
        "files": dict(FILES, tokenizer=TOKENIZER_FILE),
        "task": task,
        "prompt": prompt_text,
        "location_bins": LOCATION_BINS,
        "location_token": LOCATION_TOKEN,
        "image_size": dims.image_size,
        "mean": [float(v) for v in pre["mean"]],
        "std": [float(v) for v in pre["std"]],
        "crop": dict(TASK_CROPS.get(task, TASK_CROPS["caption"]), **(crop or {})),
        "tokens": {
            "bos": _first_id((text.bos_token_id, _special_id(tokenizer, "<s>", 0)), "bos_token_id"),
            "eos": _first_id((gc.eos_token_id, text.eos_token_id, _special_id(tokenizer, "</s>", 2)), "eos_token_id"),
            "pad": _first_id((gc.pad_token_id, text.pad_token_id, _special_id(tokenizer, "<pad>", 1)), "pad_token_id"),
            "decoder_start": _first_id((gc.decoder_start_token_id, text.decoder_start_token_id),
                                       "decoder_start_token_id"),
        },
        "generation": dict(generation),
        "model": {"num_image_tokens": dims.num_image_tokens, "hidden": dims.hidden, "decoder_layers": dims.layers,
                  "heads": dims.heads, "head_dim": dims.head_dim, "vocab": dims.vocab,
                  "max_positions": int(text.max_position_embeddings),
                  "prompt_tokens": prompt_token_length(tokenizer, prompt_text)},
        "licence": licence,
        "source": source,
    }
    if "{region}" in prompt_text and tokenizer.token_to_id(LOCATION_TOKEN.format(0)) is None:
        raise InputError(
            f"prompt {prompt_text!r} needs location tokens but the tokenizer has no {LOCATION_TOKEN.format(0)}"
        )
    (out_dir / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return cfg


def _write_manifests(out_dir: Path, specs, *, precision: str, licence: str, source: str, opsets: Mapping[str, int],
                     extra: Mapping[str, Any]) -> None:
    for role, file in FILES.items():
        ins, outs = specs[role]
        write_model_manifest(out_dir / file, inputs=ins, outputs=outs, licence=licence, source=source,
                             name=f"captioner-{Path(file).stem}", precision=precision,
                             extra={"role": role, "architecture": "florence2", "opset": opsets[role], **extra})
    write_model_manifest(out_dir / TOKENIZER_FILE, inputs=(), outputs=(), licence=licence, source=source,
                         name="captioner-tokenizer", extra={"role": "tokenizer"},
                         manifest_path=out_dir / "tokenizer.toml")


# ---- export ---------------------------------------------------------------------------------------


def export_model(
    model, tokenizer, out_dir: str | Path, *, pre: Mapping[str, Any] | None = None, task: str = "region",
    prompt: str | None = None, crop: Mapping[str, Any] | None = None, generation: Mapping[str, Any] | None = None,
    licence: str = FLORENCE2_LICENCE, source: str = "user checkpoint", dynamo: bool = False, seed: int = 0,
    verify_tokens: bool = True, require_identical_tokens: bool = False, threads: int | None = None,
) -> Path:
    """Exports ``model`` (fp32) with its tokenizer into ``out_dir`` and checks it; returns ``out_dir``.

    ``pre``: image_size / mean / std; ``task``: a key of :data:`TASKS` (or ``prompt``: an expanded
    prompt, ``{region}`` for the four location tokens); ``generation``: overrides of
    :func:`generation_settings`; ``threads``: torch and ONNX Runtime threads of the checks (None:
    their defaults). Raises ExportCheckError when ONNX Runtime disagrees with PyTorch.
    """
    with torch_threads(threads):
        return _export_model(model, tokenizer, Path(out_dir), pre=pre, task=task, prompt=prompt, crop=crop,
                             generation=generation, licence=licence, source=source, dynamo=dynamo, seed=seed,
                             verify_tokens=verify_tokens, require_identical_tokens=require_identical_tokens,
                             threads=threads)


def _export_model(
    model, tokenizer, out_dir: Path, *, pre: Mapping[str, Any] | None, task: str, prompt: str | None,
    crop: Mapping[str, Any] | None, generation: Mapping[str, Any] | None, licence: str, source: str, dynamo: bool,
    seed: int, verify_tokens: bool, require_identical_tokens: bool, threads: int | None,
) -> Path:
    torch = _torch()
    if task not in TASKS:
        raise InputError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    pre = dict(pre or {"image_size": 768, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    model = model.eval().float()
    model.config._attn_implementation = "eager"
    dims = model_dims(model, int(pre["image_size"]))
    specs = io_specs(dims)
    feeds = sample_inputs(dims, seed=seed)
    Vision, Text, Decoder = _modules()
    modules = {"vision_encoder": Vision(model).eval(), "text_encoder": Text(model).eval(),
               "decoder": Decoder(model).eval()}
    t0 = time.perf_counter()
    with torch.no_grad():
        opsets = {role: _export_one(module, feeds[role], specs[role], out_dir / FILES[role], dynamo)
                  for role, module in modules.items()}
    export_s = time.perf_counter() - t0
    tokenizer.save(str(out_dir / TOKENIZER_FILE))
    _write_manifests(out_dir, specs, precision="fp32", licence=licence, source=source, opsets=opsets,
                     extra={"exporter": "torch.onnx (dynamo)" if dynamo else "torch.onnx (torchscript)",
                            "torch_version": torch.__version__})
    gen = generation_settings(model, generation)
    cfg = write_config(out_dir, dims=dims, tokenizer=tokenizer, model=model, pre=pre, task=task, prompt=prompt,
                       crop=crop, generation=gen, precision="fp32", licence=licence, source=source)
    # other shapes than the tracing ones: batch 3, a longer prompt, a longer past
    check_feeds = sample_inputs(dims, batch=3, prompt=9, past=5, seed=seed + 1)
    errors = check_tensors(out_dir, modules, check_feeds, TOLERANCE["fp32"], threads)
    verification: dict[str, Any] = {"tolerance": TOLERANCE["fp32"], "max_rel_error": errors,
                                    "export_seconds": round(export_s, 2)}
    if verify_tokens:
        verification["tokens"] = compare_with_generate(model, out_dir, batch=4, seed=seed, threads=threads)
        if require_identical_tokens and verification["tokens"]["agreement"] < 1.0:
            raise ExportCheckError(f"{out_dir}: greedy token ids differ from model.generate: {verification['tokens']}")
    cfg["verification"] = verification
    (out_dir / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return out_dir


def hf_generate(model, pixel_values: np.ndarray, prompt_ids: np.ndarray, prompt_mask: np.ndarray | None,
                generation: Mapping[str, Any], tokens: Mapping[str, int] | None = None,
                max_new_tokens: int | None = None, num_beams: int | None = None,
                threads: int | None = None) -> np.ndarray:
    """``model.generate`` on crops + prompt ids (``<s> … </s>`` rows) with captioner.json's generation
    settings and special ids (``tokens``: eos / pad / decoder_start; default: the model's)."""
    torch = _torch()
    n_img = num_image_tokens(model.config.vision_config, pixel_values.shape[-1])
    b = pixel_values.shape[0]
    ids = np.concatenate([np.full((b, n_img), model.config.image_token_id, np.int64), prompt_ids], axis=1)
    mask = np.ones_like(ids) if prompt_mask is None else np.concatenate([np.ones((b, n_img), np.int64), prompt_mask], 1)
    kwargs = {
        "max_new_tokens": int(max_new_tokens or generation["max_new_tokens"]),
        "num_beams": int(num_beams or generation.get("num_beams", 1)),
        "do_sample": False,
        "no_repeat_ngram_size": int(generation.get("no_repeat_ngram_size") or 0) or None,
        "length_penalty": float(generation.get("length_penalty", 1.0)),
        "early_stopping": generation.get("early_stopping", False),
        "forced_bos_token_id": generation.get("forced_bos_token_id"),
        "forced_eos_token_id": generation.get("forced_eos_token_id"),
    }
    if tokens is not None:
        kwargs.update(eos_token_id=int(tokens["eos"]), pad_token_id=int(tokens["pad"]),
                      decoder_start_token_id=int(tokens["decoder_start"]))
    with torch.no_grad(), torch_threads(threads):
        out = model.generate(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                             pixel_values=torch.from_numpy(np.ascontiguousarray(pixel_values)), **kwargs)
    return out.numpy()


def compare_with_generate(model, out_dir: str | Path, *, batch: int = 4, seed: int = 0, threads: int | None = None,
                          num_beams: int | None = None) -> dict[str, Any]:
    """Greedy (or beam) ids of the exported files (runtime Captioner) vs ``model.generate`` on seeded
    random crops and region prompts: {"agreement": fraction of identical rows, "token_agreement": ...}."""
    from gear_edge.describe.captioner import Captioner

    cap = Captioner.from_dir(out_dir, threads=threads)
    rng = np.random.default_rng(seed + 7)
    size = cap.config.image_size
    pixels = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    boxes = _random_crop_boxes(rng, batch, size)
    prompt_ids, prompt_mask = cap.prompt_ids(boxes)
    ours = cap.generate_ids(pixels, prompt_ids, prompt_mask, num_beams=num_beams)
    tokens = {"eos": cap.config.eos_id, "pad": cap.config.pad_id, "decoder_start": cap.config.decoder_start_id}
    ref = hf_generate(model, pixels, prompt_ids, prompt_mask, cap.config.generation, tokens, num_beams=num_beams,
                      threads=threads)
    return token_agreement(ours, ref, cap.config.pad_id)


def _random_crop_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """XYWH boxes inside a size × size crop."""
    xy = rng.uniform(0, size * 0.5, (n, 2))
    wh = rng.uniform(size * 0.1, size * 0.5, (n, 2))
    return np.concatenate([xy, wh], 1)


def token_agreement(a: np.ndarray, b: np.ndarray, pad_id: int) -> dict[str, Any]:
    """Row identity and per-position agreement of two id arrays (shorter one padded with pad_id)."""
    width = max(a.shape[1], b.shape[1])
    pa = np.full((a.shape[0], width), pad_id, np.int64)
    pb = np.full((b.shape[0], width), pad_id, np.int64)
    pa[:, : a.shape[1]], pb[:, : b.shape[1]] = a, b
    rows = (pa == pb).all(axis=1)
    return {"agreement": float(rows.mean()), "token_agreement": float((pa == pb).mean()), "rows": int(len(rows)),
            "identical_shape": bool(a.shape == b.shape)}


def derive_precision(src_dir: str | Path, dst_dir: str | Path, precision: str) -> Path:
    """fp16 / int8 copies of an fp32 export (manifests, tokenizer, captioner.json with the new precision).

    Uses ``export.quantize``: fp16 = ``to_fp16`` (float32 I/O kept); int8 = ``quantize_dynamic_int8``
    (MatMul/Gemm weights; the vision encoder's convolutions stay fp32).
    """
    from export.quantize import quantize_dynamic_int8, to_fp16

    if precision not in ("fp16", "int8"):
        raise InputError(f"derive_precision makes 'fp16' or 'int8' copies, got {precision!r}")
    src, dst = Path(src_dir), Path(dst_dir)
    cfg = json.loads((src / CONFIG_NAME).read_text())
    if cfg.get("precision") != "fp32":
        raise InputError(f"{src} holds a {cfg.get('precision')} export; derive {precision} from the fp32 one")
    dst.mkdir(parents=True, exist_ok=True)
    for file in FILES.values():
        Manifest.load(manifest_path_for(src / file)).verify(src / file)
        if precision == "fp16":
            to_fp16(src / file, dst / file)
        else:
            quantize_dynamic_int8(src / file, dst / file)
    Manifest.load(src / "tokenizer.toml").verify(src / TOKENIZER_FILE)
    shutil.copy2(src / TOKENIZER_FILE, dst / TOKENIZER_FILE)
    shutil.copy2(src / "tokenizer.toml", dst / "tokenizer.toml")
    cfg["precision"] = precision
    cfg["derived_from"] = {"dir": str(src), **{f: sha256_file(src / f) for f in FILES.values()}}
    cfg.pop("verification", None)
    (dst / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return dst


def check_derived(src_dir: str | Path, dst_dir: str | Path, *, batch: int = 4, seed: int = 0,
                  threads: int | None = None) -> dict[str, Any]:
    """A derived (fp16/int8) export vs its fp32 source through ONNX Runtime: worst relative error per
    file on seeded inputs (ExportCheckError above TOLERANCE[precision]) and greedy token agreement.
    The result is stored under "verification" in the derived captioner.json."""
    from gear_edge.describe.captioner import Captioner
    from gear_edge.engines.onnx import OnnxEngine

    src, dst = Path(src_dir), Path(dst_dir)
    cfg = json.loads((dst / CONFIG_NAME).read_text())
    precision = cfg["precision"]
    m = cfg["model"]
    dims = Dims(cfg["image_size"], m["num_image_tokens"], m["hidden"], m["decoder_layers"], m["heads"], m["head_dim"],
                m["vocab"])
    feeds = sample_inputs(dims, batch=3, prompt=9, past=5, seed=seed + 1)
    errors: dict[str, float] = {}
    for role, file in FILES.items():
        a = OnnxEngine(dst / file, threads=threads).run(feeds[role])
        b = OnnxEngine(src / file, threads=threads).run(feeds[role])
        name, err = max(((n, _rel_err(a[n], b[n])) for n in b), key=lambda kv: kv[1])
        if not err <= TOLERANCE[precision]:
            raise ExportCheckError(f"{dst / file}: {precision} output {name!r} differs from fp32 by {err:.3g}; "
                                   f"tolerance {TOLERANCE[precision]:g}")
        errors[role] = err
    rng = np.random.default_rng(seed + 7)
    ref_cap, cap = Captioner.from_dir(src, threads=threads), Captioner.from_dir(dst, threads=threads)
    pixels = rng.standard_normal((batch, 3, dims.image_size, dims.image_size)).astype(np.float32)
    ids, mask = cap.prompt_ids(_random_crop_boxes(rng, batch, dims.image_size))
    tokens = token_agreement(cap.generate_ids(pixels, ids, mask), ref_cap.generate_ids(pixels, ids, mask),
                             cap.config.pad_id)
    result = {"tolerance": TOLERANCE[precision], "max_rel_error_vs_fp32": errors, "tokens_vs_fp32": tokens}
    cfg["verification"] = result
    (dst / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return result


def build_tiny(out_dir: str | Path, seed: int = 0, *, precision: str = "fp32", verify_tokens: bool = True,
               dynamo: bool = False, threads: int | None = None):
    """Exports the tiny random Florence-2 + tiny tokenizer into ``out_dir`` (fp32, or an fp16/int8
    copy of a fresh fp32 export) and returns ``out_dir``. For tests and benchmarks."""
    out_dir = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    model = tiny_model(tokenizer.get_vocab_size(), tokenizer.token_to_id("<image>"), seed)
    pre = {"image_size": TINY_IMAGE_SIZE, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    source = f"random-initialised tiny Florence-2 (seed {seed}) built by export.captioner_onnx.build_tiny"
    kwargs = dict(pre=pre, task="region", generation=TINY_GENERATION, licence=TINY_LICENCE, source=source,
                  dynamo=dynamo, seed=seed, verify_tokens=verify_tokens, threads=threads)
    if precision == "fp32":
        return export_model(model, tokenizer, out_dir, **kwargs)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with tempfile.TemporaryDirectory(prefix="gear_edge_captioner_") as tmp:
        export_model(model, tokenizer, tmp, **kwargs)
        derive_precision(tmp, out_dir, precision)
        check_derived(tmp, out_dir, threads=threads)
    return out_dir


# ---- TensorRT ---------------------------------------------------------------------------------


def tensorrt_axes(cfg: Mapping[str, Any], max_batch: int = 32, opt_batch: int = 8) -> dict[str, tuple[int, int, int]]:
    """min/opt/max of the named dynamic axes for ``export.build_engine`` (``batch`` counts beams too)."""
    if not 1 <= opt_batch <= max_batch:
        raise InputError(f"need 1 <= opt_batch <= max_batch, got {opt_batch}, {max_batch}")
    gen, m = cfg["generation"], cfg["model"]
    steps = int(gen["max_new_tokens"])
    prompt = int(m["prompt_tokens"])
    enc = int(m["num_image_tokens"]) + prompt
    return {
        "batch": (1, opt_batch, max_batch),
        "prompt": (prompt, prompt, prompt),
        "enc": (enc, enc, enc),
        "past": (1, max(1, steps // 2), steps + 1),
        "total": (2, max(2, steps // 2 + 1), steps + 2),
    }


def build_tensorrt(model_dir: str | Path, plan_dir: str | Path, *, precision: str = "fp16", max_batch: int = 32,
                   opt_batch: int = 8) -> dict[str, Path]:
    """TensorRT plans of the three files via ``export.build_engine`` (cached by model/TensorRT/GPU/precision).

    Raises MissingDependencyError without tensorrt / a GPU. Plans and their manifests go to ``plan_dir``.
    """
    try:
        from export.build_engine import build_engine
    except ImportError as exc:
        raise MissingDependencyError(f"export/build_engine.py is not importable ({exc})") from exc
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / CONFIG_NAME).read_text())
    axes = tensorrt_axes(cfg, max_batch, opt_batch)
    plans = {}
    for role, file in FILES.items():
        plans[role] = build_engine(model_dir / file, precision=precision, axes=axes, cache_dir=plan_dir).plan
    return plans


# ---- CLI ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.captioner_onnx", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="transformers-native Florence-2 directory")
    src.add_argument("--random-init", action="store_true", help="random weights (with --tiny: the test model)")
    ap.add_argument("--tiny", action="store_true", help="with --random-init: the tiny config and tokenizer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32")
    ap.add_argument("--task", choices=sorted(TASKS), default="region")
    ap.add_argument("--prompt", help="expanded prompt text instead of the task's ({region} = location tokens)")
    ap.add_argument("--context", type=float, help="crop context factor (default per task)")
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--num-beams", type=int)
    ap.add_argument("--licence", default=FLORENCE2_LICENCE,
                    help="licence of the checkpoint's weights (Florence-2: MIT)")
    ap.add_argument("--source", help="where the checkpoint comes from (default: its path)")
    ap.add_argument("--dynamo", action="store_true", help="torch.onnx dynamo exporter (default: TorchScript, opset 17)")
    ap.add_argument("--tensorrt-dir", help="also build TensorRT plans into this directory (needs tensorrt + GPU)")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.random_init and not args.tiny:
        ap.error("--random-init needs --tiny (a full-size random Florence-2 is not a useful export)")
    try:
        out = Path(args.out)
        gen = {k: v for k, v in (("max_new_tokens", args.max_new_tokens), ("num_beams", args.num_beams)) if v}
        crop = {"context": args.context} if args.context else None
        if args.random_init:
            if gen or crop or args.prompt or args.task != "region":
                ap.error("--random-init --tiny uses fixed settings; "
                         "drop --task/--prompt/--context/--max-new-tokens/--num-beams")
            build_tiny(out, args.seed, precision=args.precision, dynamo=args.dynamo, threads=args.threads)
        else:
            model, tokenizer, pre = load_checkpoint(args.checkpoint)
            kwargs = dict(pre=pre, task=args.task, prompt=args.prompt, crop=crop, generation=gen, licence=args.licence,
                          source=args.source or f"checkpoint {Path(args.checkpoint).resolve()}", dynamo=args.dynamo,
                          seed=args.seed, threads=args.threads)
            if args.precision == "fp32":
                export_model(model, tokenizer, out, **kwargs)
            else:
                with tempfile.TemporaryDirectory(prefix="gear_edge_captioner_") as tmp:
                    export_model(model, tokenizer, tmp, **kwargs)
                    derive_precision(tmp, out, args.precision)
                    check_derived(tmp, out, threads=args.threads)
        cfg = json.loads((out / CONFIG_NAME).read_text())
        summary = {"out": str(out), "precision": cfg["precision"], "verification": cfg.get("verification")}
        print(json.dumps(summary, indent=2))
        if args.tensorrt_dir:
            trt_precision = "fp16" if args.precision == "fp32" else args.precision
            if trt_precision == "int8":
                raise InputError("TensorRT int8 needs a QDQ (statically calibrated) model; "
                                 "build plans from the fp32/fp16 export")
            plans = build_tensorrt(out, args.tensorrt_dir, precision=trt_precision)
            print("TensorRT plans: " + ", ".join(f"{k}={v}" for k, v in plans.items()))
    except (GearEdgeError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "CONFIG_NAME", "ExportCheckError", "FILES", "PRECISIONS", "TASKS", "TOLERANCE", "build_tensorrt", "build_tiny",
    "build_tiny_tokenizer", "check_derived", "compare_with_generate", "derive_precision", "export_model", "hf_generate",
    "io_specs", "load_checkpoint", "main", "tensorrt_axes", "tiny_model", "token_agreement",
]

if __name__ == "__main__":
    sys.exit(main())
