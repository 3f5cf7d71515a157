"""gear-edge train-deducer: the data / train subcommands, deterministic batches, answer-only labels,
a clear message without the [train] extra, and (slow) the whole smoke run: a few LoRA steps on the
shipped GGUF's weights lower the loss, the exported llama.cpp adapter loads through deduce.adapter
(verified by the manifest written next to it) and moves llama.cpp's logits as it moves the trained
model's (q/k row permutation included)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from gear_edge.errors import MissingDependencyError
from tests.data_engine_helpers import REPO, engine_env
from tests.llm_fixtures import box_scene, needs_llm

TRAIN_REASON = next((f"{m} is not installed (pip install 'gear-edge[train]')"
                     for m in ("torch", "transformers", "peft", "gguf") if importlib.util.find_spec(m) is None), None)
needs_train = pytest.mark.skipif(TRAIN_REASON is not None, reason=TRAIN_REASON or "")


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "gear_edge.cli", "train-deducer", *args], cwd=REPO, env=engine_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"train-deducer failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_scene_batches_are_one_scene_each_and_a_seeded_permutation_per_epoch():
    from train.deducer import scene_batches

    keys = ["a"] * 5 + ["b"] * 3 + ["c"] * 4  # 2 + 1 + 2 = 5 batches of at most 3 per epoch
    first = [scene_batches(keys, 3, 0, s) for s in range(10)]
    assert first == [scene_batches(keys, 3, 0, s) for s in range(10)]  # a resumed run draws the same batches
    for batch in first:
        assert 1 <= len(batch) <= 3 and len({keys[i] for i in batch}) == 1
    assert sorted(i for b in first[:5] for i in b) == list(range(12))  # every example once per epoch
    assert sorted(i for b in first[5:] for i in b) == list(range(12))
    assert first[:5] != first[5:10] and first[:5] != [scene_batches(keys, 3, 1, s) for s in range(5)]


@needs_train
def test_shared_prefix_loss_equals_running_each_example_whole():
    """The scene-batched loss (shared prompt pass, keys/values repeated per question) gives the
    loss and the LoRA gradient that the plain full-sequence batch gives, on a small random Llama."""
    import peft
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from train.deducer import collate, loss_sum, mean_loss, shared_prefix_len

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128)
    model = peft.get_peft_model(LlamaForCausalLM(cfg).float(), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False))
    shared = torch.randint(3, 97, (30,)).tolist()
    enc = []
    for n_q, n_a in ((4, 6), (7, 3), (2, 9)):  # questions and answers of different lengths
        q, a = torch.randint(3, 97, (n_q,)).tolist(), torch.randint(3, 97, (n_a,)).tolist()
        enc.append((shared + q + a, [-100] * (30 + n_q) + a))
    assert shared_prefix_len(enc) == 30 and shared_prefix_len(enc[:1]) == 33  # one example: up to its last prompt token

    def grads():
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    total, count = loss_sum(torch, model, enc, pad_id=0)
    (total / count).backward()
    got, got_loss = grads(), float(total / count)
    model.zero_grad()
    ids, labels, attn = collate(torch, enc, pad_id=0)
    ref = model(input_ids=ids, attention_mask=attn, labels=labels).loss
    ref.backward()
    want = grads()
    assert count == 18 and abs(got_loss - float(ref)) < 1e-5
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-6, rtol=1e-4), name
    assert any(float(g.abs().max()) > 1e-4 for g in want.values())  # the comparison is not of zeros
    assert abs(mean_loss(torch, model, enc, 0, 8, ["s"] * 3) - float(ref)) < 1e-5
    assert abs(mean_loss(torch, model, enc, 0, 8) - float(ref)) < 1e-5  # no keys: one example per pass


def test_missing_training_dependency_is_named(monkeypatch):
    import train.deducer as td

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(MissingDependencyError, match=r"train-deducer needs peft: pip install 'gear-edge\[train\]'"):
        td._imports()


def test_data_subcommand_writes_both_splits(tmp_path):
    out = _cli("data", str(tmp_path / "d"), "--scenes", "2", "--heldout-scenes", "1", "--no-progress")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["train"]["scenes"] == 2 and summary["heldout"]["scenes"] == 1
    n = len((tmp_path / "d" / "train.jsonl").read_text().splitlines())
    assert n == summary["train"]["examples"] > 0


@needs_llm
def test_eval_subcommand_runs_the_shipped_adapter_on_held_out_examples(tmp_path):
    """The real direct deducer (llama.cpp + the shipped adapter, verified by its manifest) on a few
    held-out examples: every row scored, the adapter named, the JSON written."""
    _cli("data", str(tmp_path / "d"), "--scenes", "1", "--heldout-scenes", "1", "--no-progress")
    out = _cli("eval", str(tmp_path / "d"), "--limit", "3", "--threads", "2", "--out", str(tmp_path / "r.json"))
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["total"] == len(res["rows"]) == 3 and res["adapter"].endswith("deducer-lora.gguf")
    assert 0 <= res["correct"] <= 3 and sum(c["total"] for c in res["per_class"].values()) == 3
    assert all(set(r) >= {"query", "want", "got", "ok"} for r in res["rows"])
    assert '"accuracy"' in out.stdout


@needs_llm
def test_program_task_data_and_eval_compare_llm_off_with_the_translating_model(tmp_path):
    """`data --task program` writes program examples; `eval --task program` scores LLM off and the base
    model translating on the same held-out queries that reach the LLM (the real llama.cpp model)."""
    _cli("data", str(tmp_path / "p"), "--task", "program", "--scenes", "1", "--heldout-scenes", "2", "--no-progress")
    held = [json.loads(x) for x in (tmp_path / "p" / "heldout.jsonl").read_text().splitlines()]
    assert held and all(e["task"] == "program" for e in held)
    reaching = sum(e["reaches_llm"] for e in held)
    assert reaching > 0
    _cli("eval", str(tmp_path / "p"), "--task", "program", "--adapter", "none", "--limit", "3", "--threads", "2",
         "--out", str(tmp_path / "r.json"))
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["total"] == len(res["rows"]) == min(3, reaching)
    assert set(res["by_deducer"]) == {"llm_off", "base"} and res["adapter"] is None
    base = res["by_deducer"]["base"]
    assert base["total"] == res["total"] and base["llm_calls"] <= res["total"]
    for r in res["rows"]:
        assert r["llm_off"]["llm_ms"] is None and set(r["base"]) == {"got", "ok", "llm_ms", "tokens"}


@needs_train
def test_labels_cover_only_the_answer():
    pytest.importorskip("transformers")
    from gear_edge.data_engine.deducer_data import scene_examples, Settings
    from gear_edge.manifest import Manifest
    from transformers import AutoTokenizer

    path = Manifest.named("smollm2-135m-instruct-q4_1").locate()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    from train.deducer import encode, end_of_turn

    ex = scene_examples("train", 0, Settings())[0][0]
    ids, labels = encode(tok, ex)
    answer = [t for t in labels if t != -100]
    assert answer[-1] == end_of_turn(tok) and tok.decode(answer[:-1]) == ex["target"]
    assert labels[: len(labels) - len(answer)] == [-100] * (len(labels) - len(answer))


@pytest.mark.slow
@needs_train
@needs_llm
def test_smoke_training_run_lowers_the_loss_and_the_adapter_loads(tmp_path):
    """~4 min on 2 shared cores: 8 examples, 4 steps of batch 2 (scripts/smoke_train_deducer.sh)."""
    _cli("data", str(tmp_path / "data"), "--scenes", "4", "--heldout-scenes", "1", "--no-progress")
    out = _cli("train", str(tmp_path / "data"), str(tmp_path / "run"), "--steps", "4", "--batch-size", "2",
               "--max-examples", "8", "--eval-examples", "2", "--no-few-shot", "--lr", "1e-3", "--rank", "8",
               "--alpha", "16", "--save-every", "2", "--check-export")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["steps"] == 4 and info["loss_end"] < info["loss_start"], info
    check = info["export_check"]
    assert check["same_tokens"] and check["llama_delta_max"] > 0.05 and check["delta_correlation"] > 0.8, check
    adapter = tmp_path / "run" / "deducer-lora.gguf"
    assert (tmp_path / "run" / "deducer-lora.toml").is_file() and adapter.stat().st_size < 10_000_000
    # the manifest next to it verifies it for deduce.adapter; the chain names it
    from gear_edge.assemble import Assembly
    from gear_edge.config import load_config

    deducer = Assembly(load_config("default", {"deduce.mode": "direct", "deduce.adapter": str(adapter)})).get("deducer")
    a = deducer.deduce(box_scene([("red", 10, 10, 60, 60), ("blue", 80, 20, 120, 90)]), "the red box")
    assert a.meta["llm"]["adapter"] == "deducer-lora.gguf" and a.meta["llm"]["adapter_verified"] == "manifest"
    assert a.steps[-1].text.endswith("+ adapter deducer-lora.gguf x1")
