"""Composition: a :class:`~gear_edge.config.Config` → the pipeline's Protocol-typed components.

    parts = Assembly(load_config("sam2"))
    parts.segmenter   # Segmenter: classical, or SAM2 AMG on an encoder + decoder Engine
    parts.ocr         # TextReader (PP-OCR det / cls / rec engines), None when [describe] ocr = false
    parts.captioner   # RegionCaptioner (Florence-2 vision / text_encoder / decoder engines) or None
    parts.embedder    # Embedder (MiniLM engine) for the program deducer; MissingDependencyError if absent
    parts.llm         # LanguageModel (llama.cpp GGUF)
    parts.deducer     # Deducer ([deduce] mode: program or direct)
    parts.load()      # builds every configured component now; one LoadReport each (time, RSS delta)

This is the one place that reads the config for the components: every ONNX model is built through
:func:`gear_edge.engines.engine_from_config` for its model family (``sam2``, ``ocr``, ``captioner``,
``embedder``), so ``[engines]`` (backend, providers, precision, threads, plan_dir, allow_fallback)
reaches all of them and ``[engines.<model>]`` overrides it per family. Values a profile leaves out
come from the schema's defaults (:data:`gear_edge.config.SCHEMA`). Components are built on first
use (a caller who brings masks never loads a segmenter, ``perceive`` never loads the LLM); every
engine built is recorded in :attr:`Assembly.engines` with the providers it really runs on.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gear_edge.config import Config
from gear_edge.deduce.base import Deducer, LanguageModel
from gear_edge.describe.scene import RegionCaptioner, TextReader
from gear_edge.engines.base import Engine
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.segment.base import Segmenter

COMPONENTS = ("segmenter", "ocr", "captioner", "embedder", "llm", "deducer")


@dataclass
class LoadReport:
    """How building one component went: wall time (ms), resident-memory growth (MiB, current RSS after
    minus before, so shared libraries loaded on the way count towards the first model that needs them),
    the engines it built (``"family.role"`` → providers) and, for an optional part that is not
    available, why (``skipped``)."""

    component: str
    load_ms: float
    rss_delta_mib: float
    engines: dict[str, list[str]] = field(default_factory=dict)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "load_ms": self.load_ms, "rss_delta_mib": self.rss_delta_mib,
                "engines": self.engines, "skipped": self.skipped}


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024.0 if os.uname().sysname != "Darwin" else peak / 2**20


def engine_providers(engine: Engine) -> list[str]:
    """What an engine runs on: ONNX Runtime's session providers, or the backend's class name."""
    providers = getattr(engine, "providers", None)
    return list(providers) if providers else [type(engine).__name__]


class Assembly:
    """Builds (once) and holds the components ``config`` describes; ``given`` components are used as
    they are (tests, callers bringing their own). Thread-safe: components are built under one lock,
    so threads that first need a component at the same time share one instance."""

    def __init__(self, config: Config, **given: Any) -> None:
        unknown = sorted(set(given) - set(COMPONENTS))
        if unknown:
            raise InputError(f"unknown component(s) {unknown}; known: {', '.join(COMPONENTS)}")
        self.config = config
        self._built: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self._notes: dict[str, str] = {}  # component -> why an optional one is unavailable
        self.engines: dict[str, Engine] = {}  # "family.role" -> every engine built here, in build order
        self.reports: dict[str, LoadReport] = {}
        self._lock = threading.RLock()  # re-entrant: building the deducer builds the LLM

    # ---- engines --------------------------------------------------------------------------------

    def engine(self, family: str, role: str, path: str | os.PathLike, **options: Any) -> Engine:
        """The engine of model file ``path`` (family ``sam2`` / ``ocr`` / ``captioner`` / ``embedder``) as
        ``[engines]`` + ``[engines.<family>]`` say; recorded as ``"family.role"``."""
        from gear_edge.engines.factory import engine_from_config

        eng = engine_from_config(path, self.config, family, **options)
        self.engines[f"{family}.{role}"] = eng
        return eng

    def providers(self, prefix: str = "") -> dict[str, list[str]]:
        """``"family.role"`` → providers of every engine built so far (whose name starts with ``prefix``);
        the LLM, once built, as ``"llm.gguf"`` → ``["llama.cpp:<file>"]``."""
        out = {k: engine_providers(e) for k, e in self.engines.items() if k.startswith(prefix)}
        llm = self._built.get("llm")
        if llm is not None and "llm.gguf".startswith(prefix):
            out["llm.gguf"] = [f"llama.cpp:{Path(str(getattr(llm, 'model_path', '?'))).name}"]
        return out

    # ---- components -----------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The component ``name`` (built on first call), or None for an optional one that is not
        configured. An optional component that is configured but cannot load raises."""
        if name not in COMPONENTS:
            raise InputError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
        if name in self._built:
            return self._built[name]
        with self._lock:
            if name not in self._built:
                before, rss0, t0 = set(self.engines), rss_mib(), time.perf_counter()
                value = getattr(self, f"_build_{name}")()
                self._built[name] = value
                self.reports[name] = LoadReport(
                    name, (time.perf_counter() - t0) * 1e3, rss_mib() - rss0,
                    {k: engine_providers(e) for k, e in self.engines.items() if k not in before},
                    None if value is not None else self._notes.get(name, "not configured"),
                )
            return self._built[name]

    @property
    def segmenter(self) -> Segmenter:
        return self.get("segmenter")

    @property
    def ocr(self) -> TextReader | None:
        return self.get("ocr")

    @property
    def captioner(self) -> RegionCaptioner | None:
        return self.get("captioner")

    @property
    def embedder(self):
        """The program deducer's sentence embedder (:class:`~gear_edge.deduce.program.semantic.Embedder`)."""
        return self.get("embedder")

    @property
    def llm(self) -> LanguageModel:
        return self.get("llm")

    @property
    def deducer(self) -> Deducer:
        return self.get("deducer")

    def needed(self) -> list[str]:
        """The components this config uses, in build order."""
        cfg = self.config
        names = ["segmenter"]
        if cfg.get("describe", "ocr"):
            names.append("ocr")
        if cfg.path("describe", "captioner") is not None or "captioner" in self._built:
            names.append("captioner")
        if cfg.get("deduce", "mode") == "program":
            names.append("embedder")
        return names + ["llm", "deducer"]

    def load(self) -> list[LoadReport]:
        """Builds every component the config uses now (instead of on first use) and returns one report
        each. Optional parts of the program deducer (MiniLM, the LLM) that are not installed are
        reported as skipped with the reason; anything else that cannot load raises."""
        out = []
        for name in self.needed():
            if name in ("embedder", "llm") and self.config.get("deduce", "mode") == "program":
                try:
                    self.get(name)
                except MissingDependencyError as exc:
                    self._notes[name] = str(exc)
                    self.reports[name] = LoadReport(name, 0.0, 0.0, {}, str(exc))
            else:
                self.get(name)
            if name in self.reports:
                out.append(self.reports[name])
        return out

    # ---- builders (one per component; defaults come from the config schema) -----------------------

    def _build_segmenter(self) -> Segmenter:
        cfg = self.config
        kind = cfg.get("segment", "kind")
        if kind == "classical":
            from gear_edge.segment.classical import ClassicalSegmenter

            return ClassicalSegmenter(**cfg.section("segment.classical"))
        if kind == "sam2":
            from gear_edge.segment.factory import sam2_segmenter_from_config

            return sam2_segmenter_from_config(cfg, lambda role, path, **verify: self.engine("sam2", role, path, **verify))
        raise InputError(f"{cfg.source}: unknown [segment] kind {kind!r}")  # pragma: no cover - the loader rejects it

    def _build_ocr(self) -> TextReader | None:
        if not self.config.get("describe", "ocr"):
            self._notes["ocr"] = "[describe] ocr = false"
            return None
        from gear_edge.describe.ocr import OcrReader

        return OcrReader(engine_factory=lambda role, path, m: self.engine("ocr", role, path, manifest=m))

    def _build_captioner(self) -> RegionCaptioner | None:
        path = self.config.path("describe", "captioner")
        if path is None:
            self._notes["captioner"] = "[describe] captioner is empty"
            return None
        from gear_edge.describe.captioner import ROLES, Captioner, CaptionerConfig, CONFIG_NAME
        from gear_edge.engines.manifest_check import manifest_path_for

        files = CaptionerConfig.load(path / CONFIG_NAME).files if path.is_dir() else {}
        role_of = {(path / files[r]).name: r for r in ROLES if r in files}

        def factory(p: Path) -> Engine:
            return self.engine("captioner", role_of.get(Path(p).name, Path(p).stem), p, manifest=manifest_path_for(p))

        return Captioner.from_dir(path, engine_factory=factory, threads=self.config.get("runtime", "threads"))

    def _build_embedder(self):
        from gear_edge.deduce.program.semantic import TextEmbedder

        return TextEmbedder.default(engine_factory=lambda p, m: self.engine("embedder", "minilm", p, manifest=m))

    def _build_llm(self) -> LanguageModel:
        from gear_edge.deduce.llm import LocalLLM

        cfg = self.config
        model, verified = self._user_llm()
        adapter, adapter_verified = self._user_adapter()
        return LocalLLM(
            model_path=model,
            sha256=verified.get("sha256"),
            manifest=verified.get("manifest"),
            lora_path=adapter,
            lora_sha256=adapter_verified.get("sha256"),
            lora_manifest=adapter_verified.get("manifest"),
            lora_scale=float(cfg.get("deduce", "adapter_scale")),
            allow_unverified_adapter=bool(cfg.get("runtime", "allow_unverified_models")),
            n_ctx=int(cfg.get("deduce", "n_ctx")),
            threads=int(cfg.get("runtime", "threads")),
            seed=int(cfg.get("deduce", "seed")),
            max_cached_scenes=int(cfg.get("deduce", "max_cached_scenes")),
        )

    def _build_deducer(self) -> Deducer:
        cfg = self.config
        if cfg.get("deduce", "mode") == "direct":
            from gear_edge.deduce.direct import DirectDeducer

            return DirectDeducer(self.llm, check_steps=bool(cfg.get("deduce", "check_steps")))
        from gear_edge.deduce.program.deducer import ProgramDeducer

        # the LLM loads only when a query needs it (most are parsed without it), but a configured GGUF
        # that is not there (or fails its check) is a configuration error now, not mid-mission
        model, _ = self._user_llm()
        adapter, how = self._user_adapter()
        role = str(cfg.get("deduce", "program_llm_role"))
        if role == "auto":  # an adapter trained to translate says so in its manifest (task = "program")
            m = how.get("manifest")
            role = "translate" if m is not None and m.extra.get("task") == "program" else "fill"
        # deduce.program_llm "auto": the plain default SmolLM2-135M is not asked (measured not to help);
        # an adapter on it was tuned for the job and is asked
        return ProgramDeducer(llm=self._optional("llm"), embedder=self._optional("embedder"),
                              threads=int(cfg.get("runtime", "threads")),
                              llm_use=str(cfg.get("deduce", "program_llm")),
                              llm_budget_s=int(cfg.get("deduce", "llm_budget_ms")) / 1e3,
                              default_model=model is None and adapter is None, llm_role=role)

    def _user_llm(self) -> tuple[Path | None, dict[str, Any]]:
        """``deduce.model`` checked before use (``deduce.model_sha256``, the manifest next to it, or
        ``runtime.allow_unverified_models``) and the LocalLLM arguments that verify it again at load."""
        return self._user_file("model", "GGUF file", "for the default SmolLM2-135M")

    def _user_adapter(self) -> tuple[Path | None, dict[str, Any]]:
        """``deduce.adapter`` (a LoRA GGUF) checked before use like ``deduce.model``: its
        ``deduce.adapter_sha256``, the manifest next to it, or ``runtime.allow_unverified_models``.

        ``"auto"``: on the default model, the shipped adapter of the mode (verified by its manifest):
        :data:`gear_edge.deduce.llm.DIRECT_ADAPTER` in direct mode, :data:`~gear_edge.deduce.llm.PROGRAM_ADAPTER`
        (the program translator) in program mode; none on another model (they were trained on the
        default SmolLM2-135M's prompts only)."""
        cfg = self.config
        if str(cfg.get("deduce", "adapter")).strip() == "auto":
            if cfg.path("deduce", "model") is not None:
                return None, {}
            from gear_edge.deduce.llm import DIRECT_ADAPTER, PROGRAM_ADAPTER
            from gear_edge.manifest import Manifest

            m = Manifest.named(DIRECT_ADAPTER if cfg.get("deduce", "mode") == "direct" else PROGRAM_ADAPTER)
            return m.verify(m.locate()), {"manifest": m}
        return self._user_file("adapter", "LoRA adapter file", "for the base model alone")

    def _user_file(self, key: str, what: str, empty_means: str) -> tuple[Path | None, dict[str, Any]]:
        """(path or None, {"sha256": str} | {"manifest": Manifest}) of the user file ``deduce.<key>``,
        verified by ``deduce.<key>_sha256``, the manifest next to it, or ``runtime.allow_unverified_models``."""
        path = self.config.path("deduce", key)
        if path is None:
            return None, {}
        if not path.is_file():
            raise InputError(f"deduce.{key}: {what} {path} does not exist; fix the path or leave "
                             f"deduce.{key} empty {empty_means}")
        from gear_edge.manifest import check_model_file

        sha = self.config.get("deduce", f"{key}_sha256") or ""
        how = check_model_file(path, f"deduce.{key}", sha256=sha,
                               allow_unverified=bool(self.config.get("runtime", "allow_unverified_models")))
        if how == "sha256":
            return path, {"sha256": sha}
        if how == "manifest":
            from gear_edge.manifest import Manifest

            return path, {"manifest": Manifest.load(path.with_suffix(".toml"))}
        return path, {}

    def _optional(self, name: str) -> Callable[[], Any]:
        """A provider of component ``name`` for the program deducer (which calls it on first need and
        treats MissingDependencyError as 'not available')."""
        def provide() -> Any:
            if name in self._notes and name not in self._built:
                raise MissingDependencyError(self._notes[name])
            return self.get(name)

        return provide
