"""LoRA for the direct-mode deducer on the data engine's examples (torch on CPU; the ``[train]`` extra).

1. The base: the Hugging Face model rebuilt from the *shipped GGUF* (transformers ``gguf_file=``
   dequantises it), so the adapter is trained on the weights llama.cpp runs (up to the Q4_1
   rounding), sha256-checked against its manifest first.
2. Examples (:mod:`gear_edge.data_engine.deducer_data`): the direct deducer's chat prompt, rendered
   with the GGUF's chat template (system, the few-shot turns, scene lines + question) → the target
   JSON and the end-of-turn token; the loss is on the answer tokens only.
3. LoRA (peft) on every attention / MLP projection, AdamW, a fixed seed; each batch holds
   questions on one scene, whose shared prompt runs once (``loss_sum``), in bf16 autocast where the
   CPU has native bfloat16 (``--precision``); progress lines; a
   checkpoint (adapter + optimizer + step) every ``--save-every`` steps and at the end, from which a
   rerun with the same ``--out`` resumes; ``--time-budget-min`` stops cleanly (checkpoint, export).
4. Export: the adapter as a llama.cpp LoRA GGUF (:mod:`train.lora_gguf`; q/k rows permuted as
   llama.cpp's converter permutes the base) and its manifest (``<name>.toml``: sha256, size, base
   model sha256, rank, alpha, steps, data) next to it — load it with ``deduce.adapter``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import sys
import time
from pathlib import Path

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
INSTALL = "pip install 'gear-edge[train]' (torch, transformers, peft, gguf)"


def _imports():
    missing = []
    mods = {}
    for name in ("torch", "transformers", "peft", "gguf"):
        try:
            mods[name] = __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        from gear_edge.errors import MissingDependencyError

        raise MissingDependencyError(f"train-deducer needs {', '.join(missing)}: {INSTALL}")
    return mods


def log(msg: str) -> None:
    print(f"[train-deducer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- base model --------------------------------------------------------------------------------

def base_gguf(path: str | None, sha256: str | None) -> tuple[Path, str]:
    """(the base GGUF, its sha256), verified: the default manifest's file, or ``path`` with ``sha256``."""
    from gear_edge.manifest import Manifest, sha256_file, verify_sha256

    if path is None:
        m = Manifest.named("smollm2-135m-instruct-q4_1")
        p = m.verify(m.locate())
        return p, m.sha256
    p = Path(path)
    if sha256:
        verify_sha256(p, sha256, "--base-sha256")
        return p, sha256.lower()
    manifest = p.with_suffix(".toml")
    if manifest.is_file():
        m = Manifest.load(manifest)
        m.verify(p)
        return p, m.sha256
    from gear_edge.errors import InputError

    raise InputError(f"--base {p} cannot be verified: pass --base-sha256 (sha256sum {p.name}) or put its manifest "
                     f"{manifest.name} next to it (its sha256 is {sha256_file(p)})")


def load_base(gguf_path: Path, torch):
    """(HF causal LM in float32, tokenizer), both rebuilt from the GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    model.config.use_cache = False
    log(f"rebuilt {gguf_path.name} as {type(model).__name__} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters, dequantised) in {time.perf_counter() - t0:.1f} s")
    return model, tok


# ---- examples ----------------------------------------------------------------------------------

def render_prompt(tok, ex: dict, few_shot: bool = True) -> str:
    """The chat prompt of one example as :meth:`gear_edge.deduce.llm.LocalLLM.chat_parts` renders it
    (system, few-shot turns, one user turn ``scene + question``, the generation prompt). The few-shot
    turns are the runtime's for the example's ``task``: direct mode (the default) or ``"program"``
    (the program translator, :mod:`gear_edge.deduce.program.translate`)."""
    from gear_edge.deduce import prompts

    msgs = [{"role": "system", "content": ex["system"]}]
    turns = prompts.TRANSLATE_EXAMPLES if ex.get("task") == "program" else prompts.DIRECT_EXAMPLES
    for user, assistant in (turns if few_shot else ()):
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    msgs.append({"role": "user", "content": ex["scene"] + ex["question"]})
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def encode(tok, ex: dict, few_shot: bool = True, max_len: int = 2048) -> tuple[list[int], list[int]]:
    """(input ids, labels): prompt tokens labelled -100, then the target and the end-of-turn token."""
    prompt = tok(render_prompt(tok, ex, few_shot), add_special_tokens=False)["input_ids"]
    answer = tok(ex["target"], add_special_tokens=False)["input_ids"] + [end_of_turn(tok)]
    ids = (prompt + answer)[-max_len:]
    labels = ([-100] * len(prompt) + answer)[-max_len:]
    return ids, labels


def end_of_turn(tok) -> int:
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    return int(eot if isinstance(eot, int) and eot >= 0 and eot != tok.unk_token_id else tok.eos_token_id)


def scene_batches(keys: list[str], batch_size: int, seed: int, step: int) -> list[int]:
    """The example indices of ``step`` (0-based) when batches hold questions on one scene: each
    scene's examples (same ``keys`` value) are shuffled and cut into batches of at most
    ``batch_size``, and an epoch visits those batches in a seeded order. A resumed run draws
    exactly the batches the uninterrupted one would; every example once per epoch."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    per_epoch = sum(math.ceil(len(g) / batch_size) for g in groups.values())
    epoch, k = divmod(step, per_epoch)
    rng = random.Random(seed * 7919 + epoch)
    out = []
    for key in sorted(groups):
        g = list(groups[key])
        rng.shuffle(g)
        out += [g[j:j + batch_size] for j in range(0, len(g), batch_size)]
    rng.shuffle(out)
    return out[k]


