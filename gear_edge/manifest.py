"""Model manifests (``models/*.toml``): what a model file is and how to check it before use.

A manifest names one file: ``name``, ``file`` (file name), ``sha256``, ``size`` (bytes), ``licence``,
``source`` (where it comes from, e.g. a PyPI wheel) and optionally ``package`` / ``package_path``
(the installed Python package and the path inside it where the file lives).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gear_edge.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
_REQUIRED = ("name", "file", "sha256", "size", "licence", "source")
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


@dataclass(frozen=True)
class Manifest:
    name: str
    file: str
    sha256: str
    size: int
    licence: str
    source: str
    package: str | None = None
    package_path: str | None = None
    extra: dict = field(default_factory=dict)
    path: Path | None = None  # the manifest file itself

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise InputError(f"model manifest {path} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"model manifest {path} is a directory, not a TOML file") from None
        except UnicodeDecodeError:
            raise InputError(f"model manifest {path} is not a TOML text file (not UTF-8)") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"model manifest {path} is not valid TOML: {exc}") from None
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise InputError(f"model manifest {path} lacks field(s) {missing}")
        sha = str(data["sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise InputError(f"model manifest {path}: 'sha256' must be 64 hex digits, got {data['sha256']!r}")
        known = {k: data[k] for k in _REQUIRED}
        known.update({k: (data.get(k) or None) for k in ("package", "package_path")})
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**{**known, "sha256": sha, "size": int(data["size"])}, extra=extra, path=path)

    @classmethod
    def named(cls, name: str) -> "Manifest":
        """The manifest ``models/<name>.toml`` shipped with the project."""
        return cls.load(MODELS_DIR / f"{name}.toml")

    def locate(self) -> Path:
        """Where the file is: inside the installed ``package``, or (a manifest naming no package) next
        to the manifest itself (a small model shipped in ``models/``); raises saying how to get it."""
        if not self.package:
            if self.path is not None and (self.path.parent / self.file).is_file():
                return self.path.parent / self.file
            where = f" next to {self.path}" if self.path is not None else ""
            raise InputError(f"{self.name}: the manifest names no package and {self.file} is not{where} "
                             f"({self.source}); pass the model path explicitly")
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"{self.name}: package {self.package!r} is not installed ({self.source})")
        base = Path(next(iter(spec.submodule_search_locations)))
        path = base / (self.package_path or self.file)
        if not path.is_file():
            raise InputError(f"{self.name}: {path} is missing from the installed package {self.package!r}")
        return path

    def verify(self, path: str | os.PathLike) -> Path:
        """Checks size and sha256 of ``path`` against the manifest; returns the path. Cached per file state."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise InputError(f"{self.name}: model file {path} does not exist") from None
        if st.st_size != self.size:
            raise InputError(
                f"{self.name}: {path} has {st.st_size} bytes but the manifest says {self.size}; "
                "the file is truncated or a different model — reinstall it"
            )
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if _verified.get(key) != self.sha256:
            digest = sha256_file(path)
            if digest != self.sha256:
                raise InputError(
                    f"{self.name}: {path} has sha256 {digest} but the manifest says {self.sha256}; "
                    "the file is corrupted or tampered with — reinstall it"
                )
            _verified[key] = digest
        return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, sha256: str, what: str = "model") -> Path:
    """Checks that the file at ``path`` has the given sha256 (cached per file state); returns the path.

    ``what`` names the setting in the error (e.g. ``deduce.model_sha256``)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{what}: model file {path} does not exist") from None
    if not path.is_file():
        raise InputError(f"{what}: {path} is not a file")
    want = sha256.strip().lower()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _verified.get(key) != want:
        digest = sha256_file(path)
        if digest != want:
            raise InputError(f"{what}: {path} has sha256 {digest} but {want} was expected; "
                             "the file is corrupted, tampered with or a different model")
        _verified[key] = digest
    return path


def check_model_file(path: str | os.PathLike, what: str, *, sha256: str = "", allow_unverified: bool = False,
                     manifest_path: str | os.PathLike | None = None, sha_setting: str | None = None) -> str:
    """Verifies a user-supplied model file before use; returns how: ``"sha256"``, ``"manifest"`` or
    ``"unverified"``.

    ``sha256`` (the config's ``<what>_sha256``) wins; else the manifest next to the file
    (``manifest_path``, default ``<stem>.toml``) is checked; else the file is refused unless
    ``allow_unverified`` (``runtime.allow_unverified_models``). ``what`` names the setting in errors,
    ``sha_setting`` where its sha256 is given (default ``<what>_sha256``).
    """
    sha_setting = sha_setting or f"{what}_sha256"
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} = {path} does not exist" if not path.exists() else f"{what} = {path} is not a file")
    if sha256:
        verify_sha256(path, sha256, sha_setting)
        return "sha256"
    mp = Path(manifest_path) if manifest_path is not None else path.with_suffix(".toml")
    if mp.is_file():
        Manifest.load(mp).verify(path)
        return "manifest"
    if allow_unverified:
        return "unverified"
    raise InputError(
        f"{what} = {path} cannot be verified: it has no manifest ({mp.name} next to it) and {sha_setting} is "
        f"not set; set {sha_setting} to the file's sha256 (sha256sum {path.name}), write its manifest, or set "
        "runtime.allow_unverified_models = true to load it unchecked"
    )
