"""Model manifests: loading, sha256/size verification, locating files inside installed packages."""

from __future__ import annotations

import hashlib

import pytest

from gear_edge.errors import InputError
from gear_edge.manifest import Manifest, sha256_file


def write(tmp_path, body: str):
    p = tmp_path / "m.toml"
    p.write_text(body)
    return p


def manifest_for(tmp_path, data: bytes, **extra) -> tuple[Manifest, object]:
    f = tmp_path / "model.bin"
    f.write_bytes(data)
    lines = [
        'name = "tiny"', 'file = "model.bin"', f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
        f"size = {len(data)}", 'licence = "MIT"', 'source = "test"',
    ] + [f'{k} = "{v}"' for k, v in extra.items()]
    return Manifest.load(write(tmp_path, "\n".join(lines))), f


def test_verify_accepts_the_right_file_and_names_a_tampered_one(tmp_path):
    m, f = manifest_for(tmp_path, b"weights" * 100)
    assert m.package is None and m.verify(f) == f
    assert sha256_file(f) == m.sha256
    f.write_bytes(b"weightz" * 100)  # same size, different content
    with pytest.raises(InputError, match="sha256.*tampered"):
        m.verify(f)
    f.write_bytes(b"short")
    with pytest.raises(InputError, match="5 bytes but the manifest says 700"):
        m.verify(f)
    with pytest.raises(InputError, match="does not exist"):
        m.verify(tmp_path / "missing.bin")


def test_bad_manifests_are_named(tmp_path):
    with pytest.raises(InputError, match="lacks field"):
        Manifest.load(write(tmp_path, 'name = "x"'))
    with pytest.raises(InputError, match="64 hex digits"):
        Manifest.load(write(tmp_path, 'name="x"\nfile="f"\nsha256="abc"\nsize=1\nlicence="MIT"\nsource="s"'))
    with pytest.raises(InputError, match="not valid TOML"):
        Manifest.load(write(tmp_path, "name = "))
    with pytest.raises(InputError, match="does not exist"):
        Manifest.load(tmp_path / "nope.toml")


def test_locate_inside_a_package(tmp_path):
    m, _ = manifest_for(tmp_path, b"x", package="json", package_path="__init__.py")
    assert m.locate().name == "__init__.py"
    m, _ = manifest_for(tmp_path, b"x", package="no_such_package_xyz")
    with pytest.raises(InputError, match="not installed"):
        m.locate()


def test_locate_next_to_the_manifest_without_a_package(tmp_path):
    """A small model shipped in models/ (no package): the file beside its manifest, verified as usual."""
    m, f = manifest_for(tmp_path, b"x")
    assert m.locate() == f and m.verify(m.locate()) == f
    f.unlink()
    with pytest.raises(InputError, match=r"names no package and model\.bin is not next to .*m\.toml"):
        m.locate()
