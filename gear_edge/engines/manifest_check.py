"""Model manifests with tensor specs: written next to exported models, checked when an engine loads.

A model manifest is a ``models/*.toml``-style manifest (see :mod:`gear_edge.manifest`: ``name``,
``file``, ``sha256``, ``size``, ``licence``, ``source``) that may also list the model's tensors::

    precision = "fp16"
    [[inputs]]
    name = "point_coords"
    dtype = "float32"
    shape = ["B", "P", 2]      # ints are fixed sizes; strings name dynamic axes ("?" = unnamed)
    [[outputs]]
    ...

By convention the manifest of ``dir/model.onnx`` is ``dir/model.toml`` (:func:`manifest_path_for`).
An engine given a manifest verifies the file's size and sha256 and then checks its own tensor specs
against the listed ones, so a wrong or tampered file fails at load, naming the tensor.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gear_edge.engines.base import Dim, TensorSpec
from gear_edge.errors import InputError
from gear_edge.manifest import Manifest, sha256_file

ManifestArg = Manifest | str | os.PathLike | None

DTYPES = ("float32", "float16", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def manifest_path_for(model_path: str | os.PathLike) -> Path:
    """``dir/name.onnx`` → ``dir/name.toml`` (the manifest the exporters write next to a model)."""
    return Path(model_path).with_suffix(".toml")


def resolve_manifest(model_path: str | os.PathLike, manifest: ManifestArg | str = "auto") -> Manifest | None:
    """The manifest to check ``model_path`` against.

    ``manifest``: a :class:`Manifest`, a path to one, ``None`` (no check) or ``"auto"`` (the sibling
    ``<stem>.toml`` if it exists, else none).
    """
    if manifest is None:
        return None
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, str) and manifest == "auto":
        sibling = manifest_path_for(model_path)
        return Manifest.load(sibling) if sibling.is_file() else None
    return Manifest.load(manifest)


def _parse_dim(value: Any, where: str) -> Dim:
    if isinstance(value, bool):
        raise InputError(f"{where}: shape entries must be ints or strings, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            return None
        return value
    if isinstance(value, str):
        return None if value in ("", "?") else value
    raise InputError(f"{where}: shape entries must be ints or strings, got {value!r}")


def _parse_specs(entries: Any, where: str) -> dict[str, TensorSpec]:
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise InputError(f"{where} must be an array of tables ([[...]]) with name, dtype and shape")
    out: dict[str, TensorSpec] = {}
    for i, entry in enumerate(entries):
        missing = [k for k in ("name", "dtype", "shape") if k not in entry]
        if missing:
            raise InputError(f"{where}[{i}] lacks {missing}")
        name = str(entry["name"])
        dtype = str(entry["dtype"])
        if dtype not in DTYPES:
            raise InputError(f"{where} {name!r}: dtype {dtype!r} is not one of {DTYPES}")
        if not isinstance(entry["shape"], list):
            raise InputError(f"{where} {name!r}: shape must be a list")
        if name in out:
            raise InputError(f"{where}: tensor {name!r} is listed twice")
        shape = tuple(_parse_dim(d, f"{where} {name!r}") for d in entry["shape"])
        out[name] = TensorSpec(name, shape, _np_dtype(dtype))
    return out


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":  # numpy has no bfloat16; keep a 2-byte stand-in so specs stay comparable
        return np.dtype([("bfloat16", "<u2")])
    return np.dtype(name)


def _dtype_name(dtype: Any) -> str:
    dt = np.dtype(dtype)
    if dt.names == ("bfloat16",):
        return "bfloat16"
    return "bool" if dt == np.bool_ else dt.name


def manifest_specs(manifest: Manifest) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]] | None:
    """(inputs, outputs) listed in the manifest, or None when it lists no tensors."""
    extra = manifest.extra
    if "inputs" not in extra and "outputs" not in extra:
        return None
    where = str(manifest.path or manifest.name)
    return (
        _parse_specs(extra.get("inputs", []), f"{where}: inputs"),
        _parse_specs(extra.get("outputs", []), f"{where}: outputs"),
    )


def _dims_compatible(actual: Dim, expected: Dim) -> bool:
    """A fixed expected size must match a fixed actual one (a dynamic actual axis accepts it);
    a dynamic expected axis needs a dynamic actual one."""
    actual_fixed = isinstance(actual, int) and actual >= 0
    if isinstance(expected, int):
        return not actual_fixed or actual == expected
    return not actual_fixed


def compare_specs(source: str, role: str, actual: Mapping[str, TensorSpec], expected: Mapping[str, TensorSpec]) -> None:
    """Raises InputError naming the first tensor whose name, rank, size or dtype differs.

    ``role``: 'input' or 'output'; ``actual``: the engine's specs; ``expected``: the manifest's.
    """
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    if missing or extra:
        raise InputError(
            f"{source}: the model's {role}s {list(actual)} differ from its manifest's {list(expected)} "
            f"(missing {missing}, unexpected {extra}); this is not the model the manifest describes"
        )
    for name, want in expected.items():
        got = actual[name]
        if _dtype_name(got.dtype) != _dtype_name(want.dtype):
            raise InputError(
                f"{source}: {role} {name!r} is {_dtype_name(got.dtype)} but the manifest says "
                f"{_dtype_name(want.dtype)} ({want.describe()})"
            )
        if len(got.shape) != len(want.shape) or not all(_dims_compatible(a, e) for a, e in zip(got.shape, want.shape)):
            raise InputError(
                f"{source}: {role} {name!r} has shape {got.describe()} but the manifest says {want.describe()}"
            )


def check_against_manifest(
    source: str, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec], manifest: Manifest
) -> None:
    """Verifies size + sha256 of ``source`` and, when the manifest lists tensors, the engine's specs."""
    manifest.verify(source)
    specs = manifest_specs(manifest)
    if specs is None:
        return
    compare_specs(source, "input", inputs, specs[0])
    compare_specs(source, "output", outputs, specs[1])


