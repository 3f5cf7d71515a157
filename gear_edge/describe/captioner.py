"""Region captioner: exported Florence-2 engines + tokenizer + a batched decoding loop in numpy.

A model directory (written by ``python -m export.captioner_onnx``) holds ``vision_encoder.onnx``,
``text_encoder.onnx``, ``decoder.onnx`` (each with its manifest ``<stem>.toml``), ``tokenizer.json``
(+ ``tokenizer.toml``) and ``captioner.json`` (prompt, crop and generation settings, special ids).

Per batch of regions (``caption``):

1. crops: ``gear_edge.crops.crop_regions`` (C++) → f32 ``[n, 3, S, S]``, the region's box scaled by
   ``crop.context`` about its centre, normalised with the model's mean/std;
2. prompt: ``<s> prompt </s>`` where ``{region}`` in the prompt becomes the four location tokens
   ``<loc_x0><loc_y0><loc_x1><loc_y1>`` of the region's box inside its crop (Florence-2's
   region-to-description; 1000 bins of the crop size);
3. ``vision_encoder`` → image tokens f32 ``[n, Ni, D]``; ``text_encoder`` → the decoder's
   cross-attention keys/values per layer f32 ``[n, H, Ni + T, Dh]`` (computed once);
4. decoding with the self-attention KV cache: greedy (rows that reach ``</s>`` leave the batch) or
   beam search, both reproducing ``transformers``' ``generate`` (same ids for the same logits):
   no-repeat n-gram, forced BOS/EOS, length penalty and early-stopping rules as in transformers.
   The cache starts with one masked zero slot so no tensor has a zero-length axis.

Engines are anything with the :class:`gear_edge.engines.Engine` protocol (``engine_factory``), so a
TensorRT plan can replace an ONNX file. No torch / transformers here; ``tokenizers`` is imported
lazily (``pip install tokenizers``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.crops import check_image, crop_regions
from gear_edge.engines.base import Engine
from gear_edge.engines.manifest_check import manifest_path_for
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import Manifest
from gear_edge.reference.crops import layout
from gear_edge.types import RLE

CONFIG_NAME = "captioner.json"
CONFIG_FORMAT = "gear_edge.captioner/1"
ROLES = ("vision_encoder", "text_encoder", "decoder")
_NEG = np.float32(-1.0e9)  # transformers' beam-search "never pick" score
_LOC_RE = re.compile(r"<loc_\d+>")

EngineFactory = Callable[[Path], Engine]


def _tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError(
            "the captioner needs the tokenizers package: pip install tokenizers (or pip install 'gear-edge[default]')"
        ) from exc
    return tokenizers


@dataclass(frozen=True)
class Generation:
    """Decoding settings (transformers ``GenerationConfig`` names and semantics)."""

    max_new_tokens: int = 20
    num_beams: int = 1
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be a positive int, got {self.max_new_tokens!r}")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise InputError(f"num_beams must be a positive int, got {self.num_beams!r}")
        if self.early_stopping not in (True, False, "never"):
            raise InputError(f"early_stopping must be true, false or 'never', got {self.early_stopping!r}")


@dataclass(frozen=True)
class CaptionerConfig:
    """``captioner.json`` of a model directory (see ``export/captioner_onnx.py``)."""

    path: Path
    precision: str
    files: dict[str, str]
    prompt: str
    location_bins: int
    location_token: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    context: float
    letterbox: bool
    background: str
    bos_id: int
    eos_id: int
    pad_id: int
    decoder_start_id: int
    layers: int
    heads: int
    head_dim: int
    vocab: int
    num_image_tokens: int
    max_positions: int
    generation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CaptionerConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(
                f"{path} does not exist; export a captioner with python -m export.captioner_onnx"
            ) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            raise InputError(f"{path}: 'format' must be {CONFIG_FORMAT!r} (written by export/captioner_onnx.py)")
        try:
            crop, tokens, model = data["crop"], data["tokens"], data["model"]
            files = {role: str(data["files"][role]) for role in (*ROLES, "tokenizer")}
            mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
            cfg = cls(
                path=path, precision=str(data["precision"]), files=files, prompt=str(data["prompt"]),
                location_bins=int(data.get("location_bins", 1000)),
                location_token=str(data.get("location_token", "<loc_{}>")),
                image_size=int(data["image_size"]), mean=mean, std=std,  # type: ignore[arg-type]
                context=float(crop.get("context", 1.0)), letterbox=bool(crop.get("letterbox", False)),
                background=str(crop.get("background", "keep")),
                bos_id=int(tokens["bos"]), eos_id=int(tokens["eos"]), pad_id=int(tokens["pad"]),
                decoder_start_id=int(tokens["decoder_start"]),
                layers=int(model["decoder_layers"]), heads=int(model["heads"]), head_dim=int(model["head_dim"]),
                vocab=int(model["vocab"]), num_image_tokens=int(model["num_image_tokens"]),
                max_positions=int(model.get("max_positions", 1024)),
                generation=dict(data.get("generation", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: missing or malformed field ({exc!r}); re-export the captioner") from None
        if len(cfg.mean) != 3 or len(cfg.std) != 3:
            raise InputError(f"{path}: mean and std need 3 values")
        if cfg.background not in ("keep", "constant", "blur"):
            raise InputError(f"{path}: crop.background must be 'keep', 'constant' or 'blur', got {cfg.background!r}")
        cfg.default_generation()  # validates
        return cfg

    @property
    def uses_region_tokens(self) -> bool:
        return "{region}" in self.prompt

    def default_generation(self, **overrides: Any) -> Generation:
        keys = Generation.__dataclass_fields__
        values = {k: v for k, v in self.generation.items() if k in keys}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return Generation(**values)
        except InputError as exc:
            raise InputError(f"{self.path}: generation settings: {exc}") from None


def location_boxes(boxes_xywh: np.ndarray, size: int, context: float, letterbox: bool) -> np.ndarray:
    """Each region box (image pixels, XYWH) in the pixels of its ``size × size`` crop, as
    ``crop_regions`` lays it out → f64 ``[N, 4]`` XYWH, clipped to the crop."""
    out = np.empty((len(boxes_xywh), 4), np.float64)
    for i, box in enumerate(np.asarray(boxes_xywh, np.float64)):
        x0, y0, x1, y1, rw, rh, ox, oy = layout(box, size, context, letterbox)
        sx, sy = rw / (x1 - x0), rh / (y1 - y0)
        a = np.clip([ox + (box[0] - x0) * sx, oy + (box[1] - y0) * sy], 0, size)
        b = np.clip([ox + (box[0] + box[2] - x0) * sx, oy + (box[1] + box[3] - y0) * sy], 0, size)
        out[i] = (a[0], a[1], b[0] - a[0], b[1] - a[1])
    return out


def quantize_locations(boxes_xywh: np.ndarray, size: int, bins: int = 1000) -> np.ndarray:
    """Florence-2's box quantisation: (x0, y0, x1, y1) → ``floor(v / (size / bins))`` clipped to
    ``0..bins-1`` → i64 ``[N, 4]``."""
    b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    corners = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
    return np.clip(np.floor(corners / (size / bins)), 0, bins - 1).astype(np.int64)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """float32 log-softmax over the last axis."""
    x = x.astype(np.float32, copy=False)
    m = x.max(axis=-1, keepdims=True)
    shifted = x - m
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries per row, largest first (ties: lower index first)."""
    return np.argsort(-x, axis=-1, kind="stable")[:, :k]


