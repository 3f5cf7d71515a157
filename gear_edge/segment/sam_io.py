"""SAM2 encoder/decoder engines behind one small interface (names, shapes and dtypes checked once).

Encoder: one image input ``float32 [1, 3, S, S]`` (S = 1024 for SAM2) → feature maps
(``image_embed [1,256,64,64]``, ``high_res_feats_0 [1,32,256,256]``, ``high_res_feats_1
[1,64,128,128]``). Decoder: the encoder outputs it names, ``point_coords float32 [B, P, 2]``
(model-input pixels), ``point_labels [B, P]`` (1 foreground, 0 background, 2/3 box corners, -1
padding; dtype as the model declares), optional ``mask_input [B or Bm, 1, 256, 256]`` /
``has_mask_input`` (fed as zeros / 0; a mask batch axis with its own name, like our exports' ``Bm``,
gets a single zero mask, which the graph broadcasts) → ``low_res_masks [B, M, h, w]`` logits and
``iou_predictions [B, M]``. Decoders with a ``multimask_output`` input get the flag; decoders
returning all ``num_mask_tokens`` outputs (M = 4) are sliced as sam2 does (``1:`` for multimask,
``0:1`` otherwise); a decoder fixed at M = 3 cannot serve single-mask requests (InputError).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from gear_edge.engines.base import Engine
from gear_edge.errors import InputError
from gear_edge.segment.preprocess import check_rgb, preprocess

COORDS = "point_coords"
LABELS = "point_labels"
MASK_INPUT = "mask_input"
HAS_MASK_INPUT = "has_mask_input"
MULTIMASK = "multimask_output"
LOGITS = "low_res_masks"
IOU = "iou_predictions"
_OPTIONAL = (MASK_INPUT, HAS_MASK_INPUT, MULTIMASK)


def _check_engine(engine: object, role: str) -> Engine:
    if not isinstance(engine, Engine):
        raise InputError(
            f"{role} must implement gear_edge.engines.Engine (source, inputs, outputs, run), "
            f"got {type(engine).__name__}"
        )
    return engine


class SamEngines:
    """Validates a SAM2 encoder/decoder pair at construction; runs them with numpy arrays."""

    def __init__(self, encoder: Engine, decoder: Engine) -> None:
        self.encoder = _check_engine(encoder, "encoder")
        self.decoder = _check_engine(decoder, "decoder")
        if len(encoder.inputs) != 1:
            raise InputError(
                f"{encoder.source}: the encoder must take one image input, it takes {list(encoder.inputs)}"
            )
        self.image_input = next(iter(encoder.inputs))
        spec = encoder.inputs[self.image_input]
        side = spec.shape[-1] if len(spec.shape) == 4 else None
        if len(spec.shape) != 4 or spec.shape[1] not in (3, None, "") or np.dtype(spec.dtype) != np.float32:
            raise InputError(f"{encoder.source}: encoder input must be float32 [1, 3, S, S], got {spec.describe()}")
        self.input_size = int(side) if isinstance(side, int) and side > 0 else 1024
        for name in (COORDS, LABELS):
            if name not in decoder.inputs:
                raise InputError(
                    f"{decoder.source}: the decoder has no input {name!r} (inputs: {list(decoder.inputs)})"
                )
        for name in (LOGITS, IOU):
            if name not in decoder.outputs:
                raise InputError(
                    f"{decoder.source}: the decoder has no output {name!r} (outputs: {list(decoder.outputs)})"
                )
        self.feature_names = [n for n in decoder.inputs if n not in (COORDS, LABELS, *_OPTIONAL)]
        missing = [n for n in self.feature_names if n not in encoder.outputs]
        if missing:
            raise InputError(
                f"{decoder.source}: decoder input(s) {missing} are not outputs of the encoder {encoder.source} "
                f"(encoder outputs: {list(encoder.outputs)})"
            )
        self.labels_dtype = np.dtype(decoder.inputs[LABELS].dtype)

    def check_image(self, image: object) -> np.ndarray:
        return check_rgb(image)

    def encode(self, image: np.ndarray, timings: dict | None = None) -> dict[str, np.ndarray]:
        """uint8 RGB image (or crop) → the feature maps the decoder takes."""
        t0 = time.perf_counter()
        x = preprocess(image, self.input_size)
        t1 = time.perf_counter()
        feats = self.encoder.run({self.image_input: x}, output_names=self.feature_names)
        t2 = time.perf_counter()
        if timings is not None:
            timings["preprocess_ms"] = timings.get("preprocess_ms", 0.0) + (t1 - t0) * 1e3
            timings["encoder_ms"] = timings.get("encoder_ms", 0.0) + (t2 - t1) * 1e3
        return feats

    def _optional_feed(self, name: str, batch: int, multimask: bool) -> np.ndarray:
        spec = self.decoder.inputs[name]
        if name == MULTIMASK:
            return np.asarray(multimask, dtype=spec.dtype).reshape([1] * len(spec.shape))
        # a dynamic axis named like the prompts' batch axis (or unnamed) takes the batch; one with
        # its own name (our decoders' mask batch "Bm", which broadcasts) takes a single zero mask
        prompt_axis = self.decoder.inputs[COORDS].shape[0]
        shape = [d if isinstance(d, int) and d >= 0 else
                 (batch if (d == prompt_axis or not isinstance(d, str) or d in ("", "?")) else 1)
                 for d in spec.shape]
        return np.zeros(shape, dtype=spec.dtype)

    def decode(
        self,
        feats: Mapping[str, np.ndarray],
        coords: np.ndarray,
        labels: np.ndarray,
        multimask_output: bool,
        timings: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prompts ``coords [B, P, 2]`` (model pixels), ``labels [B, P]`` → logits ``[B, M, h, w]``, IoU ``[B, M]``.

        Timings (``decoder_ms``, ``decoder_batches_ms``) are added to ``timings`` when given.
        """
        b = coords.shape[0]
        feeds = {n: feats[n] for n in self.feature_names}
        feeds[COORDS] = np.ascontiguousarray(coords, dtype=np.float32)
        feeds[LABELS] = np.ascontiguousarray(labels, dtype=self.labels_dtype)
        for name in _OPTIONAL:
            if name in self.decoder.inputs:
                feeds[name] = self._optional_feed(name, b, multimask_output)
        t0 = time.perf_counter()
        out = self.decoder.run(feeds, output_names=[LOGITS, IOU])
        dt = (time.perf_counter() - t0) * 1e3
        if timings is not None:
            timings["decoder_ms"] = timings.get("decoder_ms", 0.0) + dt
            timings.setdefault("decoder_batches_ms", []).append(dt)
        logits, iou = out[LOGITS], out[IOU]
        if logits.ndim != 4 or logits.shape[0] != b or iou.shape != logits.shape[:2]:
            raise InputError(
                f"{self.decoder.source}: decoder returned {LOGITS} {list(logits.shape)} and {IOU} {list(iou.shape)}; "
                f"expected [B={b}, M, h, w] and [B, M]"
            )
        if MULTIMASK not in self.decoder.inputs:
            if logits.shape[1] == 4:
                sl = slice(1, 4) if multimask_output else slice(0, 1)
                logits, iou = logits[:, sl], iou[:, sl]
            elif not multimask_output and logits.shape[1] > 1:
                raise InputError(
                    f"{self.decoder.source}: single-mask output was asked for, but this decoder returns "
                    f"{logits.shape[1]} masks per prompt and has no {MULTIMASK!r} input; export a single-mask "
                    "decoder or use multimask_output=True"
                )
        return logits, iou