def scene_key(ex: dict) -> str:
    """Examples with the same key share their prompt up to the question (system, few-shot, scene)."""
    return ex["system"] + "\x00" + ex["scene"]


def shared_prefix_len(encoded: list[tuple[list[int], list[int]]]) -> int:
    """Tokens every example of a batch shares at its start, ending before any answer token's
    predicting position (so every labelled token is predicted from the suffix pass); >= 0."""
    first = encoded[0][0]
    n = min(len(i) for i, _ in encoded)
    p = 0
    while p < n and all(i[p] == first[p] for i, _ in encoded):
        p += 1
    first_label = min(next((t for t, lab in enumerate(labs) if lab != -100), len(labs)) for _, labs in encoded)
    return max(0, min(p, first_label - 1))


@functools.lru_cache(maxsize=None)
def _cache_keyword() -> str:
    """The forward keyword of a key/value cache: ``cache`` (transformers >= 5.2x), else ``past_key_values``."""
    import inspect

    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


def loss_sum(torch, model, encoded: list[tuple[list[int], list[int]]], pad_id: int) -> tuple:
    """(summed answer-token cross-entropy as a tensor, answer-token count) of one batch.

    The prompt tokens every example shares (system, few-shot turns, the scene's lines: ~95 % of a
    direct-mode prompt when a batch asks about one scene) run once; their keys and values are
    repeated for each example's own question + answer, through which the gradient flows back to
    them. Same loss and gradient as running each example whole (tested), ~4x less compute."""
    p = shared_prefix_len(encoded)
    b = len(encoded)
    kw = {}
    if p > 0:
        prefix = torch.tensor([encoded[0][0][:p]], dtype=torch.long)
        out = model(input_ids=prefix, use_cache=True)
        name = _cache_keyword()
        cache = out.cache if name == "cache" else out.past_key_values
        if b > 1:
            cache.batch_repeat_interleave(b)
        kw = {name: cache, "use_cache": True}
    ids, labels, attn = collate(torch, [(i[p:], lab[p:]) for i, lab in encoded], pad_id)
    mask = torch.cat([torch.ones((b, p), dtype=attn.dtype), attn], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, **kw).logits[:, :-1]
    tgt = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, int((tgt != -100).sum())


def autocast(torch, precision: str):
    """``bf16``: CPU autocast to bfloat16 (weights and the LoRA stay float32; AMX / AVX-512-BF16
    make it ~2x faster); ``fp32``: no autocast."""
    import contextlib

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def resolve_precision(torch, precision: str) -> str:
    """``auto`` → ``bf16`` when this CPU has native bfloat16 matmul (AMX or AVX-512-BF16), else ``fp32``."""
    if precision != "auto":
        return precision
    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        ok = False
    if ok:
        try:
            flags = Path("/proc/cpuinfo").read_text()
            ok = "amx_bf16" in flags or "avx512_bf16" in flags
        except OSError:
            pass
    return "bf16" if ok else "fp32"