# ---- writing ------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise InputError(f"manifest values must be finite numbers, got {value}")
        return repr(value)
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        )
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise InputError(f"cannot write {type(value).__name__} {value!r} into a manifest")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_value(key)


def _dim_value(d: Dim) -> int | str:
    if isinstance(d, int) and d >= 0:
        return d
    return d if isinstance(d, str) and d else "?"


def spec_table(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": _dtype_name(spec.dtype), "shape": [_dim_value(d) for d in spec.shape]}


def manifest_toml(
    fields: Mapping[str, Any],
    inputs: Iterable[TensorSpec] = (),
    outputs: Iterable[TensorSpec] = (),
    tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """TOML text: scalar/list ``fields`` first, then ``[table]`` sections, then ``[[inputs]]`` / ``[[outputs]]``."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in fields.items() if v is not None]
    for table, values in (tables or {}).items():
        lines += ["", f"[{_toml_key(table)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    for role, specs in (("inputs", inputs), ("outputs", outputs)):
        for spec in specs:
            lines += ["", f"[[{role}]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in spec_table(spec).items()]
    return "\n".join(lines) + "\n"


def write_model_manifest(
    model_path: str | os.PathLike,
    *,
    inputs: Iterable[TensorSpec],
    outputs: Iterable[TensorSpec],
    licence: str,
    source: str,
    name: str | None = None,
    precision: str | None = None,
    extra: Mapping[str, Any] | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    manifest_path: str | os.PathLike | None = None,
) -> Path:
    """Writes the manifest of ``model_path`` (default: :func:`manifest_path_for`) and returns its path.

    sha256 and size are computed from the file; ``extra`` adds scalar/list keys (e.g. ``opset``),
    ``tables`` adds ``[section]`` tables (e.g. the export config). The result loads with
    :meth:`Manifest.load` and checks with :func:`check_against_manifest`.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError(f"cannot write a manifest for {model_path}: the file does not exist")
    fields: dict[str, Any] = {
        "name": name or model_path.stem,
        "file": model_path.name,
        "sha256": sha256_file(model_path),
        "size": model_path.stat().st_size,
        "licence": licence,
        "source": source,
        "precision": precision,
        # empty = not shipped inside a Python package (Manifest.load currently requires both keys)
        "package": "",
        "package_path": "",
    }
    for key, value in (extra or {}).items():
        if key in ("package", "package_path") and value:
            fields[key] = value
            continue
        if key in fields or key in ("inputs", "outputs"):
            raise InputError(f"manifest extra key {key!r} collides with a standard field")
        fields[key] = value
    out = Path(manifest_path) if manifest_path is not None else manifest_path_for(model_path)
    out.write_text(manifest_toml(fields, inputs, outputs, tables))
    Manifest.load(out)  # what we write must read back
    return out
