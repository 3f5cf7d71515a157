"""Package-level behaviour: light imports, native loading and fallback, threads, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import gear_edge
from gear_edge import _native
from gear_edge.errors import InputError

HEAVY = ["torch", "onnx", "tensorrt", "pycuda", "cuda", "llama_cpp", "rclpy", "sam2", "transformers", "pycocotools", "skimage"]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GEAR_EDGE_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_import_pulls_in_no_optional_extra():
    code = (
        "import sys, json, gear_edge, gear_edge.masks, gear_edge.crops, gear_edge.cli\n"
        "import numpy as np\n"
        "gear_edge.masks.encode(np.ones((2, 2), bool))\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_fallback_is_logged_once_and_works():
    code = (
        "import logging, numpy as np\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "import gear_edge.masks as gm\n"
        "m = np.zeros((4, 5), bool); m[1:3, 1:4] = True\n"
        "assert gm.encode(m)['counts'] == '5220003'\n"
        "assert gm.decode(gm.encode(m)).sum() == 6\n"
        "print(gm.backend())\n"
    )
    out = run_python(code, GEAR_EDGE_DISABLE_CPP="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numpy"
    warnings = [line for line in out.stderr.splitlines() if "numpy reference implementation" in line]
    assert len(warnings) == 1, out.stderr
    assert "GEAR_EDGE_DISABLE_CPP" in warnings[0]


def test_extension_can_be_loaded_from_an_explicit_path():
    cpp = _native.native()
    if cpp is None:
        pytest.skip(f"C++ extension not built: {_native.fallback_reason()}")
    out = run_python("import gear_edge.masks as gm; print(gm.backend())", GEAR_EDGE_CPP_PATH=cpp.__file__)
    assert out.stdout.strip() == "cpp", out.stderr
    bad = run_python(
        "import gear_edge._native as n; print(n.backend()); print(n.fallback_reason())",
        GEAR_EDGE_CPP_PATH="/nonexistent/_cpp.so",
    )
    assert bad.stdout.splitlines()[0] == "numpy"
    assert "/nonexistent/_cpp.so" in bad.stdout


def test_thread_settings():
    before = _native.get_num_threads()
    try:
        _native.set_num_threads(3)
        assert _native.get_num_threads() == 3
        assert _native.resolve_threads(None) == 3
        assert _native.resolve_threads(1) == 1
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(InputError):
                _native.set_num_threads(bad)
            with pytest.raises(InputError):
                _native.resolve_threads(bad)
    finally:
        _native.set_num_threads(before)
    out = run_python("import gear_edge._native as n; print(n.get_num_threads())", GEAR_EDGE_NUM_THREADS="5")
    assert out.stdout.strip() == "5"
    out = run_python("import gear_edge._native as n; n.get_num_threads()", GEAR_EDGE_NUM_THREADS="many")
    assert out.returncode != 0 and "GEAR_EDGE_NUM_THREADS must be a positive integer" in out.stderr


def test_cli_info():
    out = subprocess.run([sys.executable, "-m", "gear_edge.cli", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["version"] == gear_edge.__version__
    assert info["backend"] == _native.backend()
    if info["backend"] == "cpp":
        assert info["build"]["optimized"] is True


def test_installed_metadata_matches_package_version():
    from importlib.metadata import version

    assert version("gear-edge") == gear_edge.__version__


def test_cli_export_mounts_both_exporters_without_importing_torch():
    code = (
        "import sys\n"
        "from gear_edge.cli import build_parser\n"
        "p = build_parser()\n"
        "a = p.parse_args(['export', 'captioner', '--random-init', '--out', 'x'])\n"
        "assert a.model == 'captioner' and a.args == ['--random-init', '--out', 'x'], a\n"
        "assert p.parse_args(['export', 'sam2', '--help-me']).args == ['--help-me']\n"
        "assert 'torch' not in sys.modules, 'building the CLI imported torch'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bad = subprocess.run([sys.executable, "-m", "gear_edge.cli", "export", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
