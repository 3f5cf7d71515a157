"""LoRA adapters on the deducer LLM: a real llama.cpp LoRA GGUF (written by train.lora_gguf with the
gguf package, matching the shipped SmolLM2-135M's tensor names and shapes) loaded through the real
llama.cpp (``llama_adapter_lora_init`` on the memory-mapped base model), verified by sha256 first, named in the answer's chain."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from gear_edge.errors import InputError
from tests.llm_fixtures import box_scene, needs_llm

needs_gguf = pytest.mark.skipif(importlib.util.find_spec("gguf") is None,
                                reason="the gguf package is not installed (pip install gguf, extra [train])")
PROMPT = "The red box is on the"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """(zero-B adapter, non-zero adapter, base shapes) for the shipped model."""
    from gear_edge.manifest import Manifest
    from train.lora_gguf import base_tensor_shapes, write_lora_gguf

    out = tmp_path_factory.mktemp("lora")
    arch, shapes, heads = base_tensor_shapes(Manifest.named("smollm2-135m-instruct-q4_1").locate())
    assert arch == "llama" and heads == {"attention.head_count": 9, "attention.head_count_kv": 3}
    rng = np.random.default_rng(0)
    r = 4
    zero, nonzero = {}, {}
    for i in range(30):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            name = f"blk.{i}.{part}.weight"
            n_out, n_in = shapes[name]
            zero[name] = (rng.normal(0, 0.1, (r, n_in)), np.zeros((n_out, r)))  # B = 0: peft's initialisation
            if part == "ffn_down" and i < 4:
                nonzero[name] = (rng.normal(0, 0.05, (r, n_in)), rng.normal(0, 0.05, (n_out, r)))
    z = write_lora_gguf(out / "zero.gguf", zero, alpha=8.0, base_shapes=shapes, dtype="f16")
    nz = write_lora_gguf(out / "nonzero.gguf", nonzero, alpha=8.0, base_shapes=shapes)
    return z, nz, shapes


def _llm(**kw):
    from gear_edge.deduce.llm import LocalLLM

    return LocalLLM(threads=1, n_ctx=512, max_cached_scenes=0, **kw)


@needs_llm
@needs_gguf
def test_adapter_gguf_is_llama_cpp_lora_format(adapters):
    import gguf

    z, _, shapes = adapters
    reader = gguf.GGUFReader(str(z))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    assert reader.fields["general.architecture"].contents() == "llama"
    names = {t.name for t in reader.tensors}
    assert len(names) == 2 * 7 * 30 and "blk.0.attn_q.weight.lora_a" in names and "blk.29.ffn_down.weight.lora_b" in names
    with pytest.raises(ValueError, match="base weight"):
        from train.lora_gguf import write_lora_gguf

        write_lora_gguf(z.parent / "bad.gguf", {"blk.0.attn_k.weight": (np.zeros((4, 576)), np.zeros((576, 4)))},
                        alpha=1.0, base_shapes=shapes)


@needs_llm
@needs_gguf
def test_zero_adapter_keeps_the_base_output_and_a_nonzero_one_changes_it(adapters):
    from gear_edge.manifest import sha256_file

    z, nz, _ = adapters
    base = _llm()
    zero = _llm(lora_path=z, lora_sha256=sha256_file(z))
    tuned = _llm(lora_path=nz, lora_sha256=sha256_file(nz), lora_scale=2.0)
    lb, lz, lt = (m.next_token_logits(PROMPT) for m in (base, zero, tuned))
    assert np.isfinite(lb).all() and lb.std() > 1.0
    np.testing.assert_array_equal(lz, lb)  # B = 0: the adapter adds exactly nothing
    assert np.abs(lt - lb).max() > 0.1  # a non-zero adapter reaches the logits
    # generation too: the zero adapter answers exactly as the base model
    pre, suf = base.chat_parts("Answer briefly.", "", "Name a colour.")
    assert zero.generate(None, pre, suf, None, 8).text == base.generate(None, pre, suf, None, 8).text
    assert base.identity == {"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "model_verified": "manifest", "adapter": None}
    assert tuned.identity["adapter"] == "nonzero.gguf" and tuned.identity["adapter_scale"] == 2.0
    assert tuned.identity["adapter_verified"] == "sha256"
    assert tuned.describe() == "SmolLM2-135M-Instruct.Q4_1.gguf + adapter nonzero.gguf x2"
    # the base weights stay memory-mapped with an adapter (Llama(lora_path=...) would read the whole
    # GGUF into memory, most of an adapter's load time); the adapter is what changed the logits above
    from llama_cpp import llama_cpp as lc

    assert tuned.llama.model_params.load_mode == base.llama.model_params.load_mode == lc.LLAMA_LOAD_MODE_MMAP
    assert tuned.llama._lora_adapter and not base.llama._lora_adapter


@needs_llm
@needs_gguf
def test_adapter_is_verified_before_llama_cpp_reads_it(adapters, tmp_path):
    from gear_edge.manifest import sha256_file

    z, nz, _ = adapters
    with pytest.raises(InputError, match=r"nonzero\.gguf has sha256 .* but 0{64} was expected"):
        _llm(lora_path=nz, lora_sha256="0" * 64)
    with pytest.raises(InputError, match=r"zero\.gguf cannot be verified: it has no manifest"):
        _llm(lora_path=z)
    with pytest.raises(InputError, match=r"LoRA adapter .*missing\.gguf does not exist"):
        _llm(lora_path=tmp_path / "missing.gguf", lora_sha256="0" * 64)
    # a manifest next to the file is used; a wrong size in it is refused naming the file
    copy = tmp_path / "ad.gguf"
    copy.write_bytes(z.read_bytes())
    manifest = (f'name = "ad"\nfile = "ad.gguf"\nsha256 = "{sha256_file(z)}"\nsize = {z.stat().st_size}\n'
                'licence = "Apache-2.0"\nsource = "test"\n')
    (tmp_path / "ad.toml").write_text(manifest)
    assert _llm(lora_path=copy).identity["adapter_verified"] == "manifest"
    (tmp_path / "ad.toml").write_text(manifest.replace(f"size = {z.stat().st_size}", "size = 5"))
    with pytest.raises(InputError, match=r"ad\.gguf has \d+ bytes but the manifest says 5"):
        _llm(lora_path=copy)
    # not a GGUF; a GGUF that is not an adapter of this model (llama.cpp refuses it)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(InputError, match=r"junk\.gguf is not a GGUF file"):
        _llm(lora_path=junk, lora_sha256=sha256_file(junk))
    from train.lora_gguf import write_lora_gguf

    wrong = write_lora_gguf(tmp_path / "wrong.gguf", {"blk.0.attn_q.weight": (np.zeros((4, 100)), np.zeros((576, 4)))},
                            alpha=1.0)
    with pytest.raises(InputError, match=r"could not apply the LoRA adapter .*wrong\.gguf"):
        _llm(lora_path=wrong, lora_sha256=sha256_file(wrong))


@needs_llm
@needs_gguf
def test_config_wires_the_adapter_and_the_chain_names_it(adapters, tmp_path):
    from gear_edge.assemble import Assembly
    from gear_edge.config import load_config
    from gear_edge.manifest import sha256_file

    z, _, _ = adapters
    cfg = load_config("default", {"deduce.mode": "direct", "deduce.adapter": str(z),
                                  "deduce.adapter_sha256": sha256_file(z), "deduce.adapter_scale": 0.5})
    asm = Assembly(cfg)
    deducer = asm.get("deducer")
    scene = box_scene([("red", 10, 10, 60, 60), ("blue", 80, 20, 120, 90)])
    a = deducer.deduce(scene, "the red box")
    assert a.steps[-1].text == "LLM: SmolLM2-135M-Instruct.Q4_1.gguf + adapter zero.gguf x0.5"
    assert a.steps[-1].kept == a.targets
    assert a.meta["llm"]["adapter"] == "zero.gguf" and a.meta["llm"]["adapter_scale"] == 0.5
    bad = load_config("default", {"deduce.mode": "direct", "deduce.adapter": str(z), "deduce.adapter_sha256": "ab" * 32})
    with pytest.raises(InputError, match=r"deduce.adapter_sha256: .*zero\.gguf has sha256"):
        Assembly(bad).get("deducer")
    with pytest.raises(InputError, match=r"deduce.adapter: LoRA adapter file .*nope\.gguf does not exist"):
        Assembly(load_config("default", {"deduce.adapter": str(tmp_path / "nope.gguf")})).get("deducer")
    with pytest.raises(InputError, match=r"deduce.adapter = .*zero\.gguf cannot be verified"):
        Assembly(load_config("default", {"deduce.mode": "direct", "deduce.adapter": str(z)})).get("deducer")


@needs_llm
def test_auto_adapter_is_the_shipped_one_in_direct_mode_on_the_default_model(tmp_path):
    """deduce.adapter = "auto" (the default): models/deducer-lora.gguf, verified by its manifest, in
    direct mode on the default GGUF (models/program-lora.gguf in program mode); none on a user's GGUF
    (they were trained on the default model's prompts only)."""
    from gear_edge.assemble import Assembly
    from gear_edge.config import load_config
    from gear_edge.deduce.llm import DIRECT_ADAPTER
    from gear_edge.manifest import MODELS_DIR, Manifest, sha256_file

    m = Manifest.named(DIRECT_ADAPTER)
    assert m.locate() == MODELS_DIR / "deducer-lora.gguf" and sha256_file(m.locate()) == m.sha256
    assert m.size <= 10_000_000 and m.extra["base_sha256"] == Manifest.named("smollm2-135m-instruct-q4_1").sha256
    assert load_config("default").get("deduce", "adapter") == "auto"
    path, how = Assembly(load_config("default"))._user_adapter()
    assert path == MODELS_DIR / "program-lora.gguf" and how["manifest"].extra["task"] == "program"
    base = Manifest.named("smollm2-135m-instruct-q4_1")
    user = load_config("default", {"deduce.mode": "direct", "deduce.model": str(base.locate()),
                                   "deduce.model_sha256": base.sha256})
    assert Assembly(user)._user_adapter() == (None, {})
    deducer = Assembly(load_config("default", {"deduce.mode": "direct"})).get("deducer")
    a = deducer.deduce(box_scene([("red", 10, 10, 60, 60), ("blue", 80, 20, 120, 90)]), "the red box")
    assert a.meta["llm"]["adapter"] == "deducer-lora.gguf"
    assert a.steps[-1].text == "LLM: SmolLM2-135M-Instruct.Q4_1.gguf + adapter deducer-lora.gguf x1"
    off = Assembly(load_config("default", {"deduce.mode": "direct", "deduce.adapter": ""})).get("deducer")
    assert off.deduce(box_scene([("red", 10, 10, 60, 60)]), "the red box").meta["llm"]["adapter"] is None


@needs_llm
def test_shipped_adapter_earns_its_place_on_unseen_scenes():
    """Ablation on the data engine's held-out phrasings over scenes of another seed (never trained on):
    direct mode with the shipped adapter answers far more questions exactly than the base model."""
    from gear_edge.data_engine import deducer_data as dd
    from gear_edge.deduce.direct import DirectDeducer
    from gear_edge.deduce.llm import DIRECT_ADAPTER, LocalLLM
    from gear_edge.manifest import Manifest

    settings = dd.Settings(seed=11, per_class=1)
    cases = []
    for i in range(3):
        scene = dd.random_scene(dd.scene_seed(settings.seed, "heldout", i))
        cases += [(scene, ex["query"], ex["targets"]) for ex in dd.scene_examples("heldout", i, settings)[0]]
    assert len(cases) >= 12
    scores = {}
    for name, lora in (("base", None), ("tuned", Manifest.named(DIRECT_ADAPTER).locate())):
        llm = LocalLLM(threads=2, lora_path=lora, max_cached_scenes=1)
        d = DirectDeducer(llm)
        scores[name] = sum(sorted(d.deduce(s, q).targets) == t for s, q, t in cases) / len(cases)
    assert scores["tuned"] >= 0.5 and scores["tuned"] >= scores["base"] + 0.25, scores


def test_model_inventory_records_the_adapter_that_answers(tmp_path):
    """Data-engine records and benchmarks name the adapter with its sha256: the shipped one of the mode
    where "auto" uses it (the default model), a user's file by its bytes, none when switched off."""
    from gear_edge.config import load_config
    from gear_edge.manifest import Manifest, sha256_file
    from gear_edge.model_inventory import model_inventory

    def adapters(overrides):
        return [e for e in model_inventory(load_config("default", {"describe.ocr": "false", **overrides}))
                if e["role"] == "deducer.adapter"]

    assert [(e["name"], e["sha256"]) for e in adapters({})] == [("program-lora", Manifest.named("program-lora").sha256)]
    assert adapters({"deduce.adapter": ""}) == []
    shipped = adapters({"deduce.mode": "direct"})
    assert [(e["name"], e["sha256"], e["installed"]) for e in shipped] == [
        ("deducer-lora", Manifest.named("deducer-lora").sha256, True)]
    f = tmp_path / "mine.gguf"
    f.write_bytes(b"GGUF" + bytes(8))
    assert [e["sha256"] for e in adapters({"deduce.adapter": str(f)})] == [sha256_file(f)]
    assert adapters({"deduce.mode": "direct", "deduce.adapter": ""}) == []
