"""Typed configuration (TOML) with named profiles shipped in ``gear_edge/profiles/``.

``load_config("default")`` loads a shipped profile; ``load_config("my.toml")`` a file (it may say
``profile = "sam2"`` to start from a shipped one); ``overrides`` (``{"deduce.mode": "direct"}``)
change single keys. Unknown sections or keys are errors naming the key, so typos never pass silently.

:data:`SCHEMA` is the one place for defaults and allowed values: every key is a :class:`Key` (type,
default, allowed range or choices). Values are checked at load, so a bad number fails when the config
is read (naming the key and the allowed range), not mid-mission; keys a file leaves out get their
schema default (:meth:`Config.get`, :meth:`Config.section`).
"""

from __future__ import annotations

import copy
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from gear_edge.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UNSET: Any = object()


@dataclass(frozen=True)
class Key:
    """One config key: ``type`` (bool / int / float / str / list), ``default``, and what is allowed.

    ``lo`` / ``hi``: inclusive bounds for numbers (``lo_open`` makes ``lo`` exclusive); floats must be
    finite. ``choices``: the allowed values (for a list: of each item). ``sha256``: a string that is
    empty or 64 lowercase hex digits. ``items``: the type of a list's items; ``nonempty``: a list
    needs at least one item.
    """

    type: type
    default: Any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple | None = None
    sha256: bool = False
    items: type | None = None
    nonempty: bool = False
    doc: str = ""

    def allowed(self) -> str:
        """The allowed values in words, for error messages ('an integer in [1, 256]')."""
        if self.type is bool:
            return "true or false"
        if self.type is list:
            what = f"a {'non-empty ' if self.nonempty else ''}list of {self.items.__name__ if self.items else 'values'}"
            return what + (f" from {list(self.choices)}" if self.choices else "")
        if self.choices:
            return f"one of {list(self.choices)}"
        if self.sha256:
            return "empty or a sha256 (64 hex digits)"
        if self.type is str:
            return "a string"
        noun = "an integer" if self.type is int else "a finite number"
        if self.lo is None and self.hi is None:
            return noun
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{noun} in {'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{']' if self.hi is not None else ')'}"

    def check(self, value: Any, where: str) -> Any:
        """``value`` converted to the key's type (int → float), or InputError naming ``where`` and what is allowed."""
        bad = InputError(f"{where} must be {self.allowed()}, got {type(value).__name__} {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            if self.type is int and not isinstance(value, int):
                raise bad
            if self.type is float:
                if not math.isfinite(value):
                    raise bad
                value = float(value)
            if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
                raise bad
            if self.hi is not None and value > self.hi:
                raise bad
            return value
        if self.type is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            if self.sha256 and value:
                value = value.strip().lower()
                if not _SHA256.match(value):
                    raise bad
            return value
        if self.type is list:
            if not isinstance(value, (list, tuple)) or (self.nonempty and not value):
                raise bad
            if self.items is not None and not all(isinstance(v, self.items) and not isinstance(v, bool) for v in value):
                raise bad
            if self.choices and not all(v in self.choices for v in value):
                raise bad
            return list(value)
        raise TypeError(f"unsupported key type {self.type!r}")  # pragma: no cover - schema bug


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


_AREA = 1 << 30  # pixels: OpenCV's own decoder limit (CV_IO_MAX_IMAGE_PIXELS)

SCHEMA: dict[str, dict[str, Key]] = {
    "runtime": {
        "threads": Key(int, 2, 1, 256, doc="CPU threads per stage (OCR, ONNX Runtime, llama.cpp)"),
        "max_image_pixels": Key(int, 50_000_000, 1, _AREA,
                                doc="largest image accepted (width x height, read from the header before decoding)"),
        "allow_unverified_models": Key(bool, False, doc="load ONNX files that have no manifest (no sha256 check)"),
    },
    "segment": {"kind": Key(str, "classical", choices=("classical", "sam2"))},
    "segment.classical": {
        "work_side": Key(int, 384, 16, 8192, doc="px, longer side of the image the graph is built on"),
        "scale": Key(float, 100.0, 0.0, 1e6, lo_open=True, doc="Felzenszwalb scale"),
        "sigma": Key(float, 0.8, 0.0, 100.0, doc="Felzenszwalb Gaussian sigma (px of the work image)"),
        "merge_threshold": Key(float, 12.0, 0.0, 1000.0, doc="Lab distance below which neighbours merge"),
        "min_area_frac": Key(float, 0.0005, 0.0, 0.5, doc="smallest region kept, fraction of the image "
                             "(below whole-object merging's tiny_frac: every region it keeps, small objects too)"),
        "max_regions": Key(int, 40, 1, 10_000),
        "whole_objects": Key(bool, True, doc="merge labels, logos, highlights, shadows and support fragments "
                                              "into whole objects / the support (gear_edge.segment.classical)"),
    },
    "segment.sam2": {
        "encoder": Key(str, "", doc="path of the exported SAM2 image encoder (.onnx or TensorRT plan)"),
        "decoder": Key(str, "", doc="path of the exported SAM2 prompt decoder"),
        "encoder_sha256": Key(str, "", sha256=True, doc="expected sha256 of the encoder file (empty: its manifest)"),
        "decoder_sha256": Key(str, "", sha256=True, doc="expected sha256 of the decoder file (empty: its manifest)"),
        "points_per_side": Key(int, 32, 1, 1024),
        "points_per_batch": Key(int, 64, 1, 65_536),
        "pred_iou_thresh": Key(float, 0.8, 0.0, 1.0),
        "stability_score_thresh": Key(float, 0.95, 0.0, 1.0),
        "box_nms_thresh": Key(float, 0.7, 0.0, 1.0),
        "min_mask_region_area": Key(int, 0, 0, _AREA),
        "crop_n_layers": Key(int, 0, 0, 4),
    },
    "engines": {
        "backend": Key(str, "onnxruntime", choices=("onnxruntime", "tensorrt")),
        "providers": Key(list, ["cpu"], items=str, nonempty=True, doc="execution providers in priority order"),
        "plan_dir": Key(str, "", doc="TensorRT plans / engine cache folder"),
        "precision": Key(str, "fp32", choices=("fp32", "fp16", "int8")),
        "device_id": Key(int, 0, 0, 63),
        "allow_fallback": Key(bool, False, doc="skip providers this onnxruntime build lacks (with a warning) instead of failing"),
        "threads": Key(int, 0, 0, 256, doc="intra-op threads per engine; 0 = [runtime] threads"),
    },
    "describe": {
        "ocr": Key(bool, True),
        "captioner": Key(str, "", doc="directory of an exported captioner; empty = none"),
        "captions": Key(str, "on_demand", choices=("on_demand", "all"),
                        doc="on_demand: caption only the regions a query still considers after its exact filters "
                            "(cached per scene); all: caption every region during perceive"),
        "k_neighbours": Key(int, 4, 0, 256, doc="nearest regions each region is related to"),
        "max_regions_text": Key(int, 40, 1, 10_000),
    },
    "deduce": {
        "mode": Key(str, "program", choices=("program", "direct")),
        "model": Key(str, "", doc="path of a GGUF; empty = the SmolLM2-135M manifest"),
        "model_sha256": Key(str, "", sha256=True, doc="expected sha256 of deduce.model (required for a user GGUF "
                                                      "unless runtime.allow_unverified_models)"),
        "adapter": Key(str, "auto", doc="path of a LoRA adapter GGUF for deduce.model (llama.cpp format, "
                                        "gear-edge train-deducer); auto = on the default model the shipped "
                                        "models/deducer-lora in direct mode and models/program-lora in program "
                                        "mode, none on another model; empty = none"),
        "adapter_sha256": Key(str, "", sha256=True, doc="expected sha256 of deduce.adapter (else the manifest next "
                                                        "to it; required unless runtime.allow_unverified_models)"),
        "adapter_scale": Key(float, 1.0, -100.0, 100.0, doc="LoRA scale llama.cpp applies the adapter with"),
        "n_ctx": Key(int, 2048, 256, 131_072, doc="LLM context, tokens"),
        "seed": Key(int, 0, 0, 2**32 - 1),
        "max_cached_scenes": Key(int, 4, 0, 1024, doc="scene prefixes whose KV state is kept"),
        "program_llm": Key(str, "auto", choices=("auto", "always", "never"),
                           doc="program mode asks the LLM about phrases the parser cannot place (only when their own "
                               "words find nothing): auto = a configured deduce.model or the default model with the "
                               "program adapter, never the plain default SmolLM2-135M (measured not to help)"),
        "program_llm_role": Key(str, "auto", choices=("auto", "fill", "translate"),
                                doc="what the program-mode LLM does: fill = name objects for the phrase, translate = "
                                    "write the whole query's program (a tuned adapter); auto = translate with the "
                                    "shipped program adapter, fill otherwise"),
        "llm_budget_ms": Key(int, 20_000, 50, 600_000, doc="time one program-mode LLM call may take, ms"),
        "check_steps": Key(bool, True, doc="direct mode: run the LLM's steps on the scene's exact facts when they "
                                           "are in the data engine's layout (their result is the answer), else drop "
                                           "a target a step states a false fact of (\"colour red: R3\" where R3 is "
                                           "blue) and recompute its rankings"),
    },
}
# [engines.<model>]: per-model-family overrides of [engines] (gear_edge.engines.factory.MODELS), same keys;
# their default None means "as [engines] says"
for _model in ("sam2", "ocr", "captioner", "embedder"):
    SCHEMA[f"engines.{_model}"] = {k: replace(v, default=None) for k, v in SCHEMA["engines"].items()}
# kept for callers of the old layout: the allowed choices per (section, key)
CHOICES = {(s, k): spec.choices for s, keys in SCHEMA.items() for k, spec in keys.items() if spec.choices and spec.type is str}


def spec(section: str, key: str) -> Key:
    """The :class:`Key` of ``[section] key`` (InputError naming it when there is none)."""
    if section not in SCHEMA:
        raise InputError(f"unknown config section [{section}] (known: {', '.join(sorted(SCHEMA))})")
    if key not in SCHEMA[section]:
        raise InputError(f"unknown key '{key}' in [{section}] (known: {', '.join(sorted(SCHEMA[section]))})")
    return SCHEMA[section][key]


def default(section: str, key: str) -> Any:
    """The schema default of ``[section] key`` (a copy, so lists can be changed safely)."""
    return copy.deepcopy(spec(section, key).default)


def defaults() -> dict[str, dict[str, Any]]:
    """Every section with every key at its default (keys whose default is None — unset, such as the
    ``[engines.<model>]`` overrides — are left out)."""
    return {s: {k: copy.deepcopy(v.default) for k, v in keys.items() if v.default is not None} for s, keys in SCHEMA.items()}


def check_value(section: str, key: str, value: Any, source: str = "config") -> Any:
    """``value`` checked against the schema (converted int → float where the key is a float)."""
    try:
        want = spec(section, key)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    return want.check(value, f"{source}: [{section}] {key}")


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


@dataclass
class Config:
    """A validated configuration: ``sections['deduce']['mode']`` etc.; ``source`` says where it came from.

    Loaded configs hold every schema key (missing ones at their default).
    """

    sections: dict[str, dict[str, Any]]
    source: str
    base_dir: Path = field(default_factory=Path.cwd)

    def get(self, section: str, key: str, default: Any = _UNSET) -> Any:
        """The value of ``[section] key``; when unset: ``default`` if given, else the schema default."""
        values = self.sections.get(section, {})
        if key in values:
            return values[key]
        if default is not _UNSET:
            return default
        known = SCHEMA.get(section, {}).get(key)
        return copy.deepcopy(known.default) if known is not None else None

    def section(self, name: str) -> dict[str, Any]:
        """``[name]`` as a dict: the schema defaults of the section updated with the set values."""
        out = {k: copy.deepcopy(v.default) for k, v in SCHEMA.get(name, {}).items() if v.default is not None}
        out.update(self.sections.get(name, {}))
        return out

    def path(self, section: str, key: str) -> Path | None:
        """A path value resolved against the config file's directory (None if empty)."""
        value = self.get(section, key, "")
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            out.setdefault(name, {})
            for sub, sv in _flatten(value, name).items():
                out.setdefault(sub, {}).update(sv)
        else:
            out.setdefault(prefix, {})[key] = value
    return {k: v for k, v in out.items() if v or k in SCHEMA}


def _check(sections: dict[str, dict[str, Any]], source: str) -> None:
    """Checks every value in place (int → float where the key is a float); InputError names the first bad key."""
    for sec, values in sections.items():
        if sec == "":
            raise InputError(f"{source}: top-level keys {sorted(values)} are not allowed (put them in a [section])")
        if sec not in SCHEMA:
            raise InputError(f"{source}: unknown section [{sec}] (known: {', '.join(sorted(SCHEMA))})")
        for key, value in values.items():
            if key not in SCHEMA[sec]:
                raise InputError(f"{source}: unknown key '{key}' in [{sec}] (known: {', '.join(sorted(SCHEMA[sec]))})")
            values[key] = SCHEMA[sec][key].check(value, f"{source}: [{sec}] {key}")


def _complete(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = defaults()
    for sec, values in sections.items():
        out.setdefault(sec, {}).update(values)
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"config {path} does not exist (shipped profiles: {', '.join(profiles())})") from None
    except IsADirectoryError:
        raise InputError(f"config {path} is a directory, not a TOML file") from None
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"config {path} is not a TOML text file (byte {exc.start} is not UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config {path} is not valid TOML: {exc}") from None
    if not data:
        raise InputError(f"config {path} is empty (it sets no keys); write profile = \"default\" in it to start "
                         f"from a shipped profile ({', '.join(profiles())})")
    return data


