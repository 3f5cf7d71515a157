"""llama.cpp LoRA adapter GGUFs from (A, B) matrices, with the ``gguf`` package (no torch).

The format is the one llama.cpp's ``convert_lora_to_gguf.py`` writes and ``llama_adapter_lora_init``
reads: ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``, the base
model's ``general.architecture``, and per adapted weight ``<base tensor name>.lora_a`` (numpy shape
``[rank, in]``, HF's ``lora_A.weight``) and ``<base tensor name>.lora_b`` (``[out, rank]``,
``lora_B.weight``). llama.cpp applies ``y += scale * alpha / rank * B @ (A @ x)``.

HF → GGUF names for llama-architecture models (SmolLM2, Llama, ...): :func:`gguf_name`. llama.cpp's
GGUF converter permutes the rows of ``q_proj`` / ``k_proj`` (rotary layout), so their ``B`` rows
are permuted the same way (:func:`permute_rows`); ``A`` (the input side) is unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_HF_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)$")


def import_gguf():
    try:
        import gguf
    except ImportError as exc:
        raise ImportError(f"writing GGUF adapters needs the gguf package ({exc}): pip install gguf "
                          "(or pip install 'gear-edge[train]')") from exc
    return gguf


def gguf_name(hf_module: str) -> str:
    """``model.layers.3.self_attn.q_proj`` → ``blk.3.attn_q.weight``; ValueError for other modules."""
    m = _HF_NAME.search(hf_module)
    if m is None:
        raise ValueError(f"{hf_module!r} is not a llama-architecture attention / MLP projection")
    return f"blk.{m.group(1)}.{HF_TO_GGUF[m.group(2)]}.weight"


def permute_rows(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` of an output-row-major matrix (HF → GGUF rotary layout)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def base_tensor_shapes(base_gguf: str | os.PathLike) -> tuple[str, dict[str, tuple[int, int]], dict[str, int]]:
    """(architecture, ``name`` → numpy-order (out, in) shape of every 2-D weight, head counts) of a
    base model GGUF."""
    gguf = import_gguf()
    reader = gguf.GGUFReader(str(base_gguf))
    arch = reader.fields["general.architecture"].contents()
    shapes = {}
    for t in reader.tensors:
        if len(t.shape) == 2:
            shapes[t.name] = (int(t.shape[1]), int(t.shape[0]))  # GGUF ne = [in, out]
    heads = {}
    for key in ("attention.head_count", "attention.head_count_kv"):
        f = reader.fields.get(f"{arch}.{key}")
        if f is not None:
            heads[key] = int(f.contents())
    return arch, shapes, heads


def write_lora_gguf(path: str | os.PathLike, tensors: Mapping[str, tuple[np.ndarray, np.ndarray]], *, alpha: float,
                    architecture: str = "llama", name: str = "gear_edge deducer LoRA", dtype: str = "f32",
                    base_shapes: Mapping[str, tuple[int, int]] | None = None) -> Path:
    """Writes a LoRA adapter GGUF. ``tensors``: base GGUF tensor name (``blk.0.attn_q.weight``) →
    (A ``[rank, in]``, B ``[out, rank]``), already in the base GGUF's row layout. ``base_shapes``
    (from :func:`base_tensor_shapes`): every name must be a base weight of shape (out, in).
    ``dtype``: ``"f32"`` or ``"f16"``."""
    gguf = import_gguf()
    if dtype not in ("f32", "f16"):
        raise ValueError(f"dtype must be 'f32' or 'f16', got {dtype!r}")
    np_dtype = np.float32 if dtype == "f32" else np.float16
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", name)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for tname in sorted(tensors, key=_natural):
        a, b = (np.asarray(x, dtype=np.float32) for x in tensors[tname])
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(f"{tname}: A {a.shape} and B {b.shape} are not [rank, in] and [out, rank]")
        if base_shapes is not None:
            if tname not in base_shapes:
                raise ValueError(f"{tname} is not a 2-D weight of the base model")
            if (b.shape[0], a.shape[1]) != tuple(base_shapes[tname]):
                raise ValueError(f"{tname}: B @ A is {(b.shape[0], a.shape[1])}, the base weight is {base_shapes[tname]}")
        writer.add_tensor(f"{tname}.lora_a", np.ascontiguousarray(a.astype(np_dtype)))
        writer.add_tensor(f"{tname}.lora_b", np.ascontiguousarray(b.astype(np_dtype)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
