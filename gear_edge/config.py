"""Typed configuration (TOML) with named profiles shipped in ``gear_edge/profiles/``.

``load_config("default")`` loads a shipped profile; ``load_config("my.toml")`` a file (it may say
``profile = "sam2"`` to start from a shipped one); ``overrides`` (``{"deduce.mode": "direct"}``)
change single keys. Unknown sections or keys are errors naming the key, so typos never pass silently.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gear_edge.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

SCHEMA: dict[str, dict[str, type | tuple]] = {
    "runtime": {"threads": int},
    "segment": {"kind": str},
    "segment.classical": {"work_side": int, "scale": float, "sigma": float, "merge_threshold": float,
                          "min_area_frac": float, "max_regions": int},
    "segment.sam2": {"encoder": str, "decoder": str, "points_per_side": int, "points_per_batch": int,
                     "pred_iou_thresh": float, "stability_score_thresh": float, "box_nms_thresh": float,
                     "min_mask_region_area": int, "crop_n_layers": int},
    "engines": {"backend": str, "providers": list, "plan_dir": str, "precision": str, "device_id": int},
    "describe": {"ocr": bool, "captioner": str, "k_neighbours": int, "max_regions_text": int},
    "deduce": {"mode": str, "model": str, "n_ctx": int, "seed": int, "max_cached_scenes": int},
}
CHOICES = {("segment", "kind"): ("classical", "sam2"), ("deduce", "mode"): ("program", "direct"),
           ("engines", "backend"): ("onnxruntime", "tensorrt"), ("engines", "precision"): ("fp32", "fp16", "int8")}


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


@dataclass
class Config:
    """A validated configuration: ``sections['deduce']['mode']`` etc.; ``source`` says where it came from."""

    sections: dict[str, dict[str, Any]]
    source: str
    base_dir: Path = field(default_factory=Path.cwd)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.sections.get(section, {}).get(key, default)

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

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
    for sec, values in sections.items():
        if sec == "":
            raise InputError(f"{source}: top-level keys {sorted(values)} are not allowed (put them in a [section])")
        if sec not in SCHEMA:
            raise InputError(f"{source}: unknown section [{sec}] (known: {', '.join(sorted(SCHEMA))})")
        for key, value in values.items():
            if key not in SCHEMA[sec]:
                raise InputError(f"{source}: unknown key '{key}' in [{sec}] (known: {', '.join(sorted(SCHEMA[sec]))})")
            want = SCHEMA[sec][key]
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)
                ok = True
            if not ok:
                raise InputError(f"{source}: [{sec}] {key} must be {want.__name__}, got {type(value).__name__} {value!r}")
            choices = CHOICES.get((sec, key))
            if choices and value not in choices:
                raise InputError(f"{source}: [{sec}] {key} must be one of {choices}, got {value!r}")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"config {path} does not exist (shipped profiles: {', '.join(profiles())})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config {path} is not valid TOML: {exc}") from None


def _parse_override(key: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def load_config(path_or_profile: str | Path = "default", overrides: Mapping[str, Any] | None = None) -> Config:
    name = str(path_or_profile)
    path = Path(name)
    if path.suffix != ".toml" and (PROFILES_DIR / f"{name}.toml").is_file():
        data, base, source = _read(PROFILES_DIR / f"{name}.toml"), Path.cwd(), f"profile '{name}'"
    elif path.suffix == ".toml" or path.exists():
        data, base, source = _read(path), path.resolve().parent, str(path)
        parent = data.pop("profile", None)
        if parent is not None:
            if not (PROFILES_DIR / f"{parent}.toml").is_file():
                raise InputError(f"{path}: profile = {parent!r} is not a shipped profile ({', '.join(profiles())})")
            merged = _flatten(_read(PROFILES_DIR / f"{parent}.toml"))
            for sec, values in _flatten(data).items():
                merged.setdefault(sec, {}).update(values)
            sections = merged
            _check(sections, source)
            return _apply(Config(sections, source, base), overrides)
    else:
        raise InputError(f"no profile or config file named {name!r} (shipped profiles: {', '.join(profiles())})")
    sections = _flatten(data)
    _check(sections, source)
    return _apply(Config(sections, source, base), overrides)


def _apply(cfg: Config, overrides: Mapping[str, Any] | None) -> Config:
    if not overrides:
        return cfg
    sections = copy.deepcopy(cfg.sections)
    for dotted, raw in overrides.items():
        if "." not in dotted:
            raise InputError(f"override {dotted!r} must be section.key=value (e.g. deduce.mode=direct)")
        sec, key = dotted.rsplit(".", 1)
        sections.setdefault(sec, {})[key] = _parse_override(dotted, raw)
    _check(sections, f"{cfg.source} with overrides")
    return Config(sections, cfg.source + " + overrides", cfg.base_dir)