class Captioner:
    """Captions regions of an image with an exported Florence-2 (see the module docstring)."""

    def __init__(
        self, engines: Mapping[str, Engine], tokenizer: Any, config: CaptionerConfig, *, threads: int | None = None
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.threads = threads
        missing = [r for r in ROLES if r not in engines]
        if missing:
            raise InputError(f"captioner engines missing {missing} (need {list(ROLES)})")
        self.vision, self.text_encoder, self.decoder = (engines[r] for r in ROLES)
        n = config.layers
        self._past_names = [f"past_{kv}_{i}" for i in range(n) for kv in ("key", "value")]
        self._present_names = [f"present_{kv}_{i}" for i in range(n) for kv in ("key", "value")]
        self._cross_names = [f"cross_{kv}_{i}" for i in range(n) for kv in ("key", "value")]
        self._check_engine(self.vision, ["pixel_values"], ["image_features"])
        self._check_engine(self.text_encoder, ["image_features", "input_ids", "attention_mask"], self._cross_names)
        self._check_engine(
            self.decoder,
            ["input_ids", "position_ids", "attention_mask", "encoder_attention_mask",
             *self._past_names, *self._cross_names],
            ["logits", *self._present_names],
        )
        px = self.vision.inputs["pixel_values"].shape
        if px[2:] != (config.image_size, config.image_size) and all(isinstance(d, int) for d in px[2:]):
            raise InputError(
                f"{self.vision.source}: takes {px[2]}x{px[3]} crops but {config.path} says {config.image_size}"
            )
        self.generation = config.default_generation()
        if config.uses_region_tokens:
            self._location_ids()  # the tokenizer must have every location token
        self.last_timings: dict[str, Any] = {}
        self._step_timings: dict[str, Any] = {}

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike,
        *,
        engine_factory: EngineFactory | None = None,
        threads: int | None = None,
        providers: Sequence[str] = ("cpu",),
    ) -> "Captioner":
        """Loads a model directory: every file is verified against its manifest (size + sha256)
        before use; ``engine_factory(path) -> Engine`` builds the engines (default: OnnxEngine on
        ``providers`` with ``threads`` intra-op threads)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(
                f"captioner directory {path} does not exist; export one with python -m export.captioner_onnx"
            )
        config = CaptionerConfig.load(path / CONFIG_NAME)
        if engine_factory is None:
            from gear_edge.engines.onnx import OnnxEngine

            def engine_factory(p: Path) -> Engine:
                return OnnxEngine(p, providers=tuple(providers), threads=threads, manifest=manifest_path_for(p))

        engines: dict[str, Engine] = {}
        for role in ROLES:
            file = path / config.files[role]
            _verified(file, manifest_path_for(file))
            engines[role] = engine_factory(file)
        tok_file = path / config.files["tokenizer"]
        _verified(tok_file, tok_file.with_suffix(".toml"))
        tk = _tokenizers()
        try:
            tokenizer = tk.Tokenizer.from_file(str(tok_file))
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise InputError(f"{tok_file}: not a tokenizers tokenizer.json ({exc})") from exc
        return cls(engines, tokenizer, config, threads=threads)

    def _check_engine(self, engine: Engine, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        miss_in = [n for n in inputs if n not in engine.inputs]
        miss_out = [n for n in outputs if n not in engine.outputs]
        if miss_in or miss_out:
            raise InputError(
                f"{engine.source}: not a captioner engine of this config ({self.config.path}): "
                f"missing inputs {miss_in}, outputs {miss_out}; it has {list(engine.inputs)} → {list(engine.outputs)}"
            )

    def _location_ids(self) -> np.ndarray:
        names = [self.config.location_token.format(i) for i in range(self.config.location_bins)]
        ids = [self.tokenizer.token_to_id(name) for name in names]
        if any(i is None for i in ids):
            raise InputError(
                f"{self.config.path}: the prompt has {{region}} but the tokenizer lacks location tokens "
                f"{names[0]}..{names[-1]}"
            )
        return np.asarray(ids, np.int64)

    # ---- public API ----------------------------------------------------------------------------

    def caption(
        self,
        image: np.ndarray,
        regions: Sequence[RLE] | np.ndarray | Sequence[Sequence[float]],
        batch_size: int = 8,
        *,
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
    ) -> list[str]:
        """One caption per region of an RGB uint8 ``H × W × 3`` image.

        ``regions``: COCO RLE dicts of the image's size (crops use their boxes, and their masks
        when ``crop.background`` is not 'keep') or XYWH pixel boxes ``[N, 4]``. Regions go through
        the engines ``batch_size`` at a time. Per-call timings land in ``last_timings`` (ms).
        """
        t_all = time.perf_counter()
        check_image(image)
        boxes, masks = self._regions(image, regions)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        gen = self.config.default_generation(max_new_tokens=max_new_tokens, num_beams=num_beams)
        timings: dict[str, Any] = {"regions": len(boxes), "batch_size": int(batch_size), "crop_ms": 0.0,
                                   "vision_ms": 0.0, "text_encoder_ms": 0.0, "decoder_ms": 0.0, "decode_steps": 0,
                                   "per_batch": []}
        captions: list[str] = []
        for start in range(0, len(boxes), int(batch_size)):
            sl = slice(start, start + int(batch_size))
            t0 = time.perf_counter()
            pixels = self.crops(image, boxes[sl], None if masks is None else masks[sl])
            cfg = self.config
            ids, mask = self.prompt_ids(
                location_boxes(boxes[sl], cfg.image_size, cfg.context, cfg.letterbox)
                if cfg.uses_region_tokens else len(pixels)
            )
            crop_ms = (time.perf_counter() - t0) * 1e3
            out = self._generate(pixels, ids, mask, gen)
            captions += self.decode(out)
            bt = dict(self._step_timings, n=len(pixels), crop_ms=crop_ms)
            timings["per_batch"].append(bt)
            for key in ("crop_ms", "vision_ms", "text_encoder_ms", "decoder_ms", "decode_steps"):
                timings[key] += bt[key]
        timings["total_ms"] = (time.perf_counter() - t_all) * 1e3
        self.last_timings = timings
        return captions

    def crops(self, image: np.ndarray, boxes: np.ndarray, masks: Sequence[RLE] | None = None) -> np.ndarray:
        """The model's input crops of ``boxes`` (XYWH px) → f32 ``[N, 3, S, S]``."""
        cfg = self.config
        background = cfg.background if masks is not None else "keep"
        return crop_regions(
            image, boxes, masks if background != "keep" else None, size=cfg.image_size, context=cfg.context,
            letterbox=cfg.letterbox, background=background, mean=cfg.mean, std=cfg.std, threads=self.threads,
        )

    def prompt_ids(self, crop_boxes: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Encoder prompt rows ``<s> prompt </s>`` → (ids i64 ``[N, T]``, mask i64 ``[N, T]``; right-padded).

        ``crop_boxes``: the region boxes in crop pixels (XYWH ``[N, 4]``, see :func:`location_boxes`)
        for a ``{region}`` prompt, or the row count N for a prompt without one.
        """
        cfg = self.config
        if cfg.uses_region_tokens:
            if isinstance(crop_boxes, (int, np.integer)):
                raise InputError(f"the prompt {cfg.prompt!r} needs each region's box in its crop (XYWH [N, 4])")
            locs = quantize_locations(np.asarray(crop_boxes, np.float64), cfg.image_size, cfg.location_bins)
            tokens = [cfg.location_token.format(i) for i in range(cfg.location_bins)]
            texts = [cfg.prompt.replace("{region}", "".join(tokens[v] for v in row)) for row in locs.tolist()]
        else:
            n = int(crop_boxes) if isinstance(crop_boxes, (int, np.integer)) else len(crop_boxes)
            texts = [cfg.prompt] * n
        # one call per row: the *_batch methods wake tokenizers' thread pool, which costs milliseconds on a busy CPU
        encoded = [self.tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
        width = 2 + max((len(e) for e in encoded), default=0)
        ids = np.full((len(encoded), width), cfg.pad_id, np.int64)
        mask = np.zeros((len(encoded), width), np.int64)
        for i, row in enumerate(encoded):
            ids[i, : len(row) + 2] = [cfg.bos_id, *row, cfg.eos_id]
            mask[i, : len(row) + 2] = 1
        return ids, mask

    def generate_ids(
        self,
        pixel_values: np.ndarray,
        prompt_ids: np.ndarray | None = None,
        prompt_mask: np.ndarray | None = None,
        *,
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
    ) -> np.ndarray:
        """Token ids for crops f32 ``[B, 3, S, S]`` and prompts i64 ``[B, T]`` (default: the
        config's prompt, which must then have no ``{region}``) → i64 ``[B, 1 + n]``: the decoder
        start token, the generated ids, ``pad`` after ``</s>`` — what ``generate`` returns."""
        pixel_values = self._check_pixels(pixel_values)
        if prompt_ids is None:
            prompt_ids, prompt_mask = self.prompt_ids(len(pixel_values))
        prompt_ids = np.asarray(prompt_ids)
        if prompt_ids.ndim != 2 or prompt_ids.shape[0] != len(pixel_values) or prompt_ids.dtype.kind not in "iu":
            raise InputError(
                f"prompt_ids must be integer [{len(pixel_values)}, T], got {prompt_ids.dtype} {list(prompt_ids.shape)}"
            )
        prompt_mask = np.ones_like(prompt_ids) if prompt_mask is None else np.asarray(prompt_mask)
        if prompt_mask.shape != prompt_ids.shape:
            raise InputError(
                f"prompt_mask shape {list(prompt_mask.shape)} differs from prompt_ids {list(prompt_ids.shape)}"
            )
        gen = self.config.default_generation(max_new_tokens=max_new_tokens, num_beams=num_beams)
        return self._generate(pixel_values, prompt_ids.astype(np.int64), prompt_mask.astype(np.int64), gen)

    def decode(self, ids: np.ndarray) -> list[str]:
        """Caption strings of ``generate_ids`` rows (special and location tokens dropped)."""
        rows = []
        for row in np.asarray(ids):
            row = row[1:]
            stop = np.flatnonzero(row == self.config.eos_id)
            rows.append([int(t) for t in (row[: stop[0]] if len(stop) else row) if t != self.config.pad_id])
        texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in rows]
        return [" ".join(_LOC_RE.sub(" ", t).split()) for t in texts]

    # ---- internals -----------------------------------------------------------------------------

    def _regions(self, image: np.ndarray, regions) -> tuple[np.ndarray, list[RLE] | None]:
        if regions is None or (not isinstance(regions, np.ndarray) and len(regions) == 0) or (
            isinstance(regions, np.ndarray) and regions.size == 0
        ):
            raise InputError(
                "no regions to caption: pass a non-empty list of RLE masks or an [N, 4] array of XYWH boxes"
            )
        if isinstance(regions, np.ndarray) or not isinstance(regions[0], Mapping):
            try:
                boxes = np.asarray(regions, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"regions must be RLE dicts or XYWH boxes [N, 4]: {exc}") from None
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise InputError(f"boxes must be [N, 4] (x, y, w, h), got shape {list(boxes.shape)}")
            if not np.isfinite(boxes).all() or (boxes[:, 2:] <= 0).any():
                i = int(np.flatnonzero(~np.isfinite(boxes).all(1) | (boxes[:, 2:] <= 0).any(1))[0])
                raise InputError(f"box {i} = {boxes[i].tolist()} must be finite with w, h > 0")
            return boxes, None
        import gear_edge.masks as gm

        masks = list(regions)
        if not all(isinstance(m, Mapping) for m in masks):
            raise InputError("regions must be all RLE dicts or all XYWH boxes, not a mix")
        for i, m in enumerate(masks):
            size = m.get("size")
            if not isinstance(size, (list, tuple)) or [int(v) for v in size] != list(image.shape[:2]):
                raise InputError(f"mask {i} has size {size} but the image is {image.shape[0]}x{image.shape[1]}")
        boxes = np.asarray(gm.to_bbox(masks), np.float64).reshape(-1, 4)
        empty = np.flatnonzero((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
        if len(empty):
            raise InputError(f"mask {int(empty[0])} is empty; drop empty regions before captioning")
        return boxes, masks

    def _check_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        s = self.config.image_size
        if not isinstance(pixel_values, np.ndarray) or pixel_values.dtype != np.float32:
            got = pixel_values.dtype if isinstance(pixel_values, np.ndarray) else type(pixel_values).__name__
            raise InputError(f"pixel_values must be a float32 numpy array [B, 3, {s}, {s}], got {got}")
        if pixel_values.ndim != 4 or pixel_values.shape[1:] != (3, s, s) or pixel_values.shape[0] == 0:
            raise InputError(f"pixel_values must be [B, 3, {s}, {s}] with B >= 1, got {list(pixel_values.shape)}")
        return np.ascontiguousarray(pixel_values)

    def _encode(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        t0 = time.perf_counter()
        feats = self.vision.run({"pixel_values": pixels}, ["image_features"])["image_features"]
        t1 = time.perf_counter()
        feeds = {"image_features": feats, "input_ids": ids, "attention_mask": mask}
        out = self.text_encoder.run(feeds, self._cross_names)
        t2 = time.perf_counter()
        self._step_timings = {"vision_ms": (t1 - t0) * 1e3, "text_encoder_ms": (t2 - t1) * 1e3}
        enc_mask = np.concatenate([np.ones((len(ids), feats.shape[1]), np.int64), mask], axis=1)
        return [out[n] for n in self._cross_names], enc_mask

    def _generate(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray, gen: Generation) -> np.ndarray:
        if gen.max_new_tokens + 1 > self.config.max_positions:
            raise InputError(
                f"max_new_tokens {gen.max_new_tokens} exceeds the decoder's {self.config.max_positions} positions"
            )
        cross, enc_mask = self._encode(pixels, ids, mask)
        t0 = time.perf_counter()
        if gen.num_beams == 1:
            out, steps = self._greedy(cross, enc_mask, gen)
        else:
            out, steps = self._beam(cross, enc_mask, gen)
        self._step_timings.update(decoder_ms=(time.perf_counter() - t0) * 1e3, decode_steps=steps)
        return out

    def _step(self, tokens: np.ndarray, position: int, past: list[np.ndarray], cross: list[np.ndarray],
              enc_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """One decoder call: tokens i64 [b] at ``position`` → (logits f32 [b, V], presents)."""
        b, total = len(tokens), past[0].shape[2] + 1
        attn = np.ones((b, total), np.int64)
        attn[:, 0] = 0  # the sink slot
        feeds = {"input_ids": tokens.reshape(b, 1).astype(np.int64),
                 "position_ids": np.full((b, 1), position, np.int64),
                 "attention_mask": attn, "encoder_attention_mask": enc_mask}
        feeds.update(zip(self._past_names, past))
        feeds.update(zip(self._cross_names, cross))
        out = self.decoder.run(feeds, ["logits", *self._present_names])
        return out["logits"], [out[n] for n in self._present_names]

    def _empty_cache(self, b: int) -> list[np.ndarray]:
        z = np.zeros((b, self.config.heads, 1, self.config.head_dim), np.float32)
        return [z] * (2 * self.config.layers)

    def _process(self, seqs: np.ndarray, scores: np.ndarray, max_length: int, gen: Generation) -> np.ndarray:
        """transformers' logits processors, in its order: no-repeat n-gram, forced BOS, forced EOS.
        ``seqs``: i64 [b, cur_len] (decoder start included); ``scores``: f32 [b, V] (modified copy)."""
        cur_len = seqs.shape[1]
        n = gen.no_repeat_ngram_size
        if n and cur_len >= n:
            scores = scores.copy()
            windows = np.lib.stride_tricks.sliding_window_view(seqs, n, axis=1)  # [b, cur_len - n + 1, n]
            prefix = seqs[:, cur_len - n + 1 :]
            match = (windows[:, :, :-1] == prefix[:, None, :]).all(axis=2)
            rows, cols = np.nonzero(match)
            scores[rows, windows[rows, cols, -1]] = -np.inf
        if gen.forced_bos_token_id is not None and cur_len == 1:
            scores = np.full_like(scores, -np.inf)
            scores[:, gen.forced_bos_token_id] = 0
        if gen.forced_eos_token_id is not None and cur_len == max_length - 1:
            scores = np.full_like(scores, -np.inf)
            scores[:, gen.forced_eos_token_id] = 0
        return scores

    def _greedy(self, cross: list[np.ndarray], enc_mask: np.ndarray, gen: Generation) -> tuple[np.ndarray, int]:
        cfg = self.config
        b = len(enc_mask)
        max_length = 1 + gen.max_new_tokens
        seqs = np.full((b, max_length), cfg.pad_id, np.int64)
        seqs[:, 0] = cfg.decoder_start_id
        active = np.arange(b)
        past = self._empty_cache(b)
        tokens = seqs[:, 0].copy()
        steps = 0
        for step in range(gen.max_new_tokens):
            logits, past = self._step(tokens, step, past, cross, enc_mask)
            scores = self._process(seqs[active, : step + 1], logits.astype(np.float32, copy=False), max_length, gen)
            nxt = scores.argmax(axis=1)
            seqs[active, step + 1] = nxt
            steps = step + 1
            alive = nxt != cfg.eos_id
            if not alive.all():  # finished rows leave the batch: rows are independent, ids unchanged
                if not alive.any():
                    break
                active, nxt, enc_mask = active[alive], nxt[alive], enc_mask[alive]
                past = [p[alive] for p in past]
                cross = [c[alive] for c in cross]
            tokens = nxt
        return seqs[:, : steps + 1], steps

    def _beam(self, cross: list[np.ndarray], enc_mask: np.ndarray, gen: Generation) -> tuple[np.ndarray, int]:
        """transformers' beam search (its ``_beam_search`` step for step, one EOS id, no sampling)."""
        cfg = self.config
        nb, b = gen.num_beams, len(enc_mask)
        cross = [np.repeat(c, nb, axis=0) for c in cross]
        enc_mask = np.repeat(enc_mask, nb, axis=0)
        max_length = 1 + gen.max_new_tokens
        keep = 2 * nb  # max(2, 1 + number of EOS ids) * num_beams
        fill = cfg.pad_id if cfg.pad_id else cfg.eos_id
        lp, early = float(gen.length_penalty), gen.early_stopping
        top_mask = np.arange(keep) < nb
        running = np.full((b, nb, max_length), fill, np.int64)
        running[:, :, 0] = cfg.decoder_start_id
        sequences = running.copy()
        running_scores = np.zeros((b, nb), np.float32)
        running_scores[:, 1:] = _NEG
        beam_scores = np.full((b, nb), _NEG, np.float32)
        finished = np.zeros((b, nb), bool)
        unsatisfied = np.ones((b, 1), bool)
        running_idx = np.full((b, nb, max_length - 1), -1, np.int64)
        beam_indices = running_idx.copy()
        past = self._empty_cache(b * nb)
        offsets = (np.arange(b) * nb)[:, None]
        cur_len, steps = 1, 0
        while True:
            flat = running[:, :, :cur_len].reshape(b * nb, cur_len)
            logits, presents = self._step(flat[:, -1], cur_len - 1, past, cross, enc_mask)
            steps += 1
            logp = self._process(flat, log_softmax(logits), max_length, gen)
            vocab = logp.shape[1]
            acc = (logp.reshape(b, nb, vocab) + running_scores[:, :, None]).reshape(b, nb * vocab)
            idx = _topk(acc, keep)
            top_lp = np.take_along_axis(acc, idx, axis=1)
            src_beam, tok = idx // vocab, idx % vocab
            top_seqs = np.take_along_axis(running, src_beam[:, :, None], axis=1)
            top_seqs[:, :, cur_len] = tok
            top_idx = np.take_along_axis(running_idx, src_beam[:, :, None], axis=1)
            top_idx[:, :, cur_len - 1] = src_beam + offsets
            hits = (tok == cfg.eos_id) | (cur_len + 1 >= max_length)
            # running beams of the next step: the best candidates that did not just stop
            run_lp = top_lp + hits.astype(np.float32) * _NEG
            nxt = _topk(run_lp, nb)
            running = np.take_along_axis(top_seqs, nxt[:, :, None], axis=1)
            running_scores = np.take_along_axis(run_lp, nxt, axis=1)
            running_idx = np.take_along_axis(top_idx, nxt[:, :, None], axis=1)
            # finished hypotheses: merge the candidates that just stopped among the top num_beams
            just = hits & top_mask[None, :]
            fin_lp = top_lp / np.float32(float(cur_len) ** lp)
            full = finished.all(axis=1, keepdims=True) & (early is True)
            fin_lp = fin_lp + full.astype(np.float32) * _NEG
            fin_lp = fin_lp + (~unsatisfied).astype(np.float32) * _NEG
            fin_lp = fin_lp + (~just).astype(np.float32) * _NEG
            m_scores = np.concatenate([beam_scores, fin_lp], axis=1)
            best = _topk(m_scores, nb)
            sequences = np.take_along_axis(np.concatenate([sequences, top_seqs], axis=1), best[:, :, None], axis=1)
            beam_indices = np.take_along_axis(np.concatenate([beam_indices, top_idx], axis=1), best[:, :, None], axis=1)
            finished = np.take_along_axis(np.concatenate([finished, just], axis=1), best, axis=1)
            beam_scores = np.take_along_axis(m_scores, best, axis=1)
            past = [p[running_idx[:, :, cur_len - 1].reshape(-1)] for p in presents]
            cur_len += 1
            length = (max_length if early == "never" and lp > 0 else cur_len) - 1
            best_running = running_scores[:, :1] / np.float32(float(length) ** lp)
            worst = np.where(finished, beam_scores.min(axis=1, keepdims=True), _NEG)
            unsatisfied = unsatisfied & (best_running > worst).any(axis=1, keepdims=True)
            if not (unsatisfied.any() and not (finished.all() and early is True) and not hits.all()):
                break
        out = sequences[:, 0]
        n_gen = int(((beam_indices[:, 0] + 1) != 0).sum(axis=1).max())
        return out[:, : 1 + n_gen], steps


def _verified(path: Path, manifest_path: Path) -> None:
    if not path.is_file():
        raise InputError(f"captioner file {path} does not exist")
    if not manifest_path.is_file():
        raise InputError(
            f"{path} has no manifest {manifest_path.name}; re-export the captioner "
            "(the exporter writes a manifest next to each file)"
        )
    Manifest.load(manifest_path).verify(path)


__all__ = ["Captioner", "CaptionerConfig", "Generation", "location_boxes", "log_softmax", "quantize_locations"]
