"""Config loading: typed key specs (type, default, range) checked at load, clear errors for bad files."""

from __future__ import annotations

import math
import re
import sys

import pytest
from hypothesis import given, strategies as st

from gear_edge.config import PROFILES_DIR, SCHEMA, Config, check_value, default, defaults, load_config, spec
from gear_edge.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_default_profile_equals_the_schema_defaults():
    """The shipped default profile writes out the schema's defaults: the two never disagree."""
    shipped = tomllib.loads((PROFILES_DIR / "default.toml").read_text())
    for sec, values in shipped.items():
        for sub, v in values.items():
            if isinstance(v, dict):
                for k, vv in v.items():
                    assert default(f"{sec}.{sub}", k) == vv, (sec, sub, k)
            else:
                assert default(sec, sub) == v, (sec, sub)


def test_every_key_has_a_default_that_passes_its_own_check():
    for sec, keys in SCHEMA.items():
        for key, k in keys.items():
            if k.default is None:  # an override key ([engines.<model>]): unset = as [engines]
                assert sec.startswith("engines.") and key in SCHEMA["engines"]
                continue
            assert k.check(k.default, f"[{sec}] {key}") == k.default


def test_missing_keys_get_schema_defaults(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[deduce]\nmode = "direct"\n')
    cfg = load_config(p)
    assert cfg.get("deduce", "mode") == "direct"
    assert cfg.get("segment", "kind") == "classical"
    assert cfg.get("runtime", "threads") == 2
    assert cfg.section("segment.classical") == defaults()["segment.classical"]
    # a Config built by hand falls back to the schema too; an explicit default still wins
    bare = Config({}, "test")
    assert bare.get("deduce", "n_ctx") == 2048 and bare.get("deduce", "n_ctx", 7) == 7
    assert bare.get("nosuch", "key") is None
    assert bare.section("describe")["k_neighbours"] == 4


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("runtime.threads", 1000, r"an integer in \[1, 256\]"),
        ("runtime.threads", 0, r"an integer in \[1, 256\]"),
        ("runtime.max_image_pixels", 0, r"an integer in \[1, "),
        ("segment.classical.max_regions", -1, r"an integer in \[1, 10000\]"),
        ("segment.classical.work_side", 0, r"an integer in \[16, 8192\]"),
        ("segment.classical.min_area_frac", 2, r"a finite number in \[0, 0.5\]"),
        ("segment.classical.scale", -1, r"a finite number in \(0, 1000000\]"),
        ("segment.classical.scale", 0, r"a finite number in \(0, 1000000\]"),
        ("segment.classical.sigma", "inf", r"a finite number in \[0, 100\]"),
        ("segment.classical.sigma", "nan", r"a finite number"),
        ("segment.classical.merge_threshold", -0.5, r"a finite number in \[0, 1000\]"),
        ("describe.k_neighbours", -1, r"an integer in \[0, 256\]"),
        ("deduce.n_ctx", 0, r"an integer in \[256, 131072\]"),
        ("deduce.max_cached_scenes", -1, r"an integer in \[0, 1024\]"),
        ("deduce.model_sha256", "abc", r"empty or a sha256"),
        ("segment.sam2.pred_iou_thresh", 1.5, r"a finite number in \[0, 1\]"),
        ("segment.sam2.crop_n_layers", 9, r"an integer in \[0, 4\]"),
        ("engines.providers", "[]", r"a non-empty list of str"),
        ("segment.kind", "sam3", r"one of \['classical', 'sam2'\]"),
        ("describe.ocr", "maybe", r"true or false"),
        ("runtime.threads", "2.5", r"an integer"),
        ("runtime.threads", "true", r"an integer"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_allowed_range(key, value, allowed):
    sec, k = key.rsplit(".", 1)
    with pytest.raises(InputError, match=rf"\[{re.escape(sec)}\] {k} must be {allowed}.*got"):
        load_config("default", {key: value})


def test_out_of_range_in_a_file_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('profile = "default"\n[segment.classical]\nsigma = inf\n')
    with pytest.raises(InputError, match=rf"^{re.escape(str(p))}: \[segment.classical\] sigma must be a finite number"):
        load_config(p)


def test_ints_are_accepted_for_floats_and_sha256_is_normalised():
    cfg = load_config("default", {"segment.classical.scale": 300, "deduce.model_sha256": "AB" * 32})
    assert cfg.get("segment.classical", "scale") == 300.0 and isinstance(cfg.get("segment.classical", "scale"), float)
    assert cfg.get("deduce", "model_sha256") == "ab" * 32


def test_bad_files_are_clear_errors(tmp_path):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    with pytest.raises(InputError, match=r"is not a TOML text file \(byte \d+ is not UTF-8\)"):
        load_config(binary)
    with pytest.raises(InputError, match=r"is a directory, not a TOML file"):
        load_config(tmp_path)
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(InputError, match=r"is a directory, not a TOML file"):
        load_config(d)
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing here\n")
    with pytest.raises(InputError, match=r"is empty \(it sets no keys\)"):
        load_config(empty)
    with pytest.raises(InputError, match=r"does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(InputError, match=r"not valid TOML"):
        (tmp_path / "syntax.toml").write_text("[runtime\nthreads = 2\n")
        load_config(tmp_path / "syntax.toml")
    with pytest.raises(InputError, match=r"profile = 3 is not a shipped profile"):
        (tmp_path / "p.toml").write_text("profile = 3\n")
        load_config(tmp_path / "p.toml")
    with pytest.raises(InputError, match=r"config must be a profile name or a TOML path"):
        load_config(3)  # type: ignore[arg-type]


def test_spec_and_check_value_api():
    assert spec("runtime", "threads").default == 2
    assert check_value("segment.classical", "scale", 5) == 5.0
    with pytest.raises(InputError, match=r"unknown key 'thread' in \[runtime\]"):
        spec("runtime", "thread")
    with pytest.raises(InputError, match=r"x: \[runtime\] threads must be an integer in \[1, 256\]"):
        check_value("runtime", "threads", -4, "x")


_anything = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)


@given(st.sampled_from([(s, k) for s, keys in SCHEMA.items() for k in keys]), _anything)
def test_any_value_for_any_key_is_accepted_within_its_spec_or_a_clear_error(sec_key, value):
    sec, key = sec_key
    k = SCHEMA[sec][key]
    try:
        got = k.check(value, f"[{sec}] {key}")
    except InputError as exc:
        assert str(exc).startswith(f"[{sec}] {key} must be {k.allowed()}, got ")
        return
    assert isinstance(got, k.type) and not (k.type in (int, float) and isinstance(got, bool))
    if k.type in (int, float):
        assert math.isfinite(got)
        assert k.lo is None or got >= k.lo and not (k.lo_open and got == k.lo)
        assert k.hi is None or got <= k.hi
    if k.choices and k.type is str:
        assert got in k.choices
