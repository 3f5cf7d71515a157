"""SAM2's prompt decoder rewritten for export: the same function as sam2's prompt encoder + mask
decoder (``MaskDecoder.predict_masks`` with ``repeat_image=True``), with the work arranged so that a
batch of B prompts on one image costs about half of sam2's arithmetic and almost no data movement.

Only the order of exact operations changes; :func:`export.sam2_onnx.export_decoder` compares the
exported graph with sam2's own ``SAM2ImagePredictor._predict`` on every export. What is rearranged:

* **The image side is computed once when it is the same for every prompt.** ``mask_input`` has its own
  batch axis ``Bm`` (1 or B): with one (or no) mask, ``image_embed`` + dense prompt and, in the first
  two-way block, the image's key, value and query projections are computed for one image and
  broadcast over the B prompts, instead of ``repeat_interleave``-ing the image B times.
* **Projections are absorbed into the few tokens** (T = 6 + P + 1 tokens x 8 heads = 64 columns < the
  128-wide attention) wherever the image side differs per prompt:
  token-to-image attention scores are ``(Q_h W_k,h^T) (X + PE)^T`` (the query-key bias term is constant
  along the softmax axis and drops out) and its values ``(A X) W_v,h^T + b_v``; image-to-token
  attention scores are ``(X + PE) (W_q,h^T K_h^T) + b_q K_h^T`` and its output
  ``A (V_h W_o,h^T) + b_o``. Per prompt and image token that is 64 multiply-adds per channel where
  sam2 spends 128 (projection) plus the attention itself.
* **The two transposed convolutions run in sub-pixel layout.** A 2x2 / stride-2 transposed convolution
  is a per-pixel matrix product to 4 x C_out channels; the result is kept as
  ``[B, 64, 64, 2, 2, (2, 2,) C]`` (the high-resolution features are rearranged once per image to
  match), LayerNorm2d and GELU act per pixel, and only the final ``[B, 4, 256, 256]`` logits are
  interleaved back to image order. No per-prompt 256 x 256 x 32 tensor is ever transposed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def decoder_class() -> Any:
    """The torch module class (defined lazily: importing this file needs no torch)."""
    import torch
    import torch.nn.functional as F

    class Sam2PromptDecoder(torch.nn.Module):
        """Features + prompts → (low_res_masks [B, 4, 256, 256], iou_predictions [B, 4]).

        Inputs: ``image_embed`` f32[1, 256, 64, 64], ``high_res_feats_0`` f32[1, 32, 256, 256],
        ``high_res_feats_1`` f32[1, 64, 128, 128], ``point_coords`` f32[B, P, 2] (1024² model pixels),
        ``point_labels`` f32[B, P], ``mask_input`` f32[Bm, 1, 256, 256] (Bm = 1: one mask for every
        prompt, or B), ``has_mask_input`` f32[1] (0: the no-mask embedding, as sam2 without
        ``mask_input``). Points go through sam2's own prompt encoder, padded with one label -1 point as
        the predictor does. Output 0 is sam2's single-mask answer (dynamic multimask via stability
        when the model has it, else mask token 0), outputs 1..3 its multimask answers.
        """

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model
            dec = model.sam_mask_decoder
            tr = dec.transformer
            self.pe, self.dec, self.tr = model.sam_prompt_encoder, dec, tr
            self.s = 1 if dec.pred_obj_scores else 0
            self.heads = tr.layers[0].cross_attn_token_to_image.num_heads
            with torch.no_grad():
                pe = self.pe.get_dense_pe()  # [1, C, h, w]
            self.register_buffer("image_pe", pe.flatten(2).transpose(1, 2).contiguous(), persistent=False)
            dc1, ln1, _, dc2, _ = dec.output_upscaling
            cin1, cout1 = dc1.weight.shape[:2]
            cin2, cout2 = dc2.weight.shape[:2]
            if tuple(dc1.kernel_size) != (2, 2) or tuple(dc1.stride) != (2, 2) or tuple(dc2.kernel_size) != (2, 2) \
                    or tuple(dc2.stride) != (2, 2):
                raise ValueError("the sub-pixel upscaling needs 2x2 / stride-2 transposed convolutions (every SAM2 has them)")
            # [Cin, Cout, di, dj] → [Cin, (di, dj, Cout)]: one matrix product per input pixel
            self.register_buffer("w_up1", dc1.weight.detach().permute(0, 2, 3, 1).reshape(cin1, 4 * cout1).contiguous(),
                                 persistent=False)
            self.register_buffer("b_up1", dc1.bias.detach().repeat(4), persistent=False)
            self.register_buffer("w_up2", dc2.weight.detach().permute(0, 2, 3, 1).reshape(cin2, 4 * cout2).contiguous(),
                                 persistent=False)
            self.register_buffer("b_up2", dc2.bias.detach().repeat(4), persistent=False)
            self.cout1, self.cout2, self.ln1 = int(cout1), int(cout2), ln1
            self.grid = int(pe.shape[-1])  # 64: the image embedding is grid x grid
            if int(pe.shape[-2]) != self.grid:
                raise ValueError(f"the decoder expects a square image embedding, got {list(pe.shape[-2:])}")
            eye = torch.eye(self.heads)
            self.register_buffer("head_blocks", eye.reshape(self.heads, 1, self.heads, 1), persistent=False)

        # ---- attention pieces (shapes: B prompts, T tokens, N = 4096 image positions, C = 256 channels)
        def _split(self, x, heads):  # [b, n, h*d] → [b, h, n, d]
            b, n, c = x.shape
            return x.reshape(b, n, heads, c // heads).transpose(1, 2)

        def token_to_image_shared(self, attn, q, k, v):
            """sam2's Attention with the image side (k, v: [Bm, N, C]) projected once: q [B, T, C]."""
            h = attn.num_heads
            qh = self._split(attn.q_proj(q), h)  # [B, h, T, d]
            kh = self._split(attn.k_proj(k), h)  # [Bm, h, N, d]
            vh = self._split(attn.v_proj(v), h)
            d = qh.shape[-1]
            a = torch.softmax((qh * d ** -0.5) @ kh.transpose(-1, -2), dim=-1)  # [B, h, T, N]
            out = (a @ vh).transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)
            return attn.out_proj(out)

        def token_to_image_absorbed(self, attn, q, y, x):
            """Token-to-image attention on per-prompt image tokens (y = x + PE, x: [B, N, C]) with the
            key and value projections moved onto the T query tokens."""
            h = attn.num_heads
            b, t, c = q.shape
            qh = self._split(attn.q_proj(q), h)  # [B, h, T, d]
            d = qh.shape[-1]
            wk = attn.k_proj.weight.reshape(h, d, c)  # [h, d, C]
            qk = ((qh * d ** -0.5) @ wk).reshape(b, h * t, c)  # [B, hT, C]; q·b_k is constant along N: dropped
            a = torch.softmax(qk @ y.transpose(1, 2), dim=-1)  # [B, hT, N]
            ax = (a @ x).reshape(b, h, t, c)  # [B, h, T, C]
            wv = attn.v_proj.weight.reshape(h, d, c).transpose(1, 2)  # [h, C, d]
            vh = ax @ wv + attn.v_proj.bias.reshape(h, 1, d)  # rows of a sum to 1
            return attn.out_proj(vh.transpose(1, 2).reshape(b, t, h * d))

        def image_to_token(self, attn, img_q, tok_k, tok_v, shared):
            """Image-to-token attention: image queries ([Bm or B, N, C], with PE) over the T tokens;
            out_proj is folded into the values. ``shared``: img_q is the same for every prompt (Bm = 1)
            and is projected once; otherwise W_q is folded into the keys."""
            h = attn.num_heads
            b, t, c = tok_k.shape
            kh = self._split(attn.k_proj(tok_k), h)  # [B, h, T, d]
            d = kh.shape[-1]
            vh = self._split(attn.v_proj(tok_v), h)  # [B, h, T, d]
            wo = attn.out_proj.weight.reshape(c, h, d).permute(1, 2, 0)  # [h, d, C]
            u = (vh @ wo).reshape(b, h * t, c)  # [B, hT, C]: values already through out_proj
            kh = kh * d ** -0.5
            if shared:
                qi = attn.q_proj(img_q)  # [Bm, N, h*d]
                # block-diagonal keys [B, h*d, h*T]: head g's columns see only head g's channels
                kbd = (kh.transpose(2, 3).unsqueeze(3) * self.head_blocks).reshape(b, h * d, h * t)
                scores = qi @ kbd  # [B, N, hT]
            else:
                wq = attn.q_proj.weight.reshape(h, d, c)  # [h, d, C]
                m = (kh @ wq).reshape(b, h * t, c)  # [B, hT, C]
                bias = (kh @ attn.q_proj.bias.reshape(h, d, 1)).reshape(b, 1, h * t)
                scores = img_q @ m.transpose(1, 2) + bias  # [B, N, hT]
            n = scores.shape[1]
            a = torch.softmax(scores.reshape(b, n, h, t), dim=-1).reshape(b, n, h * t)
            return a @ u + attn.out_proj.bias

        def block(self, blk, queries, keys, query_pe, first):
            if blk.skip_first_layer_pe:
                queries = blk.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + query_pe
                queries = queries + blk.self_attn(q=q, k=q, v=queries)
            queries = blk.norm1(queries)
            y = keys + self.image_pe
            q = queries + query_pe
            if first:
                attn = self.token_to_image_shared(blk.cross_attn_token_to_image, q, y, keys)
            else:
                attn = self.token_to_image_absorbed(blk.cross_attn_token_to_image, q, y, keys)
            queries = blk.norm2(queries + attn)
            queries = blk.norm3(queries + blk.mlp(queries))
            out = self.image_to_token(blk.cross_attn_image_to_token, y, queries + query_pe, queries, shared=first)
            keys = blk.norm4(keys + out)
            return queries, keys

        # ---- upscaling in sub-pixel layout
        def upscale_and_project(self, keys, feat_s0, feat_s1, hyper_in):
            """keys [B, N, C] (64x64 grid, row-major) → logits [B, M, 256, 256] (M = hyper_in.shape[1])."""
            b = keys.shape[0]
            g = self.grid  # 64
            n = g * g
            c1, c2 = self.cout1, self.cout2
            # feat_s1 [1, c1, 2g, 2g] → [1, N*4, c1] in (i, j, di, dj) order; feat_s0 [1, c2, 4g, 4g] → [1, N*16, c2]
            # (the transposed convolutions' biases are added to these once per image, not per prompt)
            f1 = feat_s1.reshape(1, c1, g, 2, g, 2).permute(0, 2, 4, 3, 5, 1).reshape(1, n, 4 * c1) + self.b_up1
            f0 = feat_s0.reshape(1, c2, g, 2, 2, g, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1).reshape(1, n * 4, 4 * c2) + self.b_up2
            up = (keys @ self.w_up1 + f1).reshape(b, n * 4, c1)
            up = F.gelu(F.layer_norm(up, (c1,), self.ln1.weight, self.ln1.bias, self.ln1.eps))
            up = F.gelu((up @ self.w_up2 + f0).reshape(b, n * 16, c2))
            m = hyper_in.shape[1]
            sub = up @ hyper_in.transpose(1, 2)  # [B, N*16, M] in (i, j, di, dj, ei, ej) order
            sub = sub.reshape(b, g, g, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
            return sub.reshape(b, m, 4 * g, 4 * g)

        def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels,
                    mask_input, has_mask_input):
            pe, dec, tr = self.pe, self.dec, self.tr
            sparse = pe._embed_points(point_coords, point_labels, pad=True)  # [B, P+1, C]
            has = has_mask_input.reshape(1, 1, 1, 1)
            dense = pe._embed_masks(mask_input) * has + pe.no_mask_embed.weight.reshape(1, -1, 1, 1) * (1.0 - has)
            src = (image_embed + dense).flatten(2).transpose(1, 2)  # [Bm, N, C]
            if self.s:
                tokens = torch.cat([dec.obj_score_token.weight, dec.iou_token.weight, dec.mask_tokens.weight], 0)
            else:
                tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0)
            b = sparse.shape[0]
            tokens = torch.cat([tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)  # [B, T, C]
            queries, keys = tokens, src
            for i, blk in enumerate(tr.layers):
                queries, keys = self.block(blk, queries, keys, tokens, first=(i == 0))
            attn = self.token_to_image_absorbed(tr.final_attn_token_to_image, queries + tokens, keys + self.image_pe, keys)
            hs = tr.norm_final_attn(queries + attn)
            s = self.s
            iou_token_out = hs[:, s, :]
            mask_tokens_out = hs[:, s + 1: s + 1 + dec.num_mask_tokens, :]
            hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], 1)
            masks = self.upscale_and_project(keys, high_res_feats_0, high_res_feats_1, hyper_in)
            iou = dec.iou_prediction_head(iou_token_out)
            if dec.dynamic_multimask_via_stability:
                single, single_iou = dec._dynamic_multimask_via_stability(masks, iou)
            else:
                single, single_iou = masks[:, 0:1], iou[:, 0:1]
            return torch.cat([single, masks[:, 1:]], dim=1), torch.cat([single_iou, iou[:, 1:]], dim=1)

    return Sam2PromptDecoder
