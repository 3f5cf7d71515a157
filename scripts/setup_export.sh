#!/usr/bin/env bash
# Adds the export + training stack to .venv: torch (PyPI build; runs on CPU), onnx, onnxscript, transformers, peft, gguf,
# and sam2==1.1.0 (an sdist that needs torch at build time, so no build isolation; no CUDA kernels).
# sam2 pulls torchvision, which pins its own torch: ~5 GB in all. Run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet "torch>=2.1" torchvision "onnx>=1.15" "onnxscript>=0.1" "transformers>=4.56" "tokenizers>=0.15" \
  "peft>=0.13" "gguf>=0.10" hydra-core iopath setuptools wheel
SAM2_BUILD_CUDA=0 "${PIP[@]}" install --quiet --no-build-isolation "sam2==1.1.0"
if "${PIP[@]}" show opencv-python >/dev/null 2>&1; then
  "${PIP[@]}" uninstall --quiet -y opencv-python
  "${PIP[@]}" install --quiet --force-reinstall --no-deps "opencv-python-headless>=4.8,<5.1"
fi
