"""A SAM2 prompt decoder whose output has real structure, for the AMG algorithm parity proof.

Random-initialised SAM2 weights give degenerate masks (one survivor on ``astronaut``), which
cannot show that two AMG implementations agree. This decoder answers a click with masks taken
from a real segmentation of the image: the Felzenszwalb segment under the click at three
scales (the three "multimask" outputs), as smoothed-indicator logits at 256², with a per-segment
sharpness (so stability varies) and a predicted IoU from a per-segment quality plus the click's
depth inside the segment. A background click (label 0) flips the sign.

All arithmetic is exact in float32 (0/1 indicators, dyadic binomial smoothing written as shifted
adds, power-of-two scalings) except a few products and sums in a fixed order, so PyTorch and ONNX
Runtime give bit-identical outputs — checked by the tests, not assumed.

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


FEATURE_SCALE = 1.0 / 16.0  # power of two: the feature term is exact to scale


class StructuredCore(nn.Module):
    """(point_coords ``[B, P, 2]`` in 1024-px model space, point_labels ``[B, P]``, and the image
    features ``image_embed [1|B, 256, 64, 64]``, ``high_res_feats_0 [1|B, 32, 256, 256]``,
    ``high_res_feats_1 [1|B, 64, 128, 128]``) → (logits ``[B, S, 256, 256]``, iou ``[B, S]``),
    S = number of label maps (3).

    Every point counts: the mask is the union of the segments under the foreground points (label
    1), less the segments under the background points (label 0); a box (corner labels 2 and 3)
    keeps only what lies inside it and, without foreground points, takes the segment under its
    centre; a prompt of background points only is the complement of their segments; padding points
    (label -1) are ignored. The image features enter the logits (channel 0 of each map, nearest-
    upsampled to 256², summed, times :data:`FEATURE_SCALE`), so features from the wrong image, a
    wrong map or a wrong slot change the masks; the predicted IoU depends on the prompt's anchor
    (first foreground point, else box centre, else first point) only.
    """

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
        centres = (np.arange(w, dtype=np.float32) + 0.5) * np.float32(input_size / w)
        self.register_buffer("centres", torch.from_numpy(centres))  # pixel centres in model space
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

    def _pixels(self, xy: torch.Tensor) -> torch.Tensor:
        """Flat 256² pixel index under model-space points ``xy [..., 2]``."""
        h, w = self.size
        ix = torch.clamp(torch.floor(xy[..., 0] / self.stride), 0, w - 1).to(torch.int64)
        iy = torch.clamp(torch.floor(xy[..., 1] / self.stride), 0, h - 1).to(torch.int64)
        return iy * w + ix

    def _segments(self, pix: torch.Tensor) -> torch.Tensor:
        """Label ids ``[..., S]`` under flat pixel indices ``pix [...]``."""
        s, h, w = self.labels.shape
        seg = torch.index_select(self.labels.reshape(s, h * w), 1, pix.reshape(-1))  # [S, n]
        return seg.transpose(0, 1).reshape(*pix.shape, s)

    def _indicator(self, seg: torch.Tensor) -> torch.Tensor:
        """0/1 float ``[..., S, h, w]``: pixels whose label is ``seg [..., S]``."""
        return (self.labels == seg[..., None, None]).to(torch.float32)

    def forward(self, point_coords: torch.Tensor, point_labels: torch.Tensor, image_embed: torch.Tensor,
                high_res_feats_0: torch.Tensor, high_res_feats_1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, h, w = self.labels.shape
        b, p = point_coords.shape[0], point_coords.shape[1]
        xy = point_coords.to(torch.float32)
        lab = point_labels.to(torch.float32)
        pos, neg = (lab == 1.0).to(torch.float32), (lab == 0.0).to(torch.float32)  # [B, P]
        tl, br = (lab == 2.0).to(torch.float32), (lab == 3.0).to(torch.float32)
        has_pos = pos.amax(1) > 0.5  # [B]
        has_box = (tl.amax(1) > 0.5) & (br.amax(1) > 0.5)
        ind = self._indicator(self._segments(self._pixels(xy)))  # [B, P, S, h, w]
        fg = (ind * pos[:, :, None, None, None]).amax(1)  # [B, S, h, w] union of foreground segments
        bg = (ind * neg[:, :, None, None, None]).amax(1)
        c0 = (xy * tl[..., None]).sum(1)  # [B, 2] box corners (zero without a box)
        c1 = (xy * br[..., None]).sum(1)
        centre = (c0 + c1) * 0.5
        box_seg = self._indicator(self._segments(self._pixels(centre)))  # [B, S, h, w]
        cx, cy = self.centres[None, None, :], self.centres[None, :, None]
        inside = ((cx >= c0[:, 0, None, None]) & (cx <= c1[:, 0, None, None])
                  & (cy >= c0[:, 1, None, None]) & (cy <= c1[:, 1, None, None])).to(torch.float32)[:, None]
        one = torch.ones_like(fg)
        keep = torch.where(has_pos[:, None, None, None], fg, torch.where(has_box[:, None, None, None], box_seg, 1.0 - bg))
        keep = keep * torch.where(has_box[:, None, None, None], inside, one)
        keep = torch.where((has_pos | has_box)[:, None, None, None], keep * (1.0 - bg), keep)
        x = keep.reshape(b * s, 1, h, w)
        x = self._smooth(self._smooth(x, 3), 2).reshape(b, s, h, w)
        # the prompt's anchor: first foreground point, else the box centre, else the first point
        first_pos = torch.argmax(pos, dim=1)  # index of the first 1 (0 when there is none)
        pick = torch.gather(xy, 1, first_pos[:, None, None].expand(b, 1, 2)).squeeze(1)
        anchor = torch.where(has_pos[:, None], pick, torch.where(has_box[:, None], centre, xy[:, 0]))
        apix = self._pixels(anchor)  # [B]
        aseg = self._segments(apix)  # [B, S]
        depth = torch.gather(x.reshape(b, s, h * w), 2, apix[:, None, None].expand(b, s, 1)).squeeze(2)
        gain = torch.gather(self.gain.unsqueeze(0).expand(b, s, -1), 2, aseg.unsqueeze(2)).squeeze(2)
        quality = torch.gather(self.quality.unsqueeze(0).expand(b, s, -1), 2, aseg.unsqueeze(2)).squeeze(2)
        feats = self.feature_term(image_embed, high_res_feats_0, high_res_feats_1)  # [1, 1, h, w]
        logits = (x - 0.5) * gain[:, :, None, None] + feats
        iou = quality + depth * (1.0 / 64.0)
        return logits, iou

    def feature_term(self, image_embed: torch.Tensor, feats_0: torch.Tensor, feats_1: torch.Tensor) -> torch.Tensor:
        """``[1, 1, 256, 256]``: channel 0 of each feature map of the first image, nearest-upsampled, summed, scaled."""
        h, w = self.size
        e = image_embed[:1, :1]  # [1, 1, 64, 64]
        f1 = feats_1[:1, :1]  # [1, 1, 128, 128]
        e = e[:, :, :, None, :, None].expand(1, 1, e.shape[2], h // e.shape[2], e.shape[3], w // e.shape[3]).reshape(1, 1, h, w)
        f1 = f1[:, :, :, None, :, None].expand(1, 1, f1.shape[2], h // f1.shape[2], f1.shape[3], w // f1.shape[3]).reshape(1, 1, h, w)
        return (e + feats_0[:1, :1] + f1) * FEATURE_SCALE


class StructuredOnnxDecoder(nn.Module):
    """The exported decoder's signature: features + prompts → (low_res_masks, iou_predictions)."""

    def __init__(self, core: StructuredCore) -> None:
        super().__init__()
        self.core = core

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels):
        return self.core(point_coords, point_labels, image_embed, high_res_feats_0, high_res_feats_1)


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
        logits, iou = self.core(coords, labels, image_embeddings, high_res_features[0], high_res_features[1])
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
