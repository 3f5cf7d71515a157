#!/usr/bin/env bash
# Builds the C++ mask core with AddressSanitizer + UndefinedBehaviorSanitizer, runs its C++ unit
# tests, then runs the Python mask/crop tests against the sanitized extension.
#
#   bash scripts/sanitize.sh            # from the repository root, inside the project's venv
#
# Any ASan/UBSan report aborts the process (halt_on_error), so a finding fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUILD=${SANITIZE_BUILD_DIR:-build/sanitize}

pybind11_dir=$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGEAR_EDGE_SANITIZE=ON -DGEAR_EDGE_BUILD_TESTS=ON -DGEAR_EDGE_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"

export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
(cd "$BUILD" && ctest --output-on-failure)

ext=$(ls "$BUILD"/_cpp*.so | head -n1)
# The interpreter itself is not instrumented: preload the sanitizer runtimes for the extension.
preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
LD_PRELOAD="$preload" GEAR_EDGE_CPP_PATH="$ext" GEAR_EDGE_REQUIRE_CPP=1 "$PY" - <<'PYEOF'
from gear_edge import _native
info = _native.native().build_info()
assert info["sanitize"] is True, f"the sanitized extension was not loaded: {info}"
print("sanitized extension loaded:", info)
PYEOF
LD_PRELOAD="$preload" GEAR_EDGE_CPP_PATH="$ext" GEAR_EDGE_REQUIRE_CPP=1 \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_masks_rle.py tests/test_masks_errors.py \
  tests/test_masks_polygons.py tests/test_masks_postprocess.py tests/test_crops.py "$@"
