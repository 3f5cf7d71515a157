"""Local GGUF LLM (llama-cpp-python, extra ``[llm]``) with a per-scene prefix (KV state) cache.

Prompts are split in two: the scene-dependent ``prefix`` (system text, few-shot, scene lines) and
the query ``suffix``. :meth:`LocalLLM.generate` evaluates a scene's prefix once and keeps the KV
state of the last ``max_cached_scenes`` scenes (bytes from ``llama_state_seq_get_data``, sequence 0
only), so later queries on that scene evaluate only their suffix — also after queries on other
scenes in between. The uncached path performs the same computation (prefix batch, then suffix
batch), so answers with and without the cache are identical.

Prompt pieces are :data:`Prompt` values: a ``str`` is raw prompt text in which the model's special
tokens (``<|im_start|>``…) are parsed; :class:`Content` marks untrusted text (scene lines, queries)
that is tokenized with special-token parsing **off**, so a query cannot close the chat turn.
:meth:`LocalLLM.chat_parts` renders the GGUF's own chat template (``tokenizer.chat_template``,
jinja2, sandboxed) around such content.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from gear_edge.errors import GearEdgeError, InputError, MissingDependencyError
from gear_edge.manifest import Manifest, check_model_file

DEFAULT_MODEL = "smollm2-135m-instruct-q4_1"
# the LoRA adapter distilled for DEFAULT_MODEL's direct-mode prompt (models/deducer-lora.toml, the
# file next to it; gear-edge train-deducer made it): deduce.adapter = "auto" uses it in direct mode
DIRECT_ADAPTER = "deducer-lora"
PROGRAM_ADAPTER = "program-lora"  # the program translator's adapter (gear_edge.deduce.program.translate)
INSTALL_HINT = (
    "install the [llm] extra: CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'llama-cpp-python==0.3.36' "
    "(it compiles llama.cpp; or pip install 'gear-edge[llm]' with the same CMAKE_ARGS)"
)
_GGUF_MAGIC = b"GGUF"
# numpy view of llama.cpp's llama_token_data {int32 id; float logit; float p}
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


@dataclass(frozen=True)
class Content:
    """Untrusted prompt text: tokenized without special-token parsing."""

    text: str


Segment = Union[str, Content]
Prompt = Union[str, Content, Sequence[Segment]]


@dataclass
class Generation:
    """One completion. Token counts are llama tokens; ``timings`` are milliseconds.

    ``cache`` says how the prefix was obtained: ``"off"`` (no scene key: evaluated, not kept),
    ``"miss"`` (evaluated and stored), ``"restored"`` (KV state loaded from the cache) or ``"live"``
    (the context still held it). ``stop`` is ``"eog"`` (end of turn), ``"length"`` (max_tokens) or ``"time"``
    (the call's ``budget_s`` ran out). ``grammar_passes``: tokens for which the grammar was applied to
    the whole vocabulary (greedy decoding checks the model's best token first; see
    :meth:`LocalLLM._decode_greedy`).
    """

    text: str
    prompt_tokens: int
    prompt_tokens_evaluated: int
    completion_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    cache: str = "off"
    stop: str = "eog"
    tokens: list[int] = field(default_factory=list)
    grammar_passes: int = 0


@dataclass
class _SceneState:
    tokens: np.ndarray  # int32 [n] prefix tokens
    kv: bytes  # llama_state_seq_get_data of sequence 0


def import_llama_cpp():
    """The ``llama_cpp`` module, or MissingDependencyError saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(f"LLM deduction needs llama-cpp-python ({exc}); {INSTALL_HINT}") from None
    return llama_cpp


def resolve_model(model_path: str | os.PathLike | None, manifest: str | os.PathLike | Manifest | None,
                  sha256: str | None = None) -> Path:
    """The GGUF to load, verified: the default manifest's file when all are None; ``model_path``
    checked against ``manifest`` and/or the expected ``sha256`` when given; otherwise only its
    existence and GGUF magic (the config layer refuses unverifiable user models, see
    :func:`gear_edge.manifest.check_model_file`)."""
    if manifest is None and model_path is None and not sha256:
        manifest = DEFAULT_MODEL
    if model_path is None and manifest is None:
        raise InputError("an expected sha256 needs the model_path it describes")
    if isinstance(manifest, str) and not manifest.endswith(".toml") and os.sep not in manifest:
        manifest = Manifest.named(manifest)
    elif manifest is not None and not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest)
    if model_path is None:
        assert manifest is not None
        path = manifest.locate()  # in its package, or next to the manifest
    else:
        path = Path(model_path)
    if manifest is not None:
        manifest.verify(path)
    if sha256:
        from gear_edge.manifest import verify_sha256

        verify_sha256(path, sha256, "LLM model")
    if not path.is_file():
        raise InputError(f"LLM model file {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise InputError(f"LLM model file {path} is not a GGUF file (no 'GGUF' magic); pass a .gguf model")
    return path


def resolve_adapter(lora_path: str | os.PathLike, sha256: str | None = None,
                    manifest: str | os.PathLike | Manifest | None = None, allow_unverified: bool = False) -> tuple[Path, str]:
    """The LoRA adapter GGUF to load, verified before llama.cpp reads it; returns (path, how).

    ``sha256`` (expected digest) wins; else ``manifest`` (a :class:`Manifest` or its TOML path); else
    the manifest next to the file (``<stem>.toml``, as :func:`gear_edge.manifest.check_model_file`);
    else InputError naming the file, unless ``allow_unverified``. ``how`` is ``"sha256"``,
    ``"manifest"`` or ``"unverified"``.
    """
    path = Path(lora_path)
    if not path.is_file():
        raise InputError(f"LoRA adapter {path} does not exist" if not path.exists()
                         else f"LoRA adapter {path} is not a file")
    if sha256:
        how = check_model_file(path, "LoRA adapter", sha256=sha256, sha_setting="LoRA adapter sha256")
    elif manifest is not None:
        m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
        m.verify(path)
        how = "manifest"
    else:
        how = check_model_file(path, "LoRA adapter", allow_unverified=allow_unverified,
                               sha_setting="the adapter's sha256 (deduce.adapter_sha256 / lora_sha256=)")
    with open(path, "rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise InputError(f"LoRA adapter {path} is not a GGUF file (no 'GGUF' magic); convert it with "
                             "gear-edge train-deducer (or llama.cpp's convert_lora_to_gguf.py)")
    return path, how


def default_threads() -> int:
    """Half the CPUs this process may use, at least 1 (llama-cpp-python's own convention)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count() or 1
    return max(1, usable // 2)


def _serialised(method):
    """Runs ``method`` holding the instance's lock (llama.cpp's context, sampler and grammar state
    are not safe to use from two threads at once: concurrent decodes crash the process)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class LocalLLM:
    """A llama.cpp model with chat formatting from the GGUF and a scene prefix cache.

    Thread-safe: every method that touches the native llama.cpp state runs under one re-entrant lock,
    so calls from several threads (a robot stack's callbacks) are serialised, one generation at a
    time, instead of corrupting the shared context.

    ``model_path`` None → the default manifest's GGUF (located in its installed package and
    sha256-verified). ``threads`` None → :func:`default_threads` (half the usable CPUs: llama.cpp's
    threads busy-wait for each other, so sharing every core with other stages is much slower).
    ``seed`` drives sampling when ``temperature > 0`` (greedy otherwise). ``max_cached_scenes``
    bounds the KV states kept (see :meth:`cache_info` for their bytes). ``sha256``: the expected
    sha256 of ``model_path``, checked before llama.cpp reads the file.

    ``lora_path``: a LoRA adapter GGUF (llama.cpp format: ``general.type = adapter``) applied to the
    base model at ``lora_scale``; it is verified first by ``lora_sha256``, ``lora_manifest`` or the
    manifest next to it (:func:`resolve_adapter`), unless ``allow_unverified_adapter``.
    :attr:`identity` says which model and adapter answer.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        n_ctx: int = 2048,
        threads: int | None = None,
        seed: int = 0,
        max_cached_scenes: int = 4,
        *,
        manifest: str | os.PathLike | Manifest | None = None,
        sha256: str | None = None,
        chat_template: str | None = None,
        n_batch: int = 512,
        lora_path: str | os.PathLike | None = None,
        lora_sha256: str | None = None,
        lora_manifest: str | os.PathLike | Manifest | None = None,
        lora_scale: float = 1.0,
        allow_unverified_adapter: bool = False,
    ) -> None:
        if n_ctx < 64:
            raise InputError(f"n_ctx must be >= 64, got {n_ctx}")
        if max_cached_scenes < 0:
            raise InputError(f"max_cached_scenes must be >= 0, got {max_cached_scenes}")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        self._lock = threading.RLock()
        self._lc = import_llama_cpp()
        if not (isinstance(lora_scale, (int, float)) and math.isfinite(lora_scale)):
            raise InputError(f"lora_scale must be a finite number, got {lora_scale!r}")
        self.model_path = resolve_model(model_path, manifest, sha256)
        self.lora_path: Path | None = None
        self.lora_scale = float(lora_scale)
        adapter_how = None
        if lora_path is not None:
            self.lora_path, adapter_how = resolve_adapter(lora_path, lora_sha256, lora_manifest,
                                                          allow_unverified_adapter)
        self.threads = default_threads() if threads is None else int(threads)
        self.seed = int(seed)
        self.max_cached_scenes = int(max_cached_scenes)
        _quiet_llama_logs(self._lc)
        t_load = time.perf_counter()
        try:
            self.llama = self._lc.Llama(
                str(self.model_path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=self.threads,
                n_threads_batch=self.threads, seed=self.seed, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"llama.cpp could not load {self.model_path}: {exc}") from None
        if self.lora_path is not None:
            self._apply_adapter()
        self.load_ms = (time.perf_counter() - t_load) * 1e3
        self.identity: dict[str, Any] = {
            "model": self.model_path.name,
            "model_verified": "manifest" if (manifest is not None or (model_path is None and not sha256))
            else ("sha256" if sha256 else "unverified"),
            "adapter": None if self.lora_path is None else self.lora_path.name,
        }
        if self.lora_path is not None:
            self.identity.update({"adapter_scale": self.lora_scale, "adapter_verified": adapter_how})
        self.n_ctx = int(self.llama.n_ctx())
        self._vocab = self.llama._model.vocab
        template = chat_template if chat_template is not None else self.llama.metadata.get("tokenizer.chat_template")
        self.chat_template = template
        self._jinja = None
        self._add_bos = bool(self._lc.llama_vocab_get_add_bos(self._vocab))
        self._bos_text = self._token_text(self.llama.token_bos())
        self._eos_text = self._token_text(self.llama.token_eos())
        self._cache: OrderedDict[tuple[str, str], _SceneState] = OrderedDict()
        self._live: tuple[str, str] | None = None  # prefix key whose KV the context holds
        self._grammars_ok: set[str] = set()
        self.stats = {"hits": 0, "misses": 0, "live": 0, "evictions": 0}

    def _apply_adapter(self) -> None:
        """Loads ``lora_path`` onto the model and sets it on the context at ``lora_scale``.

        Done here rather than by ``Llama(lora_path=...)``, which turns memory-mapping of the base
        model off (a leftover from when llama.cpp merged adapters into the weights): with it the
        whole GGUF is read into memory, most of the adapter's load cost. llama.cpp applies an adapter
        in the compute graph, so the mapped base weights are never written."""
        lc, llama = self._lc, self.llama
        adapter = lc.llama_adapter_lora_init(llama._model.model, str(self.lora_path).encode("utf-8"))
        if not adapter:  # NULL: wrong architecture, tensor names or shapes
            llama.close()
            raise InputError(
                f"llama.cpp could not apply the LoRA adapter {self.lora_path} to {self.model_path.name} (is it a "
                "llama.cpp LoRA GGUF made for this base model: same architecture, tensor names and shapes?)")
        llama._lora_adapter = adapter

        def free() -> None:
            if llama._lora_adapter:
                lc.llama_adapter_lora_free(llama._lora_adapter)
                llama._lora_adapter = None

        llama._stack.callback(free)  # freed before the context and model (the stack unwinds in reverse)
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(self.lora_scale)
        if lc.llama_set_adapters_lora(llama._ctx.ctx, adapters, 1, scales):
            llama.close()
            raise InputError(f"llama.cpp could not set the LoRA adapter {self.lora_path} on the context")

    def describe(self) -> str:
        """Which model (and adapter) answers, for logic chains: ``"<model>.gguf + adapter <a>.gguf x1"``."""
        text = self.identity["model"]
        if self.identity["adapter"]:
            text += f" + adapter {self.identity['adapter']} x{self.lora_scale:g}"
        return text

    # ---- text and tokens ------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    @_serialised
    def tokens(self, prompt: Prompt, first: bool = True) -> list[int]:
        """Tokens of a prompt: raw ``str`` segments parse special tokens, :class:`Content` does not.
        A BOS is prepended (``first``) only where the GGUF asks for one and the text lacks it."""
        segments = [prompt] if isinstance(prompt, (str, Content)) else list(prompt)
        out: list[int] = []
        for seg in segments:
            special = isinstance(seg, str)
            text = seg if special else seg.text
            if not isinstance(text, str):
                raise InputError(f"prompt segments must be str or Content, got {type(seg).__name__}")
            if text:
                # Lone surrogates cannot be UTF-8: they become '?' rather than an exception.
                out += self.llama.tokenize(text.encode("utf-8", errors="replace"), add_bos=False, special=special)
        if first and self._add_bos and (not out or out[0] != self.llama.token_bos()):
            out.insert(0, self.llama.token_bos())
        return out

    @_serialised
    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.tokens(prompt, first=False))

    @_serialised
    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.llama.detokenize(list(tokens)).decode("utf-8", errors="replace")

    @_serialised
    def chat_parts(
        self,
        system: str,
        scene: str,
        query: str,
        examples: Sequence[tuple[str, str]] = (),
    ) -> tuple[list[Segment], list[Segment]]:
        """(prefix, suffix) of a chat prompt rendered with the GGUF's template.

        Messages: system, then the few-shot ``examples`` as (user, assistant) turns, then one user
        turn ``scene + query`` and the generation prompt. The prefix ends right after ``scene``; all
        message texts are :class:`Content`. A template that rejects a system role gets the system
        text prepended to the first user turn instead.
        """
        contents = [system] + [t for pair in examples for t in pair] + [scene, query]
        marks = [f"\x02{i}\x03" for i in range(len(contents))]
        msgs: list[dict[str, str]] = [{"role": "system", "content": marks[0]}]
        for k in range(len(examples)):
            msgs.append({"role": "user", "content": marks[1 + 2 * k]})
            msgs.append({"role": "assistant", "content": marks[2 + 2 * k]})
        msgs.append({"role": "user", "content": marks[-2] + marks[-1]})
        try:
            rendered = self._render(msgs)
        except GearEdgeError:
            raise
        except Exception:  # the template refuses a system role: fold it into the first user turn
            first_user = msgs[1]
            first_user["content"] = marks[0] + "\n\n" + first_user["content"]
            rendered = self._render(msgs[1:])
        parts: list[Segment] = []
        pos = 0
        split_at = None
        for i, mark in enumerate(marks):
            at = rendered.find(mark, pos)
            if at < 0:
                raise InputError("the chat template drops or reorders message content; pass chat_template=")
            if rendered[pos:at]:
                parts.append(rendered[pos:at])
            if i == len(marks) - 1:
                split_at = len(parts)
            if contents[i]:
                parts.append(Content(contents[i]))
            pos = at + len(mark)
        if rendered[pos:]:
            parts.append(rendered[pos:])
        assert split_at is not None
        return parts[:split_at], parts[split_at:]

    def _render(self, messages: list[dict[str, str]]) -> str:
        if not self.chat_template:
            raise InputError(f"{self.model_path} has no tokenizer.chat_template; pass chat_template= (jinja2 text)")
        if self._jinja is None:
            try:
                from jinja2.sandbox import ImmutableSandboxedEnvironment
            except ImportError as exc:
                raise MissingDependencyError(f"chat templates need jinja2 ({exc}); pip install jinja2") from None

            def raise_exception(message: str) -> None:
                raise ValueError(message)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            self._jinja = env.from_string(self.chat_template)
        return self._jinja.render(
            messages=messages, add_generation_prompt=True, bos_token=self._bos_text, eos_token=self._eos_text
        )

    # ---- grammars -------------------------------------------------------------------------------

    @_serialised
    def check_grammar(self, gbnf: str) -> None:
        """InputError unless llama.cpp parses ``gbnf`` (root rule ``root``). Cached per text."""
        if gbnf in self._grammars_ok:
            return
        smpl = self._lc.llama_sampler_init_grammar(self._vocab, gbnf.encode("utf-8"), b"root")
        if not smpl:
            raise InputError("llama.cpp rejected the GBNF grammar (see the llama.cpp log for the failing rule)")
        self._lc.llama_sampler_free(smpl)
        self._grammars_ok.add(gbnf)

    @_serialised
    def grammar_accepts(self, gbnf: str, text: str) -> bool:
        """Whether llama.cpp's grammar engine admits ``text`` as a *complete* output of ``gbnf``
        (fed token by token, then end-of-turn). For tests and debugging."""
        self.check_grammar(gbnf)
        lc = self._lc
        smpl = lc.llama_sampler_init_grammar(self._vocab, gbnf.encode("utf-8"), b"root")
        try:
            data = (lc.llama_token_data * 1)()
            arr = lc.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)

            def allowed(tok: int) -> bool:
                data[0].id, data[0].logit, data[0].p = tok, 0.0, 0.0
                arr.size, arr.selected = 1, -1
                lc.llama_sampler_apply(smpl, ctypes.byref(arr))
                return not math.isinf(data[0].logit)

            for tok in self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False):
                if not allowed(tok):
                    return False
                lc.llama_sampler_accept(smpl, tok)
            return allowed(self.llama.token_eos())
        finally:
            lc.llama_sampler_free(smpl)

    # ---- generation -----------------------------------------------------------------------------

    @_serialised
    def generate(
        self,
        scene_key: str | None,
        prefix: Prompt,
        suffix: Prompt,
        grammar: str | None,
        max_tokens: int,
        temperature: float = 0.0,
        budget_s: float | None = None,
    ) -> Generation:
        """Completes ``prefix + suffix`` (at most ``max_tokens`` tokens, under the GBNF ``grammar``).

        ``scene_key`` names the prefix for the cache (None: evaluate it and keep nothing). A cached
        state is used only when its prefix tokens equal this prefix's, so a reused key with new text
        is evaluated afresh. InputError when prompt + ``max_tokens`` exceed ``n_ctx``. ``budget_s``:
        decoding stops (``stop="time"``) once this many seconds have passed since the call began.
        """
        t0 = time.perf_counter()
        if max_tokens < 1:
            raise InputError(f"max_tokens must be >= 1, got {max_tokens}")
        pre = self.tokens(prefix, first=True)
        suf = self.tokens(suffix, first=not pre)
        if not suf:
            raise InputError("the prompt suffix (query part) is empty")
        total = len(pre) + len(suf)
        if total + max_tokens > self.n_ctx:
            raise InputError(
                f"the prompt is {total} tokens (scene {len(pre)} + query {len(suf)}) and the answer may take "
                f"{max_tokens} more, but the context holds n_ctx={self.n_ctx} tokens; shorten the query or "
                "the scene, or raise n_ctx"
            )
        if grammar is not None:
            self.check_grammar(grammar)
        t1 = time.perf_counter()
        cache, evaluated = self._prepare_prefix(scene_key, pre)
        t2 = time.perf_counter()
        self.llama.eval(suf)
        t3 = time.perf_counter()
        out, stop, passes = self._decode(grammar, max_tokens, temperature,
                                         None if budget_s is None else t0 + budget_s)
        t4 = time.perf_counter()
        return Generation(
            text=self.detokenize(out),
            prompt_tokens=total,
            prompt_tokens_evaluated=evaluated + len(suf),
            completion_tokens=len(out),
            timings={
                "tokenize_ms": (t1 - t0) * 1e3,
                "prefix_ms": (t2 - t1) * 1e3,
                "suffix_ms": (t3 - t2) * 1e3,
                "decode_ms": (t4 - t3) * 1e3,
                "total_ms": (t4 - t0) * 1e3,
            },
            cache=cache,
            stop=stop,
            tokens=out,
            grammar_passes=passes,
        )

    def _prepare_prefix(self, scene_key: str | None, pre: list[int]) -> tuple[str, int]:
        """Brings the context to exactly ``pre``; returns (cache outcome, prefix tokens evaluated)."""
        llama = self.llama
        n = len(pre)
        if scene_key is None:
            self._clear()
            if n:
                llama.eval(pre)
            self._live = None
            return "off", n
        key = (str(scene_key), hashlib.sha1(np.asarray(pre, dtype=np.int32).tobytes()).hexdigest())
        if self._live == key and llama.n_tokens >= n and np.array_equal(llama.input_ids[:n], pre):
            llama.n_tokens = n  # eval() drops KV cells from position n on
            self.stats["live"] += 1
            if key in self._cache:
                self._cache.move_to_end(key)
            return "live", 0
        state = self._cache.get(key)
        if state is not None:
            self._clear()
            if state.kv:
                buf = (ctypes.c_uint8 * len(state.kv)).from_buffer_copy(state.kv)
                if self._lc.llama_state_seq_set_data(llama._ctx.ctx, buf, len(state.kv), 0) == 0:
                    raise GearEdgeError("llama.cpp could not restore a cached scene state")
            llama.input_ids[:n] = state.tokens
            llama.n_tokens = n
            self._cache.move_to_end(key)
            self._live = key
            self.stats["hits"] += 1
            return "restored", 0
        self._clear()
        if n:
            llama.eval(pre)
        self.stats["misses"] += 1
        if self.max_cached_scenes > 0:
            size = self._lc.llama_state_seq_get_size(llama._ctx.ctx, 0)
            buf = (ctypes.c_uint8 * size)()
            written = self._lc.llama_state_seq_get_data(llama._ctx.ctx, buf, size, 0)
            self._cache[key] = _SceneState(np.asarray(pre, dtype=np.int32), bytes(buf[:written]))
            while len(self._cache) > self.max_cached_scenes:
                self._cache.popitem(last=False)
                self.stats["evictions"] += 1
        self._live = key
        return "miss", n

    def _clear(self) -> None:
        self.llama.reset()
        self.llama._ctx.kv_cache_clear()

    def _decode(self, grammar: str | None, max_tokens: int, temperature: float,
                deadline: float | None = None) -> tuple[list[int], str, int]:
        """(tokens, stop, full-vocabulary grammar passes) of one completion from the live context."""
        if temperature == 0.0:
            return self._decode_greedy(grammar, max_tokens, deadline)
        out, stop = self._decode_sampled(grammar, max_tokens, temperature, deadline)
        return out, stop, len(out) + 1 if grammar is not None else 0

    def _decode_sampled(self, grammar: str | None, max_tokens: int, temperature: float,
                        deadline: float | None = None) -> tuple[list[int], str]:
        """llama-cpp-python's sampler chain (grammar on every candidate, then top-k/top-p/min-p and
        the seeded draw; greedy at ``temperature`` 0): the reference :meth:`_decode_greedy` matches."""
        lc, llama = self._lc, self.llama
        llama.set_seed(self.seed)
        g = lc.LlamaGrammar.from_string(grammar, verbose=False) if grammar is not None else None
        out: list[int] = []
        stop = "length"
        gen = llama.generate(
            [], reset=False, temp=float(temperature), top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
            grammar=g,
        )
        for tok in gen:
            if lc.llama_vocab_is_eog(self._vocab, tok):
                stop = "eog"
                break
            out.append(int(tok))
            if len(out) >= max_tokens:
                break
            if deadline is not None and time.perf_counter() > deadline:
                stop = "time"
                break
        gen.close()
        return out, stop

    def _decode_greedy(self, grammar: str | None, max_tokens: int,
                       deadline: float | None = None) -> tuple[list[int], str, int]:
        """Greedy decoding that checks the grammar on the best token first (llama.cpp's own
        ``common_sampler`` order): the full-vocabulary grammar pass (tens of thousands of token
        pieces against the grammar stacks, most of a token's time on a small model) runs only when
        the model's argmax is a token the grammar refuses. The token chosen is the same as with the
        grammar applied to every candidate first: the highest-logit token the grammar admits (the
        lowest id on ties, as llama.cpp's greedy sampler)."""
        lc, llama = self._lc, self.llama
        n_vocab = int(llama.n_vocab())
        smpl = None
        if grammar is not None:
            smpl = lc.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
            if not smpl:
                raise InputError("llama.cpp rejected the GBNF grammar (see the llama.cpp log for the failing rule)")
        one = (lc.llama_token_data * 1)()
        one_arr = lc.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        full = full_arr = view = None
        passes = 0
        out: list[int] = []
        stop = "length"
        try:
            while True:
                logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(n_vocab,))
                tok = int(np.argmax(logits))
                if smpl is not None:
                    one[0].id, one[0].logit, one[0].p = tok, float(logits[tok]), 0.0
                    one_arr.size, one_arr.selected, one_arr.sorted = 1, -1, False
                    lc.llama_sampler_apply(smpl, ctypes.byref(one_arr))
                    if math.isinf(one[0].logit):  # refused: apply the grammar to every token
                        passes += 1
                        if full is None:
                            full = (lc.llama_token_data * n_vocab)()
                            full_arr = lc.llama_token_data_array(data=full, size=n_vocab, selected=-1, sorted=False)
                            view = np.frombuffer(full, dtype=_TOKEN_DATA)
                        view["logit"] = logits
                        view["id"] = np.arange(n_vocab, dtype=np.int32)
                        full_arr.size, full_arr.selected, full_arr.sorted = n_vocab, -1, False
                        lc.llama_sampler_apply(smpl, ctypes.byref(full_arr))
                        allowed = view["logit"][: full_arr.size]
                        if not np.isfinite(allowed).any():
                            raise GearEdgeError("the grammar admits no token here (the output cannot be completed)")
                        tok = int(view["id"][: full_arr.size][int(np.argmax(allowed))])
                    lc.llama_sampler_accept(smpl, tok)
                if lc.llama_vocab_is_eog(self._vocab, tok):
                    stop = "eog"
                    break
                out.append(tok)
                if len(out) >= max_tokens:
                    break
                llama.eval([tok])
                if deadline is not None and time.perf_counter() > deadline:
                    stop = "time"
                    break
        finally:
            if smpl is not None:
                lc.llama_sampler_free(smpl)
        return out, stop, passes

    @_serialised
    def next_token_logits(self, prompt: Prompt) -> np.ndarray:
        """float32 [n_vocab] logits of the token after ``prompt`` (evaluated from an empty context;
        the live scene prefix is dropped). For tests and adapter checks."""
        toks = self.tokens(prompt, first=True)
        if not toks:
            raise InputError("the prompt is empty")
        if len(toks) > self.n_ctx:
            raise InputError(f"the prompt is {len(toks)} tokens, more than n_ctx={self.n_ctx}")
        self._clear()
        self._live = None
        self.llama.eval(toks)
        n_vocab = int(self.llama.n_vocab())
        return np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(n_vocab,)).astype(np.float32)

    # ---- cache ----------------------------------------------------------------------------------

    @_serialised
    def cache_info(self) -> dict[str, Any]:
        """Entries, total and per-entry bytes of the cached scene states, and hit/miss counts."""
        sizes = [len(s.kv) + s.tokens.nbytes for s in self._cache.values()]
        return {
            "entries": len(sizes),
            "max_entries": self.max_cached_scenes,
            "bytes": int(sum(sizes)),
            "bytes_per_entry": sizes,
            "prefix_tokens": [int(s.tokens.size) for s in self._cache.values()],
            **self.stats,
        }

    @_serialised
    def clear_cache(self) -> None:
        self._cache.clear()
        self._live = None


_LOG_CB = None


def _quiet_llama_logs(lc) -> None:
    """Routes llama.cpp's C log to nowhere (it prints every load detail to stderr otherwise)."""
    global _LOG_CB
    if _LOG_CB is None:
        @lc.llama_log_callback
        def _silent(level, text, user_data):  # noqa: ARG001
            return None

        _LOG_CB = _silent
        lc.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
