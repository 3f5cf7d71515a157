"""A SAM2 prompt decoder whose output has real structure, for the AMG algorithm parity proof.

Random-initialised SAM2 weights give degenerate masks (one survivor on ``astronaut``), which
cannot show that two AMG implementations agree. This decoder answers a click with masks taken
from a real segmentation of the image: the Felzenszwalb segment under the click at three
scales (the three "multimask" outputs), as smoothed-indicator logits at 256², with a per-segment
sharpness (so stability varies) and a predicted IoU from a per-segment quality plus the click's
depth inside the segment. A background click (label 0) flips the sign.

All arithmetic is exact in float32 (0/1 indicators, dyadic binomial smoothing written as shifted
adds, power-of-two scalings) except one product and one sum, so PyTorch and ONNX Runtime give
bit-identical outputs — checked by the tests, not assumed.

``StructuredCore`` is the torch function; ``Sam2DecoderAdapter`` / ``Sam2PromptPassThrough``
plug it into a real ``sam2`` model in place of its prompt encoder and mask decoder (sam2 feeds the
decoder through its own predictor code); ``StructuredOnnxDecoder`` wraps it with the exported
decoder's signature for ``torch.onnx.export``. Needs torch (and scikit-image, cv2).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

LOW_RES = 256
SCALES = ((100.0, 20), (300.0, 40), (1000.0, 80))  # Felzenszwalb (scale, min_size) per mask output
BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # / 16, applied 3x per axis: exact dyadic weights


def label_maps(image: np.ndarray, size: int = LOW_RES, scales=SCALES) -> np.ndarray:
    """int64 ``[len(scales), size, size]`` Felzenszwalb labels of the image squashed to size²."""
    from skimage.segmentation import felzenszwalb

    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.stack([felzenszwalb(small, scale=s, sigma=0.8, min_size=m) for s, m in scales]).astype(np.int64)


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


class StructuredCore(nn.Module):
    """(point_coords ``[B, P, 2]`` in 1024-px model space, point_labels ``[B, P]``) →
    (logits ``[B, S, 256, 256]``, iou ``[B, S]``), S = number of label maps (3)."""

    def __init__(self, labels: np.ndarray, input_size: int = 1024) -> None:
        super().__init__()
        s, h, w = labels.shape
        n = int(labels.max()) + 1
        ids = np.arange(n, dtype=np.float64)[None, :] + 1000.0 * np.arange(s)[:, None]
        quality = (0.7 + 0.3 * _frac(ids * 0.6180339887498949 + 0.17)).astype(np.float32)
        gain = (8.0 * 20.0 ** _frac(ids * 0.7548776662466927 + 0.41)).astype(np.float32)  # 8..160
        self.register_buffer("labels", torch.from_numpy(labels.astype(np.int64)))
        self.register_buffer("quality", torch.from_numpy(quality))
        self.register_buffer("gain", torch.from_numpy(gain))
        self.size = (h, w)
        self.stride = input_size / w

    def _smooth(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        n = x.shape[axis]
        for _ in range(3):
            pad = (0, 0, 2, 2) if axis == 2 else (2, 2, 0, 0)
            xp = nn.functional.pad(x, pad, mode="replicate")
            acc = None
            for k, wk in enumerate(BINOMIAL):
                term = xp.narrow(axis, k, n) * (wk / 16.0)
                acc = term if acc is None else acc + term
            x = acc
        return x

    def forward(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, h, w = self.labels.shape
        b = point_coords.shape[0]
        p = point_coords[:, 0, :].to(torch.float32)
        ix = torch.clamp(torch.floor(p[:, 0] / self.stride), 0, w - 1).to(torch.int64)
        iy = torch.clamp(torch.floor(p[:, 1] / self.stride), 0, h - 1).to(torch.int64)
        pix = iy * w + ix  # [B]
        flat = self.labels.reshape(s, h * w)
        seg = torch.index_select(flat, 1, pix).transpose(0, 1)  # [B, S]
        ind = (self.labels.unsqueeze(0) == seg[:, :, None, None]).to(torch.float32)  # [B, S, h, w]
        x = ind.reshape(b * s, 1, h, w)
        x = self._smooth(self._smooth(x, 3), 2).reshape(b, s, h, w)
        depth = torch.gather(x.reshape(b, s, h * w), 2, pix[:, None, None].expand(b, s, 1)).squeeze(2)  # [B, S]
        gain = torch.gather(self.gain.unsqueeze(0).expand(b, s, -1), 2, seg.unsqueeze(2)).squeeze(2)
        quality = torch.gather(self.quality.unsqueeze(0).expand(b, s, -1), 2, seg.unsqueeze(2)).squeeze(2)
        sign = torch.where(point_labels[:, :1].to(torch.float32) > 0.5, 1.0, -1.0)  # [B, 1]
        logits = (x - 0.5) * (gain * sign)[:, :, None, None]
        iou = quality + depth * (1.0 / 64.0)
        return logits, iou


class StructuredOnnxDecoder(nn.Module):
    """The exported decoder's signature: features + prompts → (low_res_masks, iou_predictions).

    The feature maps are consumed (summed and multiplied by zero) so the graph keeps the real
    decoder's inputs; they do not change the output.
    """

    def __init__(self, core: StructuredCore) -> None:
        super().__init__()
        self.core = core

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels):
        logits, iou = self.core(point_coords, point_labels)
        zero = (image_embed.mean() + high_res_feats_0.mean() + high_res_feats_1.mean()) * 0.0
        return logits + zero, iou


def export_structured_decoder(core: StructuredCore, path: str | Path) -> Path:
    """Exports ``StructuredOnnxDecoder(core)`` to ONNX (opset 17, dynamic prompt batch and count)."""
    path = Path(path)
    model = StructuredOnnxDecoder(core).eval()
    feeds = (
        torch.zeros(1, 256, 64, 64),
        torch.zeros(1, 32, 256, 256),
        torch.zeros(1, 64, 128, 128),
        torch.full((2, 1, 2), 500.0),
        torch.ones(2, 1),
    )
    torch.onnx.export(
        model,
        feeds,
        str(path),
        input_names=["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels"],
        output_names=["low_res_masks", "iou_predictions"],
        dynamic_axes={
            "point_coords": {0: "num_prompts", 1: "num_points"},
            "point_labels": {0: "num_prompts", 1: "num_points"},
            "low_res_masks": {0: "num_prompts"},
            "iou_predictions": {0: "num_prompts"},
        },
        opset_version=17,
        dynamo=False,
    )
    return path


class Sam2PromptPassThrough(nn.Module):
    """Stands in for sam2's prompt encoder: hands the raw (coords, labels) on to the decoder."""

    def forward(self, points, boxes=None, masks=None):
        coords, labels = points
        sparse = torch.cat([coords.to(torch.float32), labels.to(torch.float32).unsqueeze(-1)], dim=-1)  # [B, P, 3]
        return sparse, torch.zeros(coords.shape[0], 1, 1, 1)

    def get_dense_pe(self):
        return torch.zeros(1, 1, 1, 1)