def _parse_override(key: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def load_config(path_or_profile: str | Path = "default", overrides: Mapping[str, Any] | None = None) -> Config:
    """A checked :class:`Config` from a shipped profile name or a TOML file, then ``overrides``."""
    if not isinstance(path_or_profile, (str, Path)):
        raise InputError(f"config must be a profile name or a TOML path, got {type(path_or_profile).__name__}")
    name = str(path_or_profile)
    path = Path(name)
    if path.suffix != ".toml" and (PROFILES_DIR / f"{name}.toml").is_file():
        data, base, source = _read(PROFILES_DIR / f"{name}.toml"), Path.cwd(), f"profile '{name}'"
    elif path.suffix == ".toml" or path.exists():
        data, base, source = _read(path), path.resolve().parent, str(path)
        parent = data.pop("profile", None)
        if parent is not None:
            if not isinstance(parent, str) or not (PROFILES_DIR / f"{parent}.toml").is_file():
                raise InputError(f"{path}: profile = {parent!r} is not a shipped profile ({', '.join(profiles())})")
            merged = _flatten(_read(PROFILES_DIR / f"{parent}.toml"))
            for sec, values in _flatten(data).items():
                merged.setdefault(sec, {}).update(values)
            _check(merged, source)
            return _apply(Config(_complete(merged), source, base), overrides)
    else:
        raise InputError(f"no profile or config file named {name!r} (shipped profiles: {', '.join(profiles())})")
    sections = _flatten(data)
    _check(sections, source)
    return _apply(Config(_complete(sections), source, base), overrides)


def _apply(cfg: Config, overrides: Mapping[str, Any] | None) -> Config:
    if not overrides:
        return cfg
    sections = copy.deepcopy(cfg.sections)
    for dotted, raw in overrides.items():
        if not isinstance(dotted, str) or "." not in dotted:
            raise InputError(f"override {dotted!r} must be section.key=value (e.g. deduce.mode=direct)")
        sec, key = dotted.rsplit(".", 1)
        sections.setdefault(sec, {})[key] = _parse_override(dotted, raw)
    _check(sections, f"{cfg.source} with overrides")
    return Config(sections, cfg.source + " + overrides", cfg.base_dir)