def collate(torch, encoded: list[tuple[list[int], list[int]]], pad_id: int):
    width = max(len(i) for i, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    attn = torch.zeros((len(encoded), width), dtype=torch.long)
    for r, (i, lab) in enumerate(encoded):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        attn[r, : len(i)] = 1
    return ids, labels, attn


def mean_loss(torch, model, encoded, pad_id: int, batch_size: int, keys: list[str] | None = None,
              precision: str = "fp32") -> float:
    """Mean per-answer-token loss over ``encoded`` (no gradient); consecutive examples with the same
    ``keys`` entry share their prompt prefix pass."""
    keys = keys or [str(i) for i in range(len(encoded))]
    groups: list[list[int]] = []
    for i, k in enumerate(keys):
        if groups and keys[groups[-1][0]] == k and len(groups[-1]) < batch_size:
            groups[-1].append(i)
        else:
            groups.append([i])
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad(), autocast(torch, precision):
        for g in groups:
            loss, n = loss_sum(torch, model, [encoded[i] for i in g], pad_id)
            total += float(loss)
            count += n
    model.train()
    return total / max(1, count)


# ---- export ------------------------------------------------------------------------------------

def lora_tensors(model, n_head: int, n_head_kv: int) -> tuple[dict, float, int]:
    """(GGUF tensor name → (A, B) numpy in the base GGUF's layout, alpha, rank) of a peft model."""
    from train.lora_gguf import gguf_name, permute_rows

    out = {}
    alpha = rank = None
    for name, module in model.named_modules():
        if not (hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})):
            continue
        a = module.lora_A["default"].weight.detach().float().cpu().numpy()
        b = module.lora_B["default"].weight.detach().float().cpu().numpy()
        r = a.shape[0]
        scale = float(module.scaling["default"])  # peft: alpha / r
        alpha, rank = scale * r, r
        base = name.replace("base_model.model.", "", 1)
        if base.endswith("q_proj"):
            b = permute_rows(b, n_head, n_head)
        elif base.endswith("k_proj"):
            b = permute_rows(b, n_head, n_head_kv)
        out[gguf_name(base)] = (a, b)
    if not out:
        raise RuntimeError("the model has no LoRA modules to export")
    return out, float(alpha), int(rank)


def export_adapter(model, base_path: Path, base_sha: str, out: Path, name: str, info: dict, dtype: str = "f32") -> Path:
    """Writes ``out/<name>.gguf`` and its manifest ``out/<name>.toml``; returns the GGUF path."""
    from gear_edge.manifest import sha256_file
    from train.lora_gguf import base_tensor_shapes, write_lora_gguf

    task = info.get("task", "direct")
    what = "program translator" if task == "program" else "direct deducer"
    arch, shapes, heads = base_tensor_shapes(base_path)
    tensors, alpha, rank = lora_tensors(model, heads["attention.head_count"],
                                        heads.get("attention.head_count_kv", heads["attention.head_count"]))
    path = write_lora_gguf(out / f"{name}.gguf", tensors, alpha=alpha, architecture=arch, base_shapes=shapes,
                           name=f"gear_edge {what} LoRA for {base_path.name}", dtype=dtype)
    sha, size = sha256_file(path), path.stat().st_size
    lines = [
        f"# LoRA adapter for the {what} (gear-edge train-deducer); load with deduce.adapter",
        f'name = "{name}"', f'file = "{path.name}"', f'sha256 = "{sha}"', f"size = {size}",
        'licence = "Apache-2.0"',
        f'source = "gear-edge train-deducer on {info.get("data", "?")} (base {base_path.name})"',
        f'base_model = "{base_path.name}"', f'base_sha256 = "{base_sha}"', f"rank = {rank}", f"alpha = {alpha:g}",
        f"tensors = {len(tensors)}", f'dtype = "{dtype}"', f'task = "{task}"',
    ]
    for k in ("steps", "examples", "seed", "lr", "batch_size", "loss_start", "loss_end", "heldout_loss_start",
              "heldout_loss_end"):
        if k in info and info[k] is not None:
            v = info[k]
            lines.append(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}")
    (out / f"{name}.toml").write_text("\n".join(lines) + "\n")
    log(f"adapter {path} ({size / 1e6:.2f} MB, {len(tensors)} weights, rank {rank}, alpha {alpha:g}), sha256 {sha}")
    return path