class Sam2DecoderAdapter(nn.Module):
    """Stands in for sam2's mask decoder (same call signature), computing ``StructuredCore``.

    Keeps the original decoder's ``conv_s0`` / ``conv_s1``: sam2's image path projects the high-
    resolution backbone features with them, so the image features stay the model's own.
    """

    def __init__(self, core: StructuredCore, original: nn.Module | None = None) -> None:
        super().__init__()
        self.core = core
        if original is not None and hasattr(original, "conv_s0"):
            self.conv_s0, self.conv_s1 = original.conv_s0, original.conv_s1

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                multimask_output, repeat_image, high_res_features=None):
        coords, labels = sparse_prompt_embeddings[..., :2], sparse_prompt_embeddings[..., 2]
        logits, iou = self.core(coords, labels)
        zero = (image_embeddings.mean() + sum(f.mean() for f in high_res_features)) * 0.0
        logits = logits + zero
        if not multimask_output:
            logits, iou = logits[:, 1:2], iou[:, 1:2]
        b = logits.shape[0]
        return logits, iou, torch.zeros(b, 1, 256), torch.ones(b, 1)


def install_into_sam2(model: nn.Module, core: StructuredCore) -> nn.Module:
    """Replaces a sam2 model's prompt encoder and mask decoder by the structured function."""
    original = model.sam_mask_decoder
    if isinstance(original, Sam2DecoderAdapter):
        original = getattr(original, "original", original)
    adapter = Sam2DecoderAdapter(core, original)
    adapter.__dict__["original"] = original  # not a submodule: kept for re-installation
    model.sam_prompt_encoder = Sam2PromptPassThrough()
    model.sam_mask_decoder = adapter
    return model