def check_export(torch, model, tok, ex: dict, few_shot: bool, base_path: Path, base_sha: str, adapter: Path,
                 threads: int) -> dict:
    """Whether llama.cpp with the exported adapter moves the next-token logits of one example's
    prompt as the trained model does: the correlation of (tuned - base) logits, HF vs llama.cpp, and
    whether both tokenize the prompt alike. Needs llama-cpp-python (skipped with a note otherwise)."""
    import numpy as np

    try:
        from gear_edge.deduce.llm import LocalLLM, import_llama_cpp

        import_llama_cpp()
    except Exception as exc:  # MissingDependencyError
        return {"skipped": str(exc)}
    from gear_edge.manifest import sha256_file

    prompt = render_prompt(tok, ex, few_shot)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    model.eval()
    with torch.no_grad():
        tuned = model(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
        with model.disable_adapter():
            base = model(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
    model.train()
    kw = {"model_path": base_path, "sha256": base_sha, "threads": threads, "n_ctx": max(512, len(ids) + 16),
          "max_cached_scenes": 0}
    plain = LocalLLM(**kw)
    lb = plain.next_token_logits(prompt)
    same_tokens = plain.tokens(prompt) == ids
    del plain
    lt = LocalLLM(**kw, lora_path=adapter, lora_sha256=sha256_file(adapter)).next_token_logits(prompt)
    d_hf, d_cpp = tuned - base, lt - lb
    out = {
        "prompt_tokens": len(ids), "same_tokens": bool(same_tokens),
        "hf_delta_max": float(np.abs(d_hf).max()), "llama_delta_max": float(np.abs(d_cpp).max()),
        "delta_correlation": float(np.corrcoef(d_hf, d_cpp)[0, 1]),
        "hf_argmax_tuned": int(tuned.argmax()), "llama_argmax_tuned": int(lt.argmax()),
    }
    log(f"export check: llama.cpp with the adapter moves the logits by up to {out['llama_delta_max']:.3f} "
        f"(HF {out['hf_delta_max']:.3f}); correlation of the moves {out['delta_correlation']:.3f}; "
        f"same prompt tokens: {same_tokens}")
    return out


# ---- training ----------------------------------------------------------------------------------

def train(args: argparse.Namespace) -> dict:
    mods = _imports()
    torch, peft = mods["torch"], mods["peft"]
    from gear_edge.data_engine.deducer_data import read_examples

    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    train_ex = list(read_examples(data / "train.jsonl" if data.is_dir() else data))
    if args.max_examples:
        train_ex = train_ex[: args.max_examples]
    held_path = (data / "heldout.jsonl") if data.is_dir() else None
    held_ex = list(read_examples(held_path))[: args.eval_examples] if held_path and held_path.is_file() else []
    if not train_ex:
        from gear_edge.errors import InputError

        raise InputError(f"{data}: no training examples (write them with gear-edge train-deducer data)")
    base_path, base_sha = base_gguf(args.base, args.base_sha256)
    model, tok = load_base(base_path, torch)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    few = not args.no_few_shot
    enc = [encode(tok, ex, few, args.max_len) for ex in train_ex]
    held = [encode(tok, ex, few, args.max_len) for ex in held_ex]
    keys, held_keys = [scene_key(ex) for ex in train_ex], [scene_key(ex) for ex in held_ex]
    precision = resolve_precision(torch, args.precision)
    n_tok = sum(len(i) for i, _ in enc)
    log(f"{len(enc)} training examples on {len(set(keys))} scenes ({n_tok} tokens, {n_tok / len(enc):.0f} per example), "
        f"{len(held)} held-out for loss; batch {args.batch_size} (questions on one scene), lr {args.lr:g}, "
        f"rank {args.rank}, alpha {args.alpha:g}, {precision}")
    cfg = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                          bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    ckpt = out / "checkpoint"
    step, info = 0, {}
    if (ckpt / "state.pt").is_file() and not args.restart:
        state = torch.load(ckpt / "state.pt", weights_only=False)
        peft.set_peft_model_state_dict(model, state["lora"])
        opt.load_state_dict(state["optimizer"])
        step, info = int(state["step"]), dict(state["info"])
        log(f"resumed from {ckpt} at step {step}")
    eval_train, eval_keys = enc[: args.eval_examples], keys[: args.eval_examples]
    if "loss_start" not in info:
        info["loss_start"] = mean_loss(torch, model, eval_train, pad_id, args.batch_size, eval_keys, precision)
        info["heldout_loss_start"] = (mean_loss(torch, model, held, pad_id, args.batch_size, held_keys, precision)
                                      if held else None)
        log(f"before training: train loss {info['loss_start']:.4f} on {len(eval_train)} examples"
            + (f", held-out loss {info['heldout_loss_start']:.4f} on {len(held)}" if held else ""))
    log(f"LoRA: {trainable / 1e6:.2f} M trainable parameters; steps {step} -> {args.steps}")

    def save(step: int) -> None:
        ckpt.mkdir(exist_ok=True)
        tmp = ckpt / "state.pt.tmp"
        torch.save({"lora": peft.get_peft_model_state_dict(model), "optimizer": opt.state_dict(), "step": step,
                    "info": info, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt / "state.pt")

    budget = None if args.time_budget_min is None else args.time_budget_min * 60.0
    model.train()
    stopped = "steps"
    t_loop = time.perf_counter()
    tokens_done = 0
    while step < args.steps:
        if budget is not None and time.perf_counter() - t_start > budget:
            stopped = "time budget"
            break
        lr = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = scene_batches(keys, args.batch_size, args.seed, step)
        batch = [enc[i] for i in idx]
        with autocast(torch, precision):
            total, count = loss_sum(torch, model, batch, pad_id)
            loss = total / max(1, count)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        tokens_done += sum(len(i) for i, _ in batch)
        el = time.perf_counter() - t_loop
        log(f"step {step}/{args.steps} loss {float(loss.detach()):.4f} lr {lr:.2g} ({tokens_done / max(el, 1e-9):.0f} tokens/s, "
            f"{time.perf_counter() - t_start:.0f} s)")
        if args.save_every and step % args.save_every == 0:
            save(step)
    info["loss_end"] = mean_loss(torch, model, eval_train, pad_id, args.batch_size, eval_keys, precision)
    info["heldout_loss_end"] = (mean_loss(torch, model, held, pad_id, args.batch_size, held_keys, precision)
                                if held else None)
    tasks = {ex.get("task", "direct") for ex in train_ex}
    info.update(steps=step, examples=len(enc), seed=args.seed, lr=args.lr, batch_size=args.batch_size, data=str(data),
                precision=precision, task="program" if tasks == {"program"} else "direct" if tasks == {"direct"}
                else "mixed")
    save(step)
    log(f"stopped ({stopped}) at step {step}: train loss {info['loss_start']:.4f} -> {info['loss_end']:.4f}"
        + (f", held-out {info['heldout_loss_start']:.4f} -> {info['heldout_loss_end']:.4f}" if held else ""))
    path = export_adapter(model, base_path, base_sha, out, args.name, info, args.dtype)
    if args.check_export:
        info["export_check"] = check_export(torch, model, tok, (held_ex or train_ex)[0], few, base_path, base_sha,
                                            path, args.threads)
    info.update(adapter=str(path), adapter_bytes=path.stat().st_size, stopped=stopped,
                seconds=time.perf_counter() - t_start, trainable=trainable)
    (out / "result.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    return info


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a folder from 'train-deducer data' (train.jsonl, heldout.jsonl) or one JSONL file")
    p.add_argument("out", help="output folder: checkpoint/, <name>.gguf + <name>.toml, result.json")
    p.add_argument("--base", default=None, help="base GGUF (default: the shipped SmolLM2-135M-Instruct Q4_1)")
    p.add_argument("--base-sha256", default=None, help="expected sha256 of --base (else its manifest next to it)")
    p.add_argument("--name", default="deducer-lora", help="adapter file stem")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--max-len", type=int, default=2048, help="tokens per example at most (left-truncated)")
    p.add_argument("--max-examples", type=int, default=0, help="use the first N training examples (0 = all)")
    p.add_argument("--eval-examples", type=int, default=16, help="examples the before/after losses are measured on")
    p.add_argument("--no-few-shot", action="store_true", help="train without the direct prompt's few-shot turns")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-every", type=int, default=25, help="checkpoint every N steps (0: only at the end)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop (checkpoint + export) after this many minutes")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--dtype", choices=("f32", "f16"), default="f16", help="tensor type of the adapter GGUF")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="compute precision (auto: bf16 autocast where the CPU has native bfloat16 matmul)")
    p.add_argument("--check-export", action="store_true",
                   help="after export, compare llama.cpp + adapter with the trained model on one prompt")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.deducer", description=__doc__.split("\n")[0])
    add_train_arguments(p)
    train(p.parse_args(argv))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
